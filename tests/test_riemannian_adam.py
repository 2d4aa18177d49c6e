"""Riemannian Adam / RAMSGrad (Bécigneul & Ganea, ICLR 2019): geoopt goldens, Euclidean = Adam,
hand-computed steps, staying on the sphere, and the leading-eigenvector claim in miniature."""
import os

import numpy as np
import pytest

from reference import optim

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "riemannian_adam.npz")


def eig_oracle(A, target=None):
    """f(U, b) = -sum_i u_i^T A u_i + 0.5 |b - 1|^2 (b optional)."""
    def oracle(p):
        U = p["U"]
        grads = {"U": -2.0 * U @ A}
        loss = -np.einsum("ij,jk,ik->", U, A, U)
        if "b" in p:
            grads["b"] = p["b"] - 1.0
            loss += 0.5 * np.sum((p["b"] - 1.0) ** 2)
        return np.asarray(loss), grads
    return oracle


def trajectory(opt, params, oracle, steps):
    state = opt.init(params)
    out = []
    for _ in range(steps):
        params, state = opt.step(params, state, oracle)
        out.append(params)
    return out


@pytest.mark.parametrize("amsgrad", [False, True])
def test_matches_geoopt_riemannian_adam_on_product_of_spheres(amsgrad):
    g = np.load(GOLDEN)
    tag = "amsgrad" if amsgrad else "adam"
    opt = optim.create("riemannian_adam", lr=0.05, beta2=0.99, amsgrad=amsgrad, manifolds={"U": "sphere"},
                       retraction="projection")
    traj = trajectory(opt, {"U": g["U0"], "b": g["b0"]}, eig_oracle(g["A"]), len(g[f"{tag}_U"]))
    err = max(max(np.max(np.abs(p["U"] - U)), np.max(np.abs(p["b"] - b)))
              for p, U, b in zip(traj, g[f"{tag}_U"], g[f"{tag}_b"]))
    assert err < 1e-10, err


