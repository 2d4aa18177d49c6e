"""An Adaptive and Momental Bound Method for Stochastic Learning.

Jianbang Ding, Xuancheng Ren, Ruixuan Luo and Xu Sun. 2019. arXiv:1910.12249

At the start of training Adam's second moment ``v_hat`` rests on a handful
of gradients, and for coordinates whose first gradients happen to be small
the per-coordinate rate ``alpha / sqrt(v_hat)`` is huge: the paper shows
such spikes in the rates of a Transformer and blames them for unstable
starts (the reason for warmup). AdaMod keeps an exponential moving average
``s_t`` of the rates themselves (a "momental bound") and never lets the
current rate exceed it (the paper's Algorithm 1):

    m_t     = beta1 m_{t-1} + (1 - beta1) g_t
    v_t     = beta2 v_{t-1} + (1 - beta2) g_t^2
    m_hat_t = m_t / (1 - beta1^t),   v_hat_t = v_t / (1 - beta2^t)
    eta_t   = alpha / (sqrt(v_hat_t) + eps)
    s_t     = beta3 s_{t-1} + (1 - beta3) eta_t
    eta_hat = min(eta_t, s_t)
    w_t     = w_{t-1} - eta_hat * m_hat_t

Since ``s_0 = 0``, ``s_t`` grows from ``(1 - beta3) eta_1``: AdaMod starts with
rates ``1 - beta3`` times Adam's and reaches them over ``~1 / (1 - beta3)``
steps, a built-in, per-coordinate warmup. ``beta3 = 0`` is Adam (tested, to
rounding).

Defaults (the paper's and the official lancopku/AdaMod code's): lr = alpha
= 1e-3, beta1 = 0.9, beta2 = 0.999, beta3 = 0.999, eps = 1e-8. (The peer
pytorch_optimizer.AdaMod defaults to betas (0.9, 0.99, 0.9999).)

Two variants, chosen with ``variant``:

* ``"paper"`` (the default): Algorithm 1 as written above;
* ``"official"`` (lancopku/AdaMod and pytorch_optimizer.AdaMod, which the
  golden file checks): Adam's "efficient" form, in which both bias
  corrections are folded into the rate that is averaged and bounded, and
  the raw ``m_t`` is used:

      eta_t = alpha sqrt(1 - beta2^t) / (1 - beta1^t) / (sqrt(v_t) + eps)
      w_t   = w_{t-1} - min(eta_t, s_t) * m_t

  This is not the paper's update: ``s_t`` averages rates that include
  ``1 / (1 - beta1^t)`` (10x at t = 1), so the early steps are larger.

``weight_decay`` is decoupled, ``w <- w - lr weight_decay w`` before the step,
as in the official code ("AdaMod with Decoupled Weight Decay").
"""
from __future__ import annotations

import math

from .. import tree
from ..backend import fuse, xp_of
from .adam import check_adam_hparams
from .base import Optimizer, check_range, register
from .common import bias_correction, decoupled_decay

VARIANTS = ("paper", "official")


@fuse
def moments_kernel(g, m, v, beta1, beta2):
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    return m, v


@fuse
def rate_kernel(v, step, eps, bc2, s, beta3):
    """``eta_t = step / (sqrt(v / bc2) + eps)`` and its moving average ``s_t``."""
    eta = step / ((v / bc2) ** 0.5 + eps)
    s = beta3 * s + (1.0 - beta3) * eta
    return eta, s


@register("adamod")
class AdaMod(Optimizer):
    paper = dict(title="An Adaptive and Momental Bound Method for Stochastic Learning",
                 authors="Ding, Ren, Luo, Sun", year=2019, arxiv="1910.12249",
                 family="optimizer-first-order")
    defaults = dict(lr=1e-3, beta1=0.9, beta2=0.999, beta3=0.999, eps=1e-8, weight_decay=0.0,
                    variant="paper")
    # the momental bound starts at (1 - beta3) = 1e-3 times Adam's rates and needs ~1 / (1 - beta3) = 1000
    # steps to reach them: with lr = 1e-3 the 200 steps of the quadratic descent test barely move
    descent_hparams = {"quadratic": dict(lr=1e-2)}

    def check(self, hp):
        super().check(hp)
        check_adam_hparams(self, hp)
        check_range("beta3", hp["beta3"], 0.0, 1.0, high_open=True, where=self.name)
        if hp["variant"] not in VARIANTS:
            raise ValueError(f"{self.name}: variant must be one of {VARIANTS}, got {hp['variant']!r}")

    def init_slots(self, params):
        return {"m": tree.zeros_like(params), "v": tree.zeros_like(params), "s": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        lr, b1, b2 = hp["lr"], hp["beta1"], hp["beta2"]
        w = decoupled_decay(params, lr, hp["weight_decay"])
        bc1, bc2 = bias_correction(b1, t), bias_correction(b2, t)
        if hp["variant"] == "official":      # eta_t = lr sqrt(bc2) / bc1 / (sqrt(v_t) + eps), times raw m_t
            step, v_scale, m_scale = lr * math.sqrt(bc2) / bc1, 1.0, 1.0
        else:                                # eta_t = lr / (sqrt(v_t / bc2) + eps), times m_t / bc1
            step, v_scale, m_scale = lr, bc2, bc1
        new_w, slots = {}, {"m": {}, "v": {}, "s": {}}
        for k in params:
            m, v = moments_kernel(grads[k], state["m"][k], state["v"][k], b1, b2)
            eta, s = rate_kernel(v, step, hp["eps"], v_scale, state["s"][k], hp["beta3"])
            eta_hat = xp_of(eta).minimum(eta, s)                          # min(eta_t, s_t)
            new_w[k] = w[k] - eta_hat * (m / m_scale)
            slots["m"][k], slots["v"][k], slots["s"][k] = m, v, s
        return new_w, slots
