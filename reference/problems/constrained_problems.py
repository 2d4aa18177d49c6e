"""Equality-constrained problems ``min f(x) s.t. c(x) = 0`` for the SQP drivers.

Plain :class:`EqualityConstrained` objects (not registry ``Problem``s: a constrained problem does not fit
the params-dict oracle): ``objective(x)`` and ``constraints(x)`` are written in autograd ops, so
gradients, constraint Jacobians and Lagrangian Hessians come from ``reference.autograd``; ``x0`` is the
standard start and ``solution`` a known minimiser where one is known.

* Hock and Schittkowski (1981) problems 6, 7, 39, 40 and 48 (small, nonlinear, classic starts).
* ``constrained_logistic``: synthetic logistic regression with a ridge term and linear equality
  constraints ``A x = b`` (the paper's constrained logistic regression, with generated data instead of
  LIBSVM sets), optionally with the nonconvex sphere constraint ``||x||^2 = 1`` appended.

``constrained_problems()`` lists the names; ``create_constrained(name, **kw)`` builds one.
"""
from __future__ import annotations

import numpy as np

from .. import autograd as ag

__all__ = ["EqualityConstrained", "constrained_problems", "create_constrained", "CONSTRAINED"]


class EqualityConstrained:
    """``min objective(x)  s.t.  constraints(x) = 0`` (autograd ops; ``x`` a 1-D float64 array)."""

    name = "constrained"
    solution = None

    def objective(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def constraints(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def dim(self):
        return self.x0.size

    @property
    def n_constraints(self):
        return int(np.asarray(_value(self.constraints(self.x0))).size)

    def f(self, x):
        return float(_value(self.objective(np.asarray(x, dtype=np.float64))))

    def c(self, x):
        return np.asarray(_value(self.constraints(np.asarray(x, dtype=np.float64))), dtype=np.float64)


def _value(t):
    return t.value if isinstance(t, ag.Tensor) else t


class HS6(EqualityConstrained):
    """HS 6: ``min (1 - x1)^2  s.t.  10 (x2 - x1^2) = 0``; start ``(-1.2, 1)``, solution ``(1, 1)``."""

    name = "hs6"

    def __init__(self):
        self.x0 = np.array([-1.2, 1.0])
        self.solution = np.array([1.0, 1.0])

    def objective(self, x):
        return (1.0 - x[0]) ** 2

    def constraints(self, x):
        return ag.stack([10.0 * (x[1] - x[0] ** 2)])


class HS7(EqualityConstrained):
    """HS 7: ``min log(1 + x1^2) - x2  s.t.  (1 + x1^2)^2 + x2^2 - 4 = 0``; start ``(2, 2)``,
    solution ``(0, sqrt 3)``."""

    name = "hs7"

    def __init__(self):
        self.x0 = np.array([2.0, 2.0])
        self.solution = np.array([0.0, np.sqrt(3.0)])

    def objective(self, x):
        return ag.log(1.0 + x[0] ** 2) - x[1]

    def constraints(self, x):
        return ag.stack([(1.0 + x[0] ** 2) ** 2 + x[1] ** 2 - 4.0])


class HS39(EqualityConstrained):
    """HS 39: ``min -x1  s.t.  x2 - x1^3 - x3^2 = 0, x1^2 - x2 - x4^2 = 0``; start ``2``, solution ``(1, 1, 0, 0)``."""

    name = "hs39"

    def __init__(self):
        self.x0 = np.full(4, 2.0)
        self.solution = np.array([1.0, 1.0, 0.0, 0.0])

    def objective(self, x):
        return -x[0]

    def constraints(self, x):
        return ag.stack([x[1] - x[0] ** 3 - x[2] ** 2, x[0] ** 2 - x[1] - x[3] ** 2])


class HS40(EqualityConstrained):
    """HS 40: ``min -x1 x2 x3 x4  s.t.  x1^3 + x2^2 = 1, x1^2 x4 = x3, x4^2 = x2``; start ``0.8``,
    solution ``(2^-1/3, 2^-1/2, 2^-11/12, 2^-1/4)``."""

    name = "hs40"

    def __init__(self):
        self.x0 = np.full(4, 0.8)
        self.solution = 2.0 ** -np.array([1.0 / 3.0, 0.5, 11.0 / 12.0, 0.25])

    def objective(self, x):
        return -x[0] * x[1] * x[2] * x[3]

    def constraints(self, x):
        return ag.stack([x[0] ** 3 + x[1] ** 2 - 1.0, x[0] ** 2 * x[3] - x[2], x[3] ** 2 - x[1]])


class HS48(EqualityConstrained):
    """HS 48: ``min (x1 - 1)^2 + (x2 - x3)^2 + (x4 - x5)^2  s.t.  sum x = 5, x3 - 2 (x4 + x5) = -3``;
    start ``(3, 5, -3, 2, -2)``, solution ``1``."""

    name = "hs48"

    def __init__(self):
        self.x0 = np.array([3.0, 5.0, -3.0, 2.0, -2.0])
        self.solution = np.ones(5)

    def objective(self, x):
        return (x[0] - 1.0) ** 2 + (x[1] - x[2]) ** 2 + (x[3] - x[4]) ** 2

    def constraints(self, x):
        return ag.stack([ag.sum(x) - 5.0, x[2] - 2.0 * (x[3] + x[4]) + 3.0])


class ConstrainedLogistic(EqualityConstrained):
    """``min (1/N) sum_i log(1 + exp(-y_i z_i^T x)) + (ridge/2) ||x||^2  s.t.  A x = b`` (+ ``||x||^2 = 1``).

    Data: ``z_i ~ N(0, I_d)``, labels from a random unit ``w*`` with 10% flipped; ``A`` Gaussian
    (``m x d``), ``b = A x_f`` for a random unit ``x_f`` (so the sphere constraint is also feasible).
    Start ``x0 = 0`` (``x0 = x_f / 2 + noise`` with the sphere).
    """

    name = "constrained_logistic"

    def __init__(self, n_samples=200, dim=6, n_linear=2, ridge=1e-2, sphere=False, seed=0):
        rng = np.random.default_rng(seed)
        self.Z = rng.standard_normal((n_samples, dim))
        w = rng.standard_normal(dim)
        w /= np.linalg.norm(w)
        y = np.sign(self.Z @ w + 1e-12)
        y[rng.random(n_samples) < 0.1] *= -1.0
        self.y = y
        self.A = rng.standard_normal((n_linear, dim))
        xf = rng.standard_normal(dim)
        xf /= np.linalg.norm(xf)
        self.b = self.A @ xf
        self.ridge, self.sphere = float(ridge), bool(sphere)
        self.x0 = 0.5 * xf + 0.1 * rng.standard_normal(dim) if sphere else np.zeros(dim)

    def objective(self, x):
        margins = -(self.y * (self.Z @ x)) if not isinstance(x, ag.Tensor) else -(ag.matmul(self.Z, x) * self.y)
        return ag.mean(ag.softplus(margins)) + 0.5 * self.ridge * ag.sum(x * x)

    def constraints(self, x):
        lin = ag.matmul(self.A, x) - self.b
        if self.sphere:
            return ag.concatenate([lin, ag.reshape(ag.sum(x * x) - 1.0, (1,))])
        return lin


CONSTRAINED = {c.name: c for c in (HS6, HS7, HS39, HS40, HS48, ConstrainedLogistic)}


def constrained_problems():
    """Names of the equality-constrained problems."""
    return sorted(CONSTRAINED)


def create_constrained(name, **kw):
    """Build the equality-constrained problem ``name``."""
    if name not in CONSTRAINED:
        raise ValueError(f"create_constrained: unknown problem {name!r}; known: {constrained_problems()}")
    return CONSTRAINED[name](**kw)
