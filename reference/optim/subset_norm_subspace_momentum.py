"""Efficient Adaptive Optimization via Subset-Norm and Subspace-Momentum: Fast, Memory-Reduced Training with Convergence Guarantees.

Thien Hang Nguyen and Huy Le Nguyen. 2024 (ICML 2025 as "Lean and Mean
Adaptive Optimization via Subset-Norm and Subspace-Momentum with Convergence
Guarantees"). arXiv:2411.07120

Adam keeps two states as large as the model: a momentum and a second moment.
The paper shrinks both, separately:

**Subset-Norm (SN) step size.** Partition the coordinates into subsets
``Psi_1, ..., Psi_c`` and share one adaptive step size per subset, driven by
the subset's gradient *norm*. The paper's theory is the AdaGrad form

    b_{t,i}^2 = b_{t-1,i}^2 + ||g_{t, Psi_i}||^2,      x_{t+1,j} = x_{t,j} - eta g_{t,j} / b_{t, psi(j)}

which is AdaGrad-Norm for one subset and coordinate-wise AdaGrad for subsets
of size one; ``c ~ sqrt(d)`` subsets of size ``~ sqrt(d)`` cut the second
moment from O(d) to O(sqrt d) numbers. The experiments use the Adam form,
``v_{t,i} = beta2 v_{t-1,i} + (1 - beta2) ||g_{t,Psi_i}||^2``
(``beta2 = 1`` gives back the AdaGrad sum). Partition of an ``m x n`` weight
("heuristics", the paper's default): one subset per row when ``m >= n``, one
per column otherwise, i.e. ``max(m, n)`` subsets of ``min(m, n)``
coordinates; or contiguous blocks of ``subset_size`` coordinates of the
flattened matrix (the closest divisor of ``m n`` not above it); or
``subset_size="sqrt"`` for blocks of ``~sqrt(m n)``.

**Subspace-Momentum (SM).** Keep momentum only in a ``k``-dimensional
subspace with orthonormal basis ``P`` (the top-``k`` singular vectors of the
gradient, refreshed every ``T`` steps, GaLore-style, see ``_projection``) and
take plain SGD steps in its orthogonal complement:

    m_t = beta1 m_{t-1} + (1 - beta1) P^T g_t          (k x n or m x k numbers)
    r_t = g_t - P P^T g_t                               (the complement, no state)
    u_t = P m_t + r_t

**AdamSNSM**, the combination the paper trains LLaMA with (its code,
``GenericOptim(momentum_type="sm", second_moment_type="sn")``), for each
weight matrix, with the bias corrections of Adam folded into the step:

    x_{t+1} = x_t - eta sqrt(1 - beta2^t) / (1 - beta1^t) * u_t / (sqrt(v_t) + eps)

(broadcast: every coordinate divided by its subset's ``sqrt(v)``). Only
2-D parameters (the linear layers) get SN and SM; the others (biases) get
Adam with the same step-size formula, as in the paper's code.

Hyperparameters: ``lr`` (eta), ``beta1``, ``beta2`` (``beta2 = 1``: AdaGrad
accumulation, no second-moment bias correction), ``eps``, ``weight_decay``,
``subset_size`` (``"heuristics"``, ``"sqrt"`` or an int >= 1), ``rank``
(``k``; clipped to ``min(m, n)``), ``update_proj_gap`` (``T``),
``momentum`` (``"subspace"``, ``"full"``, ``"none"``) and
``second_moment`` (``"subset_norm"``, ``"full"``, ``"none"``), so that the
parts can be switched off one at a time (``"full"``/``"full"`` is the
paper's Adam). Defaults: the class defaults of the paper's ``GenericOptim``
(``lr = 1e-3``, ``betas = (0.9, 0.999)``, ``eps = 1e-6``) with its LLaMA
settings ``rank = 128``, ``update_proj_gap = 100``; the paper tunes ``lr``
about 10x larger than Adam's (0.05 vs 5e-3 on LLaMA-60M).

Conventions, from the paper's code (github.com/timmytonga/sn-sm) and its
peer pytorch_optimizer.AdamWSN (which has Subset-Norm, not Subspace-Momentum):

* ``eps`` is added to ``sqrt(v_t)`` *before* the bias correction is applied
  through the step size (as in both; torch.optim.Adam adds it after).
* Weight decay is decoupled and applied *after* the update,
  ``x <- x - lr lambda x`` (both do this).
* The subspace is refreshed, and the subspace momentum reset to zero, at
  ``t = 1, T + 1, 2T + 1, ...``. (The paper's code refreshes at ``t = 1, T,
  2T, ...``: its first period is one step shorter.) The momentum's bias
  correction keeps using the global ``t``, as in the code.
* The projector uses the SVD of the current gradient; the complement
  ``g - P P^T g`` enters the update unscaled (not multiplied by ``1 - beta1``).

State: ``{"step", "m": {key: momentum (low-rank for 2-D params under SM)},
"v": {key: second moment (one number per subset under SN)}, "basis": {key:
P}}``.
"""
from __future__ import annotations

