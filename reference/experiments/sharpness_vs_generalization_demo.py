"""Adaptive sharpness tracks the learning rate, not the test error.

Demonstrates "A Modern Look at the Relationship between Sharpness and Generalization"
(Maksym Andriushchenko, Francesco Croce, Maximilian Mueller, Matthias Hein, Nicolas Flammarion,
ICML 2023, arXiv:2302.07011).

The paper's claim: over many trained networks, worst-case *adaptive* sharpness (the
reparametrisation-invariant measure of Kwon et al. 2021; their best-performing variant is the
elementwise-adaptive l_inf one)

    S_rho(w) = max_{|delta_i| <= rho (|w_i| + eta)} L_S(w + delta) - L_S(w),

correlates poorly and inconsistently with generalisation (Kendall tau with the test error near 0 or
of either sign), but well with training hyperparameters such as the learning rate.

The miniature (ours): a grid of 24 small MLPs per seed (``2 classes, 10 -> 32 -> 2`` ReLU,
``reference.problems.create("teacher_mlp")``, 256 clean training examples) trained with plain SGD
or SAM over ``lrs`` (0.05, 0.1, 0.2, 0.4) x ``batch_sizes`` (16, 128) x ``rhos`` (SAM radius 0, 0.05,
0.2; 0 = SGD), each until its full training cross-entropy first falls below ``target_loss`` = 0.05
(checked every 25 steps; as Jiang et al. 2020 and the paper compare models at a common training
loss; with a fixed step budget instead, the small learning rates are simply under-trained and both
sharpness and test error track how far training got). ``S_rho`` is
``reference.curvature.adaptive_sharpness(oracle, params, rho, norm="linf")`` on a fixed subset of
the training set (projected sign-gradient ascent from a random point of the box); the plain l2 worst-case sharpness
(``curvature.worst_case_loss(..., adaptive=False)``) is reported too. Per seed, Kendall tau over
the grid between each sharpness and (a) the test error, (b) the learning rate.

The many runs are trained together: the parameters of all runs with one batch size are stacked into
one ``(R, P)`` block and the MLP's forward and backward passes are the batched NumPy of
``reference/experiments/_mlp_runs.py``; SGD and SAM are written out on that block (per run:
``e = rho g / (||g|| + 1e-12)``, ``w <- w - lr grad L_B(w + e)``), the same computation as
``reference.train.run(problem, optim.create("sam", inner=optim.create("sgd", lr=lr), rho=rho),
steps, batch_size, seed)`` for every run (checked to 1e-12 in the tests).

What reproduces (seeds 0-4, ``rho = 0.01``): Kendall tau(adaptive sharpness, lr) is positive on
every seed (0.30, 0.38, 0.31, 0.37, 0.25), while tau(adaptive sharpness, test error) changes sign
from seed to seed (-0.27, 0.26, -0.43, -0.15, -0.06; mean -0.13): sharpness follows the training
hyperparameter consistently and the test error inconsistently, as the paper reports. The standard
l2 sharpness behaves alike (lr: 0.17-0.34; test error: -0.46 to 0.07). What does not hold robustly:
the per-seed inequality |tau(S, lr)| > |tau(S, test error)| fails on seed 2 (0.31 vs 0.43), so it
is asserted only for the means over seeds; and the sign of the lr correlation is *positive* here
(larger steps end sharper at the same training loss in this small-batch miniature), whereas the
edge-of-stability picture would have larger learning rates end flatter; the paper stresses that the
sign of such correlations depends on the setup. The test errors of the grid differ little (spread about 0.015 per
seed), so this miniature is the paper's "sharpness does not explain generalisation" regime, not a
setting where hyperparameters change generalisation a lot. ``rho = 0.002`` gives similar numbers
(seeds 0-2: tau with lr 0.25-0.43, with the test error -0.49 to 0.07).
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy import stats

from . import _mlp_runs, register, with_defaults
from .. import curvature, problems

register(__name__, title="A Modern Look at the Relationship between Sharpness and Generalization",
         authors="Andriushchenko, Croce, Mueller, Hein, Flammarion", year=2023, arxiv="2302.07011",
         family="sharpness")

__all__ = ["run", "plot", "DEFAULTS", "train_grid"]

DEFAULTS = dict(seeds=(0, 1, 2), dim=10, teacher_width=4, hidden=(32,), n_train=256, n_test=2048, label_noise=0.0,
                lrs=(0.05, 0.1, 0.2, 0.4), batch_sizes=(16, 128), rhos=(0.0, 0.05, 0.2), max_steps=3000,
                target_loss=0.05, sharpness_rho=0.01, l2_rho=0.05, sharpness_steps=10, sharpness_examples=256)


def _flat(problem, grads):
    keys, _, _ = _mlp_runs._layout(problem)
    R = grads[keys[0]].shape[0]
    return np.concatenate([grads[k].reshape(R, -1) for k in keys], axis=1)


def train_grid(problem, seeds, lrs, rhos, batch_size, steps, target_loss=None, check_every=25):
    """Runs ``r`` = SAM(``rhos[r]``; 0: plain SGD) with learning rate ``lrs[r]`` for ``steps[r]`` steps
    (an int: the same for all) from ``problem.init(seeds[r])``, minibatches from
    ``default_rng(seeds[r])``, all stacked; returns the final ``(R, P)`` params (rows in the order
    given). A run that has done its steps is frozen (its learning rate set to 0) while the others go
    on; the minibatch stream is shared by the runs of one seed either way. With ``target_loss``, a run
    also stops at the first multiple of ``check_every`` steps where its full training loss is at most
    ``target_loss`` (all runs are then compared at the same training loss, as in Jiang et al. 2020 and
    the paper). Returns ``(params, steps_taken)``."""
    state = _mlp_runs.start(problem, seeds)
    w, rngs = state["w"], state["rngs"]
    order = sorted(rngs)
    row_of_seed = np.searchsorted(order, state["seeds"])
    lr = np.asarray(lrs, dtype=np.float64)[:, None]
    rho = np.asarray(rhos, dtype=np.float64)[:, None]
    sam = bool(np.any(rho > 0))
    budget = np.array(np.broadcast_to(np.asarray(steps), lr.shape[:1])[:, None])
    for t in range(int(budget.max())):
        if target_loss is not None and t % check_every == 0:
            done = (_mlp_runs._full_data_loss(problem, w, problem.data) <= target_loss)[:, None] & (t < budget)
            budget = np.where(done, t, budget)
            if not np.any(t < budget):
                break
        batches = [problem.sample_batch(rngs[s], batch_size) for s in order]
        x = np.stack([b["x"] for b in batches])[row_of_seed]
        y = np.stack([b["y"] for b in batches])[row_of_seed]
        g = _flat(problem, _mlp_runs.batched_loss_and_grads(problem, _mlp_runs.unflatten(problem, w), x, y)[1])
        if sam:                                                   # SAM: the gradient at w + e_hat
            e = rho * g / (np.linalg.norm(g, axis=1, keepdims=True) + 1e-12)
            g_sam = _flat(problem, _mlp_runs.batched_loss_and_grads(problem, _mlp_runs.unflatten(problem, w + e),
                                                                    x, y)[1])
            g = np.where(rho > 0, g_sam, g)
        w = w - np.where(t < budget, lr, 0.0) * g
    return w, np.minimum(budget[:, 0], t + 1)


def _error(problem, w, data):
    R = w.shape[0]
    x = np.broadcast_to(data["x"], (R,) + data["x"].shape)
    out, _ = _mlp_runs.mlp_outputs(problem, _mlp_runs.unflatten(problem, w), x)
    return (np.argmax(out, axis=2) != data["y"][None, :]).mean(axis=1)


def _one_seed(s, seed):
    p = problems.create("teacher_mlp", dim=s["dim"], n_classes=2, teacher_width=s["teacher_width"],
                        hidden=tuple(s["hidden"]), n_train=s["n_train"], n_test=s["n_test"],
                        label_noise=s["label_noise"], seed=seed, teacher_seed=seed)
    configs, params, steps = [], [], []
    for B in s["batch_sizes"]:
        grid = list(itertools.product(s["lrs"], s["rhos"]))
        w, taken = train_grid(p, [1000 + seed] * len(grid), [g[0] for g in grid], [g[1] for g in grid], B,
                              s["max_steps"], target_loss=s["target_loss"])
        steps.append(taken)
        configs += [dict(lr=lr, rho=rho, batch_size=B) for lr, rho in grid]
        params.append(w)
    W = np.concatenate(params)
    sub = {k: v[:s["sharpness_examples"]] for k, v in p.data.items()}
    oracle = p.oracle(sub)
    adaptive, standard = [], []
    for r in range(W.shape[0]):
        w = {k: v[0].copy() for k, v in _mlp_runs.unflatten(p, W[r:r + 1]).items()}
        adaptive.append(float(curvature.adaptive_sharpness(oracle, w, s["sharpness_rho"], norm="linf",
                                                           steps=s["sharpness_steps"], seed=r)))
        standard.append(float(curvature.worst_case_loss(oracle, w, s["l2_rho"], steps=s["sharpness_steps"],
                                                        seed=r)[0]))
    out = {"configs": configs, "lr": np.array([c["lr"] for c in configs]),
           "batch_size": np.array([c["batch_size"] for c in configs]), "rho": np.array([c["rho"] for c in configs]),
           "train_error": _error(p, W, p.data), "test_error": _error(p, W, p.test_data),
           "train_loss": _mlp_runs._full_data_loss(p, W, p.data), "steps": np.concatenate(steps),
           "adaptive_sharpness": np.array(adaptive), "standard_sharpness": np.array(standard)}
    tau = {}
    for m in ("adaptive_sharpness", "standard_sharpness"):
        tau[f"{m}_vs_test_error"] = float(stats.kendalltau(out[m], out["test_error"])[0])
        tau[f"{m}_vs_lr"] = float(stats.kendalltau(out[m], out["lr"])[0])
    tau["test_error_vs_lr"] = float(stats.kendalltau(out["test_error"], out["lr"])[0])
    out["tau"] = tau
    return out


def run(**settings):
    """Per seed (``result["seeds"][seed]``): the grid's ``configs`` and arrays over it (``lr``,
    ``batch_size``, ``rho``, ``train_error``, ``test_error``, ``train_loss``, ``adaptive_sharpness``,
    ``standard_sharpness``) and ``tau`` (Kendall tau of each sharpness with the test error and with
    the learning rate, and of the test error with the learning rate)."""
    s = with_defaults(__name__, DEFAULTS, settings)
    return {"settings": s, "seeds": {seed: _one_seed(s, seed) for seed in s["seeds"]}}


def plot(result, ax=None):
    """Test error against adaptive sharpness, coloured by learning rate (first seed)."""
    import matplotlib.pyplot as plt
    from .. import plot as rplot

    with rplot.style():
        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 3.5))
        r = next(iter(result["seeds"].values()))
        for i, lr in enumerate(sorted(set(r["lr"]))):
            m = r["lr"] == lr
            ax.scatter(r["adaptive_sharpness"][m], r["test_error"][m], color=rplot.COLORS[i % len(rplot.COLORS)],
                       label=f"lr {lr:g}")
        ax.set_xscale("log")
        ax.set_xlabel("adaptive l_inf worst-case sharpness")
        ax.set_ylabel("test error")
        t = r["tau"]
        ax.set_title(f"tau(S, test err) = {t['adaptive_sharpness_vs_test_error']:.2f}, "
                     f"tau(S, lr) = {t['adaptive_sharpness_vs_lr']:.2f}")
        ax.legend(fontsize=7)
    return ax
