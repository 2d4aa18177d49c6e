"""Schedules built from schedules: ``warmup`` (then anything), ``sequence``
(phases one after another, torch ``SequentialLR``) and ``scale``.

Wherever a schedule is expected a plain number ``v`` may be given; it means
``constant(v)``. Any callable ``k -> float`` is accepted as an inner schedule
(a registered :class:`Schedule` also gives a readable ``repr`` and a ``spec``).
"""
from __future__ import annotations

import dataclasses

from .base import Schedule, as_schedule, check_choice, check_int, check_value, register


@register("warmup")
@dataclasses.dataclass(frozen=True, repr=False)
class Warmup(Schedule):
    """A warmup of ``W = warmup_steps`` steps from ``start`` to the inner
    schedule ``s``, then ``s`` itself.

    With ``shift=True`` (the default) the inner schedule starts its own clock
    when the warmup ends: the warmup ramps to ``s(0)`` and step ``k >= W``
    uses ``s(k - W)``. So ``warmup(cosine(v, T - W), W)`` is a run of ``T``
    steps: ``W`` warmup steps, then a full cosine that ends at ``k = T``
    (torch ``SequentialLR([LinearLR, CosineAnnealingLR(T_max=T-W)],
    milestones=[W])``; HF ``get_cosine_schedule_with_warmup``):

        lr_k = start + (s(0) - start) * k / W          for k < W   (kind="linear")
             = start * (s(0) / start) ** (k / W)       for k < W   (kind="exponential")
             = s(k - W)                                for k >= W

    With ``shift=False`` the inner schedule keeps the global clock: the
    warmup ramps to ``s(W)`` and step ``k >= W`` uses ``s(k)`` (the warmup
    replaces the first ``W`` steps of ``s``; ``cosine(v, T)`` then ends at
    ``k = T`` too, but its first ``W`` steps of decay are skipped).

    Either way ``lr_W`` is exactly the target of the ramp and ``lr_0 ==
    start``. ``start = 0`` (the default) makes the first step a no-op for
    SGD; torch's ``LinearLR`` forbids it and uses ``start = v/3`` by
    default. ``kind="exponential"`` (geometric interpolation) needs
    ``start > 0`` and a positive target. ``warmup_steps = 0`` is the inner
    schedule unchanged.
    """

    schedule: object
    warmup_steps: int
    start: float = 0.0
    kind: str = "linear"
    shift: bool = True

    def __post_init__(self):
        self._set("schedule", as_schedule("schedule", self.schedule, self.name))
        self._set("warmup_steps", check_int("warmup_steps", self.warmup_steps, 0, self.name))
        check_choice("kind", self.kind, ("linear", "exponential"), self.name)
        low_open = self.kind == "exponential"
        self._set("start", check_value("start", self.start, self.name, 0.0, low_open=low_open))
        if not isinstance(self.shift, bool):
            raise ValueError(f"{self.name}: shift must be True or False, got {self.shift!r}")

    def at(self, k):
        w = self.warmup_steps
        if k >= w:
            return self.schedule(k - w if self.shift else k)
        target = float(self.schedule(0 if self.shift else w))
        if self.kind == "linear":
            return self.start + (target - self.start) * k / w
        if target <= 0:
            raise ValueError(f"{self.name}: an exponential warmup needs a positive target, "
                             f"but the inner schedule gives {target!r}")
        return self.start * (target / self.start) ** (k / w)


@register("sequence")
@dataclasses.dataclass(frozen=True, repr=False)
class Sequence(Schedule):
    """Phases one after another (torch ``SequentialLR``): ``phases`` is a list
    of ``(schedule, n_steps)``. Phase ``i`` covers the steps
    ``o_i <= k < o_i + n_i`` with ``o_i = n_0 + ... + n_{i-1}``, and each
    phase runs on its own clock:

        lr_k = s_i(k - o_i)     for o_i <= k < o_i + n_i

    The last phase may have ``n_steps=None``; in any case it keeps going past
    its end (``s_last(k - o_last)`` for every later ``k``), like torch's last
    scheduler. ``warmup(s, W)`` is ``sequence([(ramp, W), (s, None)])``.
    """

    phases: tuple

    def __post_init__(self):
        try:
            phases = tuple(self.phases)
        except TypeError:
            raise ValueError(f"{self.name}: phases must be a list of (schedule, n_steps), "
                             f"got {self.phases!r}") from None
        if not phases:
            raise ValueError(f"{self.name}: phases must hold at least one (schedule, n_steps), got none")
        out = []
        for i, phase in enumerate(phases):
            if not isinstance(phase, (tuple, list)) or len(phase) != 2:
                raise ValueError(f"{self.name}: phases[{i}] must be a pair (schedule, n_steps), got {phase!r}")
            sched, n = phase
            sched = as_schedule(f"phases[{i}] schedule", sched, self.name)
            if n is None and i == len(phases) - 1:
                out.append((sched, None))
            else:
                out.append((sched, check_int(f"phases[{i}] n_steps", n, 1, self.name)))
        self._set("phases", tuple(out))

    def at(self, k):
        offset = 0
        for sched, n in self.phases[:-1]:
            if k < offset + n:
                return sched(k - offset)
            offset += n
        return self.phases[-1][0](k - offset)


@register("scale")
@dataclasses.dataclass(frozen=True, repr=False)
class Scale(Schedule):
    """A schedule times a constant factor:

        lr_k = factor * s(k)

    (e.g. one shape, several peak values; or a schedule written for values in
    [0, 1] turned into a learning rate).
    """

    schedule: object
    factor: float

    def __post_init__(self):
        self._set("schedule", as_schedule("schedule", self.schedule, self.name))
        self._set("factor", check_value("factor", self.factor, self.name))

    def at(self, k):
        return self.factor * float(self.schedule(k))