import math
import numbers

from ..backend import fuse, xp_of
from .base import Optimizer, check_int, check_range, register
from ._projection import clamp_rank, project, project_back, svd_basis

__all__ = ["SubsetNormSubspaceMomentum", "subset_layout", "subset_sums", "closest_divisor_at_most"]

MOMENTUM_TYPES = ("subspace", "full", "none")
SECOND_MOMENT_TYPES = ("subset_norm", "full", "none")


def closest_divisor_at_most(n, k):
    """The largest divisor of ``n`` that is ``<= k`` (the paper's ``closest_smaller_divisor_of_n_to_k``)."""
    k = max(1, min(int(k), int(n)))
    while n % k:
        k -= 1
    return k


def subset_layout(shape, subset_size):
    """How an ``m x n`` weight is cut into subsets: ``("rows", m)``, ``("cols", n)`` or
    ``("blocks", block_size)`` (contiguous blocks of the flattened matrix)."""
    m, n = shape
    if subset_size == "heuristics":
        return ("rows", m) if m >= n else ("cols", n)
    size = int(math.sqrt(m * n)) if subset_size == "sqrt" else int(subset_size)
    return ("blocks", closest_divisor_at_most(m * n, size))


def subset_sums(g, layout):
    """``||g_{Psi_i}||^2`` for every subset, shaped to broadcast against ``g`` (or its block view)."""
    kind, size = layout
    sq = g * g
    if kind == "rows":
        return sq.sum(axis=1, keepdims=True)                       # (m, 1)
    if kind == "cols":
        return sq.sum(axis=0, keepdims=True)                       # (1, n)
    return sq.reshape(-1, size).sum(axis=1, keepdims=True)         # (m n / size, 1)


def divide_by_subset(u, denom, layout):
    """``u_j / denom_{psi(j)}``: each coordinate divided by its subset's denominator."""
    if layout[0] == "blocks":
        return (u.reshape(-1, layout[1]) / denom).reshape(u.shape)
    return u / denom


@fuse
def _ema_kernel(avg, x, beta):
    return beta * avg + (1.0 - beta) * x


@fuse
def _denominator_kernel(v, eps):
    return v ** 0.5 + eps


