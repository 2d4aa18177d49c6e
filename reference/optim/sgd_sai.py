"""No More Adam: Learning Rate Scaling at Initialization is All You Need.

Minghao Xu, Lichuan Xiang, Xu Cai, Hongkai Wen. 2024. arXiv:2412.11768

Adam's per-coordinate second moment mostly does one useful thing for
Transformers: it gives parameter blocks whose gradients live on very
different scales different effective learning rates. SGD-SaI (SGD with
learning-rate Scaling at Initialization) does that once, at the first step,
and then runs plain SGD with momentum: for every parameter block ``i`` (a
tensor of the params dict, PyTorch's default partition) it measures the
gradient signal-to-noise ratio of the first gradient and freezes it,

    G_i     = ||g_1^(i)||_2 / (std(g_1^(i)) + eps)                 (t = 1 only)
    m_t     = g_1                                  if t = 1
            = mu m_{t-1} + (1 - mu) g_t            otherwise
    theta_t = (1 - eta lambda) theta_{t-1} - eta G_i m_t           (per block i)

so the optimizer state is one buffer per parameter (plus one scalar per
block): half of AdamW's two buffers. ``std`` is the standard deviation of
the block's entries. A block whose entries are very unequal (large ``std``
relative to the norm: "noisy", sparse) gets a small scale, a block whose
entries agree gets a large one.

Defaults (the official ``sgd-sai`` package, which the paper's experiments
use): lr = 1e-2, momentum = 0.9, eps = 1e-8, weight_decay = 1e-2.

Conventions (those of the official implementation, ``sgd_sai.SGD_sai``
1.0.3, unless stated):

* ``std`` is the *unbiased* sample standard deviation (``ddof = 1``, torch's
  ``Tensor.std()``).
* The momentum buffer starts at the first gradient itself (``m_1 = g_1``)
  and is then an EMA (dampening ``1 - mu``). pytorch_optimizer.SGDSaI starts it at
  zero instead (``m_1 = (1 - mu) g_1``) and uses ``||g||`` alone for every 1-D
  tensor; its trajectories therefore differ from the official ones.
* Weight decay is decoupled: ``theta <- (1 - lr lambda) theta`` (AdamW-style).
* **Deviation:** a block whose first gradient has ``std = 0`` (a single
  entry, where the sample std is undefined, or all entries equal) gets
  ``G = ||g||`` (pytorch_optimizer's guard). The official code computes
  ``||g|| / (0 + eps)`` there (a 1e8-fold learning rate for a scalar
  parameter), which no run of the paper exercises.
* ``momentum = 0`` keeps no buffer (the official code fails there).

Slots: ``momentum_buffer`` (absent for ``momentum = 0``) and ``gsnr`` (one
0-d array per block, of the params' dtype; zero until the first step).
Peer: ``sgd_sai.SGD_sai`` (official), checked to 1e-10 in
``tests/test_momentum_family.py``.
"""
from __future__ import annotations

from .. import tree
from ..backend import fuse, xp_of
from .base import Optimizer, check_range, register

__all__ = ["SGDSaI", "gsnr"]


def gsnr(g, eps):
    """``||g||_2 / (std(g) + eps)`` of one block (unbiased std); ``||g||`` where ``std = 0``."""
    xp = xp_of(g)
    norm = xp.sqrt(xp.vdot(g.ravel(), g.ravel()))
    if g.size < 2:
        return norm
    sigma = xp.std(g, ddof=1)
    return xp.where(sigma > 0, norm / (sigma + eps), norm)


@fuse
def _ema_buffer(m, g, momentum):
    return momentum * m + (1.0 - momentum) * g


@fuse
def sgd_sai_kernel(w, m, step, decay):
    """``theta <- (1 - lr lambda) theta - (lr G) m`` with ``step = lr G`` and ``decay = 1 - lr lambda``."""
    return w * decay - step * m


@register("sgd_sai")
class SGDSaI(Optimizer):
    paper = dict(title="No More Adam: Learning Rate Scaling at Initialization is All You Need",
                 authors="Xu, Xiang, Cai, Wen", year=2024, arxiv="2412.11768", family="optimizer-first-order")
    defaults = dict(lr=1e-2, momentum=0.9, eps=1e-8, weight_decay=1e-2)
    # Rosenbrock from (-1.2, 1) is one block with G ~ 2.6, so lr = 1e-2 is an SGD step of ~0.026 against a
    # curvature of ~1000 and diverges, as plain SGD's lr = 1e-2 does (sgd.py); 1e-3 descends.
    descent_hparams = {"rosenbrock": dict(lr=1e-3)}

    def check(self, hp):
        super().check(hp)
        check_range("momentum", hp["momentum"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)

    def init_slots(self, params):
        xp = xp_of(params)
        slots = {"gsnr": {k: xp.zeros((), dtype=v.dtype) for k, v in params.items()}}
        if self.hparams["momentum"]:
            slots["momentum_buffer"] = tree.zeros_like(params)
        return slots

    def update(self, params, grads, state, t, hp):
        mu = hp["momentum"]
        if t == 1:                                                         # scaling at initialisation
            scales = tree.map(lambda g: gsnr(g, hp["eps"]), grads)
        else:
            scales = state["gsnr"]
        if mu == 0.0:
            buf = grads
        elif t == 1:
            buf = tree.copy(grads)                                         # m_1 = g_1
        else:
            buf = tree.zip_map(lambda m, g: _ema_buffer(m, g, mu), state["momentum_buffer"], grads)
        decay = 1.0 - hp["lr"] * hp["weight_decay"]
        new_w = {k: sgd_sai_kernel(params[k], buf[k], hp["lr"] * scales[k], decay) for k in params}
        return new_w, {"gsnr": scales, **({"momentum_buffer": buf} if mu else {})}
