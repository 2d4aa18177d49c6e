"""The array backend: one source for NumPy (the reference) and CuPy (the GPU).

Every function in the library is written against the array namespace of its
inputs, found with :func:`xp_of`, in the style of ``cupy.get_array_module``.
NumPy is always there; CuPy is optional (``pip install reference[gpu]``).

    xp = xp_of(w, g)          # numpy or cupy, whichever holds the arrays
    tree = to_device(tree, "gpu")
    update = fuse(update)     # cupy.fuse on a GPU, the plain function otherwise

Decisions written down here:

* Mixing NumPy and CuPy arrays in one call is an error, never a silent copy.
* Nothing is upcast silently: :func:`check_float` rejects integer or boolean
  arrays where floats are needed, and :func:`same_dtype` rejects a float32 /
  float64 mix, naming the argument in each case.
* ``fuse`` is applied to the *readable* elementwise update of an optimizer, so
  the line you read is the kernel that runs on the GPU.
"""
from __future__ import annotations

import functools
import os

import numpy as np

try:  # CuPy is optional: the whole library works without it.
    import cupy as _cupy
except Exception:  # pragma: no cover - depends on the machine
    _cupy = None

__all__ = [
    "np", "cupy_available", "gpu_available", "xp_of", "to_device", "to_numpy",
    "fuse", "is_float", "check_float", "same_dtype", "FLOAT_DTYPES", "float_dtype",
]

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def cupy_available() -> bool:
    """True when CuPy imports (it may still see no GPU)."""
    return _cupy is not None


@functools.lru_cache(maxsize=1)
def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # pragma: no cover - depends on the machine
        return False


def _is_cupy(x) -> bool:
    return _cupy is not None and isinstance(x, _cupy.ndarray)


def xp_of(*arrays):
    """The array module (``numpy`` or ``cupy``) of ``arrays``.

    Python scalars, ``None`` and NumPy scalars are neutral. Dicts, lists and
    tuples are searched (so a whole params tree can be passed). A mix of NumPy
    and CuPy arrays raises ``TypeError``.
    """
    found = None
    stack = list(arrays)
    while stack:
        a = stack.pop()
        if isinstance(a, dict):
            stack.extend(a.values())
            continue
        if isinstance(a, (list, tuple)):
            stack.extend(a)
            continue
        a = getattr(a, "value", a)  # an autograd Tensor exposes .value
        if _is_cupy(a):
            kind = "cupy"
        elif isinstance(a, np.ndarray):
            kind = "numpy"
        else:
            continue
        if found is None:
            found = kind
        elif found != kind:
            raise TypeError("xp_of: got both NumPy and CuPy arrays; move them to one device "
                            "with reference.backend.to_device(tree, 'gpu' | 'cpu')")
    return _cupy if found == "cupy" else np


def to_device(tree, device: str):
    """Copy every array of ``tree`` (an array, or a dict/list/tuple of them) to ``device``.

    ``device`` is ``"gpu"`` (needs CuPy) or ``"cpu"``. Non-array leaves are kept.
    """
    if device not in ("gpu", "cpu"):
        raise ValueError(f"to_device: device must be 'gpu' or 'cpu', got {device!r}")
    if device == "gpu" and _cupy is None:
        raise RuntimeError("to_device(..., 'gpu') needs CuPy: pip install 'reference[gpu]'")

    def move(a):
        if device == "gpu" and isinstance(a, np.ndarray):
            return _cupy.asarray(a)
        if device == "cpu" and _is_cupy(a):
            return _cupy.asnumpy(a)
        return a

    return _map_tree(move, tree)


def to_numpy(tree):
    """``to_device(tree, "cpu")``; a no-op for NumPy trees."""
    return _map_tree(lambda a: _cupy.asnumpy(a) if _is_cupy(a) else a, tree)


