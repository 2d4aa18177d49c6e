"""Convex test problems whose minimiser is known: quadratics with a chosen
spectrum (and the DeepOBS noisy quadratic), least squares / ridge, logistic
and softmax regression, and the lasso (a composite problem with a prox).

Every problem is a finite sum ``f(w) = (1/n) sum_i f_i(w)`` over examples
drawn in float64 from the constructor's ``seed`` (the data, the matrix and
the true weights), so one seed fixes the problem; ``init(seed)`` then fixes
the starting point separately. A regulariser ``lam/2 ||w||^2`` is part of
*every* ``f_i``, so per-sample gradients average exactly to the gradient.

The minimiser (``optimum``, float64) and the minimum (``optimal_value``) are

* in closed form for the quadratics and for least squares;
* computed once, at first access, by Newton's method in float64 to a
  gradient norm of about 1e-13, for logistic and softmax regression;
* computed once by coordinate descent, then solved exactly on the support it
  finds, for the lasso.

A setting out of its range raises ``ValueError`` naming the setting.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.special

from .. import autograd as ag
from ..backend import xp_of
from . import register
from .base import Problem, check_float, check_int

__all__ = ["Quadratic", "NoisyQuadratic", "LeastSquares", "LogisticRegression", "SoftmaxRegression",
           "Lasso", "random_rotation"]


# --------------------------------------------------------------------------
# setting checks and shared helpers
# --------------------------------------------------------------------------

def random_rotation(dim, rng):
    """A rotation matrix drawn from the Haar measure on SO(dim).

    QR of a Gaussian matrix, with the signs of ``R``'s diagonal moved into
    ``Q`` so that ``Q`` is Haar on O(dim) (Mezzadri, 2007), then the first
    column flipped where needed so that ``det Q = +1``.
    """
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _linear_init(rng, shapes, fan_in):
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for every entry: ``torch.nn.Linear``'s default."""
    bound = 1.0 / np.sqrt(fan_in)
    return {k: rng.uniform(-bound, bound, size=s) for k, s in shapes.items()}


def _newton(fgh, theta, tol=1e-13, max_iter=100, where="newton"):
    """Minimise a smooth strongly convex function in float64 by damped Newton.

    ``fgh(theta, hessian=True) -> (f, g, H)`` (with ``hessian=False``, ``H``
    may be ``None``: the line search needs ``f`` only). Far from the optimum
    the step is halved until it decreases ``f`` enough (Armijo); once the
    Newton decrement ``g^T H^-1 g`` is below 1e-12, ``f`` is flat to rounding
    and full steps are taken (the region of quadratic convergence). Stops at
    ``||g|| <= tol`` or when rounding stops the gradient from shrinking;
    raises ``RuntimeError`` if ``||g||`` did not get below 1e-11 or the
    Hessian is singular.
    """
    f, g, H = fgh(theta)
    for _ in range(max_iter):
        gnorm = np.linalg.norm(g)
        if gnorm <= tol:
            break
        try:
            step = scipy.linalg.cho_solve(scipy.linalg.cho_factor(H), g)
        except (np.linalg.LinAlgError, ValueError):
            raise RuntimeError(f"{where}: the Hessian is singular at Newton's iterate; the minimiser "
                               "may not exist or not be unique (lam = 0?)") from None
        decrement = float(g @ step)
        t = 1.0
        while decrement > 1e-12:
            f_new = fgh(theta - t * step, hessian=False)[0]
            if f_new <= f - 0.25 * t * decrement:
                break
            t *= 0.5
            if t < 1e-12:
                raise RuntimeError(f"{where}: Newton's line search failed (is the problem strongly convex?)")
        theta_new = theta - t * step
        f_new, g_new, H_new = fgh(theta_new)
        if decrement <= 1e-12 and np.linalg.norm(g_new) >= gnorm:
            break  # at the rounding floor
        theta, f, g, H = theta_new, f_new, g_new, H_new
    if np.linalg.norm(g) > 1e-11:
        raise RuntimeError(f"{where}: Newton's method stopped at gradient norm {np.linalg.norm(g):.3e}")
    return theta


def _value(x):
    """The array inside a Tensor (or the array itself)."""
    return x.value if isinstance(x, ag.Tensor) else x


def _accuracy(logits_or_scores, labels, xp):
    return float(xp.mean((logits_or_scores == labels).astype(xp.float64)))


# --------------------------------------------------------------------------
# quadratics
# --------------------------------------------------------------------------

