"""AI-SARAH: Adaptive and Implicit Stochastic Recursive Gradient Methods.

Zheng Shi, Abdurakhmon Sadiev, Nicolas Loizou, Peter Richtarik, Martin Takac.
arXiv 2021 (TMLR 2023). arXiv:2102.09700

For a finite sum ``P(w) = 1/n sum_i f_i(w)`` SARAH (Nguyen, Liu, Scheinberg
and Takac, ICML 2017, arXiv:1703.00102; the baseline, registered here as
``sarah``) starts every outer loop with a full gradient and then follows the
*stochastic recursive gradient*

    v_0 = grad P(w_0),                 w_1 = w_0 - eta v_0
    v_t = grad f_S(w_t) - grad f_S(w_{t-1}) + v_{t-1},   w_{t+1} = w_t - eta v_t

(``f_S`` the mean of ``f_i`` over a minibatch ``S_t``, the *same* batch at
``w_t`` and ``w_{t-1}``), for ``m`` steps per outer loop. SARAH needs the
step ``eta`` (about ``1/L``) and ``m`` tuned.

AI-SARAH (the paper's Algorithm 2, the practical "tune-free" method) keeps the
estimator and chooses every step size *implicitly* from the local geometry of
the sampled function. With ``v_{t-1}`` and the batch ``S_t`` of inner step t,

    v_t(alpha)   = grad f_S(w_{t-1} - alpha v_{t-1}) - grad f_S(w_{t-1}) + v_{t-1}
    xi_t(alpha)  = ||v_t(alpha)||^2
    alpha~_{t-1} = -xi_t'(0) / |xi_t''(0)|              (one Newton step on xi_t from 0)

For a quadratic ``f_S`` with Hessian ``H`` this is ``v^T H v / ||H v||^2``,
the exact minimiser of ``xi_t``: a local ``1/L`` along ``v``. The step is
capped by an upper bound that is an exponentially smoothed *harmonic* mean of
the past estimates,

    alpha_{t-1} = min(alpha~_{t-1}, alpha_max)
    delta       = 1/alpha~            at the very first inner step, then
    delta       = beta delta + (1 - beta) / alpha~_{t-1},   alpha_max = 1 / delta

(the bound used at a step is the one built from the *previous* estimates;
``alpha_max = inf`` before the first one), then

    w_t = w_{t-1} - alpha_{t-1} v_{t-1}
    v_t = grad f_S(w_t) - grad f_S(w_{t-1}) + v_{t-1}

and the inner loop stops -- the next outer loop starts, with a fresh full
gradient -- as soon as ``||v_t||^2 < gamma ||v_0||^2``. Paper defaults:
``gamma = 1/32``, ``beta = 0.999``; there is no step size and no inner-loop
length to tune.

**How the variance-reduced structure meets the library's protocol** (one
oracle per ``step``, i.e. one batch). Decision:

* One ``step`` is one *inner* iteration. The optimizer evaluates the step's
  oracle at the current point and at the previous one, which gives the two
  gradients of the *same* minibatch that the recursive estimator needs.
* The full gradient of an outer loop comes from the oracle passed on a
  *restart step*: ``opt.needs_full_gradient(state)`` says when one is due,
  and the caller then passes the full-batch oracle (``problem.oracle()``).
  :func:`run` in this file is that driver (the paper's algorithm, exactly).
  With a loop that passes a minibatch oracle on every step (``reference.
  train.run``) a restart uses that minibatch's gradient instead: an inexact
  restart (SARAH with a minibatch snapshot), not the paper's method.
* AI-SARAH's restart step only computes ``v_0`` (the params do not move), as
  in Algorithm 2, whose first inner step needs the batch ``S_1``. SARAH's
  restart step also takes its first step ``w_1 = w_0 - eta v_0``.
* ``xi'(0)`` and ``xi''(0)`` are derivatives of a *gradient* along a line,
  i.e. second and third derivatives of ``f_S``. With a rich oracle (anything
  with a differentiable ``loss(params)``, as every ``reference.problems``
  oracle) they are computed exactly by nested reverse-mode autodiff of
  ``alpha -> xi_t(alpha)`` (the paper's official code differentiates twice
  with respect to ``alpha`` in the same way). A *plain* callable oracle
  offers gradients only; then -- not in the paper -- they are central finite
  differences of ``xi_t`` at ``alpha = +-h``, ``h = eps^(1/4) max(1, ||w||) /
  ||v||`` (two more gradient calls). ``curvature="autodiff"`` insists on the
  exact form (``TypeError`` naming ``oracle.loss`` when it is missing),
  ``"finite_difference"`` forces the fallback, ``"auto"`` (default) picks.
  Note that ``reference.train.run`` wraps the oracle in a plain function,
  so there the fallback is used.

Conventions and choices:

* The outer loop restarts from the *last* inner iterate (Algorithm 2 and its
  official code; SARAH's theory draws a random inner iterate, its practical
  version keeps the last one, as here).
* Minibatches ``S_t`` are drawn by the caller (``run`` draws ``batch_size``
  distinct examples per step with ``problem.sample_batch``; the official
  code walks through a shuffled epoch).
* A Newton denominator ``xi''(0) = 0`` (no curvature seen along ``v``) would
  divide by zero: then the step is the current bound ``alpha_max`` and, if
  there is none yet, a ``FloatingPointError`` is raised.
* The paper assumes every ``f_i`` convex, so ``xi'(0) = -2 v^T H_S v <= 0``
  and ``alpha~ >= 0``. On a non-convex function ``alpha~`` can come out
  negative; it is used as computed (a step against ``v``), as in the
  official code, and the bound's harmonic mean may then be meaningless.
* Observed, not in the paper: when the batch Hessian ``H_S`` is far from
  ``H`` (a batch smaller than the dimension makes it rank-deficient up to
  the ridge), ``alpha~`` can be huge along directions the batch barely sees
  (up to ``1/lam``) and the harmonic-mean bound can settle above ``2/L``.
  On ``logistic_regression(n=1000, d=20, lam=1/n)`` with ``b=16`` the method
  then stalls; with ``b=64`` it converges on 4 of 5 seeds, like tuned SARAH
  (the claim test uses ``n=500, d=10, b=64``).
* Everything the step decides on (``alpha``, the bound, ``||v||^2``) is a
  Python float in the state: AI-SARAH's stopping test and step choice are
  host decisions by nature (one synchronisation per step).
"""
from __future__ import annotations

