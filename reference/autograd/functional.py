"""The transforms users call: ``grad``, ``value_and_grad``, ``vjp``, ``jvp``,
``hvp``, ``jacobian``, ``hessian`` and ``per_example_grads``.

Inputs and outputs are arrays or trees of arrays (a dict such as a params
dict, a list or a tuple); results have the same structure as the inputs
they refer to. At the top level the results are plain xp arrays. Inside
another transform (``grad(grad(f))``, ``jvp(grad(f), ...)``) they are
Tensors, so that the outer transform can differentiate through them.

How each one works, in terms of the engine in ``tensor.py``:

* ``grad``/``value_and_grad``/``vjp``: wrap the inputs as fresh leaf Tensors
  (connected to the outer graph when the inputs are themselves Tensors), call
  ``f``, then one reverse sweep. The sweep is recorded exactly when an outer
  reverse transform is open, so derivatives of derivatives need no flag.
* ``jvp``: open a fresh forward level, attach the tangents to the inputs,
  call ``f`` once; the output's tangent at that level is the answer. There is
  no backward pass.
* ``hvp(f, x, v)``: forward-over-reverse, ``jvp(grad(f), (x,), (v,))``: one
  gradient evaluation carrying tangents, about the cost of two gradients.
"""
from __future__ import annotations

import numpy as np

from ..backend import xp_of
from . import ops
from .tensor import Tensor, _state, backward, new_level

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "hvp", "jacobian", "hessian", "per_example_grads"]


# ---- trees of arrays -------------------------------------------------------

def _flatten(tree, where="input"):
    """Leaves of ``tree`` (dict / list / tuple / array / Tensor) and a function to rebuild it."""
    if isinstance(tree, dict):
        keys = list(tree)
        return [tree[k] for k in keys], lambda leaves: dict(zip(keys, leaves))
    if isinstance(tree, (list, tuple)) and all(not isinstance(v, (dict, list, tuple)) for v in tree):
        kind = type(tree)
        return list(tree), lambda leaves: kind(leaves)
    if isinstance(tree, (list, tuple)):
        parts = [_flatten(v, where) for v in tree]
        sizes = [len(p[0]) for p in parts]
        kind = type(tree)

        def rebuild(leaves):
            out, i = [], 0
            for (_, rb), n in zip(parts, sizes):
                out.append(rb(leaves[i:i + n]))
                i += n
            return kind(out)
        return [leaf for p in parts for leaf in p[0]], rebuild
    return [tree], lambda leaves: leaves[0]


def _names(tree):
    if isinstance(tree, dict):
        return [repr(k) for k in tree]
    leaves, _ = _flatten(tree)
    return [f"#{i}" for i in range(len(leaves))] if len(leaves) > 1 else ["argument"]


def _leaf(x, name, where):
    """A fresh leaf Tensor for ``x``; linked to ``x`` when ``x`` is itself a Tensor."""
    if isinstance(x, Tensor):
        t = ops.identity(x)
    else:
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            x = np.asarray(float(x))
        dt = getattr(x, "dtype", None)
        if dt is None or np.dtype(dt).kind != "f":
            raise TypeError(f"ag.{where}: can only differentiate with respect to floating-point arrays; "
                            f"{name} is {type(x).__name__} with dtype {dt}")
        t = Tensor._wrap(x)
    t.requires_grad = True
    return t


def _nested() -> bool:
    """True while an outer transform is open: results stay Tensors for it."""
    return _state.rev_depth > 0 or bool(_state.open_levels)


def _export(t):
    if not isinstance(t, Tensor):
        return t
    return t if _nested() else t.value


def _as_tensor(out, like):
    if isinstance(out, Tensor):
        return out
    xp = xp_of(like.value)
    arr = xp.asarray(out)
    if arr.dtype.kind != "f":
        raise TypeError(f"the differentiated function returned dtype {arr.dtype}; it must return floats")
    return Tensor._wrap(arr)


# ---- reverse mode ----------------------------------------------------------

def _trace(f, primals, where):
    """Call ``f`` on fresh leaves for ``primals`` (a tuple of trees); return (leaves, rebuilds, out)."""
    leaves_all, rebuilds, args = [], [], []
    for p in primals:
        leaves, rebuild = _flatten(p)
        names = _names(p)
        ts = [_leaf(x, n, where) for x, n in zip(leaves, names)]
        leaves_all.append(ts)
        rebuilds.append(rebuild)
        args.append(rebuild(ts))
    _state.rev_depth += 1
    try:
        out = f(*args)
    finally:
        _state.rev_depth -= 1
    return leaves_all, rebuilds, out


