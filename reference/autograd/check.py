"""A numeric gradient checker (central differences in float64), used by the tests.

In the style of HIPS/autograd's ``check_grads``: rather than building whole
Jacobians, it checks directional derivatives along random directions, which
is cheap and catches every wrong rule:

* forward mode: ``jvp(f, x, v)`` against ``(f(x + h v) - f(x - h v)) / 2h``;
* reverse mode: ``<u, J v> == <J^T u, v>`` for random ``u`` and ``v``;
* ``order=2`` repeats both checks on the derivative maps themselves
  (``x -> J(x) v`` and ``x -> J(x)^T u``), so second derivatives are checked.

Central differences have error ``O(h^2)`` from truncation plus ``O(eps/h)``
from rounding; with ``h = 1e-6`` in float64 that is about ``1e-10``
relative, well below the default tolerance ``1e-6``.
"""
from __future__ import annotations

import numpy as np

from ..backend import xp_of
from .functional import _flatten, jvp, vjp
from .tensor import Tensor

__all__ = ["numeric_grad", "numeric_jvp", "relative_error", "check_grads"]


def _value(x):
    return x.value if isinstance(x, Tensor) else x


def _leaves(tree):
    return [_value(x) for x in _flatten(tree)[0]]


def _require_float64(args, where):
    for a in args:
        for leaf in _leaves(a):
            dt = getattr(leaf, "dtype", None)
            if dt is None or np.dtype(dt) != np.float64:
                raise TypeError(f"{where}: central differences need float64 inputs, got {dt}")


def numeric_grad(f, x, eps: float = 1e-6):
    """Gradient of scalar ``f`` at float64 array ``x`` by central differences, one entry at a time."""
    _require_float64((x,), "numeric_grad")
    xp = xp_of(x)
    g = xp.zeros_like(x)
    flat = x.reshape(-1)
    for i in range(flat.size):
        e = xp.zeros_like(flat)
        e[i] = eps
        up = float(_value(f((flat + e).reshape(x.shape))))
        down = float(_value(f((flat - e).reshape(x.shape))))
        g.reshape(-1)[i] = (up - down) / (2 * eps)
    return g


def _axpy_tree(a, v, x):
    """x + a * v over a tuple of trees."""
    out = []
    for xi, vi in zip(x, v):
        xl, rebuild = _flatten(xi)
        vl, _ = _flatten(vi)
        out.append(rebuild([_value(p) + a * _value(q) for p, q in zip(xl, vl)]))
    return tuple(out)


def numeric_jvp(f, primals, tangents, eps: float = 1e-6):
    """``(f(x + h v) - f(x - h v)) / 2h`` for tuples of trees (leaves of the output as a list)."""
    _require_float64(primals, "numeric_jvp")
    up = _leaves(f(*_axpy_tree(eps, tangents, primals)))
    down = _leaves(f(*_axpy_tree(-eps, tangents, primals)))
    return [(u - d) / (2 * eps) for u, d in zip(up, down)]


def relative_error(a, b) -> float:
    """``||a - b|| / max(||a||, ||b||)`` (0 when both are zero); lists of arrays are concatenated."""
    a = [a] if not isinstance(a, (list, tuple)) else a
    b = [b] if not isinstance(b, (list, tuple)) else b
    xp = xp_of(*[_value(x) for x in a])
    diff = float(sum(float(xp.sum((_value(x) - _value(y)) ** 2)) for x, y in zip(a, b))) ** 0.5
    scale = max(float(sum(float(xp.sum(_value(x) ** 2)) for x in a)) ** 0.5,
                float(sum(float(xp.sum(_value(y) ** 2)) for y in b)) ** 0.5)
    return 0.0 if scale == 0.0 else diff / scale


def _random_like(tree, rng):
    leaves, rebuild = _flatten(tree)
    return rebuild([xp_of(_value(x)).asarray(rng.standard_normal(np.shape(_value(x)))) for x in leaves])


def _vdot_leaves(a, b):
    total = 0.0
    for x, y in zip(a, b):
        total += float(xp_of(x).vdot(_value(x).ravel(), _value(y).ravel()))
    return total


def check_grads(f, args, order: int = 1, modes=("fwd", "rev"), eps: float = 1e-6,
                rtol: float = 1e-6, seed: int = 0):
    """Check forward and reverse derivatives of ``f(*args)`` against central differences.

    ``args`` is a tuple of float64 arrays or trees. Raises ``AssertionError``
    with the measured relative error when a check fails; returns the largest
    relative error seen otherwise.
    """
    if not isinstance(args, tuple):
        args = (args,)
    _require_float64(args, "check_grads")
    rng = np.random.default_rng(seed)
    v = tuple(_random_like(a, rng) for a in args)
    numeric = numeric_jvp(f, args, v, eps)
    worst = 0.0
    if "fwd" in modes:
        _, t = jvp(f, args, v)
        err = relative_error(_leaves(t), numeric)
        worst = max(worst, err)
        if err > rtol:
            raise AssertionError(f"forward mode (JVP) disagrees with central differences: relative error {err:.3e} > {rtol:g}")
    if "rev" in modes:
        out, vjp_fn = vjp(f, args)
        u = _random_like(out, rng)
        cts = vjp_fn(u)
        lhs = _vdot_leaves(_leaves(u), numeric)                       # <u, J v> (numeric)
        rhs = sum(_vdot_leaves(_leaves(c), _leaves(vi)) for c, vi in zip(cts, v))  # <J^T u, v>
        err = abs(lhs - rhs) / max(abs(lhs), abs(rhs), 1e-300) if (lhs or rhs) else 0.0
        worst = max(worst, err)
        if err > rtol:
            raise AssertionError(f"reverse mode (VJP) disagrees with central differences: "
                                 f"<u, Jv> = {lhs!r} but <J^T u, v> = {rhs!r} (relative error {err:.3e} > {rtol:g})")
    if order > 1:
        if "fwd" in modes:
            worst = max(worst, check_grads(lambda *a: jvp(f, a, v)[1], args, order - 1, modes, eps, rtol, seed + 1))
        if "rev" in modes:
            out = f(*args)
            u = _random_like(out, rng)
            worst = max(worst, check_grads(lambda *a: vjp(f, a)[1](u), args, order - 1, modes, eps, rtol, seed + 2))
    return worst
