"""Tests of the nonconvex problems beyond the registry-wide contract tests:
hand-computed values, the documented formulas evaluated independently in NumPy,
optima (and their symmetries) with value 0 and zero gradient, gradients against
central differences, seeds, and the checks on settings."""
import numpy as np
import pytest

from reference import autograd as ag
from reference import problems

MINE = ["rosenbrock", "beale", "rastrigin", "matrix_sensing", "phase_retrieval", "scalar_network",
        "deep_linear_network"]


def _loss_and_grad(p, params):
    loss, g = p.oracle()(params)
    return float(loss), g


def _assert_minimiser(p, params, atol=1e-10):
    loss, g = _loss_and_grad(p, params)
    assert loss == pytest.approx(0.0, abs=atol)
    for k in g:
        np.testing.assert_allclose(g[k], 0.0, atol=atol, err_msg=k)


def _random_orthogonal(rng, k):
    q, r = np.linalg.qr(rng.standard_normal((k, k)))
    return q * np.sign(np.diag(r))


# ---- every problem, several settings --------------------------------------------

SETTINGS = [
    ("rosenbrock", {"dim": 5}),
    ("beale", {}),
    ("rastrigin", {"dim": 4}),
    ("matrix_sensing", {}),
    ("matrix_sensing", {"n": 4, "rank": 1, "width": 3, "measurements": 30}),
    ("matrix_sensing", {"n": 3, "rank": 3, "eigenvalues": [4.0, 2.0, 1.0], "measurements": 50}),
    ("phase_retrieval", {"n": 3, "measurements": 20}),
    ("scalar_network", {}),
    ("scalar_network", {"depth": 1, "target": 3.0}),
    ("scalar_network", {"depth": 3, "target": -8.0}),
    ("scalar_network", {"depth": 4, "target": -2.0}),
    ("scalar_network", {"depth": 2, "target": 0.0}),
    ("deep_linear_network", {}),
    ("deep_linear_network", {"sizes": (3, 2)}),                       # depth 1: W_1 = M
    ("deep_linear_network", {"sizes": (5, 2, 6, 3), "rank": 2}),      # bottleneck of width rank(M)
    ("deep_linear_network", {"sizes": (4, 7, 7, 2), "rank": 1, "n_train": 3}),  # fewer examples than inputs
    ("deep_linear_network", {"sizes": (3, 4, 2), "noise": 0.3, "n_train": 10}),
]


@pytest.mark.parametrize("name,kw", SETTINGS)
def test_optimum_has_the_optimal_value_and_zero_gradient(name, kw):
    p = problems.create(name, **kw)
    assert p.optimum is not None
    loss, g = _loss_and_grad(p, p.optimum)
    assert loss == pytest.approx(p.optimal_value, rel=1e-12, abs=1e-12)
    for k in g:
        np.testing.assert_allclose(g[k], 0.0, atol=1e-10, err_msg=k)