def _map_tree(fn, tree):
    if isinstance(tree, dict):
        return {k: _map_tree(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_map_tree(fn, v) for v in tree)
    return fn(tree)


def fuse(fn=None, **kwargs):
    """One readable elementwise function, fast on both backends.

    Usable as ``@fuse`` or ``@fuse(kernel_name="adam")``. With CuPy arrays the
    function runs as one ``cupy.fuse`` GPU kernel. With NumPy arrays it runs
    as written, except that large same-shape operands are processed in
    cache-sized blocks, spread over threads (:func:`blocked`): NumPy
    evaluates ``w - lr * m / (v ** 0.5 + eps)`` one whole-array pass per
    operator, so blocking keeps the temporaries in cache instead of
    streaming each through memory. Results are bit-identical to the plain
    call (the function is elementwise, so each block is computed exactly as
    the whole would be).

    Inside a fused function write the update with arithmetic operators and
    ``**`` only (``v ** 0.5`` for a square root) and Python-float
    hyperparameters: that subset means the same thing to NumPy and to
    CuPy's kernel compiler, and it is elementwise, which the blocking relies
    on. Anything else (``maximum``, ``sign``, reductions) goes outside the
    fused body, on the array module from :func:`xp_of`.
    """
    if fn is None:
        return lambda f: fuse(f, **kwargs)
    cpu = blocked(fn)
    if _cupy is None:
        return cpu
    gpu = _cupy.fuse(fn, **kwargs)

    @functools.wraps(fn)
    def dispatch(*args):
        if any(_is_cupy(a) for a in args):
            return gpu(*args)
        return cpu(*args)

    return dispatch


#: elements per block of :func:`blocked` (64K float32 = 256 KiB per operand)
BLOCK = 1 << 16
_POOL = {}


def _threads():
    n = os.environ.get("REFERENCE_THREADS")
    return max(1, int(n)) if n else (os.cpu_count() or 1)


def _pool(n):
    if n not in _POOL:
        import concurrent.futures
        _POOL[n] = concurrent.futures.ThreadPoolExecutor(max_workers=n, thread_name_prefix="reference-fuse")
    return _POOL[n]


def blocked(fn):
    """Run elementwise ``fn`` over large NumPy operands block by block, on several threads.

    Operands that are NumPy arrays of one common shape with at least
    ``4 * BLOCK`` elements are cut into contiguous blocks; scalars and 0-d
    arrays are passed to every block unchanged. Anything else (small arrays,
    broadcasting between shapes, non-contiguous arrays) is a plain call.
    ``REFERENCE_THREADS`` sets the number of threads (default: all cores);
    NumPy releases the GIL inside its loops, so blocks run in parallel.
    """

    @functools.wraps(fn)
    def call(*args):
        arrays = [a for a in args if isinstance(a, np.ndarray) and a.ndim > 0]
        if not arrays:
            return fn(*args)
        shape, n = arrays[0].shape, arrays[0].size
        if n < 4 * BLOCK or any(a.shape != shape or not a.flags.c_contiguous for a in arrays):
            return fn(*args)
        flat = [a.reshape(-1) if isinstance(a, np.ndarray) and a.ndim > 0 else a for a in args]
        starts = list(range(0, n, BLOCK))
        first = fn(*[a[:BLOCK] if isinstance(a, np.ndarray) and a.ndim > 0 else a for a in flat])
        single = not isinstance(first, tuple)
        first = (first,) if single else first
        outs = [np.empty(n, dtype=o.dtype) for o in first]
        for o, f in zip(outs, first):
            o[:BLOCK] = f

        def run(chunk):
            for lo in chunk:
                res = fn(*[a[lo:lo + BLOCK] if isinstance(a, np.ndarray) and a.ndim > 0 else a for a in flat])
                res = (res,) if single else res
                for o, r in zip(outs, res):
                    o[lo:lo + BLOCK] = r

        rest = starts[1:]
        k = min(_threads(), len(rest))
        if k <= 1:
            run(rest)
        else:
            parts = [rest[i::k] for i in range(k)]
            for f in [_pool(k).submit(run, part) for part in parts]:
                f.result()
        outs = [o.reshape(shape) for o in outs]
        return outs[0] if single else tuple(outs)

    return call


def is_float(x) -> bool:
    """True for a floating-point array (NumPy or CuPy)."""
    dt = getattr(x, "dtype", None)
    return dt is not None and np.dtype(dt).kind == "f"


def check_float(name: str, x):
    """Raise ``TypeError`` naming ``name`` unless ``x`` is a floating-point array."""
    dt = getattr(x, "dtype", None)
    if dt is None or np.dtype(dt).kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got "
                        f"{type(x).__name__} with dtype {dt}")
    return x


def same_dtype(where: str, **arrays):
    """Return the one float dtype shared by ``arrays``; raise ``TypeError`` on a mix."""
    seen = {}
    for name, a in arrays.items():
        if a is None:
            continue
        check_float(f"{where}: {name}", a)
        seen[name] = np.dtype(a.dtype)
    kinds = set(seen.values())
    if len(kinds) > 1:
        desc = ", ".join(f"{k}={v}" for k, v in seen.items())
        raise TypeError(f"{where}: mixed float dtypes ({desc}); cast explicitly, nothing is upcast silently")
    return kinds.pop() if kinds else None


def float_dtype(dtype) -> np.dtype:
    """Normalise ``dtype`` ("float32", np.float64, ...) and check it is a float dtype."""
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype!r}") from e
    if dt.kind != "f":
        raise TypeError(f"dtype must be a floating-point dtype such as 'float32' or 'float64', got {dt}")
    return dt
