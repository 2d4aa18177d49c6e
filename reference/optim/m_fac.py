"""M-FAC: Efficient Matrix-Free Approximations of Second-Order Information.

Elias Frantar, Eldar Kurtic, Dan Alistarh. NeurIPS 2021. arXiv:2107.03356

The empirical Fisher of a window of ``m`` gradients, damped,

    F = lambda I + (1/m) sum_{i=1}^m g_i g_i^T,

is a ``d x d`` matrix no one can store for a network, but its inverse applied
to a vector needs only the ``m`` gradients and a few ``m x m`` matrices. Adding
the rank-one terms one at a time with the Sherman-Morrison formula,

    H_0^{-1} = I / lambda,
    H_i^{-1} = H_{i-1}^{-1} - u_i u_i^T / (m + g_i^T u_i),     u_i = H_{i-1}^{-1} g_i,

ends at ``H_m^{-1} = F^{-1}`` (the ``1/m`` of ``F`` is the ``m +`` in the
denominator). Every ``u_i`` is a combination of the gradients,
``u_i = sum_{j <= i} B_ij g_j`` with ``B`` lower triangular, and its
coefficients follow from the Gram matrix ``D = G G^T`` alone (``G``: the
gradients as rows):

    B_i  = e_i / lambda - sum_{j < i} (s_j / den_j) B_j,    s_j = u_j^T g_i = (B D)_ji,
    den_i = m + g_i^T u_i = m + (B D)_ii.

Then, for any vector ``x``, with ``a = G x`` (``m`` dot products),

    F^{-1} x = x / lambda - sum_i (u_i^T x / den_i) u_i = x / lambda - G^T B^T ((B a) / den),

``O(d m + m^2)`` work. This is the paper's *dynamic* algorithm: the window
is a ring buffer; replacing its oldest gradient by the new one changes one
row and column of ``D`` (``m`` dot products, ``O(d m)``) and the rows of
``B`` from that slot on (at most ``O(m^3)``; the rows before it depend only
on earlier slots). The optimizer is preconditioned SGD with this ``F``:

    add g_t to the window (replacing the oldest),   u_t = F_t^{-1} g_t,
    theta_t = theta_{t-1} - lr u_t                   (with momentum: v_t = mu v_{t-1} + (1 - mu) u_t).

Defaults from the paper's optimization experiments and its official code
(IST-DASLab/M-FAC, ``MFAC``): ``m = 1024``, ``lambda = 1e-5`` (``damping``),
``lr = 1e-3``, no momentum, no weight decay.

Conventions (the official code's, which the paper does not fix), and choices:

* **An unfilled window** holds zero gradients that count in the ``1/m``:
  before ``m`` steps ``F = lambda I + (1/m) sum_{i <= t} g_i g_i^T`` (the
  official buffer starts as zeros). Zero slots add nothing (their ``u`` is
  0), so they are skipped in the computation.
* The recursion runs over the slots in index order, not in age order (the
  sum defining ``F`` does not depend on the order).
* **Momentum** is an exponential average of the preconditioned directions,
  ``v = mu v + (1 - mu) F^{-1} g`` (official code). **Weight decay** is L2,
  added to the gradient before it enters the window (official code).
* The gradients are flattened in the params' key order
  (``reference.tree.flatten``); the window is a ``(m, d)`` array in the state
  (``m d`` numbers: this is a method for models where that fits).
* The ``B`` rows are computed by the recursion above, row by row (the
  official code gets the same numbers from an LU factorisation of
  ``D / lambda + m I`` and a CUDA kernel). :func:`inverse_fisher_product`
  applies ``F^{-1}`` for a given window; the tests compare it with the dense
  ``(lambda I + G^T G / m)^{-1} x``.
"""
from __future__ import annotations

import numpy as np

from .. import tree
from ..backend import xp_of
from .base import Optimizer, check_range, register
from .common import l2_gradient


def update_coefficients(B, den, dots, start, filled, damping, m):
    """Rows ``start .. filled - 1`` of ``B`` and ``den`` from the Gram matrix ``dots`` (new arrays).

    ``B`` (``m x m``, lower triangular) and ``den`` (``m``) hold the
    Sherman-Morrison coefficients of the window's first ``filled`` slots;
    rows before ``start`` are kept (they depend only on slots before it).
    """
    B, den = B.copy(), den.copy()
    for i in range(start, filled):
        s = B[:i, :i] @ dots[:i, i]                       # s_j = u_j^T g_i, j < i
        row = -((s / den[:i]) @ B[:i, :i])                # - sum_j (s_j / den_j) B_j
        B[i, :i] = row
        B[i, i] = 1.0 / damping                           # + e_i / lambda
        B[i, i + 1:] = 0.0
        den[i] = m + B[i, :i + 1] @ dots[:i + 1, i]       # m + g_i^T u_i
    return B, den


