"""A New Class of Scaling Matrices for Scaled Trust Region Algorithms.

Aydin Ayanzadeh, Shokoufeh Yazdanian, Ehsan Shahamatnia. JOSETAP 3(1) (doi:10.21174/josetap.v3i1.44);
arXiv 2019. arXiv:1904.09209

Solve a square nonlinear system with simple bounds

    F(x) = 0,   x in Omega = {l <= x <= u}   (l_i = -inf, u_i = +inf allowed)

by an affine-scaling (interior) trust-region Gauss-Newton method on
``f(x) = 1/2 ||F(x)||^2`` with gradient ``g = J^T F``. Every iterate stays in
the *interior* of the box. At ``x_k`` with a diagonal scaling
``D_k = diag(d(x_k))``, ``d >= 0``:

    p_k    = argmin  m_k(p) = 1/2 ||F_k + J_k p||^2   s.t.  ||D_k^{-1/2} p|| <= Delta_k     (scaled TR)
    p_k   <- alpha(p_k) p_k,  alpha = max(theta, 1 - ||p_k||) lambda(p_k)  if x_k + p_k leaves int(Omega)
             (lambda(p) = largest t with x_k + t p in Omega: the step is cut back to stay strictly feasible)
    p^C_k  = generalized Cauchy point along  -D_k g_k   (same region, same cut-back)
    if  (m(0) - m(p_k)) < beta1 (m(0) - m(p^C_k)):  p_k <- t p_k + (1 - t) p^C_k  (largest t in 1, 1/2, ..., 0)
    rho_k  = (f(x_k) - f(x_k + p_k)) / (m(0) - m(p_k))
    accept if rho_k >= beta2;  Delta <- min(Delta/4, ||D^{-1/2} p||/2) on rejection,
                               Delta <- max(Delta, 2 ||D^{-1/2} p||) if rho_k >= 3/4.

The scaling ``d(x)`` is what the paper is about. Its role: ``-D g`` is the
affine-scaling direction, whose components pointing at a near bound are
damped by the distance to it, so long steps remain feasible and (with the
cut-back rule ``1 - ||p||``) the method converges fast also to roots on the
boundary. The scalings reviewed (``v`` is Coleman and Li's vector):

* ``"coleman_li"`` (Coleman and Li 1994/1996):
  ``d_i = u_i - x_i`` if ``g_i < 0`` and ``u_i < inf``; ``x_i - l_i`` if ``g_i > 0`` and ``l_i > -inf``;
  ``1`` if the bound it points at is infinite; ``min(x_i - l_i, u_i - x_i)`` if ``g_i = 0``
  (Bellavia, Macconi and Morini's tie rule).
* ``"heinkenschloss"`` (Heinkenschloss, Ulbrich and Ulbrich 1999), with ``m_i = min(x_i - l_i, u_i - x_i)``:
  ``d_i = d_i^CL`` if ``|g_i| < m_i^p`` or ``m_i < |g_i|^p``, else ``1`` (``p > 1``; ``p = 2`` here).
* ``"kanzow_klug"`` (Kanzow and Klug 2006):
  ``d_i = min(x_i - l_i + gamma max(0, -g_i),  u_i - x_i + gamma max(0, g_i))`` (an infinite term drops
  out; ``1`` if both bounds are infinite), ``gamma > 0`` (``gamma = 1`` here). It does not vanish at a bound
  the step moves away from.
* ``"convex"``, the paper's new class: ``d = sum_j w_j d^j`` with ``w_j >= 0``, ``sum_j w_j = 1`` over the
  scalings above (``weights``, default equal). A convex combination of valid scalings keeps their common
  properties (``d_i > 0`` in the interior, bounded on bounded sets, ``d_i -> 0`` only when moving towards
  a near bound) while no single one's weak case (CL's discontinuity at ``g_i = 0``, KK's large ``d`` far
  from the bounds) dominates.

What of the paper could be read (second look, 2026-11-23). Stored full-text copies exist
(hugging.y1ng.com/papers/1904.09209.md and docslib.org/doc/3740564; journal version JOSETAP 3(1),
ISSN 2377-3316, doi:10.21174/josetap.v3i1.44), but the search service returns only their opening
~2,000 characters: title, affiliations, abstract, keywords and the problem statement (``F: X -> R^n``
continuously differentiable on an open ``X`` containing the box ``Omega = {l <= x <= u}``, ``l_i`` in
``R u {-inf}``, ``u_i`` in ``R u {+inf}``, ``Omega`` with nonempty interior -- exactly the setting above).
Queries on the body's likely wording (the combination's weights, the scalings' names, the test problems)
return nothing further, and no implementation of the paper exists in the code index (exact-string search
for the title: 0 hits; STRSCNE/CoDoSol hits are only callers and a C++ port of CoDoSol). So the weights
of the combination, whether they depend on ``x``, the exact list of combined matrices, the framework
constants and the test set remain UNKNOWN; the abstract's "the convex combination of these matrices" is
implemented literally, with user weights, equal by default.

Measured (tests/test_trust_region_sqp.py, ``test_convex_scaling_versus_single_scalings``): over the seven
systems of ``reference.problems.nonlinear_systems`` the equal-weight combination never fails on more starts
than the best single scaling (all failures are stops at non-root stationary points of ``||F||^2``, common
to every scaling but once), and its iteration total lies between
1.3% below and 8.3% above the best single scaling's, depending on the sample of starts; on the large
samples (280 random starts) Kanzow-Klug alone is best. The abstract's "superiority" is therefore not
reproduced and not asserted.

Conventions and choices (the definitions of the single scalings are those of the cited original papers
as reviewed by Bellavia, Macconi and Morini, and the framework is their STRSCNE method):

* **Subproblem** solved exactly: with ``J_hat = J D^{1/2}`` and its SVD, ``p_hat(lambda) =
  -(J_hat^T J_hat + lambda I)^{-1} J_hat^T F``, ``lambda >= 0`` from Moré's Newton iteration on
  ``1/||p_hat|| - 1/Delta``; ``p = D^{1/2} p_hat``. Dense, for small systems.
* **Constants**: cut-back ``theta = 0.99995`` and Cauchy fraction ``beta1 = 0.1`` as in STRSCNE;
  acceptance ``beta2 = 0.25``, expansion at ``rho >= 3/4`` and ``Delta_0 = 1`` are the usual textbook
  choices (not checked against the paper, whose body was not available).
* **Floating point**: near a root on the boundary the cut-back factor ``1 - ||p||`` tends to 1 and
  ``x + p`` can round onto the bound; the step is then halved until ``x + p`` is strictly inside, so
  *every* iterate is strictly feasible also in floating point.
* **Counting**: an *iteration* is one trial step (one evaluation of ``F``); ``jacobians`` counts the
  Jacobian evaluations (accepted steps + 1). A run *fails* if ``||F|| > tol`` after ``max_iter`` trial
  steps or when the radius collapses below ``1e-15 (1 + ||x||)``.
* **Jacobian** by the library's autograd (``reference.autograd.jacobian`` of ``system.residual``)
  unless ``jacobian=`` is given.

Peer: ``scipy.optimize.least_squares(method="trf")`` is the same family (Coleman-Li scaling, reflective
trust region) and finds the same roots; the tests compare solutions to ``1e-8``.

This is a **driver** (a bounded nonlinear system is not a params-dict training problem):
:func:`scaled_trust_region` takes a system from ``reference.problems.nonlinear_systems`` (or any object
with ``residual``, ``lower``, ``upper``, ``x0``) and returns the solution and a history.
"""
from __future__ import annotations

