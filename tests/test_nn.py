"""Tests of reference.nn: shapes, dtypes, input checks, initialisers, gradients and torch agreement."""
import math

import numpy as np
import pytest

from reference import autograd as ag
from reference import nn

ACTS = sorted(nn.ACTIVATIONS)


# ---- small helpers ------------------------------------------------------------

def _mlp_problem(activation="tanh", sizes=(3, 7, 5, 4), n=6, seed=0):
    init, apply = nn.mlp(sizes, activation=activation)
    rng = np.random.default_rng(seed)
    params = init(seed)
    # nonzero biases, so that their gradients and the bias paths are exercised
    params = {k: v + (0.1 * rng.standard_normal(v.shape) if k.endswith("bias") else 0.0) for k, v in params.items()}
    x = rng.standard_normal((n, sizes[0]))
    y = rng.integers(0, sizes[-1], n)
    return apply, params, x, y


def _cnn_problem(activation="tanh", in_shape=(1, 8, 8), channels=(3, 4), n_classes=3, n=4, seed=0):
    init, apply = nn.cnn(in_shape, channels, n_classes, activation=activation)
    rng = np.random.default_rng(seed)
    params = init(seed)
    params = {k: v + (0.1 * rng.standard_normal(v.shape) if k.endswith("bias") else 0.0) for k, v in params.items()}
    x = rng.standard_normal((n,) + tuple(in_shape))
    y = rng.integers(0, n_classes, n)
    return apply, params, x, y


def _ce_loss(apply):
    return lambda p, x, y: ag.mean(nn.cross_entropy_losses(apply(p, x), y))


def _with(params, key, value):
    return {**params, key: value}


# ---- output shapes, parameter layout, dtypes -------------------------------------

def test_mlp_params_follow_torch_layout_and_output_shape():
    init, apply = nn.mlp([3, 7, 5, 4])
    params = init(0)
    assert list(params) == ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]
    assert params["0.weight"].shape == (7, 3) and params["0.bias"].shape == (7,)
    assert params["2.weight"].shape == (4, 5) and params["2.bias"].shape == (4,)
    for k, v in params.items():
        assert v.dtype == np.float64
        if k.endswith("bias"):
            np.testing.assert_array_equal(v, 0.0)
    out = apply(params, np.ones((11, 3)))
    assert out.shape == (11, 4)


def test_mlp_computes_x_wT_plus_b_with_a_linear_last_layer():
    init, apply = nn.mlp([3, 4, 2], activation="tanh")
    params = init(1)
    rng = np.random.default_rng(0)
    params["0.bias"] = rng.standard_normal(4)
    params["1.bias"] = rng.standard_normal(2)
    x = rng.standard_normal((5, 3))
    expected = np.tanh(x @ params["0.weight"].T + params["0.bias"]) @ params["1.weight"].T + params["1.bias"]
    np.testing.assert_allclose(apply(params, x).value, expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("in_shape,channels,n_classes", [((1, 16, 16), (4, 8), 3), ((2, 8, 8), (3,), 5)])
def test_cnn_params_and_output_shapes(in_shape, channels, n_classes):
    init, apply = nn.cnn(in_shape, channels, n_classes)
    params = init(0)
    c = in_shape[0]
    widths = [c, *channels]
    for i, (ci, co) in enumerate(zip(widths[:-1], widths[1:])):
        assert params[f"conv{i}.weight"].shape == (co, ci, 3, 3)
        assert params[f"conv{i}.bias"].shape == (co,)
    side = in_shape[1] // 2 ** len(channels)
    assert params["fc.weight"].shape == (n_classes, channels[-1] * side * side)
    x = np.random.default_rng(0).standard_normal((6,) + in_shape)
    assert apply(params, x).shape == (6, n_classes)
    assert apply.features(params, x).shape == (6, channels[-1], side, side)


def test_float32_in_float32_out():
    for init, apply, x in [
        (*nn.mlp([3, 8, 2]), np.ones((4, 3), np.float32)),
        (*nn.cnn((1, 8, 8), (2,), 3), np.ones((4, 1, 8, 8), np.float32)),
    ]:
        params = init(0, dtype="float32")
        assert all(v.dtype == np.float32 for v in params.values())
        out = apply(params, x)
        assert out.dtype == np.float32
        y = np.array([0, 1, 1, 0])
        loss, g = ag.value_and_grad(lambda p: ag.mean(nn.cross_entropy_losses(apply(p, x), y)))(params)
        assert loss.dtype == np.float32
        assert all(v.dtype == np.float32 for v in g.values())


def test_init_is_seeded():
    init, _ = nn.mlp([3, 8, 2])
    a, b, c = init(0), init(0), init(1)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["0.weight"], c["0.weight"])
    d = init(np.random.default_rng(0))
    np.testing.assert_array_equal(a["0.weight"], d["0.weight"])
    with pytest.raises(TypeError):
        init("zero")


