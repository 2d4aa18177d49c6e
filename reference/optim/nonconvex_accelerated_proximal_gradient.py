"""Accelerated Gradient Methods for Sparse Statistical Learning with Nonconvex Penalties.

Kai Yang, Masoud Asgharian, Sahir Bhatnagar. arXiv 2020 (revised 2022).
arXiv:2009.10629

The problem is ``min_x f(x) + h(x)`` with ``f`` smooth but possibly
*nonconvex* (gradient Lipschitz with constant ``L``) and ``h`` convex with an
easy prox. SCAD and MCP penalised regression fit it by splitting the penalty
``P = lam |.| + q`` into its convex L1 part ``h = lam ||.||_1`` and a smooth
concave part ``q`` moved into ``f = loss + q`` (``reference.problems``'
``sparse_regression`` with ``split="dc"``). Nesterov's momentum is not safe
for a nonconvex ``f``; Ghadimi and Lan's accelerated gradient (AG; Math.
Program. 2016, Algorithm 2 with the prox) is, and keeps three sequences:

    x^md_k = (1 - alpha_k) x^ag_{k-1} + alpha_k x_{k-1}
    x_k    = prox_{lambda_k h}( x_{k-1} - lambda_k grad f(x^md_k) )
    x^ag_k = prox_{beta_k h}  ( x^md_k  - beta_k   grad f(x^md_k) )

one gradient per iteration, at the "middle" point ``x^md``. Ghadimi and Lan
state conditions on ``alpha_k, beta_k, lambda_k`` and an example setting;
this paper's contribution is the setting that minimises their complexity
bound:

    beta_k   = 1/L                                 (``lr``)
    lambda_k = beta_k / alpha_k
    alpha_1  = 1,  alpha_k^2 = (1 - alpha_k) alpha_{k-1}^2,
                i.e. alpha_k = 2 / (1 + sqrt(1 + 4 / alpha_{k-1}^2))

(the "optimal damping sequence": ``1/alpha_k`` is FISTA's ``t_k``, so
``1/k <= alpha_k <= 2/(k+1)`` and ``alpha_k ~ 2/k``; with it ``lambda_k =
beta/alpha_k >= (k+1) beta/2``, a little longer than Ghadimi and Lan's
example ``k beta/2``).

Options (``damping``):

* ``"optimal"`` (default): the paper's setting above.
* ``"ghadimi_lan"``: Ghadimi and Lan's example, ``alpha_k = 2/(k+1)``,
  ``lambda_k = k beta_k / 2`` (their convex-case setting, the baseline of the
  paper's speed study; they take ``beta = 1/(2L)`` there).
* ``"none"``: ``alpha_k = 1``, ``lambda_k = beta_k``: then ``x^md = x = x^ag``
  and the method is the plain proximal gradient method (ISTA), the paper's
  "conventional proximal gradient" baseline.

Conventions and choices:

* **Params are ``x^ag``** (the sequence the convergence results are stated
  for; the official code reports ``x^md`` after its stopping test, which
  agrees at convergence). The state keeps ``x`` (the ``lambda``-sequence) and
  ``alpha`` (the last ``alpha_k``, a Python float).
* **The prox comes from the problem**, as a hyperparameter: ``prox(params,
  step) -> params``, the prox of ``step * h`` (``problem.prox`` of ``lasso``
  or ``sparse_regression``). ``prox=None`` means ``h = 0``: AG for a smooth,
  possibly nonconvex ``f``. The oracle must return the gradient of ``f``
  alone (the problems' oracles do: "the oracle sees the smooth part only").
* **Step**: ``lr`` is ``beta`` and should be ``1/L`` for the ``L`` of the
  oracle's smooth part (``problem.L``; for SCAD/MCP the official code uses
  ``0.99 / max(L_loss, kappa)``, ``kappa = 1/(a-1)`` or ``1/gamma``, the
  concave part's curvature). The default 0.01 is only a placeholder: no
  problem-free value exists. ``lr`` may be a schedule (then ``beta_k`` varies
  and ``lambda_k = beta_k / alpha_k`` follows it).
* **alpha_1 = 1**, as Ghadimi and Lan require (``Gamma_1 = 1``). The official
  code updates ``alpha`` before its first use and so starts at
  ``alpha_1 = 2/(1 + sqrt 5) = 0.618`` (a larger first ``lambda``); this file
  follows the paper.
* The restarting variant of the package ``nonconvexAG`` (reset ``alpha`` to 1
  when the speed ``||x^md_k - x^md_{k-1}||`` drops) and its strong-rule
  screening are not part of this paper's algorithm and are left out.
"""
from __future__ import annotations