import math

import numpy as np

from .. import autograd as ag
from .. import catalog
from .base import check_int

__all__ = ["scaled_trust_region", "scaling_vector", "SCALINGS", "coleman_li", "heinkenschloss", "kanzow_klug"]

catalog.register(title="A New Class of Scaling Matrices for Scaled Trust Region Algorithms",
                 name="scaled_trust_region_convex_scaling", family="optimizer-second-order",
                 kind="implementation", module=__name__,
                 authors="Ayanzadeh, Yazdanian, Shahamatnia", year=2019, arxiv="1904.09209")


# ---- the scaling matrices (diagonals d(x), D = diag(d)) ----------------------------------------

def _distance_min(x, lower, upper):
    """``min(x - l, u - x)`` per component (``inf`` where both bounds are infinite)."""
    return np.minimum(x - lower, upper - x)


def coleman_li(x, g, lower, upper):
    """Coleman-Li ``|v(x)|`` (with the ``g_i = 0`` tie rule ``min(x_i - l_i, u_i - x_i)``)."""
    d = np.ones_like(x)
    to_upper = (g < 0) & np.isfinite(upper)
    to_lower = (g > 0) & np.isfinite(lower)
    d[to_upper] = (upper - x)[to_upper]
    d[to_lower] = (x - lower)[to_lower]
    tie = (g == 0) & (np.isfinite(lower) | np.isfinite(upper))
    d[tie] = _distance_min(x, lower, upper)[tie]
    return d


