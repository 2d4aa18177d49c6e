"""Accelerating Sinkhorn Algorithm with Sparse Newton Iterations.

Xun Tang, Michael Shavlovsky, Holakou Rahmanian, Elisa Tardini, Kiran Koshy
Thekumparampil, Tesi Xiao, Lexing Ying. ICLR 2024. arXiv:2401.12253

Entropic optimal transport,

    min_{P in U(a, b)}  <C, P> + eps sum_ij P_ij (log P_ij - 1),

is the dual of maximising the concave **Lyapunov potential** over the
potentials ``z = (f, g)`` (``n + m`` numbers),

    L(f, g) = <f, a> + <g, b> - eps sum_ij P_ij(f, g),     P_ij(f, g) = exp((f_i + g_j - C_ij) / eps),

    grad L  = (a - P 1,  b - P^T 1)                                (the marginal errors)
    Hess L  = -(1/eps) [[diag(P 1), P], [P^T, diag(P^T 1)]].

Sinkhorn's algorithm is exact block-coordinate ascent on ``L`` (each half
step zeroes one block of the gradient). Sinkhorn-Newton-Sparse (SNS,
the paper's Algorithm 1) runs two stages:

    stage 1 (N1 Sinkhorn steps, warm start):
        f <- f + eps (log a - log P 1)          (rows to a)
        g <- g + eps (log b - log P^T 1)        (columns to b)
    stage 2 (Newton steps on L, at most N2):
        M      <- Sparsify(-eps Hess L(z), rho)    keep the largest entries of P in the off-diagonal blocks
        dz     <- ConjugateGradient(M, eps grad L(z))          (solve M dz = eps grad L)
        alpha  <- LineSearch(L, z, dz)
        z      <- z + alpha dz

The paper's insight: after the Sinkhorn warm start ``P`` is close to the
entropic plan, which for small ``eps`` concentrates on ``O(n)`` entries (near
the support of the unregularised plan), so the Hessian is approximately
sparse; keeping ``O(n)`` entries makes one Newton step cost ``O(n^2)`` (the
dense ``P`` still has to be formed for the gradient), like one Sinkhorn
step, while the Newton stage converges in a handful of steps (the paper
observes super-exponential convergence, without a proof).

This is a **driver** (like :mod:`reference.optim.mirror_sinkhorn`), not an
optimizer: :func:`sinkhorn_newton_sparse` takes an entropic
``reference.problems`` ``optimal_transport`` problem (``eps > 0``, ``rho = 0``)
or any object with ``C``, ``a``, ``b``, ``eps``, and returns the potentials,
the plan and a history.

Choices (where the paper leaves room, or where it was not checked against it;
the paper's full algorithm box was not reachable here: the two stages, the
Lyapunov potential, the sparsified Hessian, CG and a line search are from its
abstract and summaries; every detail below marked "mine" is a choice of this
file):

* **Defaults** (mine): ``N1 = sinkhorn_steps = 100``, ``N2 = newton_steps = 50``.

* **Entropy convention**: the library's ``P (log P - 1)`` (as in
  ``optimal_transport`` and ``reference.problems.composite.sinkhorn_plan``),
  so ``P = exp((f + g - C) / eps)``. The paper writes ``eta = 1/eps`` and the
  entropy ``P log P``, so its ``P = exp(eta (f + g - C) - 1)``: the same plan,
  potentials shifted by the constant ``eps / 2`` each.
* **Log domain**: the Sinkhorn stage updates the potentials with
  ``logsumexp`` (stable for small ``eps``); ``P`` is formed from potentials,
  never from scaling vectors ``u = exp(f / eps)`` (which under/overflow).
* **Sparsify** (my reading of "keep the largest entries"): the diagonal blocks ``diag(P 1)``,
  ``diag(P^T 1)`` are kept exactly (they are the largest entries of the
  Hessian anyway); in the off-diagonal blocks only the ``keep`` largest
  entries of ``P`` are kept, ``keep = ceil(rho_keep * n * m)``, default
  ``rho_keep = keep_per_row * max(n, m) / (n m)`` with ``keep_per_row = 16``
  (``O(n)`` entries; the constant is mine: on the random squared-Euclidean
  problems of the tests, with ``eps`` 1-2% of the mean cost, all but ``1e-8``
  of the plan's mass sits in about ``10-20 n`` entries, and 5 per row was
  too few for fast convergence).
  ``rho_keep = 1`` is the dense Newton method. The kept matrix is stored as a
  ``scipy.sparse`` matrix; the CG matrix-vector product costs ``O(n + m + keep)``.
* **The constant null direction**: ``L(f + t, g - t) = L(f, g)``, so the dense
  Hessian has the null vector ``w = (1_n, -1_m)`` and the gradient is
  orthogonal to it (both blocks sum to ``1 - sum P``). CG runs on the
  projected operator ``Pi M Pi`` with ``Pi = I - w w^T / (n + m)``, starting
  at 0 with a projected right-hand side, so the direction has no component
  along ``w`` (for the dense Hessian this is the minimum-norm Newton step;
  for the sparsified one, which is nearly singular along ``w``, it avoids a
  huge useless step along ``w``).
* **CG stop**: residual ``<= cg_tol * ||rhs||`` (default ``1e-10``) or
  ``cg_max_iter`` iterations (default ``n + m``).
* **Line search**: backtracking (Armijo) on ``L`` from ``alpha = 1``,
  halving until ``L(z + alpha dz) >= L(z) + c1 alpha <grad L, dz>``
  (``c1 = 1e-4``; at most 60 halvings, then the step is rejected and the
  run stops). Mine: the summaries say only "line search".
* **Stopping**: both stages stop early once the marginal error
  ``||P 1 - a||_1 + ||P^T 1 - b||_1`` (at the current potentials) is
  ``<= tol``; the history records it after every iteration of both stages.

Measured (tests/test_sinkhorn_fractional.py; ``optimal_transport`` with
``n = 100``, ``m = 120``, ``eps = 0.02``, seeds 0-2): 100 Sinkhorn + 18-24
Newton iterations reach marginal error ``< 1e-11`` and the converged
Sinkhorn plan to ``1e-10``, where plain Sinkhorn needs 1800-4000 iterations
to reach ``1e-8``; the Newton stage costs 3300-4500 sparse CG products in
all (each ``O(n + m + keep)``, far cheaper than a Sinkhorn step's ``O(n m)``
exponentials).
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse

from .. import catalog
from ..problems.composite import sinkhorn_step
from .base import check_int

__all__ = ["sinkhorn_newton_sparse", "lyapunov", "lyapunov_hessian", "sparsify", "sinkhorn_step", "plan", "projected_cg",
           "marginal_error"]

catalog.register(title="Accelerating Sinkhorn Algorithm with Sparse Newton Iterations",
                 name="sinkhorn_newton_sparse", family="optimizer-second-order", kind="implementation",
                 module=__name__, authors="Tang, Shavlovsky, Rahmanian, Tardini, Thekumparampil, Xiao, Ying",
                 year=2024, arxiv="2401.12253")


# --------------------------------------------------------------------------
# the Lyapunov potential and its derivatives
# --------------------------------------------------------------------------

def plan(f, g, C, eps):
    """``P_ij = exp((f_i + g_j - C_ij) / eps)``."""
    with np.errstate(over="ignore"):
        return np.exp((f[:, None] + g[None, :] - C) / eps)


def marginal_error(P, a, b):
    """``||P 1 - a||_1 + ||P^T 1 - b||_1``."""
    return float(np.abs(P.sum(axis=1) - a).sum() + np.abs(P.sum(axis=0) - b).sum())


def lyapunov(f, g, C, a, b, eps):
    """``(L(f, g), grad L, P)``: the concave dual potential, its gradient ``(a - P 1, b - P^T 1)`` and the plan."""
    P = plan(f, g, C, eps)
    value = float(f @ a + g @ b - eps * P.sum())
    grad = np.concatenate([a - P.sum(axis=1), b - P.sum(axis=0)])
    return value, grad, P


def lyapunov_hessian(P, eps):
    """The dense Hessian ``-(1/eps) [[diag(P 1), P], [P^T, diag(P^T 1)]]`` of ``L`` ((n+m, n+m))."""
    n, m = P.shape
    H = np.zeros((n + m, n + m))
    H[:n, :n] = np.diag(P.sum(axis=1))
    H[n:, n:] = np.diag(P.sum(axis=0))
    H[:n, n:] = P
    H[n:, :n] = P.T
    return -H / eps


def sparsify(P, keep):
    """``M = [[diag(P 1), S], [S^T, diag(P^T 1)]]`` (``= -eps Hess L`` with ``P`` in the off-diagonal blocks
    replaced by ``S``, its ``keep`` largest entries), as a ``scipy.sparse`` CSR matrix."""
    n, m = P.shape
    keep = int(min(max(keep, 0), n * m))
    flat = P.ravel()
    if keep == n * m:
        idx = np.arange(n * m)
    elif keep == 0:
        idx = np.zeros(0, dtype=np.int64)
    else:
        idx = np.argpartition(flat, n * m - keep)[n * m - keep:]
    S = scipy.sparse.coo_matrix((flat[idx], (idx // m, idx % m)), shape=(n, m))
    D = scipy.sparse.diags(np.concatenate([P.sum(axis=1), P.sum(axis=0)]))
    return (D + scipy.sparse.bmat([[None, S], [S.T, None]], format="csr")).tocsr()


def projected_cg(M, rhs, n, tol, max_iter):
    """CG on ``Pi M Pi x = Pi rhs`` from ``x = 0``, where ``Pi`` removes the component along the null
    direction ``w = (1_n, -1_m) / sqrt(n + m)``; returns ``(x, iterations)``."""
    w = np.ones(rhs.size)
    w[n:] = -1.0
    w /= math.sqrt(rhs.size)
    proj = lambda v: v - (w @ v) * w  # noqa: E731
    b = proj(rhs)
    x = np.zeros(rhs.size)
    r = b.copy()
    p = r.copy()
    rr = float(r @ r)
    stop = (tol * math.sqrt(float(b @ b))) ** 2
    iters = 0
    while rr > stop and iters < max_iter:
        Ap = proj(M @ p)
        pAp = float(p @ Ap)
        if not pAp > 0:
            break
        alpha = rr / pAp
        x += alpha * p
        r -= alpha * Ap
        rr_new = float(r @ r)
        p = r + (rr_new / rr) * p
        rr = rr_new
        iters += 1
    return proj(x), iters


# --------------------------------------------------------------------------
# stage 1: Sinkhorn (log domain)
# --------------------------------------------------------------------------

# the log-domain Sinkhorn iteration is the library's (reference.problems.composite.sinkhorn_step)


# --------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------

def sinkhorn_newton_sparse(problem, sinkhorn_steps=100, newton_steps=50, rho_keep=None, keep_per_row=16, tol=1e-12,
                           cg_tol=1e-10, cg_max_iter=None, c1=1e-4, init=None):
    """Run SNS on the entropic OT ``problem`` (attributes ``C``, ``a``, ``b``, ``eps > 0``).

    ``sinkhorn_steps`` = N1, ``newton_steps`` = N2 (maxima: both stages stop once the marginal error
    is ``<= tol``); ``rho_keep``: fraction of the ``n m`` entries of ``P`` kept in the sparsified
    Hessian (default: ``keep_per_row * max(n, m)`` entries, ``O(n)``; 1 = dense Newton); ``init``: starting potentials ``(f, g)``
    (default zeros). Returns ``{"f", "g", "plan", "history"}``; the history has per-iteration
    ``stage`` (1 Sinkhorn, 2 Newton), ``marginal_error``, ``lyapunov``, and for Newton steps
    ``cg_iterations``, ``step`` (the line-search ``alpha``) and ``kept`` (entries of ``P`` kept).
    """
    where = "sinkhorn_newton_sparse"
    for cap in ("C", "a", "b", "eps"):
        if getattr(problem, cap, None) is None:
            raise TypeError(f"{where}: the problem must offer problem.{cap} (an entropic "
                            f"reference.problems optimal_transport); {type(problem).__name__} has no {cap!r}")
    eps = float(problem.eps)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"{where}: the problem's entropic regularisation eps must be > 0, got {problem.eps!r}")
    if getattr(problem, "rho", 0.0):
        raise ValueError(f"{where}: the problem must be entropic OT (rho = 0), got rho = {problem.rho!r}")
    for name, value in (("sinkhorn_steps", sinkhorn_steps), ("newton_steps", newton_steps)):
        check_int(name, value, 0, where=where)
    for name, value, low, high in (("tol", tol, 0.0, math.inf), ("cg_tol", cg_tol, 0.0, 1.0), ("c1", c1, 0.0, 1.0)):
        if not (isinstance(value, (int, float)) and low <= value < high):
            raise ValueError(f"{where}: {name} must be in [{low}, {high}), got {value!r}")
    C = np.asarray(problem.C, dtype=np.float64)
    a, b = np.asarray(problem.a, dtype=np.float64), np.asarray(problem.b, dtype=np.float64)
    n, m = C.shape
    if rho_keep is None:
        rho_keep = min(1.0, keep_per_row * max(n, m) / (n * m))
    if not (isinstance(rho_keep, (int, float)) and 0 < rho_keep <= 1):
        raise ValueError(f"{where}: rho_keep must be in (0, 1], got {rho_keep!r}")
    keep = int(math.ceil(rho_keep * n * m))
    cg_max_iter = n + m if cg_max_iter is None else int(cg_max_iter)
    f, g = (np.zeros(n), np.zeros(m)) if init is None else (np.array(init[0], float), np.array(init[1], float))
    log_a, log_b = np.log(a), np.log(b)
    hist = {k: [] for k in ("stage", "marginal_error", "lyapunov", "cg_iterations", "step", "kept")}

    def record(stage, value, P, cg=0, step=0.0, kept=0):
        hist["stage"].append(stage)
        hist["marginal_error"].append(marginal_error(P, a, b))
        hist["lyapunov"].append(value)
        hist["cg_iterations"].append(cg)
        hist["step"].append(step)
        hist["kept"].append(kept)
        return hist["marginal_error"][-1] <= tol

    # stage 1: N1 Sinkhorn iterations
    value, grad, P = lyapunov(f, g, C, a, b, eps)
    done = marginal_error(P, a, b) <= tol
    for _ in range(sinkhorn_steps):
        if done:
            break
        f, g = sinkhorn_step(f, g, C, log_a, log_b, eps)
        value, grad, P = lyapunov(f, g, C, a, b, eps)
        done = record(1, value, P)
    # stage 2: sparse Newton iterations
    for _ in range(newton_steps):
        if done:
            break
        M = sparsify(P, keep)                                       # M = Sparsify(-eps Hess L, rho)
        dz, cg_iters = projected_cg(M, eps * grad, n, cg_tol, cg_max_iter)   # M dz = eps grad L
        slope = float(grad @ dz)
        alpha, accepted = 1.0, False
        for _ls in range(60):                                       # backtracking line search on L
            f_try, g_try = f + alpha * dz[:n], g + alpha * dz[n:]
            v_try, grad_try, P_try = lyapunov(f_try, g_try, C, a, b, eps)
            if math.isfinite(v_try) and v_try >= value + c1 * alpha * slope:
                accepted = True
                break
            alpha *= 0.5
        if not accepted:
            break
        f, g, value, grad, P = f_try, g_try, v_try, grad_try, P_try
        done = record(2, value, P, cg=cg_iters, step=alpha, kept=int(M.nnz - (n + m)) // 2)
    history = {k: np.asarray(v) for k, v in hist.items()}
    return {"f": f, "g": g, "plan": P, "history": history}
