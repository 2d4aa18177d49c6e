"""Adaptivity without Compromise: A Momentumized, Adaptive, Dual Averaged Gradient Method for Stochastic Optimization.

Aaron Defazio, Samy Jelassi. JMLR 23(144), 2022. arXiv:2101.11075

MADGRAD is AdaGrad turned into a *dual averaging* method, with two changes
that make it work on deep networks: the gradients are weighted by an
increasing ``lambda_k = gamma_k sqrt(k + 1)`` (later gradients count more,
which makes the implicit step size stop shrinking like AdaGrad's), the
denominator is a **cube** root instead of a square root (which is what keeps
the effective step size balanced with those weights), and momentum enters
by averaging the iterate with the dual-averaging point instead of
through a momentum buffer (Algorithm 1, k = 0, 1, ...):

    lambda_k  = gamma_k sqrt(k + 1)
    s_{k+1}   = s_k + lambda_k g_k                               (weighted gradient sum)
    nu_{k+1}  = nu_k + lambda_k g_k * g_k                        (weighted squared sum)
    z_{k+1}   = x_0 - s_{k+1} / (nu_{k+1}^{1/3} + eps)           (dual averaging point)
    x_{k+1}   = (1 - c_{k+1}) x_k + c_{k+1} z_{k+1}              (momentum by averaging)

with ``s_0 = nu_0 = 0`` and ``x_0`` the initial point, which dual averaging
always steps from. The hyperparameter ``momentum`` is ``1 - c`` (so
``momentum = 0.9`` is ``c = 0.1``, the paper's and the official code's
default; ``momentum = 0`` gives ``x_{k+1} = z_{k+1}``, plain dual averaging).

Defaults (the paper's and the official ``madgrad`` package's): lr (gamma) =
1e-2, momentum = 0.9, eps = 1e-6, weight_decay = 0.

Conventions:

* Weight decay: ``weight_decay`` adds ``lambda x_k`` to the gradient (L2, the
  official default; the paper recommends little or none). With
  ``decouple_decay=True`` it is instead ``x_{k+1} -= lr lambda x_k`` after the
  step (the official code's experimental AdamW-style option).
* ``add_eps_to_lr``: the official code (and pytorch_optimizer, which copies it)
  uses ``gamma + eps`` instead of ``gamma`` wherever the step size enters
  (``lambda_k`` and the decoupled decay), "for stability". The paper has
  ``gamma``, which is the default here; ``add_eps_to_lr=True`` reproduces the
  official trajectories (both settings are checked against the peers).
* ``eps = 0``: where ``nu`` is still 0 the denominator is taken as infinite
  (``z = x_0``, no movement), as in the official code, instead of 0/0.
* The official code does not store ``x_0`` when ``momentum = 0`` (it
  reconstructs it as ``x_k + s_k / (nu_k^{1/3} + eps)``); here ``x_0`` is always
  a slot, as in the algorithm. Slots: ``s``, ``nu``, ``x0``.

Peers: ``madgrad.MADGRAD`` (official, facebookresearch/madgrad) and
pytorch_optimizer.MADGRAD, checked to 1e-10 in ``tests/test_momentum_family.py``.
"""
from __future__ import annotations

import math

from .. import tree
from ..backend import fuse, xp_of
from .base import Optimizer, check_range, register
from .common import l2_gradient

__all__ = ["MADGRAD", "madgrad_kernel"]


@fuse
def _accumulate(g, s, nu, lam):
    s = s + lam * g                      # s_{k+1}  = s_k + lambda_k g_k
    nu = nu + lam * g * g                # nu_{k+1} = nu_k + lambda_k g_k^2
    return s, nu


@fuse
def madgrad_kernel(x, x0, s, rms, momentum):
    """``z = x0 - s / rms`` and ``x <- momentum x + (1 - momentum) z`` (``rms = nu^(1/3) + eps``)."""
    z = x0 - s / rms
    return momentum * x + (1.0 - momentum) * z


@register("madgrad")
class MADGRAD(Optimizer):
    paper = dict(title="Adaptivity without Compromise: A Momentumized, Adaptive, Dual Averaged Gradient "
                       "Method for Stochastic Optimization",
                 authors="Defazio, Jelassi", year=2022, arxiv="2101.11075", family="optimizer-first-order")
    defaults = dict(lr=1e-2, momentum=0.9, eps=1e-6, weight_decay=0.0, decouple_decay=False,
                    add_eps_to_lr=False)

    def check(self, hp):
        super().check(hp)
        check_range("momentum", hp["momentum"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        for flag in ("decouple_decay", "add_eps_to_lr"):
            if not isinstance(hp[flag], bool):
                raise ValueError(f"{self.name}: {flag} must be True or False, got {hp[flag]!r}")

    def init_slots(self, params):
        return {"s": tree.zeros_like(params), "nu": tree.zeros_like(params), "x0": tree.copy(params)}

    def update(self, params, grads, state, t, hp):
        gamma = hp["lr"] + hp["eps"] if hp["add_eps_to_lr"] else hp["lr"]
        decay, eps = hp["weight_decay"], hp["eps"]
        g = grads if hp["decouple_decay"] else l2_gradient(grads, params, decay)
        lam = gamma * math.sqrt(t)                                        # lambda_k, k = t - 1
        new_x, new_s, new_nu = {}, {}, {}
        for k in params:
            new_s[k], new_nu[k] = _accumulate(g[k], state["s"][k], state["nu"][k], lam)
            rms = new_nu[k] ** (1.0 / 3.0) + eps                         # nu^{1/3} + eps
            if eps == 0.0:
                rms = xp_of(rms).where(rms == 0, math.inf, rms)          # no gradient yet: z = x0
            new_x[k] = madgrad_kernel(params[k], state["x0"][k], new_s[k], rms, hp["momentum"])
            if hp["decouple_decay"] and decay:
                new_x[k] = new_x[k] - (gamma * decay) * params[k]
        return new_x, {"s": new_s, "nu": new_nu, "x0": state["x0"]}
