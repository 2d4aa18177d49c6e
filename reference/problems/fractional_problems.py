"""Fractional objectives ``F(x) = (f(x) + h(x)) / g(x)`` for the fractional coordinate-descent methods.

Both problems have the structure of Yuan's "Coordinate Descent Methods for
Fractional Minimization" (:mod:`reference.optim.coordinate_descent_fractional`):
``f`` smooth convex with coordinate-wise Lipschitz gradients (constants
``c_i``), ``h = lam ||x||_1`` separable convex (``lam = 0``: none), ``g > 0``
a convex denominator of the form

    g(x) = (x^T B x)^(1/2)     (``denominator_power = 0.5``: a (weighted) Euclidean norm)
    g(x) =  x^T B x            (``denominator_power = 1``)

with ``B`` symmetric positive definite, so that along a coordinate
``g(x + t e_i)^(1/power) = B_ii t^2 + 2 (B x)_i t + x^T B x`` is a quadratic
in ``t``: what makes the one-dimensional subproblems solvable in closed form.
Each problem offers, besides the library's ``loss``/``oracle`` (the loss is
``F`` itself, in autograd ops):

    smooth(x)             -> (f(x), grad f(x))                    float64 NumPy
    coordinate_lipschitz  c with f(x + t e_i) <= f(x) + grad_i f(x) t + c_i/2 t^2
    lam, B, denominator_power
    objective(x)          F(x) as a float

* ``fractional_sparse_recovery``: ``F(x) = (1/2 ||G x - y||^2 + lam ||x||_1) /
  sqrt(x^T B x)``, the scale-invariant sparse recovery model of the paper's
  experiments with an ``l2`` (``B = I``, ``denominator="l2"``) or weighted
  (``denominator="quadratic_form"``: ``B = I + W W^T / d``, ``W`` Gaussian
  ``(d, d)``) norm below. ``G`` is ``(n, d)`` Gaussian scaled by ``1/sqrt(n)``
  (``n > d`` by default, so ``G`` has full column rank and ``F`` is coercive
  away from 0), ``y = G x_true + noise N(0, 1)`` with ``x_true`` ``n_nonzero``-
  sparse (entries ``+-U(1, 2)``). ``c_i = ||G_i||^2`` (exact: ``f`` is a
  quadratic). Nonconvex; no known minimiser (``optimum`` is ``None``).
* ``generalized_rayleigh``: ``F(x) = x^T A x / x^T B x`` with ``A = 0.1 I + V V^T / d``
  (``V`` Gaussian ``(d, d)``; PD, the shift keeps ``lambda_min`` away from 0) and ``B = I + W W^T / d`` (SPD): ``f = x^T A x``
  (``c_i = 2 A_ii``), ``h = 0``, ``g = x^T B x`` (power 1). The minimum is the
  smallest generalised eigenvalue ``lambda_min(A, B)``, attained at its
  eigenvector (``optimum``, normalised to ``x^T B x = 1``; ``F`` is scale
  invariant, so every nonzero multiple is a minimiser too).

* ``fractional_sparse_recovery_topk``: the paper's sparse-recovery experiment
  as in the official MATLAB code (``demo_accuracy_SpaseRecovery_Topk.m``,
  ``getdata_ica.m``, ``generate_y_DCSparseOpt.m``), in miniature:
  ``F(x) = (1/2 ||G x - y||^2 + lam ||x||_1) / (lam ||x||_[k])`` with the
  **top-k norm** ``||x||_[k]`` (sum of the ``k`` largest ``|x_i|``) below.
  ``G = A / ||A||_F`` where ``A`` is, in the paper, a random ``(n, d)`` block of
  a sparse nonnegative document-term matrix (E2006, news20, sector, TDT2) plus
  ``1e-5 N(0, 1)``; here ``design="sparse_nonnegative"`` stands in for it:
  entries ``Bernoulli(density) * LogNormal(0, 1)`` plus ``1e-5 N(0, 1)``
  (``design="gaussian"``: ``A`` Gaussian). ``x_true`` has ``n_nonzero``
  ``N(0, 1)`` entries, ``y = G x_true + noise ||G x_true|| N(0, I)`` (the code's
  ``noise = 0.1``), ``lam = 0.1 / n`` and ``k = n_nonzero`` (the code: ``k = 100``
  = its number of nonzeros), start ``0.1 N(0, I)`` (the code's ``x0``).
  ``topk = k`` and ``denominator_scale = lam`` tell the driver which
  denominator it is; ``B`` is ``None``. Along a coordinate the denominator is
  ``lam (S_{k-1} + max(|x_i + t|, a_k))`` (``S_{k-1}``: sum of the ``k - 1``
  largest ``|x_j|``, ``j != i``; ``a_k``: the ``k``-th largest), piecewise
  linear in ``|x_i + t|``. ``F >= 1`` always (``||x||_1 >= ||x||_[k]``), ``= 1``
  only for a ``k``-sparse exact fit. Not coercive: along a column of ``G``
  that is (almost) zero -- frequent in sparse data -- ``F(s e_j) -> 1`` as
  ``s -> inf``.

Params ``{"x": (d,)}``, started at ``N(0, I)`` (``fractional_sparse_recovery_topk``:
``0.1 N(0, I)``). Data are drawn from ``seed``.
"""
from __future__ import annotations

