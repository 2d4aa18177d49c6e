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
  SPD (the paper also treats concave denominators and other convex ones such
  as the top-k norm, with their own breakpoint searches; not covered).
* **Parametric variant** only with ``p = 1/2``: with ``g = x^T B x`` its
  subproblem is unbounded below whenever ``alpha B_ii > (c_i + theta)/2``
  (``ValueError``).
* ``theta`` default ``1e-5`` (the official code's value for its ICA run; it
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

Measured (tests/test_sinkhorn_fractional.py), and one negative finding:

* ``fractional_sparse_recovery`` with ``n = 40 > d = 20`` (3 seeds, both
  denominators, both variants): monotone decrease to a coordinate-wise
  stationary point (subproblem gap ``< 1e-12``); the final objective equals
  that of the proximal-gradient (PGSA) and Dinkelbach baselines (all reach the
  same point), so "CD <= baselines" holds there only with equality.
* ``generalized_rayleigh`` (``d = 10``, 3 seeds): ``lambda_min(A, B)`` to
  ``1e-8`` relative.
* Not in CD's favour: underdetermined recovery (``n = 30``, ``d = 60``,
  ``lam = 0.1``, 4 seeds, start ``N(0, I)``): CD (both variants) converges
  slowly (hundreds of sweeps) to coordinate-wise stationary points with
  ``F ~ 0.31-0.38`` and ~30 nonzeros, while PGSA from the same start finds
  the 5-sparse solution with ``F ~ 0.22`` (which CD then keeps: it is
  coordinate-wise stationary too). Coordinate-wise stationarity is a stronger
  condition than criticality, but it does not make CD's limit better than
  another method's from the same start.
"""
from __future__ import annotations

import math

import numpy as np

from .. import catalog

__all__ = ["coordinate_descent_fractional", "fractional_subproblem", "parametric_subproblem",
           "coordinate_subproblem", "stationarity_gap"]

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


def coordinate_subproblem(problem, x, i, theta, variant="fractional", cache=None):
    """The step ``t`` of ``variant`` at ``x`` along coordinate ``i`` and the subproblem's value at ``t``
    and at 0: ``(t, value_t, value_0)``. ``cache``: ``(f(x), grad f(x), B x)`` if already known."""
    f0, grad, Bx = cache if cache is not None else (*problem.smooth(x), problem.B @ x)
    a = float(problem.coordinate_lipschitz[i]) + theta
    b = float(grad[i])
    lam = float(problem.lam)
    xi = float(x[i])
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
    cache = (*problem.smooth(x), problem.B @ x)
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
    for cap in ("smooth", "coordinate_lipschitz", "lam", "B", "denominator_power", "objective"):
        if not hasattr(problem, cap):
            raise TypeError(f"{where}: the problem must offer {cap!r} (see reference.problems.fractional_problems); "
                            f"{type(problem).__name__} has none")
    if variant not in VARIANTS:
        raise ValueError(f"{where}: variant must be one of {VARIANTS}, got {variant!r}")
    if rule not in RULES:
        raise ValueError(f"{where}: rule must be one of {RULES}, got {rule!r}")
    if isinstance(sweeps, bool) or not isinstance(sweeps, int) or sweeps < 0:
        raise ValueError(f"{where}: sweeps must be an integer >= 0, got {sweeps!r}")
    for name, value in (("theta", theta), ("tol", tol)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{where}: {name} must be a finite number >= 0, got {value!r}")
    if variant == "parametric" and problem.denominator_power != 0.5:
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