@register("quadratic")
class Quadratic(Problem):
    """A quadratic with a chosen spectrum, optionally made stochastic by shifting its centre:

        f(w) = 1/n sum_i 1/2 (w - c - z_i)^T A (w - c - z_i),   A = Q diag(eigenvalues) Q^T

    Drawn from ``seed``, in this order: ``Q``, a Haar-random rotation; the
    centre ``c ~ N(0, I)``; the examples ``z_i ~ N(0, noise^2 I)``,
    ``i < n_samples`` (data key ``"z"``, shape ``(n_samples, dim)``). Every
    ``f_i`` has Hessian ``A``, so the noise moves the minimiser, not the
    curvature.

    The spectrum is either given (``eigenvalues``, any order, all ``>= 0``)
    or made from ``dim``, ``L`` (largest eigenvalue, default 1) and
    ``condition_number`` (default 10; 1 when ``dim=1``): ``dim`` values from
    ``mu = L / condition_number`` to ``L``, evenly spaced on a log scale
    (``spectrum="log"``, the default) or a linear one (``"linear"``), in
    increasing order. Give either ``eigenvalues`` or the other three.

    ``noise=0`` (a deterministic quadratic): there are no examples,
    ``data is None`` (like Rosenbrock), ``n_samples`` is ignored and
    ``f(w) = 1/2 (w - c)^T A (w - c)``.

    Closed forms: ``w* = c + mean_i z_i`` and
    ``f* = 1/2 mean_i (z_i - zbar)^T A (z_i - zbar)`` (0 when ``noise=0``);
    ``f(w) - f* = 1/2 (w - w*)^T A (w - w*)`` and the Hessian is ``A``.
    (With a zero eigenvalue ``w*`` is one minimiser among many.)
    Attributes: ``A``, ``Q``, ``eigenvalues``, ``L``, ``mu``,
    ``condition_number``, ``center``. Params: ``{"w": (dim,)}``, started at
    ``N(0, I)``.
    """

    def __init__(self, dim=None, eigenvalues=None, condition_number=None, spectrum=None, L=None,
                 noise=1.0, n_samples=100, seed=0):
        super().__init__()
        where = self.name
        seed = check_int(where, "seed", seed, 0)
        if eigenvalues is not None:
            for other, value in (("condition_number", condition_number), ("spectrum", spectrum), ("L", L)):
                if value is not None:
                    raise ValueError(f"{where}: pass either eigenvalues or {other} (with dim), not both")
            eig = self._check_eigenvalues(where, eigenvalues, dim)
        else:
            dim = check_int(where, "dim", 10 if dim is None else dim, 1)
            if condition_number is None:
                condition_number = 10.0 if dim > 1 else 1.0
            kappa = check_float(where, "condition_number", condition_number, 1.0)
            L = check_float(where, "L", 1.0 if L is None else L, 0.0, strict=True)
            spectrum = "log" if spectrum is None else spectrum
            if spectrum not in ("log", "linear"):
                raise ValueError(f"{where}: spectrum must be 'log' or 'linear', got {spectrum!r}")
            if dim == 1 and kappa != 1.0:
                raise ValueError(f"{where}: condition_number must be 1 when dim is 1 (one eigenvalue), got {kappa:g}")
            space = np.geomspace if spectrum == "log" else np.linspace
            eig = space(L / kappa, L, dim) if dim > 1 else np.array([L])
        noise = check_float(where, "noise", noise, 0.0)
        n_samples = check_int(where, "n_samples", n_samples, 1)
        self._build(eig, noise, n_samples, np.random.default_rng(seed), random_center=True)

    @staticmethod
    def _check_eigenvalues(where, eigenvalues, dim):
        try:
            eig = np.array(eigenvalues, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: eigenvalues must be a 1-D array of numbers, got {eigenvalues!r}") from None
        if eig.ndim != 1 or eig.size == 0:
            raise ValueError(f"{where}: eigenvalues must be a non-empty 1-D array, got shape {eig.shape}")
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim != eig.size):
            raise ValueError(f"{where}: eigenvalues has length {eig.size} but dim is {dim!r}")
        if not np.all(np.isfinite(eig)) or np.any(eig < 0) or not np.any(eig > 0):
            raise ValueError(f"{where}: eigenvalues must be finite and >= 0 with at least one > 0, got {eig}")
        return eig

    def _build(self, eig, noise, n_samples, rng, random_center, n_test=0):
        """Draw ``Q``, ``c`` and the examples from ``rng`` (in that order) and set everything up."""
        dim = eig.size
        self.dim_ = dim
        self.eigenvalues = eig
        self.L, self.mu = float(eig.max()), float(eig.min())
        self.condition_number = self.L / self.mu if self.mu > 0 else np.inf
        self.noise = noise
        self.Q = random_rotation(dim, rng)
        A = (self.Q * eig) @ self.Q.T
        self.A = 0.5 * (A + A.T)  # exactly symmetric
        self.center = rng.standard_normal(dim) if random_center else np.zeros(dim)
        self.param_shapes = {"w": (dim,)}
        if noise > 0:
            self.data = {"z": noise * rng.standard_normal((n_samples, dim))}
            if n_test:
                self.test_data = {"z": noise * rng.standard_normal((n_test, dim))}

    def _init(self, rng):
        return {"w": rng.standard_normal(self.dim_)}

    def _per_example_loss(self, params, batch):
        A = self._const(self.A, params)
        r = params["w"] - self._const(self.center, params) - batch["z"]   # (B, dim): w - c - z_i
        return 0.5 * ag.sum(r * (r @ A), axis=1)                           # 1/2 r_i^T A r_i

    # the 'outputs' capability (see problems/base.py): z_i = w - c - z_i, l(r) = 1/2 r^T A r
    def _outputs(self, params, batch):
        r = params["w"] - self._const(self.center, params)
        if batch is None:               # noise = 0: one "example", z = (w - c) as a (1, dim) row
            return ag.reshape(r, (1, self.dim_))
        return r - batch["z"]           # (B, dim)

    def _output_loss(self, outputs, batch):
        return 0.5 * ag.sum(outputs * (outputs @ self._const(self.A, {"z": _value(outputs)})), axis=1)

    def _loss(self, params, batch):
        if batch is None:  # noise = 0: the plain quadratic 1/2 (w - c)^T A (w - c)
            r = params["w"] - self._const(self.center, params)
            return 0.5 * ag.sum(r * (r @ self._const(self.A, params)))
        return ag.mean(self._per_example_loss(params, batch))

    @property
    def optimum(self):
        zbar = 0.0 if self.data is None else self.data["z"].mean(axis=0)
        return {"w": self.center + zbar}

    @property
    def optimal_value(self):
        if self.data is None:
            return 0.0
        d = self.data["z"] - self.data["z"].mean(axis=0)
        return float(0.5 * np.mean(np.einsum("ij,jk,ik->i", d, self.A, d)))

    def evaluate(self, params):
        out = super().evaluate(params)
        if self.test_data is not None:
            out["test_loss"] = float(self.loss(params, self.test_data))
        return out


