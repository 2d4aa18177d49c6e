"""Every op of the autograd, with its derivative rules kept together.

Each primitive is one ``Primitive(name, forward, vjp, jvp)``:

* ``forward`` computes the value with the array module of the inputs;
* ``vjp(g, out, *inputs)`` pulls an output cotangent back to the inputs;
* ``jvp(tangents, out, *inputs)`` pushes input tangents forward to the output.

Three families make the table short:

* **elementwise** ops give their partial derivatives ``d out / d input_i`` once
  (:func:`elementwise`); the VJP is ``sum_to(g * partial_i, shape_i)`` (the
  one place where broadcasting is undone) and the JVP is ``sum_i t_i * partial_i``;

A VJP rule may return a cotangent as a zero-argument function (a thunk);
the reverse sweep calls it only for inputs that need a gradient, so e.g.
the gradient of a network with respect to its input batch is never formed.
* **linear** ops (reshape, transpose, sum, indexing, im2col, ...) have the op
  itself as JVP (:func:`linear`) and a transpose as VJP;
* everything else (matmul, max, where, ...) spells both rules out.

Ops that have a simple formula in terms of primitives (``mean``, ``softmax``,
``logsumexp``, ``conv2d``, ``cross_entropy``, ...) are written as that formula
below the table: their derivatives, to any order, come from the primitives.

Names follow NumPy where NumPy has the op and ``torch.nn.functional``
otherwise (see the contract in ARCHITECTURE.md).
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import xp_of
from .tensor import Primitive, Tensor, lift

_xp = xp_of


def _zeros(like: Tensor) -> Tensor:
    return Tensor._wrap(_xp(like.value).zeros_like(like.value))


def _add_tangents(terms, shape):
    """Sum the non-None tangent terms and broadcast to ``shape``."""
    total = None
    for t in terms:
        if t is not None:
            total = t if total is None else total + t
    if total.shape != shape:
        total = broadcast_to(total, shape)
    return total


def _times(g, p):
    """``g * p``, skipping the multiply when the partial is the constant +-1."""
    if isinstance(p, float) and p in (1.0, -1.0):
        return g if p == 1.0 else -g
    return g * p


# --------------------------------------------------------------------------
# elementwise ops: forward + partial derivatives
# --------------------------------------------------------------------------

def elementwise(name, forward, partials):
    """An elementwise primitive from ``partials(out, *inputs) -> tuple of Tensors``."""

    def vjp(g, out, *inputs):
        ps = partials(out, *inputs)
        # each cotangent is a thunk: the sweep evaluates only those of inputs that need one
        return tuple(None if p is None else (lambda p=p, x=x: sum_to(_times(g, p), x.shape))
                     for p, x in zip(ps, inputs))

    def jvp(tans, out, *inputs):
        ps = partials(out, *inputs)
        return _add_tangents([None if t is None or p is None else _times(t, p)
                              for t, p in zip(tans, ps)], out.shape)

    return Primitive(name, forward, vjp, jvp)


_add = elementwise("add", lambda a, b: a + b, lambda out, a, b: (1.0, 1.0))
_sub = elementwise("subtract", lambda a, b: a - b, lambda out, a, b: (1.0, -1.0))
_mul = elementwise("multiply", lambda a, b: a * b, lambda out, a, b: (b, a))
_div = elementwise("divide", lambda a, b: a / b, lambda out, a, b: (1.0 / b, -out / b))
_neg = elementwise("negative", lambda a: -a, lambda out, a: (-1.0,))
_exp = elementwise("exp", lambda a: _xp(a).exp(a), lambda out, a: (out,))
_log = elementwise("log", lambda a: _xp(a).log(a), lambda out, a: (1.0 / a,))
_log1p = elementwise("log1p", lambda a: _xp(a).log1p(a), lambda out, a: (1.0 / (1.0 + a),))
_sin = elementwise("sin", lambda a: _xp(a).sin(a), lambda out, a: (cos(a),))
_cos = elementwise("cos", lambda a: _xp(a).cos(a), lambda out, a: (-sin(a),))
_tanh = elementwise("tanh", lambda a: _xp(a).tanh(a), lambda out, a: (1.0 - out * out,))
_sqrt = elementwise("sqrt", lambda a: _xp(a).sqrt(a), lambda out, a: (0.5 / out,))
_abs = elementwise("abs", lambda a: _xp(a).abs(a), lambda out, a: (_xp(a.value).sign(a.value),))
# sigmoid = (1 + tanh(x/2)) / 2 is stable for any x and works on every backend
_sigmoid = elementwise("sigmoid", lambda a: 0.5 * (1 + _xp(a).tanh(0.5 * a)),
                       lambda out, a: (out * (1.0 - out),))
_softplus = elementwise("softplus", lambda a: _xp(a).logaddexp(0, a), lambda out, a: (sigmoid(a),))
_erf = elementwise("erf", lambda a: _special(a).erf(a),
                   lambda out, a: ((2.0 / math.sqrt(math.pi)) * exp(-a * a),))
# x ** c for a constant exponent c (the common case, no log(x) needed)
_pow_const = Primitive(
    "power",
    lambda a, exponent: a ** exponent,
    lambda g, out, a, exponent: (g * (exponent * a ** (exponent - 1)),),
    lambda tans, out, a, exponent: tans[0] * (exponent * a ** (exponent - 1)),
)
# x ** y for a Tensor exponent: d/dy = x**y log x (defined for x > 0)
_pow = elementwise("power", lambda a, b: a ** b,
                   lambda out, a, b: (b * a ** (b - 1.0), out * log(a)))


def _tie_split(a, b, pick_a):
    """Weights of a and b in maximum/minimum: 1/0 where one wins, 1/2 each on ties."""
    av, bv = a.value, b.value
    wa = _xp(av).where(pick_a(av, bv), 1.0, _xp(av).where(av == bv, 0.5, 0.0)).astype(av.dtype)
    return Tensor._wrap(wa), Tensor._wrap((1.0 - wa).astype(av.dtype))


_maximum = elementwise("maximum", lambda a, b: _xp(a).maximum(a, b),
                       lambda out, a, b: _tie_split(a, b, lambda x, y: x > y))
_minimum = elementwise("minimum", lambda a, b: _xp(a).minimum(a, b),
                       lambda out, a, b: _tie_split(a, b, lambda x, y: x < y))


def _special(a):
    """scipy.special or cupyx.scipy.special, whichever matches the array."""
    if _xp(a) is np:
        import scipy.special
        return scipy.special
    import cupyx.scipy.special
    return cupyx.scipy.special


# where(cond, a, b): cond is a constant boolean array (no derivative)
_where = Primitive(
    "where",
    lambda a, b, cond: _xp(a).where(cond, a, b),
    lambda g, out, a, b, cond: (lambda: sum_to(where(cond, g, 0.0), a.shape),
                                lambda: sum_to(where(cond, 0.0, g), b.shape)),
    lambda tans, out, a, b, cond: broadcast_to(
        where(cond, tans[0] if tans[0] is not None else _zeros(a),
              tans[1] if tans[1] is not None else _zeros(b)), out.shape),
)

# --------------------------------------------------------------------------
# linear ops: the JVP is the op itself; the VJP is its transpose
# --------------------------------------------------------------------------


def linear(name, forward, transpose):
    """A primitive linear in its (single) input: JVP = itself, VJP = ``transpose``."""
    prim = Primitive(name, forward,
                     lambda g, out, x, **kw: (transpose(g, x, **kw),),
                     lambda tans, out, x, **kw: prim(tans[0], **kw))
    return prim


def _sum_forward(a, axis, keepdims):
    return _xp(a).sum(a, axis=axis, keepdims=keepdims)


def _expand_reduced(g, x_shape, axis, keepdims):
    """Put back the reduced axes of ``g`` as size-1 axes, so it broadcasts against x."""
    if keepdims or axis is None and g.ndim == len(x_shape):
        return g
    if axis is None:
        return reshape(g, (1,) * len(x_shape))
    axes = (axis,) if isinstance(axis, int) else axis
    shape = list(g.shape)
    for ax in sorted(a % len(x_shape) for a in axes):
        shape.insert(ax, 1)
    return reshape(g, tuple(shape))


_sum = linear("sum", _sum_forward,
              lambda g, x, axis, keepdims: broadcast_to(_expand_reduced(g, x.shape, axis, keepdims), x.shape))
_broadcast_to = linear("broadcast_to", lambda a, shape: _xp(a).broadcast_to(a, shape),
                       lambda g, x, shape: sum_to(g, x.shape))


def _sum_to_forward(a, shape):
    """Sum ``a`` down to ``shape`` (undo NumPy broadcasting)."""
    if a.shape == tuple(shape):
        return a
    lead = a.ndim - len(shape)
    if lead < 0:
        raise ValueError(f"cannot sum shape {a.shape} down to {tuple(shape)}")
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and a.shape[lead + i] != 1)
    return _xp(a).sum(a, axis=axes, keepdims=True).reshape(shape) if axes else a.reshape(shape)


_sum_to = linear("sum_to", _sum_to_forward, lambda g, x, shape: broadcast_to(g, x.shape))
_reshape = linear("reshape", lambda a, shape: a.reshape(shape), lambda g, x, shape: reshape(g, x.shape))
_transpose = linear("transpose", lambda a, axes: _xp(a).transpose(a, axes),
                    lambda g, x, axes: transpose(g, None if axes is None else tuple(np.argsort(axes))))


def _is_basic(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice, type(None), type(Ellipsis))) or i is Ellipsis for i in items)


def _scatter_forward(g, index, shape):
    xp = _xp(g)
    out = xp.zeros(shape, dtype=g.dtype)
    if _is_basic(index):
        out[index] = g
    elif xp is np:
        np.add.at(out, index, g)
    else:  # pragma: no cover - GPU only
        import cupyx
        cupyx.scatter_add(out, index, g)
    return out


_getitem = linear("getitem", lambda a, index: a[index], lambda g, x, index: _scatter(g, index=index, shape=x.shape))
_scatter = linear("scatter_add", _scatter_forward, lambda g, x, index, shape: _getitem(g, index=index))


def _im2col_forward(x, kh, kw, stride, padding, fill):
    """(N, C, H, W) -> (N, C*kh*kw, OH*OW): every kh x kw window as a column."""
    xp = _xp(x)
    n, c, h, w = x.shape
    if padding:
        x = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=fill)
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (w + 2 * padding - kw) // stride + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"kernel {kh}x{kw} does not fit the padded input {h + 2 * padding}x{w + 2 * padding}")
    cols = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
    return cols.reshape(n, c * kh * kw, oh * ow)


def _col2im_forward(cols, shape, kh, kw, stride, padding):
    """The transpose of im2col: add every column back into its window."""
    xp = _xp(cols)
    n, c, h, w = shape
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (w + 2 * padding - kw) // stride + 1
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    x = xp.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += cols[:, :, i, j]
    return x[:, :, padding:padding + h, padding:padding + w]


# im2col pads with `fill` (-inf for max pooling), so it is affine: tangents are padded with 0
_im2col = Primitive(
    "im2col", _im2col_forward,
    lambda g, out, x, kh, kw, stride, padding, fill: (_col2im(g, shape=x.shape, kh=kh, kw=kw,
                                                              stride=stride, padding=padding),),
    lambda tans, out, x, **kw: _im2col(tans[0], **{**kw, "fill": 0.0}),
)
_col2im = linear("col2im", _col2im_forward,
                 lambda g, x, shape, kh, kw, stride, padding: _im2col(g, kh=kh, kw=kw, stride=stride,
                                                                      padding=padding, fill=0.0))

# --------------------------------------------------------------------------
# the rest: matmul, max, concatenate, stop_gradient
# --------------------------------------------------------------------------


def _mT(t):
    axes = list(range(t.ndim))
    axes[-2], axes[-1] = axes[-1], axes[-2]
    return transpose(t, tuple(axes))


_matmul = Primitive(
    "matmul",
    lambda a, b: _xp(a).matmul(a, b),
    lambda g, out, a, b: (lambda: sum_to(g @ _mT(b), a.shape), lambda: sum_to(_mT(a) @ g, b.shape)),
    lambda tans, out, a, b: _add_tangents([None if tans[0] is None else tans[0] @ b,
                                           None if tans[1] is None else a @ tans[1]], out.shape),
)


def _max_weights(x, out, axis, keepdims):
    """Where the maximum sits, as weights (ties share the derivative equally)."""
    xv = x.value
    ov = _expand_reduced(out, x.shape, axis, keepdims).value
    mask = (xv == ov).astype(xv.dtype)
    return Tensor._wrap(mask / mask.sum(axis=axis, keepdims=True))


_max = Primitive(
    "max",
    lambda a, axis, keepdims: _xp(a).max(a, axis=axis, keepdims=keepdims),
    lambda g, out, x, axis, keepdims: (_expand_reduced(g, x.shape, axis, keepdims) * _max_weights(x, out, axis, keepdims),),
    lambda tans, out, x, axis, keepdims: sum(tans[0] * _max_weights(x, out, axis, keepdims), axis=axis, keepdims=keepdims),
)


def _concat_vjp(g, out, *xs, axis):
    cuts, start = [], 0
    for x in xs:
        index = [slice(None)] * g.ndim
        index[axis] = slice(start, start + x.shape[axis])
        cuts.append(g[tuple(index)])
        start += x.shape[axis]
    return tuple(cuts)


_concatenate = Primitive(
    "concatenate",
    lambda *arrays, axis: _xp(*arrays).concatenate(arrays, axis=axis),
    _concat_vjp,
    lambda tans, out, *xs, axis: concatenate([t if t is not None else _zeros(x) for t, x in zip(tans, xs)], axis=axis),
)

_stop_gradient = Primitive("stop_gradient", lambda a: a, lambda g, out, a: (None,),
                           lambda tans, out, a: _zeros(a))
_identity = Primitive("identity", lambda a: a, lambda g, out, a: (g,), lambda tans, out, a: tans[0])

# --------------------------------------------------------------------------
# the public functions (NumPy names, then torch.nn.functional names)
# --------------------------------------------------------------------------


def _binary(prim, a, b):
    a, b = lift(a, b)
    return prim(a, b)


def _unary(prim):
    def op(x):
        (x,) = lift(x)
        return prim(x)
    op.__name__ = prim.name
    op.__doc__ = f"Elementwise ``{prim.name}`` (differentiable in both modes)."
    return op


add = lambda a, b: _binary(_add, a, b)  # noqa: E731
subtract = lambda a, b: _binary(_sub, a, b)  # noqa: E731
multiply = lambda a, b: _binary(_mul, a, b)  # noqa: E731
divide = lambda a, b: _binary(_div, a, b)  # noqa: E731
maximum = lambda a, b: _binary(_maximum, a, b)  # noqa: E731
minimum = lambda a, b: _binary(_minimum, a, b)  # noqa: E731
negative = _unary(_neg)
exp = _unary(_exp)
log = _unary(_log)
log1p = _unary(_log1p)
sin = _unary(_sin)
cos = _unary(_cos)
tanh = _unary(_tanh)
sqrt = _unary(_sqrt)
abs = _unary(_abs)  # noqa: A001 - NumPy's name
sigmoid = _unary(_sigmoid)
softplus = _unary(_softplus)
erf = _unary(_erf)


def power(a, b):
    """``a ** b``. A constant (Python number) exponent needs no ``log(a)``."""
    if isinstance(b, (int, float)) and not isinstance(b, bool):
        (a,) = lift(a)
        return _pow_const(a, exponent=b)
    return _binary(_pow, a, b)


def square(x):
    return power(x, 2)


def matmul(a, b):
    """``a @ b`` with NumPy's rules (1-D operands are promoted, batch dims broadcast)."""
    a, b = lift(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"ag.matmul: operands must be at least 1-D, got shapes {a.shape} and {b.shape}")
    if a.ndim == 1 and b.ndim == 1:
        return sum(a * b) if a.shape == b.shape else _matmul(a, b)  # let NumPy word the error
    if a.ndim == 1:
        return reshape(_matmul(reshape(a, (1,) + a.shape), b), b.shape[:-2] + b.shape[-1:])
    if b.ndim == 1:
        return reshape(_matmul(a, reshape(b, b.shape + (1,))), a.shape[:-1])
    return _matmul(a, b)


