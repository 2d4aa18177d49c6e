"""The autograd engine: a ``Tensor``, how ops are applied, and the two sweeps.

Read this file first; it is the whole machine. ``ops.py`` holds the derivative
rules (one rule per op) and ``functional.py`` the user-facing transforms
(``grad``, ``jvp``, ...), both built on the three pieces here:

1. **Tensor.** A ``Tensor`` wraps an xp array (``.value``). When it was made
   by an op while recording, it remembers that op, the op's static keyword
   arguments and its input Tensors (``.parents``): the graph lives in the
   tensors themselves, as in micrograd and PyTorch.

2. **Reverse mode** (:func:`backward`). One iterative topological sort of the
   nodes reachable from the outputs, then one sweep from the outputs back to
   the requested inputs, calling each op's VJP rule. Rules are written with
   Tensor ops, so when the sweep itself is recorded (``create_graph``) its
   result can be differentiated again: that is how ``grad(grad(f))`` and
   Hessian-vector products work. When not recorded, the ops in the sweep build
   no graph and cost little more than the NumPy calls they wrap.

3. **Forward mode** (dual numbers). A Tensor may carry tangents, one per
   forward "level" (``.tangents``: ``{level: Tensor}``). Every op that sees an
   input with a tangent computes its output's tangent with the op's JVP rule,
   *as the value is computed*: no backward pass is involved. Levels make
   nested ``jvp`` calls correct (no perturbation confusion): a tangent of
   level ``L`` is computed with levels ``>= L`` switched off, so it carries
   only the tangents of the enclosing (outer) levels.

Both modes compose: a JVP of a function that calls ``grad`` is
forward-over-reverse (the HVP used by :func:`reference.autograd.hvp`); a
``grad`` of a function that calls ``jvp`` is reverse-over-forward.

Decisions written down here:

* Tensor values must be floating point: ``Tensor(int_array)`` raises
  ``TypeError``. Python scalars and 0-d constants adopt the dtype of the
  Tensor they meet (float32 stays float32); float arrays of a *different*
  float dtype are rejected instead of upcast; integer and boolean constant
  arrays (masks, one-hot targets) are cast to the Tensor's dtype.
* A failing op re-raises with its name and the shapes and dtypes of its inputs.
* NumPy ufuncs refuse Tensors (``__array_ufunc__ = None``), so ``np.exp(t)``
  is an error rather than a silent object array: use ``ag.exp(t)``.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..backend import xp_of

__all__ = ["Tensor", "Primitive", "backward", "is_recording", "no_record", "lift", "constant"]


class _State:
    """Global switches of the engine (one per process; the engine is single-threaded)."""

    record = True          # do ops remember their parents? (False inside a plain backward sweep)
    rev_depth = 0          # how many grad()/vjp() traces are open around the current call
    fwd_cutoff = float("inf")  # tangents of levels >= cutoff are not propagated
    open_levels = []       # forward levels currently open (outermost first)


_state = _State()
_level_ids = itertools.count()


def new_level() -> int:
    """A fresh forward-mode level; later (inner) levels get larger numbers."""
    return next(_level_ids)


def is_recording() -> bool:
    return _state.record


class no_record:
    """Context manager: ops inside build no graph (used by a plain backward sweep)."""

    def __enter__(self):
        self._saved = _state.record
        _state.record = False

    def __exit__(self, *exc):
        _state.record = self._saved


class Tensor:
    """An xp array with an optional place in the graph and optional tangents."""

    __slots__ = ("value", "parents", "prim", "kw", "requires_grad", "tangents")
    __array_ufunc__ = None  # make `ndarray * Tensor` call Tensor.__rmul__

    def __init__(self, value, requires_grad: bool = False):
        if isinstance(value, Tensor):
            value = value.value
        if isinstance(value, (float, int)) and not isinstance(value, bool):
            value = np.asarray(float(value))
        dt = getattr(value, "dtype", None)
        if dt is None or np.dtype(dt).kind != "f":
            raise TypeError(f"Tensor needs a floating-point array, got {type(value).__name__}"
                            f" with dtype {dt}; cast explicitly (e.g. x.astype(np.float64))")
        self.value = value
        self.parents = ()
        self.prim = None
        self.kw = None
        self.requires_grad = requires_grad
        self.tangents = {}

    @classmethod
    def _wrap(cls, value):
        """Make a constant Tensor without the checks (values produced by ops)."""
        t = object.__new__(cls)
        t.value = value
        t.parents = ()
        t.prim = None
        t.kw = None
        t.requires_grad = False
        t.tangents = {}
        return t

    # ---- array-like attributes -------------------------------------------
    shape = property(lambda self: tuple(self.value.shape))
    dtype = property(lambda self: self.value.dtype)
    ndim = property(lambda self: self.value.ndim)
    size = property(lambda self: int(self.value.size))

    def __len__(self):
        return len(self.value)

    def __repr__(self):
        extra = " requires_grad" if self.requires_grad else ""
        if self.tangents:
            extra += f" tangents@{sorted(self.tangents)}"
        return f"Tensor({self.value!r}{extra})"

    def item(self):
        return self.value.item()

    def __float__(self):
        return float(self.value)

    def numpy(self):
        """The value as a NumPy array (copies from the GPU)."""
        v = self.value
        return v.get() if hasattr(v, "get") and not isinstance(v, np.ndarray) else np.asarray(v)

    # comparisons give plain boolean arrays: they have no derivative
    def __gt__(self, o): return self.value > _raw(o)
    def __ge__(self, o): return self.value >= _raw(o)
    def __lt__(self, o): return self.value < _raw(o)
    def __le__(self, o): return self.value <= _raw(o)

    __hash__ = object.__hash__  # Tensors are graph nodes, compared by identity

    # arithmetic dunders and methods are attached in ops.py, next to their rules


def _raw(x):
    return x.value if isinstance(x, Tensor) else x


def constant(value, like: Tensor) -> Tensor:
    """Turn a non-Tensor operand into a constant Tensor that can meet ``like``.

    Python scalars and 0-d arrays take ``like``'s dtype (float32 stays
    float32); integer/boolean arrays are cast to it; a float array of another
    float dtype is an error (nothing is upcast silently).
    """
    xp = xp_of(like.value)
    dt = like.value.dtype
    if isinstance(value, (bool, int, float, np.number, np.bool_)) or getattr(value, "ndim", None) == 0:
        return Tensor._wrap(xp.asarray(value, dtype=dt))
    arr = xp.asarray(value)
    kind = arr.dtype.kind
    if kind == "f":
        if arr.dtype != dt:
            raise TypeError(f"operand dtype {arr.dtype} does not match Tensor dtype {dt}; "
                            "cast explicitly, nothing is upcast silently")
        return Tensor._wrap(arr)
    if kind in "biu":
        return Tensor._wrap(arr.astype(dt))
    raise TypeError(f"cannot use an array of dtype {arr.dtype} as an operand of a {dt} Tensor")


def lift(*xs):
    """Make every operand a Tensor; constants adopt the dtype of the first Tensor."""
    like = next((x for x in xs if isinstance(x, Tensor)), None)
    if like is None:
        like = Tensor(xs[0])
        xs = (like,) + xs[1:]
    out = []
    for x in xs:
        if isinstance(x, Tensor):
            if x.value.dtype != like.value.dtype:
                raise TypeError(f"operands have dtypes {like.value.dtype} and {x.value.dtype}; "
                                "cast explicitly, nothing is upcast silently")
            out.append(x)
        else:
            out.append(constant(x, like))
    return out


class Primitive:
    """One op: its forward computation and its two derivative rules.

    ``forward(*values, **kw)`` works on xp arrays. ``vjp(g, out, *inputs, **kw)``
    returns one cotangent per input (a Tensor, or ``None`` for zero).
    A cotangent may also be a zero-argument function, evaluated only when
    that input needs a gradient.
    ``jvp(tangents, out, *inputs, **kw)`` returns the output tangent given one
    input tangent per input (``None`` where zero). Both rules are written with
    Tensor ops, so they are differentiable themselves.
    """

    __slots__ = ("name", "forward", "vjp", "jvp")

    def __init__(self, name, forward, vjp, jvp):
        self.name, self.forward, self.vjp, self.jvp = name, forward, vjp, jvp

    def __call__(self, *inputs, **kw):
        return apply(self, inputs, kw)

    def __repr__(self):
        return f"<primitive {self.name}>"


def apply(prim: Primitive, inputs, kw) -> Tensor:
    """Run ``prim`` on Tensors: compute the value, record the node, push tangents."""
    try:
        value = prim.forward(*[t.value for t in inputs], **kw)
    except (ValueError, IndexError, TypeError) as e:
        shapes = ", ".join(f"{tuple(t.value.shape)} {t.value.dtype}" for t in inputs)
        kind = next(c for c in (ValueError, IndexError, TypeError) if isinstance(e, c))
        raise kind(f"ag.{prim.name}: {e} (inputs: {shapes})") from None
    out = Tensor._wrap(value)
    if _state.record:
        for t in inputs:
            if t.requires_grad:
                out.requires_grad = True
                out.parents = inputs
                out.prim = prim
                out.kw = kw
                break
    # forward mode: push each live level's tangent through the JVP rule
    levels = None
    for t in inputs:
        if t.tangents:
            for lv in t.tangents:
                if lv < _state.fwd_cutoff:
                    levels = {lv} if levels is None else levels | {lv}
    if levels:
        saved = _state.fwd_cutoff
        try:
            for lv in sorted(levels):
                _state.fwd_cutoff = lv  # the tangent carries only outer levels
                tans = [t.tangents.get(lv) for t in inputs]
                out.tangents[lv] = prim.jvp(tans, out, *inputs, **kw)
        finally:
            _state.fwd_cutoff = saved
    return out


def _toposort(outputs, stop):
    """Nodes reachable from ``outputs`` through recorded parents, parents before children.

    Iterative (no recursion limit). The walk does not go past the nodes in
    ``stop`` (the inputs of this differentiation): nothing beyond them can
    depend on them.
    """
    order, seen = [], set()
    stack = [(o, False) for o in outputs if o.requires_grad]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if id(node) not in stop:
            for p in node.parents:
                if p.requires_grad and id(p) not in seen:
                    stack.append((p, False))
    return order


def backward(outputs, cotangents, inputs, create_graph: bool = False):
    """Reverse sweep: cotangents of ``outputs`` -> cotangents of ``inputs`` (Tensors).

    Only nodes that depend on an input are visited on the way back. With
    ``create_graph`` the sweep is recorded, so its results are differentiable.
    Inputs the outputs do not depend on get zeros.
    """
    stop = {id(x) for x in inputs}
    order = _toposort(outputs, stop)
    # a node matters if it is an input or has a parent that matters
    relevant = set(stop)
    for node in order:
        if id(node) not in stop and any(id(p) in relevant for p in node.parents):
            relevant.add(id(node))
    grads = {}
    for o, c in zip(outputs, cotangents):
        if id(o) in relevant:
            grads[id(o)] = grads[id(o)] + c if id(o) in grads else c
    saved = _state.record
    _state.record = bool(create_graph)
    try:
        for node in reversed(order):
            g = grads.get(id(node))
            if g is None or id(node) in stop or node.prim is None:
                continue
            cts = node.prim.vjp(g, node, *node.parents, **node.kw)
            for p, ct in zip(node.parents, cts):
                if ct is None or id(p) not in relevant:
                    continue
                if callable(ct):  # a lazy cotangent: computed only because p needs it
                    ct = ct()
                k = id(p)
                grads[k] = grads[k] + ct if k in grads else ct
    finally:
        _state.record = saved
    xp = xp_of(*[x.value for x in inputs])
    return [grads[id(x)] if id(x) in grads else Tensor._wrap(xp.zeros_like(x.value)) for x in inputs]
