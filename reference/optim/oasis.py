"""Doubly Adaptive Scaled Algorithm for Machine Learning Using Second-Order Information.

Majid Jahani, Sergey Rusakov, Zheng Shi, Peter Richtarik, Michael W. Mahoney, Martin Takac.
2021. arXiv:2109.05198

OASIS is "doubly adaptive": the *direction* is the gradient scaled by a
diagonal estimate of the Hessian (as in AdaHessian, but with the diagonal
itself, not the root of an EMA of its square), and the *step size* adapts to
the local smoothness measured in the norm that diagonal defines (the rule of
Malitsky and Mishchenko's adaptive gradient descent), so there is no
learning rate to tune. With Rademacher probes ``z_k`` (Algorithm 1):

    D_k      = beta2 D_{k-1} + (1 - beta2) z_k * (H(w_k) z_k)             (Hutchinson, Eq. 6)
    Dhat_k   = max(|D_k|, alpha)                                            (elementwise, Eq. 7)
    eta_k    = min( sqrt(1 + theta_{k-1}) eta_{k-1},
                    ||w_k - w_{k-1}||_{Dhat_k} / (2 ||grad F(w_k) - grad F(w_{k-1})||*_{Dhat_k}) )
    w_{k+1}  = w_k - eta_k Dhat_k^{-1} grad F(w_k)
    theta_k  = eta_k / eta_{k-1}

with ``||x||_D = sqrt(x^T D x)`` and its dual ``||x||*_D = sqrt(x^T D^{-1} x)``.
The first step (``k = 0``) uses the given ``eta_0`` (``lr``) and ``D_0``, the
average of ``init_samples`` Hutchinson products at ``w_0``, and sets
``theta_0 = +inf`` (so ``eta_1`` is the smoothness estimate alone). The
truncation ``alpha`` keeps ``Dhat`` positive definite on nonconvex problems
and bounds the step where the curvature vanishes.

On a quadratic with a diagonal Hessian every probe gives ``D = diag H``
exactly, the gradient difference is ``H (w_k - w_{k-1})``, both norms
coincide and ``eta_k = 1/2`` from the second step on: each step halves the
distance to the minimiser whatever the condition number.

Conventions and choices:

* **Defaults.** ``beta2 = 0.99``, ``alpha = 1e-5``, ``lr = eta_0 = 1e-3``,
  ``init_samples = 10``: the paper tunes ``beta2`` and ``alpha`` per
  experiment and gives no single default in the text we had; these are our
  choices, written here so they can be changed.
* **The gradient difference.** The paper's stochastic variant evaluates
  ``grad F_{I_k}(w_{k-1})`` on the current batch ``I_k``; that is a second
  gradient call per step. ``gradient_difference="stored"`` (default) uses the
  gradient stored at the previous step (exact for full-batch oracles, one
  call per step); ``"same_batch"`` calls the step's oracle again at
  ``w_{k-1}`` (the paper's stochastic form).
* **Degenerate steps.** If the gradient did not change (``||grad F(w_k) -
  grad F(w_{k-1})|| = 0``) the smoothness estimate is ``+inf`` and ``eta_k =
  sqrt(1 + theta_{k-1}) eta_{k-1}``; if that is infinite too (the second
  step), ``eta_k = eta_{k-1}``.
* **Probes** live in the state (``seed``; step ``k``'s generator is
  ``default_rng([seed, k])``, the initial ones use ``k = 0``) and come from
  ``reference.curvature.diagonal``; Hessian-vector products from the
  oracle's ``hvp`` (``TypeError`` naming ``hvp`` for a plain oracle).
* ``eta`` and ``theta`` are host floats (each step syncs two scalars).
"""
from __future__ import annotations

import math


from .. import tree
from ..backend import xp_of
from .adahessian import hutchinson_diagonal, require_hvp
from .base import Optimizer, check_grads, check_int, check_range, register

DIFFERENCES = ("stored", "same_batch")


