"""AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights.

Byeongho Heo, Sanghyuk Chun, Seong Joon Oh, Dongyoon Han, Sangdoo Yun,
Gyuwan Kim, Youngjung Uh and Jung-Woo Ha. ICLR 2021. arXiv:2006.08217

A weight followed by a normalization layer (BatchNorm, LayerNorm, weight
normalization) is *scale-invariant*: ``f(c w) = f(w)`` for every ``c > 0``. Then
the gradient is orthogonal to ``w`` (differentiate in ``c``), so a plain
gradient step can only *increase* ``||w||`` (Pythagoras), and the effective
step on the direction ``w / ||w||``, about ``lr / ||w||^2``, shrinks as the norm
grows. The paper shows that momentum makes this much worse: the momentum
buffer carries past gradients that are no longer orthogonal to the current
``w``, and their radial part inflates the norm quickly, so the effective step
size decays prematurely. SGDP and AdamP remove the radial component of
every update (the paper's Algorithms 1 and 2, "projection"):

    p_t     = the update of SGD with momentum or of Adam
    if  max over views of |cos(w_{t-1}, g_t)| < delta / sqrt(dim(view)):
        (w is taken to be scale-invariant in that view)
        p_t <- p_t - (w_hat . p_t) w_hat,    w_hat = w_{t-1} / ||w_{t-1}||   (per view)
    w_t     = w_{t-1} - lr p_t

The "views" are the output channels of the tensor (its first axis: one
``w_hat`` per row of ``w.reshape(out, -1)``; BatchNorm-style invariance) and
then the whole tensor (one ``w_hat``; LayerNorm/weight-norm style): the
channel view is tried first and the first that passes is used. Because of
the scale invariance, removing the radial part changes only the norm of
the step, not its effect on ``w / ||w||``, and the norm of ``w`` no longer
grows (to first order). Tensors with one axis (biases, gains) are never
projected: AdamP on them is Adam (tested, to rounding).

Defaults (the paper's and the official clovaai/AdamP code's): delta = 0.1,
wd_ratio = 0.1; AdamP: lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
SGDP: lr = 0.1, momentum = 0.9 (the paper's ImageNet setting; the official
SGDP has no default learning rate).

Conventions (the official code's; pytorch_optimizer.AdamP/SGDP, which the
golden file checks, agree except where noted):

* ``weight_decay`` is decoupled, ``w <- w - lr weight_decay r w`` before the
  step, where ``r = wd_ratio`` for a projected tensor and 1 otherwise; SGDP
  divides it by ``1 - momentum`` as well (the official code).
* AdamP's ``eps`` is outside the root of the bias-corrected second moment,
  as in Adam (``p = m_hat / (sqrt(v_hat) + eps)``); pytorch_optimizer instead
  uses Adam's "efficient" ordering ``sqrt(1 - beta2^t) m_hat / (sqrt(v_t) +
  eps)``, so the golden cases use eps = 0, where the two coincide.
* The cosine similarity is ``|<a, b>| / (max(||a||, eps) max(||b||, eps))``
  (torch.nn.functional.cosine_similarity, which the official code calls) and
  ``w_hat = w / (||w|| + eps)``, both with the optimizer's ``eps``.
* SGDP's momentum buffer starts at zero, ``b_t = momentum b_{t-1} + (1 -
  dampening) g_t`` (so unlike torch.optim.SGD the first buffer is ``(1 -
  dampening) g_1``), and Nesterov uses ``g_t + momentum b_t``; AdamP's
  Nesterov uses ``(beta1 m_t + (1 - beta1) g_t)`` in place of ``m_t``.
* The projection test reads the projection's outcome on the host (one
  boolean per tensor and step): this optimizer is not free of host syncs.
"""
from __future__ import annotations

import math

from .. import tree
from ..backend import fuse, xp_of
from .adam import check_adam_hparams
from .base import Optimizer, check_range, register
from .common import bias_correction, decoupled_decay


# ---- the projection (both optimizers) ------------------------------------------

def _views(x):
    """The two views of a tensor with >= 2 axes: per output channel, then the whole tensor."""
    return (("channel", x.reshape(x.shape[0], -1)), ("layer", x.reshape(1, -1)))


def cosine_by_view(a, b, eps):
    """``|cos(a_i, b_i)|`` for every row ``i`` (torch's cosine_similarity with ``eps``)."""
    xp = xp_of(a, b)
    na = xp.maximum(xp.sqrt((a * a).sum(axis=1)), eps)
    nb = xp.maximum(xp.sqrt((b * b).sum(axis=1)), eps)
    return xp.abs((a * b).sum(axis=1) / (na * nb))


