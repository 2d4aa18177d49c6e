"""At the edge of stability the loss oscillates, yet the gradient-flow solution's sharpness falls monotonically.

Demonstrates "Gradient Descent Monotonically Decreases the Sharpness of Gradient Flow Solutions in
Scalar Networks and Beyond" (Itai Kreisler, Mor Shpigel Nacson, Daniel Soudry, Yair Carmon,
ICML 2023, arXiv:2305.13064).

At the edge of stability (EoS) neither the loss nor the sharpness of GD's iterates is monotone.
The paper's monotone quantity: the **GFS sharpness** ``S(w)``, the sharpness (top Hessian
eigenvalue) of the *gradient flow solution* from ``w``, the minimiser that gradient flow
``dw/dt = -grad L(w)`` started at ``w`` converges to ("train with an infinitesimal step from now on").

**Scalar networks** (the paper's theory, ``reference.problems`` ``scalar_network``):

    L(w) = 1/2 (w_1 w_2 ... w_D - y)^2,

Gradient flow conserves every ``w_i^2 - w_j^2`` (``d w_i^2 / dt = -2 (prod w - y) prod w`` is the
same for all ``i``), so the GFS from ``w`` is ``w*_i = sign(w_i) sqrt(w_i^2 + c)`` with the one
``c > -min_i w_i^2`` that makes ``prod_i w*_i = y`` (a monotone equation in ``c``, solved by
Brent's method), and at a minimiser the Hessian is ``g g^T`` with ``g_i = y / w*_i``, so

    S(w) = sum_i (y / w*_i)^2         (smallest, D |y|^(2 - 2/D), at the balanced minimiser).

The paper proves that GD with step ``eta`` decreases ``S(w_t)`` monotonically (in the setting of its
theorem, GFS sharpness above ``2 / eta`` at the start) and that GD then converges to the EoS: a
minimiser whose sharpness is at most, and close to, ``2 / eta``.

``run()``: depth ``D = 4``, target ``y = 2``, ``w_0 = exp(0.5 z)`` (``z ~ N(0, I)``: positive,
unbalanced), and ``eta`` such that ``2 / eta`` lies halfway between the balanced minimiser's
sharpness and ``S(w_0)`` (so that some minimiser is stable for GD, but not the one gradient flow
would reach), raised where needed so that ``S(w_0) <= 1.3 (2 / eta)``: with larger first steps GD
can flip the sign of a weight, which leaves the setting analysed (the paper's theorem has its own
conditions on the initialisation; we did not check ours against them). Recorded every step: the
loss, the iterate's sharpness (the closed-form Hessian :func:`hessian`, equal to
``problem.sharpness``'s autograd Hessian) and ``S(w_t)``. :func:`gradient_flow` (RK4 on the
oracle) checks the closed-form GFS against an integrated flow.

Not reproduced: the paper's "beyond" experiments (GFS sharpness of squared-loss regression
networks, where the GFS has no closed form and each point needs a full gradient-flow run).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from . import register, with_defaults
from .. import problems

register(__name__, title="Gradient Descent Monotonically Decreases the Sharpness of Gradient Flow Solutions in "
                         "Scalar Networks and Beyond",
         authors="Kreisler, Nacson, Soudry, Carmon", year=2023, arxiv="2305.13064", family="sharpness")

__all__ = ["gfs", "gfs_sharpness", "hessian", "gradient_flow", "run", "plot", "DEFAULTS"]

DEFAULTS = dict(seeds=(0, 1, 2, 3, 4), depth=4, target=2.0, init_std=0.5, steps=1000, position=0.5, max_ratio=1.3)


def gfs(w, y):
    """The gradient-flow solution of ``1/2 (prod w - y)^2`` from ``w`` (no zero entries; ``prod w``
    and ``y`` of the same sign): ``sign(w_i) sqrt(w_i^2 + c)`` with ``prod_i sqrt(w_i^2 + c) = |y|``."""
    w = np.asarray(w, dtype=np.float64)
    if np.any(w == 0) or np.prod(np.sign(w)) != np.sign(y):
        raise ValueError("gfs: needs w without zeros and sign(prod w) == sign(y)")
    w2 = w ** 2
    f = lambda c: 0.5 * np.sum(np.log(w2 + c)) - np.log(abs(y))        # increasing in c
    lo = -w2.min() * (1.0 - 1e-14)
    hi = 1.0
    while f(hi) < 0:
        hi *= 2.0
    c = brentq(f, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)
    return np.sign(w) * np.sqrt(w2 + c)


def gfs_sharpness(w, y):
    """``S(w) = sum_i (y / w*_i)^2``, the sharpness at the gradient-flow solution ``w* = gfs(w, y)``."""
    return float(np.sum((y / gfs(w, y)) ** 2))


def hessian(w, y):
    """The Hessian of ``1/2 (prod w - y)^2`` in closed form: with ``p = prod w`` and ``g_i = p / w_i``
    (the product of the other entries), ``H = g g^T + (p - y) P``, ``P_ij = p / (w_i w_j)`` off the
    diagonal and ``0`` on it. (Written with products of the other entries, not divisions, so
    that it holds at ``w_i = 0`` too.)"""
    w = np.asarray(w, dtype=np.float64)
    D = w.size
    others = np.array([np.prod(np.delete(w, i)) for i in range(D)])            # g_i
    P = np.array([[np.prod(np.delete(w, [i, j])) if i != j else 0.0 for j in range(D)] for i in range(D)])
    return np.outer(others, others) + (np.prod(w) - y) * P


def gradient_flow(oracle, params, dt=1e-3, steps=20000):
    """Integrate ``dw/dt = -grad L(w)`` with the classical Runge-Kutta method (step ``dt``) from
    ``params`` (a dict of arrays) for ``steps`` steps; returns the end point."""
    def f(p):
        return {k: -g for k, g in oracle(p)[1].items()}

    w = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    for _ in range(steps):
        k1 = f(w)
        k2 = f({k: w[k] + 0.5 * dt * k1[k] for k in w})
        k3 = f({k: w[k] + 0.5 * dt * k2[k] for k in w})
        k4 = f({k: w[k] + dt * k3[k] for k in w})
        w = {k: w[k] + dt / 6.0 * (k1[k] + 2 * k2[k] + 2 * k3[k] + k4[k]) for k in w}
    return w


def _one(s, seed):
    prob = problems.create("scalar_network", depth=s["depth"], target=s["target"], init_std=s["init_std"])
    y = prob.target
    oracle = prob.oracle()
    w = prob.init(seed)["w"]
    balanced = s["depth"] * abs(y) ** (2.0 - 2.0 / s["depth"])
    s0 = gfs_sharpness(w, y)
    edge = max(balanced + s["position"] * (s0 - balanced), s0 / s["max_ratio"])    # 2 / eta
    lr = 2.0 / edge
    n = s["steps"]
    loss, sharp, gfs_s = np.empty(n + 1), np.empty(n + 1), np.empty(n + 1)
    for t in range(n + 1):
        loss[t] = float(prob.loss({"w": w}))
        sharp[t] = np.linalg.eigvalsh(hessian(w, y))[-1]     # = prob.sharpness({"w": w}), faster
        gfs_s[t] = gfs_sharpness(w, y)
        if t < n:
            w = w - lr * oracle({"w": w})[1]["w"]
    rel_inc = np.diff(gfs_s) / gfs_s[:-1]
    return {"lr": lr, "edge": edge, "balanced": balanced, "loss": loss, "sharpness": sharp, "gfs_sharpness": gfs_s,
            "w": w, "summary": {"gfs_ratio_initial": float(gfs_s[0] / edge), "gfs_ratio_final": float(gfs_s[-1] / edge),
                                "gfs_max_relative_increase": float(rel_inc.max()),
                                "iterate_ratio_max": float(sharp.max() / edge),
                                "iterate_ratio_final": float(sharp[-1] / edge),
                                "iterate_increase": float((np.diff(sharp) > 0).mean()),
                                "loss_increase": float((np.diff(loss) > 0).mean()),
                                "initial_loss": float(loss[0]), "final_loss": float(loss[-1])}}


def run(**settings):
    """``runs[seed]``: ``lr``, ``edge`` (``2 / lr``), ``balanced`` (the flattest minimiser's
    sharpness), per-step ``loss``, ``sharpness`` (iterate) and ``gfs_sharpness``, and a
    ``summary``."""
    s = with_defaults(__name__, DEFAULTS, settings)
    return {"settings": s, "runs": {seed: _one(s, seed) for seed in s["seeds"]}}


def plot(result, ax=None):
    """Iterate sharpness (thin) and GFS sharpness (thick) over ``2 / eta``, each seed."""
    import matplotlib.pyplot as plt
    from .. import plot as rplot

    with rplot.style():
        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 3.5))
        for i, (seed, r) in enumerate(result["runs"].items()):
            color = rplot.COLORS[i % len(rplot.COLORS)]
            ax.plot(r["sharpness"] / r["edge"], color=color, lw=0.5, alpha=0.6)
            ax.plot(r["gfs_sharpness"] / r["edge"], color=color, lw=1.8, label=f"seed {seed}")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(left=0)
        ax.set_xlabel("step")
        ax.set_ylabel("sharpness / (2/eta)")
        ax.set_title("GFS sharpness (thick) falls monotonically; iterates' (thin) do not")
        ax.legend()
    return ax