@pytest.mark.parametrize("name,kw", SETTINGS)
def test_gradient_matches_numeric_grad_entry_by_entry(name, kw):
    p = problems.create(name, **kw)
    params = p.init(3)
    _, g = p.oracle()(params)
    for k in params:
        fd = ag.numeric_grad(lambda v: p.loss({**params, k: v}), params[k])
        np.testing.assert_allclose(g[k], fd, rtol=1e-6, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("name,kw", SETTINGS)
def test_minibatch_loss_is_the_mean_over_its_examples(name, kw):
    p = problems.create(name, **kw)
    if p.n_train is None:
        pytest.skip("a plain function has no examples")
    params = p.init(0)
    batch = p.sample_batch(np.random.default_rng(0), 3)
    singles = [float(p.loss(params, {k: v[i:i + 1] for k, v in batch.items()})) for i in range(3)]
    assert float(p.loss(params, batch)) == pytest.approx(np.mean(singles), rel=1e-12)


@pytest.mark.parametrize("name", MINE)
def test_same_seeds_give_the_same_problem_and_init(name):
    a, b = problems.create(name), problems.create(name)
    for k, v in a.init(5).items():
        np.testing.assert_array_equal(v, b.init(5)[k])
    if a.data is not None:
        for k in a.data:
            np.testing.assert_array_equal(a.data[k], b.data[k])
        other = problems.create(name, seed=1)
        assert not np.array_equal(a.data["y"], other.data["y"]), "seed is ignored"
        assert not np.allclose(a.optimum[next(iter(a.optimum))], other.optimum[next(iter(other.optimum))])


# ---- hand-computed values ------------------------------------------------------

def test_rosenbrock_hessian_at_the_optimum_is_the_hand_computed_one():
    # f = 100 (y - x^2)^2 + (1 - x)^2: f_xx = 1200 x^2 - 400 y + 2, f_xy = -400 x, f_yy = 200
    p = problems.create("rosenbrock")
    o = p.oracle()
    cols = [o.hvp(p.optimum, {"w": e})["w"] for e in np.eye(2)]   # H e_j, column by column
    np.testing.assert_allclose(np.stack(cols, axis=1), [[802.0, -400.0], [-400.0, 200.0]], rtol=1e-12)


def test_beale_values_and_gradients_at_hand_picked_points():
    p = problems.create("beale")
    # at (2, 0): terms t = (1.5 - 2, 2.25 - 2, 2.625 - 2) = (-0.5, 0.25, 0.625)
    # df/dx = 2 sum_k t_k (y^k - 1) = 2 (0.5 - 0.25 - 0.625) = -0.75
    # df/dy = 2 sum_k t_k k x y^(k-1) = 2 (-0.5)(2) = -2
    loss, g = _loss_and_grad(p, {"w": np.array([2.0, 0.0])})
    assert loss == pytest.approx(0.25 + 0.0625 + 0.390625, rel=1e-15)
    np.testing.assert_allclose(g["w"], [-0.75, -2.0], rtol=1e-14)
    # at the start (1, 1): t = (1.5, 2.25, 2.625), df/dx = 0, df/dy = 2 (1.5 + 2 * 2.25 + 3 * 2.625) = 27.75
    loss, g = _loss_and_grad(p, p.init(0))
    assert loss == pytest.approx(1.5 ** 2 + 2.25 ** 2 + 2.625 ** 2, rel=1e-15)
    np.testing.assert_allclose(g["w"], [0.0, 27.75], rtol=1e-14, atol=1e-14)


def test_rastrigin_values_and_gradient_by_hand():
    p = problems.create("rastrigin")          # d = 2, a = 10
    # f(1, 0.5) = 20 + (1 - 10 cos 2pi) + (0.25 - 10 cos pi) = 20 - 9 + 10.25
    assert float(p.loss({"w": np.array([1.0, 0.5])})) == pytest.approx(21.25, rel=1e-14)
    # df/dw_i = 2 w_i + 2 pi a sin(2 pi w_i): at (0.25, 0) that is (0.5 + 20 pi, 0)
    _, g = _loss_and_grad(p, {"w": np.array([0.25, 0.0])})
    np.testing.assert_allclose(g["w"], [0.5 + 20 * np.pi, 0.0], rtol=1e-14, atol=1e-12)
    # at integer points the cosine term is flat: the gradient is 2 w (the local minima sit just inside)
    loss, g = _loss_and_grad(problems.create("rastrigin", a=10.0, dim=3), {"w": np.array([1.0, -1.0, 0.0])})
    assert loss == pytest.approx(2.0, rel=1e-12)
    np.testing.assert_allclose(g["w"], [2.0, -2.0, 0.0], atol=1e-12)


def test_rastrigin_init_is_uniform_in_the_box():
    w = problems.create("rastrigin", dim=4000).init(0)["w"]
    assert np.all(np.abs(w) <= 5.12)
    assert w.min() < -5.0 and w.max() > 5.0 and abs(w.mean()) < 0.3


# ---- the documented formulas, evaluated independently ---------------------------------

def test_matrix_sensing_loss_is_the_documented_formula():
    p = problems.create("matrix_sensing", n=4, rank=2, width=3, measurements=25)
    U = p.init(1)["U"] * 50
    A, y = p.data["A"], p.data["y"]
    np.testing.assert_allclose(y, [np.trace(Ai.T @ p.X_star) for Ai in A], rtol=1e-12)
    want = np.mean([0.5 * (np.sum(Ai * (U @ U.T)) - yi) ** 2 for Ai, yi in zip(A, y)])
    assert float(p.loss({"U": U})) == pytest.approx(want, rel=1e-12)


def test_matrix_sensing_scaling_expected_loss_is_half_the_squared_frobenius_error():
    p = problems.create("matrix_sensing", n=3, rank=1, measurements=20000)
    U = np.random.default_rng(0).standard_normal((3, 1))
    want = 0.5 * np.linalg.norm(U @ U.T - p.X_star) ** 2
    assert float(p.loss({"U": U})) == pytest.approx(want, rel=0.05)


def test_matrix_sensing_ground_truth_has_the_chosen_spectrum():
    p = problems.create("matrix_sensing", n=6, rank=3)
    np.testing.assert_allclose(np.linalg.eigvalsh(p.X_star)[::-1][:3], [1.0, 2 / 3, 1 / 3], rtol=1e-12)
    np.testing.assert_allclose(np.linalg.eigvalsh(p.X_star)[:3], 0.0, atol=1e-12)
    q = problems.create("matrix_sensing", n=4, rank=2, eigenvalues=[5.0, 0.5])
    np.testing.assert_allclose(np.linalg.eigvalsh(q.X_star)[::-1][:2], [5.0, 0.5], rtol=1e-12)
    assert np.linalg.norm(p.init(0)["U"]) < 0.1        # small initialisation by default


def test_phase_retrieval_loss_is_the_documented_formula():
    p = problems.create("phase_retrieval", n=4, measurements=12)
    x = np.random.default_rng(2).standard_normal(4)
    a, y = p.data["a"], p.data["y"]
    np.testing.assert_allclose(y, (a @ p.x_star) ** 2, rtol=1e-14)
    assert np.linalg.norm(p.x_star) == pytest.approx(1.0)
    assert float(p.loss({"x": x})) == pytest.approx(np.mean(0.25 * ((a @ x) ** 2 - y) ** 2), rel=1e-12)
    # the gradient of Candes, Li and Soltanolkotabi: (1/m) sum ((a^T x)^2 - y) (a^T x) a
    _, g = _loss_and_grad(p, {"x": x})
    np.testing.assert_allclose(g["x"], np.mean((((a @ x) ** 2 - y) * (a @ x))[:, None] * a, axis=0), rtol=1e-12)


def test_scalar_network_loss_is_the_documented_formula():
    p = problems.create("scalar_network", depth=5, target=3.0)
    w = np.array([0.5, -1.5, 2.0, 1.25, 0.8])
    assert float(p.loss({"w": w})) == pytest.approx(0.5 * (np.prod(w) - 3.0) ** 2, rel=1e-14)
    # d/dw_i = (prod - y) prod_{j != i} w_j
    _, g = _loss_and_grad(p, {"w": w})
    np.testing.assert_allclose(g["w"], (np.prod(w) - 3.0) * np.prod(w) / w, rtol=1e-13)


def test_deep_linear_network_loss_is_the_documented_formula():
    p = problems.create("deep_linear_network", sizes=(3, 5, 4, 2), n_train=7)
    params = p.init(0)
    assert list(params) == ["0.weight", "1.weight", "2.weight"]
    assert [params[k].shape for k in params] == [(5, 3), (4, 5), (2, 4)]
    W1, W2, W3 = params.values()
    X, Y = p.data["x"], p.data["y"]
    np.testing.assert_allclose(Y, X @ p.M.T, rtol=1e-12)
    want = np.linalg.norm(W3 @ W2 @ W1 @ X.T - Y.T) ** 2 / (2 * 7)
    assert float(p.loss(params)) == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(p.end_to_end(params), W3 @ W2 @ W1, rtol=1e-14)
    assert np.linalg.matrix_rank(problems.create("deep_linear_network", sizes=(5, 5, 5), rank=2).M) == 2


@pytest.mark.peer
def test_deep_linear_network_matches_torch_sequential_of_bias_free_linear_layers():
    torch = pytest.importorskip("torch")
    p = problems.create("deep_linear_network", sizes=(3, 5, 4, 2), n_train=9)
    params = p.init(1)
    net = torch.nn.Sequential(*[torch.nn.Linear(p.sizes[j], p.sizes[j + 1], bias=False, dtype=torch.float64)
                                for j in range(p.depth)])
    net.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})   # same keys and layouts
    out = net(torch.from_numpy(p.data["x"]))
    loss = 0.5 * ((out - torch.from_numpy(p.data["y"])) ** 2).sum(dim=1).mean()
    loss.backward()
    ours, g = _loss_and_grad(p, params)
    assert ours == pytest.approx(loss.item(), rel=1e-12)
    for k, prm in net.named_parameters():
        np.testing.assert_allclose(g[k], prm.grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=k)


