"""Constrained Optimization via Exact Augmented Lagrangian and Randomized Iterative Sketching.

Ilgee Hong, Sen Na, Michael W. Mahoney, Mladen Kolar. ICML 2023. arXiv:2305.18379

``min f(x)  s.t.  c(x) = 0`` (``c: R^n -> R^m``) by an adaptive *inexact* Newton (SQP) method
(AdaSketch-Newton). With the Lagrangian ``L(x, lam) = f(x) + lam^T c(x)``, ``G = dc/dx`` and
``B`` the Lagrangian Hessian ``H = d^2_x L`` (plus ``t I`` when it is not positive definite on the
null space of ``G``), each iteration:

1. **Newton system** ``K z = b``,  ``K = [[B, G^T], [G, 0]]``,  ``b = -(grad_x L, c)``, solved
   *inexactly* by a randomized iterative sketching solver (sketch-and-project):
   ``z_{j+1} = z_j - K S_j (S_j^T K K S_j)^+ S_j^T (K z_j - b)`` with ``S_j`` a random coordinate
   vector (randomized Kaczmarz, ``sketch="kaczmarz"``) or a Gaussian matrix (``sketch="gaussian"``),
   stopped by the **adaptive accuracy condition**

       ||K|| psi ||K z_j - b||  <=  theta_k delta_k ||b||,
       psi = 20 max(||B||^2, 1) / (min(xi_G, 1) min(xi_B, 1)),   xi_G = lambda_min(G G^T).

2. **Merit**: the exact augmented Lagrangian

       L_{mu,nu}(x, lam) = L(x, lam) + (mu/2) ||c(x)||^2 + (nu/2) ||grad_x L(x, lam)||^2,
       grad_x L_{mu,nu} = (I + nu H) grad_x L + mu G^T c,    grad_lam L_{mu,nu} = c + nu G grad_x L.

   **Penalty adaptation**: while the direction is not a sufficient descent direction,
   ``grad L_{mu,nu}^T z > -(nu/2) ||b||^2``, set ``mu <- rho^2 mu``, ``nu <- nu / rho``,
   ``delta <- min(delta / rho^4, delta_trial)`` with
   ``delta_trial = (1/2 - beta) nu / ((1 + mu + nu) Upsilon^2 psi^2)``, ``Upsilon = max(||G||, ||H||, 1)``,
   and continue the sketching iteration (warm start) to the new accuracy.

3. **Armijo** backtracking on the merit: the largest ``alpha in {1, 1/2, 1/4, ...}`` with
   ``L_{mu,nu}(x + alpha dx, lam + alpha dlam) <= L_{mu,nu}(x, lam) + alpha beta grad L_{mu,nu}^T z``.

Locally the unit step is accepted and the convergence is linear; sharpening the accuracy
(``theta_k -> 0``) makes it superlinear.

Conventions and choices (constants from the authors' code, AdaSketch-Newton's ``Param.jl``, because
the stored paper page only gives the abstract):

* ``mu = 1``, ``nu = 0.1``, ``delta = 0.1``, ``xi_B = 0.1``, ``beta = 0.1``, ``rho = 1.5`` (called ``nu``
  in that code), ``theta_k = 1``, ``delta`` floored at ``delta_min = 1e-6`` (the code's guard; without it
  the accuracy condition can become unattainably strict), at most ``max_inner = 1e5`` sketching steps.
* **Hessian modification** as in that code: if ``lambda_min(Z^T H Z) < 1e-6`` (``Z`` an orthonormal
  null-space basis of ``G``), ``B = H + (xi_B + ||H||_F) I``. Matrix norms are Frobenius (Julia's
  ``norm`` of a matrix).
* **Merit gradient** uses the exact Lagrangian Hessian ``H`` in ``(I + nu H) grad_x L``; the official code
  uses the Hessian of ``f`` alone there, which is exact only for linear constraints. The line search
  evaluates the merit (and so ``grad_x L``) exactly at each trial point.
* **Kaczmarz rows** are sampled uniformly (as in the code), the Gaussian sketch has ``sketch_size``
  columns (1 in the code). Randomness comes from ``numpy.random.default_rng(seed)``: a run is
  reproducible from its seed.
* ``theta`` may be a callable ``k -> theta_k`` (e.g. ``lambda k: 1 / (k + 1)`` sharpens the accuracy).
* Derivatives (``grad f``, ``G``, ``H``) by ``reference.autograd``.

This is a **driver** (a constrained problem is not a params-dict training problem):
:func:`sketched_sqp` takes a problem from ``reference.problems.constrained_problems`` (or any object with
``objective``, ``constraints`` in autograd ops and ``x0``), :func:`sketch_and_project` is the linear solver.
"""
from __future__ import annotations

