"""Discriminative Bayesian filtering lends momentum to the stochastic Newton method for minimizing log-convex functions.

Michael C. Burkhart. Optimization Letters, 2023. arXiv:2104.12949

To minimise ``l(theta) = 1/n sum_j log g_j(theta)`` (each ``log g_j``
convex), the *subsampled* (stochastic) Newton method draws a batch ``S_t``
and steps with the batch's gradient and Hessian at the current estimate,

    f_t = 1/|S_t| sum_{j in S_t} grad log g_j(theta_{t-1}),    H_t = 1/|S_t| sum_{j in S_t} hess log g_j(theta_{t-1}),
    theta_t = theta_{t-1} - H_t^{-1} f_t,

so each step uses one batch only and the iterates keep fluctuating around
the optimum with the batch-to-batch noise. The paper reads the problem as
sequential Bayesian inference: the optimum is a latent state ``z_t`` that
may drift as a Gaussian random walk, and each batch is a *discriminative*
observation of it, a Gaussian centred on the batch's Newton target with
the batch Hessian as precision:

    z_t | z_{t-1}  ~ N(z_{t-1}, Q)                                    (state model)
    z_t | S_t      ~ N(theta_{t-1} - H_t^{-1} f_t, H_t^{-1})          (discriminative observation)

The Kalman-type filter of this model (the discriminative Kalman filter of
Burkhart et al. 2020, with a flat prior) keeps a Gaussian posterior
``N(mu_t, P_t)`` and is the optimiser, ``theta_t = mu_t``:

    Ptilde_t  = (P_{t-1} + Q)^{-1}                                   (predict: precision of the prior)
    P_t^{-1}  = Ptilde_t + H_t                                        (update: precisions add)
    mu_t      = P_t (Ptilde_t mu_{t-1} + H_t (theta_{t-1} - H_t^{-1} f_t))

a precision-weighted blend of the previous estimate and the batch's Newton
target. Unrolled, ``mu_t`` is a weighted sum of *all* past Newton targets
whose weights ``P_t Ptilde_t ...`` decay under the paper's matrix
conditions, like Polyak's heavy ball. With the batch linearised at the
previous estimate (``theta_{t-1} = mu_{t-1}``, the paper's choice: ``f_t``,
``H_t`` are evaluated there) the update simplifies to

    mu_t = mu_{t-1} - P_t f_t = mu_{t-1} - (Ptilde_t + H_t)^{-1} f_t,

a Newton step whose curvature also holds the accumulated, slowly
forgotten curvature of past batches. Limits: ``Q -> infinity`` forgets the
past, ``Ptilde_t = 0``, and gives subsampled Newton exactly; ``Q = 0``
(a fixed optimum) accumulates every batch, ``P_t^{-1} = sum_s H_s``, and
the steps shrink like ``1/t`` (a second-order stochastic approximation).

Conventions and choices:

* **Q** is ``process_noise * I`` (``process_noise = inf`` allowed: then
  exactly subsampled Newton). Default ``1.0`` (ours; the paper leaves ``Q``
  to the user): in the units of ``theta^2``, a drift of the optimum by about
  one unit per step, which forgets the past over a few steps when the batch
  Hessians are of order 0.1-1.
* **Prior.** ``P_0^{-1} = prior_precision * I``, default ``0`` (flat): the
  first step is then a plain subsampled Newton step (and on a quadratic with
  the exact Hessian lands on the minimiser). The state stores the posterior
  *precision* ``Lambda_t = P_t^{-1}``, so the flat prior is representable:
  ``Ptilde = (Lambda^{-1} + q I)^{-1} = (I + q Lambda)^{-1} Lambda``.
* **The state model.** The authors' example code uses a mean-reverting
  state model ``z_t = alpha z_{t-1} + N(0, beta I)`` and a prior at its
  stationary covariance; here the random walk ``A = I`` of the paper's
  optimisation setting, with a flat prior.
* **Step length.** ``lr = 1`` (default) is the filter. The paper's example
  chooses the length along the filtered direction by an Armijo backtracking
  search on the batch; that is not implemented: ``lr < 1`` gives a fixed
  shorter step ``theta_t = theta_{t-1} - lr P_t f_t`` (the posterior
  precision is updated the same way).
* **Hessians** are dense ``n x n`` matrices of the batch loss
  (``reference.curvature.hessian``, one HVP per parameter from the
  oracle's ``hvp``; ``TypeError`` naming ``hvp`` for a plain oracle), and
  each step solves an ``n x n`` system: for small problems (tens to a few
  hundred parameters). ``damping`` (default 0) adds ``damping * I`` to each
  ``H_t`` where a batch Hessian may be singular. The batch is whatever the
  oracle evaluates (``reference.train.run(..., batch_size=b)`` hands each
  step a minibatch oracle); gradient and Hessian come from the same batch,
  as in the paper.
"""
from __future__ import annotations

