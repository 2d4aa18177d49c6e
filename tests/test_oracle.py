"""reference.oracle: recording trajectories, golden files, compare and replay.

The Adam used to check ``replay`` is written here from Algorithm 1 of the
paper, independently of ``reference.optim.adam``.
"""
import dataclasses
import json

import numpy as np
import pytest

from reference import optim, oracle, problems
from reference.optim.base import Optimizer

STEPS = 30


@pytest.fixture(scope="module")
def adam_traj():
    return oracle.trajectory("adam", {"lr": 1e-2}, oracle.DEFAULT_PROBLEM, STEPS)


def inverse_time(k):
    return 0.05 / (1 + k)


@pytest.fixture(scope="module")
def minibatch_traj():
    return oracle.trajectory("sgd", {"lr": inverse_time, "momentum": 0.9}, "softmax_regression", 12, seed=3,
                             batch_size=16)


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _assert_bitwise_equal(t1, t2):
    assert t1.identical(t2)
    # and independently of Trajectory.identical:
    for group in ("params", "grads", "state", "schedules"):
        d1, d2 = getattr(t1, group), getattr(t2, group)
        assert list(d1) == list(d2), group
        for k in d1:
            assert _same_bits(d1[k], d2[k]), (group, k)
    for name in ("loss", "oracle_calls"):
        assert _same_bits(getattr(t1, name), getattr(t2, name)), name
    assert (t1.batch_indices is None) == (t2.batch_indices is None)
    if t1.batch_indices is not None:
        assert _same_bits(t1.batch_indices, t2.batch_indices)
    for f in ("optimizer", "hparams", "problem", "problem_kw", "param_shapes", "seed", "dtype",
              "batch_size", "state_kinds", "version"):
        assert getattr(t1, f) == getattr(t2, f), f


# ---- hand-written Adam (Kingma and Ba, Algorithm 1), not using reference.optim ----

def make_numpy_adam(lr, beta1=0.9, beta2=0.999, eps=1e-8, eps_inside_sqrt=False):
    def step(params, grads, state, t):
        if state is None:
            state = {"m": {k: np.zeros_like(p) for k, p in params.items()},
                     "v": {k: np.zeros_like(p) for k, p in params.items()}}
        new = {}
        for k, w in params.items():
            g = grads[k]
            m = beta1 * state["m"][k] + (1 - beta1) * g
            v = beta2 * state["v"][k] + (1 - beta2) * g ** 2
            m_hat = m / (1 - beta1 ** t)
            v_hat = v / (1 - beta2 ** t)
            denom = np.sqrt(v_hat + eps) if eps_inside_sqrt else np.sqrt(v_hat) + eps
            new[k] = w - lr * m_hat / denom
            state["m"][k], state["v"][k] = m, v
        return new, state
    return step


# ==== recording ===========================================================================

def test_default_problem_has_a_vector_and_a_matrix(adam_traj):
    ndims = sorted(len(s) for s in adam_traj.param_shapes.values())
    assert ndims == [1, 2]
    assert oracle.DEFAULT_PROBLEM in problems.names()


