"""The Road Less Scheduled.

Aaron Defazio, Xingyu (Alice) Yang, Harsh Mehta, Konstantin Mishchenko, Ahmed Khaled,
Ashok Cutkosky. NeurIPS 2024. arXiv:2405.15682

A schedule that decays the learning rate to zero at a known stopping step
``T`` (linear decay, cosine) beats every schedule that does not know ``T``.
Schedule-Free methods need no ``T`` and no schedule at all: they keep a
plain (constant step) base sequence ``z``, an average ``x`` of it, and take
the gradient at a point ``y`` *between* the two. Averaging does the job that
annealing does; the interpolation gives the momentum:

    y_t     = (1 - beta) z_t + beta x_t                 # the gradient is evaluated here
    z_{t+1} = z_t - gamma_t grad f(y_t; xi_t)           # a plain SGD step on z
    x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}       # an online average of the z's
    c_{t+1} = gamma_t^2 / sum_{i<=t} gamma_i^2          # = 1/t for a constant gamma

started at ``z_1 = x_1``. With a constant ``gamma`` this makes ``x_{t+1}`` the
plain mean of ``z_2 .. z_{t+1}`` (``c_2 = 1``: the starting point gets no
weight). The paper first writes ``c_{t+1} = 1/(t+1)``, the mean of ``z_1 ..
z_{t+1}``, before introducing the weighted form; we use the weighted form
throughout (Algorithm 1, and both peers). ``beta = 0`` is Polyak-Ruppert
averaging of SGD (gradients at ``z``, ``x`` the running mean of the ``z``'s); ``beta = 1`` is
primal averaging (gradients at the average ``x`` itself). The paper's default
``beta = 0.9`` sits between and is what makes the method fast in practice.

**Warmup and the weighting.** A linear warmup ``gamma_t = gamma min(1, t /
T_warmup)`` is part of the method (``warmup_steps``), and the average then
weights iterate ``t`` by ``gamma_t^2``: early, small steps count little
(``c_{t+1} = gamma_t^2 / sum gamma_i^2``, the paper's Algorithm 1). Any
``lr`` schedule (a callable) enters ``gamma_t`` the same way, although the
point of the method is not to need one.

Schedule-Free AdamW (the paper's Algorithm 1) replaces the z step by an
Adam-normalised step with decoupled weight decay *evaluated at y*, and folds
Adam's bias correction into the step size (so it also enters the weights):

    v_t     = beta2 v_{t-1} + (1 - beta2) g_t^2,        g_t = grad f(y_t; xi_t)
    gamma_t = gamma sqrt(1 - beta2^t) min(1, t / T_warmup)
    z_{t+1} = z_t - gamma_t g_t / (sqrt(v_t) + eps) - gamma_t lambda y_t
    c_{t+1} = gamma_t^2 / sum_{i<=t} gamma_i^2
    x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}

(``beta1`` plays the role of ``beta``: ``y_t = (1 - beta1) z_t + beta1 x_t``.
There is no first-moment EMA: the interpolation *is* the momentum.)

**Which point is ``params``: y, and evaluation uses x.** The oracle must see
``y``, so here, as in the official PyTorch code in its ``train()`` mode,
``params`` holds ``y_t``: ``opt.step(params, state, oracle)`` evaluates the
gradient at ``params = y_t`` and returns ``y_{t+1}``. The state holds ``z``
and the average ``x``. **Evaluate, report and ship ``x``**, not ``params``:

    x = eval_params(state, params)      # or opt.eval_params(state, params)

(``x`` is what the theory bounds and what the method returns; ``y`` is
usually a little worse, most so right after the warmup.) Keeping ``y`` in the
params means the plain ``step`` protocol applies unchanged, so wrappers
(clipping, ...) and ``reference.train`` work as for any optimizer; the loss
that ``reference.train`` records is the loss at ``y``. The state keeps ``x``
explicitly (one slot more than the official memory-saving form, which
rebuilds ``x = (y - (1 - beta) z) / beta`` and cannot do so at ``beta = 0``).

Conventions and defaults:

* Defaults are the official package's (``schedulefree`` 1.4): SGD ``lr = 1.0``,
  ``beta = 0.9`` (its ``momentum``); AdamW ``lr = 0.0025``, ``beta1 = 0.9``,
  ``beta2 = 0.999``, ``eps = 1e-8``; ``weight_decay = 0``, ``warmup_steps = 0``.
  The paper fixes ``beta = 0.9`` and tunes ``gamma`` per problem.
* SGD's ``weight_decay`` is L2 added to the gradient at ``y``
  (``g + lambda y``), as in the official ``SGDScheduleFree``.
* AdamW's bias correction, ``lr_bias_correction``: ``True`` (default) is the
  paper's Algorithm 1 above (``schedulefree.AdamWScheduleFreePaper``).
  ``False`` is the official package's default ``AdamWScheduleFree`` (and
  ``pytorch_optimizer.ScheduleFreeAdamW``): the correction divides ``v``
  inside the root, ``z_{t+1} = z_t - gamma_t (g_t / (sqrt(v_t / (1 -
  beta2^t)) + eps) + lambda y_t)``, with ``gamma_t = gamma min(1, t /
  T_warmup)``, so the weights ``gamma_t^2`` no longer see the correction (early
  iterates weigh more) and ``eps`` acts on a different scale. Both are tested
  against their peer.
* The weights: the official code uses ``lr_max^2``, the largest ``gamma_i``
  so far, where the paper has ``gamma_t^2``; they agree whenever ``gamma_t``
  never decreases (warmup then constant, with or without the AdamW bias
  correction, which only grows), which is every case the package is meant
  for. With a decreasing ``lr`` schedule this file follows the paper.
  The package's extra ``r`` (polynomial weighting, default 0) and
  ``weight_lr_power`` (default 2) are not offered: their defaults are the paper.
"""
from __future__ import annotations

