"""Coordinate Descent Methods for Fractional Minimization.

Ganzhao Yuan. ICML 2023. arXiv:2201.12691

Minimise a ratio whose numerator is smooth convex plus separable convex and
whose denominator is convex (or concave) and positive:

    min_x  F(x) = (f(x) + h(x)) / g(x),       h(x) = sum_i h_i(x_i)  (here lam ||x||_1).

The problem is nonconvex. The paper's coordinate-descent (CD) methods
change one coordinate ``i`` per iteration, ``x <- x + t e_i``, with ``t`` the
**global** minimiser of a one-dimensional subproblem built from the
coordinate-wise majorizer of ``f`` (``c_i``: coordinate Lipschitz constant
of ``grad f``; ``theta > 0``: a small proximal term)

    f(x + t e_i) <= f(x) + grad_i f(x) t + c_i/2 t^2.

Two variants, as in the paper's two CD methods (the names here are those of
the official MATLAB code, ``*_FractionalCD.m`` and ``*_ParametricCD.m``):

    fractional  t = argmin_t [f(x) + grad_i f(x) t + (c_i + theta)/2 t^2 + h(x + t e_i)] / g(x + t e_i)
    parametric  alpha = F(x)
                t = argmin_t  grad_i f(x) t + (c_i + theta)/2 t^2 + h(x + t e_i) - alpha g(x + t e_i)

Both decrease ``F`` monotonically (the majorizer lies above the numerator;
``t = 0`` is a candidate, so the new ratio is at most ``F(x)``, resp. the
new ``f + h - alpha g`` is at most 0), and their fixed points are
**coordinate-wise stationary**: no single-coordinate move of the majorized
subproblem improves, a stronger condition than criticality.

**Breakpoint search.** With ``h = lam |.|`` and a denominator whose power
``g^(1/p)`` is a quadratic along the coordinate, ``D(t) = B_ii t^2 + 2 (B x)_i t
+ x^T B x`` (``g = sqrt(x^T B x)``, ``p = 1/2``, or ``g = x^T B x``, ``p = 1``),
the subproblem is piecewise smooth with one breakpoint ``t = -x_i`` (where
``x_i + t`` changes sign). On each piece the numerator is a quadratic
``N(t)`` and the stationarity condition is a polynomial equation:

    fractional, p = 1/2:   2 N'(t) D(t) - N(t) D'(t) = 0          (cubic)
    fractional, p = 1:       N'(t) D(t) - N(t) D'(t) = 0          (quadratic: the t^3 terms cancel)
    parametric, p = 1/2:   4 (a t + b')^2 D(t) - alpha^2 D'(t)^2 = 0   (quartic, the squared
                           condition a t + b' = alpha D'/(2 sqrt D); spurious roots are harmless)

**Top-k denominator** (the paper's sparse-recovery experiment, ``g = lam ||x||_[k]``,
the sum of the ``k`` largest ``|x_j|``): along coordinate ``i``,
``||x + t e_i||_[k] = S + max(|x_i + t|, a_k)`` (``S``: the ``k - 1`` largest
``|x_j|``, ``j != i``; ``a_k``: the ``k``-th largest), so in ``u = x_i + t`` the
breakpoints are ``u = 0, +-a_k``; on ``|u| > a_k`` the denominator is linear
(fractional: a quadratic stationarity equation; parametric: a linear one), on
``|u| < a_k`` constant (a soft-threshold step). The official
``nonconvex_prox_diff_l1topk`` uses the same piece-wise stationary points plus
``u = 0`` but not the breakpoints ``u = +-a_k``; they are added here so the
subproblem is solved globally.

The global minimiser is the best of: the real roots inside each piece, the
breakpoint and ``t = 0``, all evaluated on the exact subproblem objective.
(For ``p = 1/2`` and the fractional variant the objective tends to ``+inf``
at both ends, so the minimum is attained among these candidates. For
``p = 1`` it tends to ``(c_i + theta) / (2 B_ii)``: if the infimum lies at
infinity no finite point attains it and the best finite candidate is taken.)

This is a **driver**, not a ``reference.optim`` optimizer: the subproblem
needs the problem's structure (``f``, ``c_i``, ``lam``, ``B``, the power of
``g``), which the plain oracle protocol does not expose.
:func:`coordinate_descent_fractional` takes a problem from
:mod:`reference.problems.fractional_problems` (or any object with ``smooth``,
``coordinate_lipschitz``, ``lam``, ``B``, ``denominator_power``, ``objective``).

Choices and what is mine, not the paper's (the full text was not reachable;
the variants and subproblems follow the abstract, the brief notes and the
official MATLAB code, read but not copied):

* **Denominators** covered: ``(x^T B x)^(1/2)`` and ``x^T B x`` with ``B``
  SPD, and ``lam ||x||_[k]`` (problem attributes ``topk``, ``denominator_scale``),
  the one of the paper's sparse-recovery experiments (the paper also treats
  concave denominators and the ``l4`` norm of its ICA model; not covered).
* **Parametric variant** with ``p = 1/2`` or the top-k norm: with ``g = x^T B x`` its
  subproblem is unbounded below whenever ``alpha B_ii > (c_i + theta)/2``
  (``ValueError``).
* ``theta`` default ``1e-5`` (the official code's value: ``gg = sum(G.*G,1)' + 1e-5``; it
  makes the decrease sufficient: ``F(x+) <= F(x) - theta t^2 / (2 g(x+))``).
* **Coordinate rule**: ``"cyclic"`` (default) or ``"random"`` (uniform,
  ``numpy.random.default_rng(seed)``). One *sweep* is ``d`` coordinate steps.
* **Root finding**: ``numpy.roots`` on the stationarity polynomial, roots
  with ``|imag| <= 1e-8 (1 + |real|)`` kept as real, each polished by three
  Newton steps on the polynomial.
* **Stopping**: after ``sweeps`` sweeps, or earlier when a whole sweep moves
  no coordinate by more than ``tol * max(1, ||x||_inf)`` (``tol = 0``: never).
* **Cost**: the reference recomputes ``f`` and ``grad f`` at every
  coordinate step (``O(n d)``); a fast implementation keeps the residual
  ``G x - y`` and ``B x`` up to date in ``O(n + d)``.

Measured (tests/test_sinkhorn_fractional.py):

* ``fractional_sparse_recovery`` with ``n = 40 > d = 20`` (3 seeds, both
  denominators, both variants): monotone decrease to a coordinate-wise
  stationary point (subproblem gap ``< 1e-12``); the final objective equals
  that of the proximal-gradient (PGSA) and Dinkelbach baselines (all reach the
  same point), so "CD <= baselines" holds there only with equality.
* ``generalized_rayleigh`` (``d = 10``, 3 seeds): ``lambda_min(A, B)`` to
  ``1e-8`` relative.

**The paper's claim, in the paper's setting.** The official code
(github.com/yuangzh/FracOpt-CD, ``demo_accuracy_SpaseRecovery_Topk.m``) runs
the *parametric* CD ("PCD"), cyclic, ``c_i + 1e-5``, on
``(1/2 ||Gx - y||^2 + lam ||x||_1) / (lam ||x||_[k])`` with ``G`` a random block
of a sparse nonnegative document-term matrix (E2006, news20, sector, TDT2,
``+ 1e-5`` noise) scaled to ``||G||_F = 1``, ``y = G x_true + 0.1 ||G x_true||
N(0, I)``, ``x_true`` with 100 ``N(0, 1)`` nonzeros, ``k = 100``,
``lam = 0.1 / m``, ``x0 = 0.1 N(0, I)``, and reports the smallest objective
seen against DPA (Dinkelbach + 30 FISTA steps), PGSA and QTA (the latter is
the same iteration as PGSA: its linear term equals ``-F grad g``). This driver
matches the code's algorithm (same majorizer constant, theta, order, variant;
an exact global 1-D solve). In miniature
(``fractional_sparse_recovery_topk``: ``32 x 64``, 6 nonzeros, a
Bernoulli-lognormal stand-in for the document-term data), PCD's smallest
objective is below the best baseline on every seed: density 0.05, seeds 0-5:
``F - 1`` is 0.03-0.10 of the best baseline's (e.g. 1.0002 vs 1.0085);
density 0.2, seeds 0-7: 1.003-1.268 vs 1.167-1.343 (each seed lower).
**Why:** ``F`` is not coercive. ``F >= 1`` with ``F(s e_j) -> 1`` as ``s -> inf`` along a column of
``G`` that is (almost) zero, and sparse data have such columns (``P(empty) =
(1 - density)^n``). The global 1-D step jumps to ``|x_j| ~ 1e2-1e3`` on such a
column at once (the measured CD points put their largest entry, 300-3000, on a
noise-only column with ``||G_j|| ~ 2e-6``), while a proximal-gradient step of
size ``1/L`` moves it by little. So the lower objective is real but says
nothing about recovery (``||x_true|| ~ 1-4``). With a Gaussian ``G`` (no weak
columns) the advantage is gone: PGSA is better on 4 of 6 seeds. The same
pattern holds for ``g = ||x||_2`` at the official scaling (CD ``F -> lam``
along an empty column on sparse data, 6/6 wins; Gaussian ``30 x 60``: CD worse
on 2 of 3 seeds, tied on the third).

**The earlier negative finding, explained** (not an implementation bug):
``fractional_sparse_recovery`` with ``n = 30 < d = 60``, ``lam = 0.1``,
``g = ||x||_2`` from ``N(0, I)`` (also from ``0.1 N(0, I)`` and
``0.01 N(0, I)``): CD ends at ``F ~ 0.31-0.40`` with ~30 nonzeros while PGSA
finds the 5-sparse point (``F ~ 0.22``). The CD iterate is not converging
slowly to a point: it drifts out along ``null(G)`` (``||x|| ~ 29 -> 33`` over
sweeps 100-600, ``||x_true|| ~ 3-4``), where the fit term vanishes and
``F -> lam ||v||_1 / ||v||_2`` for a null-space direction ``v``; such
directions are dense (the sparsest null-space vectors of a generic ``G`` have
``n + 1 = 31`` nonzeros; CD's points have 26-44) and give
``lam ||x||_1 / ||x||_2 ~ 0.31-0.40``, above the sparse point's 0.22. The
first CD steps are large (``alpha = F(x0) ~ 10-13`` rewards a large
``||x||``; seed 0: ``||x||`` goes 7.0 -> 27.5 in the first sweep, largest
single move 11.7), which sends the iterate into that region; PGSA's ``1/L`` steps
stay near the data-fitting sparse point.
Coordinate-wise stationarity is a property of limit points; from a given start
it does not make CD's end point better than another method's.
"""
from __future__ import annotations