# ---- input checks ---------------------------------------------------------------------

def test_mlp_rejects_bad_input_shapes_naming_the_expected_shape():
    init, apply = nn.mlp([3, 8, 2])
    params = init(0)
    for bad in (np.ones((4, 2)), np.ones(3), np.ones((4, 3, 1))):
        with pytest.raises(ValueError, match=r"\(N, 3\)"):
            apply(params, bad)


def test_cnn_rejects_bad_input_shapes_naming_the_expected_shape():
    init, apply = nn.cnn((1, 16, 16), (4, 8), 3)
    params = init(0)
    for bad in (np.ones((2, 1, 8, 8)), np.ones((2, 3, 16, 16)), np.ones((2, 16, 16)), np.ones((2, 256))):
        with pytest.raises(ValueError, match=r"\(N, 1, 16, 16\)"):
            apply(params, bad)


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="activation"):
        nn.mlp([2, 4, 2], activation="swish")
    with pytest.raises(ValueError, match="activation"):
        nn.cnn((1, 8, 8), (2,), 2, activation="swish")


def test_bad_architectures_are_rejected():
    with pytest.raises(ValueError, match="sizes"):
        nn.mlp([3])
    with pytest.raises(ValueError, match="sizes"):
        nn.mlp([3, 0, 2])
    with pytest.raises(ValueError, match="divisible"):
        nn.cnn((1, 10, 10), (2, 2), 2)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.cnn((1, 8, 8), (2,), 2, kernel_size=2)


# ---- initialisers: the right variance -----------------------------------------------

# (initialiser, variance as a function of (fan_in, fan_out), is it uniform)
INITS = [
    (nn.he_normal, lambda fi, fo: 2.0 / fi, False),
    (nn.he_uniform, lambda fi, fo: 2.0 / fi, True),
    (nn.glorot_normal, lambda fi, fo: 2.0 / (fi + fo), False),
    (nn.glorot_uniform, lambda fi, fo: 2.0 / (fi + fo), True),
]


def _check_moments(w, var, uniform):
    """Mean 0 and variance ``var`` within 5 standard errors of the estimators (for this sample size)."""
    w = w.reshape(-1)
    n = w.size
    # standard error of the sample variance: sqrt((mu4 - sigma^4) / n), with mu4 = 3 sigma^4 for a
    # normal and 9/5 sigma^4 for a uniform (mu4 = b^4 / 5, sigma^2 = b^2 / 3)
    kurtosis = 9.0 / 5.0 if uniform else 3.0
    se_var = var * math.sqrt((kurtosis - 1.0) / n)
    assert abs(w.var() - var) < 5 * se_var, (w.var(), var, se_var)
    assert abs(w.mean()) < 5 * math.sqrt(var / n)
    if uniform:
        bound = math.sqrt(3 * var)
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.99 * bound  # the whole interval is used


@pytest.mark.parametrize("initialiser,variance,uniform", INITS, ids=[f[0].__name__ for f in INITS])
@pytest.mark.parametrize("shape", [(300, 400), (64, 32, 3, 3)], ids=["linear", "conv"])
def test_initialisers_have_the_right_variance(initialiser, variance, uniform, shape):
    fan_in = shape[1] * int(np.prod(shape[2:]))
    fan_out = shape[0] * int(np.prod(shape[2:]))
    w = initialiser(np.random.default_rng(0), shape)
    assert w.shape == shape and w.dtype == np.float64
    _check_moments(w, variance(fan_in, fan_out), uniform)
    assert initialiser(0, shape, "float32").dtype == np.float32