@register("noisy_quadratic")
class NoisyQuadratic(Quadratic):
    """The noisy quadratic of DeepOBS (``quadratic_deep``; Schneider, Balles
    and Hennig, 2019, arXiv:1903.05499), 100-dimensional:

        f(w) = 1/n sum_i 1/2 (w - x_i)^T H (w - x_i),   H = Q diag(lambda) Q^T

    with 90 eigenvalues ``lambda ~ U[0, 1]`` and 10 ``~ U[30, 60]`` (a deep
    net's spectrum: a bulk near zero and a few outliers), a Haar-random
    rotation ``Q`` and examples ``x_i ~ N(0, noise^2 I)``. It is
    :class:`Quadratic` with centre ``c = 0`` and this spectrum; the examples
    keep the key ``"z"``.

    DeepOBS's defaults are kept: ``noise=0.6`` (its ``noise_level``),
    ``n_samples=1000`` training and ``n_test=1000`` test examples
    (``test_data``; ``evaluate`` adds ``test_loss``), and the start
    ``w0 = (1, ..., 1)``; ``init(seed)`` adds ``jitter * N(0, I)`` to it.
    The numbers themselves differ from DeepOBS (whose draws come from a
    module-level ``RandomState(42)``): everything here is drawn from ``seed``,
    eigenvalues first (in the order above), then ``Q``, then the examples.
    Optimum and value in closed form as for :class:`Quadratic`.
    """

    def __init__(self, noise=0.6, n_samples=1000, n_test=1000, jitter=0.0, seed=0):
        Problem.__init__(self)
        where = self.name
        seed = check_int(where, "seed", seed, 0)
        noise = check_float(where, "noise", noise, 0.0)
        n_samples = check_int(where, "n_samples", n_samples, 1)
        n_test = check_int(where, "n_test", n_test, 0)
        self.jitter = check_float(where, "jitter", jitter, 0.0)
        self.seeded_init = self.jitter > 0
        rng = np.random.default_rng(seed)
        eig = np.concatenate([rng.uniform(0.0, 1.0, 90), rng.uniform(30.0, 60.0, 10)])
        self._build(eig, noise, n_samples, rng, random_center=False, n_test=n_test)

    def _init(self, rng):
        return {"w": np.ones(self.dim_) + self.jitter * rng.standard_normal(self.dim_)}


# --------------------------------------------------------------------------
# least squares
# --------------------------------------------------------------------------

def _design(where, n, d, condition_number, rng):
    """``X`` (n, d): Gaussian, or with ``X^T X / n`` having eigenvalues log-spaced in ``[1/kappa, 1]``."""
    if condition_number is None:
        return rng.standard_normal((n, d))
    kappa = check_float(where, "condition_number", condition_number, 1.0)
    if n < d:
        raise ValueError(f"{where}: condition_number needs n >= d (X^T X is singular otherwise), got n={n}, d={d}")
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))          # orthonormal columns
    V = random_rotation(d, rng)
    spectrum = np.geomspace(1.0 / kappa, 1.0, d) if d > 1 else np.ones(1)
    return (U * np.sqrt(n * spectrum)) @ V.T                  # X^T X / n = V diag(spectrum) V^T


