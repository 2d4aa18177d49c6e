"""Convex problems: closed forms, peers (scipy.linalg), optimality conditions, hand values.

The contract tests (tests/test_problems_contract.py) also run on every problem here.
"""
import numpy as np
import pytest
import scipy.linalg
import scipy.special

from reference import autograd as ag
from reference import problems
from reference.problems.convex import random_rotation

CONVEX = ["quadratic", "noisy_quadratic", "least_squares", "logistic_regression", "softmax_regression", "lasso"]


def _grad_norm(g):
    return float(np.sqrt(sum(float(np.sum(v * v)) for v in g.values())))


def _flat_loss(p):
    """``p``'s full-batch loss as a function of one flat float64 vector (for numeric_grad)."""
    shapes = p.param_shapes

    def f(theta):
        params, i = {}, 0
        for k, s in shapes.items():
            n = int(np.prod(s))
            params[k] = theta[i:i + n].reshape(s)
            i += n
        return float(p.loss(params))

    return f


def _flat(params, keys):
    return np.concatenate([params[k].ravel() for k in keys])


# ---- quadratic ------------------------------------------------------------------

@pytest.mark.parametrize("spectrum, expected", [
    ("log", np.geomspace(0.02, 2.0, 6)),
    ("linear", np.linspace(0.02, 2.0, 6)),
])
def test_quadratic_spectrum_is_the_requested_one(spectrum, expected):
    p = problems.create("quadratic", dim=6, L=2.0, condition_number=100.0, spectrum=spectrum)
    np.testing.assert_allclose(scipy.linalg.eigvalsh(p.A), expected, rtol=1e-12)
    np.testing.assert_allclose(p.eigenvalues, expected, rtol=1e-15)
    assert p.L == pytest.approx(2.0, rel=1e-15) and p.mu == pytest.approx(0.02, rel=1e-14)
    assert p.condition_number == pytest.approx(100.0, rel=1e-12)
    np.testing.assert_array_equal(p.A, p.A.T)
    # Q is a rotation: orthogonal with determinant +1
    np.testing.assert_allclose(p.Q.T @ p.Q, np.eye(6), atol=1e-14)
    assert np.linalg.det(p.Q) == pytest.approx(1.0, rel=1e-12)


def test_quadratic_explicit_eigenvalues():
    eig = [5.0, 0.5, 2.0, 0.0]
    p = problems.create("quadratic", eigenvalues=eig, seed=3)
    assert p.param_shapes == {"w": (4,)}
    np.testing.assert_allclose(scipy.linalg.eigvalsh(p.A), sorted(eig), atol=1e-14)
    assert (p.L, p.mu) == (5.0, 0.0) and p.condition_number == np.inf


def test_quadratic_optimum_and_value_in_closed_form():
    p = problems.create("quadratic", dim=5, condition_number=30.0, noise=0.7, n_samples=40, seed=1)
    c, z, A = p.center, p.data["z"], p.A
    w_star = c + z.mean(axis=0)
    np.testing.assert_allclose(p.optimum["w"], w_star, rtol=1e-14, atol=1e-15)
    by_hand = np.mean([0.5 * (w_star - c - zi) @ A @ (w_star - c - zi) for zi in z])
    assert p.optimal_value == pytest.approx(by_hand, rel=1e-12)
    # the gradient is A w - b: read b off the oracle at w = 0 and solve A w = b with scipy
    _, g0 = p.oracle()({"w": np.zeros(5)})
    np.testing.assert_allclose(scipy.linalg.solve(A, -g0["w"], assume_a="pos"), p.optimum["w"], rtol=1e-10)
    # f(w) - f* = 1/2 (w - w*)^T A (w - w*) everywhere
    w = p.init(7)["w"]
    gap = float(p.loss({"w": w})) - p.optimal_value
    assert gap == pytest.approx(0.5 * (w - w_star) @ A @ (w - w_star), rel=1e-12)


def test_quadratic_loss_matches_the_formula_on_a_batch():
    p = problems.create("quadratic", dim=4, noise=1.0, n_samples=10, seed=2)
    w = p.init(0)["w"]
    batch = p.sample_batch(np.random.default_rng(0), 3)
    by_hand = np.mean([0.5 * (w - p.center - zi) @ p.A @ (w - p.center - zi) for zi in batch["z"]])
    assert float(p.loss({"w": w}, batch)) == pytest.approx(by_hand, rel=1e-13)