import math

from .. import tree
from .base import Optimizer, check_grads, register

DAMPINGS = ("optimal", "ghadimi_lan", "none")


def optimal_damping(alpha_prev):
    """The paper's ``alpha_k`` from ``alpha_{k-1}``: the root in (0, 1) of ``a^2 = (1 - a) alpha_prev^2``."""
    return 2.0 / (1.0 + math.sqrt(1.0 + 4.0 / alpha_prev ** 2))


@register("nonconvex_accelerated_proximal_gradient")
class NonconvexAcceleratedProximalGradient(Optimizer):
    defaults = dict(lr=1e-2, damping="optimal", prox=None)
    paper = dict(title="Accelerated Gradient Methods for Sparse Statistical Learning with Nonconvex Penalties",
                 authors="Yang, Asgharian, Bhatnagar", year=2020, arxiv="2009.10629",
                 family="optimizer-first-order")
    # lambda_k = lr / alpha_k grows like k lr / 2: on Rosenbrock (curvature ~ 1000 at the start) the
    # x-sequence then overshoots with lr = 1e-2; lr = 1e-3 (about 1/L there) is the paper's regime
    descent_hparams = {"rosenbrock": dict(lr=1e-3)}

    def check(self, hp):
        super().check(hp)
        if hp["damping"] not in DAMPINGS:
            raise ValueError(f"{self.name}: damping must be one of {DAMPINGS}, got {hp['damping']!r}")
        if hp["prox"] is not None and not callable(hp["prox"]):
            raise ValueError(f"{self.name}: prox must be None or a callable prox(params, step), "
                             f"got {type(hp['prox']).__name__}")

    def init_slots(self, params):
        return {"x": tree.copy(params), "alpha": 1.0}

    def _damping(self, t, alpha_prev, beta, damping):
        """``(alpha_t, lambda_t)`` for iteration ``t`` (1-based)."""
        if damping == "optimal":
            alpha = 1.0 if t == 1 else optimal_damping(alpha_prev)
            return alpha, beta / alpha
        if damping == "ghadimi_lan":
            return 2.0 / (t + 1.0), t * beta / 2.0
        return 1.0, beta

    def _prox(self, hp, params, step):
        return params if hp["prox"] is None else hp["prox"](params, step)

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        beta = hp["lr"]
        alpha, lam = self._damping(t, state["alpha"], beta, hp["damping"])
        x_ag, x = params, state["x"]
        # x^md_k = (1 - alpha_k) x^ag_{k-1} + alpha_k x_{k-1}
        x_md = tree.zip_map(lambda a, b: (1.0 - alpha) * a + alpha * b, x_ag, x)
        _, g = oracle(x_md)
        check_grads(self.name, x_md, g, t)
        # x_k = prox_{lambda_k h}(x_{k-1} - lambda_k grad f(x^md_k))
        x_new = self._prox(hp, tree.axpy(-lam, g, x), lam)
        # x^ag_k = prox_{beta_k h}(x^md_k - beta_k grad f(x^md_k))
        x_ag_new = self._prox(hp, tree.axpy(-beta, g, x_md), beta)
        return x_ag_new, {"step": t, "x": x_new, "alpha": alpha}
