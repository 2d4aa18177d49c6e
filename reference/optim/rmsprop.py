"""RMSprop: divide the gradient by a running average of its recent magnitude.

Tijmen Tieleman and Geoffrey Hinton, Lecture 6.5 ("6e") of the Coursera course
"Neural Networks for Machine Learning", 2012 (unpublished slides). The centered
variant: Alex Graves, "Generating Sequences With Recurrent Neural Networks",
arXiv:1308.0850, 2013. (Not a corpus paper, so it has no catalog
entry.)

AdaGrad's sum of squared gradients only grows, so its steps vanish; RMSprop
replaces the sum by an exponential moving average, so the scale adapts to the
recent gradients. With smoothing constant ``alpha``, (coupled, L2) weight
decay ``lambda`` and momentum ``mu``:

    g_t  = grad f(w_{t-1}) + lambda w_{t-1}
    v_t  = alpha v_{t-1} + (1 - alpha) g_t^2                  (mean square)
    m_t  = alpha m_{t-1} + (1 - alpha) g_t                     (centered only: mean)
    d_t  = sqrt(v_t - m_t^2) + eps   (centered)   or   sqrt(v_t) + eps
    b_t  = mu b_{t-1} + g_t / d_t,   b_0 = 0                   (momentum only)
    w_t  = w_{t-1} - lr b_t          (momentum)   or   w_{t-1} - lr g_t / d_t

The centered form divides by an estimate of the gradient's standard deviation
instead of its root mean square.

Defaults and conventions are torch.optim.RMSprop's (which the golden files
check): lr = 0.01, alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0,
centered = False. ``eps`` is added *outside* the square root (TensorFlow's
RMSprop adds it inside); the moving averages start at zero and are not
bias-corrected; the momentum buffer starts at zero and accumulates the scaled
gradient ``g / d`` (not the raw gradient). Like torch, the centered variance
``v - m^2`` is not clamped: it is >= 0 in exact arithmetic (Cauchy-Schwarz
on the EMA weights), so only rounding could make it negative.
"""
from __future__ import annotations

from .. import tree
from ..backend import fuse
from .base import Optimizer, check_range, register
from .common import l2_gradient


@fuse
def mean_square_kernel(v, g, alpha):
    """``v_t = alpha v_{t-1} + (1 - alpha) g_t^2``."""
    return alpha * v + (1.0 - alpha) * g * g


@fuse
def mean_kernel(m, g, alpha):
    """``m_t = alpha m_{t-1} + (1 - alpha) g_t`` (centered only)."""
    return alpha * m + (1.0 - alpha) * g


@fuse
def scaled_gradient_kernel(g, v, eps):
    """``g_t / (sqrt(v_t) + eps)``."""
    return g / (v ** 0.5 + eps)


@fuse
def centered_scaled_gradient_kernel(g, v, m, eps):
    """``g_t / (sqrt(v_t - m_t^2) + eps)``."""
    return g / ((v - m * m) ** 0.5 + eps)


@fuse
def momentum_kernel(b, u, momentum):
    return momentum * b + u


@register("rmsprop")
class RMSprop(Optimizer):
    defaults = dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False)

    def check(self, hp):
        super().check(hp)
        check_range("alpha", hp["alpha"], 0.0, 1.0, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        check_range("momentum", hp["momentum"], 0.0, 1.0, high_open=True, where=self.name)
        if not isinstance(hp["centered"], bool):
            raise ValueError(f"{self.name}: centered must be True or False, got {hp['centered']!r}")

    def init_slots(self, params):
        slots = {"v": tree.zeros_like(params)}
        if self.hparams["centered"]:
            slots["m"] = tree.zeros_like(params)
        if self.hparams["momentum"]:
            slots["momentum_buffer"] = tree.zeros_like(params)
        return slots

    def update(self, params, grads, state, t, hp):
        g = l2_gradient(grads, params, hp["weight_decay"])
        alpha, eps, mu = hp["alpha"], hp["eps"], hp["momentum"]
        slots = {"v": tree.zip_map(lambda v, gi: mean_square_kernel(v, gi, alpha), state["v"], g)}
        if hp["centered"]:
            slots["m"] = tree.zip_map(lambda m, gi: mean_kernel(m, gi, alpha), state["m"], g)
            u = tree.zip_map(lambda gi, v, m: centered_scaled_gradient_kernel(gi, v, m, eps),
                             g, slots["v"], slots["m"])
        else:
            u = tree.zip_map(lambda gi, v: scaled_gradient_kernel(gi, v, eps), g, slots["v"])
        if mu:
            slots["momentum_buffer"] = tree.zip_map(lambda b, ui: momentum_kernel(b, ui, mu),
                                                    state["momentum_buffer"], u)
            u = slots["momentum_buffer"]
        return tree.axpy(-hp["lr"], u, params), slots
