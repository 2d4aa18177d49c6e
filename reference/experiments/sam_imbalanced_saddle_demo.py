"""Re-weighted training of a long-tailed task: the minority classes' loss sits at a saddle; SAM helps them.

Demonstrates "Escaping Saddle Points for Effective Generalization on Class-Imbalanced Data"
(Harsh Rangwani, Sumukh K Aithal, Mayank Mishra, R. Venkatesh Babu; NeurIPS 2022; arXiv:2212.13827).

The paper's claims: on long-tailed data (CIFAR-10/100-LT, imbalance 100) networks trained with
re-weighting and margin losses (LDAM-DRW, VS loss) converge to points where the Hessian of the
*minority classes'* loss has large negative eigenvalues: a saddle of the minority loss, not a
minimum. Sharpness-Aware Minimization with a *large* radius (``rho`` 0.5 to 0.8, where SAM usually
takes 0.05) escapes it: the negative curvature of the minority loss is largely removed, the
minority loss becomes flatter, and the minority classes' test accuracy rises (+6.2 % over VS loss
on average), raising the overall accuracy too.

Ours, in miniature (``reference.problems`` ``"long_tailed_blobs"``): 5 Gaussian blobs in 8
dimensions (centres at distance 2.5 from the origin, unit noise), a training set with the exponential
profile of CIFAR-LT at imbalance 100 (300, 95, 30, 9 and 3 examples), a balanced test set of 200 per
class, an MLP 8-32-5 (ReLU, 453 parameters). Training as LDAM-DRW: the LDAM loss (margins ``C /
n_k^(1/4)``, the largest 0.5; our head is a plain linear layer, so the logits are not rescaled)
with SGD (momentum 0.9, ``lr = 0.05``, minibatches of 64) for ``drw_step`` steps, then the deferred
re-weighting phase with the class-balanced weights (``beta = 0.9999``) for the remaining steps,
either with the same SGD or with SAM on it (``rho = 0.5``), both from the same point and with the
same batches. SAM only in the re-weighting phase is our choice (it makes the two runs share the
first phase, so that the comparison isolates SAM's effect on the re-weighted problem, the one whose
minority loss the paper finds at a saddle). The paper's VS loss and its cosine classifier with
logit scale are not reproduced. "Minority" is the two smallest classes (12 training examples);
its loss Hessian (the re-weighted LDAM loss on those examples) is measured at the end: every eigenvalue, from the dense Hessian
(``reference.curvature.spectrum``; 453 x 453), with the spectral mass on each side of zero (the
sums of the positive and of the negative eigenvalues); with ``dense=False`` only ``lambda_max``
by Lanczos and ``lambda_min`` by Lanczos on the negated loss (``reference.curvature.max_eigenvalue``).

What reproduced (seeds 0-4; ``tests/test_sam_demos.py`` checks seeds 0-2):

* the saddle: after SGD's re-weighting phase the minority loss Hessian has a clearly negative
  eigenvalue in every seed (``lambda_min`` -0.45 to -1.41, 2-6 % of ``lambda_max``; about a fifth
  of the spectral mass is negative);
* SAM helps the minority classes: their test accuracy rises from 0.471 to 0.533 on average (+6.2
  points; higher in 4 of 5 seeds, 1.3 points lower in one) and the overall accuracy does not fall
  (0.700 to 0.718 on average); with ``rho = 1`` the minority gain is +1 to +15 points in every seed;
* SAM makes the minority loss flatter: the positive spectral mass (the sum of the positive
  eigenvalues) falls in every seed (to 0.26-0.89 of SGD's), ``lambda_max`` in 4 of 5.

What did not reproduce: that SAM *escapes* the saddle, i.e. removes the negative curvature. Here
SAM's ``lambda_min`` is not reliably closer to zero (less negative than SGD's in 2 seeds, more
negative in 3, -0.19 to -2.50; with ``rho = 1`` more negative in every seed, -1.4 to -4.7) and the negative share of the spectral mass is not smaller (0.22-0.52
against 0.18-0.26). At this scale SAM's benefit to the minority classes comes with a flatter, not a
saddle-free, minority loss. The test asserts what holds and does not assert the escape.
"""
from __future__ import annotations

import numpy as np

from . import register, with_defaults
from .. import curvature, optim, problems

register(__name__, title="Escaping Saddle Points for Effective Generalization on Class-Imbalanced Data",
         authors="Rangwani, Aithal, Mishra, Babu", year=2022, arxiv="2212.13827", family="sharpness")

__all__ = ["run", "plot", "DEFAULTS", "minority_curvature"]

DEFAULTS = dict(seeds=(0, 1, 2), steps=400, drw_step=200, lr=0.05, momentum=0.9, batch_size=64, rho=0.5,
                minority=2, lanczos_iters=40, dense=True,
                problem=dict(n_classes=5, n_features=8, hidden=(32,), imbalance=100.0, n_max=300, loss="ldam"))


