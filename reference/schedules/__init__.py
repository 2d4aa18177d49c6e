"""Schedules: pure, immutable callables ``k -> float`` for ``lr`` and any other
hyperparameter that papers schedule.

    from reference import optim, schedules
    lr = schedules.warmup(schedules.cosine(0.1, total_steps=900), warmup_steps=100)
    opt = optim.create("sgd", lr=lr)          # the optimizer evaluates lr(k) at each step
    schedules.create("cosine", value=0.1, total_steps=100)   # by name
    schedules.names()                                         # every registered schedule

**Step index.** ``k`` is the number of optimizer steps already taken, so
``schedule(0)`` is the value of the first step. This is what
``reference.optim`` passes (``hparam_value(lr, k)`` with ``k = t - 1``), and
what torch's ``scheduler.get_last_lr()`` reads before each
``optimizer.step()`` when ``scheduler.step()`` is called after it. ``k`` must
be an int >= 0 (``TypeError`` / ``ValueError`` otherwise); values are Python
floats.

What is here:

* ``decay.py``: ``constant``, ``step_decay`` (StepLR), ``multistep``
  (MultiStepLR), ``exponential`` (ExponentialLR), ``linear_decay``
  (LinearLR), ``polynomial`` (PolynomialLR), ``cosine`` (CosineAnnealingLR),
  ``cosine_restarts`` (CosineAnnealingWarmRestarts, SGDR);
* ``compose.py``: ``warmup`` (then any schedule), ``sequence``
  (SequentialLR), ``scale``;
* ``wsd.py``: warmup-stable-decay with a linear, cosine or 1-sqrt cooldown;
* ``base.py``: the :class:`Schedule` base class, the registry
  (``register``/``create``/``names``) and the shared checks.

A paper's schedule (one-cycle, ...) goes in its own module here, subclasses
:class:`Schedule`, sets ``paper = dict(title=..., authors=..., year=...,
arxiv=..., family="lr-schedule")`` and is decorated with ``@register(name)``,
which also adds it to ``reference.catalog``; every module of the package is
imported here (no edit needed), and the names in its ``__all__`` are
re-exported as ``reference.schedules.<name>``.
"""
from __future__ import annotations

from .base import Schedule, create, from_spec, get_class, names, register

# schedule files register themselves on import
from .decay import (Constant, CosineRestarts, Cosine, Exponential, LinearDecay, MultiStep,  # noqa: E402
                    Polynomial, StepDecay)
from .compose import Scale, Sequence, Warmup  # noqa: E402
from .wsd import WSD  # noqa: E402

# the public, lower-case spelling of every schedule: ``schedules.cosine(0.1, 100)``
constant = Constant
step_decay = StepDecay
multistep = MultiStep
exponential = Exponential
linear_decay = LinearDecay
polynomial = Polynomial
cosine = Cosine
cosine_restarts = CosineRestarts
warmup = Warmup
sequence = Sequence
scale = Scale
wsd = WSD

# paper schedules (one module each) register themselves: import every other module of the package
import importlib as _importlib  # noqa: E402
import pkgutil as _pkgutil  # noqa: E402

for _m in sorted(m.name for m in _pkgutil.iter_modules(__path__)):
    if _m not in ("base", "decay", "compose", "wsd") and not _m.startswith("_"):
        _mod = _importlib.import_module(f"{__name__}.{_m}")
        for _public in getattr(_mod, "__all__", ()):  # e.g. one_cycle
            globals()[_public] = getattr(_mod, _public)

__all__ = ["Schedule", "create", "names", "register", "get_class", "from_spec",
           "constant", "step_decay", "multistep", "exponential", "linear_decay", "polynomial", "cosine",
           "cosine_restarts", "warmup", "sequence", "scale", "wsd"]