import math

import numpy as np

from .. import catalog
from .base import check_int

__all__ = ["coordinate_descent_fractional", "fractional_subproblem", "parametric_subproblem",
           "fractional_topk_subproblem", "parametric_topk_subproblem", "coordinate_subproblem", "stationarity_gap"]

catalog.register(title="Coordinate Descent Methods for Fractional Minimization",
                 name="coordinate_descent_fractional", family="optimizer-first-order", kind="implementation",
                 module=__name__, authors="Yuan", year=2023, arxiv="2201.12691")

VARIANTS = ("fractional", "parametric")
RULES = ("cyclic", "random")


# --------------------------------------------------------------------------
# the one-dimensional subproblems (global, by breakpoint search)
# --------------------------------------------------------------------------

def _horner(coeffs, t):
    out = 0.0
    for c in coeffs:
        out = out * t + c
    return out


def _real_roots(coeffs):
    """Real roots of a polynomial (a list of floats, highest degree first), polished by Newton's method."""
    k = 0
    while k < len(coeffs) and coeffs[k] == 0.0:
        k += 1
    coeffs = coeffs[k:]
    if len(coeffs) <= 1:
        return []
    if len(coeffs) == 2:
        roots = [-coeffs[1] / coeffs[0]]
    else:
        z = np.roots(coeffs)
        roots = [float(r.real) for r in z if abs(r.imag) <= 1e-8 * (1.0 + abs(r.real))]
    deg = len(coeffs) - 1
    deriv = [c * (deg - j) for j, c in enumerate(coeffs[:-1])]
    polished = []
    for r in roots:
        for _ in range(3):
            slope = _horner(deriv, r)
            if slope == 0.0:
                break
            r = r - _horner(coeffs, r) / slope
        polished.append(r)
    return polished