import numpy as np

from .. import autograd as ag
from ..backend import xp_of
from . import register
from .base import Problem, check_float, check_int

__all__ = ["FractionalSparseRecovery", "FractionalSparseRecoveryTopK", "GeneralizedRayleigh", "topk_sum"]


def topk_sum(x, k):
    """``||x||_[k]``: the sum of the ``k`` largest ``|x_i|`` (all of them when ``k >= x.size``)."""
    a = np.abs(np.asarray(x, dtype=np.float64))
    if k >= a.size:
        return float(a.sum())
    return float(np.partition(a, a.size - k)[a.size - k:].sum())


def _spd(rng, d):
    W = rng.standard_normal((d, d))
    return np.eye(d) + W @ W.T / d


class _Fractional(Problem):
    """Shared parts: the denominator ``g = (x^T B x)^power``, ``objective``, checks."""

    lam = 0.0
    denominator_power = 1.0

    def __init__(self, dim, seed):
        super().__init__()
        self.d = check_int(self.name, "dim", dim, 1)
        self.seed = check_int(self.name, "seed", seed, 0)
        self.param_shapes = {"x": (self.d,)}

    def _init(self, rng):
        return {"x": rng.standard_normal(self.d)}

    def denominator(self, x):
        """``g(x)`` (float64)."""
        q = float(x @ self.B @ x)
        return q ** self.denominator_power

    def objective(self, x):
        """``F(x) = (f(x) + lam ||x||_1) / g(x)`` as a float (``x`` a float64 vector)."""
        x = np.asarray(x, dtype=np.float64)
        return (self.smooth(x)[0] + self.lam * float(np.abs(x).sum())) / self.denominator(x)

    def _denominator_tensor(self, x, params):
        q = ag.sum(x * (x @ self._const(self.B, params)))
        return ag.sqrt(q) if self.denominator_power == 0.5 else q


@register("fractional_sparse_recovery")
class FractionalSparseRecovery(_Fractional):
    """``(1/2 ||G x - y||^2 + lam ||x||_1) / sqrt(x^T B x)``; see the module docstring.

    Settings: ``n=60, dim=30, n_nonzero=5, noise=0.01, lam=0.1, denominator="l2"
    ("l2" | "quadratic_form"), seed=0``.
    """

    denominator_power = 0.5

    def __init__(self, n=60, dim=30, n_nonzero=5, noise=0.01, lam=0.1, denominator="l2", seed=0):
        super().__init__(dim, seed)
        where = self.name
        self.n = check_int(where, "n", n, 1)
        self.n_nonzero = check_int(where, "n_nonzero", n_nonzero, 0)
        if self.n_nonzero > self.d:
            raise ValueError(f"{where}: n_nonzero must be <= dim = {self.d}, got {n_nonzero!r}")
        self.noise = check_float(where, "noise", noise, 0.0)
        self.lam = check_float(where, "lam", lam, 0.0)
        if denominator not in ("l2", "quadratic_form"):
            raise ValueError(f"{where}: denominator must be 'l2' or 'quadratic_form', got {denominator!r}")
        self.denominator_kind = denominator
        rng = np.random.default_rng(self.seed)
        self.G = rng.standard_normal((self.n, self.d)) / np.sqrt(self.n)
        self.x_true = np.zeros(self.d)
        support = rng.choice(self.d, size=self.n_nonzero, replace=False)
        self.x_true[support] = rng.choice([-1.0, 1.0], self.n_nonzero) * rng.uniform(1.0, 2.0, self.n_nonzero)
        self.y = self.G @ self.x_true + self.noise * rng.standard_normal(self.n)
        self.B = np.eye(self.d) if denominator == "l2" else _spd(rng, self.d)
        self.coordinate_lipschitz = (self.G * self.G).sum(axis=0)

    def smooth(self, x):
        """``(f(x), grad f(x))`` with ``f = 1/2 ||G x - y||^2``."""
        r = self.G @ x - self.y
        return 0.5 * float(r @ r), self.G.T @ r

    def _loss(self, params, batch):
        x = params["x"]
        r = x @ self._const(self.G.T, params) - self._const(self.y, params)
        num = 0.5 * ag.sum(r * r) + self.lam * ag.sum(ag.abs(x))
        return num / self._denominator_tensor(x, params)


