"""SMB (stochastic model building) and GAQAT (gradient-adaptive QAT for domain generalization).

SMB (``smb_model_building``), no peer library:
* the first step on a quadratic by hand, trial step rejected: Eq. 4 equals the paper's quasi-Newton
  closed form ``-alpha B_p^{-1} g_p`` (appendix), in 1-D the scalar ``-alpha g / (1/eta + 2 alpha h)``,
  and it lowers the loss far more than the rejected trial step;
* one model per parameter group: the effective step lengths differ between groups;
* every trial step accepted (small lr): SMB is SGD, bit for bit;
* the claim in miniature: on logistic regression and a small MLP, over a 100x range of ``lr`` SMB's
  final loss degrades far less than SGD's, which blows up at the top of the range (3 seeds).

GAQAT (``gaqat`` + problem ``gaqat_mlp``, no peer library, no official code found):
* ``freeze=False`` (or a threshold never reached) is SAM + LSQ QAT, bit for bit, at 3 and 4 bits;
* the disorder statistic and the freezing by hand on scripted gradient signs (both readings);
* bit-identical resume from a saved state with the scale statistics in it; float32 state;
* the claim in miniature, what holds at this scale: less oscillating scales at 4 bits (3 seeds),
  no loss of target accuracy; the paper's accuracy gain does not reproduce (see the test's docstring).
"""
import numpy as np
import pytest

from reference import io, optim, problems
from reference.optim.gaqat import disorder
from reference.optim.smb_model_building import model_step

# ---- SMB ------------------------------------------------------------------------------------


class _Quadratic:
    """``f(x) = 1/2 sum_k x_k^T diag(h_k) x_k``, two groups "a" (2,) and "b" (1,)."""

    H = {"a": np.array([1.0, 4.0]), "b": np.array([10.0])}

    def __call__(self, params):
        loss = sum(0.5 * float(np.sum(self.H[k] * params[k] ** 2)) for k in params)
        return np.asarray(loss), {k: self.H[k] * params[k] for k in params}


def _x0():
    return {"a": np.array([1.0, 1.0]), "b": np.array([1.0])}


def test_smb_first_step_by_hand_is_the_model_step_and_beats_the_rejected_trial():
    lr, eta, c = 0.5, 0.99, 0.1
    f = _Quadratic()
    x0 = _x0()
    f0, g = f(x0)                                   # f0 = 7.5, g = (1, 4), (10)
    assert float(f0) == 7.5
    trial = {k: x0[k] - lr * g[k] for k in x0}      # (0.5, -1), (-4)
    f_trial = float(f(trial)[0])                    # 0.5 (0.25 + 4 + 160) = 82.125
    assert f_trial == 82.125 and f_trial > 7.5 - c * lr * 117.0   # Armijo fails: the model step is taken
    opt = optim.create("smb_model_building", lr=lr, eta=eta, c=c)
    x1, state = opt.step(x0, opt.init(x0), f)
    assert state["model_steps"] == 1 and state["step"] == 1
    # group "b" is 1-D with curvature h = 10: y = -lr h g, sigma = g^2 / eta, B = 1/eta + 2 lr h
    s_b = -lr * 10.0 / (1.0 / eta + 2.0 * lr * 10.0)
    np.testing.assert_allclose(x1["b"], [1.0 + s_b], rtol=1e-14)
    # group "a": the appendix's closed form s = -lr B^{-1} g, B = (sigma I - g y^T - y g^T) / ||g||^2
    ga = g["a"]
    ya = f.H["a"] * (-lr * ga)                      # y = g(x_t) - g(x) = H s^t
    gg = ga @ ga
    sigma = np.sqrt(gg) * np.linalg.norm(ya) + gg / eta + ya @ ga
    B = (sigma * np.eye(2) - np.outer(ga, ya) - np.outer(ya, ga)) / gg
    s_a = -lr * np.linalg.solve(B, ga)
    np.testing.assert_allclose(x1["a"], x0["a"] + s_a, rtol=1e-13)
    # the step respects ||s_p|| <= eta ||s^t_p|| and lowers the loss far below the rejected trial point
    assert np.linalg.norm(s_a) <= eta * lr * np.linalg.norm(ga)
    f1 = float(f(x1)[0])
    assert f1 < f0 and f1 < 0.1 * f_trial, (f1, f_trial)