def _pieces(xi):
    """The two pieces ``t < -xi`` (sign -1) and ``t > -xi`` (sign +1) of ``|xi + t|``."""
    return ((-1.0, -math.inf, -xi), (1.0, -xi, math.inf))


def fractional_subproblem(a, b, c, lam, xi, D, power):
    """``argmin_t (a/2 t^2 + b t + c + lam |xi + t|) / D(t)^power`` globally (``D = (d2, d1, d0)``,
    ``power`` 0.5 or 1). Returns ``(t, value)``."""
    d2, d1, d0 = (float(v) for v in D)

    def value(t):
        q = (d2 * t + d1) * t + d0
        if not q > 0:
            return math.inf
        return (0.5 * a * t * t + b * t + c + lam * abs(xi + t)) / q ** power

    candidates = [0.0, -xi]
    for s, lo, hi in _pieces(xi):
        n2, n1, n0 = 0.5 * a, b + s * lam, c + s * lam * xi       # the numerator N(t) on this piece
        if power == 0.5:                                          # 2 N' D - N D'
            stat = [2 * n2 * d2, 3 * n2 * d1, 4 * n2 * d0 + n1 * d1 - 2 * n0 * d2, 2 * n1 * d0 - n0 * d1]
        else:                                                     # N' D - N D'
            stat = [n2 * d1 - n1 * d2, 2 * (n2 * d0 - n0 * d2), n1 * d0 - n0 * d1]
        candidates += [t for t in _real_roots(stat) if lo < t < hi]
    values = [value(t) for t in candidates]
    k = int(np.argmin(values))
    return float(candidates[k]), float(values[k])


