"""Tests of the small-network problems (networks.py) and the shapes images (shapes.py).

The contract tests (test_problems_contract.py) already check gradients, HVPs,
per-sample gradients, dtypes and input checks; here: the data, the masks,
and that plain gradient descent makes progress.
"""
import math

import numpy as np
import pytest

from reference import problems

MLP_TASKS = ["two_spirals", "blobs", "checkerboard", "regression_1d"]
ALL = MLP_TASKS + ["shapes"]
CLASSIFIERS = {"two_spirals": 2, "blobs": 3, "checkerboard": 2, "shapes": 3}


def _gd(p, seed, lr, steps):
    """Plain full-batch gradient descent from ``p.init(seed)``; returns (initial loss, metrics at the end)."""
    params = p.init(seed)
    oracle = p.oracle()
    first = float(oracle.loss(params))
    for _ in range(steps):
        _, g = oracle(params)
        params = {k: params[k] - lr * g[k] for k in params}
    return first, p.evaluate(params)


# ---- the data -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_data_are_reproducible_from_the_seed(name):
    a, b, c = problems.create(name, seed=3), problems.create(name, seed=3), problems.create(name, seed=4)
    for split in ("data", "test_data"):
        for k in getattr(a, split):
            np.testing.assert_array_equal(getattr(a, split)[k], getattr(b, split)[k])
    assert not np.array_equal(a.data["x"], c.data["x"])
    if name == "shapes":
        np.testing.assert_array_equal(a.masks, b.masks)
        np.testing.assert_array_equal(a.test_masks, b.test_masks)


@pytest.mark.parametrize("name", ALL)
def test_the_test_set_is_held_out_and_does_not_change_the_training_set(name):
    a = problems.create(name, n_test=10)
    b = problems.create(name, n_test=20)
    np.testing.assert_array_equal(a.data["x"], b.data["x"])
    assert a.test_data["x"].shape[0] == 10
    assert not np.array_equal(a.data["x"][:10], a.test_data["x"])


@pytest.mark.parametrize("name", ALL)
def test_shapes_and_dtypes_of_the_data(name):
    p = problems.create(name, n_train=30, n_test=12)
    x, y = p.data["x"], p.data["y"]
    assert p.n_train == 30 and p.test_data["x"].shape[0] == 12
    assert x.dtype == np.float64 and np.isfinite(x).all()
    expected_x = {"regression_1d": (30, 1), "shapes": (30, 1, 16, 16)}.get(name, (30, 2))
    assert x.shape == expected_x
    if name == "regression_1d":
        assert y.shape == (30, 1) and y.dtype == np.float64
    else:
        assert y.shape == (30,) and y.dtype.kind == "i"


@pytest.mark.parametrize("name,kw", [("two_spirals", {}), ("blobs", {}), ("blobs", {"n_classes": 5}),
                                     ("checkerboard", {}), ("shapes", {})])
@pytest.mark.parametrize("n", [60, 101])
def test_labels_are_in_range_and_balanced(name, kw, n):
    p = problems.create(name, n_train=n, n_test=n, **kw)
    k = kw.get("n_classes", CLASSIFIERS[name])
    for y in (p.data["y"], p.test_data["y"]):
        assert y.min() >= 0 and y.max() < k
        counts = np.bincount(y, minlength=k)
        assert counts.max() - counts.min() <= 1, counts
    # shuffled, not sorted by class
    assert (np.diff(p.data["y"]) != 0).sum() > n // 4


def test_two_spirals_points_lie_on_their_arm():
    p = problems.create("two_spirals", noise=0.0, turns=1.5)
    x, y = p.data["x"], p.data["y"]
    r = np.hypot(x[:, 0], x[:, 1])
    assert r.min() >= 0.05 - 1e-12 and r.max() <= 1.0 + 1e-12
    # the angle of class k at radius r is 2 pi turns r + k pi (mod 2 pi)
    angle = np.arctan2(x[:, 1], x[:, 0]) - (2 * np.pi * 1.5 * r + np.pi * y)
    np.testing.assert_allclose(np.cos(angle), 1.0, atol=1e-10)
    noisy = problems.create("two_spirals", noise=0.1, turns=1.5)
    assert 0.07 < np.std(noisy.data["x"] - x) < 0.13  # same draws of t, plus jitter of std 0.1


