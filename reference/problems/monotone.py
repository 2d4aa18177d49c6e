"""Finite-sum monotone inclusion problems: convex-concave quadratic min-max games.

A min-max problem ``min_x max_y Phi(x, y)`` with ``Phi`` convex in ``x`` and
concave in ``y`` is the monotone inclusion ``0 = F(u)`` for the operator

    F(u) = ( grad_x Phi(x, y), -grad_y Phi(x, y) ),    u = (x, y),

whose zeros are the saddle points. Here ``Phi = 1/n sum_i Phi_i`` is a finite
sum, so ``F = 1/n sum_i F_i`` too: the setting of variance-reduced operator
methods (``reference.optim.vr_halpern``).

As a :class:`~reference.problems.base.Problem` the *loss* is ``Phi`` itself
(its gradient is zero at the saddle point, which is the ``optimum``; the
minimisation contract tests apply unchanged). What operator methods use is

* ``operator(params, batch=None)``: ``F`` on a batch (``{"x": grad_x Phi_S,
  "y": -grad_y Phi_S}``, computed from the oracle's gradients), and
* ``residual(params)``: ``||F(u)||`` on all data, a Python float (the
  "operator norm residual" of the paper).

The keys whose gradient is negated are listed in ``ascent_keys``.
"""
from __future__ import annotations

import numpy as np

from .. import autograd as ag
from .. import tree
from . import register
from .base import Problem, check_float, check_int

__all__ = ["QuadraticGame", "BilinearGame"]


