"""AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients.

Juntang Zhuang, Tommy Tang, Yifan Ding, Sekhar Tatikonda, Nicha Dvornek,
Xenophon Papademetris and James S. Duncan. NeurIPS 2020. arXiv:2010.07468

Adam divides its momentum by the root of the EMA of g^2. AdaBelief divides
it by the root of the EMA of (g - m)^2: the squared difference between the
gradient observed and its prediction m (the EMA of past gradients). When
the observation agrees with the prediction (the "belief" is strong: a
steady slope) the denominator is small and the step is large; when it does
not (noise, or the curvature flips the gradient) the step is small. The
paper's Algorithm 2:

    m_t     = beta1 m_{t-1} + (1 - beta1) g_t
    s_t     = beta2 s_{t-1} + (1 - beta2) (g_t - m_t)^2 + eps
    m_hat_t = m_t / (1 - beta1^t),   s_hat_t = s_t / (1 - beta2^t)
    w_t     = w_{t-1} - lr m_hat_t / (sqrt(s_hat_t) + eps)

Defaults: lr = 1e-3, beta1 = 0.9, beta2 = 0.999 (the paper's), eps = 1e-16
(the authors' package default since v0.1; the paper's tables use 1e-8 for
some tasks and 1e-16 or 1e-12 for others: eps enters s_t at every step, so
it is the floor of the denominator and, unlike Adam's, matters).

Conventions (pytorch_optimizer.AdaBelief and the authors' adabelief-pytorch
agree with all of them, and the golden file checks them):

* eps appears twice, as in Algorithm 2: added to s_t *inside* the EMA (so
  it accumulates into s_t and is bias-corrected with it) and added to
  sqrt(s_hat_t) outside the root;
* ``weight_decay`` is *decoupled* (the authors' ``weight_decouple=True``,
  their default): ``w <- w - lr weight_decay w`` before the step, as AdamW;
* ``rectify=True`` is the RAdam rectification of the authors' package (off
  by default: Algorithm 2 has none). With rho_inf = 2 / (1 - beta2) - 1,
  rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t): when rho_t >= 5 the step is
  ``lr r_t m_hat_t / (sqrt(s_t) + eps)`` with RAdam's
  ``r_t = sqrt((1 - beta2^t)(rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))``
  (its sqrt(1 - beta2^t) is s_t's bias correction), otherwise the SGD-with-
  momentum step ``lr m_hat_t`` (the package's ``degenerated_to_sgd=True``).
"""
from __future__ import annotations

import math

from .. import tree
from ..backend import fuse
from .adam import check_adam_hparams
from .base import Optimizer, register
from .common import bias_correction, decoupled_decay

#: RAdam's threshold on the length of the approximated simple moving average
RECTIFY_THRESHOLD = 5.0


@fuse
def belief_kernel(g, m, s, beta1, beta2, eps):
    """The two moving averages: ``m_t`` and ``s_t`` (eps added inside, Algorithm 2)."""
    m = beta1 * m + (1.0 - beta1) * g
    d = g - m
    s = beta2 * s + (1.0 - beta2) * d * d + eps
    return m, s


@fuse
def step_kernel(w, m, s, step, eps, bc2):
    """``w - step m / (sqrt(s / bc2) + eps)``: ``step = lr / bc1`` (times ``r_t`` when rectified)."""
    return w - step * m / ((s / bc2) ** 0.5 + eps)


def rectification(beta2, t):
    """RAdam's ``(rho_t, r_t)``; ``r_t`` is ``None`` below the threshold (no adaptive step yet)."""
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    b2t = beta2 ** t
    rho_t = rho_inf - 2.0 * t * b2t / (1.0 - b2t)
    if rho_t < RECTIFY_THRESHOLD:
        return rho_t, None
    r = math.sqrt((1.0 - b2t) * (rho_t - 4.0) / (rho_inf - 4.0) * (rho_t - 2.0) / rho_t
                  * rho_inf / (rho_inf - 2.0))
    return rho_t, r


@register("adabelief")
class AdaBelief(Optimizer):
    paper = dict(title="AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients",
                 authors="Zhuang, Tang, Ding, Tatikonda, Dvornek, Papademetris, Duncan", year=2020,
                 arxiv="2010.07468", family="optimizer-first-order")
    defaults = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-16, weight_decay=0.0, rectify=False)

    def check(self, hp):
        super().check(hp)
        check_adam_hparams(self, hp)
        if not isinstance(hp["rectify"], bool):
            raise ValueError(f"{self.name}: rectify must be True or False, got {hp['rectify']!r}")

    def init_slots(self, params):
        return {"m": tree.zeros_like(params), "s": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        lr, b1, b2, eps = hp["lr"], hp["beta1"], hp["beta2"], hp["eps"]
        w = decoupled_decay(params, lr, hp["weight_decay"])            # w <- w - lr wd w
        bc1, bc2 = bias_correction(b1, t), bias_correction(b2, t)
        new_w, new_m, new_s = {}, {}, {}
        r = None
        if hp["rectify"]:
            _, r = rectification(b2, t)
        for k in params:
            new_m[k], new_s[k] = belief_kernel(grads[k], state["m"][k], state["s"][k], b1, b2, eps)
            if not hp["rectify"]:                                       # Algorithm 2
                new_w[k] = step_kernel(w[k], new_m[k], new_s[k], lr / bc1, eps, bc2)
            elif r is not None:                                         # rectified adaptive step
                new_w[k] = step_kernel(w[k], new_m[k], new_s[k], lr * r / bc1, eps, 1.0)
            else:                                                       # too early: SGD with momentum
                new_w[k] = w[k] - (lr / bc1) * new_m[k]
        return new_w, {"m": new_m, "s": new_s}