def test_layout_and_metadata(adam_traj):
    t = adam_traj
    assert t.steps == STEPS and t.keys == ["W", "b"]
    assert t.params["W"].shape == (STEPS + 1, 3, 4) and t.grads["W"].shape == (STEPS, 3, 4)
    assert t.loss.shape == (STEPS,) and t.params["b"].dtype == np.float64
    assert set(t.state) == {"step", "m/W", "m/b", "v/W", "v/b"}
    np.testing.assert_array_equal(t.state["step"], np.arange(1, STEPS + 1))
    assert t.hparams == {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
    assert (t.optimizer, t.problem, t.seed, t.dtype, t.batch_size) == ("adam", "softmax_regression", 0,
                                                                        "float64", None)
    assert t.version and t.numpy_version == np.__version__
    np.testing.assert_array_equal(t.oracle_calls, np.ones(STEPS, dtype=np.int64))
    st = t.state_at(5)
    assert st["step"] == 5 and isinstance(st["step"], int)
    assert _same_bits(st["m"]["W"], t.state["m/W"][4])
    with pytest.raises(IndexError, match=r"\[1, 30\]"):
        t.state_at(0)


def test_recorded_params_grads_loss_are_aligned_with_the_oracle(adam_traj):
    t = adam_traj
    prob = problems.create("softmax_regression")
    assert all(_same_bits(t.params[k][0], v) for k, v in prob.init(0).items())
    full = prob.oracle()
    for s in (1, 2, STEPS):
        loss, g = full(t.params_at(s - 1))  # gradient of step s is taken at the params before it
        assert _same_bits(t.loss[s - 1], loss)
        assert all(_same_bits(t.grads[k][s - 1], g[k]) for k in g)


def test_state_is_the_state_after_each_step(adam_traj):
    t = adam_traj
    m = np.zeros((3, 4))
    v = np.zeros((3, 4))
    for s in range(1, STEPS + 1):
        g = t.grads["W"][s - 1]
        m = 0.9 * m + (1 - 0.9) * g
        v = 0.999 * v + (1 - 0.999) * g * g
        np.testing.assert_allclose(t.state["m/W"][s - 1], m, rtol=1e-14, atol=0)
        np.testing.assert_allclose(t.state["v/W"][s - 1], v, rtol=1e-14, atol=0)


def test_sgd_params_follow_the_recorded_gradients_exactly():
    t = oracle.trajectory("sgd", {"lr": 0.1}, "least_squares", 10)
    for s in range(1, 11):
        assert _same_bits(t.params["w"][s], t.params["w"][s - 1] - 0.1 * t.grads["w"][s - 1])


def test_float32_trajectory_keeps_its_dtype():
    t = oracle.trajectory("adam", None, oracle.DEFAULT_PROBLEM, 5, dtype="float32")
    assert t.dtype == "float32"
    assert all(v.dtype == np.float32 for v in [*t.params.values(), *t.grads.values(), t.loss])
    assert oracle.compare(t, t).rtol == oracle.default_tolerances("float32")[0]


def test_minibatches_are_reproducible_from_the_seed(minibatch_traj):
    t = minibatch_traj
    again = oracle.trajectory("sgd", {"lr": inverse_time, "momentum": 0.9}, "softmax_regression",
                              12, seed=3, batch_size=16)
    _assert_bitwise_equal(t, again)
    assert t.batch_indices.shape == (12, 16) and t.batch_indices.dtype == np.int64
    # the documented recipe: one default_rng(seed), sample_batch's draw once per step
    prob = problems.create("softmax_regression")
    rng = np.random.default_rng(3)
    params = prob.init(3)
    assert all(_same_bits(t.params[k][0], params[k]) for k in params)
    for s in range(1, 13):
        batch = prob.sample_batch(rng, 16)
        mine = {k: v[t.batch_indices[s - 1]] for k, v in prob.data.items()}
        assert all(_same_bits(batch[k], mine[k]) for k in batch)
        loss, g = prob.oracle(batch)(t.params_at(s - 1))
        assert all(_same_bits(t.grads[k][s - 1], g[k]) for k in g)
        assert _same_bits(t.loss[s - 1], loss)
    other = oracle.trajectory("sgd", {"lr": 0.05, "momentum": 0.9}, "softmax_regression", 12, seed=4,
                              batch_size=16)
    assert not np.array_equal(other.batch_indices, t.batch_indices)


def test_schedules_are_recorded_as_evaluated_values(minibatch_traj):
    t = minibatch_traj
    np.testing.assert_array_equal(t.schedules["lr"], [0.05 / (1 + k) for k in range(12)])
    assert t.hparams["lr"] == {"schedule": f"{__name__}.inverse_time"}
    assert t.hparams_at(1)["lr"] == 0.05 and t.hparams_at(3)["lr"] == 0.05 / 3
    assert t.hparams_at(3)["momentum"] == 0.9
    # plain SGD with momentum (torch convention) replayed with the recorded lr per step
    def sgd_step(params, grads, buf, s):
        lr = t.hparams_at(s)["lr"]
        buf = dict(grads) if buf is None else {k: 0.9 * buf[k] + grads[k] for k in grads}
        return {k: params[k] - lr * buf[k] for k in params}, buf
    assert oracle.replay(t, sgd_step, rtol=0, atol=1e-15).ok
    wrong = lambda p, g, b, s: sgd_step(p, g, b, 1)  # noqa: E731  (ignores the schedule)
    assert oracle.replay(t, wrong).first_step == 2


def test_schedule_specs_are_recorded_and_rerun(tmp_path):
    schedules = pytest.importorskip("reference.schedules")
    cos = schedules.cosine(0.1, 20)
    t = oracle.trajectory("adam", {"lr": cos}, "softmax_regression", 8, seed=2, batch_size=10)
    assert t.hparams["lr"]["spec"] == cos.spec()
    np.testing.assert_array_equal(t.schedules["lr"], [cos(k) for k in range(8)])
    loaded = oracle.Trajectory.load(t.save(tmp_path / "cos.json"))
    _assert_bitwise_equal(loaded.rerun(), t)
    # inside a wrapped optimizer only the spec is recorded (the inner step count is the inner one's)
    hp = oracle._hparams_to_json({"inner": optim.create("adam", lr=cos)}, "wrapper")
    assert hp["inner"]["hparams"]["lr"]["spec"] == cos.spec()
    assert oracle._hparams_from_json(hp, "wrapper")["inner"].hparams["lr"] == cos


def test_rerun_reproduces_a_stored_run_and_refuses_unknown_settings(adam_traj, minibatch_traj):
    _assert_bitwise_equal(adam_traj.rerun(), adam_traj)
    with pytest.raises(ValueError, match="'lr' was a schedule without a spec"):
        minibatch_traj.rerun()
    t = oracle.trajectory("sgd", {"lr": 0.01}, problems.create("least_squares", d=4), 2)
    with pytest.raises(ValueError, match="Problem object whose settings are unknown"):
        t.rerun()


def test_an_optimizer_object_calling_the_oracle_twice_per_step():
    class Extragradient(Optimizer):
        name = "extragradient_test"
        defaults = dict(lr=0.05)

        def update(self, params, grads, state, t, hp):
            raise AssertionError("step is overridden")

        def step(self, params, state, oracle_):
            t = state["step"] + 1
            _, g1 = oracle_(params)
            half = {k: params[k] - self.hparams["lr"] * g1[k] for k in params}
            _, g2 = oracle_.value_and_grad(half)
            oracle_.loss(half)  # rich capability: passes through, not recorded
            return {k: params[k] - self.hparams["lr"] * g2[k] for k in params}, {"step": t}

    t = oracle.trajectory(Extragradient(), None, "least_squares", 4)
    assert t.optimizer == "extragradient_test"
    np.testing.assert_array_equal(t.oracle_calls, [2, 2, 2, 2])
    assert t.grads["w"].shape == (4, 2, 10)
    prob = problems.create("least_squares")
    p0 = t.params_at(0)
    loss1, g1 = prob.oracle()(p0)
    loss2, g2 = prob.oracle()({"w": p0["w"] - 0.05 * g1["w"]})
    assert _same_bits(t.loss[0], loss1) and loss1 != loss2  # the loss of the step's first call
    assert _same_bits(t.grads["w"][0, 0], g1["w"]) and _same_bits(t.grads["w"][0, 1], g2["w"])


# ==== files =================================================================================

@pytest.mark.parametrize("fmt", ["npz", "json"])
def test_golden_file_round_trips_bit_for_bit(tmp_path, fmt):
    out = tmp_path / f"adam.{fmt}"
    path = oracle.golden("adam", steps=20, out=out, format=fmt, hparams='{"lr": 0.01}')
    assert path == str(out) and out.exists()
    loaded = oracle.Trajectory.load(path)
    fresh = oracle.trajectory("adam", {"lr": 0.01}, oracle.DEFAULT_PROBLEM, 20)
    _assert_bitwise_equal(loaded, fresh)
    if fmt == "json":  # strict JSON: no NaN/Infinity tokens, floats as numbers
        doc = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard token {c}"))
        assert isinstance(doc["params"]["W"]["data"][0], float)
        assert doc["params"]["W"]["shape"] == [21, 3, 4]


@pytest.mark.parametrize("fmt", ["npz", "json"])
def test_round_trip_keeps_special_values_schedules_batches_and_float32(tmp_path, fmt, minibatch_traj):
    t32 = oracle.trajectory("adam", {"lr": 1e-2}, "softmax_regression", 6, dtype="float32", batch_size=8)
    for t in (minibatch_traj, t32):
        g = {k: v.copy() for k, v in t.grads.items()}
        k = next(iter(g))
        flat = g[k].reshape(-1)
        flat[:5] = [np.nan, np.inf, -np.inf, -0.0, np.finfo(flat.dtype).tiny]
        flat[5] = np.nextafter(flat[5], np.inf, dtype=flat.dtype)
        special = dataclasses.replace(t, grads=g)
        loaded = oracle.Trajectory.load(special.save(tmp_path / f"t.{fmt}"))
        _assert_bitwise_equal(loaded, special)
        assert np.signbit(loaded.grads[k].reshape(-1)[3])
        assert loaded.state_at(2)["step"] == 2


def test_identical_sees_one_ulp(adam_traj):
    p = {k: v.copy() for k, v in adam_traj.params.items()}
    p["b"][7, 1] = np.nextafter(p["b"][7, 1], 1.0)
    assert not adam_traj.identical(dataclasses.replace(adam_traj, params=p))
    assert adam_traj.identical(dataclasses.replace(adam_traj))


def test_golden_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = oracle.golden("sgd", steps=3)
    assert path == "sgd.npz"
    t = oracle.Trajectory.load(path)
    assert t.problem == oracle.DEFAULT_PROBLEM and t.steps == 3 and t.seed == 0 and t.dtype == "float64"
    assert oracle.golden("sgd", steps=2, format="json", problem="rosenbrock", seed=1,
                         hparams={"lr": 1e-3}) == "sgd.json"
    t = oracle.Trajectory.load("sgd.json")
    assert (t.problem, t.hparams["lr"], t.seed, t.keys) == ("rosenbrock", 1e-3, 1, ["w"])


def test_load_rejects_other_files(tmp_path):
    from reference import io
    p = io.save(tmp_path / "x.npz", {"a": np.ones(2)})
    with pytest.raises(ValueError, match="not a trajectory"):
        oracle.Trajectory.load(p)
    (tmp_path / "x.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="something-else"):
        oracle.Trajectory.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("not json")
    with pytest.raises(ValueError, match="neither"):
        oracle.Trajectory.load(tmp_path / "y.json")


# ==== compare ===============================================================================

def test_compare_with_itself_reports_no_divergence(adam_traj):
    for other in (adam_traj, adam_traj.params, [adam_traj.params_at(s) for s in range(STEPS + 1)],
                  {k: v[1:] for k, v in adam_traj.params.items()}):
        r = oracle.compare(adam_traj, other)
        assert r.ok and r.first_step is None and r.first_param is None
        assert np.nanmax(r.max_abs_all) == 0 and np.nanmax(r.max_rel_all) == 0
        assert all(v is None for v in r.diverged_at.values())
        assert "no divergence" in str(r)


@pytest.mark.parametrize("with_initial", [True, False])
def test_perturbation_is_located_exactly(adam_traj, with_initial):
    other = {k: v.copy() for k, v in adam_traj.params.items()}
    other["W"][17:, 2, 1] += 1e-6
    other["b"][25:, 0] -= 1e-6
    if not with_initial:
        other = {k: v[1:] for k, v in other.items()}
    r = oracle.compare(adam_traj, other)
    assert not r.ok
    assert (r.first_step, r.first_param, r.first_index) == (17, "W", (2, 1))
    assert r.diverged_at == {"W": 17, "b": 25}
    ref = adam_traj.params["W"][17, 2, 1]
    assert r.reference_value == ref and r.other_value == ref + 1e-6
    assert r.abs_err == pytest.approx(1e-6, rel=1e-6) and r.rel_err == pytest.approx(1e-6 / abs(ref), rel=1e-6)
    assert (r.n_bad, r.n_total) == (1, 15)
    assert r.max_abs["W"][16] == 0 and r.max_abs["W"][17] == pytest.approx(1e-6, rel=1e-6)
    assert np.isnan(r.max_abs["W"][0]) != with_initial
    text = str(r)
    assert f"first divergence at step 17, parameter 'W', index (2, 1): reference {float(ref)!r} vs other" in text
    assert "abs err 1e-06" in text


def test_tolerance_is_respected(adam_traj):
    other = {k: v.copy() for k, v in adam_traj.params.items()}
    other["b"][3:, 1] *= 1 + 1e-9
    assert oracle.compare(adam_traj, other, rtol=1e-8).ok
    r = oracle.compare(adam_traj, other, rtol=1e-10)
    assert (r.first_step, r.first_param, r.first_index) == (3, "b", (1,))


def test_nan_in_other_is_a_divergence(adam_traj):
    other = {k: v.copy() for k, v in adam_traj.params.items()}
    other["b"][9, 2] = np.nan
    r = oracle.compare(adam_traj, other, rtol=1.0, atol=1.0)
    assert (r.first_step, r.first_param, r.first_index) == (9, "b", (2,))
    assert r.abs_err == np.inf


def test_compare_names_mismatched_keys_and_shapes(adam_traj):
    p = adam_traj.params
    with pytest.raises(KeyError, match=r"missing \['b'\].*unexpected \['bias'\]"):
        oracle.compare(adam_traj, {"W": p["W"], "bias": p["b"]})
    with pytest.raises(ValueError, match=r"'W' has shape \(31, 4, 3\).*\(31, 3, 4\)"):
        oracle.compare(adam_traj, {"W": p["W"].transpose(0, 2, 1), "b": p["b"]})
    with pytest.raises(ValueError, match=r"'b' has shape \(29, 3\)"):
        oracle.compare(adam_traj, {"W": p["W"], "b": p["b"][2:]})
    with pytest.raises(ValueError, match="disagree on the number of steps"):
        oracle.compare(adam_traj, {"W": p["W"], "b": p["b"][1:]})
    with pytest.raises(TypeError, match="Trajectory"):
        oracle.compare(p, adam_traj)


# ==== replay ================================================================================

def test_replay_independent_numpy_adam_agrees_to_1e12(adam_traj):
    r = oracle.replay(adam_traj, make_numpy_adam(lr=1e-2), rtol=0, atol=1e-12)
    assert r.ok, str(r)
    assert np.nanmax(r.max_abs_all) <= 1e-12
    assert r.other["W"].shape == (STEPS + 1, 3, 4)


def test_replay_flags_eps_inside_the_sqrt(adam_traj):
    r = oracle.replay(adam_traj, make_numpy_adam(lr=1e-2, eps_inside_sqrt=True))
    assert not r.ok and r.first_step == 1, str(r)
    assert "first divergence at step 1" in str(r)


def test_replay_flags_a_wrong_bias_correction(adam_traj):
    def off_by_one(params, grads, state, t):
        return make_numpy_adam(lr=1e-2)(params, grads, state, t + 1)
    assert oracle.replay(adam_traj, off_by_one).first_step == 1


def test_replay_with_an_in_place_kernel_and_hidden_state(adam_traj):
    """A 'fused' kernel that updates its buffers in place and keeps its own state."""
    buffers = {}

    def inplace_adam(params, grads, state, t):
        assert (state is None) == (t == 1)
        for k, w in params.items():
            m, v = buffers.setdefault(k, (np.zeros_like(w), np.zeros_like(w)))
            g = grads[k]
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            w -= 1e-2 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
            g[...] = np.nan  # scribbling on the inputs must not touch the trajectory
        return params, "opaque"

    before = adam_traj.grads["W"].copy()
    r = oracle.replay(adam_traj, inplace_adam, rtol=0, atol=1e-12)
    assert r.ok, str(r)
    assert _same_bits(adam_traj.grads["W"], before)
    assert not np.array_equal(r.other["W"][1], r.other["W"][2])


def test_replay_rejects_bad_step_functions(adam_traj):
    with pytest.raises(TypeError, match="step_fn returned"):
        oracle.replay(adam_traj, lambda p, g, s, t: 3.0)
    with pytest.raises(KeyError, match="expected"):
        oracle.replay(adam_traj, lambda p, g, s, t: {"W": p["W"]})


# ==== bad inputs ============================================================================

def test_unknown_names_list_the_valid_ones():
    with pytest.raises(KeyError, match="unknown optimizer 'adamm'.*valid names: .*adam.*sgd"):
        oracle.trajectory("adamm", {}, "least_squares", 3)
    with pytest.raises(KeyError, match="unknown problem 'rosenbrok'.*rosenbrock"):
        oracle.trajectory("adam", {}, "rosenbrok", 3)
    for bad, valid in [(dict(name="adamm", problem="least_squares"), optim.names()),
                       (dict(name="adam", problem="rosenbrok"), problems.names())]:
        with pytest.raises(KeyError) as err:
            oracle.trajectory(hparams={}, steps=3, **bad)
        assert all(v in str(err.value) for v in valid)
    with pytest.raises(TypeError, match="unknown hyperparameter.*'betta1'.*valid"):
        oracle.trajectory("adam", {"betta1": 0.9}, "least_squares", 3)
    with pytest.raises(KeyError, match="unknown optimizer"):
        oracle.golden("nope", steps=2, out="never-written.npz")


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="no training examples"):
        oracle.trajectory("sgd", {}, "rosenbrock", 3, batch_size=4)
    with pytest.raises(ValueError, match=r"batch_size must be None or an int in \[1, 100\]"):
        oracle.trajectory("sgd", {}, "least_squares", 3, batch_size=101)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        oracle.trajectory("sgd", {}, "least_squares", 0)
    with pytest.raises(ValueError, match="dtype must be a float dtype"):
        oracle.trajectory("sgd", {}, "least_squares", 2, dtype="int32")
    with pytest.raises(ValueError, match="problem_kw is only for a problem given by name"):
        oracle.trajectory("sgd", {}, problems.create("least_squares"), 2, problem_kw={"n": 5})
    with pytest.raises(ValueError, match="lr=-1"):
        oracle.trajectory("sgd", {"lr": -1.0}, "least_squares", 2)
    with pytest.raises(ValueError, match="'lr' of a wrapped optimizer is a schedule"):
        oracle._hparams_to_json({"inner": optim.create("adam", lr=lambda k: 1e-3)}, "lookahead")
    with pytest.raises(ValueError, match="format must be 'npz' or 'json'"):
        oracle.golden("sgd", steps=2, out=tmp_path / "x.npz", format="csv")
    with pytest.raises(ValueError, match="not valid JSON"):
        oracle.golden("sgd", steps=2, out=tmp_path / "x.npz", hparams="{lr: 1}")


def test_problem_kw_and_problem_objects_are_recorded():
    t = oracle.trajectory("sgd", {"lr": 0.01}, "least_squares", 2, problem_kw={"n": 20, "d": 3})
    assert t.problem_kw == {"n": 20, "d": 3} and t.param_shapes == {"w": (3,)}
    t = oracle.trajectory("sgd", {"lr": 0.01}, problems.create("least_squares", d=4), 2)
    assert t.problem == "least_squares" and t.problem_kw is None and t.param_shapes == {"w": (4,)}