class _RidgePenalty:
    """For problems with a ridge term ``lam/2 ||w||^2`` in every example's loss: that term is a
    penalty on the params, no loss of the outputs, so the 'outputs' capability exists only at ``lam = 0``."""

    def _outputs_unavailable(self):
        reason = super()._outputs_unavailable()
        if reason is None and self.lam > 0:
            return f"lam={self.lam:g} > 0 adds a penalty on the params that is no loss of the outputs"
        return reason


@register("least_squares")
class LeastSquares(_RidgePenalty, Problem):
    """Linear least squares with an optional ridge penalty:

        f(w) = 1/(2n) ||X w - y||^2 + lam/2 ||w||^2
             = 1/n sum_i [ 1/2 (x_i^T w - y_i)^2 + lam/2 ||w||^2 ]

    Data (keys ``"x"`` (n, d), ``"y"`` (n,)): ``y = X w_true + noise * N(0, 1)``
    with ``w_true ~ N(0, I)`` (attribute ``w_true``). ``X`` has i.i.d.
    ``N(0, 1)`` entries, or, with ``condition_number=kappa``, ``X^T X / n``
    has eigenvalues evenly log-spaced in ``[1/kappa, 1]`` (needs ``n >= d``).
    No bias term.

    The minimiser solves the normal equations ``(X^T X / n + lam I) w =
    X^T y / n``; it is computed as the least-squares solution of the stacked
    system ``[X; sqrt(n lam) I] w = [y; 0]``, which is the same equations
    without squaring the condition number. With ``lam = 0`` and ``n < d`` it
    is the minimum-norm minimiser. Attributes ``hessian`` (``X^T X / n + lam
    I``), ``L`` and ``mu`` (its extreme eigenvalues). Params ``{"w": (d,)}``,
    started at ``N(0, I)``.
    """

    def __init__(self, n=100, d=10, noise=0.1, lam=0.0, condition_number=None, seed=0):
        super().__init__()
        where = self.name
        seed = check_int(where, "seed", seed, 0)
        self.n, self.d = check_int(where, "n", n, 1), check_int(where, "d", d, 1)
        self.noise = check_float(where, "noise", noise, 0.0)
        self.lam = check_float(where, "lam", lam, 0.0)
        rng = np.random.default_rng(seed)
        X = _design(where, self.n, self.d, condition_number, rng)
        self.w_true = rng.standard_normal(self.d)
        y = X @ self.w_true + self.noise * rng.standard_normal(self.n)
        self.data = {"x": X, "y": y}
        self.param_shapes = {"w": (self.d,)}
        self.hessian = X.T @ X / self.n + self.lam * np.eye(self.d)
        eig = np.linalg.eigvalsh(self.hessian)
        self.L, self.mu = float(eig[-1]), float(max(eig[0], 0.0))
        self._optimum = None

    def _init(self, rng):
        return {"w": rng.standard_normal(self.d)}

    def _per_example_loss(self, params, batch):
        w = params["w"]
        r = batch["x"] @ w - batch["y"]                          # x_i^T w - y_i
        return 0.5 * r * r + 0.5 * self.lam * ag.sum(w * w)

    # the 'outputs' capability (see problems/base.py), only without the ridge term (_RidgePenalty):
    # z_i = x_i^T w (a (B, 1) column), l(z_i) = 1/2 (z_i - y_i)^2
    def _outputs(self, params, batch):
        return ag.reshape(batch["x"] @ params["w"], (-1, 1))

    def _output_loss(self, outputs, batch):
        r = ag.reshape(outputs, (-1,)) - batch["y"]
        return 0.5 * r * r

    @property
    def optimum(self):
        if self._optimum is None:
            X, y = self.data["x"], self.data["y"]
            if self.lam > 0:
                X = np.vstack([X, np.sqrt(self.n * self.lam) * np.eye(self.d)])
                y = np.concatenate([y, np.zeros(self.d)])
            self._optimum = np.linalg.lstsq(X, y, rcond=None)[0]
        return {"w": self._optimum.copy()}

    @property
    def optimal_value(self):
        w = self.optimum["w"]
        r = self.data["x"] @ w - self.data["y"]
        return float(0.5 * np.mean(r * r) + 0.5 * self.lam * (w @ w))


# --------------------------------------------------------------------------
# logistic and softmax regression
# --------------------------------------------------------------------------

