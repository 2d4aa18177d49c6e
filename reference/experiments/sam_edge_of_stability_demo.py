"""SAM drives the sharpness to its own edge of stability, far from any minimum.

Demonstrates "SAM operates far from home: eigenvalue regularization as a dynamical phenomenon"
(Atish Agarwala, Yann N. Dauphin, ICML 2023, arXiv:2302.08692).

Gradient descent with step ``eta`` on a quadratic with Hessian eigenvalue ``lambda`` multiplies the
error along its eigenvector by ``1 - eta lambda``; GD on a network sharpens until ``lambda_max``
reaches ``2 / eta`` and then stays there (the edge of stability, EoS; Cohen et al. 2021, see
``reference/experiments/_eos.py``). *Unnormalised* SAM (USAM),

    w_{t+1} = w_t - eta grad L(w_t + rho grad L(w_t)),

multiplies it by ``1 - eta lambda (1 + rho lambda)`` (the gradient at the ascent point is ``(I +
rho H) grad L`` on a quadratic), so its stability edge is the root of ``eta lambda (1 + rho
lambda) = 2``:

    lambda_USAM(eta, rho) = (sqrt(1 + 8 rho / eta) - 1) / (2 rho)   <  2 / eta.

The paper's claim: SAM's eigenvalue regularisation is a *dynamical* effect of this kind. The
sharpness does not merely end up small at a flat minimum: during training, while the loss is still
far from its minimum, ``lambda_max`` is driven to the SAM edge and hovers there. Their theory (on the
quadratic regression model, where the NTK eigenvalue plays the sharpness' role) predicts the plateau
as a function of ``eta`` and ``rho``. SAM proper normalises the ascent step, ``rho g / ||g||``: it is
USAM with the radius ``rho / ||g||``, so its edge is ``eta (lambda + rho lambda^2 / ||grad L||) = 2``,
which moves with the gradient norm (the "SAM edge" derived by Long and Bartlett, "Sharpness-Aware
Minimization and the Edge of Stability", arXiv:2309.12488).

``run()`` checks both settings:

* **small MLP** (``_eos.MLPTask``: a 2-16-16-1 tanh network, squared loss on 64 two-spirals points
  with ``+-1`` targets, last layer shrunk at init so that ``lambda_max(w_0)`` is about ``2``): full-batch
  GD, USAM at two radii and SAM, same ``eta`` and init, ``lambda_max`` by Lanczos every ``every``
  steps. Expected: GD sharpens to ``2 / eta``; USAM plateaus at ``lambda_USAM(eta, rho)``, lower for
  larger ``rho``, reached while the loss is still high; SAM's "SAM-normalised" sharpness ``eta
  (lambda + rho lambda^2 / ||g||) / 2`` sits at ``1`` from early on;
* **quadratic regression model** (``_eos.QuadraticRegressionModel``: ``D = 50`` parameters,
  ``M = 45`` residuals ``z_a = z0_a + G_a . theta + 1/2 theta^T Q_a theta``): the step is
  chosen so that GD stays *stable* all along (``2 / eta = 1.5 lambda_GF``, where ``lambda_GF``
  is the NTK eigenvalue gradient flow converges to), and ``rho`` so that ``lambda_USAM = 0.8
  lambda_GF``. Expected: GD's NTK eigenvalue converges below its edge, USAM's sharpens to
  ``lambda_USAM`` and stays there, although gradient flow would take it 25 % higher.

The paper's experiments are on CIFAR-10 networks and its theory on the quadratic regression
model; the MLP, its data, ``eta`` and the radii are ours (chosen so that everything runs in
seconds). SAM is ``reference.optim.create("sam", inner=GD, rho=rho)``; USAM has no optimizer module
and is GD on ``_eos.UnnormalizedSAMOracle`` (the oracle ``w -> grad L(w + rho grad L(w))``).
"""
from __future__ import annotations

import numpy as np

from . import _eos, register, with_defaults
from .. import optim

register(__name__, title="SAM operates far from home: eigenvalue regularization as a dynamical phenomenon",
         authors="Agarwala, Dauphin", year=2023, arxiv="2302.08692", family="sharpness")

__all__ = ["run", "plot", "DEFAULTS", "sam_ratio"]

DEFAULTS = dict(seeds=(0, 1, 2), lr=0.2, usam_rhos=(0.05, 0.2), sam_rho=0.05, steps=1000, sam_steps=400, every=10,
                n_train=64, hidden=(16, 16), out_scale=0.5,
                qrm_seeds=(0, 1, 2), qrm_D=50, qrm_M=45, qrm_q=0.5, qrm_steps=1000,
                qrm_gd_margin=1.5, qrm_target=0.8)


def sam_ratio(lr, rho, sharpness, grad_norm):
    """SAM's "normalised" sharpness ``lr (lambda + rho lambda^2 / ||g||) / 2``: ``1`` at its edge."""
    lam = np.asarray(sharpness, dtype=float)
    return lr * (lam + rho * lam ** 2 / np.asarray(grad_norm, dtype=float)) / 2.0