def heinkenschloss(x, g, lower, upper, p=2.0):
    """Heinkenschloss-Ulbrich-Ulbrich: Coleman-Li where ``|g_i| < m_i^p`` or ``m_i < |g_i|^p``, else 1."""
    m = _distance_min(x, lower, upper)
    ag_ = np.abs(g)
    use_cl = (ag_ < m ** p) | (m < ag_ ** p)
    return np.where(use_cl, coleman_li(x, g, lower, upper), 1.0)


def kanzow_klug(x, g, lower, upper, gamma=1.0):
    """Kanzow-Klug: ``min(x - l + gamma max(0, -g), u - x + gamma max(0, g))`` (1 if unbounded)."""
    a = x - lower + gamma * np.maximum(0.0, -g)          # +inf where l = -inf
    b = upper - x + gamma * np.maximum(0.0, g)           # +inf where u = +inf
    d = np.minimum(a, b)
    return np.where(np.isfinite(d), d, 1.0)


SCALINGS = {"coleman_li": coleman_li, "heinkenschloss": heinkenschloss, "kanzow_klug": kanzow_klug}


def scaling_vector(name, x, g, lower, upper, weights=None, p=2.0, gamma=1.0):
    """Diagonal ``d(x)`` of the scaling ``name`` (one of ``SCALINGS`` or ``"convex"``)."""
    single = {"coleman_li": lambda: coleman_li(x, g, lower, upper),
              "heinkenschloss": lambda: heinkenschloss(x, g, lower, upper, p),
              "kanzow_klug": lambda: kanzow_klug(x, g, lower, upper, gamma)}
    if name in single:
        return single[name]()
    if name == "convex":                                  # the paper's new class: sum_j w_j d^j
        w = _weights(weights)
        return sum(w[k] * single[k]() for k in w if w[k] > 0)
    raise ValueError(f"scaled_trust_region: scaling must be one of {sorted(single) + ['convex']}, got {name!r}")


def _weights(weights):
    names = list(SCALINGS)
    if weights is None:
        return {k: 1.0 / len(names) for k in names}
    w = {k: float(weights.get(k, 0.0)) for k in names}
    bad = set(weights) - set(names)
    if bad or any(v < 0 or not math.isfinite(v) for v in w.values()) or abs(sum(w.values()) - 1.0) > 1e-12:
        raise ValueError(f"scaled_trust_region: weights must map a subset of {names} to numbers >= 0 "
                         f"summing to 1, got {weights!r}")
    return w


# ---- pieces of one iteration -------------------------------------------------------------------

