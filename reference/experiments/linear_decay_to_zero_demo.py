"""Straight to Zero: Why Linearly Decaying the Learning Rate to Zero Works Best for LLMs.

Shane Bergsma, Nolan Dey, Gurpreet Gosal, Gavia Gray, Daria Soboleva, Joel Hestness. 2025.
arXiv:2502.15938

The paper's claim: under the best peak learning rate, a warmup followed by a
*linear decay to zero* (D2Z) beats the usual warmup + cosine decay to 10% of
the peak ("10x decay"), and the benefit grows with the number of training
tokens per parameter; D2Z at 80 tokens per parameter beat 10x decay at 200.
The explanation: AdamW's weights are an exponential moving average of its
updates. With ``lr_t = eta_t`` and decoupled decay ``lambda``
(``w_t = (1 - eta_t lambda) w_{t-1} - eta_t u_t``),

    w_T = prod_t (1 - eta_t lambda) w_0 + sum_i c_{T,i} (-u_i / lambda),
    c_{T,i} = eta_i lambda prod_{j > i} (1 - eta_j lambda),

a weighted combination of the updates ``u_i`` (the paper's "update
combination coefficients", :func:`ema_coefficients`). Early in training the
weights must move away from the initial point (a large ``eta`` forgets
``w_0`` quickly); late in training each update is mostly gradient noise and the
final weights should average over many of them (a small ``eta`` spreads the
coefficients ``c_{T,i}`` over more steps rather than on the last few). Decaying
linearly to zero does both. A 10x cosine ends at ``0.1 eta``, so its final
weights keep following the latest updates (at the same peak rate 0.3 and
``T = 2000``, it puts about half of the final weight on the last 10% of the
updates, D2Z about a quarter; lesson 4 plots the coefficients); a lower peak
spreads its average but leaves more of ``w_0`` and moves the weights less far.

**The miniature.** The paper trains GPT-style LLMs, about one pass over the
data, with AdamW, a linear warmup, a swept peak rate and the two decays. Here:
``reference.problems`` ``regression_1d`` (``y = sin(3x) + 0.5 N(0, 1)``) fitted
by a 1-32-32-1 tanh MLP (1153 parameters), minibatches of 8 from a training
set of 65536 drawn once (the longest run sees each example about once, like a
single epoch), AdamW (``beta = (0.9, 0.999)``, ``weight_decay = 0.1`` in
torch's convention, so the timescale is ``1 / (eta lambda)`` steps), a linear
warmup over the first 5% of the steps, then either

* ``d2z``: ``warmup(linear_decay(eta, T - W), W)``, exactly 0 at ``k = T``;
* ``cos10``: ``warmup(cosine(eta, T - W, final=0.1 eta), W)``, the 10x decay,

for training lengths ``T`` = 500, 2000, 8000 steps (3.5, 14 and 56 examples
per parameter: the paper's "tokens per parameter" axis, which there runs
from about 20 to a few hundred) and peak rates ``eta`` in {0.03, 0.1, 0.3, 1} (a factor-3 grid wide
enough that both schedules' best rate is inside it), over 4 seeds that fix the
initial weights and the minibatch order (the same for both schedules: paired
runs). The score is the **excess risk** ``mean_x (f(x) - sin 3x)^2`` on 2048
held-out inputs: the held-out loss minus the noise no model can remove
(``test_loss`` is returned too and ranks the runs the same way). The runs are
the library's AdamW and schedules, batched over runs by
``reference.experiments._mlp_runs`` (checked against ``reference.train.run``
to 1e-12). The default ``run()`` takes about 15 s on a laptop CPU; the test
and the lesson use ``steps=(500, 1000, 2000)``, three peak rates and six seeds
(about 5 s).

**What reproduces** (``tests/test_schedule_papers_2.py`` asserts each, on
``steps=(500, 1000, 2000)``, ``peak_lrs=(0.1, 0.3, 1)``, seeds 0-5; seeds 6-11
and 12-17 give the same verdicts):

* at every length, D2Z at its best peak rate beats 10x decay at its best
  peak rate by a wide margin: the ratio of excess risks (``ratio``) was 0.34 to
  0.63 in every seed group and length we ran (500 to 8000 steps, 6 or 8 seeds;
  with only 4 seeds one group gave 0.86 at 500 steps);
* D2Z's best peak rate is at least 10x decay's (0.3 against 0.1 at most
  lengths): D2Z tolerates the large rates that 10x decay cannot, whose final
  rate ``0.1 eta`` stays noisy;
* the compute saving: D2Z trained for ``T`` steps beats 10x decay trained for
  ``4 T`` (the paper's 80-vs-200 TPP comparison is a factor 2.5): 500 vs 2000
  steps in each 6-seed group (by 7% to 35%), and 500 vs 2000, 1000 vs 4000,
  2000 vs 8000 with 8 seeds.

**What does not**: the paper finds the benefit of D2Z *grows* with the
training length. Here the ratio stays at about 0.5 from 500 to 8000 steps
(8 seeds: 0.63, 0.40, 0.50, 0.52, 0.52 at 500, 1000, 2000, 4000, 8000): by a
few thousand steps both schedules sit on a floor of their own (D2Z's set by
the weight decay's pull on the weights, 10x decay's by the gradient noise at
its final rate ``0.1 eta``), which a 1153-parameter net reaches long before an
LLM's loss stops improving. ``run()`` reports ``ratio`` per length so this
can be read off; the test asserts that the advantage holds at every length,
not that it grows.

The schedule itself: ``linear_decay`` reaches exactly 0.0 at ``k = T - W``
of its own clock, i.e. at global step ``T`` (the value after the last update;
the last update uses ``eta / (T - W)``); see ``reference/schedules/decay.py``.
"""
from __future__ import annotations

