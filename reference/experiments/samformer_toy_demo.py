"""SAMformer's toy problem: attention alone keeps a transformer off the linear oracle, SAM brings it back.

Demonstrates "SAMformer: Unlocking the Potential of Transformers in Time Series Forecasting with
Sharpness-Aware Minimization and Channel-Wise Attention" (Romain Ilbert, Ambroise Odonnat, Vasilii
Feofanov, Aladin Virmaux, Giuseppe Paolo, Themis Palpanas, Ievgen Redko; ICML 2024; arXiv:2402.10198).

The paper's toy problem (its Sec. 2.2): inputs ``X in R^{D x L}`` (``D`` channels, a window of
``L``), targets ``Y = X W_toy + noise``: the best forecaster is *linear*, and a linear model trained
with Adam finds it. A one-layer transformer with channel-wise attention and a linear head,

    f(X) = [X + A(X) X W_V W_O] W,      A(X) = softmax(X W_Q W_K^T X^T / sqrt(d_model)),

contains that solution (``W_V W_O = 0``), yet trained with Adam it stays clearly above the oracle's
error: the attention matrices collapse to near one-hot rows (low entropy, "entropy collapse") and
the minimum found is sharp. The paper's claims, which this module checks in miniature:

1. Adam on the attention model ends with a test MSE clearly above the oracle's (the least-squares
   linear map), while the plain linear model trained with Adam reaches the oracle;
2. SAM (on Adam) brings the attention model close to the oracle;
3. with SAM the attention entropy stays higher and the sharpness ``lambda_max`` of the training
   loss is much lower than with Adam.

What is ours: ``D = 7`` channels (the paper's), a window ``L = 32`` and horizon ``H = 8`` (the paper:
``L = 512``, ``H = 96``), ``d_model = 8``, 256 training and 512 test inputs with i.i.d. ``N(0, 1)``
entries, ``W_toy`` with ``N(0, 1/L)`` entries, noise standard deviation 0.5 (``reference.problems``
``"toy_linear_forecasting"``), full-batch training for 300 steps at ``lr = 1e-2`` and SAM's radius
``rho = 1`` (the paper tunes ``rho`` per dataset in ``[0.05, 1]``). No RevIN: the paper's toy
model has none (the problem offers ``revin=True``, SAMformer's full model for real data). The oracle
is the least-squares map on the training set; its test MSE is about ``noise^2 (1 + L / (N D))``.
``lambda_max`` is measured by Lanczos (``reference.curvature.max_eigenvalue``) on the full training
loss; the entropy is the mean over test inputs and attention rows of ``-sum_j A_ij log A_ij``
(at most ``log D = 1.95``).

What reproduced (three seeds): every claim. Adam's attention model ends 8-12 % above the oracle,
SAM's within 3 %; the linear model matches the oracle to 1e-3 (relative); the attention entropy falls
from about 1.6 at initialisation to 0.3-0.4 with Adam and stays at 0.7-1.1 with SAM; ``lambda_max``
is about 10x lower with SAM. What is not shown: the paper's real-data results (SAMformer against
other forecasters) and its "random transformer" (attention frozen at initialisation).
"""
from __future__ import annotations

import math

import numpy as np

from . import register, with_defaults
from .. import curvature, optim, problems, train

register(__name__, title="SAMformer: Unlocking the Potential of Transformers in Time Series Forecasting with "
                         "Sharpness-Aware Minimization and Channel-Wise Attention",
         authors="Ilbert, Odonnat, Feofanov, Virmaux, Paolo, Palpanas, Redko", year=2024, arxiv="2402.10198",
         family="sharpness")

__all__ = ["run", "plot", "DEFAULTS", "attention_entropy"]

DEFAULTS = dict(seeds=(0, 1, 2), channels=7, lookback=32, horizon=8, d_model=8, n_train=256, n_test=512,
                noise=0.5, steps=300, lr=1e-2, rho=1.0, lanczos_iters=30)


def attention_entropy(problem, params, x=None):
    """Mean over inputs and rows of the entropy ``-sum_j A_ij log A_ij`` of the attention ``A(X)``."""
    x = problem.test_data["x"] if x is None else x
    a = problem.attention(params, x)
    a = np.asarray(getattr(a, "value", a))
    return float(np.mean(-np.sum(a * np.log(np.maximum(a, 1e-300)), axis=-1)))


def _sharpness(problem, params, iters):
    return float(curvature.max_eigenvalue(problem.oracle(), params, method="lanczos", iters=iters, tol=1e-3))


def _seed(s, seed):
    kw = {k: s[k] for k in ("channels", "lookback", "horizon", "d_model", "n_train", "n_test", "noise")}
    attn = problems.create("toy_linear_forecasting", model="attention", seed=seed, **kw)
    lin = problems.create("toy_linear_forecasting", model="linear", seed=seed, **kw)
    oracle_mse = attn.evaluate(attn.init(seed))["oracle_test_loss"]
    out = {"oracle_test_mse": oracle_mse, "entropy_init": attention_entropy(attn, attn.init(seed)),
           "max_entropy": math.log(s["channels"])}
    runs = {"adam": (attn, optim.create("adam", lr=s["lr"])),
            "sam": (attn, optim.create("sam", inner=optim.create("adam", lr=s["lr"]), rho=s["rho"])),
            "linear": (lin, optim.create("adam", lr=s["lr"]))}
    for name, (prob, opt) in runs.items():
        h = train.run(prob, opt, s["steps"], seed=seed, progress=False)
        ev = prob.evaluate(h.params)
        r = {"train_loss": h.loss, "final_train_mse": ev["loss"], "test_mse": ev["test_loss"],
             "excess": ev["test_loss"] / oracle_mse - 1.0}
        if prob.model == "attention":
            r["entropy"] = attention_entropy(prob, h.params)
            r["sharpness"] = _sharpness(prob, h.params, s["lanczos_iters"])
        out[name] = r
    return out


def run(**settings):
    """Per seed (``runs[seed]``): the oracle's test MSE, the attention entropy at initialisation and
    its maximum ``log D``, and for ``adam``, ``sam`` (attention model) and ``linear`` (linear model,
    Adam): the training loss per step, the final training and test MSE, the relative excess of the
    test MSE over the oracle's, and for the attention runs the entropy and ``lambda_max``."""
    s = with_defaults(__name__, DEFAULTS, settings)
    return {"settings": s, "runs": {seed: _seed(s, seed) for seed in s["seeds"]}}


def plot(result, ax=None):
    """Training MSE against steps (first seed) for the three runs, the oracle's test MSE dashed."""
    import matplotlib.pyplot as plt
    from .. import plot as rplot

    with rplot.style():
        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 3.5))
        r = next(iter(result["runs"].values()))
        labels = {"adam": "attention, Adam", "sam": "attention, SAM", "linear": "linear, Adam"}
        for i, name in enumerate(("adam", "sam", "linear")):
            ax.plot(r[name]["train_loss"], color=rplot.COLORS[i],
                    label=f"{labels[name]} (test {r[name]['test_mse']:.3f})")
        ax.axhline(r["oracle_test_mse"], color="k", ls="--", lw=0.8, label="oracle test MSE")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training MSE")
        ax.set_title("toy linear forecasting")
        ax.legend()
    return ax