def _max_step(x, p, lower, upper):
    """``lambda(p)``: the largest ``t >= 0`` with ``l <= x + t p <= u`` (``inf`` if unbounded)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, (upper - x) / p, np.where(p < 0, (lower - x) / p, np.inf))
    return float(np.min(t)) if t.size else math.inf


def _cut_back(x, p, lower, upper, theta):
    """Keep ``x + p`` strictly feasible: ``p <- max(theta, 1 - ||p||) lambda(p) p`` if ``lambda(p) <= 1``."""
    lam = _max_step(x, p, lower, upper)
    if lam <= 1.0:
        return max(theta, 1.0 - float(np.linalg.norm(p))) * lam * p
    return p


def _trust_region_step(F, J, d, radius):
    """Exact minimiser of ``1/2 ||F + J p||^2`` over ``||D^{-1/2} p|| <= radius`` (via the SVD of J D^{1/2})."""
    sd = np.sqrt(d)
    U, s, Vt = np.linalg.svd(J * sd[None, :], full_matrices=False)
    a = U.T @ F
    keep = s > s[0] * 1e-15 if s.size and s[0] > 0 else np.zeros_like(s, dtype=bool)

    def p_hat(lam):
        coef = np.zeros_like(s)
        coef[keep] = -s[keep] * a[keep] / (s[keep] ** 2 + lam)
        return Vt.T @ coef

    ph = p_hat(0.0)                                       # Gauss-Newton (minimum-norm) step
    if np.linalg.norm(ph) > radius:                       # Moré: Newton on 1/||p(lam)|| - 1/radius
        lam = 0.0
        for _ in range(60):
            q = float(np.sum((s[keep] * a[keep]) ** 2 / (s[keep] ** 2 + lam) ** 2))
            dq = float(-2.0 * np.sum((s[keep] * a[keep]) ** 2 / (s[keep] ** 2 + lam) ** 3))
            norm = math.sqrt(q)
            if abs(norm - radius) <= 1e-3 * radius:
                break
            phi, dphi = 1.0 / norm - 1.0 / radius, -0.5 * q ** -1.5 * dq
            lam = max(lam - phi / dphi, 0.0)
        ph = p_hat(lam)
        ph *= min(1.0, radius / max(np.linalg.norm(ph), 1e-300))
    return sd * ph


def _model_decrease(F, J, p):
    """``m(0) - m(p) = 1/2 ||F||^2 - 1/2 ||F + J p||^2``."""
    r = F + J @ p
    return 0.5 * float(F @ F) - 0.5 * float(r @ r)


def _cauchy_step(x, F, J, g, d, radius, lower, upper, theta):
    """Generalised Cauchy point: minimise ``m`` along ``-D g`` in the region, then cut back."""
    direction = -d * g
    scaled = float(np.linalg.norm(np.sqrt(d) * g))        # ||D^{-1/2} (-D g)|| = ||D^{1/2} g||
    if scaled == 0.0:
        return np.zeros_like(x)
    Jd = J @ direction
    curvature = float(Jd @ Jd)
    tau = scaled ** 2 / curvature if curvature > 0 else math.inf
    tau = min(tau, radius / scaled)
    return _cut_back(x, tau * direction, lower, upper, theta)


# ---- the driver -----------------------------------------------------------------------------------

def scaled_trust_region(system, scaling="convex", weights=None, x0=None, max_iter=200, tol=1e-10,
                        radius=1.0, theta=0.99995, beta1=0.1, beta2=0.25, p=2.0, gamma=1.0, jacobian=None):
    """Solve ``F(x) = 0, lower <= x <= upper`` with the affine-scaling trust-region Gauss-Newton method.

    ``system``: has ``residual(x)`` (autograd ops), ``lower``, ``upper`` and ``x0`` (strictly feasible).
    ``scaling``: ``"convex"`` (the paper's new scaling, ``weights`` over the singles, default equal) or one of
    ``"coleman_li"``, ``"heinkenschloss"`` (exponent ``p``), ``"kanzow_klug"`` (``gamma``).
    Returns ``{"x", "converged", "iterations", "jacobians", "reason", "history"}``; the history has per trial
    step ``residual_norm`` (at the current iterate), ``radius``, ``accepted`` and ``interior_gap``
    (``min(x - l, u - x)``, > 0 for every iterate).
    """
    where = "scaled_trust_region"
    for name, v, lo in (("radius", radius, 0.0), ("tol", tol, 0.0), ("p", p, 1.0), ("gamma", gamma, 0.0)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > lo):
            raise ValueError(f"{where}: {name} must be a finite number > {lo}, got {v!r}")
    for name, v in (("theta", theta), ("beta1", beta1), ("beta2", beta2)):
        if not (isinstance(v, (int, float)) and 0.0 < v < 1.0):
            raise ValueError(f"{where}: {name} must lie in (0, 1), got {v!r}")
    check_int("max_iter", max_iter, 1, where=where)
    if scaling != "convex" and scaling not in SCALINGS:
        raise ValueError(f"{where}: scaling must be one of {sorted(SCALINGS) + ['convex']}, got {scaling!r}")
    if scaling == "convex":
        _weights(weights)
    lower = np.asarray(system.lower, dtype=np.float64)
    upper = np.asarray(system.upper, dtype=np.float64)
    x = np.array(system.x0 if x0 is None else x0, dtype=np.float64)
    if not (np.all(lower < x) and np.all(x < upper)):
        raise ValueError(f"{where}: the start must lie strictly inside the bounds")

    def residual(z):
        out = system.residual(z)
        return np.asarray(out.value if isinstance(out, ag.Tensor) else out, dtype=np.float64)

    jac = jacobian if jacobian is not None else ag.jacobian(system.residual)
    F = residual(x)
    J = np.asarray(jac(x), dtype=np.float64)
    n_jac = 1
    history = {"residual_norm": [], "radius": [], "accepted": [], "interior_gap": []}
    converged, reason, it = bool(np.linalg.norm(F) <= tol), "tol", 0
    while not converged:
        if it >= max_iter:
            reason = "max_iter"
            break
        if radius < 1e-15 * (1.0 + float(np.linalg.norm(x))):
            reason = "radius"
            break
        if not np.all(np.isfinite(F)) or not np.all(np.isfinite(J)):
            raise FloatingPointError(f"{where}: non-finite residual or Jacobian at trial step {it}")
        it += 1
        g = J.T @ F                                                        # gradient of 1/2 ||F||^2
        d = scaling_vector(scaling, x, g, lower, upper, weights, p, gamma)  # D_k = diag(d)
        step = _cut_back(x, _trust_region_step(F, J, d, radius), lower, upper, theta)
        cauchy = _cauchy_step(x, F, J, g, d, radius, lower, upper, theta)
        pred_c = _model_decrease(F, J, cauchy)
        pred, t = _model_decrease(F, J, step), 1.0
        while pred < beta1 * pred_c and t > 1e-8:                          # enforce a fraction of Cauchy decrease
            t *= 0.5
            trial = t * step + (1.0 - t) * cauchy
            pred = _model_decrease(F, J, trial)
        if t < 1.0:
            step = trial if pred >= beta1 * pred_c else cauchy
            pred = _model_decrease(F, J, step)
        x_new = x + step
        while not (np.all(lower < x_new) and np.all(x_new < upper)):      # rounding put x_new on a bound
            step = 0.5 * step
            x_new = x + step
        pred = _model_decrease(F, J, step)
        F_new = residual(x_new)
        actual = 0.5 * float(F @ F) - 0.5 * float(F_new @ F_new) if np.all(np.isfinite(F_new)) else -math.inf
        rho = actual / pred if pred > 0 else -math.inf
        scaled_len = float(np.linalg.norm(step / np.sqrt(d)))
        history["residual_norm"].append(float(np.linalg.norm(F)))
        history["radius"].append(radius)
        history["accepted"].append(bool(rho >= beta2))
        history["interior_gap"].append(float(np.min(np.minimum(x - lower, upper - x))))
        if rho >= beta2:                                                   # accept
            x, F = x_new, F_new
            J = np.asarray(jac(x), dtype=np.float64)
            n_jac += 1
            if rho >= 0.75:
                radius = max(radius, 2.0 * scaled_len)
            converged = bool(np.linalg.norm(F) <= tol)
        else:                                                              # reject, shrink
            radius = min(0.25 * radius, 0.5 * scaled_len)
    history["residual_norm"].append(float(np.linalg.norm(F)))
    history["interior_gap"].append(float(np.min(np.minimum(x - lower, upper - x))))
    return {"x": x, "converged": converged, "iterations": it, "jacobians": n_jac,
            "reason": "tol" if converged else reason,
            "history": {k: np.asarray(v) for k, v in history.items()}}
