"""Stochastic gradient descent with momentum, Nesterov momentum, dampening and weight decay.

Robbins and Monro (1951); heavy-ball momentum: Polyak (1964); the Nesterov
form used in deep learning: Sutskever, Martens, Dahl and Hinton, "On the
importance of initialization and momentum in deep learning", ICML 2013.
(The basis of the corpus, not itself a corpus paper, so it has no catalog entry.)

With momentum ``mu``, dampening ``d`` and (coupled, L2) weight decay ``lambda``:

    g_t   = grad f(w_{t-1}) + lambda w_{t-1}
    b_t   = g_t                            if t = 1
          = mu b_{t-1} + (1 - d) g_t       otherwise
    u_t   = g_t + mu b_t  (nesterov)   or   b_t
    w_t   = w_{t-1} - lr u_t

Convention (torch.optim.SGD's, which the golden files check): the buffer
starts at the first gradient itself, not at ``(1 - d) g_1``; Nesterov needs
``mu > 0`` and ``d = 0``. With ``mu = 0`` this is plain SGD and keeps no slot.
"""
from __future__ import annotations

from .. import tree
from ..backend import fuse
from .base import Optimizer, check_range, register
from .common import l2_gradient


@fuse
def _momentum_buffer(b, g, momentum, one_minus_dampening):
    return momentum * b + one_minus_dampening * g


@register("sgd")
class SGD(Optimizer):
    defaults = dict(lr=1e-2, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0)
    # the default lr diverges on Rosenbrock from (-1.2, 1): |grad| ~ 230, curvature ~ 1000 > 2 / lr
    descent_hparams = {"rosenbrock": dict(lr=1e-3)}

    def check(self, hp):
        super().check(hp)
        check_range("momentum", hp["momentum"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("dampening", hp["dampening"], 0.0, 1.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        if not isinstance(hp["nesterov"], bool):
            raise ValueError(f"{self.name}: nesterov must be True or False, got {hp['nesterov']!r}")
        if hp["nesterov"] and (hp["momentum"] <= 0 or hp["dampening"] != 0):
            raise ValueError(f"{self.name}: nesterov=True needs momentum > 0 and dampening = 0, "
                             f"got momentum={hp['momentum']}, dampening={hp['dampening']}")

    def init_slots(self, params):
        return {"momentum_buffer": tree.zeros_like(params)} if self.hparams["momentum"] else {}

    def update(self, params, grads, state, t, hp):
        g = l2_gradient(grads, params, hp["weight_decay"])
        mu = hp["momentum"]
        if mu == 0.0:
            return tree.axpy(-hp["lr"], g, params), {}
        if t == 1:
            buf = g
        else:
            buf = tree.zip_map(lambda b, gi: _momentum_buffer(b, gi, mu, 1.0 - hp["dampening"]),
                               state["momentum_buffer"], g)
        u = tree.axpy(mu, buf, g) if hp["nesterov"] else buf
        return tree.axpy(-hp["lr"], u, params), {"momentum_buffer": buf}
