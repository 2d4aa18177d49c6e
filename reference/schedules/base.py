"""The schedule protocol, its registry and the checks every schedule shares, written once.

A schedule is a small immutable callable: ``schedule(k) -> float`` for the
step index ``k = 0, 1, 2, ...``, the number of optimizer steps already taken.
``schedule(0)`` is the value used by the first step — the convention of
``reference.optim`` (``hparam_value(lr, k)``) and of
``torch.optim.lr_scheduler`` read through ``get_last_lr()`` before each
``optimizer.step()``.

A schedule file subclasses :class:`Schedule` as a frozen dataclass (its fields
are the constructor arguments, so ``repr`` reads like the call that built it),
validates and normalises them in ``__post_init__`` with the helpers below,
and writes the formula in ``at(k)``. This base class does the rest:

* **the step check**: ``k`` must be an ``int`` (``TypeError`` otherwise,
  ``bool`` included) and ``k >= 0`` (``ValueError``);
* **floats out**: the result is always a Python ``float``;
* **a readable repr**: ``cosine(value=0.1, total_steps=100, final=0.0)``;
* **params**: ``params()`` gives the constructor arguments, ``spec()`` a
  JSON-ready nested dict ``{"name": "cosine", "value": 0.1, ...}`` and
  :func:`from_spec` rebuilds the schedule from it (schedules are never
  pickled; their params are what gets saved).

``@register("name")`` makes a schedule available as ``create("name", **kw)``
and, when the class sets ``paper`` (a dict with ``title``, ``authors``,
``year``, ``arxiv``, ``family``), adds that paper to ``reference.catalog``.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..registry import Registry
from ..optim.base import check_range

__all__ = ["Schedule", "register", "names", "create", "get_class", "from_spec", "check_step",
           "check_int", "check_value", "check_choice", "as_schedule", "check_range"]

SCHEDULES = Registry("schedule")


def register(name):
    """Class decorator: ``create(name, **kw)`` builds it; its ``paper`` (if any) goes to the catalog."""
    return SCHEDULES.register(name)


def names():
    """Every registered schedule, sorted."""
    return SCHEDULES.names()


def get_class(name):
    return SCHEDULES.get(name)


def create(name, **kw):
    """``create("cosine", value=0.1, total_steps=100)``: the schedule ``name`` with these arguments."""
    return SCHEDULES.create(name, **kw)


# ---- checks ------------------------------------------------------------------------

def check_step(k, where="schedule"):
    """The step index as an ``int``: ``TypeError`` unless an integer, ``ValueError`` if negative."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{where}: the step must be an int >= 0, got {k!r} of type {type(k).__name__}")
    if k < 0:
        raise ValueError(f"{where}: the step must be an int >= 0, got {k}")
    return int(k)


def check_int(name, value, low, where):
    """``value`` as an ``int``; ``ValueError`` naming ``name`` unless it is an integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{where}: {name} must be an int >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{where}: {name}={value!r} is out of range: expected an int >= {low}")
    return int(value)


def check_value(name, value, where, low=0.0, high=math.inf, low_open=False):
    """A finite float in ``[low, high]`` (``(low, high]`` with ``low_open``); ``ValueError`` naming
    ``name`` otherwise."""
    return check_range(name, value, low, high, low_open=low_open, high_open=math.isinf(high), where=where)


def check_choice(name, value, choices, where):
    if value not in choices:
        raise ValueError(f"{where}: {name} must be one of {choices}, got {value!r}")
    return value


def as_schedule(name, schedule_or_value, where):
    """A callable schedule stays as it is; a number ``v >= 0`` becomes ``constant(v)``."""
    if callable(schedule_or_value):
        return schedule_or_value
    if isinstance(schedule_or_value, bool) or not isinstance(schedule_or_value, (int, float, np.integer,
                                                                                   np.floating)):
        raise ValueError(f"{where}: {name} must be a schedule (a callable k -> float) or a number >= 0, "
                         f"got {schedule_or_value!r}")
    return get_class("constant")(check_value(name, schedule_or_value, where))


# ---- the base class ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, repr=False)
class Schedule:
    """Base class; see the module docstring. Subclasses are frozen dataclasses that
    validate in ``__post_init__`` and override ``at``."""

    name = "schedule"
    #: the paper, for the catalog: dict(title=..., authors=..., year=..., arxiv=..., family=...)
    paper = None

    def at(self, k):
        """The schedule at step ``k`` (an int >= 0, already checked by ``__call__``)."""
        raise NotImplementedError

    def __call__(self, k):
        return float(self.at(check_step(k, self.name)))

    def _set(self, field, value):
        """Store a normalised argument (used by ``__post_init__``; the instance is frozen)."""
        object.__setattr__(self, field, value)

    def params(self):
        """The constructor arguments, as given (normalised), nested schedules left as objects."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def spec(self):
        """A JSON-ready description ``{"name": ..., **params}``; nested schedules become specs too."""
        return {"name": self.name, **{k: _spec(v) for k, v in self.params().items()}}

    def __repr__(self):
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"


def _spec(v):
    if isinstance(v, Schedule):
        return v.spec()
    if callable(v):
        raise TypeError(f"spec(): {v!r} is not a registered Schedule and has no spec")
    if isinstance(v, tuple):
        return [_spec(x) for x in v]
    return v


def from_spec(spec):
    """Rebuild a schedule from ``Schedule.spec()`` output (nested schedules included)."""
    if isinstance(spec, dict) and "name" in spec:
        kw = {k: from_spec(v) for k, v in spec.items() if k != "name"}
        return create(spec["name"], **kw)
    if isinstance(spec, (list, tuple)):
        return tuple(from_spec(x) for x in spec)
    return spec