def test_blobs_are_centred_on_their_centres_with_std_noise():
    p = problems.create("blobs", n_classes=4, noise=0.3, n_train=800)
    x, y = p.data["x"], p.data["y"]
    for k in range(4):
        pts = x[y == k]
        se = 0.3 / math.sqrt(len(pts))
        np.testing.assert_allclose(pts.mean(axis=0), p.centers[k], atol=5 * se)
        assert abs((pts - p.centers[k]).std() - 0.3) < 0.05
    np.testing.assert_allclose(np.linalg.norm(p.centers, axis=1), 2.0)


@pytest.mark.parametrize("cells", [2, 3, 4])
def test_checkerboard_labels_are_the_colour_of_the_square(cells):
    p = problems.create("checkerboard", cells=cells, noise=0.0, n_train=400)
    x, y = p.data["x"], p.data["y"]
    assert np.abs(x).max() <= 1.0
    idx = np.floor((x + 1) / 2 * cells).astype(int)
    np.testing.assert_array_equal((idx[:, 0] + idx[:, 1]) % 2, y)
    # every square is used
    assert len({tuple(i) for i in idx}) == cells * cells


def test_regression_targets_are_sin_3x_plus_noise():
    clean = problems.create("regression_1d", noise=0.0, n_train=400)
    x, y = clean.data["x"], clean.data["y"]
    assert np.abs(x).max() <= 2.0
    np.testing.assert_allclose(y, np.sin(3 * x), atol=1e-14)
    noisy = problems.create("regression_1d", noise=0.2, n_train=400)
    resid = noisy.data["y"] - np.sin(3 * noisy.data["x"])
    assert abs(resid.mean()) < 5 * 0.2 / 20 and 0.17 < resid.std() < 0.23


# ---- the shapes masks ------------------------------------------------------------------------

def _pixel_centres(s):
    ys, xs = np.meshgrid(np.arange(s) + 0.5, np.arange(s) + 0.5, indexing="ij")
    return xs, ys


def _inside_offset(kind, px, py, cx, cy, d, delta):
    """Points inside the object moved outward by ``delta`` (inward for ``delta < 0``), written
    independently of shapes.py: distance to the circle / square / the triangle's three edge lines."""
    if kind == 0:
        return np.hypot(px - cx, py - cy) <= d / 2 + delta
    if kind == 1:
        return np.maximum(np.abs(px - cx), np.abs(py - cy)) <= d / 2 + delta
    h = d * math.sqrt(3) / 2
    verts = [(cx, cy - h / 2), (cx + d / 2, cy + h / 2), (cx - d / 2, cy + h / 2)]
    ok = np.ones(np.shape(px), dtype=bool)
    for (ax, ay), (bx, by) in zip(verts, verts[1:] + verts[:1]):
        # signed distance to the line through edge a -> b, positive on the outer side
        ex, ey = bx - ax, by - ay
        dist = ((px - ax) * ey - (py - ay) * ex) / math.hypot(ex, ey)
        ok &= dist <= delta
    return ok


@pytest.fixture(scope="module")
def shapes_problem():
    return problems.create("shapes")


def test_masks_are_stored_aligned_with_the_data(shapes_problem):
    p = shapes_problem
    s = p.image_size
    assert p.masks.shape == (p.n_train, s, s) and p.masks.dtype == bool
    assert p.test_masks.shape == (p.test_data["x"].shape[0], s, s)
    for i in (0, 7):
        image, mask = p.image_and_mask(i)
        np.testing.assert_array_equal(image, p.data["x"][i, 0])
        np.testing.assert_array_equal(mask, p.masks[i])
        image, mask = p.image_and_mask(i, split="test")
        np.testing.assert_array_equal(image, p.test_data["x"][i, 0])
        np.testing.assert_array_equal(mask, p.test_masks[i])
    np.testing.assert_array_equal(p.geometry["kind"], p.data["y"])
    np.testing.assert_array_equal(p.test_geometry["kind"], p.test_data["y"])
    with pytest.raises(ValueError, match="split"):
        p.image_and_mask(0, split="valid")


