"""The AdEMAMix Optimizer: Better, Faster, Older.

Matteo Pagliardini, Pierre Ablin, David Grangier. ICLR 2025. arXiv:2409.03137

One exponential moving average of the gradients cannot both weigh the
immediate past heavily and keep a non-negligible weight on gradients
thousands of steps old. AdEMAMix is AdamW whose numerator *mixes two EMAs*:
Adam's fast, bias-corrected ``m1`` (``beta1 = 0.9``) and a slow ``m2``
(``beta3 = 0.9999``, a half-life of ~7000 steps), weighted by ``alpha``
(Algorithm 1, with ``lambda`` the decoupled weight decay):

    m1_t = beta1 m1_{t-1} + (1 - beta1) g_t,     m1_hat_t = m1_t / (1 - beta1^t)
    m2_t = beta3 m2_{t-1} + (1 - beta3) g_t                       (no bias correction)
    nu_t = beta2 nu_{t-1} + (1 - beta2) g_t^2,   nu_hat_t = nu_t / (1 - beta2^t)
    theta_t = theta_{t-1} - eta ( (m1_hat_t + alpha m2_t) / (sqrt(nu_hat_t) + eps) + lambda theta_{t-1} )

The slow EMA is not bias-corrected on purpose: early on it is small, which
is part of what keeps the start stable. For long runs the paper also warms
up ``alpha`` and ``beta3`` over ``T_{alpha,beta3}`` steps (the paper's schedulers):

    alpha_t = min(t alpha / T, alpha)                                   (linear)
    beta3_t = min( exp( ln(beta1) ln(beta3) / ((1 - t/T) ln(beta3) + (t/T) ln(beta1)) ), beta3 )

The ``beta3`` scheduler is linear in the *half-life* ``ln(0.5)/ln(beta)``
(from beta1's half-life at t = 0 to beta3's at t = T): a linear schedule on
``beta3`` itself would spend almost all the warmup at short half-lives.
With ``t_alpha_beta3 = None`` (the default) both are constant. The paper
sets ``T_{alpha,beta3}`` to the total number of iterations in its LLM runs.

Defaults: lr = 1e-3, beta1 = 0.9, beta2 = 0.999, beta3 = 0.9999, eps = 1e-8
(the paper's); alpha = 5 (the paper uses alpha in [4, 10], 5 or 8 in most
runs; 5 is pytorch_optimizer's default too); weight_decay = 0 (the paper
tunes lambda per task, 0.1 in its LLM runs).

Conventions:

* ``eps`` outside the square root of the bias-corrected ``nu``, as in Adam.
* Weight decay is decoupled and scaled by ``lr`` (AdamW's convention, the
  ``lambda theta`` inside the ``eta ( ... )`` above): ``theta <- theta - lr
  lambda theta`` first, then the step. So ``alpha = 0`` is ``adamw`` bit for bit
  (tested), and additionally ``weight_decay = 0`` is ``adam``.
* ``t`` in the schedulers is the 1-based step (the official code's and
  pytorch_optimizer's ``step`` after incrementing). The official code takes
  ``log(beta + 1e-8)`` in the half-life; the paper's closed form above, which
  pytorch_optimizer also uses, has no such offset, and is what is computed here.
  ``beta1 = 0`` is handled as the limit of the closed form, ``beta3^(T/t)``.
* One warmup length for both ``alpha`` and ``beta3`` (the paper's single
  ``T_{alpha,beta3}``; the official code allows two).

Peer: pytorch_optimizer.AdEMAMix (``weight_decouple=True``), checked to 1e-10
with and without the schedulers in ``tests/test_momentum_family.py``.
"""
from __future__ import annotations

import math

from .. import tree
from ..backend import fuse
from .adam import check_adam_hparams
from .base import Optimizer, check_range, register
from .common import bias_correction, decoupled_decay

__all__ = ["AdEMAMix", "alpha_schedule", "beta3_schedule", "ademamix_kernel"]


def alpha_schedule(t, alpha, t_alpha_beta3):
    """``alpha_t = min(t alpha / T, alpha)`` (``alpha`` itself when ``T`` is None)."""
    if t_alpha_beta3 is None:
        return alpha
    return min(t * alpha / t_alpha_beta3, alpha)


def beta3_schedule(t, beta1, beta3, t_alpha_beta3):
    """``beta3_t``: linear in half-life from ``beta1`` (t = 0) to ``beta3`` (t = T), then ``beta3``."""
    if t_alpha_beta3 is None:
        return beta3
    a = t / t_alpha_beta3
    if beta1 == 0.0:   # the limit of the closed form as ln(beta1) -> -inf
        return 0.0 if a == 0.0 else min(beta3 ** (1.0 / a), beta3)
    log_b1, log_b3 = math.log(beta1), math.log(beta3)
    return min(math.exp(log_b1 * log_b3 / ((1.0 - a) * log_b3 + a * log_b1)), beta3)


@fuse
def ademamix_kernel(w, g, m1, m2, nu, lr, beta1, beta2, beta3, alpha, eps, bc1, bc2):
    """One AdEMAMix update of one array (weight decay already applied to ``w``)."""
    m1 = beta1 * m1 + (1.0 - beta1) * g
    m2 = beta3 * m2 + (1.0 - beta3) * g
    nu = beta2 * nu + (1.0 - beta2) * g * g
    w = w - lr * (m1 / bc1 + alpha * m2) / ((nu / bc2) ** 0.5 + eps)
    return w, m1, m2, nu


@register("ademamix")
class AdEMAMix(Optimizer):
    paper = dict(title="The AdEMAMix Optimizer: Better, Faster, Older",
                 authors="Pagliardini, Ablin, Grangier", year=2025, arxiv="2409.03137",
                 family="optimizer-first-order")
    defaults = dict(lr=1e-3, beta1=0.9, beta2=0.999, beta3=0.9999, alpha=5.0, eps=1e-8, weight_decay=0.0,
                    t_alpha_beta3=None)

    def check(self, hp):
        super().check(hp)
        check_adam_hparams(self, hp)
        check_range("beta3", hp["beta3"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("alpha", hp["alpha"], 0.0, where=self.name)
        if hp["t_alpha_beta3"] is not None:
            check_range("t_alpha_beta3", hp["t_alpha_beta3"], 0.0, low_open=True, where=self.name)

    def init_slots(self, params):
        return {"m1": tree.zeros_like(params), "m2": tree.zeros_like(params), "nu": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        T = hp["t_alpha_beta3"]
        alpha_t = alpha_schedule(t, hp["alpha"], T)
        beta3_t = beta3_schedule(t, hp["beta1"], hp["beta3"], T)
        bc1, bc2 = bias_correction(hp["beta1"], t), bias_correction(hp["beta2"], t)
        w = decoupled_decay(params, hp["lr"], hp["weight_decay"])          # theta - eta lambda theta
        new = {"w": {}, "m1": {}, "m2": {}, "nu": {}}
        for k in params:
            new["w"][k], new["m1"][k], new["m2"][k], new["nu"][k] = ademamix_kernel(
                w[k], grads[k], state["m1"][k], state["m2"][k], state["nu"][k],
                hp["lr"], hp["beta1"], hp["beta2"], beta3_t, alpha_t, hp["eps"], bc1, bc2)
        return new["w"], {"m1": new["m1"], "m2": new["m2"], "nu": new["nu"]}