def test_a_wrong_variance_would_be_caught():
    """The tolerance is tight enough to tell He from Glorot at these sizes."""
    w = nn.he_normal(np.random.default_rng(0), (300, 400))
    with pytest.raises(AssertionError):
        _check_moments(w, 2.0 / 700, uniform=False)


def test_default_initialisers_follow_the_activation():
    fan_in, fan_out = 300, 400
    relu = nn.mlp([fan_in, fan_out, 2], activation="relu")[0](0)["0.weight"]
    tanh = nn.mlp([fan_in, fan_out, 2], activation="tanh")[0](0)["0.weight"]
    _check_moments(relu, 2.0 / fan_in, uniform=False)
    _check_moments(tanh, 2.0 / (fan_in + fan_out), uniform=False)
    conv = nn.cnn((32, 8, 8), (64,), 2, activation="relu")[0](0)["conv0.weight"]
    _check_moments(conv, 2.0 / (32 * 9), uniform=False)


# ---- gradients against central differences ------------------------------------------

@pytest.mark.parametrize("activation", ACTS)
def test_mlp_gradients_match_central_differences_per_param(activation):
    apply, params, x, y = _mlp_problem(activation)
    loss = _ce_loss(apply)
    for k in params:
        err = ag.check_grads(lambda w, k=k: loss(_with(params, k, w), x, y), (params[k],), rtol=1e-6)
        assert err < 1e-6, k


@pytest.mark.parametrize("activation", ["tanh", "gelu", "softplus"])
def test_mlp_second_derivatives_match_central_differences(activation):
    apply, params, x, y = _mlp_problem(activation)
    loss = _ce_loss(apply)
    # directional checks over the whole params dict, first and second order (the HVP path)
    assert ag.check_grads(lambda p: loss(p, x, y), (params,), order=2, rtol=1e-6) < 1e-6


def test_mlp_regression_loss_gradient_matches_central_differences():
    init, apply = nn.mlp([2, 6, 3], activation="tanh")
    params = init(0)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((5, 2)), rng.standard_normal((5, 3))
    f = lambda p: ag.mean(nn.mse_losses(apply(p, x), t))  # noqa: E731
    assert ag.check_grads(f, (params,), rtol=1e-6) < 1e-6


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_cnn_gradients_match_central_differences_per_param(activation):
    apply, params, x, y = _cnn_problem(activation)
    loss = _ce_loss(apply)
    for k in params:
        err = ag.check_grads(lambda w, k=k: loss(_with(params, k, w), x, y), (params[k],), rtol=1e-6)
        assert err < 1e-6, k


def test_tiny_cnn_conv_weight_gradient_entry_by_entry():
    apply, params, x, y = _cnn_problem("relu", in_shape=(2, 4, 4), channels=(3,), n_classes=2, n=3)
    loss = _ce_loss(apply)
    g = ag.grad(loss)(params, x, y)
    for k in ("conv0.weight", "conv0.bias"):
        numeric = ag.numeric_grad(lambda w, k=k: loss(_with(params, k, w), x, y), params[k])
        assert g[k].shape == numeric.shape
        assert ag.relative_error(g[k], numeric) < 1e-6, k
        np.testing.assert_allclose(g[k], numeric, rtol=1e-6, atol=1e-9)


# ---- per-example gradients ---------------------------------------------------------------

@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_per_example_grads_match_a_one_example_loop(model):
    apply, params, x, y = _mlp_problem("relu", n=5) if model == "mlp" else _cnn_problem("relu", n=5)
    losses = lambda p, x_, y_: nn.cross_entropy_losses(apply(p, x_), y_)  # noqa: E731
    per = ag.per_example_grads(losses)(params, x, y)
    for i in range(len(y)):
        gi = ag.grad(lambda p: ag.sum(losses(p, x[i:i + 1], y[i:i + 1])))(params)
        for k in params:
            assert per[k].shape == (len(y),) + params[k].shape
            np.testing.assert_allclose(per[k][i], gi[k], rtol=1e-12, atol=1e-15)
    g = ag.grad(lambda p: ag.mean(losses(p, x, y)))(params)
    for k in params:
        np.testing.assert_allclose(per[k].mean(axis=0), g[k], rtol=1e-10, atol=1e-14)


# ---- per-example losses and accuracy against their formulas --------------------------------

