"""diffGrad: An Optimization Method for Convolutional Neural Networks.

Shiv Ram Dubey, Soumendu Chakraborty, Swalpa Kumar Roy, Snehasis Mukherjee,
Satish Kumar Singh and Bidyut Baran Chaudhuri. IEEE TNNLS 2020.
arXiv:1909.11015

Adam steps the same size whether the gradient of a coordinate is changing
fast (steep, curved region: far from a minimum) or barely changing (flat
region, or close to a minimum, where Adam's momentum makes it overshoot).
diffGrad multiplies Adam's step by a "friction coefficient" computed from
the change of the gradient since the previous step (the paper's Eqs. 7-10,
with ``Delta g_t = g_{t-1} - g_t`` and ``g_0 = 0``):

    m_t     = beta1 m_{t-1} + (1 - beta1) g_t
    v_t     = beta2 v_{t-1} + (1 - beta2) g_t^2
    m_hat_t = m_t / (1 - beta1^t),   v_hat_t = v_t / (1 - beta2^t)
    xi_t    = 1 / (1 + exp(-|g_{t-1} - g_t|))           (the sigmoid of |Delta g_t|)
    w_t     = w_{t-1} - lr xi_t m_hat_t / (sqrt(v_hat_t) + eps)

``xi_t`` lies in ``[0.5, 1)``: half of Adam's step where the gradient does not
change, nearly Adam's step where it changes by much more than 1.

Defaults (the paper's): lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8.

Conventions:

* ``variant="paper"`` (the default) puts ``eps`` outside the root of the
  bias-corrected ``v_hat_t``, as the equations above (and Adam's Algorithm 1);
  ``variant="official"`` is the authors' code (shivram1987/diffGrad) and
  pytorch_optimizer.DiffGrad (which the golden file checks): Adam's
  "efficient" ordering, ``w_t = w_{t-1} - lr sqrt(1 - beta2^t)/(1 - beta1^t)
  xi_t m_t / (sqrt(v_t) + eps)``. The two differ by ``eps`` being scaled by
  ``1 / sqrt(1 - beta2^t)`` (about 31x at t = 1), which is visible in the
  7th digit of early steps. (pytorch_optimizer also adds 1e-15 to ``v_t``
  inside the root; below the golden tolerance.)
* The previous gradient is kept in the slot ``prev_grad`` (zero before the
  first step, so ``xi_1 = sigmoid(|g_1|)``, as in both codes). It is the
  gradient *after* weight decay.
* ``weight_decay`` is coupled L2 (added to the gradient first), as in the
  authors' code.
* ``exp`` is not one of the operators a fused kernel may use, so ``xi_t`` is
  computed outside the fused body; ``1/(1 + exp(-x))`` for ``x >= 0`` cannot
  overflow.
"""
from __future__ import annotations

import math

from .. import tree
from ..backend import fuse, xp_of
from .adam import check_adam_hparams
from .base import Optimizer, register
from .common import bias_correction, l2_gradient

VARIANTS = ("paper", "official")


@fuse
def moments_kernel(g, m, v, beta1, beta2):
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    return m, v


@fuse
def step_kernel(w, xi, m, v, step, eps, bc2):
    """``w - step xi m / (sqrt(v / bc2) + eps)``."""
    return w - step * xi * m / ((v / bc2) ** 0.5 + eps)


def friction(prev_grad, grad):
    """``xi_t = sigmoid(|g_{t-1} - g_t|)``, elementwise, in ``[0.5, 1)``."""
    xp = xp_of(grad)
    return 1.0 / (1.0 + xp.exp(-xp.abs(prev_grad - grad)))


@register("diffgrad")
class DiffGrad(Optimizer):
    paper = dict(title="diffGrad: An Optimization Method for Convolutional Neural Networks",
                 authors="Dubey, Chakraborty, Roy, Mukherjee, Singh, Chaudhuri", year=2020,
                 arxiv="1909.11015", family="optimizer-first-order")
    defaults = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, variant="paper")

    def check(self, hp):
        super().check(hp)
        check_adam_hparams(self, hp)
        if hp["variant"] not in VARIANTS:
            raise ValueError(f"{self.name}: variant must be one of {VARIANTS}, got {hp['variant']!r}")

    def init_slots(self, params):
        return {"m": tree.zeros_like(params), "v": tree.zeros_like(params), "prev_grad": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        g = l2_gradient(grads, params, hp["weight_decay"])
        b1, b2 = hp["beta1"], hp["beta2"]
        bc1, bc2 = bias_correction(b1, t), bias_correction(b2, t)
        if hp["variant"] == "official":
            step, v_scale = hp["lr"] * math.sqrt(bc2) / bc1, 1.0
        else:
            step, v_scale = hp["lr"] / bc1, bc2
        new_w, slots = {}, {"m": {}, "v": {}, "prev_grad": {}}
        for k in params:
            m, v = moments_kernel(g[k], state["m"][k], state["v"][k], b1, b2)
            xi = friction(state["prev_grad"][k], g[k])
            new_w[k] = step_kernel(params[k], xi, m, v, step, hp["eps"], v_scale)
            slots["m"][k], slots["v"][k], slots["prev_grad"][k] = m, v, g[k]
        return new_w, slots
