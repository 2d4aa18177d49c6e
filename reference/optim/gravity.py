"""Gravity Optimizer: a Kinematic Approach on Optimization in Deep Learning.

Dariush Bahrami and Sadegh Pouriyan Zadeh. 2021. arXiv:2101.09192

The paper pictures a ball rolling on the loss surface under gravity: along
a slope of angle phi the acceleration is proportional to ``sin(phi) cos(phi)
= tan(phi) / (1 + tan^2(phi))``, so a gentle slope pulls the ball in
proportion to the gradient, while a cliff (a very large gradient) pulls it
*less*, never more than half the gravitational constant. Gravity uses that
shape on each tensor, with the tensor's largest gradient setting the scale
(its ``M = 1 / max|g|``), keeps a velocity ``V`` as an exponential moving
average of it, and steps along the velocity (the paper's Algorithm 1):

    M_t     = 1 / max_i |g_t,i|                       (one number per tensor)
    zeta_t  = g_t / (1 + (g_t / M_t)^2)
    beta_t  = (beta t + 1) / (t + 2)                    (the "alternative moving average")
    V_t     = beta_t V_{t-1} + (1 - beta_t) zeta_t
    w_t     = w_{t-1} - l V_t

with ``V_0`` drawn from ``N(0, (alpha / l)^2)``. ``beta_t`` starts at
``(beta + 1)/3`` (0.63 for beta = 0.9, so the first steps follow the newest
gradients closely) and tends to ``beta``: the paper proposes it in place of
bias correction. Note that ``|zeta| <= |g|`` and ``|zeta| <= 1 / (2 max|g|)``:
a gradient spike shrinks the step instead of growing it.

Defaults (the paper's proposed values and the official code's): l = lr =
0.1, alpha = 0.01, beta = 0.9. (The peer pytorch_optimizer.Gravity defaults
to lr = 0.01.)

Conventions:

* ``V_0``: the only randomness. It is drawn in ``init`` from
  ``numpy.random.default_rng(seed)`` with the hyperparameter ``seed``
  (default 0), one tensor after another in key order, in float64 and then
  cast to the params' dtype and device; the state holds ``V`` itself, so a
  resumed run is bit-identical. ``alpha = 0`` starts from ``V_0 = 0``. The
  golden file gives the peer the same ``V_0``.
* ``alpha / l`` uses the initial learning rate when ``lr`` is a schedule.
* ``g / M_t`` is computed as ``g * max|g|`` (no division), so a tensor whose
  gradient is all zero gets ``zeta = 0`` as in the official code (where
  ``1 / M_t = inf`` and ``0 / inf = 0``).
"""
from __future__ import annotations

import numpy as np

from ..backend import fuse, xp_of
from .base import Optimizer, check_range, hparam_value, register


@fuse
def velocity_kernel(w, v, g, g_max, lr, beta_t):
    """``zeta = g / (1 + (g max|g|)^2)``, ``V = beta_t V + (1 - beta_t) zeta``, ``w - lr V``."""
    gm = g * g_max                    # g / M_t with M_t = 1 / max|g|
    zeta = g / (1.0 + gm * gm)
    v = beta_t * v + (1.0 - beta_t) * zeta
    return w - lr * v, v


def initial_velocity(params, std, seed):
    """``V_0 ~ N(0, std^2)`` per tensor, drawn in key order from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    out = {}
    for k in sorted(params):
        p = params[k]
        draw = rng.normal(0.0, std, size=p.shape) if std > 0 else np.zeros(p.shape)
        out[k] = xp_of(p).asarray(draw.astype(p.dtype))
    return {k: out[k] for k in params}


@register("gravity")
class Gravity(Optimizer):
    paper = dict(title="Gravity Optimizer: a Kinematic Approach on Optimization in Deep Learning",
                 authors="Bahrami, Zadeh", year=2021, arxiv="2101.09192", family="optimizer-first-order")
    defaults = dict(lr=0.1, alpha=0.01, beta=0.9, seed=0)
    # On Rosenbrock from (-1.2, 1) the gradient is (-215, -88): g * max|g| ~ 5e4, so zeta ~ g / (g max|g|)^2
    # ~ 1e-7 and lr = 0.1 moves ~1e-8 per step (the random V_0 dominates). That is Gravity's damping of
    # large gradients at work; only a huge lr (1000) makes it descend within 200 steps.
    descent_hparams = {"rosenbrock": dict(lr=1000.0)}

    def check(self, hp):
        super().check(hp)
        check_range("alpha", hp["alpha"], 0.0, where=self.name)
        check_range("beta", hp["beta"], 0.0, 1.0, where=self.name)
        seed = hp["seed"]
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"{self.name}: seed must be an int >= 0, got {seed!r}")

    def init_slots(self, params):
        hp = self.hparams
        std = hp["alpha"] / hparam_value(hp["lr"], 0)
        return {"velocity": initial_velocity(params, std, int(hp["seed"]))}

    def update(self, params, grads, state, t, hp):
        beta_t = (hp["beta"] * t + 1.0) / (t + 2.0)
        new_w, new_v = {}, {}
        for k in params:
            g = grads[k]
            g_max = xp_of(g).abs(g).max()     # 0-d array on the device: 1 / M_t
            new_w[k], new_v[k] = velocity_kernel(params[k], state["velocity"][k], g, g_max, hp["lr"], beta_t)
        return new_w, {"velocity": new_v}