def value_and_grad(f, has_aux=False):
    """``(f(params, *args), df/dparams)`` for a scalar-valued ``f``.

    The gradient has the structure of ``params`` (a dict, list, tuple or
    array). With ``has_aux=True``, ``f`` returns ``(loss, aux)`` and the
    result is ``((loss, aux), grads)``.
    """

    def wrapped(params, *args, **kwargs):
        (xs,), (rebuild,), out = _trace(lambda p: f(p, *args, **kwargs), (params,), "grad")
        aux = None
        if has_aux:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError("ag.value_and_grad(has_aux=True): f must return (loss, aux)")
            out, aux = out
        like = xs[0] if xs else Tensor(0.0)
        out = _as_tensor(out, like)
        if out.size != 1:
            raise TypeError(f"ag.grad: f must return a scalar, got an array of shape {out.shape}; "
                            "use ag.vjp or ag.jacobian for vector outputs")
        seed = Tensor._wrap(xp_of(out.value).ones_like(out.value))
        gs = backward([out], [seed], xs, create_graph=_state.rev_depth > 0)
        value = _export(out)
        grads = rebuild([_export(g) for g in gs])
        return ((value, aux), grads) if has_aux else (value, grads)

    wrapped.__name__ = f"value_and_grad({getattr(f, '__name__', 'f')})"
    return wrapped


def grad(f, has_aux=False):
    """``df/dparams`` for a scalar-valued ``f(params, *args)``; same structure as ``params``."""
    vg = value_and_grad(f, has_aux=has_aux)

    def wrapped(params, *args, **kwargs):
        (value_aux, g) = vg(params, *args, **kwargs)
        return (g, value_aux[1]) if has_aux else g

    wrapped.__name__ = f"grad({getattr(f, '__name__', 'f')})"
    return wrapped


def vjp(f, primals):
    """``(f(*primals), vjp_fn)``; ``vjp_fn(cotangent)`` gives one cotangent per primal.

    ``primals`` is a tuple of arguments (each an array or a tree). The output
    of ``f`` may be an array or a tree; the cotangent has its structure.
    """
    if not isinstance(primals, tuple):
        raise TypeError(f"ag.vjp: primals must be a tuple of arguments, got {type(primals).__name__}")
    leaves, rebuilds, out = _trace(f, primals, "vjp")
    out_leaves, out_rebuild = _flatten(out)
    like = next((x for ls in leaves for x in ls), Tensor(0.0))
    out_leaves = [_as_tensor(o, like) for o in out_leaves]
    flat_inputs = [x for ls in leaves for x in ls]

    def vjp_fn(cotangent):
        ct_leaves, _ = _flatten(cotangent)
        if len(ct_leaves) != len(out_leaves):
            raise ValueError(f"ag.vjp: cotangent has {len(ct_leaves)} leaves, the output has {len(out_leaves)}")
        cts = []
        for c, o in zip(ct_leaves, out_leaves):
            c = c if isinstance(c, Tensor) else Tensor._wrap(xp_of(o.value).asarray(c, dtype=o.dtype))
            if c.shape != o.shape:
                raise ValueError(f"ag.vjp: cotangent shape {c.shape} does not match output shape {o.shape}")
            cts.append(c)
        gs = backward(out_leaves, cts, flat_inputs, create_graph=_state.rev_depth > 0)
        res, i = [], 0
        for ls, rb in zip(leaves, rebuilds):
            res.append(rb([_export(g) for g in gs[i:i + len(ls)]]))
            i += len(ls)
        return tuple(res)

    return out_rebuild([_export(o) for o in out_leaves]), vjp_fn


# ---- forward mode ----------------------------------------------------------

def jvp(f, primals, tangents):
    """``(f(*primals), J_f(primals) @ tangents)`` by true forward mode (dual numbers).

    ``primals`` and ``tangents`` are tuples of matching structure. ``f`` is
    evaluated once; no backward pass runs.
    """
    if not isinstance(primals, tuple) or not isinstance(tangents, tuple):
        raise TypeError("ag.jvp: primals and tangents must be tuples of arguments")
    if len(primals) != len(tangents):
        raise ValueError(f"ag.jvp: {len(primals)} primals but {len(tangents)} tangents")
    level = new_level()
    args = []
    for p, t in zip(primals, tangents):
        pl, rebuild = _flatten(p)
        tl, _ = _flatten(t)
        if len(pl) != len(tl):
            raise ValueError(f"ag.jvp: a primal has {len(pl)} leaves but its tangent has {len(tl)}")
        if isinstance(p, dict) and isinstance(t, dict) and set(p) != set(t):
            raise KeyError(f"ag.jvp: tangent keys {sorted(t)} do not match primal keys {sorted(p)}")
        xs = []
        for i, (x, tx) in enumerate(zip(pl, tl)):
            xt = ops.identity(x) if isinstance(x, Tensor) else _leaf(x, f"#{i}", "jvp")
            if not isinstance(x, Tensor):
                xt.requires_grad = False
            tx = tx if isinstance(tx, Tensor) else Tensor._wrap(xp_of(xt.value).asarray(tx))
            if tx.shape != xt.shape or tx.dtype != xt.dtype:
                raise ValueError(f"ag.jvp: tangent {tx.shape} {tx.dtype} does not match primal {xt.shape} {xt.dtype}")
            xt.tangents = dict(xt.tangents)
            xt.tangents[level] = tx
            xs.append(xt)
        args.append(rebuild(xs))
    _state.open_levels.append(level)
    try:
        out = f(*args)
    finally:
        _state.open_levels.pop()
    out_leaves, out_rebuild = _flatten(out)
    like = Tensor(0.0)
    primal_out, tangent_out = [], []
    for o in out_leaves:
        o = _as_tensor(o, like) if not isinstance(o, Tensor) else o
        t = o.tangents.get(level)
        if t is None:
            t = Tensor._wrap(xp_of(o.value).zeros_like(o.value))
        p = ops.identity(o) if o.tangents else o
        p.tangents = {k: v for k, v in o.tangents.items() if k != level}
        primal_out.append(_export(p))
        tangent_out.append(_export(t))
    return out_rebuild(primal_out), out_rebuild(tangent_out)


