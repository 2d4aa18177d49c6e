"""Exploding gradients and gradient-norm clipping on a single-unit recurrent net.

Demonstrates "On the difficulty of training Recurrent Neural Networks"
(Pascanu, Mikolov, Bengio, ICML 2013, arXiv:1211.5063), whose clipping rule is
``reference/optim/clipping.py``. The paper's geometric argument (its
error-surface figure with "high curvature walls") uses the smallest recurrent
network there is, one hidden unit and no input, started from a given state
and trained so that its state after ``T`` steps hits a target:

    x_0 = x0,   x_t = w sigma(x_{t-1}) + b   (t = 1..T),   L(w, b) = (x_T - target)^2

with ``sigma`` the logistic sigmoid. For ``w`` large enough the map
``x -> w sigma(x) + b`` has two stable fixed points (the paper's bifurcation
diagram of a single unit with ``w = 5``, after Doya 1993); ``x_T`` then
depends on which basin ``x_0`` is in, and near the parameters where the basin boundary crosses ``x_0`` the loss has
a *cliff*: ``dL/d(w, b)`` is a product of ``T`` Jacobians close to the
unstable fixed point, orders of magnitude larger than elsewhere. A plain
gradient step that lands there throws the parameters far away; clipping the
gradient's norm at ``tau`` keeps the direction and bounds the step by
``lr * tau``.

The settings (``x0 = 0.5``, ``T = 50``, ``target = 0.7``, initial ``(w, b)``
drawn uniformly from ``[-3, 8] x [-5, 3]`` per seed, 300 full-gradient
steps, ``tau = 5``) are ours, chosen so that the walls lie inside the
region the runs explore; the paper gives the model and the task, not these
numbers. ``run()`` trains plain SGD (``create("sgd")``) and clipped SGD
(``create("clip_grad_norm", inner=create("sgd"))``) for every learning rate
and seed, with the gradient from back-propagation through time written out
below, and returns the numbers the claim rests on:

* the cliff: the wall is the curve ``b = x0 - w sigma(x0)`` (for ``w sigma'(x0)
  > 1``), where ``x0`` sits on the unstable fixed point; on a slice across it
  (``wall``, at ``w = 5`` as in the bifurcation diagram) the gradient norm
  peaks at hundreds of times its median and the loss jumps; runs that meet it see
  gradients up to thousands of times their initial norm (``spike_ratio``);
* stability: a plain SGD step taken at the wall throws the parameters far
  (``step_norm`` up to ``lr * ||g||``, units of the whole box at small ``lr``),
  while clipped steps never exceed ``lr * tau``; at the learning rates where
  plain SGD ends far from the target for most seeds (``lr = 1``) or diverges
  (``lr = 2``), clipped SGD reaches the target (``converged``) or at least
  stays bounded, and at small learning rates it does about as well as SGD.

The threshold ``tau = 5`` is about half the median gradient norm over the box
(about 10), in the spirit of the paper's advice to pick ``tau`` near the
average norm: then clipping leaves typical steps alone and acts only at
the walls. Far below the typical norm (``tau = 1``) clipped SGD is normalised
gradient descent and is slow at small ``lr``; far above it the large-``lr``
runs are no longer protected.

Pure Python floats inside the recurrence keep a run at a few milliseconds;
the default ``run()`` takes a few seconds on a laptop CPU.
"""
from __future__ import annotations

import math

import numpy as np

from .. import optim
from . import with_defaults

__all__ = ["loss_and_grad", "wall_bias", "run", "plot", "METHODS", "DEFAULTS"]

METHODS = ("sgd", "clipped sgd")

DEFAULTS = dict(lrs=(0.01, 0.03, 0.1, 0.3, 1.0, 2.0), seeds=tuple(range(8)), steps=300, max_norm=5.0,
                x0=0.5, T=50, target=0.7, w_range=(-3.0, 8.0), b_range=(-5.0, 3.0), tol=1e-3,
                diverge_loss=1e6, grid=121, wall_w=5.0)