def project(w, g, update, delta, eps):
    """Remove the radial part of ``update`` if ``w`` looks scale-invariant; return ``(update, projected)``.

    The first view (channel, then layer) whose largest ``|cos(w, g)|`` is below
    ``delta / sqrt(view dimension)`` is used: ``update - w_hat <w_hat, update>``
    with ``w_hat = w / (||w|| + eps)`` per row of that view.
    """
    if w.ndim < 2:
        return update, False
    xp = xp_of(w)
    for (_, wv), (_, gv), (_, uv) in zip(_views(w), _views(g), _views(update)):
        if float(cosine_by_view(wv, gv, eps).max()) < delta / math.sqrt(wv.shape[1]):
            w_hat = wv / (xp.sqrt((wv * wv).sum(axis=1, keepdims=True)) + eps)
            radial = (w_hat * uv).sum(axis=1, keepdims=True)
            return (uv - w_hat * radial).reshape(update.shape), True
    return update, False


def check_projection_hparams(opt, hp):
    check_range("delta", hp["delta"], 0.0, where=opt.name)
    check_range("wd_ratio", hp["wd_ratio"], 0.0, 1.0, where=opt.name)
    if not isinstance(hp["nesterov"], bool):
        raise ValueError(f"{opt.name}: nesterov must be True or False, got {hp['nesterov']!r}")


# ---- AdamP (Algorithm 2) ---------------------------------------------------------

@fuse
def adam_direction_kernel(g, m, v, beta1, beta2, eps, bc1, bc2, nesterov):
    """Adam's moments and direction ``p = m_hat / (sqrt(v_hat) + eps)`` (Nesterov: ``m`` -> ``beta1 m + (1 - beta1) g``)."""
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    mm = nesterov * (beta1 * m + (1.0 - beta1) * g) + (1.0 - nesterov) * m
    p = (mm / bc1) / ((v / bc2) ** 0.5 + eps)
    return p, m, v


@register("adamp")
class AdamP(Optimizer):
    paper = dict(title="AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights",
                 authors="Heo, Chun, Oh, Han, Yun, Kim, Uh, Ha", year=2021, arxiv="2006.08217",
                 family="optimizer-first-order")
    defaults = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, delta=0.1, wd_ratio=0.1,
                    nesterov=False)

    def check(self, hp):
        super().check(hp)
        check_adam_hparams(self, hp)
        check_projection_hparams(self, hp)

    def init_slots(self, params):
        return {"m": tree.zeros_like(params), "v": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        lr, b1, b2 = hp["lr"], hp["beta1"], hp["beta2"]
        bc1, bc2 = bias_correction(b1, t), bias_correction(b2, t)
        nesterov = 1.0 if hp["nesterov"] else 0.0
        new_w, slots = {}, {"m": {}, "v": {}}
        for k in params:
            w, g = params[k], grads[k]
            p, slots["m"][k], slots["v"][k] = adam_direction_kernel(
                g, state["m"][k], state["v"][k], b1, b2, hp["eps"], bc1, bc2, nesterov)
            p, projected = project(w, g, p, hp["delta"], hp["eps"])
            ratio = hp["wd_ratio"] if projected else 1.0
            w = decoupled_decay({k: w}, lr, hp["weight_decay"] * ratio)[k]
            new_w[k] = w - lr * p
        return new_w, slots


# ---- SGDP (Algorithm 1) ----------------------------------------------------------

@register("sgdp")
class SGDP(Optimizer):
    """SGDP: SGD with momentum and the projection (same paper, Algorithm 1)."""
    defaults = dict(lr=0.1, momentum=0.9, dampening=0.0, eps=1e-8, weight_decay=0.0, delta=0.1, wd_ratio=0.1,
                    nesterov=False)
    # lr = 0.1 diverges on Rosenbrock from (-1.2, 1) (gradient ~230, curvature ~1000), as plain SGD does
    descent_hparams = {"rosenbrock": dict(lr=1e-4)}

    def check(self, hp):
        super().check(hp)
        check_range("momentum", hp["momentum"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("dampening", hp["dampening"], 0.0, 1.0, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        check_projection_hparams(self, hp)

    def init_slots(self, params):
        return {"momentum_buffer": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        lr, mu = hp["lr"], hp["momentum"]
        new_w, bufs = {}, {}
        for k in params:
            w, g = params[k], grads[k]
            buf = mu * state["momentum_buffer"][k] + (1.0 - hp["dampening"]) * g   # b_t
            p = g + mu * buf if hp["nesterov"] else buf
            p, projected = project(w, g, p, hp["delta"], hp["eps"])
            ratio = (hp["wd_ratio"] if projected else 1.0) / (1.0 - mu)
            w = decoupled_decay({k: w}, lr, hp["weight_decay"] * ratio)[k]
            new_w[k], bufs[k] = w - lr * p, buf
        return new_w, {"momentum_buffer": bufs}
