"""``reference.figures``: valid, byte-reproducible PNGs and the lr-tuning protocol.

The full galleries take minutes, so they are not regenerated here: the
gallery code runs on a two-optimizer stand-in of the registry instead.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from reference import figures, optim, problems  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    import matplotlib.image as mpimg
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].std()) > 0.01, "blank image"
    return data


def test_generate_writes_a_png_and_is_byte_reproducible(tmp_path):
    name = "quadratic_trajectories.png"
    (a,) = figures.generate(tmp_path / "a", only=[name], log=None)
    (b,) = figures.generate(tmp_path / "b", only=[name], log=None)
    assert str(a).endswith(name)
    first = _assert_png(a)
    with open(b, "rb") as f:
        assert f.read() == first, "the same figure generated twice differs"


def test_unknown_figure_raises_keyerror_listing_valid_names(tmp_path):
    with pytest.raises(KeyError) as err:
        figures.generate(tmp_path / "out", only=["no_such_figure.png"], log=None)
    msg = str(err.value)
    assert "no_such_figure.png" in msg
    for valid in figures.FIGURES:
        assert valid in msg
    assert not (tmp_path / "out").exists(), "nothing should be written for an invalid request"


def test_every_gallery_is_registered():
    for name in ("gallery_rosenbrock.png", "gallery_rastrigin.png", "gallery_mlp.png",
                 "rosenbrock_trajectories.png", "quadratic_trajectories.png", "spirals_loss.png",
                 "edge_of_stability.png", "hessian_spectrum.png", "sam_valley.png", "saddle_free_newton.png"):
        assert name in figures.FIGURES
    assert figures.GALLERY_GRID[0] == 1e-4 and figures.GALLERY_GRID[-1] == 1.0
    ratios = np.diff(np.log10(figures.GALLERY_GRID))
    assert np.all((ratios > 0.45) & (ratios < 0.55)), "half-decade grid"


# ---- the tuning protocol -------------------------------------------------------------

def _isotropic_quadratic():
    # f(w) = 1/2 ||w - w*||^2: gradient descent with lr contracts the error by |1 - lr| per step
    return problems.create("quadratic", dim=2, eigenvalues=[1.0, 1.0], noise=0, seed=0)


def test_lr_scores_match_the_closed_form():
    prob = _isotropic_quadratic()
    steps, grid = 5, (0.1, 0.5, 1.0, 1.5)
    f0 = float(prob.loss(prob.init(0))) - prob.optimal_value
    scores = figures.lr_scores(prob, "sgd", steps, grid=grid)
    for lr in grid:
        expected = prob.optimal_value + f0 * (1 - lr) ** (2 * steps)
        assert scores[lr] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_tune_lr_picks_the_grid_value_with_the_lowest_final_loss():
    prob = _isotropic_quadratic()
    # lr = 1 solves the problem in one step; 1.5 and 0.5 contract by 1/2 per step; 0.01 barely moves
    assert figures.tune_lr(prob, "sgd", 5, grid=(0.01, 0.5, 1.0, 1.5)) == 1.0
    assert figures.tune_lr(prob, "sgd", 5, grid=(0.01, 0.1, 0.5)) == 0.5
    # a diverging lr (the NaN/Inf check raises) is passed over, not chosen
    assert figures.tune_lr(prob, "sgd", 400, grid=(0.1, 10.0)) == 0.1


def test_tune_lr_skips_invalid_and_diverged_values_and_raises_when_all_fail():
    prob = _isotropic_quadratic()
    scores = figures.lr_scores(prob, "sgd", 400, grid=(-1.0, 10.0, 0.5))
    assert scores[-1.0] == math.inf          # rejected by the optimizer (lr must be > 0)
    assert scores[10.0] == math.inf          # |1 - 10|^400 overflows: FloatingPointError
    assert math.isfinite(scores[0.5])
    with pytest.raises(RuntimeError, match="diverged"):
        figures.tune_lr(prob, "sgd", 400, grid=(10.0, 100.0))


def test_tune_lr_with_several_starts_uses_the_mean():
    prob = _isotropic_quadratic()
    starts = [{"w": np.array([3.0, -1.0])}, {"w": np.array([0.5, 2.0])}]
    scores = figures.lr_scores(prob, "sgd", 3, grid=(0.5,), starts=starts)
    wstar = prob.optimum["w"]
    expected = np.mean([0.5 * np.sum((s["w"] - wstar) ** 2) * 0.25 ** 3 for s in starts]) + prob.optimal_value
    assert scores[0.5] == pytest.approx(expected, rel=1e-9)


def test_a_wrapper_is_tuned_through_its_inner_lr():
    if "lookahead" not in optim.names():
        pytest.skip("no lookahead registered")
    inner = optim.create("adam", lr=1e-3)
    assert figures.lr_tunable("lookahead", inner=inner) == "inner.lr"
    opt = figures.with_lr("lookahead", 0.3, inner=inner)
    assert opt.hparams["inner"].hparams["lr"] == 0.3
    assert opt.hparams["inner"].hparams["beta2"] == inner.hparams["beta2"]
    assert figures.lr_tunable("adam") == "lr"
    if "adafactor" in optim.names():
        assert figures.lr_tunable("adafactor") is None   # lr=None: its own relative step size


# ---- the gallery machinery, on a small stand-in registry ------------------------------------

class _NeedsProx(optim.Optimizer):
    """Stands for a method whose oracle must offer a capability a plain problem lacks."""
    name = "needs_prox"
    defaults = {"lr": 0.1}

    def step(self, params, state, oracle):
        if not hasattr(oracle, "prox"):
            raise TypeError("needs_prox: needs the capability prox, which this oracle lacks")
        raise AssertionError("unreachable")


@pytest.fixture
def small_registry(monkeypatch):
    real_get, real_create = optim.get_class, optim.create

    def get_class(name):
        return _NeedsProx if name == "needs_prox" else real_get(name)

    def create(name, **hp):
        return _NeedsProx(**hp) if name == "needs_prox" else real_create(name, **hp)

    monkeypatch.setattr(optim, "get_class", get_class)
    monkeypatch.setattr(optim, "create", create)
    monkeypatch.setattr(optim, "names", lambda: ["adam", "needs_prox", "sgd"])
    monkeypatch.setattr(figures, "GALLERY_GRID", (1e-3, 1e-2))


def test_gallery_skips_a_missing_capability_and_names_it(small_registry):
    runnable, skipped = figures.gallery_entries(problems.create("rosenbrock"))
    assert sorted(runnable) == ["adam", "sgd"]
    assert list(skipped) == ["needs_prox"] and "prox" in skipped["needs_prox"]


def test_gallery_figure_is_valid_and_byte_reproducible(small_registry, tmp_path):
    lines = []
    figures.gallery_rosenbrock(tmp_path / "g1.png", log=lines.append)
    figures.gallery_rosenbrock(tmp_path / "g2.png", log=None)
    data = _assert_png(tmp_path / "g1.png")
    assert (tmp_path / "g2.png").read_bytes() == data
    assert any("skip needs_prox" in line for line in lines)
    assert any(line.strip().startswith("adam") and "lr=" in line for line in lines)


def test_the_fast_curvature_figure_is_a_valid_png(tmp_path):
    # the other lesson-5 figures take 5-25 s each; this one runs in about a second
    (path,) = figures.generate(tmp_path, only=["saddle_free_newton.png"], log=None)
    _assert_png(path)