@register("logistic_regression")
class LogisticRegression(_RidgePenalty, Problem):
    """L2-regularised binary logistic regression:

        f(w, b) = 1/n sum_i [ softplus(z_i) - y_i z_i + lam/2 ||w||^2 ],   z_i = x_i^T w + b

    which is the cross-entropy ``-y log sigma(z) - (1 - y) log(1 - sigma(z))``
    written stably. Labels ``y_i`` in ``{0, 1}`` (stored as float64).
    **The bias ``b`` is not regularised** (the usual convention); the optimum
    is unique all the same for ``lam > 0`` (the Hessian ``[X 1]^T D [X 1]/n +
    lam diag(1, ..., 1, 0)`` with ``D = diag(sigma'(z)) > 0`` is positive
    definite), so the default is ``lam = 1e-2``. ``lam = 0`` is allowed, but
    then a minimiser exists only when the classes are not linearly
    separable: ``optimum`` raises ``RuntimeError`` when Newton meets a
    singular Hessian, and on separable data it returns wherever the gradient
    underflowed (large weights), which is no minimiser.

    Data (keys ``"x"`` (n, d), ``"y"`` (n,)): ``x_i ~ N(0, I)`` and
    ``y_i ~ Bernoulli(sigma(x_i^T w_true + b_true))`` with
    ``w_true ~ N(0, 4/d I)`` and ``b_true ~ N(0, 1/4)`` (attributes), so the
    classes overlap; ``n_test`` more examples drawn the same way form
    ``test_data``. ``evaluate`` adds ``accuracy`` (predict 1 where ``z > 0``)
    and, with a test set, ``test_loss`` (the same formula on it) and
    ``test_accuracy``.

    The optimum is computed at first access by Newton's method in float64 on
    the explicit gradient ``[X 1]^T (sigma(z) - y)/n + lam (w, 0)`` and that
    Hessian, to a gradient norm near 1e-13, and cached.
    Params ``{"w": (d,), "b": (1,)}`` (``torch.nn.Linear(d, 1)`` without
    the leading axis on the weight), started like ``torch.nn.Linear``:
    ``U(-1/sqrt(d), 1/sqrt(d))``.
    """

    def __init__(self, n=200, d=5, lam=1e-2, n_test=200, seed=0):
        super().__init__()
        where = self.name
        seed = check_int(where, "seed", seed, 0)
        self.n, self.d = check_int(where, "n", n, 1), check_int(where, "d", d, 1)
        self.n_test = check_int(where, "n_test", n_test, 0)
        self.lam = check_float(where, "lam", lam, 0.0)
        rng = np.random.default_rng(seed)
        self.w_true = rng.standard_normal(self.d) * (2.0 / np.sqrt(self.d))
        self.b_true = 0.5 * rng.standard_normal()
        self.data = self._draw(self.n, rng)
        self.test_data = self._draw(self.n_test, rng) if self.n_test else None
        self.param_shapes = {"w": (self.d,), "b": (1,)}
        self._optimum = None

    def _draw(self, n, rng):
        x = rng.standard_normal((n, self.d))
        p = scipy.special.expit(x @ self.w_true + self.b_true)
        return {"x": x, "y": (rng.random(n) < p).astype(np.float64)}

    def _init(self, rng):
        return _linear_init(rng, self.param_shapes, self.d)

    def _per_example_loss(self, params, batch):
        w, b = params["w"], params["b"]
        z = batch["x"] @ w + b                                                   # (B,)
        data_term = ag.binary_cross_entropy_with_logits(z, batch["y"], reduction="none")  # softplus(z) - y z
        return data_term + 0.5 * self.lam * ag.sum(w * w)

    # the 'outputs' capability (see problems/base.py), only without the ridge term (_RidgePenalty):
    # z_i = x_i^T w + b (a (B, 1) column), l(z_i) = softplus(z_i) - y_i z_i
    def _outputs(self, params, batch):
        return ag.reshape(batch["x"] @ params["w"] + params["b"], (-1, 1))

    def _output_loss(self, outputs, batch):
        return ag.binary_cross_entropy_with_logits(ag.reshape(outputs, (-1,)), batch["y"], reduction="none")

    def _fgh(self, theta, hessian=True):
        """Loss, gradient and Hessian in float64 at ``theta = (w, b)`` (for Newton)."""
        X1 = np.hstack([self.data["x"], np.ones((self.n, 1))])
        y, w = self.data["y"], theta[:-1]
        z = X1 @ theta
        p = scipy.special.expit(z)
        reg = np.append(np.full(self.d, self.lam), 0.0)       # b is not regularised
        f = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * self.lam * (w @ w)
        g = X1.T @ (p - y) / self.n + reg * theta
        if not hessian:
            return f, g, None
        H = (X1.T * (p * (1 - p))) @ X1 / self.n + np.diag(reg)
        return f, g, H

    def _theta_star(self):
        if self._optimum is None:
            self._optimum = _newton(self._fgh, np.zeros(self.d + 1), where=self.name)
        return self._optimum

    @property
    def optimum(self):
        theta = self._theta_star()
        return {"w": theta[:-1].copy(), "b": theta[-1:].copy()}

    @property
    def optimal_value(self):
        return float(self._fgh(self._theta_star(), hessian=False)[0])

    def _accuracy(self, params, data):
        d = self._batch_like(data, params)
        xp = xp_of(d["x"])
        z = d["x"] @ params["w"] + params["b"]
        return _accuracy(z > 0, d["y"] > 0.5, xp)

    def evaluate(self, params):
        out = super().evaluate(params)
        out["accuracy"] = self._accuracy(params, None)
        if self.test_data is not None:
            out["test_loss"] = float(self.loss(params, self.test_data))
            out["test_accuracy"] = self._accuracy(params, self.test_data)
        return out


