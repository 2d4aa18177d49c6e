"""LoRA: Low-Rank Adaptation of Large Language Models (the baseline adapter).

Hu, Shen, Wallis, Allen-Zhu, Li, Wang, Wang, Chen. ICLR 2022. arXiv:2106.09685

(Not a paper of this library's corpus, so not in the catalog: it is the
baseline the corpus's LoRA variants are measured against, and EVA reuses it.)

A frozen weight ``W0`` (``out x in``) is adapted by a trainable low-rank product

    W = W0 + (alpha / r) B A,      A: (r, in),  B: (out, r)

with ``A`` random and ``B = 0``, so that fine-tuning starts exactly at the
pretrained model. ``r (in + out)`` trainable scalars instead of ``in * out``.

Conventions (those of the paper and of Hugging Face ``peft``):

* ``A ~ U(-1/sqrt(in), 1/sqrt(in))`` (torch's ``kaiming_uniform_(a=sqrt(5))``,
  peft's default), ``B = 0``;
* scaling ``alpha / r`` with ``alpha = r`` by default (scaling 1). When the
  rank differs per layer (``rank={"0": 2, "1": 4}`` or EVA's redistribution),
  the scaling stays ``alpha / r`` of the *nominal* rank ``r``: peft's
  ``adjust_scaling_factors=True`` convention of EVA, which keeps the learning
  rate's meaning when ranks move between layers;
* ``rank=r`` (an int) is capped at ``min(in, out)`` per layer (a larger
  rank adds nothing); a dict gives each layer its own rank;
* biases are frozen (peft's ``bias="none"``); a layer of rank 0 gets no adapter.
"""
from __future__ import annotations

from ..backend import xp_of
from ..optim.base import check_range
from .base import Adapter, check_int, lora_uniform

__all__ = ["LoRA"]


class LoRA(Adapter):
    """``W = W0 + (alpha / r) B A`` on every adapted layer (see the module docstring)."""

    name = "lora"

    def __init__(self, base, rank=4, alpha=None, layers=None):
        super().__init__(base, layers)
        if isinstance(rank, dict):
            per_layer = rank
        else:   # one rank for every layer, capped at the layer's full rank
            check_int(self.name, "rank", rank, 1)
            per_layer = {layer: min(rank, min(self.base[f"{layer}.weight"].shape)) for layer in self.layers}
        unknown = sorted(set(per_layer) - set(self.layers))
        if unknown:
            raise ValueError(f"{self.name}: rank given for layers {unknown} that are not adapted {list(self.layers)}")
        self.ranks = {layer: check_int(self.name, f"rank[{layer!r}]", per_layer.get(layer, 0), 0)
                      for layer in self.layers}
        self.rank = check_int(self.name, "rank", rank if not isinstance(rank, dict) else
                              max(max(self.ranks.values()), 1), 1)
        self.alpha = float(self.rank if alpha is None else alpha)
        check_range("alpha", self.alpha, 0.0, low_open=True, where=self.name)
        self.scaling = self.alpha / self.rank

    def init_layer(self, layer, weight, rng):
        r = self.ranks[layer]
        if r == 0:
            return {}
        n_out, n_in = weight.shape
        return {"lora_A": self.init_A(layer, weight, r, rng), "lora_B": xp_of(weight).zeros((n_out, r), weight.dtype)}

    def init_A(self, layer, weight, r, rng):
        """The random ``A`` of plain LoRA (EVA overrides this with data-driven rows)."""
        return lora_uniform(rng, (r, weight.shape[1]), weight.shape[1], weight.dtype)

    def adapt_layer(self, layer, weight, bias, slots):
        # W = W0 + (alpha / r) B A
        return weight + self.scaling * (slots["lora_B"] @ slots["lora_A"]), bias
