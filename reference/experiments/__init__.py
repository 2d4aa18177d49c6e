"""Demonstrations: one module per paper claim shown in miniature.

Each module offers

    result = module.run(**settings)   # a dict of the numbers the claim rests on
    module.plot(result, ax=None)      # the figure (matplotlib)

Default settings finish in seconds on a laptop CPU. A test asserts the
paper's claim on ``run()``'s result, and the lessons call the same functions.
:func:`names` lists the modules. A module for a DEMONSTRATE paper calls
``register(__name__, title=..., family=..., ...)`` at import, which puts it in
the catalog as a demonstration.
"""
from __future__ import annotations

import importlib
import pkgutil

from .. import catalog

__all__ = ["names", "get", "register", "with_defaults"]


def names():
    """The experiment modules, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get(name):
    """The experiment module ``name`` (its ``run`` and ``plot``)."""
    if name not in names():
        raise KeyError(f"unknown experiment {name!r}; valid names: {', '.join(names())}")
    return importlib.import_module(f"{__name__}.{name}")


def register(module_name, *, title, authors="", year=None, arxiv="", family, name=None):
    """Called at the top of a DEMONSTRATE paper's module: adds it to the catalog."""
    catalog.register(title=title, name=name or module_name.rsplit(".", 1)[-1], family=family,
                     kind="demonstration", module=module_name, authors=authors, year=year, arxiv=arxiv)


def with_defaults(module_name, defaults, settings):
    """``{**defaults, **settings}`` for an experiment's ``run(**settings)``; a setting that is not in
    ``defaults`` is a ``TypeError`` naming it and the valid ones."""
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise TypeError(f"{module_name.rsplit('.', 1)[-1]}.run: unknown settings {unknown}; "
                        f"valid: {sorted(defaults)}")
    return {**defaults, **settings}


# import every experiment so that demonstrations register in the catalog
for _m in names():
    importlib.import_module(f"{__name__}.{_m}")
