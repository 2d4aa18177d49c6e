"""SAM demonstrations of issue 5: each paper's claim in miniature, on its ``run()`` result.

* ``samformer_toy_demo`` (Ilbert et al. 2024): the toy linear forecasting problem;
* ``sam_mixer_smoothness_demo`` (Chen, Hsieh, Gong 2022): a tiny MLP-Mixer, Adam against SAM;
* ``sam_imbalanced_saddle_demo`` (Rangwani et al. 2022): LDAM-DRW on long-tailed blobs, SGD
  against SAM with a large radius in the re-weighting phase.

Plus the problems behind them (``reference/problems/sam_demo_problems.py``; the problem contract
tests cover them too). Margins are stated in each docstring with the values measured when the test
was written; where a claim of the paper did not reproduce, the docstring says so and the test
asserts what does hold.
"""

import numpy as np
import pytest

from reference import problems
from reference.experiments import sam_imbalanced_saddle_demo as imb_demo
from reference.experiments import sam_mixer_smoothness_demo as mixer_demo
from reference.experiments import samformer_toy_demo as toy_demo
from tests.experiment_util import assert_demonstrations, assert_plots

TITLES = {
    "samformer_toy_demo": "SAMformer: Unlocking the Potential of Transformers in Time Series Forecasting with "
                          "Sharpness-Aware Minimization and Channel-Wise Attention",
    "sam_mixer_smoothness_demo": "When Vision Transformers Outperform ResNets without Pre-training or Strong Data "
                                 "Augmentations",
    "sam_imbalanced_saddle_demo": "Escaping Saddle Points for Effective Generalization on Class-Imbalanced Data",
}


def test_catalog_entries_and_unknown_settings():
    """Each demonstration is in the catalog under its paper's exact title (as in papers.jsonl)."""
    assert_demonstrations(TITLES, "sharpness", (toy_demo, mixer_demo, imb_demo))


# ---- the problems --------------------------------------------------------------------------

def test_toy_forecasting_problem():
    """The linear model with the least-squares head is at the training loss's minimum (zero gradient);
    with the attention path switched off (W_O = 0) the attention model is that linear model; attention
    rows sum to 1; RevIN with identity affine maps an input's own window statistics back exactly."""
    lin = problems.create("toy_linear_forecasting", model="linear", n_train=64, lookback=8, horizon=3)
    w = {"head.weight": lin.oracle_head().T.copy()}
    _, g = lin.oracle()(w)
    np.testing.assert_allclose(g["head.weight"], 0.0, atol=1e-12)
    attn = problems.create("toy_linear_forecasting", n_train=64, lookback=8, horizon=3)
    p = attn.init(0)
    p["attention.output"] = np.zeros_like(p["attention.output"])
    p["head.weight"] = w["head.weight"]
    assert float(attn.loss(p)) == pytest.approx(float(lin.loss(w)), rel=1e-14)
    a = attn.attention(attn.init(1), attn.data["x"][:5]).value
    np.testing.assert_allclose(a.sum(axis=-1), 1.0, atol=1e-14)
    rev = problems.create("toy_linear_forecasting", model="linear", revin=True, lookback=4, horizon=4, n_train=8)
    q = rev.init(0)
    q["head.weight"] = np.eye(4)          # forecast = the normalised window itself, mapped back
    x = rev.data["x"]
    np.testing.assert_allclose(rev.apply(q, x).value, x, atol=1e-4)


def test_long_tailed_blobs_problem():
    """Exponential class counts at imbalance 100; LDAM margins proportional to n^(-1/4) with the largest
    0.5; the re-weighted loss equals torch's weighted mean sum w_y l / sum w_y; the minority batch holds
    exactly the smallest classes."""
    ce = problems.create("long_tailed_blobs", loss="ce")
    assert ce.counts.tolist() == [300, 95, 30, 9, 3]
    ldam = problems.create("long_tailed_blobs", loss="ldam", class_weights="effective")
    assert ldam.margins.max() == pytest.approx(0.5)
    np.testing.assert_allclose(ldam.margins * ldam.counts ** 0.25, 0.5 * 3 ** 0.25)
    params = ldam.init(0)
    x, y = ldam.data["x"], ldam.data["y"]
    z = ldam.apply(params, x).value - np.eye(5)[y] * ldam.margins
    z = z - z.max(axis=1, keepdims=True)
    nll = -(z[np.arange(y.size), y] - np.log(np.exp(z).sum(axis=1)))
    beta = 0.9999
    cw = (1 - beta) / (1 - beta ** ldam.counts)
    wy = (cw * 5 / cw.sum())[y]
    assert float(ldam.loss(params)) == pytest.approx(float((wy * nll).sum() / wy.sum()), rel=1e-12)
    mb = ldam.minority_batch(2)
    assert sorted(set(mb["y"].tolist())) == [3, 4] and mb["y"].size == 12


