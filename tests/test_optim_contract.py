"""Contract tests run on every registered optimizer (new optimizers get them for free).

Hyperparameter validation, the finite-gradient check, dtype preservation,
purity, determinism, a bit-identical resume from a saved state, and descent
on a quadratic and on Rosenbrock.

Optimizers that cannot be built with ``create(name)`` alone (wrappers need an
``inner`` optimizer) declare their required arguments in a classmethod
``example_hparams()``; a new wrapper fails here until it does.
"""
import copy
import math

import numpy as np
import pytest

from reference import io, optim, problems

NAMES = optim.names()

#: An optimizer class states what the tests need to know about it, next to its code:
#:   example_hparams()  -> constructor arguments it cannot do without (a wrapper's ``inner``)
#:   descent_hparams    -> {problem: hparams} where its defaults are not meant for the descent test
#:   negative_ok        -> numeric hyperparameters for which a negative value is legitimate
#: (e.g. SGD's default lr = 0.01 diverges on Rosenbrock from (-1.2, 1), where ||grad|| is about 230
#: and the curvature about 1000, so sgd.py sets descent_hparams = {"rosenbrock": {"lr": 1e-3}}.)


def REQUIRED_for(name):
    cls = optim.get_class(name)
    return dict(cls.example_hparams()) if hasattr(cls, "example_hparams") else {}


class _Lookup:
    """``DESCENT_HPARAMS.get((name, problem), {})`` and ``(name, key) in NEGATIVE_OK`` read the classes."""

    def __init__(self, attr):
        self.attr = attr

    def get(self, key, default=None):
        name, problem = key
        return getattr(optim.get_class(name), self.attr, {}).get(problem, default)

    def __contains__(self, key):
        name, hp = key
        return hp in getattr(optim.get_class(name), self.attr, ())


DESCENT_HPARAMS = _Lookup("descent_hparams")
NEGATIVE_OK = _Lookup("negative_ok")


def make(name, **hp):
    return optim.create(name, **{**REQUIRED_for(name), **hp})


def two_key_oracle(bad=None):
    """A separable quadratic with a 2-D and a 1-D parameter, computed in the params' dtype.

    ``bad = (call, key, value)`` puts ``value`` into ``grads[key]`` on the ``call``-th call (1-based).
    """
    calls = [0]

    def oracle(params):
        calls[0] += 1
        loss, grads = 0.0, {}
        for i, (k, w) in enumerate(sorted(params.items())):
            c = np.linspace(0.5, 2.0 + i, w.size).reshape(w.shape).astype(w.dtype)
            r = w - w.dtype.type(0.3)
            grads[k] = c * r
            loss += 0.5 * float(np.sum(c * r * r))
        if bad is not None and calls[0] == bad[0]:
            g = grads[bad[1]].copy()
            g.flat[0] = bad[2]
            grads[bad[1]] = g
        return np.asarray(loss), grads

    return _RichQuadratic(oracle, calls)


class _RichQuadratic:
    """The two-key quadratic as a rich oracle: its Hessian is diag(c), and it is one example."""

    def __init__(self, oracle, calls):
        self._oracle, self.calls = oracle, calls

    def __call__(self, params):
        return self._oracle(params)

    def hvp(self, params, v):
        return {k: np.linspace(0.5, 2.0 + i, w.size).reshape(w.shape).astype(w.dtype) * v[k]
                for i, (k, w) in enumerate(sorted(params.items()))}

    def per_sample_grads(self, params):
        return {k: g[None] for k, g in self._oracle(params)[1].items()}

    # the 'outputs' capability (reference/problems/base.py), for Gauss-Newton methods such as EGN: the loss
    # is one example's 1/2 ||z||^2 with outputs z = sqrt(c) * (w - 0.3), all parameters' entries stacked
    def _scales(self, params):
        return [(k, np.sqrt(np.linspace(0.5, 2.0 + i, w.size).astype(w.dtype))) for i, (k, w) in
                enumerate(sorted(params.items()))]

    def outputs(self, params):
        return np.concatenate([s * (params[k].reshape(-1) - params[k].dtype.type(0.3))
                               for k, s in self._scales(params)])[None]

    def output_loss(self, outputs):
        return 0.5 * np.sum(outputs * outputs, axis=1)

    def output_jacobian(self, params):
        scales = self._scales(params)
        m = sum(s.size for _, s in scales)
        J, i = {}, 0
        for k, s in scales:
            block = np.zeros((m, s.size), dtype=s.dtype)
            block[i + np.arange(s.size), np.arange(s.size)] = s
            J[k] = block.reshape((1, m) + params[k].shape)
            i += s.size
        return self.outputs(params), J

    def output_loss_derivatives(self, outputs):
        m = outputs.shape[1]
        return outputs.copy(), np.eye(m, dtype=outputs.dtype)[None]


