"""Online-to-non-convex conversion (Cutkosky, Mehta, Orabona 2023): hand-computed steps, the
SGD-on-the-increment reduction, the projection, resume, and the claim in miniature."""
import importlib
import math

import numpy as np

from reference import io, optim

o2nc = importlib.import_module("reference.optim.online_to_nonconvex")


def linear_oracle(c):
    """F(x) = <c, x>: the gradient is c everywhere, the query point is recorded."""
    seen = []

    def oracle(p):
        seen.append({k: v.copy() for k, v in p.items()})
        return 0.0, {k: np.asarray(c[k], dtype=v.dtype).copy() for k, v in p.items()}
    oracle.seen = seen
    return oracle


def test_first_steps_by_hand():
    c = {"x": np.array([3.0, -4.0])}                       # ||c|| = 5
    opt = optim.create("online_to_nonconvex", lr=0.1, D=0.2, T=3, seed=7)
    p = {"x": np.array([1.0, 1.0])}
    oracle = linear_oracle(c)
    st = opt.init(p)
    # step 1: Delta_1 = 0, so x_1 = w_1 = x_0; Delta_2 = Pi(-0.1 c) = -0.2 c / 5 (||0.1 c|| = 0.5 > D)
    p1, st1 = opt.step(p, st, oracle)
    np.testing.assert_array_equal(oracle.seen[0]["x"], [1.0, 1.0])
    np.testing.assert_array_equal(p1["x"], [1.0, 1.0])
    np.testing.assert_allclose(st1["delta"]["x"], [-0.12, 0.16], rtol=0, atol=1e-15)
    assert st1["s"] == o2nc.uniform_point(7, 1)
    # step 2: w_2 = x_1 + s_2 Delta_2, x_2 = x_1 + Delta_2
    s2 = o2nc.uniform_point(7, 2)
    p2, st2 = opt.step(p1, st1, oracle)
    np.testing.assert_allclose(oracle.seen[1]["x"], [1.0 - 0.12 * s2, 1.0 + 0.16 * s2], rtol=0, atol=1e-15)
    np.testing.assert_allclose(p2["x"], [0.88, 1.16], rtol=0, atol=1e-15)
    # Delta_3 = Pi(Delta_2 - 0.1 c) = D (-c/5): still on the boundary in direction -c
    np.testing.assert_allclose(st2["delta"]["x"], [-0.12, 0.16], rtol=0, atol=1e-15)
    # step 3 ends the first period: wbar = mean of w_1..w_3, g_bar = c, learner restarts
    s3 = o2nc.uniform_point(7, 3)
    p3, st3 = opt.step(p2, st2, oracle)
    w3 = np.array([0.88 - 0.12 * s3, 1.16 + 0.16 * s3])
    np.testing.assert_allclose(p3["x"], [0.76, 1.32], rtol=0, atol=1e-15)
    np.testing.assert_allclose(o2nc.eval_params(st3)["x"], (oracle.seen[0]["x"] + oracle.seen[1]["x"] + w3) / 3,
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(st3["g_bar"]["x"], c["x"], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(st3["delta"]["x"], [0.0, 0.0])
    assert 0.0 <= s2 <= 1.0 and s2 != s3


def test_s_one_no_projection_is_sgd_on_the_increment(monkeypatch):
    """With s_n = 1, D = inf and no restart: w_n = x_n and Delta_{n+1} = Delta_n - lr grad F(x_n)."""
    monkeypatch.setattr(o2nc, "uniform_point", lambda seed, n: 1.0)
    rng = np.random.default_rng(0)
    H = rng.standard_normal((4, 4)); H = H @ H.T / 4

    def oracle(p):
        return 0.0, {"x": H @ p["x"] + np.abs(p["x"])}
    opt = optim.create("online_to_nonconvex", lr=0.05, D=math.inf, T=5, reset=False)
    x = rng.standard_normal(4)
    p, st = {"x": x.copy()}, opt.init({"x": x})
    delta, xr = np.zeros(4), x.copy()
    for _ in range(20):
        g = oracle({"x": xr + delta})[1]["x"]              # gradient at w_n = x_{n-1} + Delta_n = x_n
        xr = xr + delta
        delta = delta - 0.05 * g
        p, st = opt.step(p, st, oracle)
        np.testing.assert_allclose(p["x"], xr, rtol=0, atol=1e-12)
        np.testing.assert_allclose(st["delta"]["x"], delta, rtol=0, atol=1e-12)


def test_projection_keeps_the_increment_in_the_ball():
    rng = np.random.default_rng(1)

    def oracle(p):
        return 0.0, {k: 10.0 * rng.standard_normal(v.shape) for k, v in p.items()}
    D = 0.03
    opt = optim.create("online_to_nonconvex", lr=1.0, D=D, T=7)
    p = {"a": np.zeros((3, 2)), "b": np.zeros(4)}
    st = opt.init(p)
    norms = []
    for _ in range(30):
        prev = p
        p, st = opt.step(p, st, oracle)
        step = math.sqrt(sum(float(np.sum((p[k] - prev[k]) ** 2)) for k in p))
        norms.append(step)
        assert step <= D * (1 + 1e-12)
    assert max(norms) > 0.99 * D                           # the constraint is active


def test_resume_is_bit_identical(tmp_path):
    def oracle(p):
        return 0.0, {"x": np.sign(p["x"]) + 0.1 * p["x"]}
    opt = optim.create("online_to_nonconvex", lr=0.1, D=0.05, T=4, seed=3)
    p, st = {"x": np.linspace(-1, 1, 5)}, None
    st = opt.init(p)
    full_p, full_st = p, st
    for _ in range(11):
        full_p, full_st = opt.step(full_p, full_st, oracle)
    for _ in range(6):
        p, st = opt.step(p, st, oracle)
    io.save(tmp_path / "c.npz", {"p": p, "s": st})
    back = io.load(tmp_path / "c.npz")
    p, st = back["p"], back["s"]
    for _ in range(5):
        p, st = opt.step(p, st, oracle)
    np.testing.assert_array_equal(p["x"], full_p["x"])
    np.testing.assert_array_equal(st["w_bar"]["x"], full_st["w_bar"]["x"])


# ---- the claim in miniature ----------------------------------------------------------
# F(x) = sum_i |x_i| + 0.1 sin(3 x_i): non-smooth (kinks at 0), non-convex; noisy gradients
# (sigma = 1). The (delta, eps) measure is the norm of the average TRUE gradient over the last
# period's T query points, which all lie within delta = T * D of their mean.

def _true_grad(x):
    return np.sign(x) + 0.3 * np.cos(3 * x)


def _noisy_oracle(seed, record):
    rng = np.random.default_rng(seed)

    def oracle(p):
        record.append(p["x"].copy())
        return 0.0, {"x": _true_grad(p["x"]) + rng.standard_normal(p["x"].shape)}
    return oracle


def test_claim_drives_the_goldstein_measure_down_comparably_to_sgd():
    d, N, T, D = 10, 3000, 20, 0.01
    G = math.sqrt(d) * 1.5
    x0 = {"x": np.full(d, 2.0)}
    start = np.linalg.norm(_true_grad(x0["x"]))            # about 4.07
    o2nc_meas, sgd_meas = [], []
    for seed in range(3):
        W = []
        opt = optim.create("online_to_nonconvex", lr=D / (G * math.sqrt(T)), D=D, T=T, seed=seed)
        p, st = x0, opt.init(x0)
        oracle = _noisy_oracle(seed, W)
        for _ in range(N):
            p, st = opt.step(p, st, oracle)
        last = np.array(W[-T:])
        assert np.max(np.linalg.norm(last - last.mean(0), axis=1)) <= T * D   # inside the delta-ball
        np.testing.assert_allclose(o2nc.eval_params(st)["x"], last.mean(0), rtol=0, atol=1e-12)
        o2nc_meas.append(np.linalg.norm(np.mean([_true_grad(w) for w in last], 0)))
        best = math.inf                                    # SGD at its best lr of a small grid
        for lr in (0.003, 0.001, 0.0003):
            X = []
            sgd = optim.create("sgd", lr=lr)
            q, s = x0, sgd.init(x0)
            oracle = _noisy_oracle(seed, X)
            for _ in range(N):
                q, s = sgd.step(q, s, oracle)
            best = min(best, np.linalg.norm(np.mean([_true_grad(w) for w in X[-T:]], 0)))
        sgd_meas.append(best)
    o2nc_meas, sgd_meas = np.array(o2nc_meas), np.array(sgd_meas)
    # measured: O2NC 0.64 / 0.91 / 1.40 from 4.07; best-tuned SGD 0.39 / 0.50 / 0.77
    assert np.all(o2nc_meas < 0.5 * start), o2nc_meas
    assert o2nc_meas.mean() < 2.5 * sgd_meas.mean(), (o2nc_meas, sgd_meas)