def test_smb_model_step_matches_the_papers_theta_formula():
    """The cancellation-free theta gives the paper's Eq. 4-5 (difference-of-squares theta) to 1e-12."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        g, y = rng.standard_normal(7), rng.standard_normal(7)
        s, eta = -0.3 * g, 0.9
        ss, yy, gg = s @ s, y @ y, g @ g
        delta = 0.5 * (np.sqrt(ss) * (np.sqrt(yy) + np.sqrt(gg) / eta) - y @ s)
        theta = (y @ s + 2 * delta) ** 2 - ss * yy
        cg = -ss / (2 * delta)
        cy = -ss / (2 * delta * theta) * (-(y @ s + 2 * delta) * (s @ g) + ss * (y @ g))
        cs = -ss / (2 * delta * theta) * (-(y @ s + 2 * delta) * (y @ g) + yy * (s @ g))
        np.testing.assert_allclose(model_step(g, y, s, eta), cg * g + cy * y + cs * s, rtol=1e-12, atol=1e-14)
    zero = np.zeros(3)
    assert np.array_equal(model_step(zero, np.ones(3), zero, 0.9), zero)     # a group with g = 0 stays put


def test_smb_steps_differ_across_parameter_groups():
    """One model per group: the effective step size ||s_p|| / ||g_p|| differs between the groups."""
    f = _Quadratic()
    x0 = _x0()
    _, g = f(x0)
    opt = optim.create("smb_model_building", lr=0.5)
    x1, _ = opt.step(x0, opt.init(x0), f)
    ratio = {k: np.linalg.norm(x1[k] - x0[k]) / np.linalg.norm(g[k]) for k in x0}
    assert ratio["a"] < 0.5 and ratio["b"] < 0.5                         # both shorter than the trial step
    assert abs(ratio["a"] - ratio["b"]) > 0.05, ratio                    # and not a common step size
    # a single model over both groups (one key) gives a different step
    one = {"ab": np.concatenate([x0["a"], x0["b"]])}
    H = np.concatenate([f.H["a"], f.H["b"]])
    joint = lambda p: (np.asarray(0.5 * float(np.sum(H * p["ab"] ** 2))), {"ab": H * p["ab"]})  # noqa: E731
    y1, _ = opt.step(one, opt.init(one), joint)
    assert not np.allclose(y1["ab"], np.concatenate([x1["a"], x1["b"]]))


def test_smb_model_step_keeps_float32():
    f = _Quadratic()
    x0 = {k: v.astype(np.float32) for k, v in _x0().items()}
    f32 = lambda p: (np.float32(f(p)[0]), {k: v.astype(np.float32) for k, v in f(p)[1].items()})  # noqa: E731
    opt = optim.create("smb_model_building", lr=0.5)
    x1, state = opt.step(x0, opt.init(x0), f32)
    assert state["model_steps"] == 1 and all(v.dtype == np.float32 for v in x1.values())
    x64, _ = opt.step(_x0(), opt.init(_x0()), f)
    for k in x1:
        np.testing.assert_allclose(x1[k], x64[k], rtol=1e-5)


def test_smb_is_sgd_when_every_trial_step_is_accepted():
    p = problems.create("logistic_regression")
    params0 = p.init(0)
    rng = np.random.default_rng(0)
    batches = [p.sample_batch(rng, 32) for _ in range(20)]
    out = []
    for name in ("smb_model_building", "sgd"):
        opt, params = optim.create(name, lr=0.05), params0
        state = opt.init(params)
        for b in batches:
            params, state = opt.step(params, state, p.oracle(b))
        out.append((params, state))
    assert out[0][1]["model_steps"] == 0
    for k in params0:
        assert np.array_equal(out[0][0][k], out[1][0][k])


def _final_loss(pname, name, lr, seed, steps, batch, **kw):
    p = problems.create(pname, **kw)
    params = p.init(seed)
    opt = optim.create(name, lr=lr)
    state, rng = opt.init(params), np.random.default_rng(seed)
    with np.errstate(all="ignore"):
        try:
            for _ in range(steps):
                params, state = opt.step(params, state, p.oracle(p.sample_batch(rng, batch)))
            loss = float(p.loss(params))
        except FloatingPointError:
            loss = np.inf
    return loss if np.isfinite(loss) else np.inf


@pytest.mark.parametrize("pname, kw, lrs, steps", [
    ("logistic_regression", {}, (0.3, 3.0, 30.0), 150),
    ("blobs", dict(hidden=(16,), noise=1.5), (0.1, 1.0, 10.0), 150),
])
def test_smb_claim_less_tuning_over_a_100x_range_of_lr(pname, kw, lrs, steps):
    """The paper's claim in miniature (its Table 1): over a 100x range of the step size SMB's loss
    degrades far less than SGD's, which blows up at the top of the range. Medians over 3 seeds."""
    best = problems.create(pname, **kw).optimal_value or 0.0
    med = {name: [np.median([_final_loss(pname, name, lr, s, steps, 32, **kw) for s in range(3)]) - best
                  for lr in lrs] for name in ("smb_model_building", "sgd")}
    smb, sgd = med["smb_model_building"], med["sgd"]
    # at the bottom of the range no trial step is rejected: SMB is SGD there
    assert smb[0] == sgd[0]
    # at the top SMB's excess loss is several times below SGD's (measured ratio ~ 3.5 on blobs,
    # ~ 10 on logistic regression). SMB does degrade too (blobs: ~ 1.9x its best loss at lr = 10,
    # SGD ~ 6.6x): the model step bounds the damage of a too-long trial step, it does not remove it.
    assert smb[-1] < sgd[-1] / 2.0, (smb, sgd)
    assert all(np.isfinite(smb)), smb


