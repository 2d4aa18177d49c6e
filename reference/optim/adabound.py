"""Adaptive Gradient Methods with Dynamic Bound of Learning Rate.

Liangchen Luo, Yuanhao Xiong, Yan Liu and Xu Sun. ICLR 2019. arXiv:1902.09843

Adam's per-coordinate learning rate ``alpha / sqrt(v_t)`` can be extremely
large (coordinates with tiny gradients) or extremely small at the end of
training, and the paper argues that both hurt. AdaBound clips it into a
band ``[eta_l(t), eta_u(t)]`` that starts as ``[0, inf)`` (so the method
begins as Adam) and shrinks to the single value ``alpha*`` (the final SGD
learning rate, ``final_lr``) as ``t`` grows, so the method ends as SGD with
momentum. The paper's Algorithm 2 (AdaBound; AMSBound is the same with
``v_t`` replaced by its running max, Algorithm 3):

    m_t      = beta1 m_{t-1} + (1 - beta1) g_t
    v_t      = beta2 v_{t-1} + (1 - beta2) g_t^2          (AMSBound: vhat_t = max(vhat_{t-1}, v_t))
    eta_hat  = Clip(alpha / sqrt(v_t), eta_l(t), eta_u(t))
    eta_t    = eta_hat / sqrt(t)
    w_t      = w_{t-1} - eta_t * m_t

with the bound functions of Sec. 5: ``eta_l(t) = alpha* (1 - 1/(gamma t + 1))``
and ``eta_u(t) = alpha* (1 + 1/(gamma t))``.

Defaults (the paper's and the official code's): lr = alpha = 1e-3,
final_lr = alpha* = 0.1, gamma = 1e-3, beta1 = 0.9, beta2 = 0.999,
eps = 1e-8.

Two variants, chosen with ``variant``:

* ``"paper"`` (the default): Algorithm 2 as written: no bias correction,
  the ``1/sqrt(t)`` of the analysis, ``eps`` added to ``sqrt(v_t)`` (the
  algorithm has none; ``eps = 0`` gives it exactly, and an all-zero
  gradient history then gives ``alpha / 0 = inf`` clipped to ``eta_u``);
* ``"official"`` (Luolc/AdaBound, the code behind the paper's experiments,
  and pytorch_optimizer.AdaBound, which the golden file checks): Adam's
  bias corrections folded into the rate before the clip, no ``1/sqrt(t)``,
  and ``final_lr`` scaled by ``lr_t / lr_0`` so that a learning-rate
  schedule moves the final SGD rate with it:

      eta_hat = Clip(alpha sqrt(1 - beta2^t) / (1 - beta1^t) / (sqrt(v_t) + eps), eta_l(t), eta_u(t))
      w_t     = w_{t-1} - eta_hat * m_t

  (pytorch_optimizer also adds 1e-15 to ``v_t`` inside the root; on the
  golden problems this changes nothing at the 1e-10 tolerance.)

``weight_decay`` is coupled L2 (added to the gradient before the moments),
as in the official code. ``amsbound=True`` gives AMSBound. Slots: ``m``,
``v`` and, for AMSBound, ``vhat``.
"""
from __future__ import annotations

import math

from .. import tree
from ..backend import fuse, xp_of
from .adam import check_adam_hparams
from .base import Optimizer, check_range, hparam_value, register
from .common import bias_correction, l2_gradient

VARIANTS = ("paper", "official")


@fuse
def moments_kernel(g, m, v, beta1, beta2):
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    return m, v


def bounds(final_lr, gamma, t):
    """``(eta_l(t), eta_u(t))``, the paper's bound functions (Sec. 5)."""
    return final_lr * (1.0 - 1.0 / (gamma * t + 1.0)), final_lr * (1.0 + 1.0 / (gamma * t))


def clipped_rates(v, step, eps, lower, upper):
    """``Clip(step / (sqrt(v) + eps), lower, upper)``, elementwise (the per-coordinate rates)."""
    xp = xp_of(v)
    return xp.clip(step / (v ** 0.5 + eps), lower, upper)


@register("adabound")
class AdaBound(Optimizer):
    paper = dict(title="Adaptive Gradient Methods with Dynamic Bound of Learning Rate",
                 authors="Luo, Xiong, Liu, Sun", year=2019, arxiv="1902.09843",
                 family="optimizer-first-order")
    defaults = dict(lr=1e-3, final_lr=0.1, gamma=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                    weight_decay=0.0, amsbound=False, variant="paper")

    def check(self, hp):
        super().check(hp)
        check_adam_hparams(self, hp)
        check_range("final_lr", hp["final_lr"], 0.0, low_open=True, where=self.name)
        check_range("gamma", hp["gamma"], 0.0, low_open=True, where=self.name)
        if not isinstance(hp["amsbound"], bool):
            raise ValueError(f"{self.name}: amsbound must be True or False, got {hp['amsbound']!r}")
        if hp["variant"] not in VARIANTS:
            raise ValueError(f"{self.name}: variant must be one of {VARIANTS}, got {hp['variant']!r}")

    def init_slots(self, params):
        slots = {"m": tree.zeros_like(params), "v": tree.zeros_like(params)}
        if self.hparams["amsbound"]:
            slots["vhat"] = tree.zeros_like(params)
        return slots

    def rates(self, v, t, hp):
        """The clipped per-coordinate learning rates ``eta_t`` for second moments ``v`` at step ``t``."""
        lr, b1, b2 = hp["lr"], hp["beta1"], hp["beta2"]
        if hp["variant"] == "official":
            lr0 = hparam_value(self.hparams["lr"], 0)
            lower, upper = bounds(hp["final_lr"] * lr / lr0, hp["gamma"], t)
            step = lr * math.sqrt(bias_correction(b2, t)) / bias_correction(b1, t)
            return {k: clipped_rates(v[k], step, hp["eps"], lower, upper) for k in v}
        lower, upper = bounds(hp["final_lr"], hp["gamma"], t)
        return {k: clipped_rates(v[k], lr, hp["eps"], lower, upper) / math.sqrt(t) for k in v}

    def update(self, params, grads, state, t, hp):
        g = l2_gradient(grads, params, hp["weight_decay"])
        slots = {"m": {}, "v": {}}
        for k in params:
            slots["m"][k], slots["v"][k] = moments_kernel(g[k], state["m"][k], state["v"][k],
                                                          hp["beta1"], hp["beta2"])
        v = slots["v"]
        if hp["amsbound"]:
            v = slots["vhat"] = tree.zip_map(lambda a, b: xp_of(a).maximum(a, b), state["vhat"], slots["v"])
        eta = self.rates(v, t, hp)
        new_w = tree.zip_map(lambda w, e, m: w - e * m, params, eta, slots["m"])
        return new_w, slots
