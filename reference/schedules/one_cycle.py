"""A disciplined approach to neural network hyper-parameters: Part 1 -- learning rate,
batch size, momentum, and weight decay.

Leslie N. Smith. US Naval Research Laboratory Technical Report 5510-026, 2018.
arXiv:1803.09820

The *1cycle* policy: a single cycle of the learning rate, up from
a small value to a large one and back, followed by a short annihilation far
below the start; the large rates in the middle act as a regulariser and let
training finish in far fewer iterations ("super-convergence"). Momentum
cycles the other way: high while the rate is low, low while it is
high, since a large rate and a large momentum together destabilise training.

With ``v`` = ``value`` (the peak, torch's ``max_lr``), ``T`` = ``total_steps``,
``p`` = ``pct_start``, the start ``v0 = v / div_factor`` and the end
``v_end = v0 / final_div_factor``, the lr at step ``k`` interpolates between
the ends of the phase ``k`` falls in (torch ``OneCycleLR``'s phase ends):

    three_phase=True (the paper's shape):
      phase 1, k in [0, pT - 1]:           v0 -> v           momentum m_max -> m_base
      phase 2, k in [pT - 1, 2pT - 2]:     v  -> v0          momentum m_base -> m_max
      phase 3, k in [2pT - 2, T - 1]:      v0 -> v_end       momentum m_max (flat)
    three_phase=False (torch's default, fast.ai's 1cycle):
      phase 1, k in [0, pT - 1]:           v0 -> v           momentum m_max -> m_base
      phase 2, k in [pT - 1, T - 1]:       v  -> v_end       momentum m_base -> m_max

    value(a, b, q) = a + (b - a) q                    anneal="linear"  (the paper)
                   = b + (a - b) (1 + cos(pi q)) / 2  anneal="cos"     (torch's default)

with ``q`` the fraction of the phase done. Momentum is a separate schedule,
:class:`OneCycleMomentum` (``one_cycle_momentum``), with the same phases.

Defaults: the paper's shape (``three_phase=True``, ``anneal="linear"``, a
cycle over ``pct_start = 0.45`` of the steps up and as many down, the last
~10% for the annihilation) and momentum ``0.95 -> 0.85 -> 0.95`` (the report's recommended range);
``div_factor = 25`` and ``final_div_factor = 1e4`` are torch's: the paper
picks the bounds per problem with the LR range test (e.g. 0.1 to 1 for a
ResNet-56 on CIFAR-10, a factor of 10) and ends "several orders of
magnitude" below the start. ``tests/golden/schedule_papers.npz`` checks both
anneal strategies and both phase layouts against ``OneCycleLR`` to 1e-12.

**Past the end.** torch's ``OneCycleLR`` is defined for ``k <= T`` and
raises beyond; here step ``k >= T - 1`` is the final value ``v_end`` (and
``m_max``), so a run of ``T`` steps uses ``k = 0 .. T - 1`` and ends at
``v_end`` exactly, as in torch.

**Using the momentum schedule.** ``reference.optim``'s SGD takes a float
``momentum`` (only ``lr`` is scheduled, see ``Optimizer.scheduled``); until it
accepts a schedule, :func:`sgd_one_cycle` runs SGD with a per-step momentum
(the momentum buffer does not depend on the value of ``mu``, so a new SGD
with this step's ``mu`` continues the same state exactly).

**The LR range test** (after Smith 2017, "Cyclical Learning Rates"):
:func:`lr_range_test` runs a short training with the learning rate rising
exponentially from ``lr_min`` to ``lr_max`` and stops when the loss blows
up; the largest rate to use is just below where the loss stops decreasing.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .base import Schedule, check_choice, check_int, check_value, register

__all__ = ["one_cycle", "one_cycle_momentum", "OneCycle", "OneCycleMomentum", "lr_range_test", "sgd_one_cycle"]

ANNEAL = {
    "linear": lambda a, b, q: (b - a) * q + a,
    "cos": lambda a, b, q: b + (a - b) / 2.0 * (math.cos(math.pi * q) + 1.0),
}


def phase_ends(total_steps, pct_start, three_phase):
    """The step where each phase ends (floats, torch's), the last one ``T - 1``."""
    up = float(pct_start * total_steps) - 1.0
    if three_phase:
        return (up, float(2 * pct_start * total_steps) - 2.0, float(total_steps - 1))
    return (up, float(total_steps - 1))


def _check_shape(self):
    """The checks both schedules share; sets the phase ends."""
    where = self.name
    self._set("total_steps", check_int("total_steps", self.total_steps, 2, where))
    self._set("pct_start", check_value("pct_start", self.pct_start, where, 0.0, 1.0, low_open=True))
    check_choice("anneal", self.anneal, tuple(ANNEAL), where)
    if not isinstance(self.three_phase, bool):
        raise ValueError(f"{where}: three_phase must be True or False, got {self.three_phase!r}")
    ends = phase_ends(self.total_steps, self.pct_start, self.three_phase)
    starts = (0.0,) + ends[:-1]
    if any(e <= s for s, e in zip(starts, ends)):
        raise ValueError(f"{where}: pct_start={self.pct_start!r} is out of range for total_steps="
                         f"{self.total_steps}: every phase needs a positive length (phase ends {ends}); "
                         f"expected pct_start * total_steps > 1" + (" and pct_start < 0.5" if self.three_phase else ""))
    return ends


def _phase_value(k, ends, values, anneal):
    """Interpolate ``values[i] -> values[i + 1]`` across phase ``i``, the one holding ``k``."""
    start = 0.0
    for i, end in enumerate(ends):
        if k <= end or i == len(ends) - 1:
            q = min((k - start) / (end - start), 1.0)      # past T - 1: the final value
            return ANNEAL[anneal](values[i], values[i + 1], q)
        start = end
    raise AssertionError("unreachable")


@register("one_cycle")
@dataclasses.dataclass(frozen=True, repr=False)
class OneCycle(Schedule):
    """The 1cycle learning rate; the formula is in the module docstring."""

    paper = dict(title="A disciplined approach to neural network hyper-parameters: Part 1 -- learning rate, "
                       "batch size, momentum, and weight decay",
                 authors="Smith", year=2018, arxiv="1803.09820", family="lr-schedule")

    value: float
    total_steps: int
    pct_start: float = 0.45
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    anneal: str = "linear"
    three_phase: bool = True

    def __post_init__(self):
        where = self.name
        self._set("value", check_value("value", self.value, where))
        self._set("div_factor", check_value("div_factor", self.div_factor, where, 1.0))
        self._set("final_div_factor", check_value("final_div_factor", self.final_div_factor, where, 1.0))
        self._set("_ends", _check_shape(self))

    @property
    def initial(self):
        """``v0 = v / div_factor``, where the cycle starts (and, with three phases, returns)."""
        return self.value / self.div_factor

    @property
    def final(self):
        """``v_end = v0 / final_div_factor``, the value from step ``T - 1`` on."""
        return self.initial / self.final_div_factor

    def at(self, k):
        v0, v, end = self.initial, self.value, self.final
        if k >= self.total_steps - 1:
            return end
        values = (v0, v, v0, end) if self.three_phase else (v0, v, end)
        return _phase_value(k, self._ends, values, self.anneal)


@register("one_cycle_momentum")
@dataclasses.dataclass(frozen=True, repr=False)
class OneCycleMomentum(Schedule):
    """The cyclic momentum of the 1cycle policy: ``high -> low`` while the lr
    rises, back to ``high`` while it falls, ``high`` during the annihilation.

    Same phases as :class:`OneCycle` for the same ``total_steps``, ``pct_start``,
    ``anneal``, ``three_phase`` (torch ``OneCycleLR(cycle_momentum=True)``'s
    ``max_momentum`` = ``high``, ``base_momentum`` = ``low``)."""

    total_steps: int
    pct_start: float = 0.45
    high: float = 0.95
    low: float = 0.85
    anneal: str = "linear"
    three_phase: bool = True

    def __post_init__(self):
        where = self.name
        self._set("high", check_value("high", self.high, where, 0.0, 1.0))
        self._set("low", check_value("low", self.low, where, 0.0, self.high))
        self._set("_ends", _check_shape(self))

    def at(self, k):
        hi, lo = self.high, self.low
        values = (hi, lo, hi, hi) if self.three_phase else (hi, lo, hi)
        return _phase_value(k, self._ends, values, self.anneal)


one_cycle = OneCycle
one_cycle_momentum = OneCycleMomentum


# ---- the paper's two procedures -----------------------------------------------------

def sgd_one_cycle(problem, value, total_steps, *, momentum=None, batch_size=None, seed=0, weight_decay=0.0,
                  nesterov=False, eval_every=None, dtype="float64", **shape):
    """Train ``reference.optim`` SGD on ``problem`` with the 1cycle lr *and* cyclic momentum.

    ``shape``: ``pct_start``, ``div_factor``, ``final_div_factor``, ``anneal``,
    ``three_phase`` (for both schedules). ``momentum``: a
    :class:`OneCycleMomentum` (default: ``high=0.95, low=0.85`` with the same
    shape), any callable ``k -> mu``, or a float (constant momentum).
    Minibatches and the initial point follow ``reference.train.run`` exactly
    (``problem.init(seed)``, one ``sample_batch`` per step from
    ``default_rng(seed)``). Returns ``{"loss": (T,) loss before each step,
    "params": final params, "lr": (T,), "momentum": (T,), "evals": [...]}``.
    """
    from .. import optim
    from ..train import resolve_problem
    prob = resolve_problem(problem)
    lr = OneCycle(value, total_steps, **shape)
    keys = ("pct_start", "anneal", "three_phase")
    if momentum is None:
        momentum = OneCycleMomentum(total_steps, **{k: v for k, v in shape.items() if k in keys})
    mom = momentum if callable(momentum) else (lambda k, m=float(momentum): m)
    rng = np.random.default_rng(seed)
    w = prob.init(seed, dtype)
    full = prob.oracle() if batch_size is None else None
    state, losses, lrs, moms, evals = None, [], [], [], []
    for k in range(total_steps):
        mu = float(mom(k))
        # a fresh SGD with this step's momentum continues the same state: the buffer is mu-independent
        opt = optim.create("sgd", lr=lr, momentum=mu, weight_decay=weight_decay, nesterov=nesterov)
        if state is None:
            state = opt.init(w)
        oracle = full if batch_size is None else prob.oracle(prob.sample_batch(rng, batch_size))
        seen = []
        w, state = opt.step(w, state, lambda p, o=oracle: seen.append(o(p)) or seen[-1])
        losses.append(float(seen[0][0]))
        lrs.append(lr(k))
        moms.append(mu)
        if eval_every and (k + 1) % eval_every == 0:
            evals.append({"step": k + 1, **prob.evaluate(w)})
    return {"loss": np.array(losses), "params": w, "lr": np.array(lrs), "momentum": np.array(moms),
            "evals": evals}


def lr_range_test(problem, optimizer="sgd", hparams=None, lr_min=1e-5, lr_max=10.0, steps=100, batch_size=None,
                  seed=0, smoothing=0.0, diverge_factor=4.0, dtype="float64"):
    """The LR range test: train with ``lr_k = lr_min (lr_max / lr_min)^(k / (steps - 1))``.

    Records the loss before every step and stops once the loss exceeds
    ``diverge_factor`` times the best loss so far (or is not finite).
    ``smoothing`` in ``[0, 1)``: an EMA of the loss (``0``: none; fast.ai uses
    0.98 on noisy minibatch losses). Returns a dict with ``lr`` and ``loss``
    (the steps taken), ``smoothed``, ``diverged_lr`` (the lr at which it
    stopped, ``None`` if it never did), ``best_lr`` (the lr where the smoothed
    loss was lowest) and ``suggested_lr``: ``best_lr / 10``, the rule of thumb
    for a rate that still decreases the loss quickly; for a 1cycle peak the paper
    takes a value near where the loss stops improving, i.e. between the two.
    """
    from .. import optim
    from ..train import resolve_problem
    prob = resolve_problem(problem)
    lr_min = check_value("lr_min", lr_min, "lr_range_test", 0.0, low_open=True)
    lr_max = check_value("lr_max", lr_max, "lr_range_test", lr_min, low_open=True)
    steps = check_int("steps", steps, 2, "lr_range_test")
    smoothing = check_value("smoothing", smoothing, "lr_range_test", 0.0, 1.0)
    ratio = lr_max / lr_min
    schedule = lambda k: lr_min * ratio ** (min(k, steps - 1) / (steps - 1))  # noqa: E731
    opt = optim.create(optimizer, **{**(hparams or {}), "lr": schedule})
    rng = np.random.default_rng(seed)
    w = prob.init(seed, dtype)
    state = opt.init(w)
    full = prob.oracle() if batch_size is None else None
    lrs, losses, smoothed = [], [], []
    avg, best, diverged = 0.0, math.inf, None
    with np.errstate(all="ignore"):
        for k in range(steps):
            oracle = full if batch_size is None else prob.oracle(prob.sample_batch(rng, batch_size))
            seen = []
            try:
                new_w, new_state = opt.step(w, state, lambda p, o=oracle: seen.append(o(p)) or seen[-1])
            except FloatingPointError:
                diverged = schedule(k)
                break
            loss = float(seen[0][0])
            avg = smoothing * avg + (1.0 - smoothing) * loss
            s = avg / (1.0 - smoothing ** (k + 1)) if smoothing else loss
            lrs.append(schedule(k))
            losses.append(loss)
            smoothed.append(s)
            if not math.isfinite(s) or s > diverge_factor * best:
                diverged = schedule(k)
                break
            best = min(best, s)
            w, state = new_w, new_state
    sm = np.array(smoothed)
    finite = np.where(np.isfinite(sm), sm, np.inf)
    best_lr = float(lrs[int(np.argmin(finite))]) if lrs else None
    return {"lr": np.array(lrs), "loss": np.array(losses), "smoothed": sm, "diverged_lr": diverged,
            "best_lr": best_lr, "suggested_lr": None if best_lr is None else best_lr / 10.0}
