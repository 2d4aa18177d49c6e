"""Contract tests run on every registered problem (new problems get them for free)."""
import numpy as np
import pytest

from reference import autograd as ag
from reference import problems

NAMES = problems.names()


def _make(name):
    return problems.create(name)


def _f64(params):
    return {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}


@pytest.mark.parametrize("name", NAMES)
def test_seeded_init_is_reproducible_and_float(name):
    p = _make(name)
    a, b, c = p.init(0), p.init(0), p.init(1)
    assert set(a) == set(p.param_shapes)
    for k in a:
        assert a[k].shape == tuple(p.param_shapes[k])
        assert a[k].dtype == np.float64
        np.testing.assert_array_equal(a[k], b[k])
    if p.seeded_init:
        assert any(not np.array_equal(a[k], c[k]) for k in a), "different seeds gave the same init"


@pytest.mark.parametrize("name", NAMES)
def test_gradient_and_hvp_match_central_differences(name):
    p = _make(name)
    params = p.init(0)
    batch = p.sample_batch(np.random.default_rng(0), min(8, p.n_train)) if p.n_train else None
    oracle = p.oracle(batch)
    # gradient: directional derivative along a random direction vs central differences
    rng = np.random.default_rng(1)
    v = {k: rng.standard_normal(s) for k, s in p.param_shapes.items()}
    loss, g = oracle(params)
    h = 1e-6
    up = float(oracle.loss({k: params[k] + h * v[k] for k in params}))
    down = float(oracle.loss({k: params[k] - h * v[k] for k in params}))
    fd = (up - down) / (2 * h)
    an = sum(float(np.vdot(g[k], v[k])) for k in g)
    assert abs(fd - an) <= 1e-6 * max(1.0, abs(fd)), (fd, an)
    # HVP vs finite differences of gradients
    hv = oracle.hvp(params, v)
    gu = oracle({k: params[k] + h * v[k] for k in params})[1]
    gd = oracle({k: params[k] - h * v[k] for k in params})[1]
    fd_hv = {k: (gu[k] - gd[k]) / (2 * h) for k in g}
    assert ag.relative_error([hv[k] for k in g], [fd_hv[k] for k in g]) < 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_optimum_is_stationary_with_the_optimal_value(name):
    p = _make(name)
    opt = p.optimum
    if opt is None:
        pytest.skip(f"{name} has no known optimum")
    loss, g = p.oracle()(_f64(opt))
    if p.optimal_value is not None:
        assert float(loss) == pytest.approx(p.optimal_value, rel=1e-9, abs=1e-9)
    if hasattr(p, "prox"):  # composite problems: check the prox fixed point instead of grad = 0
        step = 1e-2
        moved = p.prox({k: opt[k] - step * g[k] for k in opt}, step)
        for k in opt:
            np.testing.assert_allclose(moved[k], opt[k], atol=1e-8)
    else:
        for k in g:
            np.testing.assert_allclose(g[k], 0.0, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_float32_in_float32_out(name):
    p = _make(name)
    params = p.init(0, dtype="float32")
    loss, g = p.oracle()(params)
    assert loss.dtype == np.float32
    assert all(v.dtype == np.float32 for v in g.values())
    assert np.isfinite(loss)


@pytest.mark.parametrize("name", NAMES)
def test_bad_params_are_rejected_with_the_key(name):
    p = _make(name)
    params = p.init(0)
    k = next(iter(params))
    with pytest.raises(KeyError):
        p.loss({**params, "not_a_param": params[k]})
    with pytest.raises(ValueError, match=repr(k).strip("'")):
        p.loss({**params, k: np.zeros(params[k].shape + (2,))})
    with pytest.raises(TypeError):
        p.loss({**params, k: params[k].astype(np.int64)})


@pytest.mark.parametrize("name", [n for n in NAMES if _make(n).n_train])
def test_batches_are_seeded_and_checked(name):
    p = _make(name)
    b1 = p.sample_batch(np.random.default_rng(3), 4)
    b2 = p.sample_batch(np.random.default_rng(3), 4)
    for k in b1:
        np.testing.assert_array_equal(b1[k], b2[k])
        assert b1[k].shape[0] == 4
    bad = {k: v[:, None] for k, v in b1.items()}
    with pytest.raises(ValueError):
        p.oracle(bad)
    with pytest.raises(KeyError):
        p.oracle({**b1, "extra": b1[next(iter(b1))]})


@pytest.mark.parametrize("name", [n for n in NAMES if _make(n).n_train])
def test_per_sample_grads_average_to_the_batch_gradient(name):
    p = _make(name)
    params = p.init(0)
    batch = p.sample_batch(np.random.default_rng(0), 5)
    o = p.oracle(batch)
    psg = o.per_sample_grads(params)
    _, g = o(params)
    for k in g:
        assert psg[k].shape == (5,) + g[k].shape
    # the loss is the mean of the per-example losses (a regulariser is part of each f_i)
    for k in g:
        np.testing.assert_allclose(psg[k].mean(axis=0), g[k], rtol=1e-9, atol=1e-12)


def test_unknown_problem_names_the_valid_ones():
    with pytest.raises(KeyError, match="rosenbrock"):
        problems.create("no_such_problem")
