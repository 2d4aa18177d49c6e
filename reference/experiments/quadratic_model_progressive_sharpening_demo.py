"""Progressive sharpening and the edge of stability without a neural network.

Demonstrates "Second-order regression models exhibit progressive sharpening to the edge of
stability" (Atish Agarwala, Fabian Pedregosa, Jeffrey Pennington, ICML 2023, arXiv:2210.04860).

A model linear in its parameters (the constant-NTK regime) has a constant Hessian: GD either
converges (``eta lambda_max < 2``) or diverges, and nothing sharpens. The next simplest model is
quadratic in the parameters, the *second-order regression model*

    z_a(theta) = z0_a + G_a . theta + 1/2 theta^T Q_a theta       (residual of output a = 1..M)
    L(theta)   = 1/(2M) sum_a z_a(theta)^2,

whose Jacobian ``J = G + Q theta`` (and so its NTK ``J J^T / M``) moves during training. The
paper's claims, each checked by ``run()``:

* **progressive sharpening** with no network: for random ``G`` and ``Q`` the top NTK eigenvalue
  ``lambda`` grows during training (under gradient flow it converges to a value ``lambda_GF``
  several times its initial one);
* **edge of stability**: with a step ``eta`` such that ``2 / eta < lambda_GF``, GD's ``lambda``
  rises to ``2 / eta`` and stabilises there, while the loss goes on decreasing, non-monotonically;
  it does *not* follow gradient flow to ``lambda_GF``;
* **the limit differs slightly from 2 / eta**: a model with a single residual (``M = 1``) is
  driven to ``eta lambda`` slightly *below* ``2`` and converges there;
* with ``Q = 0`` (a linear model, constant NTK) none of this happens.

Setup (ours; the paper's exact sizes and scales differ): ``G`` and ``Q`` with independent
``N(0, 1/D)`` entries (``Q`` symmetrised, times ``q``), ``z0 ~ N(0, 1)``, ``theta_0 = 0``.
Multi-output case ``D = 50``, ``M = 45``, ``q = 0.5``: ``lambda_GF`` is measured by GD with a small
step (``0.2 / lambda_0``, 3000 steps: converged), then ``eta = 2 / (0.8 lambda_GF)``, so that gradient
flow would overshoot GD's edge by 25 %. Single-residual case ``D = 100``, ``M = 1``, ``q = 2``,
``z0 = 1``, ``eta = 0.8``. Everything is closed form (``_eos.QuadraticRegressionModel``), the NTK
eigenvalue is computed at every step.

Not reproduced: the paper's *explicit* limiting value of ``eta lambda`` for its two-dimensional
analysis (its derivation was not available to us; the test asserts only that the single-residual
limit lies in ``[1.8, 2)``). In our runs the single-residual model's sharpening is also fast (a
handful of steps), the multi-output model's progressive (tens of steps).
"""
from __future__ import annotations

import numpy as np

from . import _eos, register, with_defaults

register(__name__, title="Second-order regression models exhibit progressive sharpening to the edge of stability",
         authors="Agarwala, Pedregosa, Pennington", year=2023, arxiv="2210.04860", family="sharpness")

__all__ = ["run", "plot", "DEFAULTS"]

DEFAULTS = dict(seeds=(0, 1, 2), D=50, M=45, q=0.5, target=0.8, steps=1000, flow_steps=3000,
                single_D=100, single_q=2.0, single_lr=0.8, single_steps=300)


def _first(mask):
    hit = np.nonzero(mask)[0]
    return int(hit[0]) if hit.size else None