def test_per_example_losses_match_their_formulas():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    lse = np.log(np.exp(z).sum(axis=1))
    np.testing.assert_allclose(nn.cross_entropy_losses(z, y).value, lse - z[np.arange(6), y], rtol=1e-13)
    t = rng.standard_normal((6, 4))
    np.testing.assert_allclose(nn.mse_losses(z, t).value, ((z - t) ** 2).mean(axis=1), rtol=1e-13)
    np.testing.assert_allclose(nn.mse_losses(z[:, 0], t[:, 0]).value, (z[:, 0] - t[:, 0]) ** 2, rtol=1e-13)
    b = rng.integers(0, 2, 6).astype(np.float64)
    expected = np.log1p(np.exp(z[:, 0])) - b * z[:, 0]
    np.testing.assert_allclose(nn.logistic_losses(z[:, 0], b).value, expected, rtol=1e-13)
    assert float(nn.accuracy(z, z.argmax(axis=1))) == 1.0
    assert float(nn.accuracy(ag.Tensor(z), (z.argmax(axis=1) + 1) % 4)) == 0.0


# ---- peer: torch.nn (float64, same weights) ---------------------------------------------------

TORCH_ACTS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "gelu": "GELU", "softplus": "Softplus",
              "identity": "Identity"}


def _torch_grads(module, key_map, x, y):
    import torch
    out = module(torch.from_numpy(x))
    loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(y))
    loss.backward()
    named = dict(module.named_parameters())
    return out.detach().numpy(), float(loss.detach()), {k: named[t].grad.numpy() for k, t in key_map.items()}


@pytest.mark.peer
@pytest.mark.parametrize("activation", ACTS)
def test_mlp_matches_torch(activation):
    torch = pytest.importorskip("torch")
    sizes = [3, 16, 8, 4]
    apply, params, x, y = _mlp_problem(activation, sizes=sizes, n=7)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=torch.float64))
        if i < len(sizes) - 2:
            layers.append(getattr(torch.nn, TORCH_ACTS[activation])())
    module = torch.nn.Sequential(*layers)
    # our linear layer i is torch's Sequential module 2 i (activations sit in between)
    key_map = {k: f"{2 * int(k.split('.')[0])}.{k.split('.')[1]}" for k in params}
    with torch.no_grad():
        named = dict(module.named_parameters())
        for k, t in key_map.items():
            named[t].copy_(torch.from_numpy(params[k]))
    out_t, loss_t, grads_t = _torch_grads(module, key_map, x, y)
    np.testing.assert_allclose(apply(params, x).value, out_t, rtol=1e-10, atol=1e-12)
    loss, g = ag.value_and_grad(_ce_loss(apply))(params, x, y)
    assert float(loss) == pytest.approx(loss_t, rel=1e-10)
    for k in params:
        np.testing.assert_allclose(g[k], grads_t[k], rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.peer
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_cnn_matches_torch(activation):
    torch = pytest.importorskip("torch")
    in_shape, channels, n_classes = (1, 16, 16), (4, 8), 3
    apply, params, x, y = _cnn_problem(activation, in_shape, channels, n_classes, n=5)
    act = getattr(torch.nn, TORCH_ACTS[activation])
    module = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1, dtype=torch.float64), act(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 8, 3, padding=1, dtype=torch.float64), act(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, n_classes, dtype=torch.float64))
    key_map = {"conv0.weight": "0.weight", "conv0.bias": "0.bias", "conv1.weight": "3.weight",
               "conv1.bias": "3.bias", "fc.weight": "7.weight", "fc.bias": "7.bias"}
    assert set(key_map) == set(params)
    with torch.no_grad():
        named = dict(module.named_parameters())
        for k, t in key_map.items():
            named[t].copy_(torch.from_numpy(params[k]))
        feats_t = module[:6](torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(apply.features(params, x).value, feats_t, rtol=1e-10, atol=1e-12)
    out_t, loss_t, grads_t = _torch_grads(module, key_map, x, y)
    np.testing.assert_allclose(apply(params, x).value, out_t, rtol=1e-10, atol=1e-12)
    loss, g = ag.value_and_grad(_ce_loss(apply))(params, x, y)
    assert float(loss) == pytest.approx(loss_t, rel=1e-10)
    for k in params:
        np.testing.assert_allclose(g[k], grads_t[k], rtol=1e-10, atol=1e-12, err_msg=k)