# ---- symmetries of the solution sets ----------------------------------------------

def test_phase_retrieval_minus_x_star_is_also_optimal():
    p = problems.create("phase_retrieval")
    minus = {"x": -p.x_star}
    _assert_minimiser(p, minus)
    assert p.evaluate(minus)["distance"] == pytest.approx(0.0, abs=1e-15)
    assert p.evaluate({"x": 2 * p.x_star})["distance"] == pytest.approx(1.0)
    assert float(p.loss({"x": 0.9 * p.x_star})) > 1e-3     # and the scale is not lost


@pytest.mark.parametrize("kw", [{}, {"n": 5, "rank": 2, "width": 4}])
def test_matrix_sensing_is_invariant_under_rotations_of_the_factor(kw):
    p = problems.create("matrix_sensing", **kw)
    rng = np.random.default_rng(0)
    R = _random_orthogonal(rng, p.width)
    rotated = {"U": p.optimum["U"] @ R}
    assert not np.allclose(rotated["U"], p.optimum["U"])
    _assert_minimiser(p, rotated)
    assert p.evaluate(rotated)["recovery_error"] == pytest.approx(0.0, abs=1e-12)
    # away from the optimum too: the loss sees only U U^T
    U = p.init(0)["U"] * 30
    assert float(p.loss({"U": U @ R})) == pytest.approx(float(p.loss({"U": U})), rel=1e-12)