def test_mixer_problem():
    """Patches are the image's 4x4 blocks in row-major order; the first block's recorded
    pre-activations have the documented shapes; the Mixer is permutation-equivariant in the tokens
    only through its token MLP (permuting tokens and the token MLP's weights together leaves the
    logits unchanged)."""
    p = problems.create("mixer_shapes", n_train=6, n_test=3)
    x = p.data["x"][:2]
    patches = p.patches(x).value
    np.testing.assert_array_equal(patches[1, 4], x[1, 0, 4:8, 4:8].reshape(-1))     # token (1, 1) of a 3x3 grid
    params = p.init(0)
    hu = p.hidden_units(params, x)
    assert hu["token"].shape == (2, 12, 12) and hu["channel"].shape == (2, 9, 24)
    perm = np.random.default_rng(0).permutation(9)
    q = dict(params)
    q["block0.token_mlp.0.weight"] = params["block0.token_mlp.0.weight"][:, perm]
    q["block0.token_mlp.1.weight"] = params["block0.token_mlp.1.weight"][perm]
    q["block0.token_mlp.1.bias"] = params["block0.token_mlp.1.bias"][perm]
    xp = x.reshape(2, 1, 3, 4, 3, 4).transpose(0, 1, 2, 4, 3, 5).reshape(2, 1, 9, 16)[:, :, perm]
    xp = xp.reshape(2, 1, 3, 3, 4, 4).transpose(0, 1, 2, 4, 3, 5).reshape(2, 1, 12, 12)
    np.testing.assert_allclose(p.apply(q, xp).value, p.apply(params, x).value, atol=1e-12)


# ---- SAMformer ---------------------------------------------------------------------------------

def test_claim_samformer_toy():
    """D=7, L=32, H=8, 256 training inputs, noise 0.5, 300 full-batch steps, three seeds.

    The linear model (Adam) reaches the oracle (test MSE within 1 % of the least-squares map's;
    measured 0.0 to 1e-4); the attention model with Adam does not (more than 5 % above; measured
    8.5-10.9 %), with SAM (rho = 1) it comes within 5 % (measured 1.8-2.2 %) and at most half of
    Adam's excess (measured 0.20-0.26 of it). Adam's attention collapses: entropy below half its
    initial value (measured 0.23-0.24x); SAM's entropy is over 1.5x Adam's (measured 2.1-2.8x).
    SAM's lambda_max is below a quarter of Adam's (measured 0.09-0.10x)."""
    r = toy_demo.run()
    for seed, x in r["runs"].items():
        adam, sam, lin = x["adam"], x["sam"], x["linear"]
        assert abs(lin["excess"]) < 0.01, seed
        assert adam["excess"] > 0.05, seed
        assert sam["excess"] < 0.05 and sam["excess"] < 0.5 * adam["excess"], (seed, sam["excess"], adam["excess"])
        assert adam["entropy"] < 0.5 * x["entropy_init"]
        assert sam["entropy"] > 1.5 * adam["entropy"], seed
        assert sam["sharpness"] < 0.25 * adam["sharpness"], seed
    assert_plots(toy_demo, r)


# ---- MLP-Mixer ----------------------------------------------------------------------------------

