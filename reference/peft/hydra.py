"""Hydra: Multi-head Low-rank Adaptation for Parameter Efficient Fine-tuning.

Sanghyeon Kim, Hyunmo Yang, Younghyun Kim, Youngjoon Hong, Eunbyung Park. 2023. arXiv:2309.06922

Two kinds of low-rank branch around a frozen linear layer ``y = W0 x + b0``:
a **parallel** one on its input (LoRA, "new features") and a **sequential**
one on its output (an adapter that linearly recombines the pretrained
features, "general features"). Hydra uses both heads at once:

    y = W0 x + b0  +  s B_p A_p x  +  s B_s A_s (W0 x + b0)

    A_p: (r_p, in), B_p: (out, r_p)        the parallel branch
    A_s: (r_s, out), B_s: (out, r_s)       the sequential branch (acts on the output)

Both branches are linear, so the layer merges after training into one linear
layer with no inference cost:

    W = W0 + s (B_p A_p + B_s A_s W0),     b = b0 + s B_s A_s b0

``r_p (in + out) + 2 r_s out`` trainable scalars. With ``r_s = 0`` it is
LoRA; with ``r_p = 0`` a purely sequential adapter whose update ``B_s A_s W0``
lies in the span of the pretrained weight's rows (a recombination of
pretrained features).

Conventions (the official code, extremebird/Hydra, read for this file):

* initialisation as LoRA for both heads: ``A ~ U(-1/sqrt(fan_in),
  1/sqrt(fan_in))`` (the NLU code's ``kaiming_uniform_(a=sqrt(5))``), ``B = 0``,
  so fine-tuning starts at the pretrained model. (The ViT code initialises
  ``A`` with ``xavier_uniform_`` and adds biases to the low-rank layers; the
  NLU code has neither, and neither appears in the paper's formula.)
* the sequential branch reads the pretrained output *with* its bias,
  ``W0 x + b0`` (both official codes apply it to the frozen layer's output),
  hence the merged bias above;
* ``scale`` ``s`` multiplies both heads (the ViT code's ``scale``, 1 by
  default; the NLU code has none).
"""
from __future__ import annotations

from .. import catalog
from ..backend import xp_of
from ..optim.base import check_range
from .base import Adapter, check_int, lora_uniform

__all__ = ["Hydra"]

catalog.register(title="Hydra: Multi-head Low-rank Adaptation for Parameter Efficient Fine-tuning",
                 name="hydra_lora", family="memory-efficient", kind="implementation", module=__name__,
                 authors="Kim, Yang, Kim, Hong, Park", year=2023, arxiv="2309.06922")


class Hydra(Adapter):
    """Parallel + sequential low-rank heads (see the module docstring)."""

    name = "hydra"

    def __init__(self, base, parallel_rank=2, sequential_rank=2, scale=1.0, layers=None):
        super().__init__(base, layers)
        self.parallel_rank = check_int(self.name, "parallel_rank", parallel_rank, 0)
        self.sequential_rank = check_int(self.name, "sequential_rank", sequential_rank, 0)
        if self.parallel_rank + self.sequential_rank == 0:
            raise ValueError(f"{self.name}: parallel_rank + sequential_rank must be >= 1, got 0")
        self.scale = check_range("scale", scale, 0.0, low_open=True, where=self.name)

    def init_layer(self, layer, weight, rng):
        n_out, n_in = weight.shape
        xp, dt = xp_of(weight), weight.dtype
        out = {}
        if self.parallel_rank:
            out["A_p"] = lora_uniform(rng, (self.parallel_rank, n_in), n_in, dt)
            out["B_p"] = xp.zeros((n_out, self.parallel_rank), dtype=dt)
        if self.sequential_rank:
            out["A_s"] = lora_uniform(rng, (self.sequential_rank, n_out), n_out, dt)
            out["B_s"] = xp.zeros((n_out, self.sequential_rank), dtype=dt)
        return out

    def adapt_layer(self, layer, weight, bias, slots):
        s = self.scale
        w, b = weight, bias
        if "A_p" in slots:    # parallel head: W0 + s B_p A_p
            w = w + s * (slots["B_p"] @ slots["A_p"])
        if "A_s" in slots:    # sequential head on W0 x + b0: + s B_s A_s W0, bias + s B_s A_s b0
            mix = slots["B_s"] @ slots["A_s"]                     # (out, out)
            w = w + s * (mix @ weight)
            if bias is not None:
                b = bias + s * (mix @ bias)
        return w, b

    def branch_output(self, layer, adapter_params, x):
        """``layer``'s output on its input ``x`` computed head by head (the unmerged forward pass,
        plain arrays): what the merge must reproduce."""
        sl = self.slots_of(layer, adapter_params)
        w0, b0 = self.base[f"{layer}.weight"], self.bias_of(layer)
        y0 = x @ w0.T if b0 is None else x @ w0.T + b0           # the frozen layer
        y = y0
        if "A_p" in sl:
            y = y + self.scale * ((x @ sl["A_p"].T) @ sl["B_p"].T)
        if "A_s" in sl:
            y = y + self.scale * ((y0 @ sl["A_s"].T) @ sl["B_s"].T)
        return y
