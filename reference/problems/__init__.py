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

from ..registry import Registry
from .base import Oracle, Problem

PROBLEMS = Registry("problem")


def register(name):
    """Class decorator: make a problem available as ``create(name, **kw)``."""
    return PROBLEMS.register(name)


def names():
    """Every registered problem name, sorted."""
    return PROBLEMS.names()


def create(name, **kw):
    """Build problem ``name`` with keyword settings (see each problem's docstring)."""
    return PROBLEMS.create(name, **kw)


def get_class(name):
    """The class behind ``name`` (to read its docstring or defaults)."""
    return PROBLEMS.get(name)


def _import_all():
    """Every module of this package registers its problems on import."""
    import importlib
    import pkgutil
    for m in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if m != "base" and not m.startswith("_"):
            importlib.import_module(f"{__name__}.{m}")


_import_all()

__all__ = ["create", "names", "register", "get_class", "Problem", "Oracle"]
