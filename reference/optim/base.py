"""The optimizer protocol and the pieces every optimizer shares, written once.

An optimizer is an object with two pure methods (the optax shape, with the
oracle call inside ``step`` so that methods which evaluate the gradient more
than once per step — SAM, extragradient, line searches — fit the same mould):

    state = opt.init(params)                          # {"step": 0, ...slots}
    params, state = opt.step(params, state, oracle)   # inputs are never mutated

A paper file subclasses :class:`Optimizer`, sets ``defaults`` (the paper's
hyperparameters, named after its symbols spelled out) and ``paper`` (its
catalog entry), checks its hyperparameters in ``check``, creates its slots
in ``init_slots`` and writes the update in ``update``. This base class does
the rest:

* **validation**: unknown hyperparameters raise ``TypeError``; invalid values
  raise ``ValueError`` naming the parameter, its value and the allowed range
  (helpers :func:`check_range`, :func:`check_lr`);
* **the gradient check**: grads must have the params' keys, shapes and dtype;
  a NaN/Inf raises ``FloatingPointError`` naming the parameter and the step
  (switch off with ``reference.optim.unchecked()`` for benchmarks: the check
  is a host sync);
* **the step counter**: ``state["step"]`` counts completed steps; ``update``
  receives ``t = step + 1`` (the paper's 1-based ``t``);
* **schedules**: ``lr`` (and any hyperparameter listed in ``scheduled``) may be
  a float or a callable ``k -> value`` evaluated at ``k = t - 1``, the number
  of steps already taken (so ``schedule(0)`` is used for the first step, as
  with ``torch.optim.lr_scheduler``).

Shared maths (bias correction, EMAs, the two weight-decay conventions) lives
in ``reference/optim/common.py``.
"""
from __future__ import annotations

import contextlib
import math
import numbers

import numpy as np

from ..registry import Registry
from ..backend import xp_of

__all__ = ["Optimizer", "register", "create", "names", "get_class", "check_range", "check_lr",
           "unchecked", "hparam_value"]

OPTIMIZERS = Registry("optimizer")
_CHECKS = {"finite": True}


@contextlib.contextmanager
def unchecked():
    """Skip the per-step NaN/Inf check (a host synchronisation) inside this block."""
    saved = _CHECKS["finite"]
    _CHECKS["finite"] = False
    try:
        yield
    finally:
        _CHECKS["finite"] = saved


def register(name):
    """Class decorator: ``create(name, **hparams)`` builds it; its ``paper`` goes to the catalog."""
    return OPTIMIZERS.register(name)


def names():
    """Every registered optimizer, sorted."""
    return OPTIMIZERS.names()


def get_class(name):
    return OPTIMIZERS.get(name)


def create(name, **hparams):
    """``create("adam", lr=1e-3)``: the optimizer ``name`` with the given hyperparameters."""
    return OPTIMIZERS.create(name, **hparams)


def check_range(name, value, low=-math.inf, high=math.inf, low_open=False, high_open=False, where="",
                allow_inf=False):
    """Raise ``ValueError`` unless ``value`` is a real number in the interval; return it as a float.

    Infinite values are rejected unless ``allow_inf`` (an unbounded interval
    does not make ``inf`` a sensible hyperparameter)."""
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    interval = f"{lo}{low:g}, {high:g}{hi}"
    prefix = f"{where}: " if where else ""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{prefix}{name} must be a number in {interval}, got {value!r}")
    v = float(value)
    bad = (math.isnan(v) or v < low or v > high or (low_open and v == low) or (high_open and v == high)
           or (math.isinf(v) and not allow_inf))
    if bad:
        raise ValueError(f"{prefix}{name}={value!r} is out of range: expected {interval}")
    return v


