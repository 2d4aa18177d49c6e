"""ANO: Faster is Better in Noisy Landscape.

Adrien Kegreisz. 2025. arXiv:2508.18258

In Adam both the direction and the size of a step come from the momentum.
Under heavy gradient noise, momentum averages opposing gradients and its
magnitude shrinks, so Adam's steps become timid exactly when the landscape
is noisy or moving (reinforcement learning, label noise). Ano *decouples*
them: the momentum only decides the direction (its sign), the size comes
from the current gradient's magnitude, normalised by a Yogi-style second
moment that forgets large values additively rather than multiplicatively
(the paper's Algorithm 1):

    m_k     = beta1 m_{k-1} + (1 - beta1) g_k
    v_k     = beta2 v_{k-1} + (1 - beta2) sign(g_k^2 - v_{k-1}) g_k^2
    v_hat_k = v_k / (1 - beta2^k)
    w_k     = w_{k-1} - lr |g_k| sign(m_k) / (sqrt(v_hat_k) + eps) - lr lambda w_{k-1}

(``v_k`` decreases when ``g_k^2 < v_{k-1}`` and stays positive for beta2 >= 1/2.)
No bias correction is needed on ``m_k``: only its sign is used.

**Anolog** (``logarithmic_schedule=True``) replaces beta1 by the schedule
``beta1_k = 1 - 1 / log(max(k, 2))``, a momentum window that widens like
``log k``, so that beta1 need not be tuned. (At k = 2 this gives
``1 - 1/log 2 = -0.44``, as in the authors' code and the peer; from k = 3 on
it is in (0, 1).)

Defaults (the paper's and the official ano-optimizer package's): lr = 1e-4,
beta1 = 0.92, beta2 = 0.99, eps = 1e-8, weight_decay = lambda = 0.

Conventions: ``eps`` is added outside the root of ``v_hat`` (the paper's
formula and pytorch_optimizer.Ano, which the golden file checks; the
authors' package adds it inside, ``lr / sqrt(v_hat + eps)``, which changes
the steps of coordinates whose ``v_hat`` is below ~eps). Weight decay is
decoupled and uses ``w_{k-1}`` (``w <- w (1 - lr lambda)`` first).
``sign(0) = 0``.
"""
from __future__ import annotations

import math

from .. import tree
from ..backend import xp_of
from .base import Optimizer, check_range, register
from .common import bias_correction, decoupled_decay


def anolog_beta1(k):
    """Anolog's ``beta1_k = 1 - 1 / log(max(k, 2))``."""
    return 1.0 - 1.0 / math.log(max(k, 2))


@register("ano")
class Ano(Optimizer):
    paper = dict(title="ANO: Faster is Better in Noisy Landscape", authors="Kegreisz", year=2025,
                 arxiv="2508.18258", family="optimizer-first-order")
    defaults = dict(lr=1e-4, beta1=0.92, beta2=0.99, eps=1e-8, weight_decay=0.0, logarithmic_schedule=False)
    # each step moves every coordinate by ~lr (|g| / sqrt(v_hat) ~ 1): lr = 1e-4 is meant for deep nets and
    # covers ~0.02 in 200 steps, too little for the unit-scale quadratic of the descent test
    descent_hparams = {"quadratic": dict(lr=1e-2)}

    def check(self, hp):
        super().check(hp)
        check_range("beta1", hp["beta1"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("beta2", hp["beta2"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        if not isinstance(hp["logarithmic_schedule"], bool):
            raise ValueError(f"{self.name}: logarithmic_schedule must be True or False, "
                             f"got {hp['logarithmic_schedule']!r}")

    def init_slots(self, params):
        return {"m": tree.zeros_like(params), "v": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        lr, b2, eps = hp["lr"], hp["beta2"], hp["eps"]
        b1 = anolog_beta1(t) if hp["logarithmic_schedule"] else hp["beta1"]
        bc2 = bias_correction(b2, t)
        w = decoupled_decay(params, lr, hp["weight_decay"])
        new_w, slots = {}, {"m": {}, "v": {}}
        for k in params:
            g, xp = grads[k], xp_of(grads[k])
            m = b1 * state["m"][k] + (1.0 - b1) * g                                   # m_k
            g2 = g * g
            v = b2 * state["v"][k] + (1.0 - b2) * xp.sign(g2 - state["v"][k]) * g2    # v_k (Yogi-style)
            new_w[k] = w[k] - lr * (xp.abs(g) * xp.sign(m)) / ((v / bc2) ** 0.5 + eps)
            slots["m"][k], slots["v"][k] = m, v
        return new_w, slots
