"""Stochastic model-based minimization of weakly convex functions.

Damek Davis, Dmitriy Drusvyatskiy. SIAM Journal on Optimization 2019. arXiv:1803.06523

Many nonsmooth nonconvex losses are *weakly convex*: ``f + rho/2 ||x||^2`` is
convex (compositions ``h(c(x))`` of a convex Lipschitz ``h`` with a smooth
``c``, e.g. robust phase retrieval ``|(a^T x)^2 - b|``). The paper studies one
template: at step ``t`` sample ``xi_t``, build a *model* ``f_{x_t}(.; xi_t)``
of the sampled loss around ``x_t`` and take a proximal step on it,

    x_{t+1} = argmin_x  f_{x_t}(x; xi_t) + r(x) + ||x - x_t||^2 / (2 alpha_t),

and proves that every such method drives the gradient of the Moreau
envelope ``f_lambda`` (the natural stationarity measure of a weakly convex
function) to zero at the rate ``O(k^{-1/4})`` with ``alpha_t ~ 1/sqrt(T)``.
The models (hyperparameter ``model``):

* ``"subgradient"`` — the linear model ``f(x_t; xi) + <zeta_t, x - x_t>``,
  ``zeta_t`` a subgradient: the stochastic (projected) subgradient method
  ``x_{t+1} = proj_X(x_t - alpha_t zeta_t)``. Works with any oracle.
* ``"prox_linear"`` — for compositions, the convex model ``h(c(x_t; xi) +
  grad c(x_t; xi)(x - x_t))``: the stochastic prox-linear (regularised
  Gauss-Newton) method. Needs ``oracle.prox_linear_step(params, lr)``.
* ``"proximal_point"`` — the sampled function itself: the stochastic
  proximal point method. Needs ``oracle.proximal_point_step(params, lr)``.

The last two minimise a problem-specific subproblem; the oracle provides it
(``reference.problems.create("robust_phase_retrieval")`` has both in closed
form). Missing, they raise ``TypeError`` naming the capability.

``r(x)``: the indicator of the ball ``||x|| <= radius`` (all parameters as
one vector), supported with the subgradient model, where the step is the
projection of the subgradient step (the projected variant keeps iterates
feasible); ``radius=inf`` (default) is unconstrained. (With the other models
a constraint changes the subproblem, so it is rejected.)

Step sizes: ``lr`` is ``alpha_t``, a float or a schedule ``k -> alpha``;
the theory's choice is ``alpha_t = alpha_0 / sqrt(T + 1)`` (constant) or
``alpha_0 / sqrt(t + 1)``. Default ``lr=0.01``, ``model="subgradient"``.
"""
from __future__ import annotations

import math

from .. import tree
from ..backend import xp_of
from .base import Optimizer, check_grads, check_range, register

MODELS = ("subgradient", "prox_linear", "proximal_point")


def project_to_ball(params, radius):
    """``proj`` onto ``{x : ||x|| <= radius}`` (the tree as one vector); unchanged for ``radius = inf``."""
    if math.isinf(radius):
        return params
    norm = tree.global_norm(params)
    scale = radius / xp_of(norm).maximum(norm, radius)      # min(1, radius / ||x||), no division by 0
    return tree.scale(scale.astype(next(iter(params.values())).dtype), params)


@register("stochastic_model_based_methods")
class StochasticModelBased(Optimizer):
    paper = dict(title="Stochastic model-based minimization of weakly convex functions",
                 authors="Davis, Drusvyatskiy", year=2019, arxiv="1803.06523",
                 family="optimizer-first-order")
    defaults = dict(lr=0.01, model="subgradient", radius=math.inf)
    # the default lr is too long for Rosenbrock's curvature (about 1000) at (-1.2, 1)
    descent_hparams = {"rosenbrock": dict(lr=1e-3)}

    def check(self, hp):
        super().check(hp)
        if hp["model"] not in MODELS:
            raise ValueError(f"{self.name}: model must be one of {MODELS}, got {hp['model']!r}")
        check_range("radius", hp["radius"], 0.0, low_open=True, where=self.name, allow_inf=True)
        if hp["model"] != "subgradient" and not math.isinf(hp["radius"]):
            raise ValueError(f"{self.name}: radius (a ball constraint) is supported only with "
                             f"model='subgradient', got model={hp['model']!r}")

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        lr, model = hp["lr"], hp["model"]
        if model == "subgradient":
            _, grads = oracle(params)
            check_grads(self.name, params, grads, t)
            new = project_to_ball(tree.axpy(-lr, grads, params), hp["radius"])
        else:
            method = f"{model}_step"
            if not hasattr(oracle, method):
                raise TypeError(f"{self.name}: model={model!r} needs an oracle with {method}(params, lr) "
                                f"(e.g. problems.create('robust_phase_retrieval').oracle(batch))")
            new = getattr(oracle, method)(params, lr)
            bad = tree.all_finite(new)
            if bad is not None:
                raise FloatingPointError(f"{self.name}: non-finite {model} step for parameter {bad!r} at step {t}")
        return new, {"step": t}
