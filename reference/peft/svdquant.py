"""SVDQuant: Absorbing Outliers by Low-Rank Components for 4-Bit Diffusion Models.

Muyang Li, Yujun Lin, Zhekai Zhang, Tianle Cai, Xiuyu Li, Junxian Guo, Enze Xie, Chenlin Meng,
Jun-Yan Zhu, Song Han. 2024. arXiv:2411.05007

Post-training W4A4 quantization of a linear layer ``Y = X W`` (``X``: N x in
activations, ``W``: in x out; this library's layers store ``W0 = W^T``). At
4 bits both sides are fragile: a few activation channels with huge
magnitudes ("outliers") blow up the quantization step of every group they
sit in. SVDQuant, in three moves:

1. **Smoothing** (as in SmoothQuant) migrates the outliers from the
   activations into the weights, exactly:

       X_hat = X diag(lambda)^-1,   W_hat = diag(lambda) W,   X W = X_hat W_hat,
       lambda_j = max_n |X_nj|^alpha / max_k |W_jk|^(1 - alpha)

   after which the *weights* carry the outliers (rows ``j`` of ``W_hat``
   scaled up).
2. **Low-rank absorption.** The few outlier rows make ``W_hat`` nearly low
   rank in its large part, so a rank-``r`` truncated SVD takes them in:

       W_hat = L1 L2 + R,     L1 L2 = U_r S_r V_r^T   (kept in 16 bits)

   and the residual ``R`` has a small range, easy to quantize.
3. **4-bit residual product.** ``X_hat`` and ``R`` are quantized to 4 bits
   (``Q``) and the layer computes

       Y ~ X_hat L1 L2 + Q(X_hat) Q(R)

   The low-rank branch costs ``r (in + out)`` 16-bit weights. (The paper's
   inference engine, Nunchaku, fuses the two branches into one kernel; that
   is a systems contribution and out of scope here, where the 4-bit values
   are simulated: "fake quantization", quantize then dequantize in float64.)

Baselines in the same notation: naive round-to-nearest W4A4 ``Q(X) Q(W)``,
and smoothing only ``Q(X_hat) Q(W_hat)``. With ``r = 0`` and ``lambda = 1``
SVDQuant is exactly the naive one.

Conventions:

* ``Q``: symmetric signed INT4 (``q in [-8, 7]``), one scale per group of
  ``group_size`` consecutive *input* channels (the reduction axis of the
  matmul, as in the paper's per-group INT4 with group size 64): for ``X`` each
  row's groups, for ``W``/``R`` each output column's groups;
  ``scale = max|group| / 7``, ``Q(x) = scale * clip(round(x / scale), -8, 7)``
  (round half to even, NumPy's); an all-zero group stays zero. The paper also
  has an FP4 (NVFP4-style) variant; only INT4 here.
* ``lambda`` from calibration activations with the SmoothQuant rule and a
  fixed migration strength ``alpha`` (0.5). The official pipeline
  (mit-han-lab/deepcompressor) searches ``alpha`` on a grid per layer to
  minimise the output error; :func:`search_alpha` does that search over a
  small grid on the calibration set.
* NumPy float64 on the host (a post-training transform, run once; the
  library's CuPy path is for training loops), so device arrays are not taken.
* The SVD branch is computed after smoothing, from ``W_hat`` alone (the
  paper's order); the bias, if any, is added in full precision.
"""
from __future__ import annotations

import numpy as np

from .. import catalog, nn
from ..optim.base import check_range
from .base import check_int, linear_layers, mlp_layer_inputs

__all__ = ["quantize", "smoothing_factors", "SVDQuantLinear", "naive_w4a4", "smooth_w4a4", "relative_error",
           "search_alpha", "quantize_mlp"]

catalog.register(title="SVDQuant: Absorbing Outliers by Low-Rank Components for 4-Bit Diffusion Models",
                 name="svdquant", family="memory-efficient", kind="implementation", module=__name__,
                 authors="Li, Lin, Zhang, Cai, Li, Guo, Xie, Meng, Zhu, Han", year=2024, arxiv="2411.05007")


def quantize(x, bits=4, group_size=64, axis=-1):
    """Fake-quantize ``x``: symmetric signed ``bits``-bit integers, one scale per group of
    ``group_size`` consecutive entries along ``axis`` (the last group may be shorter)."""
    check_int("quantize", "bits", bits, 2)
    check_int("quantize", "group_size", group_size, 1)
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    qmax = 2 ** (bits - 1) - 1                      # 7 for INT4; the code range is [-8, 7]
    out = np.empty_like(x)
    for start in range(0, x.shape[-1], group_size):
        g = x[..., start:start + group_size]
        scale = np.max(np.abs(g), axis=-1, keepdims=True) / qmax
        safe = np.where(scale > 0, scale, 1.0)
        out[..., start:start + group_size] = safe * np.clip(np.round(g / safe), -qmax - 1, qmax)
    return np.moveaxis(out, -1, axis)


def smoothing_factors(x_absmax, w_absmax, alpha=0.5):
    """``lambda_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` per input channel (SmoothQuant's rule).

    A channel that is zero on either side gets ``lambda = 1`` (nothing to migrate)."""
    check_range("alpha", alpha, 0.0, 1.0, where="smoothing_factors")
    x_absmax, w_absmax = np.asarray(x_absmax, np.float64), np.asarray(w_absmax, np.float64)
    ok = (x_absmax > 0) & (w_absmax > 0)
    lam = np.ones_like(x_absmax)
    lam[ok] = x_absmax[ok] ** alpha / w_absmax[ok] ** (1.0 - alpha)
    return lam