import math

from .. import catalog, tree
from ..backend import fuse
from .base import Optimizer, check_range, register
from .common import l2_gradient

__all__ = ["ScheduleFreeSGD", "ScheduleFreeAdamW", "eval_params", "sf_sgd_kernel", "sf_adamw_kernel"]

PAPER = dict(title="The Road Less Scheduled",
             authors="Defazio, Yang, Mehta, Mishchenko, Khaled, Cutkosky", year=2024, arxiv="2405.15682",
             family="lr-schedule")


def eval_params(state, params):
    """The point to evaluate, report and save: the average ``x`` (``params`` holds ``y``).

    Before the first step ``x = y = params``. A copy, so it can be handed on freely."""
    tree.check_keys("schedule_free.eval_params", params, state["x"])
    return tree.copy(state["x"])


def warmup_factor(t, warmup_steps):
    """``min(1, t / T_warmup)`` for the 1-based step ``t`` (1 without warmup)."""
    return 1.0 if t >= warmup_steps else t / warmup_steps


@fuse
def sf_sgd_kernel(z, x, g, gamma, c, beta):
    """One Schedule-Free SGD step of one array: returns ``(y_{t+1}, z_{t+1}, x_{t+1})``."""
    z = z - gamma * g                       # z_{t+1} = z_t - gamma_t g_t
    x = (1.0 - c) * x + c * z               # x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}
    y = (1.0 - beta) * z + beta * x         # y_{t+1} = (1 - beta) z_{t+1} + beta x_{t+1}
    return y, z, x


@fuse
def sf_adamw_kernel(y, z, x, g, v, gamma, c, beta1, beta2, eps, weight_decay, bc2):
    """One Schedule-Free AdamW step of one array (``bc2 = 1`` for the paper's form):
    returns ``(y_{t+1}, z_{t+1}, x_{t+1}, v_t)``."""
    v = beta2 * v + (1.0 - beta2) * g * g                                   # v_t
    z = z - gamma * (g / ((v / bc2) ** 0.5 + eps) + weight_decay * y)       # z_{t+1}, decay at y_t
    x = (1.0 - c) * x + c * z                                               # x_{t+1}
    y = (1.0 - beta1) * z + beta1 * x                                       # y_{t+1}
    return y, z, x, v


