"""Composite problems ``smooth + separable penalty`` and what coordinate methods need from them.

One problem, ``sparse_regression``, covers the sparse-learning models of the
proximal and coordinate-descent papers: linear or logistic regression plus
one of the penalties

    none  P(w) = 0
    l1    P(w) = lam |w|                                   (the lasso)
    elastic_net  P(w) = lam |w| + lam2/2 w^2               (Zou and Hastie, 2005; convex)
    scad  P(w) = lam |w|                                   |w| <= lam
               = (2 a lam |w| - w^2 - lam^2) / (2 (a - 1))  lam < |w| <= a lam
               = lam^2 (a + 1) / 2                          |w| > a lam     (Fan and Li, 2001)
    mcp   P(w) = lam |w| - w^2 / (2 gamma)                  |w| <= gamma lam
               = gamma lam^2 / 2                            |w| > gamma lam (Zhang, 2010)

applied to every coordinate, ``objective(w) = loss(w) + sum_j P(w_j)``.

**What the oracle sees: two splits.** SCAD and MCP are ``lam |w|`` plus a
*smooth concave* part ``q(w) = P(w) - lam |w|`` (``q`` is C^1 with
``-kappa <= q'' <= 0``, ``kappa = 1/(a-1)`` for SCAD and ``1/gamma`` for MCP).
With ``split="dc"`` (the default; Yang, Asgharian and Bhatnagar's split of
the nonconvex problem into the Ghadimi-Lan form "smooth nonconvex + convex
prox-friendly") the oracle differentiates ``f = loss + q`` and ``prox`` is
soft-thresholding, the prox of ``lam ||.||_1``. With ``split="full"`` the
oracle differentiates the data loss alone and ``prox`` is the penalty's own
thresholding operator (the prox of the whole nonconvex ``P``). For
``none`` and ``l1`` the two splits coincide. ``objective`` is the same in
both: data loss plus the whole penalty. (``elastic_net`` is convex: its
whole penalty is always in the prox.)

**Thresholding operators** (module functions, closed forms; ``t`` is the
step, ``z`` the point, elementwise):

    soft_threshold(z, t lam)        sign(z) max(|z| - t lam, 0)
    elastic net                     soft_threshold(z, t lam) / (1 + t lam2)
    scad_threshold(z, lam, a, t)    soft_threshold(z, t lam)                  |z| <= (1 + t) lam
                                    ((a - 1) z - sign(z) a t lam) / (a - 1 - t) (1 + t) lam < |z| <= a lam
                                    z                                          |z| > a lam
                                    (needs t < a - 1: then the 1-D problem is strongly convex)
    mcp_threshold(z, lam, gamma, t) 0                                          |z| <= t lam
                                    sign(z) (|z| - t lam) / (1 - t / gamma)    t lam < |z| <= gamma lam
                                    z                                          |z| > gamma lam
                                    (needs t < gamma; "firm thresholding")

each the minimiser of ``(x - z)^2 / (2 t) + P(x)`` (for ``t = 1`` the
formulas of Fan and Li, 2001, and Zhang, 2010).

**Coordinate information** for coordinate and block-coordinate methods:

* ``hessian_bound()``: a constant (d, d) matrix ``M`` with ``Hess loss(w) <=
  M`` for every ``w`` (``X^T X / n`` for the linear model, ``X^T X / (4 n)``
  for the logistic one, since ``sigma' <= 1/4``). The concave part ``q`` has
  a negative semidefinite Hessian, so ``M`` bounds the oracle's smooth part
  in both splits. Block Lipschitz constants are ``L_b = lambda_max(M_bb)``.
* ``coordinate_lipschitz()``: ``{"w": diag(M)}``, the coordinate-wise
  Lipschitz constants ``L_j = ||X_j||^2 / n`` (or ``/ (4 n)``).
* ``L``: a Lipschitz constant of the gradient of the oracle's smooth part:
  ``lambda_max(M)``, or ``max(lambda_max(M), kappa)`` with the concave part
  (its Hessian lies in ``[-kappa I, M]``).
* ``partial_gradient(params, j)``: ``d f / d w_j`` computed from the residual
  alone (``O(n)`` work, not ``O(n d)``): what a fast coordinate method would
  call; the reference optimizers read the block off the full gradient, which
  gives the same numbers.

Data (keys ``"x"`` (n, d), ``"y"`` (n,)): rows of ``X`` i.i.d. ``N(0,
Sigma)`` with ``Sigma_jk = correlation^|j-k|`` (AR(1) columns, the usual
design of sparse-regression simulations; ``correlation=0``: i.i.d. ``N(0,
1)`` entries), each column then multiplied by ``exp(column_spread * N(0, 1))``
(``column_spread=0``: unit scale; larger values give the non-uniform
column norms, hence Lipschitz constants, that greedy coordinate rules
exploit); ``w_true`` (attribute) has ``n_nonzero`` entries of random sign
and size in ``[1, 2]`` at random places; linear: ``y = X w_true + noise
N(0, 1)``; logistic: ``y ~ Bernoulli(sigma(X w_true))`` in ``{0, 1}`` and
the loss ``1/n sum_i softplus(z_i) - y_i z_i``, ``z = X w``. No intercept.

**Optimum**: for the linear model whose objective is strongly convex
(``lambda_min(X^T X / n) + lam2 > kappa``: the concave part of SCAD/MCP
cannot win), the unique minimiser is computed at first access by cyclic
coordinate descent with exact coordinate minimisation (each step a
thresholding with step ``1 / L_j``) to a largest move of 1e-14, then checked
against the fixed-point condition of the full-penalty prox; otherwise
``optimum`` is ``None`` (a nonconvex problem has no single known minimiser).
``optimal_value`` is the oracle's smooth part there, ``optimal_objective``
the full objective.
"""
from __future__ import annotations