def parametric_subproblem(a, b, lam, xi, alpha, D, power=0.5):
    """``argmin_t a/2 t^2 + b t + lam |xi + t| - alpha sqrt(D(t))`` globally (``alpha >= 0``).
    Returns ``(t, value)``."""
    if power != 0.5:
        raise ValueError("parametric_subproblem: only the denominator sqrt(x^T B x) (power 0.5) is supported; "
                         "with g = x^T B x the subproblem can be unbounded below")
    d2, d1, d0 = (float(v) for v in D)

    def value(t):
        q = max((d2 * t + d1) * t + d0, 0.0)
        return 0.5 * a * t * t + b * t + lam * abs(xi + t) - alpha * math.sqrt(q)

    candidates = [0.0, -xi]
    al2 = alpha * alpha
    for s, lo, hi in _pieces(xi):
        e = b + s * lam                                           # N'(t) = a t + e on this piece
        stat = [4 * a * a * d2,                                   # 4 (a t + e)^2 D - alpha^2 D'^2
                4 * (a * a * d1 + 2 * a * e * d2),
                4 * (a * a * d0 + 2 * a * e * d1 + e * e * d2) - 4 * al2 * d2 * d2,
                4 * (2 * a * e * d0 + e * e * d1) - 4 * al2 * d2 * d1,
                4 * e * e * d0 - al2 * d1 * d1]
        candidates += [t for t in _real_roots(stat) if lo < t < hi]
    values = [value(t) for t in candidates]
    k = int(np.argmin(values))
    return float(candidates[k]), float(values[k])


def _topk_others(x, i, k):
    """``(S, a_k)``: the sum of the ``k - 1`` largest ``|x_j|`` over ``j != i`` and the ``k``-th largest (0 if
    there are fewer), so that ``||x + t e_i||_[k] = S + max(|x_i + t|, a_k)``."""
    a = np.sort(np.abs(np.delete(x, i)))[::-1]
    if k - 1 >= a.size:
        return float(a.sum()), 0.0
    return float(a[:k - 1].sum()), float(a[k - 1])


