"""On the saddle point problem for non-convex optimization.

Razvan Pascanu, Yann N. Dauphin, Surya Ganguli, Yoshua Bengio. 2014. arXiv:1405.4604
(extended as Dauphin et al., "Identifying and attacking the saddle point problem in
high-dimensional non-convex optimization", NIPS 2014, arXiv:1406.2572)

In high dimensions most critical points with high loss are saddles, not
local minima. Near a saddle, gradient descent crawls (the gradient is small
along the escape directions), and Newton's method is *attracted*: its step
``-H^{-1} g`` divides the gradient along a negative-curvature eigenvector by a
negative eigenvalue and so moves *up* that direction, towards the saddle. The
saddle-free Newton method (SFN) rescales the gradient by the inverse of the
absolute value of the Hessian,

    H = V diag(lambda) V^T,   |H| = V diag(|lambda|) V^T,
    Delta theta = - lr (|H| + damping I)^{-1} g,

which is Newton's step where the curvature is positive and a step *down*
the negative-curvature directions, with length scaled by that curvature,
where it is negative: a saddle repels it. (The paper derives it as the
minimiser of the first-order Taylor expansion within a trust region whose
shape is set by ``|H|``, its "generalized trust region".)

The practical algorithm (the paper's "approximate saddle-free Newton")
works in a ``k``-dimensional Krylov subspace of the Hessian, where the
absolute value is an eigendecomposition of a ``k x k`` matrix:

    V         <- an orthonormal basis of k Lanczos vectors of the Hessian
    Hhat      =  V H V^T,  |Hhat| from its eigendecomposition
    g_hat     =  V g
    damping   <- argmin_lambda f(theta - V^T (|Hhat| + lambda I)^{-1} g_hat)   (a line search)
    theta     <- theta - V^T (|Hhat| + damping I)^{-1} g_hat

``method``: ``"exact"`` forms the dense Hessian (``reference.curvature.
hessian``, one HVP per parameter: for small models) and uses its full
eigendecomposition; ``"krylov"`` uses ``krylov_dim`` Lanczos vectors (one HVP
each). With ``krylov_dim`` at least the number of parameters the two agree
(the Krylov space is then the whole space, for a generic gradient).

Conventions and choices (the paper leaves them open):

* **The Krylov space** is started from the gradient, ``K_k(H, g) =
  span{g, Hg, ..., H^{k-1} g}``, the space of Krylov subspace descent
  (Vinyals and Povey, 2012), on which the paper builds; so the step always
  contains the gradient direction. The Lanczos vectors are
  reorthogonalised twice against all earlier ones (classical Gram-Schmidt);
  the sequence stops early when it finds an invariant subspace.
  (``reference.curvature.top_eigenvalues`` runs Lanczos from a random start
  and returns Ritz pairs, so it is not used for this basis.)
* **Damping.** ``line_search=True`` (the paper's algorithm) tries
  ``damping * 10^j`` for ``j = 0 .. n_damping - 1`` (default ``1e-4`` to
  ``1e3``) and keeps the one with the lowest loss at ``theta + lr Delta``
  (each trial is one loss evaluation, with ``oracle.loss`` where it exists);
  ``line_search=False`` uses ``damping`` alone. The value used is recorded in
  ``state["damping"]``, the smallest eigenvalue of the (projected) Hessian
  in ``state["min_eigenvalue"]`` (``None`` before the first step
  and at a critical point with ``method="krylov"``).
* **Newton for comparison.** ``saddle_free=False`` uses ``lambda`` instead
  of ``|lambda|`` (damped Newton, ``(H + damping I)^{-1}``); directions whose
  denominator is exactly zero are dropped (a pseudo-inverse).
* The paper repeats the inner step ``m`` times with one subspace; here every
  ``step`` computes a fresh subspace (``m = 1``), so that one step is one
  gradient evaluation.
* Hessian-vector products come from the oracle's ``hvp`` (``TypeError``
  naming ``hvp`` for a plain oracle). The eigendecompositions and the line
  search run on the host side of the computation (scalar syncs): this is a
  method for small models and for studying saddles, not a fused kernel.
"""
from __future__ import annotations

import math

import numpy as np

from .. import curvature, tree
from ..backend import xp_of
from .adahessian import require_hvp
from .base import Optimizer, check_grads, check_int, check_range, register

METHODS = ("exact", "krylov")


def krylov_basis(hessian_vector, g, k):
    """Orthonormal Lanczos vectors of ``K_k(H, g)`` (rows of ``V``) and the products ``H V^T`` (rows too).

    ``hessian_vector(v)`` maps a flat vector to ``H v``. Stops early at an
    invariant subspace (``||w|| <= sqrt(eps) * scale``). Returns ``(V, HV)``
    with ``V`` of shape ``(j, n)``, ``j <= k``.
    """
    xp = xp_of(g)
    tol = math.sqrt(float(np.finfo(g.dtype).eps))
    V = [g / xp.linalg.norm(g)]
    HV, scale = [], 0.0
    for j in range(k):
        w = hessian_vector(V[j])
        HV.append(w)
        if j == k - 1:
            break
        basis = xp.stack(V)
        for _ in range(2):                               # full reorthogonalisation, twice
            w = w - basis.T @ (basis @ w)
        beta = float(xp.linalg.norm(w))
        scale = max(scale, float(xp.linalg.norm(HV[-1])))
        if beta <= tol * scale:                          # invariant subspace: the space is exact
            break
        V.append(w / beta)
    return xp.stack(V), xp.stack(HV)