@register("softmax_regression")
class SoftmaxRegression(Problem):
    """L2-regularised multinomial logistic (softmax) regression with ``K`` classes:

        f(W, b) = 1/n sum_i [ -log softmax(W x_i + b)_{y_i} + lam/2 (||W||_F^2 + ||b||^2) ]

    in PyTorch's linear layout: ``W`` is (K, d), ``b`` is (K,), logits are
    ``x @ W.T + b`` (``torch.nn.Linear(d, K)``). Labels ``y_i`` are int
    class indices.

    **The bias is regularised too**, unlike in ``logistic_regression``:
    softmax is unchanged when the same constant is added to every logit, so
    with ``b`` unpenalised the minimisers form a line ``b* + t 1`` and
    methods that do not preserve ``sum(b)`` (Adam, ...) would drift along it;
    penalising ``b`` makes the optimum unique (the Hessian is at least
    ``lam I``), so ``lam > 0`` is required.

    Data (keys ``"x"`` (n, d), ``"y"`` (n,) int): class means
    ``m_k ~ N(0, separation^2 I)`` (attribute ``means``), labels uniform over
    the classes, ``x_i = m_{y_i} + N(0, I)``; ``n_test`` more examples form
    ``test_data``. ``evaluate`` adds ``accuracy`` (argmax of the logits) and,
    with a test set, ``test_loss`` and ``test_accuracy``.

    The optimum is computed at first access by Newton's method in float64 on
    the explicit gradient ``(P - Y)^T [X 1] / n + lam [W b]`` and Hessian
    (``K (d + 1)`` unknowns, so keep ``K d`` modest), to a gradient norm near
    1e-13, and cached. Params started like ``torch.nn.Linear``:
    ``U(-1/sqrt(d), 1/sqrt(d))``.
    """

    def __init__(self, n=150, d=4, n_classes=3, lam=1e-2, separation=1.0, n_test=150, seed=0):
        super().__init__()
        where = self.name
        seed = check_int(where, "seed", seed, 0)
        self.n, self.d = check_int(where, "n", n, 1), check_int(where, "d", d, 1)
        self.K = check_int(where, "n_classes", n_classes, 2)
        self.n_test = check_int(where, "n_test", n_test, 0)
        self.lam = check_float(where, "lam", lam, 0.0, strict=True)
        self.separation = check_float(where, "separation", separation, 0.0)
        rng = np.random.default_rng(seed)
        self.means = self.separation * rng.standard_normal((self.K, self.d))
        self.data = self._draw(self.n, rng)
        self.test_data = self._draw(self.n_test, rng) if self.n_test else None
        self.param_shapes = {"W": (self.K, self.d), "b": (self.K,)}
        self._optimum = None

    def _draw(self, n, rng):
        y = rng.integers(self.K, size=n)
        return {"x": self.means[y] + rng.standard_normal((n, self.d)), "y": y}

    def _init(self, rng):
        return _linear_init(rng, self.param_shapes, self.d)

    def _per_example_loss(self, params, batch):
        W, b = params["W"], params["b"]
        logits = batch["x"] @ W.T + b                                          # (B, K)
        reg = 0.5 * self.lam * (ag.sum(W * W) + ag.sum(b * b))
        return ag.cross_entropy(logits, batch["y"], reduction="none") + reg

    def _fgh(self, theta, hessian=True):
        """Loss, gradient and Hessian in float64 at ``theta = [W b].ravel()`` (for Newton)."""
        K, d1 = self.K, self.d + 1
        V = theta.reshape(K, d1)                                   # [W b], row k = class k
        X1 = np.hstack([self.data["x"], np.ones((self.n, 1))])
        logits = X1 @ V.T
        lse = scipy.special.logsumexp(logits, axis=1)
        P = np.exp(logits - lse[:, None])
        Y = np.eye(K)[self.data["y"]]
        f = np.mean(lse - logits[np.arange(self.n), self.data["y"]]) + 0.5 * self.lam * (theta @ theta)
        g = ((P - Y).T @ X1 / self.n).ravel() + self.lam * theta
        if not hessian:
            return f, g, None
        # d^2 CE / dV_kj dV_lm = mean_i (P_ik delta_kl - P_ik P_il) x_ij x_im:
        # block-diagonal blocks X1^T diag(P_k) X1 / n minus the outer products of the rows P_ik x_i
        H = np.zeros((K, d1, K, d1))
        for k in range(K):
            H[k, :, k, :] = (X1.T * P[:, k]) @ X1 / self.n
        PX = (P[:, :, None] * X1[:, None, :]).reshape(self.n, K * d1)
        H = H.reshape(K * d1, K * d1) - PX.T @ PX / self.n
        return f, g, H + self.lam * np.eye(K * d1)

    def _theta_star(self):
        if self._optimum is None:
            self._optimum = _newton(self._fgh, np.zeros(self.K * (self.d + 1)), where=self.name)
        return self._optimum

    @property
    def optimum(self):
        V = self._theta_star().reshape(self.K, self.d + 1)
        return {"W": V[:, :-1].copy(), "b": V[:, -1].copy()}

    @property
    def optimal_value(self):
        return float(self._fgh(self._theta_star(), hessian=False)[0])

    def _accuracy(self, params, data):
        d = self._batch_like(data, params)
        xp = xp_of(d["x"])
        logits = d["x"] @ params["W"].T + params["b"]
        return _accuracy(xp.argmax(logits, axis=1), d["y"], xp)

    def evaluate(self, params):
        out = super().evaluate(params)
        out["accuracy"] = self._accuracy(params, None)
        if self.test_data is not None:
            out["test_loss"] = float(self.loss(params, self.test_data))
            out["test_accuracy"] = self._accuracy(params, self.test_data)
        return out