def hvp(f, params, v, *args):
    """Hessian-vector product ``H(params) v`` of scalar ``f(params, *args)``, forward-over-reverse."""
    return jvp(lambda p: grad(f)(p, *args), (params,), (v,))[1]


def jacobian(f, mode="auto"):
    """``jacobian(f)(x)``: the array ``d f(x)[i] / d x[j]`` of shape ``out.shape + x.shape``.

    ``mode="rev"`` uses one VJP per output entry, ``"fwd"`` one JVP per input
    entry, ``"auto"`` whichever needs fewer sweeps.
    """
    if mode not in ("auto", "rev", "fwd"):
        raise ValueError(f"ag.jacobian: mode must be 'auto', 'rev' or 'fwd', got {mode!r}")

    def wrapped(x, *args):
        xv = x.value if isinstance(x, Tensor) else x
        xp = xp_of(xv)
        if mode == "fwd":
            out = f(x, *args)  # only its shape is needed: no reverse trace
        else:
            out, vjp_fn = vjp(lambda x_: f(x_, *args), (x,))
        ov = out.value if isinstance(out, Tensor) else xp.asarray(out)
        m = mode if mode != "auto" else ("fwd" if xv.size < ov.size else "rev")
        rows = []
        if m == "rev":
            for i in range(ov.size):
                e = xp.zeros(ov.size, dtype=ov.dtype)
                e[i] = 1
                rows.append(vjp_fn(e.reshape(ov.shape))[0])
            stacked = ops.stack(rows) if _nested() else xp.stack(rows)
            return ops.reshape(stacked, ov.shape + xv.shape) if _nested() else stacked.reshape(ov.shape + xv.shape)
        for j in range(xv.size):
            e = xp.zeros(xv.size, dtype=xv.dtype)
            e[j] = 1
            rows.append(jvp(lambda x_: f(x_, *args), (x,), (e.reshape(xv.shape),))[1])
        if _nested():
            cols = ops.stack([ops.reshape(r, (ov.size,)) for r in rows], axis=1)
            return ops.reshape(cols, ov.shape + xv.shape)
        return xp.stack([r.reshape(ov.size) for r in rows], axis=1).reshape(ov.shape + xv.shape)

    return wrapped


def hessian(f):
    """``hessian(f)(x)``: the dense Hessian of scalar ``f`` at array ``x`` (shape ``x.shape * 2``)."""
    return jacobian(grad(f), mode="fwd")


# ---- per-example gradients -------------------------------------------------

def per_example_grads(f):
    """Per-example gradients of a batched loss.

    ``f(params, *batch)`` returns one loss per example (shape ``(B,)``);
    every array in ``batch`` has the batch on axis 0. The result is a tree
    like ``params`` whose leaves have a leading axis of size ``B``: leaf
    ``[i]`` is the gradient of loss ``i`` alone. Computed exactly, one
    example at a time (what ``torch.func.vmap(grad(...))`` computes).
    """

    def wrapped(params, *batch):
        if not batch:
            raise TypeError("ag.per_example_grads: pass the batch arrays after params")
        sizes = {int(b.shape[0]) for b in batch}
        if len(sizes) != 1:
            raise ValueError(f"ag.per_example_grads: batch arrays disagree on the batch size: "
                             f"{[tuple(b.shape) for b in batch]}")
        n = sizes.pop()
        losses = f(params, *batch)
        lshape = tuple(getattr(losses, "shape", ()))
        if lshape != (n,):
            raise ValueError(f"ag.per_example_grads: f must return one loss per example, shape ({n},), got {lshape}")
        g_one = grad(lambda p, *b: ops.sum(f(p, *b)))
        per = [g_one(params, *[b[i:i + 1] for b in batch]) for i in range(n)]
        leaves0, rebuild = _flatten(per[0])
        cols = [_flatten(g)[0] for g in per]
        xp = xp_of(*leaves0)
        stack = ops.stack if _nested() else xp.stack
        return rebuild([stack([c[j] for c in cols]) for j in range(len(leaves0))])

    return wrapped