def test_masks_sit_between_the_pixels_fully_inside_and_those_near_the_object(shapes_problem):
    p = shapes_problem
    px, py = _pixel_centres(p.image_size)
    half_diag = math.sqrt(2) / 2
    for masks, geo in ((p.masks, p.geometry), (p.test_masks, p.test_geometry)):
        for i, m in enumerate(masks):
            kind, cx, cy, d = (geo[k][i] for k in ("kind", "cx", "cy", "size"))
            assert m.sum() > 0
            # a pixel whose centre is sqrt(2)/2 deep inside lies wholly inside: coverage 1, so in the mask
            deep = _inside_offset(kind, px, py, cx, cy, d, -half_diag)
            assert not (deep & ~m).any(), i
            # a pixel in the mask touches the object, so its centre is within sqrt(2)/2 of it
            near = _inside_offset(kind, px, py, cx, cy, d, half_diag)
            assert not (m & ~near).any(), i
            # the pixel holding the centre of the bounding box is part of the object
            assert m[int(cy), int(cx)]


def test_objects_lie_inside_the_image(shapes_problem):
    p = shapes_problem
    s = p.image_size
    g = p.geometry
    h = np.where(g["kind"] == 2, g["size"] * math.sqrt(3) / 2, g["size"])
    assert (g["cx"] - g["size"] / 2 >= 0).all() and (g["cx"] + g["size"] / 2 <= s).all()
    assert (g["cy"] - h / 2 >= 0).all() and (g["cy"] + h / 2 <= s).all()
    assert (g["size"] >= p.min_size).all() and (g["size"] <= p.max_size).all()


def test_mask_areas_match_the_shape_type(shapes_problem):
    p = shapes_problem
    # exact areas in units of d^2: circle pi/4, square 1, triangle sqrt(3)/4
    factor = np.array([math.pi / 4, 1.0, math.sqrt(3) / 4])
    perimeter = np.array([math.pi, 4.0, 3.0])
    g = p.geometry
    area = factor[g["kind"]] * g["size"] ** 2
    got = p.masks.sum(axis=(1, 2))
    # per image: only pixels crossed by the outline can be wrong, each by at most one pixel
    assert (np.abs(got - area) <= math.sqrt(2) * perimeter[g["kind"]] * g["size"] + 4).all()
    # on average the coverage >= 1/2 rule is unbiased: within 5% of the true area for every kind
    for k in range(3):
        ratio = got[g["kind"] == k].sum() / area[g["kind"] == k].sum()
        assert abs(ratio - 1) < 0.05, (k, ratio)
        # and the kinds are told apart by area / d^2 (0.79, 1, 0.43)
        rel = (got[g["kind"] == k] / g["size"][g["kind"] == k] ** 2).mean()
        assert abs(rel - factor[k]) < 0.06, (k, rel)


def test_bright_pixels_are_inside_the_mask_and_dark_ones_outside(shapes_problem):
    p = shapes_problem
    noise = p.noise
    assert noise > 0
    images = p.data["x"][:, 0]
    # object pixels: coverage c + noise; background: noise. "Clearly" = 6 noise standard deviations
    # past the mask's threshold c = 1/2
    bright = images > 0.5 + 6 * noise
    dark = images < 0.5 - 6 * noise
    assert not (bright & ~p.masks).any()
    assert not (dark & p.masks).any()
    assert bright.sum() > 0.7 * p.masks.sum()  # most of each object is clearly bright (the rest: its edge)
    # the background is mild noise around 0, the inside of the object around 1
    background = images[~p.masks]
    assert abs(background.mean()) < 0.05 and background.std() < 2 * noise + 0.05
    assert images[p.masks].mean() > 0.85


def test_the_smallest_objects_still_have_non_empty_masks():
    p = problems.create("shapes", min_size=3, max_size=3, n_train=600, n_test=1)
    assert p.masks.sum(axis=(1, 2)).min() >= 1


def test_noiseless_hard_edged_images_equal_their_masks():
    p = problems.create("shapes", noise=0.0, antialias=1, n_train=30, n_test=3)
    np.testing.assert_array_equal(p.data["x"][:, 0], p.masks.astype(np.float64))
    p = problems.create("shapes", noise=0.0, n_train=30, n_test=3)
    images = p.data["x"][:, 0]
    assert images.min() >= 0 and images.max() <= 1
    np.testing.assert_array_equal(images >= 0.5, p.masks)


