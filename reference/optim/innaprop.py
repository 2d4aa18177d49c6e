"""A second-order-like optimizer with adaptive gradient scaling for deep learning.

Jérôme Bolte, Ryan Boustany, Edouard Pauwels, Andrei Purica. 2024. arXiv:2410.05871

INNA (the Inertial Newton Algorithm) discretises the *dynamical inertial
Newton* system (DIN; Alvarez, Attouch, Bolte, Redont 2002)

    theta'' + alpha theta' + beta Hess f(theta) theta' + grad f(theta) = 0,

whose Hessian-damping term ``beta Hess f theta'`` damps the oscillations of
heavy-ball momentum across steep directions. Written as a first-order system
in ``(theta, psi)`` the Hessian disappears (it is the time derivative of
``beta grad f``), so the method needs gradients only. INNAprop divides the
gradient by RMSprop's scale ``sqrt(vhat) + eps``. One step of the paper's
Algorithm (step size ``gamma`` = ``lr``, decoupled weight decay ``lambda``),
with ``psi_0 = (1 - alpha beta) theta_0``:

    g_k         = grad f(theta_k)
    theta       = (1 - gamma lambda) theta_k                                 (decoupled decay)
    v_{k+1}     = sigma v_k + (1 - sigma) g_k^2,       vhat = v_{k+1} / (1 - sigma^{k+1})
    psi_{k+1}   = (1 - gamma / beta) psi_k + gamma (1 / beta - alpha) theta
    theta_{k+1} = (1 + gamma (1 - alpha beta) / (beta - gamma)) theta
                  - gamma / (beta - gamma) psi_{k+1} - gamma beta g_k / (sqrt(vhat) + eps)

Conventions (the choices made, and why):

* The update follows the authors' code (innaprop/innaprop, ``innaprop.py``),
  which this file's tests check to 1e-12 through committed goldens: the
  weight decay is applied first and the ``psi`` and ``theta`` updates use the
  decayed ``theta``; the ``theta`` update uses the *new* ``psi_{k+1}``;
  ``eps`` is added outside the square root of the bias-corrected ``vhat``
  (the code computes ``sqrt(v) / sqrt(1 - sigma^k)``, equal up to rounding).
* ``gamma < beta`` is required (the scheme divides by ``beta - gamma``);
  a constant ``lr >= beta`` is rejected at construction, a scheduled one
  when it is evaluated.
* Defaults: ``lr = 1e-3, alpha = 0.1, beta = 0.9, sigma = 0.999, eps = 1e-8,
  weight_decay = 0.01``, the authors' recommended setting for image
  classification (the paper also reports ``(alpha, beta) = (2.0, 2.0)`` for
  some language-model fine-tuning runs).

Slots: ``psi`` and ``v`` (the memory of AdamW: two buffers).
"""
from __future__ import annotations

from .. import tree
from ..backend import fuse
from .base import Optimizer, check_range, register
from .common import bias_correction

__all__ = ["INNAprop"]


@fuse
def innaprop_kernel(w, g, psi, v, lr, alpha, beta, sigma, eps, weight_decay, bc):
    """One INNAprop step of one array (the readable update is the GPU kernel)."""
    w = w * (1.0 - lr * weight_decay)                                      # decoupled decay
    v = sigma * v + (1.0 - sigma) * g * g                                  # RMSprop moment
    psi = (1.0 - lr / beta) * psi + lr * (1.0 / beta - alpha) * w         # psi_{k+1}
    w = ((1.0 + lr * (1.0 - alpha * beta) / (beta - lr)) * w - lr / (beta - lr) * psi
         - lr * beta * g / ((v / bc) ** 0.5 + eps))                        # theta_{k+1}
    return w, psi, v


@register("innaprop")
class INNAprop(Optimizer):
    paper = dict(title="A second-order-like optimizer with adaptive gradient scaling for deep learning",
                 authors="Bolte, Boustany, Pauwels, Purica", year=2024, arxiv="2410.05871",
                 family="optimizer-first-order")
    defaults = dict(lr=1e-3, alpha=0.1, beta=0.9, sigma=0.999, eps=1e-8, weight_decay=0.01)

    def check(self, hp):
        super().check(hp)
        check_range("alpha", hp["alpha"], 0.0, where=self.name)
        check_range("beta", hp["beta"], 0.0, low_open=True, where=self.name)
        check_range("sigma", hp["sigma"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        if not callable(hp["lr"]):
            _check_step(self.name, hp["lr"], hp["beta"])

    def init_slots(self, params):
        ab = 1.0 - float(self.hparams["alpha"]) * float(self.hparams["beta"])
        return {"psi": tree.map(lambda w: ab * w, params), "v": tree.zeros_like(params)}   # psi_0

    def update(self, params, grads, state, t, hp):
        _check_step(self.name, hp["lr"], hp["beta"])
        bc = bias_correction(hp["sigma"], t)
        w, psi, v = {}, {}, {}
        for k in params:
            w[k], psi[k], v[k] = innaprop_kernel(params[k], grads[k], state["psi"][k], state["v"][k],
                                                 hp["lr"], hp["alpha"], hp["beta"], hp["sigma"], hp["eps"],
                                                 hp["weight_decay"], bc)
        return w, {"psi": psi, "v": v}


def _check_step(where, lr, beta):
    if not lr < beta:
        raise ValueError(f"{where}: lr={lr!r} is out of range: INNAprop needs lr < beta = {beta!r}")