# ---- GAQAT ------------------------------------------------------------------------------------

def _batches(p, n, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return [p.sample_batch(rng, size) for _ in range(n)]


def _leaves(tree_, prefix=""):
    for k, v in tree_.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}/")
        else:
            yield prefix + k, v


@pytest.mark.parametrize("bits", [3, 4])
def test_gaqat_without_freezing_is_sam_plus_lsq_qat_bit_for_bit(bits):
    p = problems.create("gaqat_mlp", bits=bits)
    params0 = p.init(0)
    batches = _batches(p, 40)
    inner = dict(lr=0.05, momentum=0.9)
    runs = {"sam": optim.create("sam", inner=optim.create("sgd", **inner), rho=0.05),
            "off": optim.create("gaqat", inner=optim.create("sgd", **inner), rho=0.05, freeze=False),
            "never": optim.create("gaqat", inner=optim.create("sgd", **inner), rho=0.05, threshold=1.0),
            "on": optim.create("gaqat", inner=optim.create("sgd", **inner), rho=0.05)}
    out = {}
    for name, opt in runs.items():
        params, state = params0, opt.init(params0)
        for b in batches:
            params, state = opt.step(params, state, p.oracle(b))
        out[name] = (params, state)
    for name in ("off", "never"):
        for k in params0:
            assert np.array_equal(out[name][0][k], out["sam"][0][k]), (name, k)
        for k, v in _leaves(out["sam"][1]["inner"]):
            assert np.array_equal(dict(_leaves(out[name][1]["inner"]))[k], v), (name, k)
    # with freezing on, some scale was frozen at some point and the trajectory differs
    assert any(not np.array_equal(out["on"][0][k], out["sam"][0][k]) for k in params0)


class _ScriptedOracle:
    """Params {"l.weight": (1,), "l.scale": (1,)}; call 2t-1 (at w) returns g_task, call 2t (at w + e) g_SAM."""

    def __init__(self, task, sam):
        self.task, self.sam, self.calls = task, sam, 0

    def __call__(self, params):
        t, at_w = self.calls // 2, self.calls % 2 == 0
        self.calls += 1
        g = self.task[t] if at_w else self.sam[t]
        return np.asarray(0.0), {"l.weight": np.array([1.0]), "l.scale": np.array([g])}


def test_gaqat_disorder_statistic_and_freezing_by_hand():
    # task and smoothness gradients of the scale, step by step; g_SAM = g_task + g_smooth
    task = [1.0, 2.0, -1.0, 1.0, -2.0]
    smooth = [-0.5, 1.0, 3.0, -0.25, -1.0]
    sam = [a + b for a, b in zip(task, smooth)]
    conflicts = [1, 0, 1, 1, 0]                       # sign(task) != sign(smooth)
    # window 3: D_1 = 1/1, D_2 = 1/2, D_3 = 2/3, D_4 = (0+1+1)/3, D_5 = (1+1+0)/3; frozen where D > 0.5
    D = [1.0, 0.5, 2 / 3, 2 / 3, 2 / 3]
    frozen = [1, 0, 1, 1, 1]
    opt = optim.create("gaqat", inner=optim.create("sgd", lr=1.0), rho=0.1, window=3, threshold=0.5)
    params = {"l.weight": np.array([0.0]), "l.scale": np.array([1.0])}
    state, oracle = opt.init(params), _ScriptedOracle(task, sam)
    for t in range(5):
        new, state = opt.step(params, state, oracle)
        buf = state["conflicts"]["l.scale"]
        assert buf[t % 3] == conflicts[t]
        assert disorder(buf, t + 1, 3) == pytest.approx(D[t], abs=1e-15)
        assert state["frozen"]["l.scale"][0] == frozen[t]
        # the inner SGD (lr 1) saw g_SAM, with the scale's entry zeroed where frozen; weights always train
        assert new["l.scale"][0] == params["l.scale"][0] - (0.0 if frozen[t] else sam[t])
        assert new["l.weight"][0] == params["l.weight"][0] - 1.0
        params = new
    # the "flip" reading: a conflict where g_SAM changes sign between consecutive steps
    sam = [1.0, -2.0, 0.5, 3.0, -1.0]
    flips = [0, 1, 1, 0, 1]                           # none at step 1 (no previous gradient)
    frozen = [0, 1, 1, 1, 1]                          # window 2: D = 0, 1/2, 2/2, 1/2, 1/2 > 0.4
    opt = optim.create("gaqat", inner=optim.create("sgd", lr=1.0), disorder="flip", window=2, threshold=0.4)
    params = {"l.weight": np.array([0.0]), "l.scale": np.array([1.0])}
    state, oracle = opt.init(params), _ScriptedOracle(task, sam)
    for t in range(5):
        new, state = opt.step(params, state, oracle)
        assert state["conflicts"]["l.scale"][t % 2] == flips[t]
        assert state["frozen"]["l.scale"][0] == frozen[t]
        assert new["l.scale"][0] == params["l.scale"][0] - (0.0 if frozen[t] else sam[t])
        params = new