class SVDQuantLinear:
    """A linear layer ``y = x W0^T + b`` quantized by SVDQuant (see the module docstring).

    ``weight``: ``(out, in)`` as in :func:`reference.nn.mlp`; ``calibration``:
    activations ``(N, in)`` that set ``lambda``. ``rank=0`` drops the
    low-rank branch; ``smooth=False`` sets ``lambda = 1``; a rank above
    ``min(in, out)`` is capped there (the SVD has no more components).
    """

    def __init__(self, weight, bias=None, calibration=None, rank=32, alpha=0.5, bits=4, group_size=64,
                 smooth=True):
        w = np.asarray(weight, dtype=np.float64).T                   # W: (in, out), Y = X W
        n_in, n_out = w.shape
        self.rank = min(check_int("svdquant", "rank", rank, 0), n_in, n_out)   # no more SVD components
        self.bits, self.group_size = check_int("svdquant", "bits", bits, 2), check_int("svdquant", "group_size",
                                                                                       group_size, 1)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float64)
        # 1. smoothing: X_hat = X diag(lambda)^-1, W_hat = diag(lambda) W
        if smooth:
            if calibration is None:
                raise ValueError("svdquant: smoothing needs calibration activations (or smooth=False)")
            x_absmax = np.max(np.abs(np.asarray(calibration, dtype=np.float64)), axis=0)
            self.lam = smoothing_factors(x_absmax, np.max(np.abs(w), axis=1), alpha)
        else:
            self.lam = np.ones(n_in)
        w_hat = self.lam[:, None] * w
        # 2. low-rank branch: the top-r SVD of W_hat, L1 = U_r S_r (in x r), L2 = V_r^T (r x out)
        u, s, vt = np.linalg.svd(w_hat, full_matrices=False)
        self.L1, self.L2 = u[:, :self.rank] * s[:self.rank], vt[:self.rank]
        # 3. the residual, quantized per group of input channels of each output column
        self.R = w_hat - self.L1 @ self.L2
        self.R_q = quantize(self.R, bits, group_size, axis=0)

    def __call__(self, x):
        """``X_hat L1 L2 + Q(X_hat) Q(R) (+ b)``."""
        x_hat = np.asarray(x, dtype=np.float64) / self.lam
        y = (x_hat @ self.L1) @ self.L2 + quantize(x_hat, self.bits, self.group_size, axis=-1) @ self.R_q
        return y if self.bias is None else y + self.bias

    @property
    def low_rank_params(self):
        """Scalars kept in 16 bits by the low-rank branch, ``r (in + out)``."""
        return int(self.L1.size + self.L2.size)


def naive_w4a4(weight, bias, x, bits=4, group_size=64):
    """Round-to-nearest W4A4: ``Q(X) Q(W)`` (+ b)."""
    return SVDQuantLinear(weight, bias, rank=0, bits=bits, group_size=group_size, smooth=False)(x)


def smooth_w4a4(weight, bias, x, calibration, alpha=0.5, bits=4, group_size=64):
    """Smoothing only: ``Q(X_hat) Q(W_hat)`` (+ b)."""
    return SVDQuantLinear(weight, bias, calibration, rank=0, alpha=alpha, bits=bits, group_size=group_size)(x)


def relative_error(y, y_ref):
    """``||y - y_ref||_F / ||y_ref||_F``."""
    return float(np.linalg.norm(y - y_ref) / np.linalg.norm(y_ref))


def search_alpha(weight, bias, calibration, grid=(0.0, 0.25, 0.5, 0.75, 1.0), **kw):
    """The ``alpha`` of ``grid`` with the smallest output error on the calibration set (deepcompressor's
    per-layer search, on a coarse grid); ``kw`` go to :class:`SVDQuantLinear`."""
    x = np.asarray(calibration, dtype=np.float64)
    y_ref = x @ np.asarray(weight, np.float64).T + (0.0 if bias is None else np.asarray(bias, np.float64))
    errors = [relative_error(SVDQuantLinear(weight, bias, x, alpha=a, **kw)(x), y_ref) for a in grid]
    return float(grid[int(np.argmin(errors))])


def quantize_mlp(params, calibration_x, activation, method="svdquant", **kw):
    """``apply(x)`` of a :func:`reference.nn.mlp` with every linear layer quantized.

    ``method``: ``"svdquant"``, ``"smooth"`` (rank 0) or ``"naive"`` (rank 0, no
    smoothing). Each layer is calibrated on its own inputs computed by the
    full-precision MLP on ``calibration_x``; ``kw`` go to :class:`SVDQuantLinear`.
    """
    if method not in ("svdquant", "smooth", "naive"):
        raise ValueError(f"quantize_mlp: method must be 'svdquant', 'smooth' or 'naive', got {method!r}")
    if method != "svdquant":
        kw = dict(kw, rank=0, smooth=(method == "smooth"))
    inputs = mlp_layer_inputs(params, np.asarray(calibration_x, dtype=np.float64), activation)
    layers = linear_layers(params)
    q = {layer: SVDQuantLinear(params[f"{layer}.weight"], params.get(f"{layer}.bias"), inputs[layer], **kw)
         for layer in layers}
    act = nn.ACTIVATIONS[activation]

    def apply(x):
        h = np.asarray(x, dtype=np.float64)
        for i, layer in enumerate(layers):
            h = q[layer](h)
            if i < len(layers) - 1:
                h = act(h)
                h = getattr(h, "value", h)
        return h

    apply.layers = q
    return apply