def fractional_topk_subproblem(a, b, c, lam, xi, S, ak, scale=1.0):
    """``argmin_t (a/2 t^2 + b t + c + lam |xi + t|) / (scale (S + max(|xi + t|, ak)))`` globally
    (``c`` holds ``f(x)`` and ``lam`` times the other coordinates' ``|x_j|``). Returns ``(t, value)``."""
    def value(u):                                                  # u = xi + t
        den = scale * (S + max(abs(u), ak))
        if not den > 0:
            return math.inf
        return (0.5 * a * (u - xi) ** 2 + b * (u - xi) + c + lam * abs(u)) / den

    candidates = [xi, 0.0, ak, -ak]                                # t = 0 and the breakpoints in u
    for s, lo, hi in ((1.0, ak, math.inf), (-1.0, -math.inf, -ak)):
        # |u| > ak: denominator linear, S + s u; numerator n2 u^2 + n1 u + n0; N' D - N D' = 0 is quadratic
        n2, n1, n0 = 0.5 * a, b - a * xi + s * lam, 0.5 * a * xi * xi - b * xi + c
        candidates += [u for u in _real_roots([s * n2, 2.0 * n2 * S, n1 * S - s * n0]) if lo < u < hi]
    for s, lo, hi in ((1.0, 0.0, ak), (-1.0, -ak, 0.0)):
        u = xi - (b + s * lam) / a                                 # |u| < ak: denominator constant
        if lo < u < hi:
            candidates.append(u)
    values = [value(u) for u in candidates]
    k = int(np.argmin(values))
    return float(candidates[k] - xi), float(values[k])


def parametric_topk_subproblem(a, b, lam, xi, alpha, S, ak, scale=1.0):
    """``argmin_t a/2 t^2 + b t + lam |xi + t| - alpha scale (S + max(|xi + t|, ak))`` globally (the official
    code's ``nonconvex_prox_diff_l1topk``, with the breakpoints ``|xi + t| = ak`` added). Returns ``(t, value)``."""
    def value(u):
        return 0.5 * a * (u - xi) ** 2 + b * (u - xi) + lam * abs(u) - alpha * scale * (S + max(abs(u), ak))

    candidates = [xi, 0.0, ak, -ak]
    for s, lo, hi, w in ((1.0, ak, math.inf, 1.0), (-1.0, -math.inf, -ak, 1.0), (1.0, 0.0, ak, 0.0),
                         (-1.0, -ak, 0.0, 0.0)):
        u = xi - (b + s * lam - w * s * alpha * scale) / a         # w = 1: x_i in the top-k set, 0: not
        if lo < u < hi:
            candidates.append(u)
    values = [value(u) for u in candidates]
    k = int(np.argmin(values))
    return float(candidates[k] - xi), float(values[k])


def coordinate_subproblem(problem, x, i, theta, variant="fractional", cache=None):
    """The step ``t`` of ``variant`` at ``x`` along coordinate ``i`` and the subproblem's value at ``t``
    and at 0: ``(t, value_t, value_0)``. ``cache``: ``(f(x), grad f(x), B x)`` if already known."""
    topk = getattr(problem, "topk", None)
    if cache is None:
        cache = (*problem.smooth(x), None if topk is not None else problem.B @ x)
    f0, grad, Bx = cache
    a = float(problem.coordinate_lipschitz[i]) + theta
    b = float(grad[i])
    lam = float(problem.lam)
    xi = float(x[i])
    if topk is not None:                                           # g = scale ||x||_[k]
        scale = float(problem.denominator_scale)
        S, ak = _topk_others(x, i, int(topk))
        if variant == "fractional":
            c = f0 + lam * (float(np.abs(x).sum()) - abs(xi))
            t, v = fractional_topk_subproblem(a, b, c, lam, xi, S, ak, scale)
            v0 = (c + lam * abs(xi)) / (scale * (S + max(abs(xi), ak)))
        else:
            alpha = problem.objective(x)
            t, v = parametric_topk_subproblem(a, b, lam, xi, alpha, S, ak, scale)
            v0 = lam * abs(xi) - alpha * scale * (S + max(abs(xi), ak))
        return t, v, v0
    D = (float(problem.B[i, i]), 2.0 * float(Bx[i]), float(x @ Bx))
    power = problem.denominator_power
    if variant == "fractional":
        c = f0 + lam * (float(np.abs(x).sum()) - abs(xi))
        t, v = fractional_subproblem(a, b, c, lam, xi, D, power)
        v0 = (c + lam * abs(xi)) / D[2] ** power
    else:
        alpha = problem.objective(x)
        t, v = parametric_subproblem(a, b, lam, xi, alpha, D, power)
        v0 = lam * abs(xi) - alpha * math.sqrt(D[2])
    return t, v, v0