def test_gaqat_state_resumes_bit_identically_from_a_saved_file(tmp_path):
    p = problems.create("gaqat_mlp", bits=3)
    batches = _batches(p, 30)
    opt = optim.create("gaqat", inner=optim.create("sgd", lr=0.05, momentum=0.9), rho=0.05, window=4)
    params, state = p.init(0), opt.init(p.init(0))
    for b in batches[:15]:
        params, state = opt.step(params, state, p.oracle(b))
    io.save(tmp_path / "s.npz", {"params": params, "state": state})
    loaded = io.load(tmp_path / "s.npz", expect_keys=["params", "state"])
    a, sa, b_, sb = params, state, loaded["params"], loaded["state"]
    for b in batches[15:]:
        a, sa = opt.step(a, sa, p.oracle(b))
        b_, sb = opt.step(b_, sb, p.oracle(b))
    for k in a:
        assert np.array_equal(a[k], b_[k])
    assert p.init(0, dtype="float32")["0.scale"].dtype == np.float32
    s32 = opt.init(p.init(0, dtype="float32"))
    assert all(v.dtype == np.float32 for k, v in _leaves(s32) if hasattr(v, "dtype"))


def _qat_run(bits, freeze, seed, steps=300):
    """Train the 3-source-domain MLP with SAM + LSQ QAT (freeze=False) or GAQAT; target accuracy and
    the scales' back-and-forth path (total variation minus net displacement, summed over layers)."""
    p = problems.create("gaqat_mlp", bits=bits, seed=seed)
    params = p.init(seed)
    opt = optim.create("gaqat", inner=optim.create("sgd", lr=0.05, momentum=0.9), rho=0.05, freeze=freeze)
    state, rng = opt.init(params), np.random.default_rng(seed)
    path = {k: [float(params[k][0])] for k in p.scale_keys()}
    for _ in range(steps):
        params, state = opt.step(params, state, p.oracle(p.sample_batch(rng, 32)))
        for k in path:
            path[k].append(float(params[k][0]))
    back = sum(np.abs(np.diff(v)).sum() - abs(v[-1] - v[0]) for v in path.values())
    return p.evaluate(params)["test_accuracy"], back


def test_gaqat_claim_in_miniature_less_oscillating_scales_at_4_bits():
    """What reproduces at this scale, and what does not (3 seeds; measured over 6 seeds):

    * 4 bits: the scales oscillate less with GAQAT in every seed (back-and-forth path 0.109 -> 0.070
      on average over 6 seeds, -36%). At 3 bits the effect is weak (-7%, 4 of 6 seeds) and not asserted.
    * the target-domain accuracy does NOT improve here: the paper's +1 to +4.5 points on PACS /
      DomainNet do not reproduce on this synthetic task (mean difference within +-0.01 at 3 and 4 bits
      over 6-8 seeds, either sign). Asserted is only what holds: GAQAT costs no target accuracy.
    """
    sam = np.array([_qat_run(4, False, s) for s in range(3)])
    gaq = np.array([_qat_run(4, True, s) for s in range(3)])
    assert np.all(gaq[:, 1] < sam[:, 1]), (gaq[:, 1], sam[:, 1])
    assert gaq[:, 1].mean() < 0.8 * sam[:, 1].mean(), (gaq[:, 1], sam[:, 1])
    assert abs(gaq[:, 0].mean() - sam[:, 0].mean()) < 0.05, (gaq[:, 0], sam[:, 0])