def rescaled_step(eigenvalues, eigenvectors, g_coords, damping, saddle_free=True):
    """``-(|H| + damping)^{-1} g`` in the coordinates where ``H = U diag(lambda) U^T`` (pseudo-inverse at 0)."""
    xp = xp_of(eigenvalues)
    curv = (xp.abs(eigenvalues) if saddle_free else eigenvalues) + damping
    safe = xp.where(curv == 0, 1.0, curv)
    scaled = xp.where(curv == 0, 0.0, (eigenvectors.T @ g_coords) / safe)
    return -(eigenvectors @ scaled)


@register("saddle_free_newton")
class SaddleFreeNewton(Optimizer):
    """Saddle-free Newton; see the module docstring.

    State: ``damping`` (the damping used by the last step), ``min_eigenvalue``
    (the smallest eigenvalue of the Hessian or of its projection on the
    Krylov space, at the last step) and ``step``.
    """

    paper = dict(title="On the saddle point problem for non-convex optimization",
                 authors="Pascanu, Dauphin, Ganguli, Bengio", year=2014, arxiv="1405.4604",
                 family="optimizer-second-order")
    defaults = dict(lr=1.0, method="exact", krylov_dim=20, damping=1e-4, line_search=True, n_damping=8,
                    saddle_free=True)
    scheduled = ("lr",)

    def check(self, hp):
        super().check(hp)
        if hp["method"] not in METHODS:
            raise ValueError(f"{self.name}: method must be one of {METHODS}, got {hp['method']!r}")
        check_range("damping", hp["damping"], 0.0, where=self.name)
        for name in ("krylov_dim", "n_damping"):
            v = hp[name]
            check_int(name, v, 1, where=self.name)
        for name in ("line_search", "saddle_free"):
            if not isinstance(hp[name], bool):
                raise ValueError(f"{self.name}: {name} must be True or False, got {hp[name]!r}")
        if hp["line_search"] and hp["damping"] == 0:
            raise ValueError(f"{self.name}: damping=0 with line_search=True gives a grid of zeros; "
                             "use damping > 0 (the smallest damping tried)")

    def init_slots(self, params):
        return {"damping": float(self.hparams["damping"]), "min_eigenvalue": None}

    # ---- the subspace and its eigendecomposition -------------------------------------
    def _eigensystem(self, oracle, params, g_flat, spec, hp):
        """``(lambda, W)``: eigenpairs of ``H`` in flat coordinates (columns of ``W``), ``W`` of shape ``(n, r)``."""
        xp = xp_of(g_flat)
        if hp["method"] == "exact":
            H = curvature.hessian(oracle, params)
            return xp.linalg.eigh(H)
        if not bool(xp.any(g_flat != 0)):                 # at a critical point the Krylov space is empty
            return xp.zeros(0, dtype=g_flat.dtype), xp.zeros((g_flat.shape[0], 0), dtype=g_flat.dtype)

        def hessian_vector(v):
            hv = curvature.hvp(oracle, params, tree.unflatten(v, spec))
            return tree.flatten({k: hv[k] for k, _ in spec})[0]

        V, HV = krylov_basis(hessian_vector, g_flat, min(hp["krylov_dim"], g_flat.shape[0]))
        H_hat = V @ HV.T
        lam, U = xp.linalg.eigh(0.5 * (H_hat + H_hat.T))    # Hhat = U diag(lam) U^T
        return lam, V.T @ U                                 # eigenvectors in flat coordinates

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        require_hvp(self.name, oracle)
        loss, grads = oracle(params)
        check_grads(self.name, params, grads, t)
        g_flat, spec = tree.flatten({k: grads[k] for k in params})
        lam, W = self._eigensystem(oracle, params, g_flat, spec, hp)
        min_eig = float(lam.min()) if lam.shape[0] else None

        def moved(damping):
            delta = rescaled_step(lam, W, g_flat, damping, hp["saddle_free"])
            return tree.axpy(hp["lr"], tree.unflatten(delta.astype(g_flat.dtype), spec), params)

        if hp["line_search"]:
            loss_of = oracle.loss if callable(getattr(oracle, "loss", None)) else (lambda p: oracle(p)[0])
            trials = [hp["damping"] * 10.0 ** j for j in range(hp["n_damping"])]
            values = []
            for d in trials:
                value = float(loss_of(moved(d)))
                values.append(value if math.isfinite(value) else math.inf)
            damping = trials[int(np.argmin(values))]
        else:
            damping = hp["damping"]
        return moved(damping), {"damping": float(damping), "min_eigenvalue": min_eig, "step": t}