import math

import numpy as np

from .. import autograd as ag
from .. import tree
from ..backend import xp_of
from .base import Optimizer, check_grads, check_int, check_lr, check_range, register

__all__ = ["SARAH", "AISARAH", "implicit_step", "run"]


def _sq_norm(a):
    """``||a||^2`` of a tree as a Python float (a host sync, on purpose)."""
    return float(tree.vdot(a, a))


# --------------------------------------------------------------------------
# SARAH, the baseline
# --------------------------------------------------------------------------

@register("sarah")
class SARAH(Optimizer):
    """SARAH (Nguyen et al., 2017) with a fixed step ``lr`` (the paper's eta) and ``inner_steps``
    (its m) updates per outer loop; see the module docstring for the protocol.

    State: ``v`` (the recursive gradient), ``w_prev`` (the previous iterate)
    and ``inner`` (updates taken in the current outer loop; 0 means a restart
    step, wanting the full gradient, is next). (The SARAH paper is not itself a
    corpus paper, so it has no catalog entry: it is AI-SARAH's baseline.)
    """

    # No universal default in the paper (eta ~ 1/L, m ~ n are tuned per data set): these are
    # placeholders of the right order for problems scaled like reference.problems' (L ~ 1).
    defaults = dict(lr=0.1, inner_steps=100)
    scheduled = ()
    # lr = 0.1 diverges on Rosenbrock from (-1.2, 1) (curvature ~ 1000 there)
    descent_hparams = {"rosenbrock": dict(lr=1e-3)}

    def check(self, hp):
        check_lr("lr", hp["lr"], self.name)
        if callable(hp["lr"]):
            raise ValueError(f"{self.name}: lr must be a number (SARAH's step is constant), got a callable")
        check_int("inner_steps", hp["inner_steps"], 1, where=self.name)

    def init_slots(self, params):
        return {"v": tree.zeros_like(params), "w_prev": tree.zeros_like(params), "inner": 0}

    def needs_full_gradient(self, state):
        """True when the next step starts an outer loop (pass the full-batch oracle to it)."""
        return int(state["inner"]) == 0

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        lr, m = self.hparams["lr"], self.hparams["inner_steps"]
        if self.needs_full_gradient(state):
            _, v = oracle(params)                                     # v_0 = grad P(w_0)
            check_grads(self.name, params, v, t)
        else:
            _, g_new = oracle(params)                                 # grad f_S(w_t)
            check_grads(self.name, params, g_new, t)
            _, g_old = oracle(state["w_prev"])                        # grad f_S(w_{t-1}), same batch
            check_grads(self.name, params, g_old, t)
            v = tree.zip_map(lambda a, b, c: a - b + c, g_new, g_old, state["v"])
        new_params = tree.axpy(-lr, v, params)                        # w_{t+1} = w_t - eta v_t
        inner = (int(state["inner"]) + 1) % m
        return new_params, {"step": t, "v": v, "w_prev": dict(params), "inner": inner}


# --------------------------------------------------------------------------
# AI-SARAH
# --------------------------------------------------------------------------

