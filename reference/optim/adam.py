"""Adam: A Method for Stochastic Optimization.

Diederik P. Kingma and Jimmy Ba. ICLR 2015. arXiv:1412.6980

Adam keeps exponential moving averages of the gradient (first moment) and of
its elementwise square (second raw moment), corrects both for their
initialisation at zero, and steps along their ratio (Algorithm 1):

    m_t     = beta1 m_{t-1} + (1 - beta1) g_t
    v_t     = beta2 v_{t-1} + (1 - beta2) g_t^2
    m_hat_t = m_t / (1 - beta1^t)
    v_hat_t = v_t / (1 - beta2^t)
    w_t     = w_{t-1} - lr m_hat_t / (sqrt(v_hat_t) + eps)

Defaults from the paper: lr = 0.001, beta1 = 0.9, beta2 = 0.999, eps = 1e-8.

Conventions: ``eps`` is added *outside* the square root of the
bias-corrected ``v_hat`` (the paper's and torch.optim.Adam's choice; the
paper's "more efficient" reordering, eps added to sqrt(v_t), differs in the
last digits and is not used). ``weight_decay`` adds ``lambda w`` to the
gradient before the moments (coupled L2, torch.optim.Adam's meaning); for
the decoupled form see ``adamw``.

AdaMax (Sec. 7.1 of the paper) replaces the second moment by an infinity norm:
``u_t = max(beta2 u_{t-1}, |g_t|)``, ``w_t = w_{t-1} - (lr / (1 - beta1^t)) m_t / u_t``;
registered as ``adamax`` (defaults lr = 0.002; torch.optim.Adamax adds
``eps`` to the max, ``u_t = max(beta2 u_{t-1}, |g_t| + eps)``, which we follow
so that its trajectories are reproducible; set eps=0 for the paper's form).
"""
from __future__ import annotations

from .. import tree
from ..backend import fuse, xp_of
from .base import Optimizer, check_range, register
from .common import bias_correction, l2_gradient


@fuse
def adam_kernel(w, g, m, v, lr, beta1, beta2, eps, bc1, bc2):
    """One Adam update of one array: the readable line is the GPU kernel."""
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    w = w - lr * (m / bc1) / ((v / bc2) ** 0.5 + eps)
    return w, m, v


def check_adam_hparams(opt, hp):
    """The checks shared by Adam and its descendants."""
    check_range("beta1", hp["beta1"], 0.0, 1.0, high_open=True, where=opt.name)
    check_range("beta2", hp["beta2"], 0.0, 1.0, high_open=True, where=opt.name)
    check_range("eps", hp["eps"], 0.0, where=opt.name)
    check_range("weight_decay", hp["weight_decay"], 0.0, where=opt.name)


@register("adam")
class Adam(Optimizer):
    paper = dict(title="Adam: A Method for Stochastic Optimization", authors="Kingma, Ba", year=2015,
                 arxiv="1412.6980", family="optimizer-first-order")
    defaults = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0)

    def check(self, hp):
        super().check(hp)
        check_adam_hparams(self, hp)

    def init_slots(self, params):
        return {"m": tree.zeros_like(params), "v": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        g = l2_gradient(grads, params, hp["weight_decay"])
        bc1, bc2 = bias_correction(hp["beta1"], t), bias_correction(hp["beta2"], t)
        new_w, new_m, new_v = {}, {}, {}
        for k in params:
            new_w[k], new_m[k], new_v[k] = adam_kernel(params[k], g[k], state["m"][k], state["v"][k],
                                                       hp["lr"], hp["beta1"], hp["beta2"], hp["eps"], bc1, bc2)
        return new_w, {"m": new_m, "v": new_v}


@register("adamax")
class AdaMax(Optimizer):
    """AdaMax, the infinity-norm variant of Adam (same paper, Sec. 7.1)."""
    defaults = dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0)

    def check(self, hp):
        super().check(hp)
        check_adam_hparams(self, hp)

    def init_slots(self, params):
        return {"m": tree.zeros_like(params), "u": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        g = l2_gradient(grads, params, hp["weight_decay"])
        b1, b2, eps = hp["beta1"], hp["beta2"], hp["eps"]
        m = tree.zip_map(lambda m, g: b1 * m + (1.0 - b1) * g, state["m"], g)
        u = tree.zip_map(lambda u, g: xp_of(g).maximum(b2 * u, xp_of(g).abs(g) + eps), state["u"], g)
        step = hp["lr"] / bias_correction(b1, t)
        w = tree.zip_map(lambda w, m, u: w - step * m / u, params, m, u)
        return w, {"m": m, "u": u}
