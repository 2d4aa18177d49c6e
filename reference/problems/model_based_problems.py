"""Problems and oracles for model-based methods: robust phase retrieval, whose
sampled pieces have closed-form prox-linear and proximal-point steps, and
:class:`TargetOracle`, the loss split into a model and a loss of its outputs
(targets) for target-space methods (``sso_target_surrogate``).

``robust_phase_retrieval`` (Duchi and Ruan, "Solving (most) of a set of
quadratic equalities", 2019; the running example of Davis and Drusvyatskiy,
"Stochastic model-based minimization of weakly convex functions", 2019):

    f(x) = (1/m) sum_i | (a_i^T x)^2 - b_i |,    a_i ~ N(0, I_n),   b_i = (a_i^T x*)^2

a composition ``h(c(x))`` of the convex, 1-Lipschitz ``h = |.|`` with the
smooth ``c_i(x) = (a_i^T x)^2 - b_i``; it is weakly convex (``rho = 2
max ||a_i||^2`` bounds its weak-convexity constant). The absolute value makes
it robust: with a fraction ``outliers`` of the ``b_i`` replaced by arbitrary
values (here ``|N(0, outlier_scale^2)|``), ``x*`` is still recovered
exactly when the fraction is small. Optimum ``+-x*`` with value 0 when
``outliers = 0`` (else ``optimal_value`` is ``None``).

Its oracle (:class:`ModelOracle`) offers, besides the usual ``(loss, grads)``
(the autograd gradient of ``|.|`` is ``sign``, a valid subgradient), the two
model steps of the stochastic model-based methods on **one** sampled example
(a batch of size 1; a larger batch raises ``ValueError``: the closed forms
are for one term):

* ``prox_linear_step(params, lr)``: ``argmin_x |c(x_t) + <grad c(x_t), x -
  x_t>| + ||x - x_t||^2 / (2 lr)``. With ``r = c(x_t)``, ``v = grad c(x_t) =
  2 (a^T x_t) a``: ``x = x_t - lr clip(r / (lr ||v||^2), -1, 1) v``.
* ``proximal_point_step(params, lr)``: ``argmin_x |(a^T x)^2 - b| + ||x -
  x_t||^2 / (2 lr)``. The term depends on ``x`` only through ``u = a^T x``, so
  the minimiser is ``x_t + (u - u_t) a / ||a||^2`` with ``u`` the minimiser of
  the 1-D ``phi(u) = |u^2 - b| + k (u - u_t)^2 / 2``, ``k = 1 / (lr ||a||^2)``:
  the best of the stationary points of its two quadratic pieces that lie in
  their piece (``u = k u_t / (k + 2)`` where ``u^2 >= b``, ``u = k u_t / (k -
  2)`` where ``u^2 <= b``) and the kinks ``u = +-sqrt(b)``. (For ``k < 2``,
  i.e. ``lr`` above the weak-convexity threshold, ``phi`` is not convex; the
  candidate list still holds its global minimiser.)

Both are computed in the params' dtype; the 1-D choice is done on host
floats (one example, a handful of candidates).
"""
from __future__ import annotations

import math

import numpy as np

from .. import autograd as ag
from ..backend import to_numpy
from . import register
from .base import Oracle, Problem

__all__ = ["RobustPhaseRetrieval", "ModelOracle", "TargetOracle", "minimize_abs_quadratic_1d"]


class ModelOracle(Oracle):
    """An :class:`~reference.problems.base.Oracle` with the closed-form model steps (see the module)."""

    def _one_example(self, params, where):
        self.problem.check_params(params)
        batch = self.problem._batch_like(self.batch, params)
        a, b = batch["a"], batch["y"]
        if a.shape[0] != 1:
            raise ValueError(f"{self.problem.name}: {where} needs a batch of one example "
                             f"(problem.sample_batch(rng, 1)), got {a.shape[0]}")
        return a[0], b[0]

    def prox_linear_step(self, params, lr):
        """The prox-linear step on the sampled example (module docstring)."""
        self.calls["prox_linear"] = self.calls.get("prox_linear", 0) + 1
        a, b = self._one_example(params, "prox_linear_step")
        x = params["x"]
        u = a @ x                                   # a^T x_t
        r = u * u - b                               # c(x_t)
        v = 2.0 * u * a                             # grad c(x_t)
        vv = float(v @ v)
        if vv == 0.0:
            return {"x": x.copy()}
        s = min(max(float(r) / (lr * vv), -1.0), 1.0)
        return {"x": x - (lr * s) * v}

    def proximal_point_step(self, params, lr):
        """The stochastic proximal-point step on the sampled example (module docstring)."""
        self.calls["proximal_point"] = self.calls.get("proximal_point", 0) + 1
        a, b = self._one_example(params, "proximal_point_step")
        x = params["x"]
        na = float(a @ a)
        if na == 0.0:
            return {"x": x.copy()}
        ut, bb = float(a @ x), float(b)
        u = minimize_abs_quadratic_1d(ut, bb, 1.0 / (lr * na))
        return {"x": x + ((u - ut) / na) * a}


def minimize_abs_quadratic_1d(ut, b, k):
    """The global minimiser of ``phi(u) = |u^2 - b| + k (u - ut)^2 / 2`` (``b >= 0``, ``k > 0``)."""
    def phi(u):
        return abs(u * u - b) + 0.5 * k * (u - ut) ** 2

    candidates = []
    u_out = k * ut / (k + 2.0)                      # stationary on the piece u^2 >= b
    if u_out * u_out >= b:
        candidates.append(u_out)
    if k != 2.0:
        u_in = k * ut / (k - 2.0)                   # stationary on the piece u^2 <= b
        if u_in * u_in <= b:
            candidates.append(u_in)
    root = math.sqrt(b)
    candidates += [root, -root]
    return min(candidates, key=phi)


