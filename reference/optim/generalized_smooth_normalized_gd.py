"""Generalized-Smooth Nonconvex Optimization is As Efficient As Smooth Nonconvex Optimization.

Ziyi Chen, Yi Zhou, Yingbin Liang, Zhaosong Lu. ICML 2023. arXiv:2303.02854

Many losses are not L-smooth: the curvature of ``x^4`` or ``exp(x)`` grows
with the gradient. The paper's class of *alpha-symmetric generalized-smooth*
functions,

    ||grad f(x) - grad f(y)|| <= (L0 + L1 max_{theta in [0,1]} ||grad f(x_theta)||^alpha) ||x - y||,
    x_theta = theta x + (1 - theta) y,   alpha in [0, 1],

contains high-order polynomials and exponentials (alpha = 0 is L-smoothness,
alpha = 1 contains the (L0, L1)-smooth functions of gradient clipping). A
fixed gradient step that is safe where the gradient is small overshoots where
it is large; the paper's deterministic method normalises the step by a power
of the gradient norm (*beta-normalized gradient descent*):

    x_{t+1} = x_t - gamma grad f(x_t) / ||grad f(x_t)||^beta,     beta in [alpha, 1],

and with ``gamma`` chosen from ``(L0, L1, eps)`` (its Theorem) it reaches
``||grad f|| <= eps`` in ``O(eps^{-2})`` iterations, the optimal complexity of
smooth nonconvex optimization. ``beta = 0`` is gradient descent; ``beta = 1``
is normalized GD (a step of constant length ``gamma``). (The paper's
stochastic method, SPIDER with normalized steps, is not implemented here.)

Conventions (the choices made, and why):

* ``||.||`` is the Euclidean norm of the *whole* parameter vector (all keys
  together), as ``x`` is one vector in the paper.
* A zero gradient gives a zero step (``0 / 0`` read as 0): ``x`` is then
  stationary. For ``beta = 0`` the division is skipped (``||g||^0 = 1``).
* ``lr`` is the paper's ``gamma``; its theorem's choice depends on the
  unknown ``L0, L1`` and on the target ``eps`` and is left to the user.
  Defaults ``lr = 0.01, beta = 1`` (ours; ``beta = 1`` covers every
  ``alpha`` in ``[0, 1]``).
"""
from __future__ import annotations

from .. import tree
from ..backend import xp_of
from .base import Optimizer, check_range, register

__all__ = ["GeneralizedSmoothNormalizedGD"]


@register("generalized_smooth_normalized_gd")
class GeneralizedSmoothNormalizedGD(Optimizer):
    paper = dict(title="Generalized-Smooth Nonconvex Optimization is As Efficient As Smooth Nonconvex "
                       "Optimization", authors="Chen, Zhou, Liang, Lu", year=2023, arxiv="2303.02854",
                 family="optimizer-first-order")
    defaults = dict(lr=0.01, beta=1.0)

    def check(self, hp):
        super().check(hp)
        check_range("beta", hp["beta"], 0.0, 1.0, where=self.name)

    def update(self, params, grads, state, t, hp):
        beta = hp["beta"]
        if beta == 0.0:
            return tree.axpy(-hp["lr"], grads, params), {}                 # plain gradient descent
        norm = tree.global_norm(grads)                                      # ||grad f(x_t)|| (0-d array)
        xp = xp_of(norm)
        safe = xp.where(norm > 0, norm, xp.ones_like(norm))
        scale = xp.where(norm > 0, hp["lr"] / safe ** beta, xp.zeros_like(norm))   # gamma / ||g||^beta
        return tree.zip_map(lambda w, g: w - (scale * g).astype(w.dtype), params, grads), {}
