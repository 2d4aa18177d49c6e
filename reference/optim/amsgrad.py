"""On the Convergence of Adam and Beyond.

Sashank J. Reddi, Satyen Kale and Sanjiv Kumar. ICLR 2018. arXiv:1904.09237

Adam's exponential moving average of g^2 forgets large, rare gradients
quickly, so its effective step ``alpha_t / sqrt(v_t)`` can *grow* between
steps; the paper builds an online convex problem on which Adam therefore
converges to the worst point (its Theorem 1: on x in [-1, 1], ``f_t(x) = C x``
when ``t mod 3 == 1`` and ``-x`` otherwise, C > 2; the optimum is x = -1 but
Adam with beta1 = 0, beta2 = 1/(1 + C^2) drifts to +1). AMSGrad gives the
second moment a long-term memory by never letting it decrease
(Algorithm 2):

    m_t     = beta1_t m_{t-1} + (1 - beta1_t) g_t,   beta1_t = beta1 * beta1_decay^(t-1)
    v_t     = beta2 v_{t-1} + (1 - beta2) g_t^2
    vhat_t  = max(vhat_{t-1}, v_t)
    alpha_t = alpha / sqrt(t)
    w_t     = w_{t-1} - alpha_t m_t / (sqrt(vhat_t) + eps)

(the paper then projects onto the feasible set; here there is none, and the
counterexample in the tests projects onto [-1, 1] after each step).

Three variants, chosen with ``variant``:

* ``"paper"`` (the default, Algorithm 2 as written): no bias correction,
  ``alpha_t = lr / sqrt(t)``, optional decay of beta1 (the paper's
  convergence theorem uses ``beta1_t = beta1 lambda^(t-1)``; ``beta1_decay``
  is that ``lambda``; the default 1 keeps beta1 constant, as in Adam).
* ``"torch"`` (torch.optim.Adam(amsgrad=True), the widely used form that the
  golden files check): Adam's bias corrections and a constant ``lr``; the max
  is taken over the *raw* ``v_t`` and the bias correction applied afterwards:
  ``w_t = w_{t-1} - lr (m_t / (1 - beta1^t)) / (sqrt(vhat_t / (1 - beta2^t)) + eps)``.
  Needs ``beta1_decay = 1``.
* ``"adamnc"`` (the paper's AdamNC): Adam with a non-constant
  ``beta2_t = 1 - 1/t``, so that ``v_t`` is the plain average of all squared
  gradients so far (AdaGrad's memory), no max (``vhat_t = v_t``),
  ``alpha_t = lr / sqrt(t)``, no bias correction, beta1 as in ``"paper"``;
  ``beta2`` is ignored.

Conventions: the paper has no ``eps``; we add it *outside* the square root
as Adam and torch do (default 1e-8; ``eps=0`` gives Algorithm 2 exactly,
and 0/0 for a coordinate whose gradients have all been zero).
``weight_decay`` is coupled L2 (added to the gradient before the moments),
torch.optim.Adam's meaning. A scheduled ``lr`` (a callable of the step index)
is ``alpha`` before the ``1 / sqrt(t)`` of the paper variants. Slots: ``m``,
``v`` and ``vhat`` (the running max; absent for AdamNC). Defaults lr = 0.001,
beta1 = 0.9, beta2 = 0.999 as in Adam (the paper's experiments tune them).
"""
from __future__ import annotations

import math

from .. import tree
from ..backend import fuse, xp_of
from .adam import check_adam_hparams
from .base import Optimizer, check_range, register
from .common import bias_correction, l2_gradient

VARIANTS = ("paper", "torch", "adamnc")


@fuse
def moments_kernel(g, m, v, beta1, beta2):
    """The two moving averages: ``m_t`` and ``v_t``."""
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    return m, v


@fuse
def step_kernel(w, m, vhat, lr, eps, bc1, bc2):
    """``w - lr (m / bc1) / (sqrt(vhat / bc2) + eps)``; ``bc1 = bc2 = 1`` without bias correction."""
    return w - lr * (m / bc1) / ((vhat / bc2) ** 0.5 + eps)


@register("amsgrad")
class AMSGrad(Optimizer):
    paper = dict(title="On the Convergence of Adam and Beyond", authors="Reddi, Kale, Kumar", year=2018,
                 arxiv="1904.09237", family="optimizer-first-order")
    defaults = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, variant="paper",
                    beta1_decay=1.0)

    def check(self, hp):
        super().check(hp)
        check_adam_hparams(self, hp)
        check_range("beta1_decay", hp["beta1_decay"], 0.0, 1.0, low_open=True, where=self.name)
        if hp["variant"] not in VARIANTS:
            raise ValueError(f"{self.name}: variant must be one of {VARIANTS}, got {hp['variant']!r}")
        if hp["variant"] == "torch" and hp["beta1_decay"] != 1.0:
            raise ValueError(f"{self.name}: variant='torch' has a constant beta1, so beta1_decay must be 1, "
                             f"got {hp['beta1_decay']!r}")

    def init_slots(self, params):
        slots = {"m": tree.zeros_like(params), "v": tree.zeros_like(params)}
        if self.hparams["variant"] != "adamnc":
            slots["vhat"] = tree.zeros_like(params)
        return slots

    def update(self, params, grads, state, t, hp):
        g = l2_gradient(grads, params, hp["weight_decay"])
        variant = hp["variant"]
        beta1 = hp["beta1"] * hp["beta1_decay"] ** (t - 1)           # beta1_t
        beta2 = 1.0 - 1.0 / t if variant == "adamnc" else hp["beta2"]  # beta2_t
        if variant == "torch":
            lr, bc1, bc2 = hp["lr"], bias_correction(beta1, t), bias_correction(beta2, t)
        else:
            lr, bc1, bc2 = hp["lr"] / math.sqrt(t), 1.0, 1.0           # alpha_t = alpha / sqrt(t)
        new_w, slots = {}, {"m": {}, "v": {}}
        if variant != "adamnc":
            slots["vhat"] = {}
        for k in params:
            m, v = moments_kernel(g[k], state["m"][k], state["v"][k], beta1, beta2)
            if variant == "adamnc":
                vhat = v
            else:
                vhat = xp_of(v).maximum(state["vhat"][k], v)          # vhat_t = max(vhat_{t-1}, v_t)
                slots["vhat"][k] = vhat
            slots["m"][k], slots["v"][k] = m, v
            new_w[k] = step_kernel(params[k], m, vhat, lr, hp["eps"], bc1, bc2)
        return new_w, slots
