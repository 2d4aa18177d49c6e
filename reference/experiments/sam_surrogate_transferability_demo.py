"""Early-stopped and large-radius SAM surrogates craft adversarial examples that transfer better.

Demonstrates "Going Further: Flatness at the Rescue of Early Stopping for Adversarial Example
Transferability" (Martin Gubri, Maxime Cordy, Yves Le Traon, 2023, arXiv:2304.02688).

Transferability: an adversarial example crafted on a *surrogate* model also fools *target* models
it was not crafted on. The paper finds that early-stopping the surrogate's training increases
transferability, links this to the sharpness of the surrogate's loss landscape (which early stopping
limits), and shows that surrogates trained with sharpness-aware minimisers, SAM with a *large*
radius ``rho`` above all, transfer best (better than early stopping, by up to 28.8 points on
ImageNet/CIFAR-10 ResNets).

The miniature (ours):

* task: ``reference.problems.create("teacher_mlp")`` with a 2-D signal (a random two-unit ReLU
  teacher sets the labels), 20 pure-noise input coordinates, 1024 training examples, 10 % of the
  training labels flipped (so full training memorises);
* surrogates, all ``2 + 20 -> 64 -> 2`` ReLU MLPs from the same init and minibatch stream, SGD with
  momentum 0.9, ``lr = 0.1``, batch 64: *full* (``steps`` = 300 steps), *early-stopped* (the same
  run stopped at ``es_step`` = 20), *SAM* with ``rho`` 0.05 (small) and 0.8 (large), 300 steps
  (``optim.create("sam", inner=SGD, rho=rho)``);
* targets: ``n_targets`` MLPs trained with full SGD on *independent* training sets of the same task
  (other data seeds and inits): "independently trained";
* attacks on the surrogate's test-set loss, using its input gradient from ``reference.autograd``
  (``InputOracle.input_grads``): FGM (one step of length ``eps`` along the gradient) and PGD
  (``pgd_steps`` steps of ``2.5 eps / pgd_steps``, projected on the ball); ``norm="l2"`` (default,
  ``eps = 0.5``) or ``"linf"`` (FGSM/PGD with signs). The l2 ball is our choice: in 22 dimensions
  the l_inf sign pattern spends the same budget on the 20 noise coordinates whatever the surrogate,
  which drowns the differences (the paper attacks images in l_inf);
* success rate: on the test points a model classifies correctly, the fraction that the attack makes
  it misclassify; white-box on the surrogate itself, transfer averaged over the targets;
* surrogate sharpness: ``lambda_max`` of the training-loss Hessian (``reference.curvature``,
  Lanczos) at the end of training.

What reproduces (seeds 0-4 checked, default settings): the early-stopped surrogate and the
large-``rho`` SAM surrogate transfer better than the fully trained one on every seed (mean PGD
transfer success 0.18 for both vs 0.14), without a stronger white-box attack (their white-box
success is at most 0.05 above the full model's, and lower on most seeds, so the transferred
*fraction* of white-box success is larger still); large ``rho``
beats small ``rho`` on every seed, and SAM with ``rho = 0.05`` is no better than full training;
the large-``rho`` SAM surrogate is the flattest (Hessian ``lambda_max`` about 0.4 vs 2.4).

What does not: (1) SAM with large ``rho`` does *not* beat early stopping here, the two are on par
(the paper's headline, SAM better than early stopping, is not reproduced in this miniature);
(2) the early-stopped surrogate is *sharper* than the fully trained one (``lambda_max`` about 4.3
vs 2.5: with a constant learning rate the sharpness peaks early and then falls; the paper's
early-stopping/sharpness link is with a step-decay schedule, whose decay makes the late iterates
sharp), so its better transfer is not explained by flatness in this miniature. ``rho`` above about
1 does not train on this task.
"""
from __future__ import annotations

import numpy as np

from . import register, with_defaults
from .. import curvature, optim, problems, train

register(__name__, title="Going Further: Flatness at the Rescue of Early Stopping for Adversarial Example "
                         "Transferability",
         authors="Gubri, Cordy, Le Traon", year=2023, arxiv="2304.02688", family="sharpness")

__all__ = ["run", "plot", "DEFAULTS", "attack", "success_rate", "SURROGATES"]

DEFAULTS = dict(seeds=(0, 1, 2), dim=2, noise_dims=20, teacher_width=2, n_train=1024, n_test=256,
                label_noise=0.1, hidden=(64,), lr=0.1, momentum=0.9, batch_size=64, steps=300, es_step=20,
                rho_small=0.05, rho_large=0.8, n_targets=2, norm="l2", eps=0.5, pgd_steps=5, sharpness_iters=20)

SURROGATES = ("full", "early_stopped", "sam_small", "sam_large")


def _direction(g, norm):
    if norm == "linf":
        return np.sign(g)
    return g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-300)


def _project(xa, x, eps, norm):
    if norm == "linf":
        return np.clip(xa, x - eps, x + eps)
    d = xa - x
    return x + d * np.minimum(1.0, eps / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-300))


