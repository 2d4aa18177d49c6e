"""Helpers shared by the golden-trajectory tests (``tests/golden/*.npz``).

``Golden("name.npz")`` loads a golden file once: ``.arrays`` (every array, by key), ``.meta`` (the
parsed ``meta`` entry) and the helpers that read them. The key layout is the one the generators in
``tests/golden/`` write: ``problem/<problem>/{init,grad0}/<param>``, ``problem/<problem>/loss0`` and
``traj/<case>/<problem>/<param>`` (``steps + 1`` rows).

Nothing here imports torch.
"""
import importlib.util
import json
import pathlib

import numpy as np
import pytest

from reference import optim, problems

GOLDEN_DIR = pathlib.Path(__file__).with_name("golden")


def trajectory(opt, params, oracle, steps):
    """``{key: (steps + 1, ...) array}`` of the params before and after every step."""
    state = opt.init(params)
    rows = {k: [v] for k, v in params.items()}
    for _ in range(steps):
        params, state = opt.step(params, state, oracle)
        for k, v in params.items():
            rows[k].append(v)
    return {k: np.stack(v) for k, v in rows.items()}


def run(opt, params, oracle, steps, state=None):
    """``steps`` steps from ``params`` (and ``state``, else a fresh one): ``(params, state)``."""
    state = opt.init(params) if state is None else state
    for _ in range(steps):
        params, state = opt.step(params, state, oracle)
    return params, state


def assert_trees_equal(a, b):
    assert set(a) == set(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def load_generator(script):
    """The generator ``tests/golden/<script>.py`` as a module (it imports torch and the peers)."""
    spec = importlib.util.spec_from_file_location(script, GOLDEN_DIR / f"{script}.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


class Golden:
    """One golden file and the helpers that read it."""

    def __init__(self, filename):
        with np.load(GOLDEN_DIR / filename, allow_pickle=False) as z:
            self.arrays = {k: z[k] for k in z.files}
        self.meta = json.loads(str(self.arrays["meta"]))

    def problem(self, key):
        """``(problem, seed)`` of the golden problem ``key``."""
        spec = self.meta["problems"][key]
        return problems.create(spec["name"], **spec["settings"]), spec["seed"]

    def optimizer(self, case, **override):
        """The optimizer of golden ``case``, hyperparameters overridden by ``override``; an ``inner``
        hyperparameter ``[name, hparams]`` becomes that optimizer."""
        spec = self.meta["cases"][case]
        hp = {**spec["hparams"], **override}
        if "inner" in hp:
            inner_name, inner_hp = hp["inner"]
            hp["inner"] = optim.create(inner_name, **inner_hp)
        return optim.create(spec["optimizer"], **hp)

    def rows(self, case, problem):
        """``{param: (steps + 1, ...) array}`` of golden ``case`` on ``problem``."""
        prob, _ = self.problem(problem)
        return {k: self.arrays[f"traj/{case}/{problem}/{k}"] for k in prob.param_shapes}

    def max_abs_error(self, ours, prefix, golden=None):
        """The largest ``|ours[k] - golden[prefix/k]|`` (``golden``: this file's arrays by default)."""
        golden = self.arrays if golden is None else golden
        return max(float(np.max(np.abs(ours[k] - golden[f"{prefix}/{k}"]))) for k in ours)

    def trajectory_error(self, case, problem):
        """``max_abs_error`` of our trajectory of golden ``case`` on ``problem`` against the file's."""
        prob, seed = self.problem(problem)
        ours = trajectory(self.optimizer(case), prob.init(seed), prob.oracle(), self.meta["steps"])
        return self.max_abs_error(ours, f"traj/{case}/{problem}")

    def assert_init_unchanged(self, problem, params, err_msg=""):
        """The initial params of golden ``problem`` are the ones the file was made with."""
        for k in params:
            np.testing.assert_array_equal(params[k], self.arrays[f"problem/{problem}/init/{k}"], err_msg=err_msg)

    def assert_problem_unchanged(self, problem):
        """The init, first gradient and first loss of golden ``problem`` are the file's: if this fails,
        the problem (not the optimizer) changed and the golden file must be regenerated."""
        G = self.arrays
        prob, seed = self.problem(problem)
        params = prob.init(seed)
        loss, grads = prob.oracle()(params)
        hint = f"reference.problems {problem!r} changed since the golden file was made; regenerate it"
        for k in params:
            np.testing.assert_array_equal(params[k], G[f"problem/{problem}/init/{k}"], err_msg=hint)
            np.testing.assert_allclose(grads[k], G[f"problem/{problem}/grad0/{k}"], rtol=1e-12, atol=1e-14,
                                       err_msg=hint)
        assert float(loss) == pytest.approx(float(G[f"problem/{problem}/loss0"]), rel=1e-12), hint

    def assert_matches_live(self, live, tol):
        """Every array but ``meta`` of a live ``compute()`` agrees with the file to ``tol``."""
        for key, value in live.items():
            if key != "meta":
                np.testing.assert_allclose(value, self.arrays[key], rtol=0, atol=tol, err_msg=key)