def _xi_derivatives_autodiff(oracle, w, v, g0):
    """``xi'(0)`` and ``xi''(0)`` of ``xi(alpha) = ||grad f_S(w - alpha v) - g0 + v||^2`` by autodiff."""
    loss = getattr(oracle, "loss", None)
    if loss is None:
        raise TypeError("ai_sarah: curvature='autodiff' needs a rich oracle with a differentiable "
                        "oracle.loss(params) (e.g. reference.problems' oracles); this oracle has no "
                        "'loss'. Use curvature='finite_difference' (or 'auto') for a plain callable.")

    def xi(alpha):
        w_alpha = {k: w[k] - alpha * v[k] for k in w}
        g = ag.grad(loss)(w_alpha)
        total = None
        for k in w:
            r = g[k] - g0[k] + v[k]                                   # v_t(alpha)
            term = ag.sum(r * r)
            total = term if total is None else total + term
        return total

    ref = next(iter(w.values()))
    zero = xp_of(ref).zeros((), dtype=ref.dtype)
    d1 = ag.grad(xi)(zero)
    d2 = ag.grad(ag.grad(xi))(zero)
    return float(d1), float(d2)


def _xi_derivatives_fd(oracle, w, v, g0, where, t):
    """Central finite differences of ``xi`` at ``alpha = +-h`` (the fallback for plain oracles)."""
    ref = next(iter(w.values()))
    eps = float(np.finfo(ref.dtype).eps)
    h = eps ** 0.25 * max(1.0, math.sqrt(_sq_norm(w))) / math.sqrt(_sq_norm(v))
    xi0 = _sq_norm(v)                                                 # v_t(0) = v_{t-1}
    values = []
    for alpha in (h, -h):
        w_alpha = tree.axpy(-alpha, v, w)
        _, g = oracle(w_alpha)
        check_grads(where, w, g, t)
        values.append(_sq_norm(tree.zip_map(lambda a, b, c: a - b + c, g, g0, v)))
    xi_plus, xi_minus = values
    return (xi_plus - xi_minus) / (2.0 * h), (xi_plus - 2.0 * xi0 + xi_minus) / (h * h)


def implicit_step(xi_prime, xi_second):
    """The Newton step on ``xi`` from ``alpha = 0``: ``-xi'(0) / |xi''(0)|`` (``None`` if ``xi'' = 0``)."""
    if xi_second == 0.0 or not math.isfinite(xi_second):
        return None
    return -xi_prime / abs(xi_second)


@register("ai_sarah")
class AISARAH(Optimizer):
    """AI-SARAH (Algorithm 2 of the paper); see the module docstring.

    State: ``v`` (``v_{t-1}``), ``v0_norm_sq`` (``||v_0||^2`` of the current
    outer loop), ``restart`` (a full gradient is due), ``delta`` (the smoothed
    ``1/alpha~``, ``None`` before the first estimate), ``alpha_max`` (the bound
    for the next step, ``inf`` at first), ``alpha`` and ``alpha_newton`` (the
    last step taken and the last Newton estimate), ``inner`` (inner steps in the
    current outer loop) and ``outer`` (outer loops started).
    """

    paper = dict(title="AI-SARAH: Adaptive and Implicit Stochastic Recursive Gradient Methods",
                 authors="Shi, Sadiev, Loizou, Richtarik, Takac", year=2021, arxiv="2102.09700",
                 family="variance-reduction")
    defaults = dict(gamma=1.0 / 32.0, beta=0.999, curvature="auto")
    scheduled = ()

    def check(self, hp):
        check_range("gamma", hp["gamma"], 0.0, 1.0, low_open=True, high_open=True, where=self.name)
        check_range("beta", hp["beta"], 0.0, 1.0, high_open=True, where=self.name)
        if hp["curvature"] not in ("auto", "autodiff", "finite_difference"):
            raise ValueError(f"{self.name}: curvature must be 'auto', 'autodiff' or 'finite_difference', "
                             f"got {hp['curvature']!r}")

    def init_slots(self, params):
        return {"v": tree.zeros_like(params), "v0_norm_sq": 0.0, "restart": True, "delta": None,
                "alpha_max": math.inf, "alpha": 0.0, "alpha_newton": 0.0, "inner": 0, "outer": 0}

    def needs_full_gradient(self, state):
        """True when the next step starts an outer loop (pass the full-batch oracle to it)."""
        return bool(state["restart"])

    def _xi_derivatives(self, oracle, w, v, g0, t):
        mode = self.hparams["curvature"]
        if mode == "auto":
            mode = "autodiff" if hasattr(oracle, "loss") else "finite_difference"
        if mode == "autodiff":
            return _xi_derivatives_autodiff(oracle, w, v, g0)
        return _xi_derivatives_fd(oracle, w, v, g0, self.name, t)

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        new_state = {k: v for k, v in state.items()}
        new_state["step"] = t
        if self.needs_full_gradient(state):                            # outer loop k: v_0 = grad P(w_0)
            _, v0 = oracle(params)
            check_grads(self.name, params, v0, t)
            v0_norm_sq = _sq_norm(v0)
            new_state.update(v=v0, v0_norm_sq=v0_norm_sq, restart=v0_norm_sq == 0.0, inner=0,
                             outer=int(state["outer"]) + 1)            # (a zero gradient: stay put)
            return dict(params), new_state

        gamma, beta = self.hparams["gamma"], self.hparams["beta"]
        v = state["v"]                                                 # v_{t-1}
        _, g_old = oracle(params)                                      # grad f_S(w_{t-1})
        check_grads(self.name, params, g_old, t)

        # the implicit step: one Newton step on xi_t(alpha) = ||v_t(alpha)||^2 from alpha = 0
        alpha_newton = implicit_step(*self._xi_derivatives(oracle, params, v, g_old, t))
        alpha_max = state["alpha_max"]
        if alpha_newton is None:
            if not math.isfinite(alpha_max):
                raise FloatingPointError(f"{self.name}: xi''(0) = 0 at step {t} (no curvature along v) "
                                         "and no step-size bound yet")
            alpha_newton = alpha_max
        alpha = min(alpha_newton, alpha_max)                           # alpha_{t-1}
        # the bound for the next step: exponentially smoothed harmonic mean of the estimates
        if state["delta"] is None:
            delta = 1.0 / alpha_newton
        else:
            delta = beta * state["delta"] + (1.0 - beta) / alpha_newton
        new_alpha_max = 1.0 / delta

        new_params = tree.axpy(-alpha, v, params)                      # w_t = w_{t-1} - alpha v_{t-1}
        _, g_new = oracle(new_params)                                  # grad f_S(w_t)
        check_grads(self.name, params, g_new, t)
        v_new = tree.zip_map(lambda a, b, c: a - b + c, g_new, g_old, v)
        restart = _sq_norm(v_new) < gamma * state["v0_norm_sq"]        # ||v_t||^2 < gamma ||v_0||^2
        new_state.update(v=v_new, restart=restart, delta=delta, alpha_max=new_alpha_max, alpha=alpha,
                         alpha_newton=alpha_newton, inner=int(state["inner"]) + 1)
        return new_params, new_state


