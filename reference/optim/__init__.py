"""Optimizers: ``create(name, **hparams)``, ``names()``, and one factory per optimizer.

    opt = reference.optim.create("adam", lr=1e-3)   # or reference.optim.adam(lr=1e-3)
    state = opt.init(params)
    params, state = opt.step(params, state, oracle)

The protocol and the shared checks are in ``base.py``; shared maths in
``common.py``; each algorithm in its own paper file, which registers itself:
every module of this package is imported here, so a new paper file needs no
edit anywhere else.

The factories (``reference.optim.adam``) share their names with the paper
files; to read or import a paper file's own functions use
``from reference.optim.adam import adam_kernel`` (which works) rather than
``import reference.optim.adam as m`` (which returns the factory).
"""
from __future__ import annotations

from .base import Optimizer, check_lr, check_range, create, get_class, names, register, unchecked

import importlib as _importlib
import pkgutil as _pkgutil

# paper files register themselves on import: import every module of the package
for _m in sorted(m.name for m in _pkgutil.iter_modules(__path__)):
    if _m not in ("base", "common") and not _m.startswith("_"):
        _importlib.import_module(f"{__name__}.{_m}")

from .clipping import clip_by_global_norm  # noqa: E402


def _factory(name):
    def make(**hparams):
        return create(name, **hparams)
    make.__name__ = name
    make.__doc__ = f"``create({name!r}, **hparams)``.\n\n" + (get_class(name).__doc__ or get_class(name).__module__)
    return make


for _name in names():
    globals()[_name] = _factory(_name)

__all__ = ["Optimizer", "create", "names", "register", "get_class", "check_range", "check_lr", "unchecked",
           "clip_by_global_norm"] + names()