# ---- gradient descent makes progress -----------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gradient_descent_learns_two_spirals(seed):
    p = problems.create("two_spirals", seed=seed)
    first, m = _gd(p, seed, lr=0.5, steps=500)
    assert first > 0.6  # starts near log 2
    assert m["loss"] < 0.4 * first, (first, m)
    assert m["accuracy"] > 0.85 and m["test_accuracy"] > 0.8, m  # chance: 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_descent_learns_blobs(seed):
    p = problems.create("blobs", n_classes=4, seed=seed)
    first, m = _gd(p, seed, lr=0.3, steps=200)
    assert m["loss"] < 0.2 * first, (first, m)
    assert m["accuracy"] > 0.9 and m["test_accuracy"] > 0.9, m  # chance: 0.25


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_descent_fits_regression_1d(seed):
    p = problems.create("regression_1d", seed=seed)
    first, m = _gd(p, seed, lr=0.1, steps=300)
    var_y = p.data["y"].var()  # the loss of the best constant predictor
    assert m["loss"] < 0.5 * first and m["loss"] < 0.4 * var_y, (first, var_y, m)
    assert m["test_loss"] < 0.4 * var_y
    assert set(m) == {"loss", "test_loss"}


@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_descent_learns_shapes(seed):
    p = problems.create("shapes", seed=seed)
    first, m = _gd(p, seed, lr=0.3, steps=100)
    assert m["loss"] < 0.6 * first, (first, m)
    assert m["accuracy"] > 0.7, m  # chance: 1/3


@pytest.mark.parametrize("name", ALL)
def test_evaluate_reports_train_and_test_metrics(name):
    p = problems.create(name, n_train=30, n_test=12)
    params = p.init(0)
    m = p.evaluate(params)
    expected = {"loss", "test_loss"} | ({"accuracy", "test_accuracy"} if name in CLASSIFIERS else set())
    assert set(m) == expected and all(isinstance(v, float) for v in m.values())
    assert m["loss"] == pytest.approx(float(p.loss(params)), rel=1e-12)
    m32 = p.evaluate(p.init(0, dtype="float32"))
    assert m32["loss"] == pytest.approx(m["loss"], rel=1e-4)


# ---- bad settings -------------------------------------------------------------------------

BAD = [
    ("two_spirals", {"hidden": (32, 0)}, "hidden"),
    ("two_spirals", {"hidden": 32}, "hidden"),
    ("two_spirals", {"activation": "swish"}, "activation"),
    ("two_spirals", {"n_train": 1}, "n_train"),
    ("two_spirals", {"n_train": 10.5}, "n_train"),
    ("two_spirals", {"n_test": 0}, "n_test"),
    ("two_spirals", {"noise": -0.1}, "noise"),
    ("two_spirals", {"noise": float("nan")}, "noise"),
    ("two_spirals", {"turns": 0}, "turns"),
    ("two_spirals", {"seed": -1}, "seed"),
    ("blobs", {"n_classes": 1}, "n_classes"),
    ("blobs", {"n_classes": 4, "n_train": 3}, "n_train"),
    ("checkerboard", {"cells": 1}, "cells"),
    ("checkerboard", {"cells": 2.5}, "cells"),
    ("regression_1d", {"noise": "lots"}, "noise"),
    ("regression_1d", {"hidden": ("a",)}, "hidden"),
    ("shapes", {"channels": (4, 0)}, "channels"),
    ("shapes", {"image_size": 18}, "image_size"),
    ("shapes", {"image_size": 2}, "image_size"),
    ("shapes", {"kernel_size": 4}, "kernel_size"),
    ("shapes", {"activation": "swish"}, "activation"),
    ("shapes", {"n_train": 2}, "n_train"),
    ("shapes", {"noise": -1}, "noise"),
    ("shapes", {"min_size": 8, "max_size": 6}, "min_size"),
    ("shapes", {"max_size": 20}, "max_size"),
    ("shapes", {"min_size": 2}, "min_size"),
    ("shapes", {"antialias": 0}, "antialias"),
    ("shapes", {"antialias": 4}, "antialias"),
]


@pytest.mark.parametrize("name,kw,setting", BAD, ids=[f"{n}-{s}-{i}" for i, (n, _, s) in enumerate(BAD)])
def test_bad_settings_raise_value_error_naming_the_setting(name, kw, setting):
    with pytest.raises(ValueError, match=setting):
        problems.create(name, **kw)