def _mlp(s, seed):
    task = _eos.MLPTask(n_train=s["n_train"], hidden=s["hidden"], out_scale=s["out_scale"], data_seed=seed)
    lr, w0 = s["lr"], task.init(seed)
    runs = {}
    gd = _eos.train(task, _eos.gd(lr), w0, s["steps"], every=s["every"])
    runs["gd"] = dict(gd, rho=0.0, threshold=2.0 / lr, summary=_eos.eos_summary(gd, 2.0 / lr))
    for rho in s["usam_rhos"]:
        r = _eos.train(task, _eos.gd(lr), w0, s["steps"], every=s["every"],
                       oracle=_eos.UnnormalizedSAMOracle(task, rho))
        thr = _eos.usam_threshold(lr, rho)
        runs[f"usam_{rho:g}"] = dict(r, rho=rho, threshold=thr, summary=_eos.eos_summary(r, thr))
    rho = s["sam_rho"]
    r = _eos.train(task, optim.create("sam", inner=_eos.gd(lr), rho=rho), w0, s["sam_steps"], every=s["every"])
    ratio = sam_ratio(lr, rho, r["sharpness"], r["grad_norm"][r["sharp_steps"]])
    hit = np.nonzero(ratio >= 0.95)[0]
    k = int(hit[0]) if hit.size else None
    summary = {"reach_step": None if k is None else int(r["sharp_steps"][k]),
               "ratio_median": float(np.median(ratio[k:])) if k is not None else float("nan"),
               "ratio_q10": float(np.quantile(ratio[k:], 0.1)) if k is not None else float("nan"),
               "ratio_q90": float(np.quantile(ratio[k:], 0.9)) if k is not None else float("nan"),
               "loss_at_reach": float(r["loss"][r["sharp_steps"][k]]) if k is not None else float("nan"),
               "initial_loss": float(r["loss"][0]), "final_loss": float(r["loss"][np.isfinite(r["loss"])][-1]),
               "sharpness_median": float(np.median(r["sharpness"][k:])) if k is not None else float("nan")}
    runs[f"sam_{rho:g}"] = dict(r, rho=rho, ratio=ratio, summary=summary)
    for run in runs.values():
        run.pop("params")
    return runs


def _qrm(s, seed):
    model = _eos.QuadraticRegressionModel.random(s["qrm_D"], s["qrm_M"], seed=seed, q_scale=s["qrm_q"])
    theta0 = np.zeros(model.D)
    lam0 = model.ntk_eigenvalue(theta0)
    flow = model.run(theta0, 0.2 / lam0, 3000, every=3000)      # small steps: gradient flow
    lam_gf = float(flow["ntk"][-1])
    lr = 2.0 / (s["qrm_gd_margin"] * lam_gf)                    # GD's own edge far above
    lam_star = s["qrm_target"] * lam_gf
    rho = (2.0 / lr - lam_star) / lam_star ** 2                 # lr lam* (1 + rho lam*) = 2
    gd = model.run(theta0, lr, s["qrm_steps"], every=50)
    usam = model.run(theta0, lr, s["qrm_steps"], rho=rho, every=50)
    return {"lr": lr, "rho": rho, "lambda_gf": lam_gf, "lambda_usam": _eos.usam_threshold(lr, rho),
            "gd_ntk": gd["ntk"], "gd_loss": gd["loss"], "usam_ntk": usam["ntk"], "usam_loss": usam["loss"]}


def run(**settings):
    """The MLP runs (``mlp[seed][run]``: ``loss``, ``grad_norm``, ``sharp_steps``, ``sharpness``,
    ``threshold``, ``summary`` (``_eos.eos_summary`` against the run's threshold; for SAM the
    SAM-ratio summary) for ``run`` in ``gd``, ``usam_<rho>``, ``sam_<rho>``) and the quadratic
    regression model runs (``qrm[seed]``: ``lr``, ``rho``, ``lambda_gf``, ``lambda_usam``, NTK
    eigenvalue and loss per step for GD and USAM)."""
    s = with_defaults(__name__, DEFAULTS, settings)
    return {"settings": s, "mlp": {seed: _mlp(s, seed) for seed in s["seeds"]},
            "qrm": {seed: _qrm(s, seed) for seed in s["qrm_seeds"]}}


def plot(result, ax=None):
    """Sharpness against steps for GD, USAM and SAM (first seed), with the predicted edges dashed."""
    import matplotlib.pyplot as plt
    from .. import plot as rplot

    with rplot.style():
        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 3.5))
        runs = next(iter(result["mlp"].values()))
        for i, (name, r) in enumerate(runs.items()):
            color = rplot.COLORS[i % len(rplot.COLORS)]
            label = "GD" if name == "gd" else name.replace("_", " rho=").upper().replace("RHO", "rho")
            ax.plot(r["sharp_steps"], r["sharpness"], color=color, label=label)
            if "threshold" in r:
                ax.axhline(r["threshold"], color=color, ls="--", lw=0.8)
        ax.set_xlabel("step")
        ax.set_ylabel("sharpness lambda_max")
        ax.set_title("GD edge 2/eta and USAM edge (dashed)")
        ax.legend()
    return ax