def inverse_fisher_product(G, B, den, x, damping, filled):
    """``F^{-1} x`` for the window ``G`` (rows: gradients) with coefficients ``B``, ``den``; ``O(d m + m^2)``."""
    if filled == 0:
        return x / damping
    Gf, Bf = G[:filled], B[:filled, :filled]
    a = Gf @ x                                            # g_i^T x
    q = (Bf @ a) / den[:filled]                           # u_i^T x / den_i
    return x / damping - Gf.T @ (Bf.T @ q)                # x / lambda - sum_i q_i u_i


def dense_inverse_fisher_product(G, x, damping):
    """The same product by a dense solve of ``(lambda I + G^T G / m) y = x`` (for tests; ``O(d^3)``)."""
    xp = xp_of(G)
    m, d = G.shape
    return xp.linalg.solve(damping * xp.eye(d, dtype=G.dtype) + G.T @ G / m, x)


@register("m_fac")
class MFAC(Optimizer):
    """M-FAC, the dynamic algorithm as an optimizer; see the module docstring.

    State: ``grads`` (the window ``G``, ``(m, d)``), ``dots`` (``G G^T``),
    ``coef`` (``B``), ``den``, ``last`` (the ring buffer's next slot),
    ``filled`` (slots holding a gradient), ``velocity`` (momentum, a tree) and
    ``step``.
    """

    paper = dict(title="M-FAC: Efficient Matrix-Free Approximations of Second-Order Information",
                 authors="Frantar, Kurtic, Alistarh", year=2021, arxiv="2107.03356",
                 family="optimizer-second-order")
    defaults = dict(lr=1e-3, m=1024, damping=1e-5, momentum=0.0, weight_decay=0.0)
    # The defaults are for noisy minibatch gradients. Full-batch gradients along one deterministic
    # trajectory are nearly collinear and shrink near the optimum, so their empirical Fisher degenerates
    # and F^{-1} g ~ g / lambda blows up (the contract test's quadratic diverges at the defaults); a
    # larger damping makes it a damped preconditioner there.
    descent_hparams = {"quadratic": dict(lr=1e-2, damping=1e-2), "rosenbrock": dict(lr=1e-2, damping=1e-2)}

    def check(self, hp):
        super().check(hp)
        m = hp["m"]
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"{self.name}: m (the window size) must be an integer >= 1, got {m!r}")
        check_range("damping", hp["damping"], 0.0, low_open=True, where=self.name)
        check_range("momentum", hp["momentum"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)

    def init_slots(self, params):
        flat, _ = tree.flatten(params)
        xp, dt, m = xp_of(flat), flat.dtype, int(self.hparams["m"])
        B = xp.eye(m, dtype=dt) / float(self.hparams["damping"])
        return {"grads": xp.zeros((m, flat.shape[0]), dtype=dt), "dots": xp.zeros((m, m), dtype=dt),
                "coef": B, "den": xp.full(m, float(m), dtype=dt), "last": 0, "filled": 0,
                "velocity": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        m, damping = int(hp["m"]), hp["damping"]
        g = l2_gradient(grads, params, hp["weight_decay"])
        g_flat, spec = tree.flatten({k: g[k] for k in params})
        # the window: g replaces the oldest gradient; one row and column of G G^T change
        last, filled = int(state["last"]), min(int(state["filled"]) + 1, m)
        G = state["grads"].copy()
        G[last] = g_flat
        dots = state["dots"].copy()
        column = G @ g_flat
        dots[last, :] = column
        dots[:, last] = column
        B, den = update_coefficients(state["coef"], state["den"], dots, last, filled, damping, m)
        # u = F^{-1} g, then the (momentum) step
        u = tree.unflatten(inverse_fisher_product(G, B, den, g_flat, damping, filled), spec)
        mu = hp["momentum"]
        if mu > 0:
            velocity = tree.zip_map(lambda v, d: mu * v + (1.0 - mu) * d, state["velocity"], u)
            direction = velocity
        else:
            velocity, direction = state["velocity"], u
        new_params = tree.zip_map(lambda w, d: w - hp["lr"] * d, params, direction)
        return new_params, {"grads": G, "dots": dots, "coef": B, "den": den, "last": (last + 1) % m,
                            "filled": filled, "velocity": velocity}