import numpy as np

from .. import autograd as ag
from ..backend import xp_of
from . import register
from .base import Problem, check_float, check_int

__all__ = ["SparseRegression", "soft_threshold", "scad_threshold", "mcp_threshold",
           "scad_penalty", "mcp_penalty", "PENALTIES", "MODELS", "SPLITS"]

PENALTIES = ("none", "l1", "elastic_net", "scad", "mcp")
MODELS = ("linear", "logistic")
SPLITS = ("dc", "full")


# --------------------------------------------------------------------------
# penalties and their thresholding operators (xp arrays, elementwise)
# --------------------------------------------------------------------------

def scad_penalty(w, lam, a):
    """SCAD ``P(w)`` elementwise (Fan and Li, 2001)."""
    xp = xp_of(w)
    u = xp.abs(w)
    return xp.where(u <= lam, lam * u,
                    xp.where(u <= a * lam, (2 * a * lam * u - u * u - lam * lam) / (2 * (a - 1)),
                             lam * lam * (a + 1) / 2))


def mcp_penalty(w, lam, gamma):
    """MCP ``P(w)`` elementwise (Zhang, 2010)."""
    xp = xp_of(w)
    u = xp.abs(w)
    return xp.where(u <= gamma * lam, lam * u - u * u / (2 * gamma), gamma * lam * lam / 2)


def soft_threshold(z, threshold):
    """``sign(z) max(|z| - threshold, 0)``: the prox of ``threshold * |.|``."""
    xp = xp_of(z)
    return xp.sign(z) * xp.maximum(xp.abs(z) - threshold, 0)


def scad_threshold(z, lam, a, step):
    """The prox of ``step * SCAD``: argmin_x ``(x - z)^2 / (2 step) + P(x)`` (needs ``step < a - 1``)."""
    xp = xp_of(z)
    u, s = xp.abs(z), xp.sign(z)
    middle = ((a - 1) * z - s * (a * step * lam)) / (a - 1 - step)
    return xp.where(u <= (1 + step) * lam, soft_threshold(z, step * lam),
                    xp.where(u <= a * lam, middle, z))


def mcp_threshold(z, lam, gamma, step):
    """The prox of ``step * MCP`` (firm thresholding; needs ``step < gamma``)."""
    xp = xp_of(z)
    u, s = xp.abs(z), xp.sign(z)
    middle = s * (u - step * lam) / (1 - step / gamma)
    return xp.where(u <= step * lam, xp.zeros_like(z), xp.where(u <= gamma * lam, middle, z))