@register("subset_norm_subspace_momentum")
class SubsetNormSubspaceMomentum(Optimizer):
    paper = dict(title="Efficient Adaptive Optimization via Subset-Norm and Subspace-Momentum: Fast, "
                       "Memory-Reduced Training with Convergence Guarantees",
                 authors="Nguyen, Nguyen", year=2024, arxiv="2411.07120", family="memory-efficient")
    defaults = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.0, subset_size="heuristics",
                    rank=128, update_proj_gap=100, momentum="subspace", second_moment="subset_norm")
    # The default lr = 1e-3 moves Rosenbrock's and the quadratic's 1-D params like Adam does (they are
    # not matrices, so they get Adam): the defaults pass the descent check as they are.

    def check(self, hp):
        super().check(hp)
        check_range("beta1", hp["beta1"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("beta2", hp["beta2"], 0.0, 1.0, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        for key in ("rank", "update_proj_gap"):
            v = hp[key]
            check_int(key, v, 1, where=self.name)
        s = hp["subset_size"]
        if s not in ("heuristics", "sqrt") and (isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1):
            raise ValueError(f"{self.name}: subset_size must be 'heuristics', 'sqrt' or an integer >= 1, got {s!r}")
        if hp["momentum"] not in MOMENTUM_TYPES:
            raise ValueError(f"{self.name}: momentum must be one of {MOMENTUM_TYPES}, got {hp['momentum']!r}")
        if hp["second_moment"] not in SECOND_MOMENT_TYPES:
            raise ValueError(f"{self.name}: second_moment must be one of {SECOND_MOMENT_TYPES}, "
                             f"got {hp['second_moment']!r}")
        if hp["second_moment"] != "none" and hp["beta2"] == 0.0:
            raise ValueError(f"{self.name}: beta2=0 keeps no second moment; use second_moment='none'")

    def _compressed(self, w):
        """SN and SM apply to matrices (the linear layers); other params get Adam."""
        return w.ndim == 2

    def init_slots(self, params):
        hp = self.hparams
        m, v, basis = {}, {}, {}
        for k, w in params.items():
            xp, compressed = xp_of(w), self._compressed(w)
            if hp["momentum"] == "subspace" and compressed:
                r = clamp_rank(w.shape, hp["rank"])
                low = (w.shape[0], r) if w.shape[0] >= w.shape[1] else (r, w.shape[1])
                m[k] = xp.zeros(low, dtype=w.dtype)
                basis[k] = xp.zeros((r, w.shape[1]) if w.shape[0] >= w.shape[1] else (w.shape[0], r),
                                    dtype=w.dtype)          # replaced by the SVD basis at t = 1
            elif hp["momentum"] != "none" and hp["beta1"] > 0:
                m[k] = xp.zeros_like(w)
            if hp["second_moment"] == "subset_norm" and compressed:
                v[k] = xp.zeros_like(subset_sums(w, subset_layout(w.shape, hp["subset_size"])))
            elif hp["second_moment"] != "none":
                v[k] = xp.zeros_like(w)
        return {"m": m, "v": v, "basis": basis}

    def update(self, params, grads, state, t, hp):
        b1, b2, eps = hp["beta1"], hp["beta2"], hp["eps"]
        refresh = (t - 1) % int(hp["update_proj_gap"]) == 0
        m, v, basis = {}, {}, {}
        new_w = {}
        for k, w in params.items():
            g = grads[k]
            # ---- numerator: Subspace-Momentum, full momentum, or the gradient itself ----
            if k in state["basis"]:
                P = svd_basis(g, hp["rank"]) if refresh else state["basis"][k]
                m_prev = xp_of(g).zeros_like(state["m"][k]) if refresh else state["m"][k]
                low = project(g, P)                                               # P^T g_t
                m[k] = _ema_kernel(m_prev, low, b1) if b1 > 0 else low            # m_t
                u = project_back(m[k], P, g.shape) + (g - project_back(low, P, g.shape))   # P m_t + r_t
                basis[k] = P
            elif k in state["m"]:
                m[k] = u = _ema_kernel(state["m"][k], g, b1)
            else:
                u = g
            # ---- denominator: Subset-Norm, coordinate-wise, or none ----
            if k in state["v"]:
                compressed_sn = hp["second_moment"] == "subset_norm" and self._compressed(w)
                layout = subset_layout(w.shape, hp["subset_size"]) if compressed_sn else None
                sq = subset_sums(g, layout) if compressed_sn else g * g
                v[k] = state["v"][k] + sq if b2 == 1.0 else _ema_kernel(state["v"][k], sq, b2)
                denom = _denominator_kernel(v[k], eps)
                direction = divide_by_subset(u, denom, layout) if compressed_sn else u / denom
            else:
                direction = u
            # ---- the step, with Adam's bias corrections folded into the step size ----
            bc1 = 1.0 - b1 ** t if (k in state["m"] and b1 > 0) else 1.0
            bc2 = 1.0 - b2 ** t if (k in state["v"] and b2 < 1.0) else 1.0
            step_size = hp["lr"] * math.sqrt(bc2) / bc1
            w = w - step_size * direction
            if hp["weight_decay"]:
                w = w - (hp["lr"] * hp["weight_decay"]) * w                     # decoupled, after the step
            new_w[k] = w
        return new_w, {"m": m, "v": v, "basis": basis}
