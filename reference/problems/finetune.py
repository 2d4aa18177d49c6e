"""Fine-tuning a "pretrained" MLP on a shifted version of its task.

    p = reference.problems.create("finetune_mlp", base="blobs", shift="rotate", angle=60.0)
    params = p.init()            # the pretrained params (the same for every seed)
    p.pretrained                 # the same, float64
    p.source                     # the task it was pretrained on (a problem of its own)
    p.evaluate(params)           # loss / accuracy on the *shifted* task

Memory-efficient fine-tuning methods (layer sampling as in LISA/OwLore,
low-rank projections as in GaLore, ...) are judged against full fine-tuning
from the same pretrained weights. This problem makes that setting small: an
MLP from :mod:`reference.problems.networks` (``base``: ``"blobs"``,
``"two_spirals"`` or ``"checkerboard"``) is trained on its task from
``base_problem.init(seed)`` with full-batch Adam (``pretrain_lr``,
``pretrain_steps``), and the fine-tuning task is the same data, shifted:

* ``shift="rotate"``: inputs rotated by ``angle`` degrees about the origin
  and translated by ``offset``, ``x' = R x + offset``; labels unchanged. The
  first layer alone can undo the shift exactly (``W' = W R^{-1}``, ``b' = b
  - W R^{-1} offset``), so this rewards methods that adapt the *input* layer.
* ``shift="relabel"``: inputs unchanged, classes permuted
  ``y' = (y + 1) mod K``; the last layer alone can fix it (permute its rows),
  so this rewards methods that adapt the *output* layer.

Settings (keyword arguments of ``create``): ``base``, ``shift``, ``angle``,
``offset``, ``pretrain_steps`` (default 300), ``pretrain_lr`` (1e-2), and
the network/data settings of the base task (``hidden``, ``activation``,
``n_train``, ``n_test``, ``noise``, ``seed``, plus the base task's own
extras via ``base_kw``, e.g. ``base_kw=dict(n_classes=4)``).

Decisions written down here:

* ``init(seed)`` returns the pretrained params whatever the seed
  (``seeded_init = False``): fine-tuning starts from one model; the seed of
  the *data and the pretraining* is the ``seed`` setting.
* Pretraining is deterministic (full batch) and cached per settings, so
  building the problem twice costs one pretraining.
* The shifted data reuse the base task's examples (same draws), so the
  source and target tasks differ only by the shift.
"""
from __future__ import annotations

import math

import numpy as np

from . import create as _create
from . import register
from .networks import MLPTask, check_int, check_nonnegative

__all__ = ["FinetuneMLP"]

SHIFTS = ("rotate", "relabel")
BASES = ("blobs", "two_spirals", "checkerboard")
_PRETRAINED = {}


def _pretrain(source, seed, steps, lr):
    """Full-batch Adam from ``source.init(seed)``; float64 params (cached by the caller)."""
    from .. import optim
    params = source.init(seed)
    opt = optim.create("adam", lr=lr)
    state, oracle = opt.init(params), source.oracle()
    for _ in range(steps):
        params, state = opt.step(params, state, oracle)
    return params


@register("finetune_mlp")
class FinetuneMLP(MLPTask):
    """A pretrained MLP and a shifted copy of its task (see the module docstring)."""

    seeded_init = False

    def __init__(self, base="blobs", shift="rotate", angle=60.0, offset=(0.0, 0.0), pretrain_steps=300,
                 pretrain_lr=1e-2, hidden=(32, 32), activation="tanh", n_train=256, n_test=256, noise=None,
                 seed=0, base_kw=None):
        where = "finetune_mlp"
        if base not in BASES:
            raise ValueError(f"{where}: base must be one of {BASES}, got {base!r}")
        if shift not in SHIFTS:
            raise ValueError(f"{where}: shift must be one of {SHIFTS}, got {shift!r}")
        self.base, self.shift = base, shift
        self.angle = float(angle)
        if not math.isfinite(self.angle):
            raise ValueError(f"{where}: angle must be a finite number of degrees, got {angle!r}")
        self.offset = np.asarray(offset, dtype=np.float64)
        if self.offset.shape != (2,) or not np.all(np.isfinite(self.offset)):
            raise ValueError(f"{where}: offset must be two finite numbers, got {offset!r}")
        self.pretrain_steps = check_int(where, "pretrain_steps", pretrain_steps, 0)
        self.pretrain_lr = check_nonnegative(where, "pretrain_lr", pretrain_lr)
        kw = dict(base_kw or {})
        if noise is not None:
            kw["noise"] = noise
        self.source = _create(base, hidden=hidden, activation=activation, n_train=n_train, n_test=n_test,
                              seed=seed, **kw)
        self.n_out = self.source.n_out
        super().__init__(hidden, activation, n_train, n_test, self.source.noise, seed)
        key = (base, repr(sorted(kw.items())), tuple(self.hidden), activation, n_train, n_test, seed,
               self.pretrain_steps, self.pretrain_lr)
        if key not in _PRETRAINED:
            _PRETRAINED[key] = _pretrain(self.source, seed, self.pretrain_steps, self.pretrain_lr)
        self._pretrained = _PRETRAINED[key]

    def __repr__(self):
        what = f"rotate {self.angle:g} deg + {self.offset.tolist()}" if self.shift == "rotate" else "relabel"
        return f"<problem finetune_mlp: {self.base} mlp {self.sizes}, shift {what}>"

    @property
    def rotation(self):
        """The 2 x 2 rotation matrix ``R`` of ``shift="rotate"``."""
        a = math.radians(self.angle)
        return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])

    def transform(self, x, y):
        """The shift applied to examples of the source task: ``(x', y')``."""
        if self.shift == "rotate":
            return x @ self.rotation.T + self.offset, y
        return x, (y + 1) % self.n_out

    def _sample(self, rng, n):
        x, y = self.source._sample(rng, n)          # the same draws as the source task's data
        return self.transform(x, y)

    @property
    def pretrained(self):
        """The pretrained params (float64 copies)."""
        return {k: v.copy() for k, v in self._pretrained.items()}

    def _init(self, rng):
        return self.pretrained