def truncated(D, alpha):
    """``Dhat = max(|D|, alpha)``, elementwise (Eq. 7)."""
    return tree.map(lambda d: xp_of(d).maximum(xp_of(d).abs(d), alpha), D)


def smoothness_step(dw, dg, Dhat):
    """``||dw||_Dhat / (2 ||dg||*_Dhat)`` as a host float (``inf`` when ``dg = 0``)."""
    num = sum(float((Dhat[k] * dw[k] * dw[k]).sum()) for k in Dhat)
    den = sum(float((dg[k] * dg[k] / Dhat[k]).sum()) for k in Dhat)
    return math.inf if den == 0 else 0.5 * math.sqrt(num / den)


@register("oasis")
class OASIS(Optimizer):
    """OASIS with the adaptive step size (Algorithm 1); see the module docstring.

    State: ``D`` (the Hessian-diagonal EMA), ``w_prev`` and ``g_prev`` (the
    previous point and its gradient), ``eta`` and ``theta`` (the last step
    size and ratio), ``seed`` and ``step``.
    """

    paper = dict(title="Doubly Adaptive Scaled Algorithm for Machine Learning Using Second-Order Information",
                 authors="Jahani, Rusakov, Shi, Richtarik, Mahoney, Takac", year=2021, arxiv="2109.05198",
                 family="optimizer-second-order")
    defaults = dict(lr=1e-3, beta2=0.99, alpha=1e-5, init_samples=10, gradient_difference="stored", seed=0)
    scheduled = ()

    def check(self, hp):
        check_range("lr", hp["lr"], 0.0, low_open=True, where=self.name)
        check_range("beta2", hp["beta2"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("alpha", hp["alpha"], 0.0, low_open=True, where=self.name)
        if hp["gradient_difference"] not in DIFFERENCES:
            raise ValueError(f"{self.name}: gradient_difference must be one of {DIFFERENCES}, "
                             f"got {hp['gradient_difference']!r}")
        for name, low in (("init_samples", 1), ("seed", 0)):
            v = hp[name]
            check_int(name, v, low, where=self.name)

    def init_slots(self, params):
        zeros = tree.zeros_like(params)
        return {"D": zeros, "w_prev": zeros, "g_prev": zeros, "eta": float(self.hparams["lr"]),
                "theta": math.inf, "seed": int(self.hparams["seed"])}

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        hp = self.hparams
        require_hvp(self.name, oracle)
        _, g = oracle(params)
        check_grads(self.name, params, g, t)
        seed = state["seed"]
        if t == 1:   # k = 0: D_0 from init_samples probes, the given eta_0, theta_0 = inf
            D = hutchinson_diagonal(oracle, params, seed, 0, hp["init_samples"])
            check_grads(f"{self.name} (Hessian diagonal)", params, D, t)
            eta, theta = float(hp["lr"]), math.inf
        else:        # k >= 1
            probe = hutchinson_diagonal(oracle, params, seed, t - 1)
            check_grads(f"{self.name} (Hessian diagonal)", params, probe, t)
            b2 = hp["beta2"]
            D = tree.zip_map(lambda d, p: b2 * d + (1.0 - b2) * p, state["D"], probe)
            g_prev = state["g_prev"]
            if hp["gradient_difference"] == "same_batch":
                _, g_prev = oracle(state["w_prev"])
                check_grads(self.name, params, g_prev, t)
            Dhat = truncated(D, hp["alpha"])
            grow = math.sqrt(1.0 + state["theta"]) * state["eta"]
            smooth = smoothness_step(tree.sub(params, state["w_prev"]), tree.sub(g, g_prev), Dhat)
            eta = min(grow, smooth)
            if math.isinf(eta):
                eta = state["eta"]
            theta = eta / state["eta"] if state["eta"] > 0 else math.inf
        Dhat = truncated(D, hp["alpha"])
        new_params = tree.zip_map(lambda w, gk, d: w - eta * gk / d, params, g, Dhat)
        return new_params, {"D": D, "w_prev": dict(params), "g_prev": dict(g), "eta": eta, "theta": theta,
                            "seed": seed, "step": t}
