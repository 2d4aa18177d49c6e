"""Synthetic test problems: ``reference.problems.create(name, **kw)`` and ``names()``.

Every problem is a :class:`~reference.problems.base.Problem`: ``init(seed)``,
``loss(params, batch=None)``, ``oracle(batch=None)`` (a rich oracle with
``value_and_grad``, ``loss``, ``hvp``, ``per_sample_grads``),
``sample_batch(rng, size)``, and ``optimum`` / ``optimal_value`` where known.

Every module of this package is imported (and so registers its problems);
the families live in one module each: ``convex`` (quadratics, least squares,
logistic/softmax regression, lasso), ``nonconvex`` (Rosenbrock, Beale,
Rastrigin, matrix sensing, phase retrieval, scalar and deep linear networks),
``networks`` (MLPs on two spirals, blobs, checkerboard, 1-D regression) and
``shapes`` (a CNN on generated shape images with object masks).
"""
from __future__ import annotations

from .base import Oracle, Problem

_REGISTRY = {}


def register(name):
    """Class decorator: make a problem available as ``create(name, **kw)``."""

    def deco(cls):
        if name in _REGISTRY:
            raise ValueError(f"problem {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def names():
    """Every registered problem name, sorted."""
    return sorted(_REGISTRY)


def create(name, **kw):
    """Build problem ``name`` with keyword settings (see each problem's docstring)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown problem {name!r}; valid names: {', '.join(names())}")
    return _REGISTRY[name](**kw)


def get_class(name):
    """The class behind ``name`` (to read its docstring or defaults)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown problem {name!r}; valid names: {', '.join(names())}")
    return _REGISTRY[name]


def _import_all():
    """Every module of this package registers its problems on import."""
    import importlib
    import pkgutil
    for m in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if m != "base" and not m.startswith("_"):
            importlib.import_module(f"{__name__}.{m}")


_import_all()

__all__ = ["create", "names", "register", "get_class", "Problem", "Oracle"]