# --------------------------------------------------------------------------
# the lasso (composite: smooth part + prox)
# --------------------------------------------------------------------------

def _soft_threshold(v, t, xp=np):
    """``sign(v) max(|v| - t, 0)``: the prox of ``t ||.||_1``."""
    return xp.sign(v) * xp.maximum(xp.abs(v) - t, 0)


def _lasso_kkt_violation(G, c, lam, w):
    """How far ``w`` is from optimal for ``1/2 w^T G w - c^T w + lam ||w||_1``.

    With ``r = c - G w`` (minus the smooth gradient): ``r_j = lam sign(w_j)``
    where ``w_j != 0`` and ``|r_j| <= lam`` where ``w_j = 0``.
    """
    r = c - G @ w
    on = w != 0
    v_on = np.abs(r[on] - lam * np.sign(w[on])).max(initial=0.0)
    v_off = np.maximum(np.abs(r[~on]) - lam, 0.0).max(initial=0.0)
    return max(v_on, v_off)


def _lasso_solve(G, c, lam, max_sweeps=100_000):
    """Minimise ``1/2 w^T G w - c^T w + lam ||w||_1`` in float64.

    Cyclic coordinate descent (``w_j <- S(c_j - sum_{k != j} G_jk w_k, lam) / G_jj``)
    until no coordinate moves by more than 1e-13; then, on the support ``S``
    and signs ``s`` it found, the optimality conditions are linear,
    ``G_SS w_S = c_S - lam s``, and are solved exactly. The exact solution
    is kept if it satisfies the conditions at least as well.
    """
    d = c.size
    w = np.zeros(d)
    for _ in range(max_sweeps):
        largest_move = 0.0
        for j in range(d):
            if G[j, j] == 0:
                continue
            rho = c[j] - G[j] @ w + G[j, j] * w[j]
            new = _soft_threshold(rho, lam) / G[j, j]
            largest_move = max(largest_move, abs(new - w[j]))
            w[j] = new
        if largest_move <= 1e-13 * max(1.0, np.abs(w).max()):
            break
    S = w != 0
    if S.any():
        exact = np.zeros(d)
        try:
            exact[S] = scipy.linalg.cho_solve(scipy.linalg.cho_factor(G[np.ix_(S, S)]), c[S] - lam * np.sign(w[S]))
        except (np.linalg.LinAlgError, ValueError):
            exact = None
        if exact is not None and np.array_equal(np.sign(exact), np.sign(w)) and \
                _lasso_kkt_violation(G, c, lam, exact) <= _lasso_kkt_violation(G, c, lam, w):
            w = exact
    return w