@pytest.mark.parametrize("amsgrad", [False, True])
def test_euclidean_parameters_are_adam_bit_for_bit(amsgrad):
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4, 4)); A = A @ A.T
    params = {"U": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    ref = optim.create("amsgrad", variant="torch", lr=0.01) if amsgrad else optim.create("adam", lr=0.01)
    ours = optim.create("riemannian_adam", lr=0.01, amsgrad=amsgrad)  # no manifolds: all Euclidean
    for p, q in zip(trajectory(ours, params, eig_oracle(A), 20), trajectory(ref, params, eig_oracle(A), 20)):
        for k in p:
            assert np.array_equal(p[k], q[k]), k


def test_first_two_steps_by_hand_exp_map_and_parallel_transport():
    x = np.array([1.0, 0.0, 0.0])
    lr, b1, b2 = 0.1, 0.9, 0.999
    grads = [np.array([3.0, 0.0, -4.0]), np.array([0.0, 2.0, 0.0])]
    calls = iter(grads)
    opt = optim.create("riemannian_adam", lr=lr, beta1=b1, beta2=b2, eps=0.0, manifolds={"u": "sphere"})
    state = opt.init({"u": x})
    p1, state = opt.step({"u": x}, state, lambda p: (np.asarray(0.0), {"u": next(calls)}))
    # step 1: rgrad = (0, 0, -4); m_hat / sqrt(v_hat) = rgrad / |rgrad| = (0, 0, -1); u = (0, 0, 0.1)
    exp1 = np.array([np.cos(0.1), 0.0, np.sin(0.1)])
    np.testing.assert_allclose(p1["u"], exp1, atol=1e-15)
    # parallel transport of m = (0, 0, -0.4) along the great circle in the x-z plane: rotate by 0.1
    np.testing.assert_allclose(state["m"]["u"], -0.4 * np.array([-np.sin(0.1), 0.0, np.cos(0.1)]), atol=1e-15)
    np.testing.assert_allclose(state["v"]["u"], [0.001 * 16.0], rtol=1e-15)
    # step 2: gradient (0, 2, 0) is tangent at p1 and orthogonal to the transported m
    p2, state = opt.step(p1, state, lambda p: (np.asarray(0.0), {"u": next(calls)}))
    m = b1 * (-0.4 * np.array([-np.sin(0.1), 0.0, np.cos(0.1)])) + 0.1 * np.array([0.0, 2.0, 0.0])
    v = b2 * 0.016 + 0.001 * 4.0
    u = -lr * (m / (1 - b1 ** 2)) / np.sqrt(v / (1 - b2 ** 2))
    n = np.linalg.norm(u)
    np.testing.assert_allclose(p2["u"], np.cos(n) * p1["u"] + np.sin(n) * u / n, atol=1e-14)


@pytest.mark.parametrize("retraction", ["exp", "projection"])
def test_iterates_stay_on_the_sphere_and_momentum_stays_tangent(retraction):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((6, 6)); A = A @ A.T
    U = rng.standard_normal((4, 6)); U /= np.linalg.norm(U, axis=1, keepdims=True)
    opt = optim.create("riemannian_adam", lr=0.05, manifolds={"U": "sphere"}, retraction=retraction,
                       amsgrad=True)
    params, state = {"U": U}, opt.init({"U": U})
    for _ in range(300):
        params, state = opt.step(params, state, eig_oracle(A))
        assert np.max(np.abs(np.linalg.norm(params["U"], axis=1) - 1.0)) < 1e-12
        assert np.max(np.abs(np.sum(params["U"] * state["m"]["U"], axis=1))) < 1e-12
    assert state["v"]["U"].shape == (4, 1)  # one scalar second moment per component


def _eig_run(method, seed, steps=300, lr=0.05, dim=20):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    lam = np.linspace(1.0, 10.0, dim)   # top gap 10 vs 9.53
    A = (Q * lam) @ Q.T
    u = rng.standard_normal((1, dim)); u /= np.linalg.norm(u)
    oracle = eig_oracle(A)
    if method == "riemannian":
        opt = optim.create("riemannian_adam", lr=lr, manifolds={"U": "sphere"})
    else:
        opt = optim.create("adam", lr=lr)
    params, state = {"U": u}, opt.init({"U": u})
    for _ in range(steps):
        params, state = opt.step(params, state, oracle)
        if method == "euclidean":   # Euclidean Adam, then renormalise onto the sphere
            params = {"U": params["U"] / np.linalg.norm(params["U"])}
    x = params["U"][0]
    return 1.0 - abs(x @ Q[:, -1]), np.linalg.norm(x)


def test_claim_leading_eigenvector_faster_than_euclidean_adam_with_renormalisation():
    for seed in range(4):
        err_r, norm_r = _eig_run("riemannian", seed)
        err_e, _ = _eig_run("euclidean", seed)
        assert abs(norm_r - 1.0) < 1e-12
        # measured: err_r 1e-12..1e-10, err_e 0.16..0.40 after 300 steps at the same lr
        assert err_r < 1e-8, (seed, err_r)
        assert err_e > 0.05, (seed, err_r, err_e)


def test_invalid_manifold_and_retraction_raise():
    with pytest.raises(ValueError, match="manifolds"):
        optim.create("riemannian_adam", manifolds={"U": "torus"})
    with pytest.raises(ValueError, match="retraction"):
        optim.create("riemannian_adam", retraction="cayley")


def test_float32_preserved_on_the_sphere():
    A = np.diag(np.arange(1.0, 5.0)).astype(np.float32)
    U = np.full((2, 4), 0.5, dtype=np.float32)
    opt = optim.create("riemannian_adam", lr=0.05, manifolds={"U": "sphere"}, amsgrad=True)
    params, state = {"U": U}, opt.init({"U": U})
    for _ in range(5):
        params, state = opt.step(params, state, lambda p: (np.asarray(0.0), {"U": -2.0 * p["U"] @ A}))
    assert params["U"].dtype == np.float32
    assert all(state[s]["U"].dtype == np.float32 for s in ("m", "v", "vhat"))