def _concave_part(w, penalty, lam, a, gamma):
    """``q(w) = P(w) - lam |w|`` summed over coordinates, in autograd ops (C^1, concave).

    SCAD: ``-m^2 / (2 (a - 1)) - lam relu(|w| - a lam)`` with ``m = relu(|w| - lam) - relu(|w| - a lam)``
    (that is ``min(relu(|w| - lam), (a - 1) lam)``); MCP: ``-m^2 / (2 gamma) - lam relu(|w| - gamma lam)``
    with ``m = |w| - relu(|w| - gamma lam) = min(|w|, gamma lam)``.
    """
    u = ag.abs(w)
    if penalty == "scad":
        m = ag.relu(u - lam) - ag.relu(u - a * lam)
        return ag.sum(-(m * m) / (2 * (a - 1)) - lam * ag.relu(u - a * lam))
    if penalty == "mcp":
        over = ag.relu(u - gamma * lam)
        m = u - over
        return ag.sum(-(m * m) / (2 * gamma) - lam * over)
    raise AssertionError(penalty)


# --------------------------------------------------------------------------
# the problem
# --------------------------------------------------------------------------

@register("sparse_regression")
class SparseRegression(Problem):
    """Linear or logistic regression with a separable (possibly nonconvex) penalty; see the module docstring.

    Settings: ``n=200, d=20, n_nonzero=5, noise=0.1, lam=0.1, penalty="scad"
    ("none" | "l1" | "scad" | "mcp"), model="linear" ("linear" | "logistic"),
    split="dc" ("dc" | "full"), a=3.7`` (SCAD; Fan and Li's value, ``> 2``),
    ``gamma=3.0`` (MCP; ``> 1``, ncvreg's default), ``lam2=0.0`` (elastic net's
L2 weight), ``correlation=0.0`` (in
``[0, 1)``), ``column_spread=0.0``,
    ``seed=0``. Params ``{"w": (d,)}``, started at ``N(0, I)``. ``evaluate``
    adds ``objective`` and ``nnz``.
    """

    def __init__(self, n=200, d=20, n_nonzero=5, noise=0.1, lam=0.1, penalty="scad", model="linear",
                 split="dc", a=3.7, gamma=3.0, lam2=0.0, correlation=0.0, column_spread=0.0, seed=0):
        super().__init__()
        where = self.name
        seed = check_int(where, "seed", seed, 0)
        self.n, self.d = check_int(where, "n", n, 1), check_int(where, "d", d, 1)
        self.n_nonzero = check_int(where, "n_nonzero", n_nonzero, 0)
        if self.n_nonzero > self.d:
            raise ValueError(f"{where}: n_nonzero must be <= d = {self.d}, got {n_nonzero!r}")
        for name, value, options in (("penalty", penalty, PENALTIES), ("model", model, MODELS),
                                     ("split", split, SPLITS)):
            if value not in options:
                raise ValueError(f"{where}: {name} must be one of {options}, got {value!r}")
        self.penalty, self.model, self.split = penalty, model, split
        self.noise = check_float(where, "noise", noise, 0.0)
        self.lam = check_float(where, "lam", lam, 0.0, strict=penalty != "none")
        self.a = check_float(where, "a", a, 2.0, strict=True)
        self.gamma = check_float(where, "gamma", gamma, 1.0, strict=True)
        self.lam2 = check_float(where, "lam2", lam2, 0.0)
        if self.lam2 and penalty != "elastic_net":
            raise ValueError(f"{where}: lam2 is the elastic net's L2 weight; it needs penalty='elastic_net'")
        self.column_spread = check_float(where, "column_spread", column_spread, 0.0)
        self.correlation = check_float(where, "correlation", correlation, 0.0)
        if self.correlation >= 1.0:
            raise ValueError(f"{where}: correlation must be in [0, 1), got {correlation!r}")
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((self.n, self.d))
        rho = self.correlation
        for j in range(1, self.d):  # AR(1) columns: corr(x_j, x_k) = rho^|j - k|
            X[:, j] = rho * X[:, j - 1] + np.sqrt(1.0 - rho * rho) * X[:, j]
        self.column_scales = np.exp(self.column_spread * rng.standard_normal(self.d))
        X = X * self.column_scales
        self.w_true = np.zeros(self.d)
        support = rng.choice(self.d, size=self.n_nonzero, replace=False)
        self.w_true[support] = rng.choice([-1.0, 1.0], size=self.n_nonzero) * rng.uniform(1.0, 2.0, self.n_nonzero)
        z = X @ self.w_true
        if model == "linear":
            y = z + self.noise * rng.standard_normal(self.n)
        else:
            y = (rng.random(self.n) < 1.0 / (1.0 + np.exp(-z))).astype(np.float64)
        self.data = {"x": X, "y": y}
        self.param_shapes = {"w": (self.d,)}
        curvature = 1.0 if model == "linear" else 0.25
        self._M = curvature * (X.T @ X) / self.n
        eig = np.linalg.eigvalsh(self._M)
        self.L_loss, self.mu_loss = float(eig[-1]), float(max(eig[0], 0.0))
        self.kappa = {"scad": 1.0 / (self.a - 1.0), "mcp": 1.0 / self.gamma}.get(penalty, 0.0)
        self._optimum = None

    # ---- smooth part, prox, objective -------------------------------------------
    @property
    def _smooth_has_concave_part(self):
        return self.split == "dc" and self.penalty in ("scad", "mcp")

    @property
    def L(self):
        """A Lipschitz constant of the gradient of the oracle's smooth part."""
        return max(self.L_loss, self.kappa) if self._smooth_has_concave_part else self.L_loss

    def _init(self, rng):
        return {"w": rng.standard_normal(self.d)}

    def _data_loss(self, w, batch):
        z = batch["x"] @ w
        if self.model == "linear":
            r = z - batch["y"]
            return 0.5 * r * r
        return ag.binary_cross_entropy_with_logits(z, batch["y"], reduction="none")

    def _per_example_loss(self, params, batch):
        w = params["w"]
        out = self._data_loss(w, batch)
        if self._smooth_has_concave_part:  # a regulariser is part of every f_i
            out = out + _concave_part(w, self.penalty, self.lam, self.a, self.gamma)
        return out

    def _check_step(self, step, xp):
        """``step`` is a number or an array broadcastable to ``w``, all ``>= 0`` (and small enough for the prox)."""
        largest = float(xp.max(xp.asarray(step)))
        if not float(xp.min(xp.asarray(step))) >= 0 or not np.isfinite(largest):
            raise ValueError(f"{self.name}.prox: step must be finite and >= 0, got {step!r}")
        if self.split == "full" and self.penalty == "scad" and largest >= self.a - 1:
            raise ValueError(f"{self.name}.prox: the SCAD prox needs step < a - 1 = {self.a - 1:g}, got {largest:g}")
        if self.split == "full" and self.penalty == "mcp" and largest >= self.gamma:
            raise ValueError(f"{self.name}.prox: the MCP prox needs step < gamma = {self.gamma:g}, got {largest:g}")

    def prox(self, params, step):
        """The prox of ``step`` times the non-smooth part (a new dict; dtype and device kept).

        ``step`` may be a number or an array shaped like ``w`` (coordinate-wise
        steps, for coordinate methods: the penalty is separable).
        """
        self.check_params(params)
        w = params["w"]
        xp = xp_of(w)
        self._check_step(step, xp)
        t = xp.asarray(step, dtype=w.dtype)
        if self.penalty == "none":
            return {"w": w.copy()}
        if self.penalty == "elastic_net":
            return {"w": soft_threshold(w, t * w.dtype.type(self.lam)) / (1 + t * w.dtype.type(self.lam2))}
        if self.penalty == "l1" or self.split == "dc":
            return {"w": soft_threshold(w, t * w.dtype.type(self.lam))}
        if self.penalty == "scad":
            return {"w": scad_threshold(w, w.dtype.type(self.lam), w.dtype.type(self.a), t)}
        return {"w": mcp_threshold(w, w.dtype.type(self.lam), w.dtype.type(self.gamma), t)}

    def penalty_value(self, params):
        """``sum_j P(w_j)``, the whole penalty (split-independent), a 0-d array."""
        w = params["w"]
        xp = xp_of(w)
        lam = w.dtype.type(self.lam)
        if self.penalty == "none":
            return xp.zeros((), dtype=w.dtype)
        if self.penalty == "l1":
            return lam * xp.sum(xp.abs(w))
        if self.penalty == "elastic_net":
            return lam * xp.sum(xp.abs(w)) + w.dtype.type(0.5 * self.lam2) * xp.sum(w * w)
        if self.penalty == "scad":
            return xp.sum(scad_penalty(w, lam, w.dtype.type(self.a)))
        return xp.sum(mcp_penalty(w, lam, w.dtype.type(self.gamma)))

    def data_loss(self, params, batch=None):
        """The data term alone (no part of the penalty), a 0-d array."""
        self.check_params(params)
        self.check_batch(batch)
        w = params["w"]
        b = self._batch_like(batch, params)
        xp = xp_of(w)
        z = b["x"] @ w
        if self.model == "linear":
            r = z - b["y"]
            return w.dtype.type(0.5) * xp.mean(r * r)
        return xp.mean(xp.logaddexp(w.dtype.type(0), z) - b["y"] * z)

    def objective(self, params, batch=None):
        """``loss + sum_j P(w_j)`` on ``batch`` (default: all data), a 0-d array."""
        return self.data_loss(params, batch) + self.penalty_value(params)

    # ---- coordinate information -----------------------------------------------------
    def hessian_bound(self):
        """``M`` (d, d), float64: ``Hess f(w) <= M`` for every ``w`` (a copy)."""
        return self._M.copy()

    def coordinate_lipschitz(self):
        """``{"w": L_j}``: coordinate-wise Lipschitz constants of the smooth part's gradient (float64)."""
        return {"w": np.diag(self._M).copy()}

    def partial_gradient(self, params, j):
        """``d f / d w_j`` (the oracle's smooth part) in ``O(n)`` from the residual, a 0-d array."""
        self.check_params(params)
        w = params["w"]
        d = self._batch_like(None, params)
        xp = xp_of(w)
        z = d["x"] @ w
        if self.model == "linear":
            r = z - d["y"]
        else:
            r = 1.0 / (1.0 + xp.exp(-z)) - d["y"]
        g = xp.mean(d["x"][:, j] * r)
        if self._smooth_has_concave_part:
            u, s, lam = xp.abs(w[j]), xp.sign(w[j]), w.dtype.type(self.lam)
            if self.penalty == "scad":
                a = w.dtype.type(self.a)
                g = g + xp.where(u <= lam, 0 * u, xp.where(u <= a * lam, -(u - lam) / (a - 1), -lam)) * s
            else:
                gam = w.dtype.type(self.gamma)
                g = g + xp.where(u <= gam * lam, -u / gam, -lam) * s
        return g

    # ---- the optimum (convex linear cases) -------------------------------------------------
    def _full_threshold(self, z, step):
        """The prox of ``step * P`` (the whole penalty), float64 NumPy."""
        if self.penalty == "none":
            return z
        if self.penalty == "l1":
            return soft_threshold(z, step * self.lam)
        if self.penalty == "elastic_net":
            return soft_threshold(z, step * self.lam) / (1 + step * self.lam2)
        if self.penalty == "scad":
            return scad_threshold(z, self.lam, self.a, step)
        return mcp_threshold(z, self.lam, self.gamma, step)

    def _convex(self):
        """Strongly convex objective (a unique minimiser): the loss's curvature beats the penalty's concavity."""
        return self.model == "linear" and self.mu_loss + self.lam2 - self.kappa > 0

    @property
    def optimum(self):
        if not self._convex():
            return None
        if self._optimum is None:
            X, y = self.data["x"], self.data["y"]
            G, c = X.T @ X / self.n, X.T @ y / self.n
            Lj = np.diag(G)
            w = np.zeros(self.d)
            for _ in range(100000):
                largest = 0.0
                for j in range(self.d):
                    g = G[j] @ w - c[j]
                    new = float(self._full_threshold(np.array(w[j] - g / Lj[j]), 1.0 / Lj[j]))
                    largest = max(largest, abs(new - w[j]))
                    w[j] = new
                if largest <= 1e-14 * max(1.0, np.abs(w).max()):
                    break
            step = 1.0 / self.L_loss
            moved = self._full_threshold(w - step * (G @ w - c), step)
            if np.abs(moved - w).max() > 1e-10:
                raise RuntimeError(f"{self.name}: coordinate descent did not reach a fixed point "
                                   f"(prox residual {np.abs(moved - w).max():.3e})")
            self._optimum = w
        return {"w": self._optimum.copy()}

    @property
    def optimal_value(self):
        opt = self.optimum
        return None if opt is None else float(self.loss(opt))

    @property
    def optimal_objective(self):
        opt = self.optimum
        return None if opt is None else float(self.objective(opt))

    def evaluate(self, params):
        out = super().evaluate(params)
        out["objective"] = float(self.objective(params))
        out["nnz"] = int((params["w"] != 0).sum())
        return out


