"""Grams: Gradient Descent with Adaptive Momentum Scaling.

Yang Cao, Xiaoyu Li and Zhao Song. 2024. arXiv:2412.17107

Adam's update takes both its direction and its size from the momentum: after
a turn of the loss surface the momentum still points the old way, and some
coordinates move *uphill* for a while. Cautious optimizers mask those
coordinates out; Grams keeps every coordinate but takes the direction from
the *current* gradient and only the size from Adam's momentum ratio (the
paper's Algorithm 1, with decoupled weight decay):

    m_t     = beta1 m_{t-1} + (1 - beta1) g_t
    v_t     = beta2 v_{t-1} + (1 - beta2) g_t^2
    m_hat_t = m_t / (1 - beta1^t),   v_hat_t = v_t / (1 - beta2^t)
    u_t     = m_hat_t / (sqrt(v_hat_t) + eps)
    w_t     = w_{t-1} - lr (sign(g_t) |u_t| + lambda w_{t-1})

Every coordinate of the step therefore has the sign of ``-g_t`` (or is 0), so
``<g_t, step> <= 0``: to first order no step increases the loss, which is the
descent property the paper proves and contrasts with Adam and the cautious
variants.

Defaults: lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8 (AdamW's, which
the paper builds on), weight_decay = lambda = 0 (the paper's algorithm
takes lambda as an input without a universal value). The peer
pytorch_optimizer.Grams defaults to eps = 1e-6; the golden file passes eps
explicitly.

Conventions (pytorch_optimizer.Grams agrees, and the golden file checks):
eps outside the root of the bias-corrected ``v_hat``; decoupled decay
``w <- w - lr lambda w`` with the decay computed from ``w_{t-1}``;
``sign(0) = 0`` (a coordinate with a zero gradient does not move, apart
from the decay).
"""
from __future__ import annotations

from .. import tree
from ..backend import fuse, xp_of
from .adam import check_adam_hparams
from .base import Optimizer, register
from .common import bias_correction, decoupled_decay


@fuse
def moments_kernel(g, m, v, beta1, beta2, eps, bc1, bc2):
    """Adam's moments and its ratio ``u_t = m_hat / (sqrt(v_hat) + eps)``."""
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    u = (m / bc1) / ((v / bc2) ** 0.5 + eps)
    return u, m, v


@register("grams")
class Grams(Optimizer):
    paper = dict(title="Grams: Gradient Descent with Adaptive Momentum Scaling", authors="Cao, Li, Song",
                 year=2024, arxiv="2412.17107", family="optimizer-first-order")
    defaults = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0)

    def check(self, hp):
        super().check(hp)
        check_adam_hparams(self, hp)

    def init_slots(self, params):
        return {"m": tree.zeros_like(params), "v": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        lr = hp["lr"]
        bc1, bc2 = bias_correction(hp["beta1"], t), bias_correction(hp["beta2"], t)
        w = decoupled_decay(params, lr, hp["weight_decay"])            # w - lr lambda w_{t-1}
        new_w, slots = {}, {"m": {}, "v": {}}
        for k in params:
            g = grads[k]
            u, slots["m"][k], slots["v"][k] = moments_kernel(g, state["m"][k], state["v"][k], hp["beta1"],
                                                             hp["beta2"], hp["eps"], bc1, bc2)
            xp = xp_of(g)
            new_w[k] = w[k] - lr * (xp.sign(g) * xp.abs(u))             # sign(g_t) |u_t|
        return new_w, slots