@register("fractional_sparse_recovery_topk")
class FractionalSparseRecoveryTopK(_Fractional):
    """``(1/2 ||G x - y||^2 + lam ||x||_1) / (lam ||x||_[k])``, the paper's experiment in miniature; see the
    module docstring.

    Settings: ``n=32, dim=64, n_nonzero=6, k=None (= n_nonzero), design="sparse_nonnegative"
    ("sparse_nonnegative" | "gaussian"), density=0.05, noise=0.1, lam=None (= 0.1 / n), seed=0``.
    """

    B = None
    denominator_power = None

    def __init__(self, n=32, dim=64, n_nonzero=6, k=None, design="sparse_nonnegative", density=0.05, noise=0.1,
                 lam=None, seed=0):
        super().__init__(dim, seed)
        where = self.name
        self.n = check_int(where, "n", n, 1)
        self.n_nonzero = check_int(where, "n_nonzero", n_nonzero, 1)
        if self.n_nonzero > self.d:
            raise ValueError(f"{where}: n_nonzero must be <= dim = {self.d}, got {n_nonzero!r}")
        self.topk = self.n_nonzero if k is None else check_int(where, "k", k, 1)
        if self.topk > self.d:
            raise ValueError(f"{where}: k must be <= dim = {self.d}, got {k!r}")
        if design not in ("sparse_nonnegative", "gaussian"):
            raise ValueError(f"{where}: design must be 'sparse_nonnegative' or 'gaussian', got {design!r}")
        self.design = design
        self.density = check_float(where, "density", density, 0.0, strict=True)
        if self.density > 1.0:
            raise ValueError(f"{where}: density must be in (0, 1], got {density!r}")
        self.noise = check_float(where, "noise", noise, 0.0)
        self.lam = 0.1 / self.n if lam is None else check_float(where, "lam", lam, 0.0, strict=True)
        self.denominator_scale = self.lam
        rng = np.random.default_rng(self.seed)
        if design == "gaussian":
            A = rng.standard_normal((self.n, self.d))
        else:
            A = (rng.random((self.n, self.d)) < self.density) * rng.lognormal(0.0, 1.0, (self.n, self.d))
            A = A + 1e-5 * rng.standard_normal((self.n, self.d))
        self.G = A / np.linalg.norm(A)
        self.x_true = np.zeros(self.d)
        self.x_true[rng.permutation(self.d)[:self.n_nonzero]] = rng.standard_normal(self.n_nonzero)
        b = self.G @ self.x_true
        self.y = b + self.noise * float(np.linalg.norm(b)) * rng.standard_normal(self.n)
        self.coordinate_lipschitz = (self.G * self.G).sum(axis=0)

    def _init(self, rng):
        return {"x": 0.1 * rng.standard_normal(self.d)}

    def denominator(self, x):
        """``g(x) = lam ||x||_[k]`` (float64)."""
        return self.denominator_scale * topk_sum(x, self.topk)

    def smooth(self, x):
        """``(f(x), grad f(x))`` with ``f = 1/2 ||G x - y||^2``."""
        r = self.G @ x - self.y
        return 0.5 * float(r @ r), self.G.T @ r

    def _loss(self, params, batch):
        x = params["x"]
        v = x
        while isinstance(v, ag.Tensor):                 # (nested under forward-over-reverse)
            v = v.value
        xp = xp_of(v)
        mask = xp.zeros_like(v)
        mask[xp.argsort(-xp.abs(v))[:self.topk]] = 1   # the top-k set (a subgradient choice at ties)
        r = x @ self._const(self.G.T, params) - self._const(self.y, params)
        num = 0.5 * ag.sum(r * r) + self.lam * ag.sum(ag.abs(x))
        return num / (self.denominator_scale * ag.sum(ag.abs(x) * mask))


@register("generalized_rayleigh")
class GeneralizedRayleigh(_Fractional):
    """``x^T A x / x^T B x`` (A PSD, B SPD); minimum ``lambda_min(A, B)``; see the module docstring.

    Settings: ``dim=20, seed=0``.
    """

    denominator_power = 1.0

    def __init__(self, dim=20, seed=0):
        super().__init__(dim, seed)
        rng = np.random.default_rng(self.seed)
        V = rng.standard_normal((self.d, self.d))
        self.A = 0.1 * np.eye(self.d) + V @ V.T / self.d
        self.B = _spd(rng, self.d)
        self.coordinate_lipschitz = 2.0 * np.diag(self.A).copy()
        self._eig = None

    def smooth(self, x):
        """``(f(x), grad f(x))`` with ``f = x^T A x``."""
        Ax = self.A @ x
        return float(x @ Ax), 2.0 * Ax

    def _loss(self, params, batch):
        x = params["x"]
        return ag.sum(x * (x @ self._const(self.A, params))) / self._denominator_tensor(x, params)

    def _eigh(self):
        if self._eig is None:
            import scipy.linalg
            w, V = scipy.linalg.eigh(self.A, self.B)   # V^T B V = I
            self._eig = (w, V)
        return self._eig

    @property
    def min_eigenvalue(self):
        """``lambda_min(A, B)`` (scipy.linalg.eigh)."""
        return float(self._eigh()[0][0])

    @property
    def optimum(self):
        return {"x": self._eigh()[1][:, 0].copy()}

    @property
    def optimal_value(self):
        return self.min_eigenvalue
