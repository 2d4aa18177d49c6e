"""The classic decaying schedules: constant, step, multistep, exponential, linear,
polynomial, cosine annealing and cosine with warm restarts (SGDR).

Not corpus papers themselves (the basis of the corpus), so no catalog entry.
Each is the closed form of the matching ``torch.optim.lr_scheduler`` class
at ``last_epoch = k``; ``tests/golden/schedules_torch.npz`` checks them to
1e-12 over 100 steps against the learning rates torch actually applies.

Notation: ``v`` = ``value`` (the initial / peak value, torch's ``base_lr``),
``f`` = ``final`` (torch's ``eta_min``), ``T`` = ``total_steps``, ``k`` the
step index (the number of steps already taken: ``schedule(0)`` is the value
of the first step).

**Where the end value is reached.** The decays that end (``linear_decay``,
``polynomial``, ``cosine``) reach ``final`` exactly at ``k = T`` and stay
there for every ``k > T``, like torch's ``LinearLR`` and ``PolynomialLR``. A
run of ``n`` steps uses ``k = 0 .. n-1``: its last step has the value
``final`` only with ``total_steps = n - 1``; with ``total_steps = n`` the last
step uses the value one step before the end (``v / n`` for a linear decay to
zero).

**Cosine beyond T.** torch's ``CosineAnnealingLR`` is periodic: after
``T_max`` the cosine rises again. Here it stays at ``final`` (SGDR's single
cycle, and what "cosine decay over T steps" means in practice); the periodic
form is ``cosine_restarts``.
"""
from __future__ import annotations

import bisect
import dataclasses
import math

from .base import Schedule, check_int, check_value, register


def _check_final(final, value, where):
    """``0 <= final <= value``: a decay ends at or below where it starts."""
    return check_value("final", final, where, 0.0, value)


def _check_gamma(gamma, where):
    """A decay factor in ``(0, 1]``."""
    return check_value("gamma", gamma, where, 0.0, 1.0, low_open=True)


@register("constant")
@dataclasses.dataclass(frozen=True, repr=False)
class Constant(Schedule):
    """The same value at every step:

        lr_k = v
    """

    value: float

    def __post_init__(self):
        self._set("value", check_value("value", self.value, self.name))

    def at(self, k):
        return self.value


