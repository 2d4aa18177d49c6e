"""Optimal Stochastic Non-smooth Non-convex Optimization through Online-to-Non-convex Conversion.

Cutkosky, Mehta, Orabona. ICML 2023. arXiv:2302.03775

For a non-smooth non-convex loss a gradient norm need not get small (|x| has
|f'| = 1 everywhere but 0), so the target is a (delta, eps)-stationary point:
a point near which some *average* of gradients, taken at points within
distance delta, has norm <= eps (Goldstein stationarity). The paper reduces
finding one to online learning ("O2NC"): an online learner chooses the
*increment* Delta_n of the iterate and is charged the linear loss
<g_n, Delta_n>, where g_n is a stochastic gradient at a uniformly random point
of the segment just travelled. Because s_n is uniform,
E[F(x_n) - F(x_{n-1})] = E<g_n, Delta_n> exactly, for any (non-smooth) F, so
low regret of the learner means the loss goes down or the averaged gradients
are small. Algorithm 1 (O2NC), with the paper's learner (projected online
gradient descent on the ball ||Delta|| <= D, Corollary for the stochastic
non-smooth case):

    for n = 1, 2, ...:
        Delta_n   from the online learner                  (Delta_1 = 0)
        x_n       = x_{n-1} + Delta_n
        s_n       ~ Uniform[0, 1]
        w_n       = x_{n-1} + s_n Delta_n
        g_n       = grad F(w_n; z_n)                       (the one oracle call)
        learner sees the loss  l_n(Delta) = <g_n, Delta>:
        Delta_n+1 = Pi_{||.|| <= D}(Delta_n - lr g_n)      (OGD, lr = the paper's eta)
    output, for each period k of T consecutive steps:
        wbar^k    = (1/T) sum_{n in period k} w_n

All w_n of a period lie within T*D of wbar^k, so ||(1/T) sum g_n|| over the
period is (in expectation, up to the noise) the (delta = T D, eps)
stationarity measure the theorem bounds; the paper's tuning is D = delta / T,
lr = D / (G sqrt(T)), giving the optimal O(delta^-1 eps^-3) gradient calls.

Conventions (the choices made, and why):

* Names: ``lr`` is the learner's step ``eta``; ``D`` the radius of its ball;
  ``T`` the period length (the paper's ``T``; the paper's ``K`` is the number
  of periods, i.e. the run length divided by ``T``, not a hyperparameter of a
  step-by-step optimizer).
* ``reset=True`` (default) restarts the learner at Delta = 0 at the start of
  every period: the paper's bound needs the learner's regret against a
  comparator that may change from one period to the next (the "K-shifting"
  regret), and restarting OGD each period is the plain way to get it.
  ``reset=False`` runs one unbroken OGD.
* The projection is onto the ball of the *whole* increment (all parameters as
  one vector, ``tree.global_norm``), as in the paper's R^d.
* The params an optimizer step returns are the iterates ``x_n``; the gradient
  is evaluated at ``w_n``, not at ``x_n``. The paper's output points live in
  the state: ``state["w_bar"]`` is wbar of the last *completed* period (the
  initial params before the first one) and ``state["g_bar"]`` the average of
  that period's gradients, the stationarity certificate (zeros before the
  first period ends). :func:`eval_params` returns ``w_bar``.
* Randomness lives in the state: ``state["seed"]`` (from the ``seed``
  hyperparameter) and the step counter; ``s_n`` is drawn from
  ``numpy.random.default_rng([seed, n])`` as a Python float, so a saved and
  reloaded state resumes bit for bit and the params keep their dtype.
  ``state["s"]`` is the last draw, for inspection.
* ``D = inf`` is allowed and means no projection.

Defaults: ``lr = 0.01``, ``D = 0.01``, ``T = 10``, ``reset = True``,
``seed = 0``; the paper fixes no numbers (its tuning depends on delta, the
Lipschitz constant G and the budget), so these are small safe values.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import fuse, xp_of
from .. import tree
from .base import Optimizer, check_grads, check_int, check_range, register

__all__ = ["OnlineToNonconvex", "uniform_point", "eval_params"]


def uniform_point(seed, n):
    """``s_n ~ Uniform[0, 1]``, a deterministic function of ``(seed, n)`` (a Python float)."""
    return float(np.random.default_rng([int(seed), int(n)]).uniform())


def eval_params(state):
    """The paper's output point: the average ``wbar`` of the query points of the last completed period."""
    return state["w_bar"]


