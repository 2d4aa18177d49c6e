"""Nonconvex test functions and models: Rosenbrock, Beale, Rastrigin, matrix
sensing, phase retrieval, scalar networks and deep linear networks."""
from __future__ import annotations

import numpy as np

from .. import autograd as ag
from . import register
from .base import Problem


@register("rosenbrock")
class Rosenbrock(Problem):
    """The Rosenbrock valley in ``dim`` dimensions (Rosenbrock, 1960):

        f(w) = sum_{i<d} b (w_{i+1} - w_i^2)^2 + (a - w_i)^2

    Minimum ``0`` at ``w = (a, a^2, ...)`` which is ``(1, ..., 1)`` for the
    default ``a = 1``, ``b = 100``. The default start is the classic
    ``(-1.2, 1, -1.2, 1, ...)``; ``init(seed)`` adds ``jitter`` * N(0, 1) to it
    so different seeds start at nearby points.
    Params: ``{"w": (dim,)}``.
    """

    def __init__(self, dim=2, a=1.0, b=100.0, jitter=0.0):
        super().__init__()
        if int(dim) < 2:
            raise ValueError(f"rosenbrock: dim must be >= 2, got {dim}")
        self.dim_, self.a, self.b, self.jitter = int(dim), float(a), float(b), float(jitter)
        self.param_shapes = {"w": (self.dim_,)}
        self.seeded_init = self.jitter > 0

    def _init(self, rng):
        start = np.tile([-1.2, 1.0], self.dim_)[: self.dim_]
        return {"w": start + self.jitter * rng.standard_normal(self.dim_)}

    def _loss(self, params, batch):
        w = params["w"]
        return ag.sum(self.b * (w[1:] - w[:-1] ** 2) ** 2 + (self.a - w[:-1]) ** 2)

    @property
    def optimum(self):
        # with a = 1 every term vanishes at w = 1; for other a the terms conflict when dim > 2
        return {"w": np.ones(self.dim_)} if self.a == 1.0 else None

    @property
    def optimal_value(self):
        return 0.0 if self.a == 1.0 else None
