"""Bound-constrained systems of nonlinear equations ``F(x) = 0, l <= x <= u``.

Test systems for the affine-scaling trust-region solver of
``reference.optim.scaled_trust_region``. They are not parameter-dict
minimisation problems, so they are plain :class:`BoundedSystem` objects (not
registry ``Problem``s): ``residual(x)`` is written in autograd ops so that
``reference.autograd.jacobian`` differentiates it; ``lower``/``upper`` are the
bounds (``-inf``/``inf`` allowed), ``x0`` a strictly feasible start and
``solution`` a known root where one is known.

``systems()`` lists the names; ``create_system(name, **kw)`` builds one. The
set is small on purpose (each solve takes milliseconds):

* ``broyden_tridiagonal`` (Moré, Garbow, Hillstrom 1981, problem 30) with
  bounds ``[-2, 0]``; its root is interior.
* ``chemical_equilibrium`` (Meintjes and Morgan 1990, the five-species
  combustion system) on ``[0, 100]^5``: badly scaled, positive root.
* ``powell_badly_scaled`` (MGH problem 3) on ``[0, 1] x [1, 9]``.
* ``rosenbrock_system`` (MGH problem 1 as a system) on ``[-2, 1]^2``: the root
  ``(1, 1)`` lies *on* the upper bounds, the hard case for interior methods.
* ``exponential_system``: a tridiagonally coupled exponential system on
  ``[0, 1]^n`` with the known root ``x*_i = i / (2n)`` (built for this library).
* ``bullard_biegler`` and ``ferraris_tronconi``: two-variable bounded systems from Floudas et al.,
  *Handbook of Test Problems in Local and Global Optimization* (1999), the standard small problems of
  the affine-scaling literature on bound-constrained equations (Bellavia, Macconi, Morini's STRSCNE and
  Bellavia, Macconi, Pieraccini's CoDoSol test sets). Default start ``x0 = l + (u - l) / 4`` (the first of
  that literature's ``l + nu (u - l) / 4, nu = 1, 2, 3`` starts). Both have non-root stationary points of
  ``||F||^2`` in the box (Bullard-Biegler on the face ``x2 = u2``, Ferraris-Tronconi an interior local
  minimiser with ``||F|| ~ 0.111``), where every scaling stops from some starts.
"""
from __future__ import annotations

import math

import numpy as np

from .. import autograd as ag

__all__ = ["BoundedSystem", "systems", "create_system", "SYSTEMS"]


class BoundedSystem:
    """``F(x) = 0`` with ``lower <= x <= upper``; ``residual`` uses autograd ops."""

    name = "system"

    def __init__(self, lower, upper, x0, solution=None):
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        self.x0 = np.asarray(x0, dtype=np.float64)
        self.solution = None if solution is None else np.asarray(solution, dtype=np.float64)
        if not (np.all(self.lower < self.x0) and np.all(self.x0 < self.upper)):
            raise ValueError(f"{self.name}: x0 must lie strictly inside the bounds")

    @property
    def dim(self):
        return self.x0.size

    def residual(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x):
        """``F(x)`` as a float64 NumPy array."""
        out = self.residual(np.asarray(x, dtype=np.float64))
        return np.asarray(out.value if isinstance(out, ag.Tensor) else out, dtype=np.float64)

    def jacobian(self, x):
        """``J(x) = dF/dx`` by the library's autograd."""
        return np.asarray(ag.jacobian(self.residual)(np.asarray(x, dtype=np.float64)), dtype=np.float64)

    def random_start(self, seed, margin=0.05):
        """A strictly feasible start drawn uniformly from the box shrunk by ``margin`` (of its width)
        on each side; infinite sides are replaced by ``x0 -/+ 2``."""
        rng = np.random.default_rng(seed)
        lo = np.where(np.isfinite(self.lower), self.lower, self.x0 - 2.0)
        hi = np.where(np.isfinite(self.upper), self.upper, self.x0 + 2.0)
        w = hi - lo
        return rng.uniform(lo + margin * w, hi - margin * w)


def _shift(x, k):
    """``y_i = x_{i+k}`` with zeros past the ends (``x_0 = x_{n+1} = 0`` conventions)."""
    n = x.shape[0]
    zero = ag.reshape(x[0:1] * 0.0, (1,))
    if k == 1:
        return ag.concatenate([x[1:], zero]) if n > 1 else zero
    return ag.concatenate([zero, x[:-1]]) if n > 1 else zero


class BroydenTridiagonal(BoundedSystem):
    """``F_i = (3 - 2 x_i) x_i - x_{i-1} - 2 x_{i+1} + 1`` (``x_0 = x_{n+1} = 0``), start ``-1``."""

    name = "broyden_tridiagonal"

    def __init__(self, n=10, lower=-2.0, upper=0.0):
        super().__init__(np.full(n, lower), np.full(n, upper), np.full(n, -1.0))

    def residual(self, x):
        return (3.0 - 2.0 * x) * x - _shift(x, -1) - 2.0 * _shift(x, 1) + 1.0