def attack(problem, params, x, y, eps, steps=1, norm="l2"):
    """Untargeted attack on ``params``' mean cross-entropy at ``(x, y)``: FGM/FGSM for ``steps=1``
    (``x + eps * direction(grad_x)``), else PGD from ``x`` with step ``2.5 eps / steps`` and projection
    on the ``norm`` ball of radius ``eps`` around each example. ``direction`` is ``sign`` (linf) or the
    per-example unit vector (l2)."""
    oracle = problem.oracle({"x": x, "y": y})
    if steps == 1:
        _, gx = oracle.input_grads(params)
        return x + eps * _direction(gx, norm)
    alpha, xa = 2.5 * eps / steps, x.copy()
    for _ in range(steps):
        _, gx = oracle.with_inputs(xa).input_grads(params)
        xa = _project(xa + alpha * _direction(gx, norm), x, eps, norm)
    return xa


def _predict(problem, params, x):
    return np.argmax(problem.apply(params, x).value, axis=1)


def success_rate(problem, params, x, x_adv, y):
    """Among the examples ``params`` classifies correctly, the fraction misclassified at ``x_adv``."""
    ok = _predict(problem, params, x) == y
    return float(np.mean(_predict(problem, params, x_adv[ok]) != y[ok])) if ok.any() else float("nan")


def _fit(problem, opt, s, seed, snapshot=None):
    snaps = {}

    def keep(k, w, state, loss):
        if k == snapshot:
            snaps[k] = dict(w)

    h = train.run(problem, opt, s["steps"], batch_size=s["batch_size"], seed=seed, progress=False,
                  callbacks=(keep,))
    return h.params, snaps.get(snapshot)


def _one_seed(s, seed):
    kw = dict(dim=s["dim"], noise_dims=s["noise_dims"], n_classes=2, teacher_width=s["teacher_width"],
              hidden=tuple(s["hidden"]), n_train=s["n_train"], n_test=s["n_test"], label_noise=s["label_noise"],
              teacher_seed=seed)
    p = problems.create("teacher_mlp", seed=seed, **kw)

    def sgd():
        return optim.create("sgd", lr=s["lr"], momentum=s["momentum"])

    run_seed = 100 + seed
    full, early = _fit(p, sgd(), s, run_seed, snapshot=s["es_step"])
    models = {"full": full, "early_stopped": early,
              "sam_small": _fit(p, optim.create("sam", inner=sgd(), rho=s["rho_small"]), s, run_seed)[0],
              "sam_large": _fit(p, optim.create("sam", inner=sgd(), rho=s["rho_large"]), s, run_seed)[0]}
    targets = [_fit(problems.create("teacher_mlp", seed=1000 + 10 * seed + j, **kw), sgd(), s, 200 + 10 * seed + j)[0]
               for j in range(s["n_targets"])]
    x, y = p.test_data["x"], p.test_data["y"]
    full_oracle = p.oracle()
    out = {"target_clean_accuracy": [float(np.mean(_predict(p, t, x) == y)) for t in targets]}
    for name, w in models.items():
        row = {"clean_accuracy": float(np.mean(_predict(p, w, x) == y)),
               "train_accuracy": float(np.mean(_predict(p, w, p.data["x"]) == p.data["y"])),
               "sharpness": float(curvature.top_eigenvalues(full_oracle, w, k=1, method="lanczos",
                                                            iters=s["sharpness_iters"], seed=0)[0][0])}
        for attack_name, k in (("fgm", 1), ("pgd", s["pgd_steps"])):
            xa = attack(p, w, x, y, s["eps"], steps=k, norm=s["norm"])
            row[f"{attack_name}_white_box"] = success_rate(p, w, x, xa, y)
            row[f"{attack_name}_transfer"] = float(np.mean([success_rate(p, t, x, xa, y) for t in targets]))
        out[name] = row
    return out


def run(**settings):
    """Per seed (``result["seeds"][seed]``) and surrogate (``full``, ``early_stopped``, ``sam_small``,
    ``sam_large``): ``clean_accuracy``, ``train_accuracy``, ``sharpness`` (Hessian ``lambda_max``),
    ``fgm_white_box``, ``fgm_transfer``, ``pgd_white_box``, ``pgd_transfer``; and
    ``target_clean_accuracy``. ``result["mean"][surrogate][key]``: the means over seeds."""
    s = with_defaults(__name__, DEFAULTS, settings)
    if s["norm"] not in ("l2", "linf"):
        raise ValueError(f"sam_surrogate_transferability_demo.run: norm must be 'l2' or 'linf', got {s['norm']!r}")
    seeds = {seed: _one_seed(s, seed) for seed in s["seeds"]}
    keys = [k for k in next(iter(seeds.values()))["full"]]
    mean = {m: {k: float(np.mean([seeds[sd][m][k] for sd in seeds])) for k in keys} for m in SURROGATES}
    return {"settings": s, "seeds": seeds, "mean": mean}


def plot(result, ax=None):
    """Transfer (filled) and white-box (hollow) PGD success per surrogate, mean over seeds."""
    import matplotlib.pyplot as plt
    from .. import plot as rplot

    with rplot.style():
        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 3.5))
        pos = np.arange(len(SURROGATES))
        m = result["mean"]
        ax.bar(pos - 0.2, [m[n]["pgd_transfer"] for n in SURROGATES], width=0.4, color=rplot.COLORS[0],
               label="transfer to targets")
        ax.bar(pos + 0.2, [m[n]["pgd_white_box"] for n in SURROGATES], width=0.4, color="none",
               edgecolor=rplot.COLORS[1], label="white-box")
        ax.set_xticks(pos)
        ax.set_xticklabels(["full SGD", "early stop", "SAM small rho", "SAM large rho"])
        ax.set_ylabel("attack success rate")
        ax.set_title("PGD on surrogate MLPs")
        ax.legend()
    return ax
