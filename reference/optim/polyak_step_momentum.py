"""Generalized Polyak Step Size for First Order Optimization with Momentum.

Xiaoyu Wang, Mikael Johansson, Tong Zhang. ICML 2023. arXiv:2305.12939

The Polyak step size ``(f(x) - f*) / ||g||^2`` is the step that minimises the
convexity upper bound on the next distance to a minimiser,

    ||x - a g - x*||^2 <= ||x - x*||^2 - 2 a (f(x) - f*) + a^2 ||g||^2.

The paper applies the same principle to methods with momentum, which makes
them far less sensitive to the momentum parameter ``beta`` (the fixed-step
heavy ball oscillates or diverges on ill-conditioned problems when ``beta``
and the step do not match).

**ALR-HB** (registered as ``alr_hb``; deterministic, catalogued under this
paper): for the heavy ball ``x_{t+1} = x_t - a_t g_t + beta (x_t - x_{t-1})``,

    ||x_{t+1} - x*||^2 = ||x_t - x* + beta (x_t - x_{t-1})||^2
                         - 2 a_t <g_t, x_t - x* + beta (x_t - x_{t-1})> + a_t^2 ||g_t||^2,

and convexity, ``<g_t, x_t - x*> >= f(x_t) - f*``, bounds the only term that
depends on ``a_t`` and on ``x*``; minimising the bound over ``a_t >= 0`` gives

    a_t = [f(x_t) - f* + beta <g_t, x_t - x_{t-1}>]_+ / ||g_t||^2

(``x_0 = x_{-1}``, so the first step is the Polyak step; ``beta = 0`` is the
Polyak step every step).

**ALR-SMAG** (registered as ``polyak_step_momentum``; the stochastic method
for training): SGD with the moving-average gradient ("SMAG")
``d_t = beta d_{t-1} + g_t`` (a sum, not an average: no ``1 - beta``) and the
capped stochastic Polyak step on it, with the batch loss ``f(x_t; xi_t)``, a
lower bound ``f*_xi`` of every batch loss (0 for nonnegative losses: the
interpolation setting) and a scaling constant ``c``:

    d_t     = beta d_{t-1} + g_t,           d_0 = 0
    eta_t   = min{ eta_max, (f(x_t; xi_t) - f*_xi) / (c ||d_t||^2) }
    x_{t+1} = x_t - eta_t d_t

Hyperparameters: ``lr`` is ``eta_max``, ``lower_bound`` is ``f*`` (``f*_xi``),
``c`` and ``beta`` the paper's. Defaults ``lr=0.1``, ``beta=0.9``, ``c=1``,
``lower_bound=0`` (those of F. Schaipp's reimplementation used as a baseline
in the MoMo experiments; the paper tunes ``c`` and ``eta_max`` per task).

Conventions and sources: only the paper's abstract and derivation principle
could be read here, not its algorithm boxes. ALR-HB is derived above from that
principle (it matches the formula in this project's paper notes); ALR-SMAG
follows two independent public reimplementations that agree on it (Schaipp's,
in the MoMo authors' experiment code, and one in a bundle-method
benchmark). Numerator clipped at 0 (a loss below the assumed bound gives a
zero step, not an ascent step); a zero gradient/momentum gives a zero step.
Scalars stay 0-d arrays on the device (no host synchronisation).
"""
from __future__ import annotations

from .. import tree
from ..backend import xp_of
from .base import Optimizer, check_grads, check_range, register


def _as_scalar(value, like):
    """A loss (Python float, NumPy scalar, 0-d array) as a 0-d array of ``like``'s dtype."""
    return xp_of(like).asarray(value).astype(like.dtype).reshape(())


def _safe_ratio(numerator, denominator, cap):
    """``min(cap, numerator / denominator)``, and 0 when ``denominator == 0`` (then nothing moves)."""
    xp = xp_of(numerator)
    positive = denominator > 0
    ratio = xp.where(positive, numerator / xp.where(positive, denominator, 1.0), 0.0)
    return ratio if cap is None else xp.minimum(ratio, cap)


@register("polyak_step_momentum")
class ALRSMAG(Optimizer):
    """ALR-SMAG: stochastic moving-average-gradient SGD with a capped Polyak step size."""
    paper = dict(title="Generalized Polyak Step Size for First Order Optimization with Momentum",
                 authors="Wang, Johansson, Zhang", year=2023, arxiv="2305.12939",
                 family="optimizer-first-order")
    defaults = dict(lr=0.1, beta=0.9, c=1.0, lower_bound=0.0)
    negative_ok = ("lower_bound",)

    def check(self, hp):
        super().check(hp)
        check_range("beta", hp["beta"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("c", hp["c"], 0.0, low_open=True, where=self.name)
        check_range("lower_bound", hp["lower_bound"], where=self.name)

    def init_slots(self, params):
        return {"d": tree.zeros_like(params)}

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        loss, grads = oracle(params)
        check_grads(self.name, params, grads, t)
        hp = self.hparams_at(t)
        d = tree.axpy(hp["beta"], state["d"], grads)                            # d_t = beta d_{t-1} + g_t
        f = _as_scalar(loss, next(iter(params.values())))
        excess = xp_of(f).maximum(f - hp["lower_bound"], 0.0)                   # (f(x_t; xi_t) - f*)_+
        eta = _safe_ratio(excess, hp["c"] * tree.vdot(d, d), hp["lr"])          # min(eta_max, . / (c ||d||^2))
        return tree.axpy(-eta, d, params), {"step": t, "d": d}


@register("alr_hb")
class ALRHB(Optimizer):
    """ALR-HB: the heavy ball with the generalized Polyak step (deterministic; same paper)."""
    defaults = dict(beta=0.9, lower_bound=0.0)
    scheduled = ()
    negative_ok = ("lower_bound",)

    def check(self, hp):
        check_range("beta", hp["beta"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("lower_bound", hp["lower_bound"], where=self.name)

    def init_slots(self, params):
        return {"previous": tree.copy(params)}                                  # x_{t-1}, x_0 = x_{-1}

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        loss, grads = oracle(params)
        check_grads(self.name, params, grads, t)
        beta = self.hparams["beta"]
        xp = xp_of(next(iter(params.values())))
        f = _as_scalar(loss, next(iter(params.values())))
        velocity = tree.sub(params, state["previous"])                          # x_t - x_{t-1}
        numerator = xp.maximum(f - self.hparams["lower_bound"] + beta * tree.vdot(grads, velocity), 0.0)
        alpha = _safe_ratio(numerator, tree.vdot(grads, grads), None)           # a_t
        new = tree.zip_map(lambda x, g, v: x - alpha * g + beta * v, params, grads, velocity)
        return new, {"step": t, "previous": tree.copy(params)}