import math

import numpy as np

from .. import autograd as ag
from .. import catalog
from .base import check_int

__all__ = ["sketched_sqp", "sketch_and_project", "exact_augmented_lagrangian"]

catalog.register(title="Constrained Optimization via Exact Augmented Lagrangian and Randomized Iterative Sketching",
                 name="sketched_sqp_exact_aug_lagrangian", family="optimizer-second-order",
                 kind="implementation", module=__name__,
                 authors="Hong, Na, Mahoney, Kolar", year=2023, arxiv="2305.18379")


# ---- the randomized iterative sketching solver -----------------------------------------------------

def sketch_and_project(K, b, rng, z0=None, tol=1e-10, atol=None, sketch="kaczmarz", sketch_size=1,
                       max_iter=100000):
    """Solve the consistent system ``K z = b`` (``K`` square) by sketch-and-project.

    ``z_{j+1} = z_j - K^T S (S^T K K^T S)^+ S^T r_j``, ``r_j = K z_j - b`` (``K^T = K`` for the KKT
    matrix). Stops as soon as ``||r_j|| <= atol`` (if given, else ``tol ||b||``), checked after every
    step, or after ``max_iter`` steps. Returns ``(z, r, steps)``.
    """
    K = np.asarray(K, dtype=np.float64)
    N = K.shape[0]
    z = np.zeros(N) if z0 is None else np.array(z0, dtype=np.float64)
    r = K @ z - b
    bound = tol * float(np.linalg.norm(b)) if atol is None else float(atol)
    bound_sq = bound * bound
    M = K @ K.T                                       # r changes by -M S w when z changes by -K^T S w
    row_sq = np.diag(M).copy()
    steps = 0
    while steps < max_iter and float(r @ r) > bound_sq:
        if sketch == "kaczmarz":                      # S = e_i, i uniform: z -= r_i / ||K_i||^2 K_i^T
            for i in rng.integers(0, N, size=min(256, max_iter - steps)):
                steps += 1
                if row_sq[i] > 0.0:
                    w = r[i] / row_sq[i]
                    z -= w * K[i]
                    r -= w * M[:, i]
                    if float(r @ r) <= bound_sq:
                        break
            continue
        S = rng.standard_normal((N, sketch_size))     # Gaussian sketch
        w = np.linalg.pinv(S.T @ M @ S) @ (S.T @ r)
        z -= K.T @ (S @ w)
        r -= M @ (S @ w)
        steps += 1
    return z, K @ z - b, steps


# ---- the exact augmented Lagrangian ------------------------------------------------------------------

class _Derivatives:
    """``f, grad f, c, G, grad_x L, H = d^2_x L`` at ``(x, lam)`` by autograd."""

    def __init__(self, problem, x, lam):
        self.f = float(_value(problem.objective(x)))
        self.grad_f = np.asarray(ag.grad(problem.objective)(x), dtype=np.float64)
        self.c = np.asarray(_value(problem.constraints(x)), dtype=np.float64)
        self.G = np.asarray(ag.jacobian(problem.constraints)(x), dtype=np.float64).reshape(self.c.size, x.size)
        self.grad_L = self.grad_f + self.G.T @ lam

        def lagrangian(z):
            return problem.objective(z) + ag.sum(problem.constraints(z) * lam)

        self.H = np.asarray(ag.hessian(lagrangian)(x), dtype=np.float64)

    @property
    def kkt(self):
        return float(math.sqrt(self.grad_L @ self.grad_L + self.c @ self.c))