class ChemicalEquilibrium(BoundedSystem):
    """Meintjes and Morgan (1990): combustion of a hydrocarbon in air, five unknowns (``R = 10``).

    Known positive root ``x* ~ (0.0031141, 34.597, 0.065042, 0.85939, 0.036951)``.
    """

    name = "chemical_equilibrium"
    R = 10.0
    R5 = 0.193
    R6 = 0.002597 / math.sqrt(40.0)
    R7 = 0.003448 / math.sqrt(40.0)
    R8 = 0.00001799 / 40.0
    R9 = 0.0002155 / math.sqrt(40.0)
    R10 = 0.00003846 / 40.0

    def __init__(self, lower=0.0, upper=100.0, x0=(0.5, 10.0, 0.5, 0.5, 0.5)):
        super().__init__(np.full(5, lower), np.full(5, upper), x0)

    def residual(self, x):
        x1, x2, x3, x4, x5 = (x[i] for i in range(5))
        R, R5, R6, R7, R8, R9, R10 = self.R, self.R5, self.R6, self.R7, self.R8, self.R9, self.R10
        f1 = x1 * x2 + x1 - 3.0 * x5
        f2 = (2.0 * x1 * x2 + x1 + x2 * x3 ** 2 + R8 * x2 - R * x5 + 2.0 * R10 * x2 ** 2
              + R7 * x2 * x3 + R9 * x2 * x4)
        f3 = 2.0 * x2 * x3 ** 2 + 2.0 * R5 * x3 ** 2 - 8.0 * x5 + R6 * x3 + R7 * x2 * x3
        f4 = R9 * x2 * x4 + 2.0 * x4 ** 2 - 4.0 * R * x5
        f5 = (x1 * (x2 + 1.0) + R10 * x2 ** 2 + x2 * x3 ** 2 + R8 * x2 + R5 * x3 ** 2 + x4 ** 2 - 1.0
              + R6 * x3 + R7 * x2 * x3 + R9 * x2 * x4)
        return ag.stack([f1, f2, f3, f4, f5])


class PowellBadlyScaled(BoundedSystem):
    """``F = (1e4 x1 x2 - 1, exp(-x1) + exp(-x2) - 1.0001)``; root ``~(1.098e-5, 9.106)``."""

    name = "powell_badly_scaled"

    def __init__(self, lower=(0.0, 1.0), upper=(1.0, 9.5), x0=(0.5, 5.0)):
        super().__init__(lower, upper, x0)

    def residual(self, x):
        return ag.stack([1e4 * x[0] * x[1] - 1.0, ag.exp(-x[0]) + ag.exp(-x[1]) - 1.0001])


class RosenbrockSystem(BoundedSystem):
    """``F = (10 (x2 - x1^2), 1 - x1)`` on ``[-2, 1]^2``: the root ``(1, 1)`` is a corner of the box."""

    name = "rosenbrock_system"

    def __init__(self, lower=(-2.0, -2.0), upper=(1.0, 1.0), x0=(-1.2, 0.5)):
        super().__init__(lower, upper, x0, solution=(1.0, 1.0))

    def residual(self, x):
        return ag.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


class ExponentialSystem(BoundedSystem):
    """``F_i = exp(x_i) - 1 + (x_{i-1} + x_{i+1}) / 4 - b_i`` with ``b`` chosen so that
    ``x*_i = 0.5 i / n`` is the root; bounds ``[0, 1]^n`` (``x*_1`` near the lower bound for large n)."""

    name = "exponential_system"

    def __init__(self, n=6):
        xs = 0.5 * np.arange(1, n + 1) / n
        left = np.concatenate([[0.0], xs[:-1]])
        right = np.concatenate([xs[1:], [0.0]])
        self.b = np.exp(xs) - 1.0 + 0.25 * (left + right)
        super().__init__(np.zeros(n), np.ones(n), np.full(n, 0.9), solution=xs)

    def residual(self, x):
        return ag.exp(x) - 1.0 + 0.25 * (_shift(x, -1) + _shift(x, 1)) - self.b


class BullardBiegler(BoundedSystem):
    """``F = (1e4 x1 x2 - 1, exp(-x1) + exp(-x2) - 1.001)`` on ``[5.45e-6, 4.553] x [2.196e-3, 18.21]``;
    root ``~(1.45067e-5, 6.89335)``. Powell's badly scaled system with a different constant and box."""

    name = "bullard_biegler"

    def __init__(self, x0=None):
        lo, up = np.array([5.45e-6, 2.196e-3]), np.array([4.553, 18.21])
        super().__init__(lo, up, lo + 0.25 * (up - lo) if x0 is None else x0)

    def residual(self, x):
        return ag.stack([1e4 * x[0] * x[1] - 1.0, ag.exp(-x[0]) + ag.exp(-x[1]) - 1.001])


class FerrarisTronconi(BoundedSystem):
    """``F1 = sin(x1 x2) / 2 - x2 / (4 pi) - x1 / 2``,
    ``F2 = (1 - 1 / (4 pi)) (exp(2 x1) - e) + e x2 / pi - 2 e x1`` on ``[0.25, 1] x [1.5, 2 pi]``;
    roots ``~(0.29945, 2.83693)`` and ``(0.5, pi)``."""

    name = "ferraris_tronconi"

    def __init__(self, x0=None):
        lo, up = np.array([0.25, 1.5]), np.array([1.0, 2.0 * math.pi])
        super().__init__(lo, up, lo + 0.25 * (up - lo) if x0 is None else x0)

    def residual(self, x):
        e = math.e
        f1 = 0.5 * ag.sin(x[0] * x[1]) - x[1] / (4.0 * math.pi) - 0.5 * x[0]
        f2 = (1.0 - 1.0 / (4.0 * math.pi)) * (ag.exp(2.0 * x[0]) - e) + e * x[1] / math.pi - 2.0 * e * x[0]
        return ag.stack([f1, f2])


SYSTEMS = {c.name: c for c in (BroydenTridiagonal, ChemicalEquilibrium, PowellBadlyScaled, RosenbrockSystem,
                               ExponentialSystem, BullardBiegler, FerrarisTronconi)}


def systems():
    """Names of the bounded nonlinear systems."""
    return sorted(SYSTEMS)


def create_system(name, **kw):
    """Build the system ``name`` (see the module docstring)."""
    if name not in SYSTEMS:
        raise ValueError(f"create_system: unknown system {name!r}; known: {systems()}")
    return SYSTEMS[name](**kw)