def _sigmoid(x, tanh=math.tanh):
    """The logistic sigmoid, written with ``tanh`` so that it never overflows."""
    return 0.5 + 0.5 * tanh(0.5 * x)


def loss_and_grad(w, b, x0=0.5, T=50, target=0.7, tanh=math.tanh):
    """``L = (x_T - target)^2`` and ``(dL/dw, dL/db)`` by back-propagation through time.

    Works on Python floats (``tanh=math.tanh``, fast for one run) and on NumPy
    arrays of ``(w, b)`` values (``tanh=np.tanh``, for the loss surface).
    """
    xs = [x0]
    for _ in range(T):                       # forward: x_t = w sigma(x_{t-1}) + b
        xs.append(w * _sigmoid(xs[-1], tanh) + b)
    r = xs[-1] - target
    delta = 2.0 * r                          # dL/dx_T
    gw = gb = 0.0
    for t in range(T, 0, -1):                # backward: delta_{t-1} = delta_t * w sigma'(x_{t-1})
        s = _sigmoid(xs[t - 1], tanh)
        gw = gw + delta * s
        gb = gb + delta
        delta = delta * w * s * (1.0 - s)
    return r * r, gw, gb


class _Oracle:
    """``oracle(params) -> (loss, grads)`` for ``params = {"w": 0-d array, "b": 0-d array}``;
    records the raw gradient norm of every call (before any clipping)."""

    def __init__(self, x0, T, target):
        self.x0, self.T, self.target = x0, T, target
        self.losses, self.norms = [], []

    def __call__(self, params):
        loss, gw, gb = loss_and_grad(float(params["w"]), float(params["b"]), self.x0, self.T, self.target)
        self.losses.append(loss)
        self.norms.append(math.hypot(gw, gb))
        return np.asarray(loss), {"w": np.asarray(gw), "b": np.asarray(gb)}


def _optimizer(method, lr, max_norm):
    sgd = optim.create("sgd", lr=lr)
    return sgd if method == "sgd" else optim.create("clip_grad_norm", inner=sgd, max_norm=max_norm)