@register("robust_phase_retrieval")
class RobustPhaseRetrieval(Problem):
    """Robust (absolute-loss) real phase retrieval, ``f(x) = mean_i |(a_i^T x)^2 - b_i|``; see the module.

    Params ``{"x": (n,)}``, started at ``x_0 ~ N(0, init_scale^2 I / n)``, or, with
    ``init_distance=delta``, at ``x* + delta u`` for a random unit vector ``u`` (the local regime of
    the convergence theory, which a spectral initialisation reaches in practice); data ``{"a": (m, n),
    "y": (m,)}`` (``y`` holds the ``b_i``), drawn from ``seed``. ``evaluate`` adds ``distance =
    min(||x - x*||, ||x + x*||)`` (``||x*|| = 1``).
    """

    def __init__(self, n=10, measurements=80, outliers=0.0, outlier_scale=10.0, init_scale=1.0,
                 init_distance=None, seed=0):
        super().__init__()
        name = "robust_phase_retrieval"
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{name}: n must be an integer >= 1, got {n!r}")
        if isinstance(measurements, bool) or not isinstance(measurements, (int, np.integer)) or measurements < 1:
            raise ValueError(f"{name}: measurements must be an integer >= 1, got {measurements!r}")
        if not (0.0 <= float(outliers) < 0.5):
            raise ValueError(f"{name}: outliers must be a fraction in [0, 0.5), got {outliers!r}")
        settings = [("outlier_scale", outlier_scale), ("init_scale", init_scale)]
        if init_distance is not None:
            settings.append(("init_distance", init_distance))
        for setting, value in settings:
            if not (np.isfinite(float(value)) and float(value) >= 0):
                raise ValueError(f"{name}: {setting} must be a finite number >= 0, got {value!r}")
        self.n, self.measurements = int(n), int(measurements)
        self.outliers, self.init_scale = float(outliers), float(init_scale)
        self.init_distance = None if init_distance is None else float(init_distance)
        rng = np.random.default_rng(seed)
        x_star = rng.standard_normal(self.n)
        self.x_star = x_star / np.linalg.norm(x_star)
        a = rng.standard_normal((self.measurements, self.n))
        b = (a @ self.x_star) ** 2
        n_bad = int(round(self.outliers * self.measurements))
        self.corrupted = np.sort(rng.choice(self.measurements, size=n_bad, replace=False))
        b[self.corrupted] = np.abs(float(outlier_scale) * rng.standard_normal(n_bad))
        self.data = {"a": a, "y": b}
        self.param_shapes = {"x": (self.n,)}
        #: weak-convexity constant of f: c_i has Hessian 2 a_i a_i^T and h = |.| is 1-Lipschitz
        self.weak_convexity = 2.0 * float(np.max(np.sum(a * a, axis=1)))

    def _init(self, rng):
        if self.init_distance is not None:
            u = rng.standard_normal(self.n)
            return {"x": self.x_star + self.init_distance * u / np.linalg.norm(u)}
        return {"x": self.init_scale * rng.standard_normal(self.n) / np.sqrt(self.n)}

    def _per_example_loss(self, params, batch):
        z = ag.matmul(batch["a"], params["x"])
        return ag.abs(z * z - batch["y"])

    def oracle(self, batch=None):
        self.check_batch(batch)
        return ModelOracle(self, batch)

    @property
    def optimum(self):
        return {"x": self.x_star.copy()}

    @property
    def optimal_value(self):
        return 0.0 if self.outliers == 0.0 else None

    def evaluate(self, params):
        x = np.asarray(to_numpy(params)["x"], dtype=np.float64)
        dist = min(np.linalg.norm(x - self.x_star), np.linalg.norm(x + self.x_star))
        return {**super().evaluate(params), "distance": float(dist)}



class TargetOracle:
    """An oracle for target-space methods: the loss ``L(theta) = loss(apply(theta, x), y)`` split into a
    cheap model ``z = apply(theta, x)`` (the *targets*, e.g. logits) and a loss of the targets whose
    gradient ``dloss/dz`` is the expensive part (Lavington et al., "Target-based Surrogates for
    Stochastic Optimization", 2023). ``apply(params, x)`` and ``loss(z, y)`` are written in
    ``reference.autograd`` ops.

    * ``oracle(params) -> (loss, grads)``: the usual oracle (one expensive gradient);
    * ``targets(params) -> z``: a forward pass;
    * ``loss_and_target_grad(z) -> (loss, dloss/dz)``: the expensive gradient (counted in ``calls``);
    * ``targets_and_vjp(params) -> (z, vjp)``: ``vjp(v) = J_z(params)^T v``, backpropagation through
      the model only.

    ``calls`` counts ``{"grad", "target_grad", "vjp"}``.
    """

    def __init__(self, apply, loss, x, y):
        self.apply, self.loss_fn, self.x, self.y = apply, loss, x, y
        self.calls = {"grad": 0, "target_grad": 0, "vjp": 0}

    def __call__(self, params):
        self.calls["grad"] += 1
        self.calls["target_grad"] += 1
        return ag.value_and_grad(lambda p: self.loss_fn(self.apply(p, self.x), self.y))(params)

    def targets(self, params):
        out = self.apply(params, self.x)
        return out.value if isinstance(out, ag.Tensor) else out

    def loss_and_target_grad(self, z):
        self.calls["target_grad"] += 1
        return ag.value_and_grad(lambda zz: self.loss_fn(zz, self.y))(z)

    def targets_and_vjp(self, params):
        self.calls["vjp"] += 1
        z, vjp_fn = ag.vjp(lambda p: self.apply(p, self.x), (params,))
        return z, lambda v: vjp_fn(v)[0]