def where(cond, a, b):
    """``a`` where ``cond`` (a constant boolean array) holds, else ``b``."""
    cond = cond.value if isinstance(cond, Tensor) else cond
    a, b = lift(a, b)
    cond = _xp(a.value).asarray(cond)
    if cond.dtype != bool:
        raise TypeError(f"ag.where: cond must be a boolean array, got dtype {cond.dtype}")
    return _where(a, b, cond=cond)


def _norm_axis(axis):
    if isinstance(axis, list):
        axis = tuple(axis)
    return axis


def sum(x, axis=None, keepdims=False):  # noqa: A001 - NumPy's name
    (x,) = lift(x)
    return _sum(x, axis=_norm_axis(axis), keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    (x,) = lift(x)
    axis = _norm_axis(axis)
    if axis is None:
        n = x.size
    else:
        axes = (axis,) if isinstance(axis, int) else axis
        n = int(np.prod([x.shape[a] for a in axes]))
    return sum(x, axis=axis, keepdims=keepdims) / n


def max(x, axis=None, keepdims=False):  # noqa: A001 - NumPy's name
    """Maximum over ``axis``; where several entries tie, they share the derivative."""
    (x,) = lift(x)
    return _max(x, axis=_norm_axis(axis), keepdims=keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001 - NumPy's name
    return -max(-x, axis=axis, keepdims=keepdims)


def reshape(x, shape):
    (x,) = lift(x)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _reshape(x, shape=shape)


def transpose(x, axes=None):
    (x,) = lift(x)
    return _transpose(x, axes=None if axes is None else tuple(axes))


def broadcast_to(x, shape):
    (x,) = lift(x)
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return _broadcast_to(x, shape=shape)


def sum_to(x, shape):
    """Sum ``x`` down to ``shape``: undoes NumPy broadcasting (the VJP of every broadcast)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return _sum_to(x, shape=shape)


def expand_dims(x, axis):
    (x,) = lift(x)
    shape = list(x.shape)
    shape.insert(axis % (x.ndim + 1), 1)
    return reshape(x, shape)


def squeeze(x, axis):
    (x,) = lift(x)
    shape = list(x.shape)
    if shape[axis] != 1:
        raise ValueError(f"ag.squeeze: axis {axis} of shape {x.shape} has size {shape[axis]}, not 1")
    del shape[axis]
    return reshape(x, shape)


def concatenate(xs, axis=0):
    xs = lift(*xs)
    return _concatenate(*xs, axis=axis)


def stack(xs, axis=0):
    return concatenate([expand_dims(x, axis) for x in xs], axis=axis)


def stop_gradient(x):
    """The value of ``x`` with zero derivative (in both modes)."""
    (x,) = lift(x)
    return _stop_gradient(x)


def identity(x):
    (x,) = lift(x)
    return _identity(x)


def getitem(x, index):
    """``x[index]``: basic slicing and integer/boolean array indexing."""
    if isinstance(index, Tensor):
        raise TypeError("ag.getitem: index with an integer array, not a Tensor")
    if isinstance(index, tuple):
        index = tuple(i.value if isinstance(i, Tensor) else i for i in index)
    if getattr(index, "dtype", None) is not None and index.dtype == bool:
        index = _xp(index).nonzero(index)  # a boolean mask, as integer arrays
    return _getitem(x, index=index)


def clip(x, lo, hi):
    """Clamp to ``[lo, hi]`` (derivative 1 inside, 0 outside)."""
    return minimum(maximum(x, lo), hi)


# ---- torch.nn.functional names ------------------------------------------


_relu = elementwise("relu", lambda a: _xp(a).maximum(a, 0),
                    lambda out, a: (Tensor._wrap((a.value > 0).astype(a.value.dtype)),))


def relu(x):
    """``max(x, 0)``; derivative 1 where x > 0 and 0 elsewhere (0 at x = 0, as in PyTorch)."""
    (x,) = lift(x)
    return _relu(x)


def gelu(x, approximate="none"):
    """GELU: ``x * Phi(x)`` exactly (``approximate="none"``, torch's default) or its tanh form."""
    (x,) = lift(x)
    if approximate == "none":
        return 0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))
    if approximate == "tanh":
        return 0.5 * x * (1.0 + tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    raise ValueError(f"ag.gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def logsumexp(x, axis=-1, keepdims=False):
    """``log(sum(exp(x)))`` computed stably by shifting by the (constant) max."""
    (x,) = lift(x)
    m = stop_gradient(max(x, axis=axis, keepdims=True))
    out = m + log(sum(exp(x - m), axis=axis, keepdims=True))
    if keepdims:
        return out
    return reshape(out, np.sum(np.empty(x.shape, dtype=bool), axis=_norm_axis(axis)).shape)


def log_softmax(x, axis=-1):
    return x - logsumexp(x, axis=axis, keepdims=True)


def softmax(x, axis=-1):
    return exp(log_softmax(x, axis=axis))


def _reduce(losses, reduction, where_):
    if reduction == "mean":
        return mean(losses)
    if reduction == "sum":
        return sum(losses)
    if reduction == "none":
        return losses
    raise ValueError(f"ag.{where_}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(logits, labels, reduction="mean"):
    """Softmax cross-entropy of ``logits`` (N, K) against integer ``labels`` (N,).

    ``labels`` may also be class probabilities of shape (N, K) (soft targets).
    """
    (logits,) = lift(logits)
    labels = labels.value if isinstance(labels, Tensor) else labels
    xp = _xp(logits.value)
    labels = xp.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"ag.cross_entropy: logits must have shape (N, K), got {logits.shape}")
    logp = log_softmax(logits, axis=-1)
    if labels.dtype.kind in "iu":
        if labels.shape != logits.shape[:1]:
            raise ValueError(f"ag.cross_entropy: labels must have shape {logits.shape[:1]} to match "
                             f"logits {logits.shape}, got {labels.shape}")
        losses = -logp[xp.arange(logits.shape[0]), labels]
    elif labels.dtype.kind == "f":
        if labels.shape != logits.shape:
            raise ValueError(f"ag.cross_entropy: soft labels must have the logits' shape {logits.shape}, got {labels.shape}")
        losses = -sum(logp * labels, axis=-1)
    else:
        raise TypeError(f"ag.cross_entropy: labels must be integer class indices or float probabilities, got {labels.dtype}")
    return _reduce(losses, reduction, "cross_entropy")


def mse_loss(pred, target, reduction="mean"):
    """``mean((pred - target)^2)`` (torch's convention: no factor 1/2). Shapes must match."""
    pred, target = lift(pred, target)
    if pred.shape != target.shape:
        raise ValueError(f"ag.mse_loss: pred has shape {pred.shape} but target has shape {target.shape}")
    return _reduce((pred - target) ** 2, reduction, "mse_loss")


def binary_cross_entropy_with_logits(logits, targets, reduction="mean"):
    """Logistic loss ``softplus(z) - y z`` for targets ``y`` in [0, 1] (stable for any z)."""
    logits, targets = lift(logits, targets)
    if logits.shape != targets.shape:
        raise ValueError(f"ag.binary_cross_entropy_with_logits: logits {logits.shape} and targets {targets.shape} differ")
    return _reduce(softplus(logits) - targets * logits, reduction, "binary_cross_entropy_with_logits")


def _pair(v, name):
    if isinstance(v, int):
        return v
    raise TypeError(f"{name} must be an int, got {v!r}")


def conv2d(x, w, b=None, stride=1, padding=0):
    """2-D cross-correlation in NCHW, like ``torch.nn.functional.conv2d`` (square stride/padding).

    Built as im2col followed by one matmul, so its derivatives (of any order,
    in both modes) come from those two primitives.
    """
    x, w = lift(x, w)
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"ag.conv2d: x must be (N, C, H, W) and w (O, C, kh, kw), got {x.shape} and {w.shape}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"ag.conv2d: x has {x.shape[1]} channels but w expects {w.shape[1]} (x {x.shape}, w {w.shape})")
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    n, _, h, wd = x.shape
    o, c, kh, kw = w.shape
    cols = _im2col(x, kh=kh, kw=kw, stride=stride, padding=padding, fill=0.0)  # (N, C*kh*kw, L)
    out = matmul(reshape(w, (o, c * kh * kw)), cols)                          # (N, O, L)
    oh, ow = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    out = reshape(out, (n, o, oh, ow))
    if b is not None:
        if tuple(b.shape) != (o,):
            raise ValueError(f"ag.conv2d: bias must have shape ({o},), got {tuple(b.shape)}")
        out = out + reshape(b, (1, o, 1, 1))
    return out


def _pool(x, kernel_size, stride, padding, fill, reduce_fn, name):
    (x,) = lift(x)
    if x.ndim != 4:
        raise ValueError(f"ag.{name}: x must be (N, C, H, W), got {x.shape}")
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    n, c, h, w = x.shape
    cols = _im2col(reshape(x, (n * c, 1, h, w)), kh=k, kw=k, stride=s, padding=padding, fill=fill)
    oh, ow = (h + 2 * padding - k) // s + 1, (w + 2 * padding - k) // s + 1
    return reshape(reduce_fn(cols, axis=1), (n, c, oh, ow))


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max pooling in NCHW (stride defaults to the kernel size, padding counts as -inf)."""
    return _pool(x, kernel_size, stride, padding, -np.inf, max, "max_pool2d")


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Average pooling in NCHW (zero padding counted in the average, torch's default)."""
    return _pool(x, kernel_size, stride, padding, 0.0, mean, "avg_pool2d")


def dropout(x, p, rng, training=True):
    """Inverted dropout: zero each entry with probability ``p``, scale the rest by ``1/(1-p)``.

    ``rng`` is a NumPy ``Generator`` (or CuPy's) so that runs are reproducible.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"ag.dropout: p must be in [0, 1), got {p}")
    (x,) = lift(x)
    if not training or p == 0.0:
        return x
    keep = _xp(x.value).asarray(rng.random(x.shape) >= p)
    return x * (keep.astype(x.dtype) / x.dtype.type(1.0 - p))


# --------------------------------------------------------------------------
# Tensor operators
# --------------------------------------------------------------------------

Tensor.__add__ = lambda a, b: add(a, b)
Tensor.__radd__ = lambda a, b: add(b, a)
Tensor.__sub__ = lambda a, b: subtract(a, b)
Tensor.__rsub__ = lambda a, b: subtract(b, a)
Tensor.__mul__ = lambda a, b: multiply(a, b)
Tensor.__rmul__ = lambda a, b: multiply(b, a)
Tensor.__truediv__ = lambda a, b: divide(a, b)
Tensor.__rtruediv__ = lambda a, b: divide(b, a)
Tensor.__pow__ = lambda a, b: power(a, b)
Tensor.__rpow__ = lambda a, b: power(lift(b, a)[0], a)
Tensor.__matmul__ = lambda a, b: matmul(a, b)
Tensor.__rmatmul__ = lambda a, b: matmul(b, a)
Tensor.__neg__ = lambda a: negative(a)
Tensor.__pos__ = lambda a: a
Tensor.__abs__ = lambda a: abs(a)
Tensor.__getitem__ = lambda a, index: getitem(a, index)
Tensor.sum = lambda a, axis=None, keepdims=False: sum(a, axis, keepdims)
Tensor.mean = lambda a, axis=None, keepdims=False: mean(a, axis, keepdims)
Tensor.max = lambda a, axis=None, keepdims=False: max(a, axis, keepdims)
Tensor.reshape = lambda a, *shape: reshape(a, shape[0] if len(shape) == 1 else shape)
Tensor.transpose = lambda a, *axes: transpose(a, (axes[0] if len(axes) == 1 else axes) or None)
Tensor.T = property(lambda a: transpose(a))
