"""Revisiting LARS for Large Batch Training Generalization of Neural Networks.

Khoi Do, Duong Nguyen, Hoa Nguyen, Long Tran-Thanh, Nguyen-Hoang Tran, Quoc-Viet Pham. 2023.
arXiv:2309.14053

**LARS** (You, Gitman, Ginsburg, "Large Batch Training of Convolutional
Networks", 2017; registered here as ``lars``, the baseline) gives every layer
``l`` its own learning rate, proportional to the ratio of its weight norm to
its gradient norm (the *trust ratio*), so that every layer moves by about the
same *relative* amount whatever its gradient scale:

    tau_l   = eta ||w_l|| / (||g_l|| + beta ||w_l||)             (eta: trust coefficient)
    u_l     = tau_l (g_l + beta w_l)                             (beta: weight decay)
    b_l     = mu b_l + u_l                                       (heavy ball, b_0 = 0)
    w_l     = w_l - lr b_l

In large-batch training LARS is run with a learning-rate *warm-up*. The
paper finds that warm-up keeps the early steps small exactly when the trust
ratios are largest and the iterate is attracted to sharp minimisers, and
replaces it by a time-varying factor on the trust ratio, **TVLARS**:

    phi(t)  = 1 / (alpha + exp(lambda (t - d_e))) + gamma_min
    tau_l   = phi(t) eta ||w_l|| / (||g_l|| + beta ||w_l||)

``phi`` is a decreasing sigmoid: about ``1/alpha + gamma_min`` while
``t << d_e`` (a large ratio: exploration, no warm-up), dropping around the
delay ``d_e`` at a rate set by ``lambda``, and settling at the floor
``gamma_min`` (LARS with a smaller coefficient: the later, stable phase).

Caveat on the source. The paper's algorithm box was not available while this
file was written; the update above combines the paper's ``phi`` (as quoted in
the paper's summaries) with the LARS step, and the defaults are those of the
authors' code (github.com/KhoiDOO/tvlars, ``opt/tvlars.py``), which
hard-codes ``alpha = 0.1``, ``d_e = 0`` (with ``t`` the 1-based step),
``gamma_min = 0`` and uses ``lambda = 1e-3``, ``eta = 1e-3``,
``weight_decay = 5e-4``, ``momentum = 0.9``, and ``lr = 1`` in its README runs.
That code also (i) divides by ``||g + beta w||`` instead of ``||g|| + beta ||w||``
and (ii) clamps both norms to ``[0, 10]``; neither is reproduced here: the
trust ratio is You et al.'s, so that ``phi = 1`` is LARS exactly.

Conventions shared by ``lars`` and ``tvlars``:

* ``t`` is the 1-based step; ``phi`` is evaluated once per step on the host.
* Where ``||w_l|| = 0`` or the denominator is 0 the ratio is 1 (torch-LARS
  implementations and pytorch_optimizer.LARS).
* ``lr`` multiplies the momentum buffer (torch style), not the increment as in
  You et al.'s Algorithm 1 (``b = mu b + lr tau u``); identical for a
  constant ``lr``, different under a schedule.
* ``exclude_vectors`` (default False: every tensor is a layer, as in You et al.
  and the TVLARS code): when True, tensors with fewer than 2 dimensions
  (biases, norm scales) take a plain momentum-SGD step with no weight decay and
  no trust ratio (pytorch_optimizer.LARS's behaviour).
* ``alpha = 0, lambda = 0, gamma_min = 0`` gives ``phi = 1`` and TVLARS is LARS
  bit for bit (tested).

Peer: pytorch_optimizer.LARS (``exclude_vectors=True``), checked to 1e-10 in
``tests/test_momentum_family.py``, for ``lars`` and for ``tvlars`` with
``phi = 1``; ``phi`` itself is checked against its closed form.
"""
from __future__ import annotations

import math

from .. import tree
from ..backend import fuse, xp_of
from .base import Optimizer, check_range, register

__all__ = ["LARS", "TVLARS", "time_varying_factor", "trust_ratio"]


def time_varying_factor(t, alpha, lmbda, delay, gamma_min):
    """``phi(t) = 1 / (alpha + exp(lambda (t - d_e))) + gamma_min`` (a Python float)."""
    exponent = lmbda * (t - delay)
    if exponent > 700.0:                          # exp overflows; 1 / (alpha + inf) = 0
        return gamma_min
    return 1.0 / (alpha + math.exp(exponent)) + gamma_min