import math

import numpy as np

from .. import curvature, tree
from ..backend import xp_of
from .adahessian import require_hvp
from .base import Optimizer, check_grads, check_range, register


def predicted_precision(Lambda, q):
    """``Ptilde = (P + q I)^{-1}`` from the precision ``Lambda = P^{-1}`` (``0`` for ``q = inf``)."""
    xp = xp_of(Lambda)
    if math.isinf(q):
        return xp.zeros_like(Lambda)
    n = Lambda.shape[0]
    Pt = xp.linalg.solve(xp.eye(n, dtype=Lambda.dtype) + q * Lambda, Lambda)   # (I + q Lambda)^{-1} Lambda
    return 0.5 * (Pt + Pt.T)                                                   # symmetric up to rounding


@register("bayesian_filtered_stochastic_newton")
class BayesianFilteredStochasticNewton(Optimizer):
    """The filtered stochastic Newton method; see the module docstring.

    State: ``precision`` (the posterior precision ``P_t^{-1}``, ``n x n`` in
    the params' key order) and ``step``.
    """

    paper = dict(title="Discriminative Bayesian filtering lends momentum to the stochastic Newton method for "
                       "minimizing log-convex functions",
                 authors="Burkhart", year=2023, arxiv="2104.12949", family="optimizer-second-order")
    defaults = dict(lr=1.0, process_noise=1.0, prior_precision=0.0, damping=0.0)
    scheduled = ("lr",)

    def check(self, hp):
        super().check(hp)
        check_range("process_noise", hp["process_noise"], 0.0, where=self.name, allow_inf=True)
        check_range("prior_precision", hp["prior_precision"], 0.0, where=self.name)
        check_range("damping", hp["damping"], 0.0, where=self.name)

    def init_slots(self, params):
        flat, _ = tree.flatten(params)
        n = int(flat.shape[0])
        xp = xp_of(flat)
        return {"precision": self.hparams["prior_precision"] * xp.eye(n, dtype=flat.dtype)}

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        require_hvp(self.name, oracle)
        _, grads = oracle(params)                                  # f_t at theta_{t-1}
        check_grads(self.name, params, grads, t)
        f, spec = tree.flatten({k: grads[k] for k in params})
        xp = xp_of(f)
        n = int(f.shape[0])
        H = curvature.hessian(oracle, params)                      # H_t at theta_{t-1}, same batch
        if not bool(xp.isfinite(H).all()):
            raise FloatingPointError(f"{self.name}: non-finite Hessian at step {t}")
        if hp["damping"] > 0:
            H = H + hp["damping"] * xp.eye(n, dtype=f.dtype)
        Ptilde = predicted_precision(state["precision"], float(hp["process_noise"]))   # (P_{t-1} + Q)^{-1}
        Lambda = Ptilde + H                                        # P_t^{-1} = Ptilde_t + H_t
        try:
            delta = xp.linalg.solve(Lambda, f)                     # P_t f_t
        except np.linalg.LinAlgError:
            raise np.linalg.LinAlgError(
                f"{self.name}: the posterior precision is singular at step {t} (a singular batch Hessian "
                "with no accumulated curvature); use damping > 0 or prior_precision > 0") from None
        step_vec = tree.unflatten(delta, spec)
        new_params = {k: params[k] - hp["lr"] * step_vec[k] for k in params}   # mu_t = mu_{t-1} - P_t f_t
        return new_params, {"precision": Lambda, "step": t}
