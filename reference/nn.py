"""Small models as pure functions of a flat params dict, and per-example losses.

Every model is an ``(init, apply)`` pair, as in JAX's stax:

    init, apply = reference.nn.mlp([2, 64, 64, 2], activation="tanh")
    params = init(0)                      # or init(np.random.default_rng(0), dtype="float32")
    logits = apply(params, x)             # x: (N, 2) array or Tensor

Params follow PyTorch's ``state_dict`` naming and layout so that golden files
made with ``torch.nn`` line up key by key: a linear layer ``i`` holds
``"{i}.weight"`` of shape ``(out, in)`` and ``"{i}.bias"`` of shape
``(out,)``, and computes ``x @ W.T + b``; a convolution holds
``"conv{i}.weight"`` of shape ``(out, in, k, k)``.

Initialisers: He (Kaiming) for ReLU-like activations, Glorot (Xavier) for
tanh/sigmoid/identity, both in their normal form by default; biases start
at zero. (PyTorch's own default is a scaled uniform; the choice only matters
for matching torch's *initial* weights, which golden files avoid by passing
the initial params explicitly.)
"""
from __future__ import annotations

import math

import numpy as np

from . import autograd as ag
from .backend import float_dtype

__all__ = ["he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "mlp", "cnn", "ACTIVATIONS",
           "cross_entropy_losses", "mse_losses", "logistic_losses", "accuracy"]

ACTIVATIONS = {
    "relu": ag.relu,
    "tanh": ag.tanh,
    "sigmoid": ag.sigmoid,
    "gelu": ag.gelu,
    "softplus": ag.softplus,
    "identity": lambda x: x,
}


