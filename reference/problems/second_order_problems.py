"""Problems where curvature matters, for the second-order optimizers.

* ``quartic_saddle``: the classical saddle of Dauphin et al. / Pascanu et al.
  (their Figure 2 uses ``5x^2 - y^2``) made bounded below by a quartic,

      f(x, y) = a x^2 - y^2 + y^4 / 4,

  with a strict saddle at the origin (Hessian ``diag(2a, -2)``) and two
  minima ``(0, +-sqrt(2))`` of value ``-1``. ``init(seed)`` starts next to
  the saddle's stable manifold: ``x0 = +-U(0.5, 1.5)``, ``y0 = y_scale *
  N(0, 1)`` (default ``y_scale = 1e-4``), where gradient descent first
  slides down to the saddle and only then, slowly, leaves it, and Newton's
  method is attracted to it. Settings: ``a`` (default 5), ``y_scale``.
  Params ``{"w": (2,)}`` = ``(x, y)``; ``optimum`` is ``(0, sqrt(2))``.

* ``badly_scaled_quadratic``: a separable quadratic whose coordinates have
  natural scales ``s_i`` spread over orders of magnitude (badly scaled
  features),

      f(w) = 1/2 sum_i (w_i - c_i)^2 / s_i^2,   s = geomspace(1/scale_range^(1/2), scale_range^(1/2), dim),

  with ``c_i = s_i N(0, 1)`` (each coordinate's distance to the optimum is
  of the order of its own scale) and the start ``w = 0`` plus
  ``jitter * s_i N(0, 1)`` (``init(seed)``). Its Hessian is diagonal,
  ``diag(1/s^2)``, with condition number ``scale_range^2``; a method that
  scales each coordinate by its curvature sees a perfectly conditioned
  problem, a method that scales by a common step size or by the gradient's
  magnitude does not. Settings: ``dim`` (default 10), ``scale_range``
  (default 1e4: scales from 1e-2 to 1e2), ``jitter`` (default 0), ``seed``
  (the centre's seed). Params ``{"w": (dim,)}``; ``optimum`` is ``c``, value 0.
"""
from __future__ import annotations

import math

import numpy as np

from .. import autograd as ag
from . import register
from .base import Problem


def _positive(where, name, value, strict=True, allow_zero=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and strict and not allow_zero):
        raise ValueError(f"{where}: {name} must be a finite number {'> 0' if strict else '>= 0'}, got {value!r}")
    return v


@register("quartic_saddle")
class QuarticSaddle(Problem):
    """``f(x, y) = a x^2 - y^2 + y^4 / 4``: a strict saddle at 0, minima ``(0, +-sqrt 2)``; see the module."""

    def __init__(self, a=5.0, y_scale=1e-4):
        super().__init__()
        self.a = _positive(self.name, "a", a)
        self.y_scale = _positive(self.name, "y_scale", y_scale, strict=False)
        self.param_shapes = {"w": (2,)}

    def _init(self, rng):
        x0 = rng.uniform(0.5, 1.5) * rng.choice([-1.0, 1.0])
        return {"w": np.array([x0, self.y_scale * rng.standard_normal()])}

    def _loss(self, params, batch):
        w = params["w"]
        x, y = w[0], w[1]
        return self.a * x * x - y * y + 0.25 * y ** 4

    @property
    def optimum(self):
        return {"w": np.array([0.0, math.sqrt(2.0)])}

    @property
    def optimal_value(self):
        return -1.0


@register("badly_scaled_quadratic")
class BadlyScaledQuadratic(Problem):
    """``f(w) = 1/2 sum_i (w_i - c_i)^2 / s_i^2`` with scales ``s_i`` over orders of magnitude; see the module."""

    def __init__(self, dim=10, scale_range=1e4, jitter=0.0, seed=0):
        super().__init__()
        where = self.name
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"{where}: dim must be an integer >= 1, got {dim!r}")
        self.dim_ = int(dim)
        self.scale_range = _positive(where, "scale_range", scale_range)
        if self.scale_range < 1:
            raise ValueError(f"{where}: scale_range must be >= 1, got {scale_range!r}")
        self.jitter = _positive(where, "jitter", jitter, strict=False)
        root = math.sqrt(self.scale_range)
        self.scales = np.geomspace(1.0 / root, root, self.dim_) if self.dim_ > 1 else np.ones(1)
        self.center = self.scales * np.random.default_rng(seed).standard_normal(self.dim_)
        self.hessian_diagonal = 1.0 / self.scales ** 2
        self.param_shapes = {"w": (self.dim_,)}
        self.seeded_init = self.jitter > 0

    def _init(self, rng):
        return {"w": self.jitter * self.scales * rng.standard_normal(self.dim_)}

    def _loss(self, params, batch):
        r = params["w"] - self._const(self.center, params)
        return 0.5 * ag.sum(self._const(self.hessian_diagonal, params) * r * r)

    @property
    def optimum(self):
        return {"w": self.center.copy()}

    @property
    def optimal_value(self):
        return 0.0