@register("quadratic_game")
class QuadraticGame(Problem):
    """A finite-sum convex-concave quadratic game, strongly monotone when ``mu > 0``:

        Phi_i(x, y) = mu/2 ||x||^2 + x^T B_i y - mu/2 ||y||^2 + a_i^T x - c_i^T y

        F_i(u) = M_i u + r_i,   M_i = [[mu I, B_i], [-B_i^T, mu I]],   r_i = (a_i, c_i)

    and ``F = M u + r`` with the means ``M``, ``r``. The saddle point is
    ``u* = -M^{-1} r`` (closed form; ``optimum``), ``Phi(u*)`` the
    ``optimal_value``.

    Data, drawn from ``seed`` in this order: ``B_bar`` (``dim_x x dim_y``,
    entries ``N(0, 1/dim_y)``), then per example ``B_i = B_bar + spread E_i``
    (``E_i`` like ``B_bar``), ``a_i ~ N(0, I)``, ``c_i ~ N(0, I)`` (data keys
    ``"B"`` (n, dim_x, dim_y), ``"a"``, ``"c"``). ``spread`` sets how far the
    components are from their mean, i.e. how much variance reduction matters.

    Constants (float64 attributes), with ``d = u - v``:

    * ``lipschitz``: ``||M||``, the Lipschitz constant of ``F``;
    * ``avg_lipschitz``: ``L`` with ``E_i ||F_i(u) - F_i(v)||^2 <= L^2 ||d||^2``,
      i.e. ``sqrt(lambda_max(mean_i M_i^T M_i))`` ("Lipschitz on average");
    * ``cocoercive``: ``L`` with ``||F(u) - F(v)||^2 <= L <F(u) - F(v), d>``,
      i.e. ``lambda_max(M^T M) / mu`` (``<M d, d> = mu ||d||^2``);
    * ``avg_cocoercive``: ``L`` with ``E_i ||F_i(u) - F_i(v)||^2 <= L <F(u) - F(v), d>``,
      i.e. ``lambda_max(mean_i M_i^T M_i) / mu`` ("cocoercive on average", the
      assumption of the paper's cocoercive setting);

    the cocoercive ones are ``inf`` when ``mu = 0`` (the game is then
    monotone and Lipschitz but not cocoercive). Params ``{"x": (dim_x,),
    "y": (dim_y,)}``, started at ``N(0, I)``.
    """

    ascent_keys = ("y",)

    def __init__(self, n=1000, dim_x=10, dim_y=10, mu=0.1, spread=1.0, seed=0):
        super().__init__()
        where = self.name
        seed = check_int(where, "seed", seed, 0)
        self.n = check_int(where, "n", n, 1)
        self.dim_x = check_int(where, "dim_x", dim_x, 1)
        self.dim_y = check_int(where, "dim_y", dim_y, 1)
        self.mu = check_float(where, "mu", mu, 0.0)
        self.spread = check_float(where, "spread", spread, 0.0)
        if self.mu == 0.0 and self.dim_x != self.dim_y:
            raise ValueError(f"{where}: with mu = 0 the saddle point is unique only if dim_x == dim_y, "
                             f"got {self.dim_x} and {self.dim_y}")
        rng = np.random.default_rng(seed)
        dx, dy = self.dim_x, self.dim_y
        self.B_bar = rng.standard_normal((dx, dy)) / np.sqrt(dy)
        B = self.B_bar + self.spread * rng.standard_normal((self.n, dx, dy)) / np.sqrt(dy)
        self.data = {"B": B, "a": rng.standard_normal((self.n, dx)), "c": rng.standard_normal((self.n, dy))}
        self.param_shapes = {"x": (dx,), "y": (dy,)}
        self._constants()

    def _component_matrices(self):
        dx, dy = self.dim_x, self.dim_y
        Ms = np.zeros((self.n, dx + dy, dx + dy))
        Ms[:, :dx, :dx] = self.mu * np.eye(dx)
        Ms[:, dx:, dx:] = self.mu * np.eye(dy)
        Ms[:, :dx, dx:] = self.data["B"]
        Ms[:, dx:, :dx] = -np.transpose(self.data["B"], (0, 2, 1))
        return Ms

    def _constants(self):
        Ms = self._component_matrices()
        self.M = Ms.mean(axis=0)
        self.r = np.concatenate([self.data["a"].mean(axis=0), self.data["c"].mean(axis=0)])
        second = np.einsum("nji,njk->ik", Ms, Ms) / self.n                 # mean_i M_i^T M_i
        lam_avg = float(np.linalg.eigvalsh(0.5 * (second + second.T)).max())
        lam = float(np.linalg.eigvalsh(self.M.T @ self.M).max())
        self.lipschitz = float(np.sqrt(lam))
        self.avg_lipschitz = float(np.sqrt(lam_avg))
        self.cocoercive = lam / self.mu if self.mu > 0 else np.inf
        self.avg_cocoercive = lam_avg / self.mu if self.mu > 0 else np.inf

    def _init(self, rng):
        return {"x": rng.standard_normal(self.dim_x), "y": rng.standard_normal(self.dim_y)}

    def _per_example_loss(self, params, batch):
        x, y = params["x"], params["y"]
        coupling = ag.sum(x * (batch["B"] @ y), axis=1)                    # x^T B_i y
        return (0.5 * self.mu * (ag.sum(x * x) - ag.sum(y * y)) + coupling
                + batch["a"] @ x - batch["c"] @ y)

    # ---- the operator view -------------------------------------------------------------
    def operator(self, params, batch=None):
        """``F = (grad_x Phi, -grad_y Phi)`` on ``batch`` (default: all data), a params-like dict.

        In closed form (``F_S(u) = mean_{i in S} (M_i u + r_i)``), which is much
        faster than the autodiff oracle for the many small batches of operator
        methods; a test checks it against the oracle's gradient with the ``y``
        part negated. Dtype and device follow the params.
        """
        self.check_params(params)
        self.check_batch(batch)
        d = self._batch_like(batch, params)
        x, y = params["x"], params["y"]
        B = d["B"]
        fx = self.mu * x + (B @ y).mean(axis=0) + d["a"].mean(axis=0)      # grad_x Phi_S
        fy = self.mu * y - (x @ B).mean(axis=0) + d["c"].mean(axis=0)      # -grad_y Phi_S
        return {"x": fx, "y": fy}

    def residual(self, params):
        """``||F(u)||`` on all data as a Python float (the optimality measure)."""
        return float(tree.global_norm(self.operator(params)))

    @property
    def optimum(self):
        u = -np.linalg.solve(self.M, self.r)
        return {"x": u[:self.dim_x].copy(), "y": u[self.dim_x:].copy()}

    @property
    def optimal_value(self):
        return float(self.loss(self.optimum))

    def evaluate(self, params):
        out = super().evaluate(params)
        out["residual"] = self.residual(params)
        return out


@register("bilinear_game")
class BilinearGame(QuadraticGame):
    """:class:`QuadraticGame` with ``mu = 0``: the finite-sum bilinear game

        Phi_i(x, y) = x^T B_i y + a_i^T x - c_i^T y,   dim_x = dim_y = dim,

    monotone and Lipschitz but not cocoercive (``F`` is a rotation plus a
    shift: plain forward steps spiral outwards). Saddle point
    ``(x*, y*) = (B_bar^{-T} c_bar, -B_bar^{-1} a_bar)``.
    """

    def __init__(self, n=1000, dim=10, spread=1.0, seed=0):
        super().__init__(n=n, dim_x=dim, dim_y=dim, mu=0.0, spread=spread, seed=seed)