# --------------------------------------------------------------------------
# convex objectives on a transport polytope
# --------------------------------------------------------------------------

def _logsumexp(X, axis):
    """``log sum exp`` along ``axis`` with the maximum factored out (``scipy.special.logsumexp``'s value,
    several times faster on small matrices)."""
    top = X.max(axis=axis, keepdims=True)
    return (np.log(np.exp(X - top).sum(axis=axis, keepdims=True)) + top).squeeze(axis)


def sinkhorn_step(f, g, C, log_a, log_b, eps):
    """One Sinkhorn iteration on the dual potentials in the log domain: rows to ``a``, then columns to
    ``b``; returns the new ``(f, g)``, whose plan is ``exp((f_i + g_j - C_ij) / eps)``."""
    f = eps * (log_a - _logsumexp((g[None, :] - C) / eps, axis=1))
    g = eps * (log_b - _logsumexp((f[:, None] - C) / eps, axis=0))
    return f, g


def sinkhorn_plan(C, a, b, eps, tol=1e-14, max_iter=100000):
    """The entropic OT plan ``argmin_{P in U(a, b)} <C, P> + eps sum P (log P - 1)`` by Sinkhorn's
    matrix scaling in the log domain (float64, :func:`sinkhorn_step`), iterated until the marginals
    match to ``tol``."""
    f, g = np.zeros(a.size), np.zeros(b.size)
    la, lb = np.log(a), np.log(b)
    for _ in range(max_iter):
        f, g = sinkhorn_step(f, g, C, la, lb, eps)
        P = np.exp((f[:, None] + g[None, :] - C) / eps)
        if np.abs(P.sum(axis=1) - a).sum() <= tol:
            return P
    raise RuntimeError(f"sinkhorn_plan: no convergence in {max_iter} iterations")