def test_matrix_sensing_under_parameterised_has_no_exact_optimum():
    p = problems.create("matrix_sensing", n=5, rank=3, width=2)
    assert p.optimum is None and p.optimal_value is None
    assert p.init(0)["U"].shape == (5, 2)


def test_scalar_network_every_point_with_product_y_is_a_minimiser():
    p = problems.create("scalar_network", depth=4, target=2.0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        w = rng.uniform(0.3, 3.0, 4) * rng.choice([-1.0, 1.0], 4)
        w[-1] = 2.0 / np.prod(w[:-1])                   # now w_1 w_2 w_3 w_4 = 2
        _assert_minimiser(p, {"w": w})
    off = {"w": p.optimum["w"] * 1.01}
    assert float(p.loss(off)) > 1e-4 and np.abs(p.oracle()(off)[1]["w"]).max() > 1e-2


def test_scalar_network_balanced_optimum_and_its_sharpness():
    for depth, y in [(4, 2.0), (3, -8.0), (2, 5.0), (1, 3.0)]:
        p = problems.create("scalar_network", depth=depth, target=y)
        w = p.optimum["w"]
        np.testing.assert_allclose(np.abs(w), abs(y) ** (1 / depth), rtol=1e-14)   # balanced
        assert np.prod(w) == pytest.approx(y, rel=1e-14)
        assert p.sharpness(p.optimum) == pytest.approx(depth * abs(y) ** (2 - 2 / depth), rel=1e-12)


def test_scalar_network_sharpness_is_the_top_eigenvalue_of_the_hand_computed_hessian():
    p = problems.create("scalar_network", depth=4, target=2.0)
    # an unbalanced minimiser: the Hessian is g g^T with g_i = y / w_i, sharpness sum (y / w_i)^2
    w = np.array([0.5, 2.0, 1.0, 2.0])
    assert p.sharpness({"w": w}) == pytest.approx(np.sum((2.0 / w) ** 2), rel=1e-12)
    assert p.sharpness({"w": w}) > p.sharpness(p.optimum)      # the balanced minimiser is the flattest
    # any point: H = (prod - y) d^2 prod + g g^T with (d^2 prod)_ij = prod / (w_i w_j) off the diagonal
    w = np.array([0.7, -1.3, 1.1, 0.9])
    prod, g = np.prod(w), np.prod(w) / w
    H = (prod - 2.0) * (prod / np.outer(w, w)) * (1 - np.eye(4)) + np.outer(g, g)
    assert p.sharpness({"w": w}) == pytest.approx(np.linalg.eigvalsh(H)[-1], rel=1e-12)
    assert p.evaluate({"w": w})["product"] == pytest.approx(prod)


def test_scalar_network_init_is_positive_and_unbalanced():
    w = problems.create("scalar_network", depth=6).init(0)["w"]
    assert np.all(w > 0) and np.ptp(np.log(w)) > 0.1


def test_deep_linear_network_optimum_is_a_balanced_factorisation_of_m():
    p = problems.create("deep_linear_network", sizes=(5, 3, 6, 4), rank=2)
    W = [p.optimum[f"{j}.weight"] for j in range(p.depth)]
    np.testing.assert_allclose(p.end_to_end(p.optimum), p.M, atol=1e-12)
    for lower, upper in zip(W[:-1], W[1:]):             # W_{j+1}^T W_{j+1} = W_j W_j^T
        np.testing.assert_allclose(upper.T @ upper, lower @ lower.T, atol=1e-12)
    assert p.evaluate(p.optimum)["product_error"] == pytest.approx(0.0, abs=1e-12)
    # another factorisation of the same product: W_1 -> R W_1, W_2 -> W_2 R^T
    R = _random_orthogonal(np.random.default_rng(0), 3)
    _assert_minimiser(p, {**p.optimum, "0.weight": R @ W[0], "1.weight": W[1] @ R.T})


def test_deep_linear_network_bottleneck_narrower_than_rank_has_no_exact_optimum():
    p = problems.create("deep_linear_network", sizes=(4, 1, 4), rank=3)
    assert p.optimum is None and p.optimal_value is None


def test_deep_linear_network_with_noise_has_the_least_squares_residual_as_optimal_value():
    p = problems.create("deep_linear_network", sizes=(3, 4, 2), noise=0.3, n_train=10)
    X, Y = p.data["x"], p.data["y"]
    B = np.linalg.solve(X.T @ X, X.T @ Y)                              # normal equations
    assert p.optimal_value == pytest.approx(np.sum((X @ B - Y) ** 2) / 20, rel=1e-10)
    assert p.optimal_value > 0.01
    np.testing.assert_allclose(p.end_to_end(p.optimum), B.T, atol=1e-12)


# ---- settings are checked ----------------------------------------------------------

BAD = [
    ("rastrigin", {"dim": 0}, "dim"),
    ("rastrigin", {"dim": 2.5}, "dim"),
    ("rastrigin", {"a": -1.0}, "a"),
    ("rastrigin", {"bound": 0.0}, "bound"),
    ("beale", {"jitter": -0.1}, "jitter"),
    ("matrix_sensing", {"n": 0}, "n"),
    ("matrix_sensing", {"n": 3, "rank": 4}, "rank"),
    ("matrix_sensing", {"rank": 0}, "rank"),
    ("matrix_sensing", {"width": 0}, "width"),
    ("matrix_sensing", {"measurements": 0}, "measurements"),
    ("matrix_sensing", {"rank": 2, "eigenvalues": [1.0]}, "eigenvalues"),
    ("matrix_sensing", {"rank": 2, "eigenvalues": [1.0, -1.0]}, "eigenvalues"),
    ("matrix_sensing", {"init_scale": float("nan")}, "init_scale"),
    ("phase_retrieval", {"n": 0}, "n"),
    ("phase_retrieval", {"measurements": -3}, "measurements"),
    ("scalar_network", {"depth": 0}, "depth"),
    ("scalar_network", {"target": float("inf")}, "target"),
    ("scalar_network", {"init_std": -1.0}, "init_std"),
    ("deep_linear_network", {"sizes": (4,)}, "depth"),
    ("deep_linear_network", {"sizes": (4, 0, 4)}, r"sizes\[1\]"),
    ("deep_linear_network", {"sizes": (4, 3, 2), "rank": 3}, "rank"),
    ("deep_linear_network", {"n_train": 0}, "n_train"),
    ("deep_linear_network", {"noise": -0.5}, "noise"),
]


@pytest.mark.parametrize("name,kw,setting", BAD)
def test_bad_settings_raise_value_error_naming_the_setting(name, kw, setting):
    with pytest.raises(ValueError, match=rf"{name}: {setting}\b|{setting} must"):
        problems.create(name, **kw)