import numpy as np

from .. import problems
from .. import schedules as S
from . import _mlp_runs as runs
from . import register, with_defaults

register(__name__, title="Straight to Zero: Why Linearly Decaying the Learning Rate to Zero Works Best for LLMs",
         family="lr-schedule", authors="Bergsma, Dey, Gosal, Gray, Soboleva, Hestness", year=2025,
         arxiv="2502.15938")

__all__ = ["run", "plot", "make_schedule", "ema_coefficients", "SCHEDULES", "DEFAULTS"]

SCHEDULES = ("d2z", "cos10")

DEFAULTS = dict(steps=(500, 2000, 8000), peak_lrs=(0.03, 0.1, 0.3, 1.0), seeds=(0, 1, 2, 3), batch_size=8,
                weight_decay=0.1, warmup_fraction=0.05, cosine_final=0.1,
                problem=dict(hidden=(32, 32), n_train=65536, n_test=2048, noise=0.5, seed=0))


def make_schedule(kind, peak_lr, total_steps, warmup_fraction=0.05, cosine_final=0.1):
    """The learning rate of a run of ``total_steps``: linear warmup over ``W = round(warmup_fraction T)``
    steps, then ``linear_decay`` to 0 (``kind="d2z"``) or a cosine to ``cosine_final * peak_lr``
    (``kind="cos10"``), both over the remaining ``T - W`` steps."""
    W = int(round(warmup_fraction * total_steps))
    if kind == "d2z":
        inner = S.linear_decay(peak_lr, total_steps - W)
    elif kind == "cos10":
        inner = S.cosine(peak_lr, total_steps - W, final=cosine_final * peak_lr)
    else:
        raise ValueError(f"linear_decay_to_zero_demo: kind must be one of {SCHEDULES}, got {kind!r}")
    return S.warmup(inner, W)


def ema_coefficients(lrs, weight_decay):
    """AdamW's update-combination coefficients ``c_{T,i} = eta_i lambda prod_{j>i} (1 - eta_j lambda)``
    for the learning rates ``lrs`` of steps ``1..T``: how much update ``i`` weighs in the final
    weights (they sum to ``1 - prod_t (1 - eta_t lambda)``, the weight taken away from ``w_0``)."""
    a = np.asarray(lrs, dtype=np.float64) * weight_decay
    keep_after = np.concatenate([np.cumprod((1.0 - a)[::-1])[::-1][1:], [1.0]])  # prod_{j>i} (1 - a_j)
    return a * keep_after