@fuse
def _segment_kernel(x, delta, s):
    w = x + s * delta                                      # w_n = x_{n-1} + s_n Delta_n
    x = x + delta                                          # x_n = x_{n-1} + Delta_n
    return w, x


@fuse
def _ogd_kernel(delta, g, lr):
    return delta - lr * g                                  # Delta_n - eta g_n (before projection)


@register("online_to_nonconvex")
class OnlineToNonconvex(Optimizer):
    paper = dict(title="Optimal Stochastic Non-smooth Non-convex Optimization through Online-to-Non-convex "
                       "Conversion",
                 authors="Cutkosky, Mehta, Orabona", year=2023, arxiv="2302.03775",
                 family="optimizer-first-order")
    defaults = dict(lr=0.01, D=0.01, T=10, reset=True, seed=0)
    scheduled = ("lr",)

    def check(self, hp):
        super().check(hp)
        check_range("D", hp["D"], 0.0, math.inf, low_open=True, where=self.name, allow_inf=True)
        for key, low in (("T", 1), ("seed", 0)):
            v = hp[key]
            check_int(key, v, low, where=self.name)
        if not isinstance(hp["reset"], bool):
            raise ValueError(f"{self.name}: reset must be True or False, got {hp['reset']!r}")

    def init_slots(self, params):
        return {"delta": tree.zeros_like(params),          # Delta_1 = 0
                "w_sum": tree.zeros_like(params), "g_sum": tree.zeros_like(params),
                "w_bar": tree.copy(params), "g_bar": tree.zeros_like(params),
                "seed": int(self.hparams["seed"]), "s": 0.0}

    def _project(self, delta, D):
        """Pi onto ``||Delta|| <= D`` (the whole tree as one vector)."""
        if math.isinf(D):
            return delta
        norm = tree.global_norm(delta)
        factor = D / xp_of(norm).maximum(norm, D)     # min(1, D / ||Delta||), a 0-d array
        return {k: (v * factor).astype(v.dtype, copy=False) for k, v in delta.items()}

    def step(self, params, state, oracle):
        n = int(state["step"]) + 1
        hp = self.hparams_at(n)
        T = int(hp["T"])
        s = uniform_point(state["seed"], n)                 # s_n ~ U[0, 1]
        w, x = {}, {}
        for k in params:
            w[k], x[k] = _segment_kernel(params[k], state["delta"][k], s)
        _, g = oracle(w)                                    # g_n = grad F(w_n; z_n)
        check_grads(self.name, params, g, n)
        delta = self._project({k: _ogd_kernel(state["delta"][k], g[k], hp["lr"]) for k in params}, hp["D"])
        w_sum, g_sum = tree.add(state["w_sum"], w), tree.add(state["g_sum"], g)
        w_bar, g_bar = state["w_bar"], state["g_bar"]
        if n % T == 0:                                      # end of period k: output wbar^k
            w_bar = {k: v / T for k, v in w_sum.items()}
            g_bar = {k: v / T for k, v in g_sum.items()}
            w_sum, g_sum = tree.zeros_like(w_sum), tree.zeros_like(g_sum)
            if hp["reset"]:
                delta = tree.zeros_like(delta)              # the learner restarts each period
        return x, {"step": n, "delta": delta, "w_sum": w_sum, "g_sum": g_sum, "w_bar": w_bar,
                   "g_bar": g_bar, "seed": int(state["seed"]), "s": s}