def test_claim_sam_mixer_smoothness():
    """One-block MLP-Mixer (1.2 k parameters) on 240 shape images, 300 minibatch steps, Adam against
    SAM(Adam, rho = 0.2), seeds 0-2.

    Sharpness: SAM's lambda_max is below 0.3x Adam's in every seed (measured 0.07-0.16x; Adam 28-52,
    SAM 3.8-4.5). Generalisation: SAM's test loss is below 0.75x Adam's in every seed (measured
    0.46-0.55x) and its mean test accuracy is at least Adam's (measured 0.558 against 0.538; per
    seed SAM is 0.8 points lower in seed 2, so only the mean is asserted, as in the paper's claim).
    Sparsity: the first block's channel-MLP active fraction is lower with SAM in every seed and by at
    least a point on average (measured 1.2-5.5 points, mean 2.9). The token-MLP's is NOT lower with
    SAM here (measured +0.1 to +3.5 points): not asserted, see the module docstring."""
    r = mixer_demo.run()
    runs = list(r["runs"].values())
    for x in runs:
        adam, sam = x["adam"], x["sam"]
        assert sam["sharpness"] < 0.3 * adam["sharpness"], (adam["sharpness"], sam["sharpness"])
        assert sam["test_loss"] < 0.75 * adam["test_loss"]
        assert sam["active"]["channel"] < adam["active"]["channel"]
    mean = lambda name, f: np.mean([f(x[name]) for x in runs])   # noqa: E731
    assert mean("sam", lambda v: v["test_accuracy"]) >= mean("adam", lambda v: v["test_accuracy"])
    assert mean("sam", lambda v: v["active"]["channel"]) < mean("adam", lambda v: v["active"]["channel"]) - 0.01
    assert_plots(mixer_demo, r)


# ---- class imbalance: saddle points and SAM -----------------------------------------------------

def test_claim_sam_imbalanced_saddle():
    """LDAM-DRW on long-tailed blobs (counts 300/95/30/9/3), MLP 8-32-5, re-weighting phase with SGD
    or SAM (rho = 0.5), dense Hessian of the two smallest classes' loss, seeds 0-2.

    Saddle: with SGD the minority Hessian has lambda_min < -0.2 and below -1 % of lambda_max in every
    seed (measured -0.45 to -1.41, 2.2-5.8 %). SAM flattens the minority loss: its positive spectral
    mass is below SGD's in every seed and below 0.7x on average (measured 0.26-0.89x, mean 0.52x).
    Minority accuracy: SAM's is at least SGD's minus 2 points in every seed (measured +4.4 to +8.5)
    and higher by at least 3 points on average (measured +5.9), and the overall accuracy is not lower
    on average (measured 0.717 against 0.701). NOT reproduced, so not asserted: SAM bringing
    lambda_min to 0 (measured -0.19 to -2.50: less negative than SGD's in seed 1, more in seeds
    0 and 2; see the module docstring)."""
    r = imb_demo.run()
    runs = list(r["runs"].values())
    for x in runs:
        sgd, sam = x["sgd"], x["sam"]
        assert x["minority_classes"] == [4, 3]
        assert sgd["lambda_min"] < -0.2 and sgd["lambda_min"] < -0.01 * sgd["lambda_max"], sgd["lambda_min"]
        np.testing.assert_allclose(sgd["spectrum"][[0, -1]], [sgd["lambda_min"], sgd["lambda_max"]])
        assert sam["positive_mass"] < sgd["positive_mass"]
        assert sam["minority_accuracy"] >= sgd["minority_accuracy"] - 0.02
    mean = lambda name, key: np.mean([x[name][key] for x in runs])   # noqa: E731
    assert mean("sam", "positive_mass") < 0.7 * mean("sgd", "positive_mass")
    assert mean("sam", "minority_accuracy") >= mean("sgd", "minority_accuracy") + 0.03
    assert mean("sam", "test_accuracy") >= mean("sgd", "test_accuracy")
    assert_plots(imb_demo, r)


def test_imbalanced_lanczos_curvature_matches_dense():
    """The Lanczos lambda_min/lambda_max of ``minority_curvature`` agree with the dense spectrum."""
    p = problems.create("long_tailed_blobs", loss="ldam", class_weights="effective", hidden=(6,))
    w = p.init(0)
    lo, hi, ev = imb_demo.minority_curvature(p, w, dense=True)
    lo2, hi2, _ = imb_demo.minority_curvature(p, w, iters=200, dense=False)
    assert lo2 == pytest.approx(lo, rel=1e-3, abs=1e-8) and hi2 == pytest.approx(hi, rel=1e-3)
    assert lo == ev[0] and hi == ev[-1] and lo < 0
