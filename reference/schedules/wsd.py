"""Warmup-stable-decay (WSD, "trapezoidal"): a linear warmup, a long flat
phase at the peak value, and a short decay ("cooldown") at the end.

Hu et al., "MiniCPM: Unveiling the Potential of Small Language Models with
Scalable Training Strategies", 2024, arXiv:2404.06395 (the name WSD); the
``1 - sqrt`` cooldown from Hägele et al., "Scaling Laws and Compute-Optimal
Training Beyond Fixed Training Durations", 2024, arXiv:2405.18392 (a corpus
paper demonstrated in ``reference.experiments``, which owns its catalog
entry). Not itself registered in the catalog.

With ``v`` = ``value``, ``f`` = ``final``, ``T`` = ``total_steps``,
``W`` = ``warmup_steps``, ``D`` = ``decay_steps`` and the decay progress
``p = (k - (T - D)) / D`` in ``[0, 1)``:

    lr_k = start + (v - start) * k / W      for k < W             (warmup)
         = v                                for W <= k < T - D    (stable)
         = v - (v - f) * shape(p)           for T - D <= k < T    (decay)
         = f                                for k >= T

    shape(p) = p                      decay="linear"
             = (1 - cos(pi p)) / 2    decay="cosine"
             = sqrt(p)                decay="sqrt"   (Hägele et al.'s 1-sqrt)

Every ``shape`` runs from 0 to 1, so the decay starts exactly at ``v``
(continuous with the stable phase) and the value is exactly ``f`` from
``k = T`` on; as for the other decays (see ``decay.py``), a run of ``n``
steps that should end at ``f`` on its last step uses ``total_steps = n - 1``.
"""
from __future__ import annotations

import dataclasses
import math

from .base import Schedule, check_choice, check_int, check_value, register

SHAPES = {
    "linear": lambda p: p,
    "cosine": lambda p: (1.0 - math.cos(math.pi * p)) / 2.0,
    "sqrt": math.sqrt,
}


@register("wsd")
@dataclasses.dataclass(frozen=True, repr=False)
class WSD(Schedule):
    """Warmup-stable-decay; the formula is in the module docstring."""

    value: float
    total_steps: int
    warmup_steps: int
    decay_steps: int
    final: float = 0.0
    decay: str = "linear"
    start: float = 0.0

    def __post_init__(self):
        where = self.name
        self._set("value", check_value("value", self.value, where))
        self._set("total_steps", check_int("total_steps", self.total_steps, 1, where))
        self._set("warmup_steps", check_int("warmup_steps", self.warmup_steps, 0, where))
        self._set("decay_steps", check_int("decay_steps", self.decay_steps, 1, where))
        if self.warmup_steps + self.decay_steps > self.total_steps:
            raise ValueError(f"{where}: warmup_steps + decay_steps = {self.warmup_steps} + {self.decay_steps} "
                             f"is out of range: expected <= total_steps = {self.total_steps}")
        self._set("final", check_value("final", self.final, where, 0.0, self.value))
        check_choice("decay", self.decay, tuple(SHAPES), where)
        self._set("start", check_value("start", self.start, where, 0.0, self.value))

    def at(self, k):
        v, f = self.value, self.final
        decay_start = self.total_steps - self.decay_steps
        if k < self.warmup_steps:
            return self.start + (v - self.start) * k / self.warmup_steps
        if k < decay_start:
            return v
        if k < self.total_steps:
            p = (k - decay_start) / self.decay_steps
            return v - (v - f) * SHAPES[self.decay](p)
        return f
