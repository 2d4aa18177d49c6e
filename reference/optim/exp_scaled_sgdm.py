"""Random Scaling and Momentum for Non-smooth Non-convex Optimization.

Qinzi Zhang, Ashok Cutkosky. ICML 2024. arXiv:2405.09742

The classical analyses of SGD with momentum need the loss to be convex or
smooth; a ReLU network's loss is neither. The paper shows that one small
change closes the gap: multiply each update by an independent random scalar
drawn from the exponential distribution with mean 1,

    g_t = grad f(x_{t-1})                         (a stochastic gradient at the current iterate)
    m_t = beta m_{t-1} + (1 - beta) g_t           (SGDM's momentum)
    s_t ~ Exp(1)                                  (i.i.d., E[s_t] = 1)
    x_t = x_{t-1} - s_t lr m_t

This is not a heuristic: it falls out of the paper's "exponentiated
online-to-non-convex conversion", run with online gradient descent as the
online learner (discounted by ``beta``). With the exponential scaling the
conversion needs no extra randomised query point (O2NC queried the gradient
at a uniformly random point of the last segment), the expected decrease is
exact for any (non-smooth) loss, and the method reaches ``(delta,
eps)``-stationary points — points near which an *average* of gradients over a
ball of radius ``delta`` is small — at the optimal rate
``O(delta^{-1} eps^{-3})``. Since ``E[s_t] = 1`` the expected step is SGDM's.

Conventions (the choices made, and why):

* The momentum is the EMA form ``beta m + (1 - beta) g`` (the paper's
  discount factor ``beta``); the form ``beta m + g`` is the same method with
  ``lr`` scaled by ``1 / (1 - beta)``. The buffer starts at zero.
* The paper's analysis runs OGD on a ball (a bounded ``||Delta||``); like the
  paper's experiments we use the unconstrained update.
* Randomness lives in the state: ``state["seed"]`` (copied from the ``seed``
  hyperparameter at ``init``) and the step counter; ``s_t`` is drawn from
  ``numpy.random.default_rng([seed, t])``, so a saved and reloaded state
  resumes bit for bit and no global RNG is touched. The draw is a Python float
  (host side), so the params keep their dtype; ``state["scale"]`` is the last
  ``s_t`` (for inspection).
* ``weight_decay``: coupled L2, added to the gradient (as torch's SGD).

Defaults: ``lr = 0.01``, ``beta = 0.9`` (SGDM's usual values; the paper's
experiments compare with SGDM at equal settings), ``seed = 0``.
"""
from __future__ import annotations


import numpy as np

from ..backend import fuse
from .. import tree
from .base import Optimizer, check_int, check_range, register
from .common import l2_gradient

__all__ = ["ExpScaledSGDM", "exponential_scale"]


def exponential_scale(seed, t):
    """``s_t ~ Exp(1)``, a deterministic function of ``(seed, t)`` (a Python float)."""
    return float(np.random.default_rng([int(seed), int(t)]).exponential(1.0))


@fuse
def _step_kernel(w, g, m, beta, step):
    m = beta * m + (1.0 - beta) * g
    w = w - step * m
    return w, m


@register("exp_scaled_sgdm")
class ExpScaledSGDM(Optimizer):
    paper = dict(title="Random Scaling and Momentum for Non-smooth Non-convex Optimization",
                 authors="Zhang, Cutkosky", year=2024, arxiv="2405.09742", family="optimizer-first-order")
    defaults = dict(lr=0.01, beta=0.9, weight_decay=0.0, seed=0)
    # the default lr diverges on Rosenbrock from (-1.2, 1) (curvature ~ 1000) once s_t is large
    descent_hparams = {"rosenbrock": dict(lr=1e-4)}

    def check(self, hp):
        super().check(hp)
        check_range("beta", hp["beta"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        seed = hp["seed"]
        check_int("seed", seed, 0, where=self.name)

    def init_slots(self, params):
        return {"m": tree.zeros_like(params), "seed": int(self.hparams["seed"]), "scale": 1.0}

    def update(self, params, grads, state, t, hp):
        g = l2_gradient(grads, params, hp["weight_decay"])
        s = exponential_scale(state["seed"], t)                        # s_t ~ Exp(1)
        w, m = {}, {}
        for k in params:
            w[k], m[k] = _step_kernel(params[k], g[k], state["m"][k], hp["beta"], s * hp["lr"])
        return w, {"m": m, "seed": int(state["seed"]), "scale": s}
