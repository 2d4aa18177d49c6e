"""Optimizers: ``create(name, **hparams)``, ``names()``, and one factory per optimizer.

    opt = reference.optim.create("adam", lr=1e-3)   # or reference.optim.adam(lr=1e-3)
    state = opt.init(params)
    params, state = opt.step(params, state, oracle)

The protocol and the shared checks are in ``base.py``; shared maths in
``common.py``; each algorithm in its own paper file.
"""
from __future__ import annotations

from .base import Optimizer, check_lr, check_range, create, get_class, names, register, unchecked

# paper files register themselves on import
from . import sgd, adam  # noqa: E402,F401


def _factory(name):
    def make(**hparams):
        return create(name, **hparams)
    make.__name__ = name
    make.__doc__ = f"``create({name!r}, **hparams)``.\n\n" + (get_class(name).__doc__ or get_class(name).__module__)
    return make


for _name in names():
    globals()[_name] = _factory(_name)

__all__ = ["Optimizer", "create", "names", "register", "get_class", "check_range", "check_lr", "unchecked"] + names()
