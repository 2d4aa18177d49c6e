"""Plots with one consistent style (matplotlib only).

* :func:`loss_curves` — loss against steps on a log scale, one line per
  optimizer (the median over seeds) with the seeds' range shaded;
* :func:`trajectories_2d` — optimizer paths over the contour plot of a 2-D
  problem (Rosenbrock, Beale, Rastrigin, a 2-D quadratic);
* :func:`compare_bars` — a bar chart of a :class:`reference.train.Table`;
* :func:`save` — write a figure as a PNG with no timestamp or version
  metadata, so regenerating an unchanged figure gives the same file.

Every function takes an optional ``ax`` and returns the axes it drew on.
"""
from __future__ import annotations

import numpy as np

from .backend import to_numpy

__all__ = ["loss_curves", "trajectories_2d", "compare_bars", "save", "style", "COLORS"]

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
          "#7f7f7f", "#bcbd22"]
_RC = {"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
       "axes.spines.right": False, "font.size": 9, "legend.fontsize": 8, "legend.frameon": False}


def style():
    """A context manager applying the library's plotting style."""
    import matplotlib.pyplot as plt
    return plt.rc_context(_RC)


def _axes(ax, figsize=(5, 3.5)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt
    with style():
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _histories(results):
    """Accept a Table, {label: [History]} or {label: History}."""
    if hasattr(results, "histories"):
        results = results.histories
    return {k: (v if isinstance(v, (list, tuple)) else [v]) for k, v in results.items()}


def loss_curves(results, ax=None, log=True, subtract=None, title=None):
    """Loss per step for each optimizer: median over seeds, shaded min-max band.

    ``subtract``: a value (e.g. the problem's optimal value) removed from every
    loss so that a log scale shows the suboptimality.
    """
    ax = _axes(ax)
    with style():
        for i, (label, hs) in enumerate(_histories(results).items()):
            n = min(len(h.loss) for h in hs)
            curves = np.stack([h.loss[:n] for h in hs])
            if subtract is not None:
                curves = curves - subtract
            steps = np.arange(1, n + 1)
            color = COLORS[i % len(COLORS)]
            ax.plot(steps, np.median(curves, axis=0), color=color, label=label, lw=1.4)
            if len(hs) > 1:
                ax.fill_between(steps, curves.min(axis=0), curves.max(axis=0), color=color, alpha=0.18, lw=0)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss" if subtract is None else "loss - optimum")
        if title:
            ax.set_title(title)
        ax.legend()
    return ax


def trajectories_2d(problem, results, ax=None, bounds=None, levels=30, log_levels=True, title=None):
    """Optimizer paths (``History.path``, from ``run(..., record_path=True)``) over contours.

    ``problem`` must have a single 2-D parameter (``{"w": (2,)}``). ``bounds``:
    ``((xmin, xmax), (ymin, ymax))``; by default the paths' extent with a margin.
    """
    (key, shape), = problem.param_shapes.items()
    if tuple(shape) != (2,):
        raise ValueError(f"trajectories_2d: needs a problem with one parameter of shape (2,), got {problem.param_shapes}")
    hists = _histories(results)
    paths = {label: np.array([to_numpy(p[key]) for p in hs[0].path]) for label, hs in hists.items()}
    if bounds is None:
        pts = np.concatenate([p for p in paths.values() if len(p)] or [np.zeros((1, 2))])
        if problem.optimum is not None:
            pts = np.vstack([pts, problem.optimum[key][None]])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = 0.15 * np.maximum(hi - lo, 1e-3)
        bounds = ((lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1]))
    (x0, x1), (y0, y1) = bounds
    xs, ys = np.linspace(x0, x1, 200), np.linspace(y0, y1, 200)
    grid = np.array([[float(problem.loss({key: np.array([x, y])})) for x in xs] for y in ys])
    ax = _axes(ax, figsize=(5, 4))
    with style():
        if log_levels:
            lv = np.geomspace(max(grid.min(), 1e-6) + 1e-12, grid.max(), levels)
            ax.contour(xs, ys, grid - min(grid.min(), 0) + 1e-12, levels=lv, cmap="Greys", linewidths=0.6)
        else:
            ax.contour(xs, ys, grid, levels=levels, cmap="Greys", linewidths=0.6)
        for i, (label, p) in enumerate(paths.items()):
            color = COLORS[i % len(COLORS)]
            if len(p):
                ax.plot(p[:, 0], p[:, 1], "-", color=color, lw=1.2, label=label, alpha=0.9)
                ax.plot(p[-1, 0], p[-1, 1], "o", color=color, ms=4)
        if problem.optimum is not None:
            ax.plot(*problem.optimum[key], "*", color="k", ms=10, label="optimum")
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel(f"{key}[0]")
        ax.set_ylabel(f"{key}[1]")
        if title:
            ax.set_title(title)
        ax.legend(loc="best")
    return ax


def compare_bars(table, ax=None, log=True, title=None):
    """Final loss (mean, with the seeds' std as error bars) per optimizer of a compare table."""
    ax = _axes(ax)
    with style():
        labels = [r["label"] for r in table.rows]
        means = np.array([r["final_mean"] for r in table.rows])
        stds = np.array([r["final_std"] for r in table.rows])
        ax.bar(labels, means, yerr=stds, color=[COLORS[i % len(COLORS)] for i in range(len(labels))], capsize=3)
        if log:
            ax.set_yscale("log")
        ax.set_ylabel("final loss")
        ax.set_title(title or f"{table.problem}, {table.steps} steps, {len(table.seeds)} seeds")
        ax.tick_params(axis="x", rotation=30)
    return ax


def save(fig, path):
    """Write ``fig`` as a PNG without metadata that changes between runs."""
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return path