@pytest.mark.parametrize("noise", [0.0, 1.0])
def test_quadratic_hvp_is_A_v(noise):
    p = problems.create("quadratic", dim=7, condition_number=1e3, noise=noise, seed=4)
    rng = np.random.default_rng(0)
    w, v = {"w": rng.standard_normal(7)}, {"w": rng.standard_normal(7)}
    np.testing.assert_allclose(p.oracle().hvp(w, v)["w"], p.A @ v["w"], rtol=1e-12, atol=1e-14)


def test_deterministic_quadratic_has_no_data():
    p = problems.create("quadratic", dim=3, noise=0.0, seed=5)
    assert p.data is None and p.n_train is None and p.sample_batch(np.random.default_rng(0), 1) is None
    w = p.init(1)["w"]
    r = w - p.center
    assert float(p.loss({"w": w})) == pytest.approx(0.5 * r @ p.A @ r, rel=1e-13)
    np.testing.assert_array_equal(p.optimum["w"], p.center)
    assert p.optimal_value == 0.0
    with pytest.raises(TypeError, match="per-sample"):
        p.oracle().per_sample_grads({"w": w})


def test_noisy_quadratic_is_deepobs_quadratic_deep():
    p = problems.create("noisy_quadratic")
    assert p.param_shapes == {"w": (100,)} and p.n_train == 1000
    assert p.test_data["z"].shape == (1000, 100)
    eig = scipy.linalg.eigvalsh(p.A)
    assert np.all((eig[:90] > 0) & (eig[:90] < 1)) and np.all((eig[90:] > 30) & (eig[90:] < 60))
    np.testing.assert_allclose(eig, np.sort(p.eigenvalues), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(p.center, 0.0)
    assert np.std(p.data["z"]) == pytest.approx(0.6, rel=0.02)   # DeepOBS noise_level
    np.testing.assert_array_equal(p.init(0)["w"], np.ones(100))   # DeepOBS start
    assert not p.seeded_init
    assert problems.create("noisy_quadratic", jitter=0.1).seeded_init
    # the loss is 1/2 (w - x)^T H (w - x) per example, on training and test data
    w = p.init(0)["w"] + 0.1
    x = p.test_data["z"][:4]
    by_hand = np.mean([0.5 * (w - xi) @ p.A @ (w - xi) for xi in x])
    assert float(p.loss({"w": w}, {"z": x})) == pytest.approx(by_hand, rel=1e-12)
    metrics = p.evaluate({"w": w})
    assert set(metrics) == {"loss", "test_loss"}
    assert metrics["test_loss"] == pytest.approx(float(p.loss({"w": w}, p.test_data)), rel=1e-15)
    np.testing.assert_allclose(p.optimum["w"], p.data["z"].mean(axis=0), rtol=1e-14)


def test_random_rotation_is_haar_like():
    rng = np.random.default_rng(0)
    Qs = [random_rotation(3, rng) for _ in range(2000)]
    for Q in Qs[:5]:
        np.testing.assert_allclose(Q @ Q.T, np.eye(3), atol=1e-14)
        assert np.linalg.det(Q) == pytest.approx(1.0)
    # under the Haar measure every entry has mean 0 and variance 1/dim
    entries = np.array(Qs)
    np.testing.assert_allclose(entries.mean(axis=0), 0.0, atol=0.05)
    np.testing.assert_allclose((entries ** 2).mean(axis=0), 1 / 3, atol=0.03)


# ---- least squares -----------------------------------------------------------

def test_least_squares_optimum_is_scipy_lstsq():
    p = problems.create("least_squares", n=30, d=6, noise=0.3, seed=2)
    X, y = p.data["x"], p.data["y"]
    w_peer = scipy.linalg.lstsq(X, y)[0]
    np.testing.assert_allclose(p.optimum["w"], w_peer, rtol=1e-10)
    assert p.optimal_value == pytest.approx(0.5 * np.mean((X @ w_peer - y) ** 2), rel=1e-10)


def test_least_squares_min_norm_optimum_when_underdetermined():
    p = problems.create("least_squares", n=4, d=9, seed=2)
    w_peer = scipy.linalg.lstsq(p.data["x"], p.data["y"])[0]   # the minimum-norm solution
    np.testing.assert_allclose(p.optimum["w"], w_peer, rtol=1e-9)
    assert p.optimal_value == pytest.approx(0.0, abs=1e-20)


def test_ridge_optimum_solves_the_ridge_system():
    lam = 0.3
    p = problems.create("least_squares", n=25, d=8, lam=lam, seed=3)
    X, y, n = p.data["x"], p.data["y"], 25
    w_peer = scipy.linalg.solve(X.T @ X / n + lam * np.eye(8), X.T @ y / n, assume_a="pos")
    np.testing.assert_allclose(p.optimum["w"], w_peer, rtol=1e-10)
    # the loss is 1/(2n) ||X w - y||^2 + lam/2 ||w||^2
    w = p.init(0)["w"]
    assert float(p.loss({"w": w})) == pytest.approx(
        np.sum((X @ w - y) ** 2) / (2 * n) + lam / 2 * w @ w, rel=1e-13)
    np.testing.assert_allclose(p.hessian, X.T @ X / n + lam * np.eye(8), rtol=1e-14)


def test_least_squares_condition_number():
    p = problems.create("least_squares", n=40, d=5, condition_number=1e4, seed=1)
    X = p.data["x"]
    np.testing.assert_allclose(scipy.linalg.eigvalsh(X.T @ X / 40), np.geomspace(1e-4, 1.0, 5), rtol=1e-8)
    assert p.L == pytest.approx(1.0, rel=1e-10) and p.mu == pytest.approx(1e-4, rel=1e-8)
    # ill-conditioned, yet the optimum is still exact
    np.testing.assert_allclose(p.optimum["w"], scipy.linalg.lstsq(X, p.data["y"])[0], rtol=1e-8)


# ---- logistic regression ---------------------------------------------------------

def test_logistic_optimum_has_tiny_gradient():
    p = problems.create("logistic_regression")
    _, g = p.oracle()(p.optimum)
    assert _grad_norm(g) < 1e-10
    # and it is a minimum: nearby points are worse
    rng = np.random.default_rng(0)
    for _ in range(5):
        moved = {k: v + 1e-3 * rng.standard_normal(v.shape) for k, v in p.optimum.items()}
        assert float(p.loss(moved)) > p.optimal_value


def test_logistic_loss_by_hand_and_unregularised_bias():
    lam = 0.5
    p = problems.create("logistic_regression", n=12, d=3, lam=lam, seed=4)
    X, y = p.data["x"], p.data["y"]
    assert set(np.unique(y)) <= {0.0, 1.0}
    w, b = np.array([0.3, -1.0, 2.0]), np.array([0.7])
    z = X @ w + b[0]
    by_hand = np.mean(-y * np.log(scipy.special.expit(z)) - (1 - y) * np.log(scipy.special.expit(-z))) \
        + lam / 2 * w @ w
    loss, g = p.oracle()({"w": w, "b": b})
    assert float(loss) == pytest.approx(by_hand, rel=1e-12)
    # b is not regularised: d/db = mean(sigma(z) - y), no lam * b term
    np.testing.assert_allclose(g["b"], [np.mean(scipy.special.expit(z) - y)], rtol=1e-12)
    np.testing.assert_allclose(g["w"], X.T @ (scipy.special.expit(z) - y) / 12 + lam * w, rtol=1e-12)


def test_logistic_gradient_matches_numeric_grad():
    p = problems.create("logistic_regression", n=15, d=3, seed=5)
    params = p.init(2)
    theta = _flat(params, p.param_shapes)
    numeric = ag.numeric_grad(_flat_loss(p), theta)
    _, g = p.oracle()(params)
    np.testing.assert_allclose(_flat(g, p.param_shapes), numeric, rtol=1e-7, atol=1e-9)


def test_logistic_accuracy_by_hand():
    p = problems.create("logistic_regression", seed=1)
    opt = p.optimum
    m = p.evaluate(opt)
    for data, key in ((p.data, "accuracy"), (p.test_data, "test_accuracy")):
        pred = (data["x"] @ opt["w"] + opt["b"][0] > 0).astype(float)
        assert m[key] == pytest.approx(np.mean(pred == data["y"]))
    assert m["test_loss"] == pytest.approx(float(p.loss(opt, p.test_data)))
    assert m["accuracy"] > 0.7 and m["test_accuracy"] > 0.6   # the classes overlap but are learnable


# ---- softmax regression -----------------------------------------------------------

def test_softmax_optimum_has_tiny_gradient():
    p = problems.create("softmax_regression")
    assert p.optimum["W"].shape == (3, 4) and p.optimum["b"].shape == (3,)
    _, g = p.oracle()(p.optimum)
    assert _grad_norm(g) < 1e-10
    rng = np.random.default_rng(0)
    for _ in range(5):
        moved = {k: v + 1e-3 * rng.standard_normal(v.shape) for k, v in p.optimum.items()}
        assert float(p.loss(moved)) > p.optimal_value


def test_softmax_loss_by_hand_in_torch_layout():
    lam = 0.2
    p = problems.create("softmax_regression", n=10, d=3, n_classes=4, lam=lam, seed=6)
    X, y = p.data["x"], p.data["y"]
    assert y.dtype.kind == "i" and set(np.unique(y)) <= {0, 1, 2, 3}
    rng = np.random.default_rng(1)
    W, b = rng.standard_normal((4, 3)), rng.standard_normal(4)
    logits = X @ W.T + b                                   # torch.nn.Linear(3, 4)
    ce = scipy.special.logsumexp(logits, axis=1) - logits[np.arange(10), y]
    by_hand = np.mean(ce) + lam / 2 * (np.sum(W ** 2) + np.sum(b ** 2))
    loss, g = p.oracle()({"W": W, "b": b})
    assert float(loss) == pytest.approx(by_hand, rel=1e-12)
    P = scipy.special.softmax(logits, axis=1)
    Y = np.eye(4)[y]
    np.testing.assert_allclose(g["W"], (P - Y).T @ X / 10 + lam * W, rtol=1e-11)
    np.testing.assert_allclose(g["b"], (P - Y).mean(axis=0) + lam * b, rtol=1e-11)


def test_softmax_gradient_matches_numeric_grad():
    p = problems.create("softmax_regression", n=12, d=2, n_classes=3, seed=7)
    params = p.init(3)
    theta = _flat(params, p.param_shapes)
    numeric = ag.numeric_grad(_flat_loss(p), theta)
    _, g = p.oracle()(params)
    np.testing.assert_allclose(_flat(g, p.param_shapes), numeric, rtol=1e-7, atol=1e-9)


def test_softmax_accuracy_by_hand():
    p = problems.create("softmax_regression", separation=2.0, seed=2)
    opt = p.optimum
    m = p.evaluate(opt)
    for data, key in ((p.data, "accuracy"), (p.test_data, "test_accuracy")):
        pred = np.argmax(data["x"] @ opt["W"].T + opt["b"], axis=1)
        assert m[key] == pytest.approx(np.mean(pred == data["y"]))
    assert m["accuracy"] > 0.6 and m["test_accuracy"] > 0.6


# ---- the explicit formulas Newton uses, against the autograd ------------------------

def _to_params(p, theta):
    """Newton's flat float64 vector as params: ``(w, b)`` for logistic, ``[W b].ravel()`` for softmax."""
    if p.name == "logistic_regression":
        return {"w": theta[:-1], "b": theta[-1:]}
    V = theta.reshape(p.K, p.d + 1)
    return {"W": V[:, :-1], "b": V[:, -1]}


def _from_params(p, params):
    if p.name == "logistic_regression":
        return np.concatenate([params["w"], params["b"]])
    return np.hstack([params["W"], params["b"][:, None]]).ravel()


@pytest.mark.parametrize("name, kw", [("logistic_regression", {"n": 20, "d": 3, "lam": 0.1}),
                                      ("softmax_regression", {"n": 20, "d": 2, "n_classes": 3, "lam": 0.1})])
def test_newton_formulas_match_the_autograd(name, kw):
    """f, gradient and Hessian written out for Newton equal the autograd's loss, grad and HVPs."""
    p = problems.create(name, seed=8, **kw)
    theta = np.random.default_rng(0).standard_normal(p.dim)
    f, g, H = p._fgh(theta)
    params = _to_params(p, theta)
    oracle = p.oracle()
    loss, grads = oracle(params)
    assert f == pytest.approx(float(loss), rel=1e-13)
    np.testing.assert_allclose(g, _from_params(p, grads), rtol=1e-11, atol=1e-14)
    columns = [_from_params(p, oracle.hvp(params, _to_params(p, e))) for e in np.eye(p.dim)]
    np.testing.assert_allclose(H, np.array(columns).T, rtol=1e-11, atol=1e-14)


# ---- lasso ----------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [{}, {"n": 15, "d": 30, "n_nonzero": 4, "lam": 0.05, "seed": 3}])
def test_lasso_optimum_satisfies_the_subgradient_conditions(kw):
    p = problems.create("lasso", **kw)
    w = p.optimum["w"]
    X, y, lam = p.data["x"], p.data["y"], p.lam
    corr = X.T @ (y - X @ w) / X.shape[0]          # minus the smooth gradient
    zero = w == 0
    assert 0 < zero.sum() < w.size, "the test needs both zero and nonzero coordinates"
    # to machine precision (coordinate descent alone stops near 1e-13; the exact solve on the support does better)
    assert np.all(np.abs(corr[zero]) <= lam + 1e-14)
    np.testing.assert_allclose(corr[~zero], lam * np.sign(w[~zero]), rtol=0, atol=1e-14)
    # the oracle's gradient is that of the smooth part alone
    _, g = p.oracle()({"w": w})
    np.testing.assert_allclose(g["w"], -corr, atol=1e-14)
    # and it minimises the full objective
    rng = np.random.default_rng(0)
    for _ in range(10):
        moved = {"w": w + 1e-4 * rng.standard_normal(w.shape)}
        assert float(p.objective(moved)) > p.optimal_objective


def test_lasso_loss_is_the_smooth_part_and_objective_adds_l1():
    p = problems.create("lasso", n=8, d=3, n_nonzero=2, lam=0.4, seed=1)
    X, y = p.data["x"], p.data["y"]
    w = np.array([1.0, -2.0, 0.5])
    smooth = np.sum((X @ w - y) ** 2) / 16
    assert float(p.loss({"w": w})) == pytest.approx(smooth, rel=1e-13)
    assert float(p.objective({"w": w})) == pytest.approx(smooth + 0.4 * 3.5, rel=1e-13)
    assert p.optimal_value == pytest.approx(float(p.loss(p.optimum)), rel=1e-12)
    assert p.optimal_objective == pytest.approx(float(p.objective(p.optimum)), rel=1e-12)
    m = p.evaluate({"w": np.array([0.0, 1.0, 0.0])})
    assert m["nnz"] == 1 and m["objective"] == pytest.approx(m["loss"] + 0.4)


def test_lasso_prox_is_soft_thresholding_by_hand():
    p = problems.create("lasso", d=5, n_nonzero=1, lam=2.0)
    w = np.array([3.0, -0.5, 0.2, -2.0, 0.0])
    before = w.copy()
    out = p.prox({"w": w}, 0.5)                       # threshold 0.5 * 2.0 = 1.0
    np.testing.assert_array_equal(out["w"], [2.0, 0.0, 0.0, -1.0, 0.0])
    np.testing.assert_array_equal(w, before)          # the input is not mutated
    assert out["w"] is not w
    np.testing.assert_array_equal(p.prox({"w": w}, 0.0)["w"], w)
    out32 = p.prox({"w": w.astype(np.float32)}, 0.25)  # threshold 0.5
    assert out32["w"].dtype == np.float32
    np.testing.assert_array_equal(out32["w"], np.float32([2.5, 0.0, 0.0, -1.5, 0.0]))
    with pytest.raises(ValueError, match="step"):
        p.prox({"w": w}, -1.0)


def test_lasso_optimum_is_a_fixed_point_of_proximal_gradient():
    p = problems.create("lasso", seed=5)
    w = p.optimum
    _, g = p.oracle()(w)
    for step in (1e-3, 0.1, 1.0):
        np.testing.assert_allclose(p.prox({"w": w["w"] - step * g["w"]}, step)["w"], w["w"], atol=1e-12)
    # while a point off the optimum is moved
    off = {"w": w["w"] + 0.1}
    _, g_off = p.oracle()(off)
    assert np.abs(p.prox({"w": off["w"] - 0.1 * g_off["w"]}, 0.1)["w"] - off["w"]).max() > 1e-3


@pytest.mark.parametrize("name, kw", [("quadratic", {"noise": 0.0}), ("lasso", {}), ("softmax_regression", {}),
                                      ("logistic_regression", {})])
def test_float32_everywhere(name, kw):
    """Beyond the contract's default settings: the noiseless quadratic, the lasso's objective, evaluate."""
    p = problems.create(name, **kw)
    params = p.init(0, dtype="float32")
    loss, g = p.oracle()(params)
    assert loss.dtype == np.float32 and all(v.dtype == np.float32 for v in g.values())
    if name == "lasso":
        assert p.objective(params).dtype == np.float32
    m64, m32 = p.evaluate(p.init(0)), p.evaluate(params)
    assert set(m64) == set(m32)
    for k in m64:
        assert m32[k] == pytest.approx(m64[k], rel=1e-5)


# ---- seeds and settings ----------------------------------------------------------------

@pytest.mark.parametrize("name", CONVEX)
def test_seed_fixes_the_data(name):
    a, b, c = problems.create(name, seed=3), problems.create(name, seed=3), problems.create(name, seed=4)
    for k in a.data:
        np.testing.assert_array_equal(a.data[k], b.data[k])
    assert any(not np.array_equal(a.data[k], c.data[k]) for k in a.data)
    if a.test_data is not None:
        for k in a.test_data:
            np.testing.assert_array_equal(a.test_data[k], b.test_data[k])
    for k in a.optimum:
        np.testing.assert_array_equal(a.optimum[k], b.optimum[k])
    assert a.optimal_value == b.optimal_value


def test_seed_fixes_the_matrix():
    a, b, c = (problems.create("quadratic", noise=0.0, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.A, b.A)
    np.testing.assert_array_equal(a.center, b.center)
    assert not np.array_equal(a.A, c.A)


@pytest.mark.parametrize("name", ["logistic_regression", "softmax_regression", "least_squares", "lasso"])
def test_optimum_is_cached_and_returned_as_a_copy(name):
    p = problems.create(name)
    first = p.optimum
    k = next(iter(first))
    first[k][...] = 123.0                                  # mutating what we got back
    assert not np.any(p.optimum[k] == 123.0)


BAD_SETTINGS = [
    ("quadratic", {"dim": -1}, "dim"),
    ("quadratic", {"dim": 0}, "dim"),
    ("quadratic", {"dim": 2.5}, "dim"),
    ("quadratic", {"condition_number": 0.5}, "condition_number"),
    ("quadratic", {"condition_number": float("inf")}, "condition_number"),
    ("quadratic", {"dim": 1, "condition_number": 10.0}, "condition_number"),
    ("quadratic", {"spectrum": "cubic"}, "spectrum"),
    ("quadratic", {"L": 0.0}, "L"),
    ("quadratic", {"L": -1.0}, "L"),
    ("quadratic", {"eigenvalues": [1.0, 2.0], "dim": 3}, "eigenvalues"),
    ("quadratic", {"eigenvalues": [1.0, -2.0]}, "eigenvalues"),
    ("quadratic", {"eigenvalues": [0.0, 0.0]}, "eigenvalues"),
    ("quadratic", {"eigenvalues": [[1.0, 2.0]]}, "eigenvalues"),
    ("quadratic", {"eigenvalues": [1.0, np.nan]}, "eigenvalues"),
    ("quadratic", {"eigenvalues": [1.0, 2.0], "condition_number": 3.0}, "condition_number"),
    ("quadratic", {"noise": -0.1}, "noise"),
    ("quadratic", {"n_samples": 0}, "n_samples"),
    ("quadratic", {"seed": -1}, "seed"),
    ("noisy_quadratic", {"noise": -1.0}, "noise"),
    ("noisy_quadratic", {"n_test": -1}, "n_test"),
    ("noisy_quadratic", {"jitter": -1.0}, "jitter"),
    ("least_squares", {"n": 0}, "n"),
    ("least_squares", {"d": -3}, "d"),
    ("least_squares", {"lam": -1e-3}, "lam"),
    ("least_squares", {"noise": "a lot"}, "noise"),
    ("least_squares", {"condition_number": 0.9}, "condition_number"),
    ("least_squares", {"n": 3, "d": 5, "condition_number": 10.0}, "condition_number"),
    ("logistic_regression", {"lam": -1.0}, "lam"),
    ("logistic_regression", {"d": 0}, "d"),
    ("logistic_regression", {"n_test": -1}, "n_test"),
    ("softmax_regression", {"n_classes": 1}, "n_classes"),
    ("softmax_regression", {"lam": 0.0}, "lam"),
    ("softmax_regression", {"separation": -1.0}, "separation"),
    ("lasso", {"lam": 0.0}, "lam"),
    ("lasso", {"n_nonzero": 21, "d": 20}, "n_nonzero"),
    ("lasso", {"n_nonzero": -1}, "n_nonzero"),
]


@pytest.mark.parametrize("name, kw, setting", BAD_SETTINGS, ids=[f"{n}-{s}-{kw}" for n, kw, s in BAD_SETTINGS])
def test_bad_settings_raise_naming_the_setting(name, kw, setting):
    with pytest.raises(ValueError, match=rf"\b{setting}\b"):
        problems.create(name, **kw)