@register("step_decay")
@dataclasses.dataclass(frozen=True, repr=False)
class StepDecay(Schedule):
    """Multiply by ``gamma`` every ``step_size`` steps (torch ``StepLR``):

        lr_k = v * gamma ** floor(k / step_size)
    """

    value: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        self._set("value", check_value("value", self.value, self.name))
        self._set("step_size", check_int("step_size", self.step_size, 1, self.name))
        self._set("gamma", _check_gamma(self.gamma, self.name))

    def at(self, k):
        return self.value * self.gamma ** (k // self.step_size)


@register("multistep")
@dataclasses.dataclass(frozen=True, repr=False)
class MultiStep(Schedule):
    """Multiply by ``gamma`` at each milestone (torch ``MultiStepLR``):

        lr_k = v * gamma ** #{m in milestones : m <= k}

    ``milestones`` are strictly increasing ints >= 1 (torch also accepts
    repeats, which multiply by ``gamma`` twice at once; here they are an error).
    """

    value: float
    milestones: tuple
    gamma: float = 0.1

    def __post_init__(self):
        self._set("value", check_value("value", self.value, self.name))
        try:
            ms = tuple(self.milestones)
        except TypeError:
            raise ValueError(f"{self.name}: milestones must be a sequence of ints >= 1, "
                             f"got {self.milestones!r}") from None
        ms = tuple(check_int("milestones[i]", m, 1, self.name) for m in ms)
        if any(b <= a for a, b in zip(ms, ms[1:])):
            raise ValueError(f"{self.name}: milestones={ms!r} must be strictly increasing")
        self._set("milestones", ms)
        self._set("gamma", _check_gamma(self.gamma, self.name))

    def at(self, k):
        return self.value * self.gamma ** bisect.bisect_right(self.milestones, k)


@register("exponential")
@dataclasses.dataclass(frozen=True, repr=False)
class Exponential(Schedule):
    """Multiply by ``gamma`` every step (torch ``ExponentialLR``):

        lr_k = v * gamma ** k
    """

    value: float
    gamma: float

    def __post_init__(self):
        self._set("value", check_value("value", self.value, self.name))
        self._set("gamma", _check_gamma(self.gamma, self.name))

    def at(self, k):
        return self.value * self.gamma ** k


@register("linear_decay")
@dataclasses.dataclass(frozen=True, repr=False)
class LinearDecay(Schedule):
    """A straight line from ``v`` at ``k = 0`` to ``f`` at ``k = T``, then flat
    (torch ``LinearLR(start_factor=1, end_factor=f/v, total_iters=T)``):

        lr_k = v - (v - f) * k / T     for k < T
             = f                       for k >= T

    With ``final = 0`` this is "linear decay to zero" (D2Z). Both ends are
    exact: ``lr_0 == v`` and ``lr_T == f``.
    """

    value: float
    total_steps: int
    final: float = 0.0

    def __post_init__(self):
        self._set("value", check_value("value", self.value, self.name))
        self._set("total_steps", check_int("total_steps", self.total_steps, 1, self.name))
        self._set("final", _check_final(self.final, self.value, self.name))

    def at(self, k):
        if k >= self.total_steps:
            return self.final
        return self.value - (self.value - self.final) * k / self.total_steps


@register("polynomial")
@dataclasses.dataclass(frozen=True, repr=False)
class Polynomial(Schedule):
    """Polynomial decay from ``v`` to ``f`` over ``T`` steps, then flat (torch
    ``PolynomialLR`` when ``final = 0``):

        lr_k = f + (v - f) * (1 - min(k, T) / T) ** power

    ``power = 1`` is ``linear_decay``; ``power = 0.5`` the square-root decay.
    """

    value: float
    total_steps: int
    power: float = 1.0
    final: float = 0.0

    def __post_init__(self):
        self._set("value", check_value("value", self.value, self.name))
        self._set("total_steps", check_int("total_steps", self.total_steps, 1, self.name))
        self._set("power", check_value("power", self.power, self.name, 0.0, low_open=True))
        self._set("final", _check_final(self.final, self.value, self.name))

    def at(self, k):
        if k >= self.total_steps:
            return self.final
        return self.final + (self.value - self.final) * (1.0 - k / self.total_steps) ** self.power


@register("cosine")
@dataclasses.dataclass(frozen=True, repr=False)
class Cosine(Schedule):
    """Half a cosine from ``v`` down to ``f`` over ``T`` steps, then flat
    (Loshchilov and Hutter, SGDR, arXiv:1608.03983, eq. 5 with a single cycle;
    torch ``CosineAnnealingLR._get_closed_form_lr`` for ``k <= T``):

        lr_k = f + (v - f) * (1 + cos(pi * k / T)) / 2     for k <= T
             = f                                          for k > T

    torch applies a recursive form of the same formula; it agrees with this
    closed form to about 1e-15 relative over 100 steps (the golden test checks
    both). Past ``T`` torch's cosine rises again; this one stays at ``f``.
    """

    value: float
    total_steps: int
    final: float = 0.0

    def __post_init__(self):
        self._set("value", check_value("value", self.value, self.name))
        self._set("total_steps", check_int("total_steps", self.total_steps, 1, self.name))
        self._set("final", _check_final(self.final, self.value, self.name))

    def at(self, k):
        if k >= self.total_steps:
            return self.final
        return self.final + (self.value - self.final) * (1 + math.cos(math.pi * k / self.total_steps)) / 2


@register("cosine_restarts")
@dataclasses.dataclass(frozen=True, repr=False)
class CosineRestarts(Schedule):
    """Cosine annealing with warm restarts, SGDR (Loshchilov and Hutter,
    arXiv:1608.03983, eq. 5; torch ``CosineAnnealingWarmRestarts``). Cycle
    ``i = 0, 1, ...`` lasts ``T_i = period * mult**i`` steps; within it
    ``t_cur = 0 .. T_i - 1`` counts the steps since the last restart:

        lr_k = f + (v - f) * (1 + cos(pi * t_cur / T_i)) / 2

    so each cycle starts at ``v`` and stops one step short of ``f``. Integer
    cycle bookkeeping (no logarithms), so restarts land on the exact step.
    """

    value: float
    period: int
    mult: int = 1
    final: float = 0.0

    def __post_init__(self):
        self._set("value", check_value("value", self.value, self.name))
        self._set("period", check_int("period", self.period, 1, self.name))
        self._set("mult", check_int("mult", self.mult, 1, self.name))
        self._set("final", _check_final(self.final, self.value, self.name))

    def cycle(self, k):
        """``(t_cur, T_i)``: steps since the last restart and the length of the current cycle."""
        if self.mult == 1:
            return k % self.period, self.period
        t_cur, t_i = k, self.period
        while t_cur >= t_i:
            t_cur, t_i = t_cur - t_i, t_i * self.mult
        return t_cur, t_i

    def at(self, k):
        t_cur, t_i = self.cycle(k)
        return self.final + (self.value - self.final) * (1 + math.cos(math.pi * t_cur / t_i)) / 2
