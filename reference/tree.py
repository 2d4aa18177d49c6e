"""Helpers for parameter trees: flat ``dict[str, array]``, like a ``state_dict``.

Every algorithm in the library works on such dicts. These helpers are the one
place where the loops over keys live, so that an optimizer reads like its
equation (``tree.axpy(-lr, g, w)``) instead of a ``for`` over keys.

All functions are pure: they return new dicts and never mutate their inputs.
Keys must match exactly between trees; a mismatch raises ``KeyError`` naming
the missing and the unexpected keys. Reductions (:func:`vdot`,
:func:`global_norm`) return 0-d arrays on the trees' device, not Python floats,
so that no host synchronisation hides in an optimizer's hot loop.
"""
from __future__ import annotations

from typing import Callable, Dict

from .backend import xp_of

Tree = Dict[str, object]

__all__ = ["check_keys", "map", "zip_map", "add", "sub", "scale", "axpy", "vdot",
           "global_norm", "zeros_like", "full_like", "flatten", "unflatten", "size",
           "nbytes", "cast", "copy", "all_finite"]

_builtin_map = map


def check_keys(where: str, ref: Tree, *others: Tree) -> None:
    """Raise ``KeyError`` unless every tree in ``others`` has exactly the keys of ``ref``."""
    if not isinstance(ref, dict):
        raise TypeError(f"{where}: expected a dict of arrays, got {type(ref).__name__}")
    keys = set(ref)
    for o in others:
        if not isinstance(o, dict):
            raise TypeError(f"{where}: expected a dict of arrays, got {type(o).__name__}")
        if set(o) != keys:
            missing = sorted(keys - set(o))
            extra = sorted(set(o) - keys)
            raise KeyError(f"{where}: keys do not match; missing {missing}, unexpected {extra}")


def map(fn: Callable, tree: Tree) -> Tree:  # noqa: A001 - mirrors jax.tree.map
    """``{k: fn(v)}``."""
    return {k: fn(v) for k, v in tree.items()}


def zip_map(fn: Callable, tree: Tree, *others: Tree) -> Tree:
    """``{k: fn(tree[k], other1[k], ...)}`` after checking the keys match."""
    check_keys("tree.zip_map", tree, *others)
    return {k: fn(v, *(o[k] for o in others)) for k, v in tree.items()}


def add(a: Tree, b: Tree) -> Tree:
    """``a + b`` leaf by leaf."""
    return zip_map(lambda x, y: x + y, a, b)


def sub(a: Tree, b: Tree) -> Tree:
    """``a - b`` leaf by leaf."""
    return zip_map(lambda x, y: x - y, a, b)


def scale(c, a: Tree) -> Tree:
    """``c * a`` for a scalar (or 0-d array) ``c``."""
    return {k: c * v for k, v in a.items()}


def axpy(alpha, x: Tree, y: Tree) -> Tree:
    """``alpha * x + y`` (the BLAS name), the shape of most update rules."""
    return zip_map(lambda xi, yi: alpha * xi + yi, x, y)


def vdot(a: Tree, b: Tree):
    """``sum_k <a[k], b[k]>`` as a 0-d array (no host sync)."""
    check_keys("tree.vdot", a, b)
    xp = xp_of(a, b)
    total = None
    for k in a:
        term = xp.vdot(a[k].ravel(), b[k].ravel())
        total = term if total is None else total + term
    return xp.asarray(0.0) if total is None else total


def global_norm(a: Tree):
    """``sqrt(sum_k ||a[k]||^2)``, the norm of the whole tree as one vector (0-d array)."""
    return xp_of(a).sqrt(vdot(a, a))


def zeros_like(a: Tree) -> Tree:
    """A tree of zeros with the shapes, dtypes and device of ``a``."""
    return {k: xp_of(v).zeros_like(v) for k, v in a.items()}


def full_like(a: Tree, value) -> Tree:
    """A tree filled with ``value``, shapes/dtypes/device of ``a``."""
    return {k: xp_of(v).full_like(v, value) for k, v in a.items()}


def copy(a: Tree) -> Tree:
    """A deep copy of the arrays."""
    return {k: v.copy() for k, v in a.items()}


def cast(a: Tree, dtype) -> Tree:
    """Every leaf cast to ``dtype`` (an explicit cast, never done implicitly)."""
    return {k: v.astype(dtype) for k, v in a.items()}


def size(a: Tree) -> int:
    """Total number of scalars in the tree."""
    return int(sum(int(v.size) for v in a.values()))


def nbytes(a: Tree) -> int:
    """Total bytes held by the tree's arrays (used to measure optimizer-state memory).

    Nested dicts (an optimizer state's slots) are counted recursively; leaves
    that are not arrays (the integer ``step``, ``None``) count as 0 bytes.
    """
    total = 0
    for v in a.values():
        if isinstance(v, dict):
            total += nbytes(v)
        elif hasattr(v, "nbytes") and hasattr(v, "shape"):
            total += int(v.nbytes)
    return total


def flatten(a: Tree):
    """Concatenate the leaves (in key order) into one vector; return ``(vector, spec)``.

    ``spec`` records each key's shape and dtype so that :func:`unflatten`
    restores the tree exactly. All leaves must share one dtype.
    """
    xp = xp_of(a)
    keys = list(a)
    dtypes = {a[k].dtype for k in keys}
    if len(dtypes) > 1:
        raise TypeError(f"tree.flatten: leaves have mixed dtypes {sorted(str(d) for d in dtypes)}; cast first")
    spec = [(k, tuple(a[k].shape)) for k in keys]
    if not keys:
        return xp.zeros(0), spec
    return xp.concatenate([a[k].reshape(-1) for k in keys]), spec


def unflatten(vector, spec) -> Tree:
    """Inverse of :func:`flatten`: split ``vector`` back into a tree with ``spec``'s shapes."""
    total = sum(_prod(s) for _, s in spec)
    if vector.ndim != 1 or vector.shape[0] != total:
        raise ValueError(f"tree.unflatten: expected a vector of length {total}, got shape {tuple(vector.shape)}")
    out, i = {}, 0
    for k, shape in spec:
        n = _prod(shape)
        out[k] = vector[i:i + n].reshape(shape)
        i += n
    return out


def all_finite(a: Tree):
    """The first key whose leaf has a NaN or Inf, or ``None`` (this one syncs: for checks, not hot loops)."""
    for k, v in a.items():
        if not bool(xp_of(v).isfinite(v).all()):
            return k
    return None


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