def run(**settings):
    """Train every (schedule, length, peak rate, seed); see the module docstring.

    Settings (defaults in ``DEFAULTS``): ``steps`` (training lengths ``T``), ``peak_lrs``, ``seeds``,
    ``batch_size``, ``weight_decay``, ``warmup_fraction``, ``cosine_final`` (10x decay's floor as a
    fraction of the peak), ``problem`` (settings of ``regression_1d``).

    Returns a dict: ``excess`` and ``test_loss``, arrays ``[schedule, length, peak_lr, seed]`` with
    schedules ``SCHEDULES = ("d2z", "cos10")``; ``mean`` (over seeds); ``best_lr`` and ``best``
    ``[schedule, length]`` (the peak rate with the lowest mean excess risk, and that mean);
    ``best_seeds`` ``[schedule, length, seed]`` (each seed's excess at that rate); ``ratio``
    ``[length]`` (``best d2z / best cos10``); ``tokens_per_parameter`` ``[length]``; ``lr_curves``
    and ``ema`` (the schedules at the best peak rates of the longest length and their coefficients
    ``c_{T,i}``); and the ``settings``.
    """
    s = with_defaults(__name__, DEFAULTS, settings)
    s["problem"] = {**DEFAULTS["problem"], **settings.get("problem", {})}
    steps, lrs, seeds = tuple(int(T) for T in s["steps"]), tuple(float(x) for x in s["peak_lrs"]), tuple(s["seeds"])
    prob = problems.create("regression_1d", **s["problem"])
    shape = (len(SCHEDULES), len(steps), len(lrs), len(seeds))
    excess, test = np.zeros(shape), np.zeros(shape)
    grid = [(i, j, q) for i in range(len(SCHEDULES)) for j in range(len(lrs)) for q in range(len(seeds))]
    for n, T in enumerate(steps):
        scheds = [make_schedule(SCHEDULES[i], lrs[j], T, s["warmup_fraction"], s["cosine_final"])
                  for i, j, _ in grid]
        state = runs.start(prob, [seeds[q] for _, _, q in grid])
        state = runs.train(prob, state, runs.lr_table(scheds, T), s["batch_size"], s["weight_decay"])
        e, tl = runs.excess_risk(prob, state["w"]), runs.test_loss(prob, state["w"])
        for r, (i, j, q) in enumerate(grid):
            excess[i, n, j, q], test[i, n, j, q] = e[r], tl[r]
    mean = excess.mean(axis=-1)
    best_idx = mean.argmin(axis=-1)                                  # [schedule, length]
    best_lr = np.array(lrs)[best_idx]
    best = np.take_along_axis(mean, best_idx[..., None], axis=-1)[..., 0]
    best_seeds = np.take_along_axis(excess, best_idx[..., None, None], axis=2)[:, :, 0, :]
    T_last = steps[-1]
    curves = {k: np.array([make_schedule(k, best_lr[i, -1], T_last, s["warmup_fraction"], s["cosine_final"])(t)
                           for t in range(T_last)]) for i, k in enumerate(SCHEDULES)}
    ema = {k: ema_coefficients(curves[k], s["weight_decay"]) for k in SCHEDULES}
    return {"settings": s, "schedules": SCHEDULES, "steps": np.array(steps), "peak_lrs": np.array(lrs),
            "seeds": np.array(seeds), "excess": excess, "test_loss": test, "mean": mean, "best_lr": best_lr,
            "best": best, "best_seeds": best_seeds, "ratio": best[0] / best[1],
            "tokens_per_parameter": np.array(steps) * s["batch_size"] / prob.dim,
            "lr_curves": curves, "ema": ema}


def plot(result, ax=None):
    """(a) the two schedules at their best peak rates (longest run) and their update-combination
    coefficients; (b) excess risk against the peak rate, one line per schedule and length; (c) the
    best excess risk against the training length.

    ``ax``: ``None`` (a new figure with three panels), one Axes (panel (c), the claim) or three Axes.
    """
    import matplotlib.pyplot as plt
    from .. import plot as rplot

    single = ax is not None and hasattr(ax, "plot")
    style = {"d2z": "-", "cos10": "--"}
    with rplot.style():
        if ax is None:
            _, axes = plt.subplots(1, 3, figsize=(14, 3.8))
        else:
            axes = [None, None, ax] if single else list(ax)
        colors = rplot.COLORS
        steps = result["steps"]
        if axes[0] is not None:
            a = axes[0]
            twin = a.twinx()
            for i, k in enumerate(result["schedules"]):
                a.plot(result["lr_curves"][k], style[k], color=colors[i], label=f"{k} lr")
                twin.plot(result["ema"][k], style[k], color=colors[i], alpha=0.4, lw=0.8)
            a.set_xlabel("step")
            a.set_ylabel("learning rate")
            twin.set_ylabel("weight of update i in w_T (faint)")
            a.set_title(f"(a) schedules, T = {steps[-1]}")
            a.legend(loc="upper right")
        if axes[1] is not None:
            a = axes[1]
            for n, T in enumerate(steps):
                for i, k in enumerate(result["schedules"]):
                    a.plot(result["peak_lrs"], result["mean"][i, n], style[k] + "o", color=colors[n], ms=3,
                           label=f"{k}, T={T}")
            a.set_xscale("log")
            a.set_yscale("log")
            a.set_xlabel("peak learning rate")
            a.set_ylabel("excess risk (mean over seeds)")
            a.set_title("(b) peak-rate sweeps")
            a.legend(fontsize=7, ncol=2)
        if axes[2] is not None:
            a = axes[2]
            for i, k in enumerate(result["schedules"]):
                a.plot(steps, result["best"][i], style[k] + "o", color=colors[i], label=k)
            a.set_xscale("log")
            a.set_yscale("log")
            a.set_xlabel("training steps T")
            a.set_ylabel("best excess risk")
            a.set_title("(c) at the best peak rate")
            a.legend()
        if ax is None:
            axes[0].figure.tight_layout()
    return ax if single else axes