def _rng(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise TypeError(f"init needs a seed (int) or a numpy.random.Generator, got {type(rng).__name__}")


def _fans(shape):
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive  # (fan_in, fan_out)


def he_normal(rng, shape, dtype="float64"):
    """N(0, 2 / fan_in): keeps ReLU activations' variance constant (He et al., 2015)."""
    fan_in, _ = _fans(shape)
    return (_rng(rng).standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(float_dtype(dtype))


def he_uniform(rng, shape, dtype="float64"):
    """U(-b, b) with b = sqrt(6 / fan_in)."""
    fan_in, _ = _fans(shape)
    b = math.sqrt(6.0 / fan_in)
    return _rng(rng).uniform(-b, b, shape).astype(float_dtype(dtype))


def glorot_normal(rng, shape, dtype="float64"):
    """N(0, 2 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    fan_in, fan_out = _fans(shape)
    return (_rng(rng).standard_normal(shape) * math.sqrt(2.0 / (fan_in + fan_out))).astype(float_dtype(dtype))


def glorot_uniform(rng, shape, dtype="float64"):
    """U(-b, b) with b = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    b = math.sqrt(6.0 / (fan_in + fan_out))
    return _rng(rng).uniform(-b, b, shape).astype(float_dtype(dtype))


def _activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def _default_init(activation):
    return he_normal if activation in ("relu", "gelu", "softplus") else glorot_normal


def _check_input(x, n_in, where):
    shape = tuple(x.shape)
    if len(shape) != 2 or shape[1] != n_in:
        raise ValueError(f"{where}: expected input of shape (N, {n_in}), got {shape}")


def mlp(sizes, activation="relu", weight_init=None):
    """A fully connected network ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    The activation follows every layer but the last (the output is linear).
    Returns ``(init, apply)``: ``init(rng, dtype="float64") -> params`` and
    ``apply(params, x) -> outputs`` of shape ``(N, sizes[-1])``.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(f"mlp: sizes must list at least two positive widths, got {sizes}")
    act = _activation(activation)
    winit = weight_init or _default_init(activation)

    def init(rng=0, dtype="float64"):
        rng = _rng(rng)
        dt = float_dtype(dtype)
        params = {}
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            params[f"{i}.weight"] = winit(rng, (n_out, n_in), dt)
            params[f"{i}.bias"] = np.zeros(n_out, dtype=dt)
        return params

    def apply(params, x):
        _check_input(x, sizes[0], "mlp")
        h = x
        last = len(sizes) - 2
        for i in range(last + 1):
            h = h @ ag.transpose(params[f"{i}.weight"]) + params[f"{i}.bias"]
            if i < last:
                h = act(h)
        return h

    init.sizes = apply.sizes = sizes
    return init, apply


def cnn(in_shape=(1, 16, 16), channels=(8, 16), n_classes=3, kernel_size=3, activation="relu",
        weight_init=None):
    """A small CNN: ``[conv(k, same padding) -> activation -> 2x2 max-pool] * len(channels) -> linear``.

    ``in_shape`` is ``(C, H, W)``; H and W must be divisible by ``2 ** len(channels)``.
    Keys: ``"conv{i}.weight"``, ``"conv{i}.bias"``, ``"fc.weight"``, ``"fc.bias"``.
    """
    c, h, w = (int(s) for s in in_shape)
    depth = len(channels)
    if h % (2 ** depth) or w % (2 ** depth):
        raise ValueError(f"cnn: input {h}x{w} must be divisible by 2**{depth} for {depth} pooling layers")
    if kernel_size % 2 != 1:
        raise ValueError(f"cnn: kernel_size must be odd (for 'same' padding), got {kernel_size}")
    act = _activation(activation)
    winit = weight_init or _default_init(activation)
    pad = kernel_size // 2
    widths = [c] + [int(ch) for ch in channels]
    n_flat = widths[-1] * (h // 2 ** depth) * (w // 2 ** depth)

    def init(rng=0, dtype="float64"):
        rng = _rng(rng)
        dt = float_dtype(dtype)
        params = {}
        for i, (ci, co) in enumerate(zip(widths[:-1], widths[1:])):
            params[f"conv{i}.weight"] = winit(rng, (co, ci, kernel_size, kernel_size), dt)
            params[f"conv{i}.bias"] = np.zeros(co, dtype=dt)
        params["fc.weight"] = glorot_normal(rng, (n_classes, n_flat), dt)
        params["fc.bias"] = np.zeros(n_classes, dtype=dt)
        return params

    def features(params, x):
        """The activations after the convolutional stack, (N, C', H', W')."""
        shape = tuple(x.shape)
        if len(shape) != 4 or shape[1:] != (c, h, w):
            raise ValueError(f"cnn: expected input of shape (N, {c}, {h}, {w}), got {shape}")
        z = x
        for i in range(depth):
            z = ag.conv2d(z, params[f"conv{i}.weight"], params[f"conv{i}.bias"], padding=pad)
            z = ag.max_pool2d(act(z), 2)
        return z

    def apply(params, x):
        z = features(params, x)
        z = ag.reshape(z, (z.shape[0], n_flat))
        return z @ ag.transpose(params["fc.weight"]) + params["fc.bias"]

    apply.features = features
    return init, apply


# ---- per-example losses: shape (N,), ready for per-sample gradients ---------

def cross_entropy_losses(logits, labels):
    """Softmax cross-entropy per example (labels: integer classes)."""
    return ag.cross_entropy(logits, labels, reduction="none")


def mse_losses(pred, target):
    """Squared error per example, averaged over output dimensions: ``mean_j (pred_ij - target_ij)^2``."""
    losses = ag.mse_loss(pred, target, reduction="none")
    return losses if losses.ndim == 1 else ag.mean(ag.reshape(losses, (losses.shape[0], -1)), axis=1)


def logistic_losses(logits, targets):
    """Logistic loss per example for targets in {0, 1}: ``softplus(z) - y z``."""
    return ag.binary_cross_entropy_with_logits(logits, targets, reduction="none")


def accuracy(logits, labels):
    """Fraction of rows whose arg-max equals the label (a 0-d array)."""
    v = logits.value if isinstance(logits, ag.Tensor) else logits
    return (v.argmax(axis=1) == labels).mean()
