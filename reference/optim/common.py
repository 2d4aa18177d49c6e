"""Pieces of maths shared by many optimizers, written once.

* :func:`bias_correction` — ``1 - beta^t``, the factor that removes the
  zero-initialisation bias of an EMA after ``t`` updates (Adam, Sec. 3).
* :func:`ema` — ``beta * avg + (1 - beta) * x``.
* Weight decay comes in two conventions that differ for adaptive methods
  (Loshchilov and Hutter, "Decoupled Weight Decay Regularization"):
  :func:`l2_gradient` adds ``lambda * w`` to the gradient *before* the
  adaptive scaling (torch's ``weight_decay`` in SGD/Adam/AdaGrad/RMSprop);
  :func:`decoupled_decay` shrinks the weights directly, ``w - lr * lambda *
  w`` (torch's AdamW convention, with the decay scaled by the learning rate).
* :func:`zeros_slot` — a zero tree like the params (same dtype and device).
"""
from __future__ import annotations

from .. import tree

__all__ = ["bias_correction", "ema", "l2_gradient", "decoupled_decay", "zeros_slot"]


def bias_correction(beta: float, t: int) -> float:
    """``1 - beta**t`` as a Python float (host-side, no device work)."""
    return 1.0 - beta ** t


def ema(avg, x, beta):
    """Exponential moving average of a tree: ``beta * avg + (1 - beta) * x``."""
    return tree.zip_map(lambda a, b: beta * a + (1.0 - beta) * b, avg, x)


def l2_gradient(grads, params, weight_decay):
    """Coupled (L2) weight decay: ``g + lambda * w`` (unchanged when ``lambda == 0``)."""
    if weight_decay == 0.0:
        return grads
    return tree.zip_map(lambda g, w: g + weight_decay * w, grads, params)


def decoupled_decay(params, lr, weight_decay):
    """Decoupled weight decay: ``w - lr * lambda * w`` (unchanged when ``lambda == 0``)."""
    if weight_decay == 0.0:
        return params
    return tree.map(lambda w: w - lr * weight_decay * w, params)


def zeros_slot(params):
    return tree.zeros_like(params)