def _multi(s, seed):
    model = _eos.QuadraticRegressionModel.random(s["D"], s["M"], seed=seed, q_scale=s["q"])
    theta0 = np.zeros(model.D)
    lam0 = model.ntk_eigenvalue(theta0)
    flow = model.run(theta0, 0.2 / lam0, s["flow_steps"], every=s["flow_steps"])
    lam_gf = float(flow["ntk"][-1])
    lr = 2.0 / (s["target"] * lam_gf)
    gd = model.run(theta0, lr, s["steps"], every=50)
    linear = _eos.QuadraticRegressionModel(model.z0, model.G, np.zeros_like(model.Q))
    lin = linear.run(theta0, lr, 200, every=200)
    ratio = gd["ntk"] * lr / 2.0
    reach = _first(ratio >= 0.95)
    loss = gd["loss"]
    up = np.diff(loss) > 0
    half = s["steps"] // 2
    return {"lr": lr, "lambda0": lam0, "lambda_gf": lam_gf, "flow_ntk": flow["ntk"], "flow_loss": flow["loss"],
            "ntk": gd["ntk"], "loss": loss, "sharp_steps": gd["sharp_steps"], "sharpness": gd["sharpness"],
            "ratio": ratio, "linear_ntk": lin["ntk"], "linear_loss": lin["loss"],
            "summary": {"initial_ratio": float(ratio[0]), "gf_ratio": lam_gf * lr / 2.0, "reach_step": reach,
                        "median_second_half": float(np.median(ratio[half:])),
                        "q10_second_half": float(np.quantile(ratio[half:], 0.1)),
                        "q90_second_half": float(np.quantile(ratio[half:], 0.9)),
                        "increase_after": float(up[reach:].mean()) if reach is not None else float("nan"),
                        "increase_before": float(up[:reach].mean()) if reach else 0.0,
                        "initial_loss": float(loss[0]), "final_loss": float(loss[-1]),
                        "hessian_final_ratio": float(gd["sharpness"][-1] * lr / 2.0),
                        "linear_ntk_range": float(np.ptp(lin["ntk"]) / lin["ntk"][0]),
                        "linear_increase": float((np.diff(lin["loss"]) > 0).mean())}}


def _single(s, seed):
    model = _eos.QuadraticRegressionModel.random(s["single_D"], 1, seed=seed, q_scale=s["single_q"])
    model.z0 = np.array([1.0])
    theta0 = np.zeros(model.D)
    lam0 = model.ntk_eigenvalue(theta0)
    flow = model.run(theta0, 0.02 / lam0, 1000, every=1000)
    lr = s["single_lr"]
    gd = model.run(theta0, lr, s["single_steps"], every=s["single_steps"])
    return {"lr": lr, "eta_lambda": gd["ntk"] * lr, "loss": gd["loss"],
            "summary": {"initial": float(lam0 * lr), "gradient_flow": float(flow["ntk"][-1] * lr),
                        "final": float(gd["ntk"][-1] * lr), "final_loss": float(gd["loss"][-1]),
                        "final_hessian": float(gd["sharpness"][-1] * lr)}}


def run(**settings):
    """``multi[seed]`` (D=50, M=45): ``lr``, ``lambda_gf``, per-step ``ntk``, ``ratio`` (= ``eta
    lambda / 2``), ``loss``, the linear (``Q = 0``) control and a ``summary``; ``single[seed]``
    (M=1): ``eta_lambda`` per step and a ``summary`` (``initial``, ``gradient_flow``, ``final``
    values of ``eta lambda``, ``final_loss``)."""
    s = with_defaults(__name__, DEFAULTS, settings)
    return {"settings": s, "multi": {seed: _multi(s, seed) for seed in s["seeds"]},
            "single": {seed: _single(s, seed) for seed in s["seeds"]}}


def plot(result, ax=None):
    """``eta lambda / 2`` of the top NTK eigenvalue against steps: GD (each seed), gradient flow's
    limit (dotted) and the linear model (dashed)."""
    import matplotlib.pyplot as plt
    from .. import plot as rplot

    with rplot.style():
        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 3.5))
        for i, (seed, r) in enumerate(result["multi"].items()):
            color = rplot.COLORS[i % len(rplot.COLORS)]
            ax.plot(r["ratio"], color=color, lw=0.8, label=f"GD, seed {seed}")
            ax.axhline(r["summary"]["gf_ratio"], color=color, ls=":", lw=0.8)
            ax.plot(r["linear_ntk"] * r["lr"] / 2, color=color, ls="--", lw=0.8)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(left=0)
        ax.set_xlabel("step")
        ax.set_ylabel("eta lambda_NTK / 2")
        ax.set_title("NTK sharpening to 2/eta (dotted: gradient flow)")
        ax.legend()
    return ax
