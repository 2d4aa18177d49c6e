"""Rethinking Adam: A Twofold Exponential Moving Average Approach.

Yizhou Wang, Yue Kang, Can Qin, Huan Wang, Yi Xu, Yulun Zhang, Yun Fu. 2021. arXiv:2106.11514

Adam scales its step by an EMA of the squared *gradients* ``g_t^2``. A
stochastic gradient is its signal plus noise, so ``g_t^2`` carries the
noise variance into the denominator, which then fluctuates from step to step.
AdaMomentum takes a second EMA of the squared *momentum* instead: the
momentum ``m_t`` has already averaged much of the noise away, so the
denominator tracks the magnitude of the averaged direction rather than the
noise (the "twofold" EMA of the title): for pure noise ``E m_t^2 = sigma^2
(1 - beta1) / (1 + beta1)``, a denominator ``sqrt(19)`` times smaller than Adam's
at ``beta1 = 0.9``, so the steps are larger where the signal is weak.
Algorithm (the paper's), with ``eps`` inside the second moment as in AdaBelief:

    m_t     = beta1 m_{t-1} + (1 - beta1) g_t
    v_t     = beta2 v_{t-1} + (1 - beta2) m_t^2 + eps
    m_hat_t = m_t / (1 - beta1^t),   v_hat_t = v_t / (1 - beta2^t)
    theta_t = theta_{t-1} - eta m_hat_t / sqrt(v_hat_t)

Defaults: eta = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8 (the paper's).

Conventions:

* ``eps`` is added to ``v_t`` every step and *stays in the state* (so it
  accumulates into ``v_t`` like AdaBelief's ``s_t``), and no second ``eps`` is
  added after the square root. The paper's algorithm box could not be
  consulted while this file was written; this placement is the paper's as
  reproduced by the public implementations (e.g. one derived from the
  AdaBelief code, which notes "we do not add the last epsilon").
* ``v_t`` averages the squares of the *un-corrected* ``m_t``, while the
  numerator is the bias-corrected ``m_hat_t``. Early on ``m_t`` is small, so the
  first step is ``eta g_1 / sqrt((1 - beta1)^2 g_1^2 + eps / (1 - beta2))``,
  about ``eta sign(g_1) / (1 - beta1)``: ten times Adam's first step at the
  default ``beta1`` (checked by hand in the tests). With a constant gradient
  the step returns to ``eta`` as ``m_t -> g``.
* ``beta1 = 0`` gives ``m_t = g_t``, and with ``eps = 0`` AdaMomentum is Adam
  with ``eps = 0`` bit for bit (tested). ``eps = 0`` divides 0 by 0 on a
  coordinate whose gradients have all been zero, as Adam does.
* ``weight_decay`` is coupled L2 (added to the gradient before the moments),
  as in ``adam``; ``decouple_decay=True`` gives the AdamW form
  (``theta <- (1 - eta lambda) theta`` before the step). Default 0.

No peer library ships AdaMomentum; the tests check hand-computed steps, the
reduction to Adam, and the paper's mechanism in miniature (the noise is filtered
out of the denominator, in closed form, and training is faster at the same lr).
"""
from __future__ import annotations

from .. import tree
from ..backend import fuse
from .adam import check_adam_hparams
from .base import Optimizer, register
from .common import bias_correction, decoupled_decay, l2_gradient

__all__ = ["AdaMomentum", "adamomentum_kernel"]


@fuse
def adamomentum_kernel(w, g, m, v, lr, beta1, beta2, eps, bc1, bc2):
    """One AdaMomentum update of one array: the second EMA is of ``m_t^2``, with ``eps`` inside."""
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * m * m + eps
    w = w - lr * (m / bc1) / ((v / bc2) ** 0.5)
    return w, m, v


@register("adamomentum")
class AdaMomentum(Optimizer):
    paper = dict(title="Rethinking Adam: A Twofold Exponential Moving Average Approach",
                 authors="Wang, Kang, Qin, Wang, Xu, Zhang, Fu", year=2021, arxiv="2106.11514",
                 family="optimizer-first-order")
    defaults = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decouple_decay=False)

    def check(self, hp):
        super().check(hp)
        check_adam_hparams(self, hp)
        if not isinstance(hp["decouple_decay"], bool):
            raise ValueError(f"{self.name}: decouple_decay must be True or False, got {hp['decouple_decay']!r}")

    def init_slots(self, params):
        return {"m": tree.zeros_like(params), "v": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        if hp["decouple_decay"]:
            w, g = decoupled_decay(params, hp["lr"], hp["weight_decay"]), grads
        else:
            w, g = params, l2_gradient(grads, params, hp["weight_decay"])
        bc1, bc2 = bias_correction(hp["beta1"], t), bias_correction(hp["beta2"], t)
        new_w, new_m, new_v = {}, {}, {}
        for k in params:
            new_w[k], new_m[k], new_v[k] = adamomentum_kernel(w[k], g[k], state["m"][k], state["v"][k], hp["lr"],
                                                              hp["beta1"], hp["beta2"], hp["eps"], bc1, bc2)
        return new_w, {"m": new_m, "v": new_v}