def _check_warmup(opt, hp):
    w = hp["warmup_steps"]
    check_range("warmup_steps", w, 0.0, where=opt.name)
    if float(w) != int(w):
        raise ValueError(f"{opt.name}: warmup_steps={w!r} is out of range: expected an int >= 0")


class _ScheduleFree(Optimizer):
    """What both variants share: the slots ``z`` and ``x``, the sum of the squared steps
    (``gamma_sq_sum``, a Python float) and ``eval_params``."""

    paper = PAPER

    def init_slots(self, params):
        # z_1 = x_1 = y_1 = params; the weights' running sum starts empty
        return {"z": tree.copy(params), "x": tree.copy(params), "gamma_sq_sum": 0.0}

    def eval_params(self, state, params):
        """The average ``x``: evaluate this, not ``params`` (see :func:`eval_params`)."""
        return eval_params(state, params)

    def _weight(self, gamma, state):
        """``c_{t+1} = gamma_t^2 / sum_{i<=t} gamma_i^2`` and the new sum."""
        total = state["gamma_sq_sum"] + gamma * gamma
        return (gamma * gamma / total if total > 0.0 else 0.0), total


@register("schedule_free_sgd")
class ScheduleFreeSGD(_ScheduleFree):
    """Schedule-Free SGD; ``params`` is ``y``, evaluate ``eval_params(state, params)``."""

    defaults = dict(lr=1.0, beta=0.9, weight_decay=0.0, warmup_steps=0)
    # lr = 1.0 (the package's default, meant for deep nets) diverges on Rosenbrock from (-1.2, 1),
    # where the curvature is about 1000: the usual SGD step size there
    descent_hparams = {"rosenbrock": dict(lr=1e-3)}

    def check(self, hp):
        super().check(hp)
        check_range("beta", hp["beta"], 0.0, 1.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        _check_warmup(self, hp)

    def update(self, params, grads, state, t, hp):
        g = l2_gradient(grads, params, hp["weight_decay"])                 # L2 at y_t
        gamma = hp["lr"] * warmup_factor(t, hp["warmup_steps"])            # gamma_t
        c, total = self._weight(gamma, state)                               # c_{t+1}
        y, z, x = {}, {}, {}
        for k in params:
            y[k], z[k], x[k] = sf_sgd_kernel(state["z"][k], state["x"][k], g[k], gamma, c, hp["beta"])
        return y, {"z": z, "x": x, "gamma_sq_sum": total}


@register("schedule_free_adamw")
class ScheduleFreeAdamW(_ScheduleFree):
    """Schedule-Free AdamW (Algorithm 1); ``params`` is ``y``, evaluate ``eval_params(state, params)``."""

    defaults = dict(lr=0.0025, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, warmup_steps=0,
                    lr_bias_correction=True)

    def check(self, hp):
        super().check(hp)
        check_range("beta1", hp["beta1"], 0.0, 1.0, where=self.name)
        check_range("beta2", hp["beta2"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        _check_warmup(self, hp)
        if not isinstance(hp["lr_bias_correction"], bool):
            raise ValueError(f"{self.name}: lr_bias_correction must be True or False, "
                             f"got {hp['lr_bias_correction']!r}")

    def init_slots(self, params):
        return {**super().init_slots(params), "v": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        bc2 = 1.0 - hp["beta2"] ** t                                        # 1 - beta2^t
        gamma = hp["lr"] * warmup_factor(t, hp["warmup_steps"])
        if hp["lr_bias_correction"]:                                        # the paper: in gamma_t
            gamma, bc2 = gamma * math.sqrt(bc2), 1.0
        c, total = self._weight(gamma, state)                               # c_{t+1}
        y, z, x, v = {}, {}, {}, {}
        for k in params:
            y[k], z[k], x[k], v[k] = sf_adamw_kernel(params[k], state["z"][k], state["x"][k], grads[k],
                                                     state["v"][k], gamma, c, hp["beta1"], hp["beta2"],
                                                     hp["eps"], hp["weight_decay"], bc2)
        return y, {"z": z, "x": x, "v": v, "gamma_sq_sum": total}


# one catalog entry for the paper, under its corpus name (both classes carry ``paper``)
catalog.register(name="schedule_free", module=__name__, kind="implementation", **PAPER)