def two_key_params(dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    return {"layer.weight": rng.standard_normal((3, 2)).astype(dtype),
            "layer.bias": rng.standard_normal(3).astype(dtype)}


def leaves(tree, prefix=""):
    """``(path, value)`` for every leaf of a nested dict."""
    for k, v in tree.items():
        path = f"{prefix}/{k}" if prefix else k
        if isinstance(v, dict):
            yield from leaves(v, path)
        else:
            yield path, v


def assert_trees_identical(a, b, what=""):
    la, lb = dict(leaves(a)), dict(leaves(b))
    assert set(la) == set(lb), f"{what}: keys differ: {sorted(set(la) ^ set(lb))}"
    for k in la:
        x, y = la[k], lb[k]
        if hasattr(x, "dtype"):
            assert hasattr(y, "dtype") and x.dtype == y.dtype and x.shape == y.shape, (what, k)
            assert np.array_equal(x, y, equal_nan=True), f"{what}: {k} differs"
        else:
            assert type(x) is type(y) and x == y, f"{what}: {k}: {x!r} != {y!r}"


def run(opt, params, oracle, steps, state=None):
    state = opt.init(params) if state is None else state
    for _ in range(steps):
        params, state = opt.step(params, state, oracle)
    return params, state


# ---- hyperparameters ----------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_unknown_hyperparameter_is_a_type_error(name):
    with pytest.raises(TypeError, match="not_a_hyperparameter"):
        make(name, not_a_hyperparameter=1.0)


@pytest.mark.parametrize("name", NAMES)
def test_invalid_hyperparameters_raise_value_error_naming_them(name):
    opt = make(name)
    numeric = [k for k, v in opt.defaults.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert numeric, f"{name} has no numeric hyperparameters?"
    for key in numeric:
        bad_values = [math.nan] + ([] if (name, key) in NEGATIVE_OK else [-1.0])
        for bad in bad_values:
            with pytest.raises(ValueError, match=key):
                make(name, **{key: bad})


@pytest.mark.parametrize("name", NAMES)
def test_defaults_construct_and_repr(name):
    opt = make(name)
    assert opt.name == name
    assert name in repr(opt)
    assert set(opt.hparams) == set(opt.defaults)


# ---- the gradient check ---------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_gradient_raises_naming_parameter_and_step(name, value):
    opt = make(name)
    params = two_key_params()
    probe = two_key_oracle()  # count the oracle calls of step 1 (wrappers such as SAM make several)
    opt.step(params, opt.init(params), probe)
    oracle = two_key_oracle(bad=(probe.calls[0] + 1, "layer.bias", value))
    state = opt.init(params)
    params, state = opt.step(params, state, oracle)
    with pytest.raises(FloatingPointError, match=r"'layer\.bias'.*step 2"):
        opt.step(params, state, oracle)


# ---- dtype, purity, determinism -------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_preserved_in_params_and_every_state_slot(name, dtype):
    opt = make(name)
    params, state = run(opt, two_key_params(dtype), two_key_oracle(), 3)
    for k, v in params.items():
        assert v.dtype == np.dtype(dtype), (k, v.dtype)
        assert np.all(np.isfinite(v))
    arrays = [(k, v) for k, v in leaves(state) if hasattr(v, "dtype")]
    for k, v in arrays:
        assert v.dtype == np.dtype(dtype), f"state slot {k} has dtype {v.dtype}"
        assert np.all(np.isfinite(v)), k
    assert state["step"] == 3 and type(state["step"]) is int


@pytest.mark.parametrize("name", NAMES)
def test_step_does_not_mutate_its_inputs(name):
    opt = make(name)
    params = two_key_params()
    oracle = two_key_oracle()
    state = opt.init(params)
    for _ in range(3):  # from the initial state, then with non-trivial slots
        params_copy, state_copy = copy.deepcopy(params), copy.deepcopy(state)
        new_params, new_state = opt.step(params, state, oracle)
        assert_trees_identical(params, params_copy, "params")
        assert_trees_identical(state, state_copy, "state")
        assert new_state is not state and new_params is not params
        params, state = new_params, new_state


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_result(name):
    prob = problems.create("quadratic", dim=5, noise=0.0, seed=0)
    a = run(make(name), prob.init(3), prob.oracle(), 10)
    b = run(make(name), prob.init(3), prob.oracle(), 10)
    assert_trees_identical(a[0], b[0], "params")
    assert_trees_identical(a[1], b[1], "state")


# ---- save, load, resume ----------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_resume_from_saved_state_is_bit_identical(name, tmp_path):
    opt = make(name)
    oracle = two_key_oracle()
    full_params, full_state = run(opt, two_key_params(), oracle, 7)

    params, state = run(opt, two_key_params(), oracle, 3)
    path = tmp_path / "checkpoint.npz"
    io.save(path, {"params": params, "state": state})
    loaded = io.load(path, expect_keys=["params", "state"])
    params, state = run(make(name), loaded["params"], oracle, 4, state=loaded["state"])

    assert_trees_identical(params, full_params, "params")
    assert_trees_identical(state, full_state, "state")


# ---- descent ----------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("problem", ["quadratic", "rosenbrock"])
def test_descends_on_quadratic_and_rosenbrock(name, problem):
    prob = problems.create(problem, **(dict(dim=10, noise=0.0, seed=0) if problem == "quadratic" else {}))
    params = prob.init(0)
    start = float(prob.loss(params))
    params, _ = run(make(name, **DESCENT_HPARAMS.get((name, problem), {})), params, prob.oracle(), 200)
    end = float(prob.loss(params))
    assert all(np.all(np.isfinite(v)) for v in params.values())
    assert end < 0.9 * start, f"{name} on {problem}: loss {start:.4g} -> {end:.4g} after 200 steps"
