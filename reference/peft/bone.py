"""Bone: Block Affine Transformation as Parameter Efficient Fine-tuning Methods for Large Language Models.

Jiale Kang. 2024. arXiv:2409.15371 (v1-v3; later versions are retitled
"Bone: Block-Affine Adaptation of Large Language Models" and then "DiSHA")

LoRA's update ``B A`` ignores the pretrained weight. Bone's "weight guide":
the update of every block of ``W`` is an affine function *of that block*,
with a trainable ``r x r`` matrix shared along a row of blocks. Split the
frozen ``W0`` (``out x in``) into ``r x r`` blocks ``W0_{ij}`` (``i`` indexes
block rows, ``j`` block columns):

    W_{ij} = W0_{ij} + W0_{ij} b_i + b_i,     b_i: r x r, trainable, b_i = 0 at the start

(``b_i`` right-multiplies, so ``W0_{ij} b_i`` mixes the columns inside the
block). ``(out / r) r^2 = out * r`` trainable scalars, the count of LoRA of
rank ``r * out / (in + out)``; zero initialisation, so fine-tuning starts at
the pretrained model with no data-dependent set-up. The update ``W0 b + b``
keeps being steered by ``W0`` during training, unlike LoRA's.

Variants (``variant=``):

* ``"col"`` (default): the formula above, the Bone of this paper version (the
  official repository's ``BoneLinear`` "Bone-col"), also Hugging Face peft's
  ``BoneConfig(init_weights="bat")`` (peft 0.14-0.17: the later paper
  versions renamed this weight-guided form "Bat");
* ``"row"``: one ``b_j`` per block *column*, ``W_{ij} = W0_{ij} + W0_{ij} b_j + b_j``
  (the repository's "Bone-row", an ablation), ``in * r`` scalars;
* ``"shard"``: no weight guide, one ``r x out`` block ``c`` added to every
  ``r``-wide column shard, ``W[:, j r:(j + 1) r] += c^T`` (peft's default
  ``BoneConfig(init_weights=True)``, the later versions' "Bone"); when ``r``
  does not divide ``in``, the last, narrower shard gets the first rows of ``c``
  (peft's rule), ``out * r`` scalars.

Conventions: zero initialisation (the paper and peft); ``"col"``/``"row"``
need ``r`` to divide both ``out`` and ``in`` (peft raises the same); biases
frozen; no scaling factor (peft has none and warns if asked for one).
"""
from __future__ import annotations

from .. import autograd as ag
from .. import catalog
from ..backend import xp_of
from .base import Adapter, check_int

__all__ = ["Bone", "VARIANTS"]

catalog.register(title="Bone: Block Affine Transformation as Parameter Efficient Fine-tuning Methods for Large "
                       "Language Models",
                 name="bone_peft", family="memory-efficient", kind="implementation", module=__name__,
                 authors="Kang", year=2024, arxiv="2409.15371")

VARIANTS = ("col", "row", "shard")


def blocks(w, r):
    """``(out, in) -> (out/r, in/r, r, r)``: ``blocks(w, r)[i, j]`` is the block ``W_{ij}``."""
    n_out, n_in = w.shape
    return ag.transpose(ag.reshape(w, (n_out // r, r, n_in // r, r)), (0, 2, 1, 3))


def unblocks(b, shape):
    """Inverse of :func:`blocks`."""
    return ag.reshape(ag.transpose(b, (0, 2, 1, 3)), shape)


class Bone(Adapter):
    """Block-affine adapter, ``W_ij = W0_ij + W0_ij b + b`` (see the module docstring)."""

    name = "bone"

    def __init__(self, base, r=2, variant="col", layers=None):
        super().__init__(base, layers)
        self.r = check_int(self.name, "r", r, 1)
        if variant not in VARIANTS:
            raise ValueError(f"{self.name}: variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        for layer in self.layers:
            n_out, n_in = self.base[f"{layer}.weight"].shape
            if variant != "shard" and (n_out % self.r or n_in % self.r):
                raise ValueError(f"{self.name}: r={self.r} must divide both sides of layer {layer!r}'s weight "
                                 f"({n_out} x {n_in}) for variant {variant!r}; choose r or layers accordingly")

    def init_layer(self, layer, weight, rng):
        n_out, n_in = weight.shape
        r, xp = self.r, xp_of(weight)
        shape = {"col": (n_out // r, r, r), "row": (n_in // r, r, r), "shard": (r, n_out)}[self.variant]
        return {"bone": xp.zeros(shape, dtype=weight.dtype)}

    def adapt_layer(self, layer, weight, bias, slots):
        b, r = slots["bone"], self.r
        if self.variant == "shard":
            return weight + self._shard_update(weight.shape, b), bias
        w = blocks(weight, r)                                    # (out/r, in/r, r, r)
        # col: b_i shared along block row i (axis 0); row: b_j shared along block column j (axis 1)
        bb = ag.expand_dims(b, 1) if self.variant == "col" else ag.expand_dims(b, 0)
        return weight + unblocks(w @ bb + bb, weight.shape), bias   # W_ij + (W_ij b + b)

    def _shard_update(self, shape, c):
        """``c^T`` (out x r) tiled over the ``in / r`` column shards, the last one cut to its width."""
        n_out, n_in = shape
        reps = -(-n_in // self.r)                                 # ceil(in / r)
        tiled = ag.concatenate([ag.transpose(c)] * reps, axis=1)  # (out, reps * r)
        return tiled[:, :n_in]