def round_to_polytope(P, a, b):
    """Altschuler, Weed and Rigollet's (2017) rounding of a nonnegative ``P`` onto ``U(a, b)``: shrink
    rows and columns that exceed their marginal, then add the rank-one correction ``err_r err_c^T /
    ||err_r||_1``. The result is feasible and ``||result - P||_1 <= 2 (||P 1 - a||_1 + ||P^T 1 - b||_1)``."""
    xp = xp_of(P)
    X = P * xp.minimum(a / P.sum(axis=1), 1.0)[:, None]
    X = X * xp.minimum(b / X.sum(axis=0), 1.0)[None, :]
    err_r, err_c = a - X.sum(axis=1), b - X.sum(axis=0)
    total = err_r.sum()
    return X if float(total) <= 0 else X + xp.outer(err_r, err_c) / total


@register("optimal_transport")
class OptimalTransport(Problem):
    """A convex objective on the transport polytope ``U(a, b) = {P >= 0: P 1 = a, P^T 1 = b}``:

        f(P) = <C, P> + eps sum_ij P_ij (log P_ij - 1) + rho/2 ||P - Q||_F^2

    ``eps = rho = 0``: optimal transport (a linear program); ``eps > 0``: entropic OT (Cuturi, 2013);
    ``rho > 0``: a quadratic objective pulling the plan towards a target ``Q``. Drawn from ``seed``:
    source points ``x_i ~ N(0, I_2)`` (``n`` of them) and targets ``y_j ~ N((1, 0), I_2)`` (``m``),
    the cost ``C_ij = ||x_i - y_j||^2``, marginals ``a, b`` uniform draws in ``[0.5, 1.5]`` normalised
    to sum 1, and ``Q`` with entries uniform in ``[0, 2/(n m)]``.

    The constraint is not in the loss: a method for this problem must keep ``P`` in ``U(a, b)``
    (Mirror Sinkhorn does, up to one marginal at a time). ``init`` is the independent coupling
    ``a b^T`` (feasible, positive; the seed is ignored). The oracle differentiates ``f`` (the entropy
    needs ``P > 0``). No unconstrained ``optimum`` exists; ``optimal_plan()`` is the constrained
    minimiser, computed once in float64: by ``scipy.optimize.linprog`` (HiGHS) for the linear
    program, by Sinkhorn's scaling for entropic OT, by SLSQP otherwise (small sizes only), and
    ``optimal_objective`` its value. ``marginal_violation(P)`` is ``||P 1 - a||_1 + ||P^T 1 - b||_1``.
    Params ``{"P": (n, m)}``.
    """

    seeded_init = False

    def __init__(self, n=5, m=6, eps=0.0, rho=0.0, seed=0):
        super().__init__()
        where = self.name
        seed = check_int(where, "seed", seed, 0)
        self.n, self.m = check_int(where, "n", n, 1), check_int(where, "m", m, 1)
        self.eps = check_float(where, "eps", eps, 0.0)
        self.rho = check_float(where, "rho", rho, 0.0)
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((self.n, 2))
        y = rng.standard_normal((self.m, 2)) + np.array([1.0, 0.0])
        self.C = ((x[:, None, :] - y[None, :, :]) ** 2).sum(axis=2)
        a, b = rng.uniform(0.5, 1.5, self.n), rng.uniform(0.5, 1.5, self.m)
        self.a, self.b = a / a.sum(), b / b.sum()
        self.Q = rng.uniform(0.0, 2.0 / (self.n * self.m), (self.n, self.m))
        self.param_shapes = {"P": (self.n, self.m)}
        self._plan = None

    def _init(self, rng):
        return {"P": np.outer(self.a, self.b)}

    def _loss(self, params, batch):
        P = params["P"]
        out = ag.sum(self._const(self.C, params) * P)
        if self.eps:
            out = out + self.eps * ag.sum(P * ag.log(P) - P)
        if self.rho:
            r = P - self._const(self.Q, params)
            out = out + 0.5 * self.rho * ag.sum(r * r)
        return out

    def marginal_violation(self, P):
        """``||P 1 - a||_1 + ||P^T 1 - b||_1`` (a float)."""
        P = np.asarray(P, dtype=np.float64)
        return float(np.abs(P.sum(axis=1) - self.a).sum() + np.abs(P.sum(axis=0) - self.b).sum())

    def objective_value(self, P):
        """``f(P)`` in float64 (a float)."""
        P = np.asarray(P, dtype=np.float64)
        out = float((self.C * P).sum())
        if self.eps:
            out += self.eps * float(np.sum(np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0) - P))
        if self.rho:
            out += 0.5 * self.rho * float(((P - self.Q) ** 2).sum())
        return out

    def optimal_plan(self):
        """The minimiser of ``f`` over ``U(a, b)`` (float64, cached; a copy)."""
        if self._plan is None:
            n, m = self.n, self.m
            if self.eps == 0 and self.rho == 0:
                import scipy.optimize
                A_eq = np.vstack([np.kron(np.eye(n), np.ones(m)), np.kron(np.ones(n), np.eye(m))])
                res = scipy.optimize.linprog(self.C.ravel(), A_eq=A_eq, b_eq=np.concatenate([self.a, self.b]),
                                             bounds=(0, None), method="highs")
                if res.status != 0:
                    raise RuntimeError(f"{self.name}: linprog failed: {res.message}")
                self._plan = res.x.reshape(n, m)
            elif self.rho == 0:
                self._plan = sinkhorn_plan(self.C, self.a, self.b, self.eps)
            else:
                import scipy.optimize
                cons = [{"type": "eq", "fun": lambda p: p.reshape(n, m).sum(axis=1) - self.a},
                        {"type": "eq", "fun": lambda p: p.reshape(n, m).sum(axis=0)[:-1] - self.b[:-1]}]
                lower = 1e-300 if self.eps else 0.0
                res = scipy.optimize.minimize(
                    lambda p: self.objective_value(p.reshape(n, m)), np.outer(self.a, self.b).ravel(),
                    jac=lambda p: self._gradient(p.reshape(n, m)).ravel(), constraints=cons,
                    bounds=[(lower, None)] * (n * m), method="SLSQP", options=dict(ftol=1e-15, maxiter=5000))
                if not res.success:
                    raise RuntimeError(f"{self.name}: SLSQP failed: {res.message}")
                self._plan = res.x.reshape(n, m)
        return self._plan.copy()

    def _gradient(self, P):
        g = self.C.copy()
        if self.eps:
            g = g + self.eps * np.log(P)
        if self.rho:
            g = g + self.rho * (P - self.Q)
        return g

    @property
    def optimal_objective(self):
        return self.objective_value(self.optimal_plan())