def _value(t):
    return t.value if isinstance(t, ag.Tensor) else t


def exact_augmented_lagrangian(problem, x, lam, mu, nu):
    """``L_{mu,nu}(x, lam) = f + lam^T c + (mu/2)||c||^2 + (nu/2)||grad_x L||^2``."""
    f = float(_value(problem.objective(x)))
    c = np.asarray(_value(problem.constraints(x)), dtype=np.float64)
    G = np.asarray(ag.jacobian(problem.constraints)(x), dtype=np.float64).reshape(c.size, x.size)
    gL = np.asarray(ag.grad(problem.objective)(x), dtype=np.float64) + G.T @ lam
    return f + float(lam @ c) + 0.5 * mu * float(c @ c) + 0.5 * nu * float(gL @ gL)


def _merit_gradient(d, mu, nu):
    """``(grad_x L_{mu,nu}, grad_lam L_{mu,nu})`` stacked."""
    gx = d.grad_L + nu * (d.H @ d.grad_L) + mu * (d.G.T @ d.c)
    gl = d.c + nu * (d.G @ d.grad_L)
    return np.concatenate([gx, gl])


# ---- the driver -----------------------------------------------------------------------------------

def sketched_sqp(problem, x0=None, lam0=None, max_iter=200, tol=1e-8, sketch="kaczmarz", sketch_size=1,
                 seed=0, mu=1.0, nu=0.1, delta=0.1, xi_b=0.1, beta=0.1, rho=1.5, theta=1.0,
                 delta_min=1e-6, max_inner=100000, max_backtracks=60):
    """AdaSketch-Newton on ``problem`` (``objective``, ``constraints`` in autograd ops, ``x0``).

    Returns ``{"x", "lam", "converged", "iterations", "reason", "history"}``; the history has per
    iteration ``kkt`` (``||(grad_x L, c)||`` at the iterate, plus the final one), ``alpha`` (accepted
    step size), ``mu``, ``nu``, ``delta``, ``inner`` (sketching steps), ``relative_residual``
    (``||K z - b|| / ||b||`` of the direction used), ``merit`` / ``merit_next`` (``L_{mu,nu}`` before and
    after the step, same penalties), ``slope`` (``grad L_{mu,nu}^T z``) and ``descent_bound``
    (``-(nu/2) ||b||^2``).
    """
    where = "sketched_sqp"
    for name, v in (("tol", tol), ("mu", mu), ("nu", nu), ("delta", delta), ("xi_b", xi_b),
                    ("delta_min", delta_min)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{where}: {name} must be a finite number > 0, got {v!r}")
    if not (isinstance(beta, (int, float)) and 0 < beta < 0.5):
        raise ValueError(f"{where}: beta must lie in (0, 0.5), got {beta!r}")
    if not (isinstance(rho, (int, float)) and math.isfinite(rho) and rho > 1):
        raise ValueError(f"{where}: rho must be a finite number > 1, got {rho!r}")
    if sketch not in ("kaczmarz", "gaussian"):
        raise ValueError(f"{where}: sketch must be 'kaczmarz' or 'gaussian', got {sketch!r}")
    for name, v in (("max_iter", max_iter), ("sketch_size", sketch_size), ("max_inner", max_inner)):
        check_int(name, v, 1, where=where)
    theta_of = theta if callable(theta) else (lambda k: theta)
    rng = np.random.default_rng(seed)
    x = np.array(problem.x0 if x0 is None else x0, dtype=np.float64)
    n = x.size
    m = int(np.asarray(_value(problem.constraints(x))).size)
    if m < 1:
        raise ValueError(f"{where}: the problem must have at least one equality constraint, got {m}")
    lam = np.zeros(m) if lam0 is None else np.array(lam0, dtype=np.float64)
    d = _Derivatives(problem, x, lam)
    hist = {k: [] for k in ("kkt", "alpha", "mu", "nu", "delta", "inner", "relative_residual", "merit",
                            "merit_next", "slope", "descent_bound")}
    reason, k = "max_iter", 0
    while True:
        hist["kkt"].append(d.kkt)
        if not math.isfinite(d.kkt):
            raise FloatingPointError(f"{where}: non-finite KKT residual at iteration {k}")
        if d.kkt <= tol:
            reason = "tol"
            break
        if k >= max_iter:
            break
        xi_G = float(np.linalg.eigvalsh(d.G @ d.G.T)[0]) if m else 1.0
        if xi_G <= 1e-12:
            reason = "singular_jacobian"
            break
        # Hessian modification on the null space of G
        B = d.H
        if m < n:
            Q, _ = np.linalg.qr(d.G.T, mode="complete")
            Z = Q[:, m:]
            if float(np.linalg.eigvalsh(Z.T @ d.H @ Z)[0]) < 1e-6:
                B = d.H + (xi_b + float(np.linalg.norm(d.H))) * np.eye(n)
        psi = 20.0 * max(float(np.linalg.norm(B)) ** 2, 1.0) / (min(xi_G, 1.0) * min(xi_b, 1.0))
        upsilon = max(float(np.linalg.norm(d.G)), float(np.linalg.norm(d.H)), 1.0)

        def delta_trial():
            return (0.5 - beta) * nu / ((1.0 + mu + nu) * upsilon ** 2 * psi ** 2)

        delta = max(min(delta, delta_trial()), delta_min)
        K = np.block([[B, d.G.T], [d.G, np.zeros((m, m))]])
        b = -np.concatenate([d.grad_L, d.c])
        K_norm, b_norm = float(np.linalg.norm(K)), float(np.linalg.norm(b))
        z, inner = np.zeros(n + m), 0
        while True:                                        # accuracy, then descent test, then penalties
            bound = theta_of(k) * delta * b_norm / (K_norm * psi)
            z, r, steps = sketch_and_project(K, b, rng, z0=z, atol=bound, sketch=sketch, sketch_size=sketch_size,
                                             max_iter=max_inner)
            inner += steps
            slope = float(_merit_gradient(d, mu, nu) @ z)
            if mu > 1e8 or nu < 1e-8 or slope <= -0.5 * nu * b_norm ** 2:
                break
            mu, nu = mu * rho ** 2, nu / rho
            delta = max(min(delta / rho ** 4, delta_trial()), delta_min)
        # Armijo line search on L_{mu,nu}
        merit = d.f + float(lam @ d.c) + 0.5 * mu * float(d.c @ d.c) + 0.5 * nu * float(d.grad_L @ d.grad_L)
        alpha = 1.0
        for _ in range(max_backtracks):
            trial = exact_augmented_lagrangian(problem, x + alpha * z[:n], lam + alpha * z[n:], mu, nu)
            if trial <= merit + alpha * beta * slope:
                break
            alpha *= 0.5
        hist["merit"].append(merit)
        hist["merit_next"].append(trial)
        hist["slope"].append(slope)
        hist["descent_bound"].append(-0.5 * nu * b_norm ** 2)
        x, lam = x + alpha * z[:n], lam + alpha * z[n:]
        d = _Derivatives(problem, x, lam)
        k += 1
        for key, v in (("alpha", alpha), ("mu", mu), ("nu", nu), ("delta", delta), ("inner", inner),
                       ("relative_residual", float(np.linalg.norm(r)) / max(b_norm, 1e-300))):
            hist[key].append(v)
    return {"x": x, "lam": lam, "converged": reason == "tol", "iterations": k, "reason": reason,
            "history": {key: np.asarray(v, dtype=np.float64) for key, v in hist.items()}}