def stationarity_gap(problem, x, theta=0.0, variant="fractional"):
    """``max_i [value at t = 0 - min_t value]`` of the coordinate subproblems at ``x``, and the largest
    ``|t|``: both 0 exactly at a coordinate-wise stationary point. Returns ``(gap, largest_step)``."""
    x = np.asarray(x, dtype=np.float64)
    cache = (*problem.smooth(x), None if getattr(problem, "topk", None) is not None else problem.B @ x)
    gap, step = 0.0, 0.0
    for i in range(x.size):
        t, v, v0 = coordinate_subproblem(problem, x, i, theta, variant, cache)
        gap, step = max(gap, v0 - v), max(step, abs(t))
    return gap, step


# --------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------

def coordinate_descent_fractional(problem, x0=None, sweeps=100, variant="fractional", rule="cyclic",
                                  theta=1e-5, tol=0.0, seed=0):
    """Run fractional CD on ``problem`` from ``x0`` (default ``problem.init(seed)["x"]``).

    Returns ``{"x": x, "history": {"sweep", "objective", "largest_step"}}``: the objective after
    every sweep (entry 0 is the start) and the largest coordinate move in that sweep.
    """
    where = "coordinate_descent_fractional"
    caps = ("smooth", "coordinate_lipschitz", "lam", "objective")
    caps += ("topk", "denominator_scale") if getattr(problem, "topk", None) is not None else ("B", "denominator_power")
    for cap in caps:
        if not hasattr(problem, cap):
            raise TypeError(f"{where}: the problem must offer {cap!r} (see reference.problems.fractional_problems); "
                            f"{type(problem).__name__} has none")
    if variant not in VARIANTS:
        raise ValueError(f"{where}: variant must be one of {VARIANTS}, got {variant!r}")
    if rule not in RULES:
        raise ValueError(f"{where}: rule must be one of {RULES}, got {rule!r}")
    check_int("sweeps", sweeps, 0, where=where)
    for name, value in (("theta", theta), ("tol", tol)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{where}: {name} must be a finite number >= 0, got {value!r}")
    if variant == "parametric" and getattr(problem, "topk", None) is None and problem.denominator_power != 0.5:
        raise ValueError(f"{where}: variant='parametric' needs the denominator sqrt(x^T B x); this problem has "
                         f"g = (x^T B x)^{problem.denominator_power:g}, use variant='fractional'")
    x = np.array(problem.init(seed)["x"] if x0 is None else x0, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise FloatingPointError(f"{where}: x0 is not finite")
    d = x.size
    rng = np.random.default_rng(seed)
    history = {"sweep": [0], "objective": [problem.objective(x)], "largest_step": [0.0]}
    for sweep in range(1, sweeps + 1):
        largest = 0.0
        order = range(d) if rule == "cyclic" else rng.integers(0, d, size=d)
        for i in order:
            t, _, _ = coordinate_subproblem(problem, x, int(i), theta, variant)
            x[i] += t                                                    # x <- x + t e_i
            largest = max(largest, abs(t))
        history["sweep"].append(sweep)
        history["objective"].append(problem.objective(x))
        history["largest_step"].append(largest)
        if not math.isfinite(history["objective"][-1]):
            raise FloatingPointError(f"{where}: non-finite objective after sweep {sweep}")
        if largest <= tol * max(1.0, float(np.abs(x).max())):
            break
    return {"x": x, "history": {k: np.asarray(v, dtype=np.float64) for k, v in history.items()}}
