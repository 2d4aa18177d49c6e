"""AdaGrad: Adaptive Subgradient Methods for Online Learning and Stochastic Optimization.

John Duchi, Elad Hazan and Yoram Singer. JMLR 12 (2011) 2121-2159; COLT 2010.
(Not a corpus paper, so it has no catalog entry; the basis of RMSprop, Adam
and the AMSGrad "long-term memory" argument.)

AdaGrad gives every coordinate its own step size, the base rate divided by
the root of the sum of all the squared gradients that coordinate has seen
(the paper's diagonal version, with its ``delta I + diag(G_t)^{1/2}``):

    g_t   = grad f(w_{t-1}) + lambda w_{t-1}
    lr_t  = lr / (1 + (t - 1) lr_decay)
    s_t   = s_{t-1} + g_t^2,            s_0 = initial_accumulator_value
    w_t   = w_{t-1} - lr_t g_t / (sqrt(s_t) + eps)

Coordinates with large or frequent gradients get small steps, rare ones
large steps; the step sizes only ever shrink.

Defaults and conventions are torch.optim.Adagrad's (which the golden files
check): lr = 0.01, lr_decay = 0, weight_decay = 0, initial_accumulator_value
= 0, eps = 1e-10. ``eps`` (the paper's ``delta``) is added *outside* the square
root, as in the paper. ``weight_decay`` is coupled L2 (added to the gradient
before it is accumulated). ``lr_decay`` is torch's extra ``1 / (1 + (t - 1)
lr_decay)`` schedule on top of ``lr`` (itself a float or a schedule).
"""
from __future__ import annotations

from .. import tree
from ..backend import fuse
from .base import Optimizer, check_range, register
from .common import l2_gradient


@fuse
def adagrad_kernel(w, g, s, lr_t, eps):
    """One AdaGrad update of one array: the readable line is the GPU kernel."""
    s = s + g * g
    w = w - lr_t * g / (s ** 0.5 + eps)
    return w, s


@register("adagrad")
class AdaGrad(Optimizer):
    defaults = dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10)

    def check(self, hp):
        super().check(hp)
        check_range("lr_decay", hp["lr_decay"], 0.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        check_range("initial_accumulator_value", hp["initial_accumulator_value"], 0.0, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)

    def init_slots(self, params):
        # s_0: the sum of squared gradients starts at initial_accumulator_value
        return {"sum": tree.full_like(params, self.hparams["initial_accumulator_value"])}

    def update(self, params, grads, state, t, hp):
        g = l2_gradient(grads, params, hp["weight_decay"])
        lr_t = hp["lr"] / (1.0 + (t - 1) * hp["lr_decay"])
        new_w, new_s = {}, {}
        for k in params:
            new_w[k], new_s[k] = adagrad_kernel(params[k], g[k], state["sum"][k], lr_t, hp["eps"])
        return new_w, {"sum": new_s}