def check_int(name, value, low=0, where=""):
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool) ``>= low``; return it as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        prefix = f"{where}: " if where else ""
        raise ValueError(f"{prefix}{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_lr(name, value, where=""):
    """``lr`` is a float > 0 or a callable schedule ``k -> float``."""
    if callable(value):
        return value
    return check_range(name, value, 0.0, math.inf, low_open=True, where=where)


def hparam_value(value, k):
    """A hyperparameter at step index ``k``: the float itself, or ``schedule(k)``."""
    return float(value(k)) if callable(value) else value


class Optimizer:
    """Base class; see the module docstring. Subclasses set ``defaults`` and override
    ``check``, ``init_slots`` and ``update``."""

    name = "optimizer"
    defaults = {}
    #: hyperparameters that may be schedules (callables of the step index)
    scheduled = ("lr",)
    #: the paper, for the catalog: dict(title=..., authors=..., year=..., arxiv=..., family=...)
    paper = None
    #: for the contract tests: {problem name: hparams} where the defaults do not suit that problem
    descent_hparams = {}
    #: numeric hyperparameters for which a negative value is legitimate
    negative_ok = ()
    # a wrapper also defines ``example_hparams()`` (classmethod) returning e.g. dict(inner=create("sgd"))

    def __init__(self, **hparams):
        unknown = sorted(set(hparams) - set(self.defaults))
        if unknown:
            raise TypeError(f"{self.name}: unknown hyperparameter(s) {unknown}; "
                            f"valid: {sorted(self.defaults)}")
        # NumPy scalars become Python numbers, so they cannot change the params' dtype
        self.hparams = {k: (v.item() if isinstance(v, (np.floating, np.integer)) else v)
                        for k, v in {**self.defaults, **hparams}.items()}
        self.check(self.hparams)

    def __repr__(self):
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items() if not isinstance(v, Optimizer))
        return f"{self.name}({hp})"

    # ---- to override --------------------------------------------------------
    def check(self, hp):
        """Validate hyperparameters (raise ValueError naming the parameter)."""
        if "lr" in hp:
            check_lr("lr", hp["lr"], self.name)

    def init_slots(self, params):
        """The optimizer's slots for ``params`` (e.g. ``{"m": zeros, "v": zeros}``)."""
        return {}

    def update(self, params, grads, state, t, hp):
        """One update from gradients ``grads``; ``t`` is the 1-based step and ``hp`` the
        hyperparameters with schedules evaluated. Returns ``(params, slots)``."""
        raise NotImplementedError

    # ---- the protocol -------------------------------------------------------
    def init(self, params):
        """The initial state: ``{"step": 0, **slots}``."""
        _check_params(self.name, params)
        return {"step": 0, **self.init_slots(params)}

    def hparams_at(self, t):
        """Hyperparameters for step ``t`` (1-based), schedules evaluated at ``t - 1``."""
        return {k: hparam_value(v, t - 1) if k in self.scheduled else v for k, v in self.hparams.items()}

    def step(self, params, state, oracle):
        """Evaluate ``oracle(params)`` and take one step; returns ``(params, state)``."""
        t = int(state["step"]) + 1
        loss, grads = oracle(params)
        check_grads(self.name, params, grads, t)
        new_params, slots = self.update(params, grads, state, t, self.hparams_at(t))
        return new_params, {**slots, "step": t}


def _check_params(where, params):
    if not isinstance(params, dict) or not params:
        raise TypeError(f"{where}: params must be a non-empty dict of float arrays, got {type(params).__name__}")
    for k, v in params.items():
        dt = getattr(v, "dtype", None)
        if dt is None or np.dtype(dt).kind != "f":
            raise TypeError(f"{where}: params[{k!r}] must be a float array, got {type(v).__name__} with dtype {dt}")


def check_grads(where, params, grads, t):
    """Grads must match params key by key (shape, dtype) and, unless unchecked, be finite."""
    if not isinstance(grads, dict) or set(grads) != set(params):
        got = sorted(grads) if isinstance(grads, dict) else type(grads).__name__
        raise KeyError(f"{where}: the oracle returned grads for {got}, expected keys {sorted(params)}")
    for k, g in grads.items():
        p = params[k]
        if tuple(g.shape) != tuple(p.shape) or g.dtype != p.dtype:
            raise ValueError(f"{where}: grads[{k!r}] has shape {tuple(g.shape)} and dtype {g.dtype}, "
                             f"expected {tuple(p.shape)} and {p.dtype} like the parameter")
    if _CHECKS["finite"]:
        for k, g in grads.items():
            if not bool(xp_of(g).isfinite(g).all()):
                raise FloatingPointError(f"{where}: non-finite gradient for parameter {k!r} at step {t}")