def trust_ratio(w, g, eta, weight_decay):
    """``eta ||w|| / (||g|| + beta ||w||)`` as a 0-d array, 1 where either norm term is 0."""
    xp = xp_of(w)
    w_norm = xp.sqrt(xp.vdot(w.ravel(), w.ravel()))
    g_norm = xp.sqrt(xp.vdot(g.ravel(), g.ravel()))
    denom = g_norm + weight_decay * w_norm
    ok = (w_norm > 0) & (denom > 0)
    return xp.where(ok, eta * w_norm / xp.where(ok, denom, 1.0), 1.0).astype(w.dtype)


@fuse
def _lars_kernel(w, g, b, ratio, lr, momentum, weight_decay):
    b = momentum * b + (g + weight_decay * w) * ratio      # b = mu b + tau (g + beta w)
    return w - lr * b, b


def _check_lars(opt, hp):
    check_range("momentum", hp["momentum"], 0.0, 1.0, high_open=True, where=opt.name)
    check_range("weight_decay", hp["weight_decay"], 0.0, where=opt.name)
    check_range("trust_coefficient", hp["trust_coefficient"], 0.0, low_open=True, where=opt.name)
    if not isinstance(hp["exclude_vectors"], bool):
        raise ValueError(f"{opt.name}: exclude_vectors must be True or False, got {hp['exclude_vectors']!r}")


def lars_update(params, grads, buffers, hp, phi):
    """One LARS step with the trust ratio multiplied by ``phi``; returns ``(params, buffers)``."""
    new_w, new_b = {}, {}
    for k, w in params.items():
        g = grads[k]
        if hp["exclude_vectors"] and w.ndim < 2:           # plain momentum SGD, no decay, no ratio
            new_w[k], new_b[k] = _lars_kernel(w, g, buffers[k], 1.0, hp["lr"], hp["momentum"], 0.0)
            continue
        ratio = trust_ratio(w, g, phi * hp["trust_coefficient"], hp["weight_decay"])
        new_w[k], new_b[k] = _lars_kernel(w, g, buffers[k], ratio, hp["lr"], hp["momentum"],
                                          hp["weight_decay"])
    return new_w, new_b


@register("lars")
class LARS(Optimizer):
    """LARS (You, Gitman, Ginsburg 2017), the baseline of TVLARS (catalogued under ``tvlars``)."""
    defaults = dict(lr=1.0, momentum=0.9, weight_decay=5e-4, trust_coefficient=1e-3, exclude_vectors=False)

    def check(self, hp):
        super().check(hp)
        _check_lars(self, hp)

    def init_slots(self, params):
        return {"momentum_buffer": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        w, b = lars_update(params, grads, state["momentum_buffer"], hp, 1.0)
        return w, {"momentum_buffer": b}


@register("tvlars")
class TVLARS(Optimizer):
    paper = dict(title="Revisiting LARS for Large Batch Training Generalization of Neural Networks",
                 authors="Do, Nguyen, Nguyen, Tran-Thanh, Tran, Pham", year=2023, arxiv="2309.14053",
                 family="optimizer-first-order")
    defaults = dict(lr=1.0, momentum=0.9, weight_decay=5e-4, trust_coefficient=1e-3, alpha=0.1, lmbda=1e-3,
                    delay=0.0, gamma_min=0.0, exclude_vectors=False)

    def check(self, hp):
        super().check(hp)
        _check_lars(self, hp)
        check_range("alpha", hp["alpha"], 0.0, where=self.name)
        check_range("lmbda", hp["lmbda"], 0.0, where=self.name)
        check_range("delay", hp["delay"], 0.0, where=self.name)
        check_range("gamma_min", hp["gamma_min"], 0.0, where=self.name)

    def init_slots(self, params):
        return {"momentum_buffer": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        phi = time_varying_factor(t, hp["alpha"], hp["lmbda"], hp["delay"], hp["gamma_min"])
        w, b = lars_update(params, grads, state["momentum_buffer"], hp, phi)
        return w, {"momentum_buffer": b}