# --------------------------------------------------------------------------
# the driver: full gradients at restarts, minibatches otherwise
# --------------------------------------------------------------------------

def run(problem, optimizer, epochs, batch_size, seed=0, dtype="float64", params=None):
    """Run ``sarah`` or ``ai_sarah`` on a finite-sum ``problem`` as the papers do.

    Every restart step gets the full-batch oracle ``problem.oracle()`` (``n``
    component gradients); every inner step a minibatch of ``batch_size``
    distinct examples drawn with ``numpy.random.default_rng(seed)`` (``2 b``
    component gradients: the batch at two points). Runs until ``epochs``
    effective passes (component gradients / n) are used up.

    Returns a dict of NumPy arrays: ``passes`` and ``grad_norm_sq`` (the
    effective passes spent and ``||grad P||^2`` at every restart, where the
    full gradient is computed anyway), ``alpha``, ``alpha_newton`` and
    ``alpha_bound`` (AI-SARAH: the step taken, the Newton estimate and the
    bound in force, per inner step), and ``params`` (the final params).
    AI-SARAH's Newton step costs extra derivative work on the batch (about two
    Hessian-vector products); it is not counted in ``passes``, as in the
    paper's plots.
    """
    if problem.n_train is None:
        raise ValueError(f"run: problem {problem.name!r} is not a finite sum (it has no examples)")
    n = problem.n_train
    rng = np.random.default_rng(seed)
    w = problem.init(seed, dtype) if params is None else params
    state = optimizer.init(w)
    full = problem.oracle()
    used, out = 0, {"passes": [], "grad_norm_sq": [], "alpha": [], "alpha_newton": [], "alpha_bound": []}
    while used < epochs * n:
        if optimizer.needs_full_gradient(state):
            out["passes"].append(used / n)
            w, state = optimizer.step(w, state, full)                  # v_0 = grad P(w_0)
            used += n
            out["grad_norm_sq"].append(_sq_norm(state["v"]))
            if out["grad_norm_sq"][-1] == 0.0:
                break
        else:
            bound = state.get("alpha_max")
            w, state = optimizer.step(w, state, problem.oracle(problem.sample_batch(rng, batch_size)))
            used += 2 * batch_size
            if "alpha" in state:
                out["alpha"].append(state["alpha"])
                out["alpha_newton"].append(state["alpha_newton"])
                out["alpha_bound"].append(bound)
    result = {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}
    result["params"] = w
    return result