@register("lasso")
class Lasso(Problem):
    """The lasso (Tibshirani, 1996), a composite problem ``smooth + lam ||w||_1``:

        objective(w) = 1/(2n) ||X w - y||^2 + lam ||w||_1

    **The oracle sees the smooth part only**: ``loss``, ``oracle``,
    per-sample gradients and ``optimal_value`` are those of

        f(w) = 1/(2n) ||X w - y||^2 = 1/n sum_i 1/2 (x_i^T w - y_i)^2,

    the part a proximal method differentiates, and the L1 term is handled by

    * ``prox(params, step)``: soft-thresholding ``sign(w) max(|w| - step lam, 0)``,
      the prox of ``step * lam ||.||_1``; returns a new dict (the input is not
      mutated), dtype and device preserved;
    * ``objective(params, batch=None)``: the full objective, a 0-d array.

    ``optimum`` minimises the full objective (it is *not* a stationary point
    of ``loss``; it satisfies ``prox(w* - s grad f(w*), s) = w*`` for every
    ``s > 0``); ``optimal_value`` is ``f(w*)`` (smooth part) and
    ``optimal_objective`` the full objective there. It is computed at first
    access by coordinate descent and an exact solve on the support found (see
    :func:`_lasso_solve`), in float64, checked against the optimality
    conditions, and cached.

    Data (keys ``"x"`` (n, d), ``"y"`` (n,)): ``X`` i.i.d. ``N(0, 1)``,
    ``y = X w_true + noise * N(0, 1)`` with ``w_true`` (attribute) having
    ``n_nonzero`` nonzero entries at random places, of random sign and size
    in ``[1, 2]``. ``lam > 0`` (use ``least_squares`` for ``lam = 0``).
    ``evaluate`` adds ``objective`` and ``nnz`` (nonzero coordinates).
    Params ``{"w": (d,)}``, started at ``N(0, I)``.
    """

    def __init__(self, n=50, d=20, n_nonzero=5, noise=0.1, lam=0.1, seed=0):
        super().__init__()
        where = self.name
        seed = check_int(where, "seed", seed, 0)
        self.n, self.d = check_int(where, "n", n, 1), check_int(where, "d", d, 1)
        self.n_nonzero = check_int(where, "n_nonzero", n_nonzero, 0)
        if self.n_nonzero > self.d:
            raise ValueError(f"{where}: n_nonzero must be <= d = {self.d}, got {n_nonzero!r}")
        self.noise = check_float(where, "noise", noise, 0.0)
        self.lam = check_float(where, "lam", lam, 0.0, strict=True)
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((self.n, self.d))
        self.w_true = np.zeros(self.d)
        support = rng.choice(self.d, size=self.n_nonzero, replace=False)
        self.w_true[support] = rng.choice([-1.0, 1.0], size=self.n_nonzero) * rng.uniform(1.0, 2.0, self.n_nonzero)
        y = X @ self.w_true + self.noise * rng.standard_normal(self.n)
        self.data = {"x": X, "y": y}
        self.param_shapes = {"w": (self.d,)}
        self._optimum = None

    def _init(self, rng):
        return {"w": rng.standard_normal(self.d)}

    def _per_example_loss(self, params, batch):
        r = batch["x"] @ params["w"] - batch["y"]    # x_i^T w - y_i
        return 0.5 * r * r                           # smooth part only; lam ||w||_1 is in prox/objective

    def prox(self, params, step):
        """``prox_{step lam ||.||_1}(params)``: soft-thresholding at ``step * lam`` (a new dict)."""
        self.check_params(params)
        if isinstance(step, (int, float)) and not step >= 0:
            raise ValueError(f"{self.name}.prox: step must be >= 0, got {step!r}")
        w = params["w"]
        xp = xp_of(w)
        t = xp.asarray(step * self.lam, dtype=w.dtype)
        return {"w": _soft_threshold(w, t, xp)}

    def objective(self, params, batch=None):
        """The full objective ``f(w) + lam ||w||_1`` on ``batch`` (default: all data), a 0-d array."""
        w = params["w"]
        xp = xp_of(w)
        return self.loss(params, batch) + xp.asarray(self.lam, dtype=w.dtype) * xp.sum(xp.abs(w))

    @property
    def optimum(self):
        if self._optimum is None:
            X, y = self.data["x"], self.data["y"]
            G, c = X.T @ X / self.n, X.T @ y / self.n
            w = _lasso_solve(G, c, self.lam)
            violation = _lasso_kkt_violation(G, c, self.lam, w)
            if violation > 1e-10:
                raise RuntimeError(f"{self.name}: the computed optimum violates the optimality conditions "
                                   f"by {violation:.3e}")
            self._optimum = w
        return {"w": self._optimum.copy()}

    @property
    def optimal_value(self):
        r = self.data["x"] @ self.optimum["w"] - self.data["y"]
        return float(0.5 * np.mean(r * r))

    @property
    def optimal_objective(self):
        return self.optimal_value + self.lam * float(np.abs(self.optimum["w"]).sum())

    def evaluate(self, params):
        out = super().evaluate(params)
        out["objective"] = float(self.objective(params))
        out["nnz"] = int((params["w"] != 0).sum())
        return out