def _train(method, lr, w0, b0, s):
    """One run: losses after 0..steps steps, raw gradient norms, step norms, the path, diverged?
    (NaN after a divergence)."""
    opt = _optimizer(method, lr, s["max_norm"])
    oracle = _Oracle(s["x0"], s["T"], s["target"])
    params = {"w": np.asarray(w0, dtype=np.float64), "b": np.asarray(b0, dtype=np.float64)}
    state = opt.init(params)
    n = s["steps"]
    loss, norms, steps = np.full(n + 1, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    path = np.full((n + 1, 2), np.nan)
    path[0] = w0, b0
    with np.errstate(all="ignore"):
        for k in range(n):
            try:
                new, state = opt.step(params, state, oracle)     # evaluates L and its gradient at params
            except FloatingPointError:                          # a non-finite gradient: blown up
                return loss, norms, steps, path, True
            loss[k], norms[k] = oracle.losses[-1], oracle.norms[-1]
            if not loss[k] <= s["diverge_loss"]:                # also catches NaN
                return loss, norms, steps, path, True
            steps[k] = math.hypot(float(new["w"] - params["w"]), float(new["b"] - params["b"]))
            params = new
            path[k + 1] = float(params["w"]), float(params["b"])
        loss[n] = loss_and_grad(*path[n], s["x0"], s["T"], s["target"])[0]
    return loss, norms, steps, path, not loss[n] <= s["diverge_loss"]


def _surface(s):
    """Loss and gradient norm on a ``grid x grid`` lattice of ``(w, b)`` (the paper's error-surface picture)."""
    w = np.linspace(*s["w_range"], s["grid"])
    b = np.linspace(*s["b_range"], s["grid"])
    W, B = np.meshgrid(w, b)
    loss, gw, gb = loss_and_grad(W, B, s["x0"], s["T"], s["target"], tanh=np.tanh)
    return {"w": w, "b": b, "loss": loss, "grad_norm": np.hypot(gw, gb)}


def wall_bias(w, x0=0.5):
    """The wall: the bias ``b = x0 - w sigma(x0)`` that makes ``x0`` a fixed point of
    ``x -> w sigma(x) + b`` (unstable, a basin boundary, when ``w sigma'(x0) > 1``)."""
    return x0 - w * _sigmoid(x0, np.tanh)


def _wall(s):
    """A slice across the wall at ``w = wall_w``: ``b`` in ``b* +- 1`` (2001 points, ``b*`` the centre)."""
    w = float(s["wall_w"])
    b_star = float(wall_bias(w, s["x0"]))
    b = b_star + np.linspace(-1.0, 1.0, 2001)
    loss, gw, gb = loss_and_grad(np.full_like(b, w), b, s["x0"], s["T"], s["target"], tanh=np.tanh)
    g = np.hypot(gw, gb)
    return {"w": w, "b": b, "b_star": b_star, "loss": loss, "grad_norm": g,
            "peak_over_median": float(g.max() / np.median(g))}


def run(**settings):
    """Train plain and clipped SGD for every learning rate and seed; see the module docstring.

    Settings (defaults in ``DEFAULTS``): ``lrs``, ``seeds``, ``steps``,
    ``max_norm`` (the clipping threshold ``tau``), ``x0``, ``T``, ``target``,
    ``w_range``/``b_range`` (the box the initial ``(w, b)`` are drawn from,
    also the plotted region), ``tol`` (a run *converged* when its final loss
    is below it), ``diverge_loss`` (a run *diverged* when its loss exceeds it
    or a gradient is not finite), ``grid`` (surface resolution), ``wall_w``
    (where the wall is sliced).

    Returns a dict of arrays indexed ``[method, lr, seed, ...]`` with methods
    ``METHODS = ("sgd", "clipped sgd")``: ``loss`` (after 0..steps steps,
    NaN after a divergence), ``grad_norm`` (the raw gradient norm at each
    step, before clipping), ``step_norm`` (``||w_{k+1} - w_k||``), ``path``
    (the ``(w, b)`` visited), ``final_loss`` (``inf`` if diverged),
    ``diverged``, ``converged``, ``spike_ratio`` (a run's largest gradient
    norm over its initial one), ``success_rate`` (``[method, lr]``: the
    fraction of seeds converged); plus ``init`` (``[seed, (w0, b0)]``),
    ``surface`` (loss and gradient norm on a grid), ``wall`` (the slice across
    the wall at ``w = wall_w``, with ``peak_over_median``) and the
    ``settings`` used.
    """
    s = with_defaults(__name__, DEFAULTS, settings)
    lrs, seeds = tuple(float(v) for v in s["lrs"]), tuple(int(v) for v in s["seeds"])
    for lr in lrs:
        optim.check_lr("lrs", lr, "exploding_gradients")
    optim.check_range("max_norm", s["max_norm"], 0.0, low_open=True, where="exploding_gradients")
    if int(s["steps"]) < 1 or int(s["T"]) < 1:
        raise ValueError(f"exploding_gradients: steps and T must be >= 1, got {s['steps']}, {s['T']}")
    s.update(lrs=lrs, seeds=seeds, steps=int(s["steps"]), T=int(s["T"]))

    rngs = [np.random.default_rng(seed) for seed in seeds]
    init = np.array([[rng.uniform(*s["w_range"]), rng.uniform(*s["b_range"])] for rng in rngs])
    shape = (len(METHODS), len(lrs), len(seeds))
    n = s["steps"]
    loss = np.full(shape + (n + 1,), np.nan)
    grad_norm = np.full(shape + (n,), np.nan)
    step_norm = np.full(shape + (n,), np.nan)
    path = np.full(shape + (n + 1, 2), np.nan)
    diverged = np.zeros(shape, dtype=bool)
    for i, method in enumerate(METHODS):
        for j, lr in enumerate(lrs):
            for k, (w0, b0) in enumerate(init):
                out = _train(method, lr, w0, b0, s)
                loss[i, j, k], grad_norm[i, j, k], step_norm[i, j, k], path[i, j, k], diverged[i, j, k] = out
    final = np.where(diverged, np.inf, loss[..., -1])
    spike = np.nanmax(grad_norm, axis=-1) / grad_norm[..., 0]
    converged = final < s["tol"]
    return {"settings": s, "methods": METHODS, "lrs": np.array(lrs), "seeds": np.array(seeds), "init": init,
            "loss": loss, "grad_norm": grad_norm, "step_norm": step_norm, "path": path,
            "final_loss": final, "diverged": diverged, "converged": converged,
            "success_rate": converged.mean(axis=-1), "spike_ratio": spike, "surface": _surface(s),
            "wall": _wall(s)}


def plot(result, ax=None):
    """The figure: (a) the gradient norm over ``(w, b)`` with the wall and runs at ``lr = 1``,
    (b) the fraction of seeds that reach the target against the learning rate,
    (c) the slice across the wall: loss and gradient norm against ``b``.

    ``ax``: ``None`` (a new figure with the three panels), one Axes (panel (b),
    the claim, only) or a sequence of three Axes. Returns the axes drawn on.
    """
    import matplotlib.pyplot as plt
    from .. import plot as rplot

    single = ax is not None and hasattr(ax, "plot")
    with rplot.style():
        if ax is None:
            _, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        else:
            axes = [None, ax, None] if single else list(ax)
        lrs, colors, s = result["lrs"], rplot.COLORS, result["settings"]
        if axes[0] is not None:
            a, surf = axes[0], result["surface"]
            im = a.pcolormesh(surf["w"], surf["b"], np.log10(surf["grad_norm"] + 1e-12), shading="auto",
                              cmap="magma")
            plt.colorbar(im, ax=a, label="log10 ||grad L||")
            s0 = _sigmoid(s["x0"], np.tanh)
            w_wall = np.linspace(max(1.0 / (s0 * (1.0 - s0)), surf["w"][0]), surf["w"][-1], 50)
            a.plot(w_wall, wall_bias(w_wall, s["x0"]), "w--", lw=0.8, label="wall")
            j = int(np.argmin(np.abs(lrs - 1.0)))
            for i, method in enumerate(result["methods"]):
                for k in range(min(3, result["path"].shape[2])):
                    p = result["path"][i, j, k]
                    a.plot(p[:, 0], p[:, 1], color=colors[i], lw=0.9, alpha=0.9,
                           label=f"{method}, lr={lrs[j]:g}" if k == 0 else None)
                    a.plot(p[0, 0], p[0, 1], "o", color=colors[i], ms=3)
            a.set_xlim(surf["w"][0], surf["w"][-1])
            a.set_ylim(surf["b"][0], surf["b"][-1])
            a.set_xlabel("w")
            a.set_ylabel("b")
            a.set_title("(a) ||grad L(w, b)|| and runs")
            a.legend(loc="lower left")
        if axes[1] is not None:
            a = axes[1]
            for i, method in enumerate(result["methods"]):
                a.plot(lrs, result["success_rate"][i], "o-", color=colors[i], label=method)
            a.set_xscale("log")
            a.set_ylim(-0.05, 1.05)
            a.set_xlabel("learning rate")
            a.set_ylabel(f"fraction of seeds with loss < {s['tol']:g}")
            a.set_title(f"(b) reaching the target (tau = {s['max_norm']:g})")
            a.legend()
        if axes[2] is not None:
            a, wall = axes[2], result["wall"]
            a.plot(wall["b"], wall["grad_norm"], color=colors[0], lw=1.0, label="||grad L||")
            a.set_yscale("log")
            a.set_xlabel(f"b  (w = {wall['w']:g})")
            a.set_ylabel("||grad L||")
            twin = a.twinx()
            twin.plot(wall["b"], wall["loss"], color=colors[1], lw=1.0, label="L")
            twin.set_ylabel("L", color=colors[1])
            a.set_title(f"(c) the cliff: peak {wall['peak_over_median']:.0f} x median")
        if ax is None:
            axes[0].figure.tight_layout()
    return ax if single else axes