def minority_curvature(problem, params, minority=2, iters=40, dense=False):
    """``(lambda_min, lambda_max, eigenvalues or None)`` of the Hessian of ``problem``'s loss on the
    training examples of its ``minority`` smallest classes."""
    oracle = problem.oracle(problem.minority_batch(minority))
    if dense:
        ev = np.asarray(curvature.spectrum(oracle, params))
        return float(ev[0]), float(ev[-1]), ev
    lam_max = curvature.max_eigenvalue(oracle, params, method="lanczos", iters=iters, tol=1e-3)
    lam_min = -curvature.max_eigenvalue(lambda p: -oracle.loss(p), params, method="lanczos", iters=iters,
                                        tol=1e-3)
    return float(lam_min), float(lam_max), None


def _train(opt, problem, params, steps, rng, batch_size):
    state = opt.init(params)
    for _ in range(steps):
        batch = problem.sample_batch(rng, batch_size) if batch_size else None
        params, state = opt.step(params, state, problem.oracle(batch))
    return params


def _seed(s, seed):
    plain = problems.create("long_tailed_blobs", seed=seed, class_weights="none", **s["problem"])
    drw = problems.create("long_tailed_blobs", seed=seed, class_weights="effective", **s["problem"])
    sgd = lambda: optim.create("sgd", lr=s["lr"], momentum=s["momentum"])   # noqa: E731
    w = _train(sgd(), plain, plain.init(seed), s["drw_step"], np.random.default_rng(seed), s["batch_size"])
    minority = np.argsort(drw.counts, kind="stable")[:s["minority"]]
    out = {"counts": drw.counts.tolist(), "minority_classes": minority.tolist()}
    for name in ("sgd", "sam"):
        opt = sgd() if name == "sgd" else optim.create("sam", inner=sgd(), rho=s["rho"])
        wn = _train(opt, drw, w, s["steps"] - s["drw_step"], np.random.default_rng([seed, 1]), s["batch_size"])
        ev = drw.evaluate(wn)
        lam_min, lam_max, spec = minority_curvature(drw, wn, s["minority"], s["lanczos_iters"], s["dense"])
        acc = np.asarray(ev["class_accuracy"])
        out[name] = {"train_loss": ev["loss"], "test_accuracy": ev["test_accuracy"], "class_accuracy": acc.tolist(),
                     "minority_accuracy": float(acc[minority].mean()), "lambda_min": lam_min,
                     "lambda_max": lam_max, "spectrum": spec}
        if spec is not None:      # the spectral mass on each side of zero
            out[name]["positive_mass"] = float(spec[spec > 0].sum())
            out[name]["negative_mass"] = float(-spec[spec < 0].sum())
    return out


def run(**settings):
    """Per seed (``runs[seed]``): the class counts, the minority classes, and for ``sgd`` and ``sam``
    (the re-weighting phase's optimizer): the final re-weighted training loss, test accuracy, per-class
    and minority test accuracy, and ``lambda_min``/``lambda_max`` of the minority loss Hessian (with
    ``dense=True``, the default, also its whole ``spectrum`` and its ``positive_mass`` and
    ``negative_mass``). ``problem``: settings of ``long_tailed_blobs``."""
    s = with_defaults(__name__, DEFAULTS, settings)
    s["problem"] = {**DEFAULTS["problem"], **s["problem"]}
    if not 0 <= s["drw_step"] <= s["steps"]:
        raise ValueError(f"sam_imbalanced_saddle_demo.run: drw_step must be in [0, steps], got {s['drw_step']}")
    return {"settings": s, "runs": {seed: _seed(s, seed) for seed in s["seeds"]}}


def plot(result, ax=None):
    """Per-class test accuracy (mean over seeds) after the re-weighting phase, SGD against SAM."""
    import matplotlib.pyplot as plt
    from .. import plot as rplot

    with rplot.style():
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        runs = list(result["runs"].values())
        counts = runs[0]["counts"]
        k = np.arange(len(counts))
        for i, name in enumerate(("sgd", "sam")):
            acc = np.mean([r[name]["class_accuracy"] for r in runs], axis=0)
            lam = np.mean([r[name]["lambda_min"] for r in runs])
            label = ("SGD" if name == "sgd" else f"SAM (rho={result['settings']['rho']:g})") + \
                f", minority lambda_min {lam:.2f}"
            ax.bar(k + (i - 0.5) * 0.4, acc, width=0.4, color=rplot.COLORS[i], label=label)
        ax.set_xticks(k)
        ax.set_xticklabels([f"{c}" for c in counts])
        ax.set_xlabel("class (training examples)")
        ax.set_ylabel("test accuracy")
        ax.set_title("LDAM-DRW on long-tailed blobs")
        ax.legend()
    return ax
