"""reference.curvature against exact answers on small problems.

Exact methods (HVPs, dense Hessians, power/Lanczos, Gauss-Newton, empirical
Fisher) are checked against closed forms (a quadratic's ``A``, softmax
regression's hand-derived Hessian, ``J^T (diag p - p p^T) J``), finite
differences and ``numpy.linalg.eigh``; the estimators (Hutchinson, the true
Fisher) against their exact values within bounds set by their known
variances, with fixed seeds; the sharpness ascent against the exact
trust-region maximiser of a quadratic and ASAM's scale invariance.
"""
import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import scipy.special

from reference import autograd as ag
from reference import backend, curvature as cv, nn, problems, tree


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _flat(d, keys=None):
    return np.concatenate([np.asarray(d[k]).ravel() for k in (keys or list(d))])


def _random_like(params, seed):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()}


def _quadratic(eigenvalues, seed=0):
    p = problems.create("quadratic", eigenvalues=eigenvalues, noise=0.0, seed=seed)
    return p, p.oracle()


def _mlp(activation="tanh", hidden=(6,), n_train=48, seed=0):
    p = problems.create("blobs", hidden=hidden, activation=activation, n_train=n_train, n_test=8, seed=seed)
    params = p.init(seed)
    # nonzero biases, so that every parameter matters in the invariance tests
    rng = np.random.default_rng(100 + seed)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) if k.endswith("bias") else v for k, v in params.items()}
    return p, p.oracle(), params


def _dense(matvec, params):
    """The matrix of the linear map ``matvec`` (params dict -> params dict), column by column."""
    flat, spec = tree.flatten(params)
    cols = []
    for i in range(flat.size):
        e = np.zeros(flat.size)
        e[i] = 1.0
        out = matvec(tree.unflatten(e, spec))
        cols.append(_flat(out, [k for k, _ in spec]))
    return np.stack(cols, axis=1)


def _trust_region_max(A, g, rho):
    """Exact ``max_{||e|| <= rho} g^T e + 1/2 e^T A e`` for PSD ``A`` (the secular equation).

    The maximiser is ``e = (mu I - A)^{-1} g`` with ``mu > lambda_max`` and ``||e|| = rho``
    (assumes g has a component along the top eigenvector, the "easy case").
    """
    lam, Q = np.linalg.eigh(A)
    gq = Q.T @ g
    lmax = lam[-1]
    if np.linalg.norm(g) == 0:
        return 0.5 * rho ** 2 * lmax
    norm_e = lambda mu: np.sqrt(np.sum((gq / (mu - lam)) ** 2)) - rho  # noqa: E731
    hi = lmax + np.linalg.norm(g) / rho
    lo = lmax + 1e-14 * max(1.0, lmax)
    mu = scipy.optimize.brentq(norm_e, lo, hi, xtol=1e-15, rtol=1e-15, maxiter=500)
    e = Q @ (gq / (mu - lam))
    return float(g @ e + 0.5 * e @ A @ e)


# ---- Hessian-vector products and the dense Hessian ------------------------------------------

def test_hvp_of_a_quadratic_is_A_v():
    p, oracle = _quadratic([4.0, 2.0, 1.0, 0.25, 0.0], seed=3)
    w = p.init(1)
    v = _random_like(w, 2)
    np.testing.assert_allclose(cv.hvp(oracle, w, v)["w"], p.A @ v["w"], rtol=1e-13, atol=1e-13)


def test_hessian_of_softmax_regression_matches_its_hand_derived_hessian():
    p = problems.create("softmax_regression", n=40, d=3, n_classes=3, lam=0.05, seed=1)
    w = p.init(0)
    H = cv.hessian(p.oracle(), w)
    # the problem's own Newton Hessian, derived by hand in float64, in the layout [W b] row by row
    theta = np.hstack([w["W"], w["b"][:, None]]).ravel()
    H_ref = p._fgh(theta)[2]
    K, d1 = p.K, p.d + 1
    # our layout: W (K*d entries, row-major) then b (K entries)
    perm = [k * d1 + j for k in range(K) for j in range(p.d)] + [k * d1 + p.d for k in range(K)]
    assert _rel(H, H_ref[np.ix_(perm, perm)]) < 1e-12
    np.testing.assert_array_equal(H, H.T)
    v = _random_like(w, 5)
    assert _rel(_flat(cv.hvp(p.oracle(), w, v)), H @ _flat(v)) < 1e-12


def test_hvp_of_an_mlp_matches_finite_differences_for_oracle_and_function():
    p, oracle, w = _mlp()
    v = _random_like(w, 7)
    h = 1e-5
    g_plus = oracle(tree.axpy(h, v, w))[1]
    g_minus = oracle(tree.axpy(-h, v, w))[1]
    fd = {k: (g_plus[k] - g_minus[k]) / (2 * h) for k in w}
    hv = cv.hvp(oracle, w, v)
    assert _rel(_flat(hv), _flat(fd)) < 1e-7
    # the same from a plain scalar function f(params) written with ag ops
    batch = p._batch_like(None, w)
    f = lambda q: ag.mean(nn.cross_entropy_losses(p.apply(q, batch["x"]), batch["y"]))  # noqa: E731
    hv_f = cv.hvp(f, w, v)
    assert _rel(_flat(hv_f), _flat(hv)) < 1e-13
    # and the dense Hessian times v
    H = cv.hessian(f, w)
    assert _rel(H @ _flat(v), _flat(hv)) < 1e-12


def test_dense_hessian_and_spectrum_of_a_quadratic_with_a_chosen_spectrum():
    eig = [7.0, 3.0, 3.0, 1.0, 0.5, 0.01]
    p, oracle = _quadratic(eig, seed=2)
    w = p.init(0)
    H = cv.hessian(oracle, w)
    assert _rel(H, p.A) < 1e-14
    vals = cv.spectrum(oracle, w)
    np.testing.assert_allclose(vals, scipy.linalg.eigvalsh(p.A), rtol=1e-12)
    np.testing.assert_allclose(vals, sorted(eig), rtol=1e-12, atol=1e-14)
    vals, V = cv.spectrum(oracle, w, vectors=True)
    np.testing.assert_allclose(p.A @ V, V * vals, atol=1e-12)


# ---- top eigenpairs -------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["power", "lanczos"])
@pytest.mark.parametrize("eig", [[10.0, 7.0, 5.0, 3.0, 2.0, 1.0, 0.5, 0.1],   # distinct
                                 [5.0, 5.0, 5.0, 1.0, 1.0, 0.5, 0.2]])          # repeated
def test_top_eigenpairs_of_a_quadratic_with_a_known_spectrum(method, eig):
    p, oracle = _quadratic(eig, seed=4)
    w = p.init(0)
    vals, vecs = cv.top_eigenvalues(oracle, w, k=3, method=method, seed=1)
    expected = sorted(eig, reverse=True)[:3]
    assert _rel(vals, expected) < 1e-6
    for lam, v in zip(vals, vecs):
        assert set(v) == {"w"}
        assert abs(np.linalg.norm(v["w"]) - 1) < 1e-10
        assert np.linalg.norm(p.A @ v["w"] - lam * v["w"]) < 1e-5 * lam
    V = np.stack([v["w"] for v in vecs])
    np.testing.assert_allclose(V @ V.T, np.eye(3), atol=1e-6)


@pytest.mark.parametrize("method", ["power", "lanczos"])
def test_top_eigenpairs_of_an_mlp_loss_match_eigh(method):
    p, oracle, w = _mlp()
    H = cv.hessian(oracle, w)
    exact = np.linalg.eigvalsh(H)[::-1][:3]
    vals, vecs = cv.top_eigenvalues(oracle, w, k=3, method=method, seed=0)
    assert _rel(vals, exact) < 1e-6
    for lam, v in zip(vals, vecs):
        x = _flat(v)
        assert np.linalg.norm(H @ x - lam * x) < 1e-5 * abs(lam)
    assert cv.max_eigenvalue(oracle, w, method=method) == pytest.approx(exact[0], rel=1e-6)


@pytest.mark.parametrize("method", ["power", "lanczos"])
def test_largest_algebraic_and_largest_magnitude_on_an_indefinite_function(method):
    # f(a, b) = 1/2 theta^T B theta over two params keys, B with its largest magnitude negative
    eig = np.array([-6.0, -1.0, 0.5, 2.0, 3.0, 4.5])
    Q = problems.convex.random_rotation(6, np.random.default_rng(0))
    B = (Q * eig) @ Q.T
    B = 0.5 * (B + B.T)

    def f(q):
        theta = ag.concatenate([ag.reshape(q["a"], (4,)), q["b"]])
        return 0.5 * ag.sum(theta * (theta @ B))

    w = {"a": np.ones((2, 2)), "b": np.zeros(2)}
    la, vecs = cv.top_eigenvalues(f, w, k=3, method=method, seed=3)
    np.testing.assert_allclose(la, [4.5, 3.0, 2.0], rtol=1e-6)
    assert set(vecs[0]) == {"a", "b"} and vecs[0]["a"].shape == (2, 2)
    lm, _ = cv.top_eigenvalues(f, w, k=3, method=method, seed=3, which="LM")
    np.testing.assert_allclose(lm, [-6.0, 4.5, 3.0], rtol=1e-6)


def test_lanczos_over_the_whole_space_gives_the_whole_spectrum():
    # n steps with full reorthogonalisation: the Ritz values are every eigenvalue (without
    # reorthogonalisation, copies of the converged ones, "ghosts", crowd out the others)
    p, oracle, w = _mlp()
    exact = np.linalg.eigvalsh(cv.hessian(oracle, w))[::-1]
    n = exact.size
    vals, vecs = cv.top_eigenvalues(oracle, w, k=n, method="lanczos", iters=n, tol=0)
    np.testing.assert_allclose(vals, exact, atol=1e-10 * exact[0])
    V = np.stack([_flat(v) for v in vecs])
    np.testing.assert_allclose(V @ V.T, np.eye(n), atol=1e-8)


def test_eigensolvers_are_seeded_and_warn_when_not_converged():
    p, oracle, w = _mlp()
    a = cv.top_eigenvalues(oracle, w, k=2, method="lanczos", seed=5)
    b = cv.top_eigenvalues(oracle, w, k=2, method="lanczos", seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.warns(RuntimeWarning, match="did not reach"):
        cv.top_eigenvalues(oracle, w, k=1, method="power", iters=2)
    with pytest.warns(RuntimeWarning, match="did not reach"):
        cv.top_eigenvalues(oracle, w, k=2, method="lanczos", iters=3)


# ---- Hutchinson ------------------------------------------------------------------------------

@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
@pytest.mark.parametrize("problem", ["mlp", "quadratic"])
def test_hutchinson_trace_and_its_standard_error(problem, distribution):
    if problem == "mlp":
        p, oracle, w = _mlp()
    else:  # a strong diagonal: here the two distributions' variances differ fivefold
        p, oracle = _quadratic(np.linspace(1.0, 2.0, 10), seed=1)
        w = p.init(0)
    H = cv.hessian(oracle, w)
    n = 300
    est, se = cv.trace(oracle, w, n_samples=n, seed=0, distribution=distribution)
    off = H - np.diag(np.diag(H))
    var = {"rademacher": 2 * np.sum(off ** 2), "gaussian": 2 * np.sum(H ** 2)}
    assert abs(float(est) - np.trace(H)) < 3 * float(se)
    # the sample standard error estimates sd / sqrt(n): within 15% (its own sd is about 4% here)
    assert float(se) == pytest.approx(math.sqrt(var[distribution] / n), rel=0.15)
    if problem == "quadratic":
        assert var["gaussian"] > 4 * var["rademacher"]
    again = cv.trace(oracle, w, n_samples=n, seed=0, distribution=distribution)
    assert float(again[0]) == float(est) and float(again[1]) == float(se)


def test_hutchinson_diagonal_converges_at_its_variance_rate():
    p, oracle = _quadratic(np.linspace(0.1, 3.0, 12), seed=5)
    w = p.init(0)
    A = p.A
    expected_sq = np.sum(A ** 2) - np.sum(np.diag(A) ** 2)   # sum_i sum_{j != i} A_ij^2
    errs = []
    for n in (10, 1000):
        d = cv.diagonal(oracle, w, n_samples=n, seed=1)["w"]
        err_sq = np.sum((d - np.diag(A)) ** 2)
        assert err_sq < 3 * expected_sq / n
        errs.append(err_sq)
    assert errs[1] < errs[0] / 20
    # a diagonal Hessian is recovered exactly from a single Rademacher probe
    c = np.array([1.0, 2.0, 3.0])
    f = lambda q: 0.5 * ag.sum(c * q["x"] ** 2)  # noqa: E731
    np.testing.assert_allclose(cv.diagonal(f, {"x": np.ones(3)}, n_samples=1)["x"], c, rtol=1e-14)


# ---- Gauss-Newton and Fisher ---------------------------------------------------------------

def _squared(out, y):
    return 0.5 * ag.sum((out - y) ** 2) / out.shape[0]


def test_gauss_newton_equals_the_hessian_of_a_linear_model_with_squared_loss():
    init, apply = nn.mlp([3, 2])   # one linear layer
    w = init(0)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    G = _dense(lambda v: cv.gnvp(apply, _squared, w, x, y, v), w)
    H = cv.hessian(lambda q: _squared(apply(q, x), y), w)
    assert _rel(G, H) < 1e-12
    # per-example losses (their mean is the loss) give the same product
    per_example = lambda out, t: 0.5 * ag.sum((out - t) ** 2, axis=1)  # noqa: E731
    v = _random_like(w, 1)
    assert _rel(_flat(cv.gnvp(apply, per_example, w, x, y, v)), G @ _flat(v)) < 1e-12


def test_gauss_newton_of_an_mlp_is_psd_while_its_hessian_is_not():
    p, oracle, w = _mlp()
    x, y = p.data["x"], p.data["y"]
    G = _dense(lambda v: cv.gnvp(p.apply, nn.cross_entropy_losses, w, x, y, v), w)
    np.testing.assert_allclose(G, G.T, atol=1e-12)
    g_eig = np.linalg.eigvalsh(0.5 * (G + G.T))
    assert g_eig[0] > -1e-10 * g_eig[-1]
    h_eig = np.linalg.eigvalsh(cv.hessian(oracle, w))
    assert h_eig[0] < -0.1 * h_eig[-1]


def test_empirical_fisher_is_the_mean_of_per_sample_outer_products():
    p, oracle, w = _mlp()
    x, y = p.data["x"], p.data["y"]
    per = oracle.per_sample_grads(w)                       # one example at a time
    keys = list(w)
    Gs = np.concatenate([per[k].reshape(len(x), -1) for k in keys], axis=1)
    F = Gs.T @ Gs / len(x)
    for seed in (0, 1):
        v = _random_like(w, seed)
        fv = cv.fisher_vp(p.apply, nn.cross_entropy_losses, w, x, y, v, kind="empirical")
        assert _rel(_flat(fv, keys), F @ _flat(v, keys)) < 1e-12


def _softmax_regression_closed_form(W, b, x):
    """``1/N sum_i J_i^T (diag p_i - p_i p_i^T) J_i`` with params flattened as [W.ravel(), b]."""
    N, d = x.shape
    K = W.shape[0]
    logits = x @ W.T + b
    P = np.exp(logits - scipy.special.logsumexp(logits, axis=1, keepdims=True))
    F = np.zeros((K * d + K, K * d + K))
    for i in range(N):
        J = np.zeros((K, K * d + K))       # d logits_k / d (W, b)
        for k in range(K):
            J[k, k * d:(k + 1) * d] = x[i]
            J[k, K * d + k] = 1.0
        M = np.diag(P[i]) - np.outer(P[i], P[i])
        F += J.T @ M @ J
    return F / N


def test_true_fisher_of_softmax_regression_matches_its_closed_form():
    init, apply = nn.mlp([3, 3])
    w = init(1)
    w = {"0.weight": 2 * w["0.weight"], "0.bias": np.array([0.3, -0.2, 0.1])}
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 3))
    y = rng.integers(0, 3, size=30)
    F = _softmax_regression_closed_form(w["0.weight"], w["0.bias"], x)
    # the Gauss-Newton matrix of the mean cross-entropy is exactly this matrix
    G = _dense(lambda v: cv.gnvp(apply, nn.cross_entropy_losses, w, x, y, v), w)
    assert _rel(G, F) < 1e-12
    S = 4000
    true = _dense(lambda v: cv.fisher_vp(apply, nn.cross_entropy_losses, w, x, y, v, kind="true",
                                         rng=np.random.default_rng(3), n_samples=S), w)
    emp = _dense(lambda v: cv.fisher_vp(apply, nn.cross_entropy_losses, w, x, y, v), w)
    # Monte Carlo error of a mean of N*S outer products: about 1/sqrt(N S) = 0.3% relative; allow 2%
    assert _rel(true, F) < 0.02
    assert _rel(emp, F) > 0.2          # the empirical Fisher is a different matrix


# ---- sharpness ---------------------------------------------------------------------------------

def test_worst_case_at_a_quadratic_minimum_is_half_rho_squared_lambda_max():
    eig = [10.0, 5.0, 3.0, 2.0, 1.0, 0.5]
    p, oracle = _quadratic(eig, seed=6)
    w = p.optimum
    rho = 0.1
    for seed in (0, 1, 2):
        rise, e = cv.worst_case_loss(oracle, w, rho, steps=100, seed=seed)
        assert float(rise) == pytest.approx(0.5 * rho ** 2 * 10.0, rel=1e-6)
        top = p.Q[:, np.argmax(p.eigenvalues)]
        assert abs(e["w"] @ top) == pytest.approx(rho, rel=1e-6)   # rho times the top eigenvector
        assert np.linalg.norm(e["w"]) <= rho * (1 + 1e-12)


def test_worst_case_away_from_the_minimum_is_the_trust_region_maximiser():
    p, oracle = _quadratic([10.0, 5.0, 3.0, 2.0, 1.0, 0.5], seed=6)
    w = p.init(3)
    g = p.A @ (w["w"] - p.center)
    for rho in (0.05, 0.5):
        exact = _trust_region_max(p.A, g, rho)
        assert rho * np.linalg.norm(g) < exact <= rho * np.linalg.norm(g) + 0.5 * rho ** 2 * 10.0
        rise, e = cv.worst_case_loss(oracle, w, rho, steps=100, seed=0)
        assert float(rise) == pytest.approx(exact, rel=1e-6)
        # a plain oracle (no hvp needed here) and a scalar function give the same
        plain = lambda q: (oracle.loss(q), oracle(q)[1])  # noqa: E731
        assert float(cv.worst_case_loss(plain, w, rho, steps=100, seed=0)[0]) == pytest.approx(exact, rel=1e-6)


def test_linf_worst_case_of_a_quadratic_is_a_vertex_and_matches_enumeration():
    # a convex quadratic's maximum over a box is at a vertex; finding the best one is NP-hard in
    # general, so at a minimum the ascent is checked to end at a local maximum (a vertex s with
    # sign(A s) = s); away from it, where the gradient dominates, at the best of all 2^5 vertices
    p, oracle = _quadratic([4.0, 2.0, 1.0, 0.5, 0.25], seed=7)
    rho = 0.1
    vertices = [np.array(s) for s in itertools.product((-1.0, 1.0), repeat=5)]
    for start in (0, 1, 2):
        rise, e = cv.worst_case_loss(oracle, p.optimum, rho, steps=30, norm="linf", seed=start)
        np.testing.assert_allclose(np.abs(e["w"]), rho, rtol=1e-12)
        s = np.sign(e["w"])
        assert float(rise) == pytest.approx(0.5 * rho ** 2 * s @ p.A @ s, rel=1e-12)
        np.testing.assert_array_equal(np.sign(p.A @ s), s)
        assert float(rise) <= max(0.5 * rho ** 2 * v @ p.A @ v for v in vertices) * (1 + 1e-12)
    w = p.init(2)
    g = p.A @ (w["w"] - p.center)
    exact = max(rho * g @ v + 0.5 * rho ** 2 * v @ p.A @ v for v in vertices)
    for start in (0, 1, 2):
        rise, e = cv.worst_case_loss(oracle, w, rho, steps=30, norm="linf", seed=start)
        assert float(rise) == pytest.approx(exact, rel=1e-12)


def test_one_linf_step_of_two_rho_reaches_the_best_vertex_of_a_linear_loss():
    # lr is in units of rho along sign(g): from anywhere in the box, 2 rho lands on rho sign(g)
    g = np.array([0.5, -2.0, 1.0, -0.1])
    f = lambda q: ag.sum(q["w"] * g)  # noqa: E731
    rise, e = cv.worst_case_loss(f, {"w": np.zeros(4)}, 0.1, steps=1, lr=2.0, norm="linf")
    assert float(rise) == pytest.approx(0.1 * np.abs(g).sum(), rel=1e-14)
    np.testing.assert_allclose(e["w"], 0.1 * np.sign(g), rtol=1e-14)


def test_worst_case_reports_the_best_point_seen_never_a_decrease():
    # a concave loss: every perturbation lowers it, so the answer is e = 0 and no increase
    f = lambda q: -0.5 * ag.sum(q["w"] ** 2)  # noqa: E731
    for norm in ("l2", "linf"):
        rise, e = cv.worst_case_loss(f, {"w": np.zeros(3)}, 0.1, steps=5, norm=norm)
        assert float(rise) == 0.0
        np.testing.assert_array_equal(e["w"], 0.0)


def _rescale(params, c):
    """A ReLU network's function-preserving rescaling: layer 0 (weights and bias) times c, layer 1's weights / c."""
    out = dict(params)
    out["0.weight"], out["0.bias"] = c * params["0.weight"], c * params["0.bias"]
    out["1.weight"] = params["1.weight"] / c
    return out


def test_adaptive_sharpness_is_invariant_to_relu_rescaling_while_the_max_eigenvalue_is_not():
    p, oracle, w = _mlp(activation="relu", hidden=(8,))
    w2 = _rescale(w, 4.0)
    assert float(oracle.loss(w2)) == pytest.approx(float(oracle.loss(w)), rel=1e-13)
    a1 = cv.adaptive_sharpness(oracle, w, rho=0.05, eta=0.0, steps=10)
    a2 = cv.adaptive_sharpness(oracle, w2, rho=0.05, eta=0.0, steps=10)
    assert float(a1) > 0
    assert float(a2) == pytest.approx(float(a1), rel=1e-8)
    for norm in ("l2", "linf"):
        b1 = cv.worst_case_loss(oracle, w, 0.05, steps=10, norm=norm, adaptive=True, eta=0.0)[0]
        b2 = cv.worst_case_loss(oracle, w2, 0.05, steps=10, norm=norm, adaptive=True, eta=0.0)[0]
        assert float(b2) == pytest.approx(float(b1), rel=1e-8)
    l1 = float(cv.max_eigenvalue(oracle, w))
    l2 = float(cv.max_eigenvalue(oracle, w2))
    assert max(l1, l2) > 2 * min(l1, l2)
    s1 = float(cv.worst_case_loss(oracle, w, 0.05, steps=10)[0])
    s2 = float(cv.worst_case_loss(oracle, w2, 0.05, steps=10)[0])
    assert abs(s1 - s2) > 0.1 * max(s1, s2)


def test_m_sharpness_is_the_mean_of_exact_per_batch_maxima():
    p = problems.create("quadratic", eigenvalues=[4.0, 2.0, 1.0, 0.5], noise=1.0, n_samples=40, seed=8)
    w = p.optimum                       # the full-batch minimiser: per-batch gradients are not zero
    rho, m, seed = 0.2, 10, 3
    idx = np.random.default_rng(seed).permutation(40)
    exact = []
    for b in range(4):
        z = p.data["z"][idx[b * m:(b + 1) * m]]
        g = p.A @ (w["w"] - p.center - z.mean(axis=0))
        exact.append(_trust_region_max(p.A, g, rho))
    ms = cv.m_sharpness(p, w, rho, m=m, seed=seed, steps=100)
    assert float(ms) == pytest.approx(np.mean(exact), rel=1e-6)
    # the full batch (m = n) at its minimum: 1/2 rho^2 lambda_max, less than with m = 10
    full = cv.m_sharpness(p, w, rho, m=40, seed=seed, steps=100)
    assert float(full) == pytest.approx(0.5 * rho ** 2 * 4.0, rel=1e-6)
    assert float(ms) > 1.5 * float(full)
    # a list of per-batch oracles gives the same
    oracles = [p.oracle({"z": p.data["z"][idx[b * m:(b + 1) * m]]}) for b in range(4)]
    assert float(cv.m_sharpness(oracles, w, rho, seed=seed, steps=100)) == pytest.approx(float(ms), rel=1e-12)
    assert float(cv.m_sharpness(p, w, rho, m=m, n_batches=2, seed=seed, steps=100)) == pytest.approx(
        np.mean(exact[:2]), rel=1e-6)


# ---- dtypes, devices and bad inputs ---------------------------------------------------------------

def test_float32_in_float32_out():
    p, oracle = _quadratic([3.0, 2.0, 1.0], seed=0)
    w = p.init(0, dtype="float32")
    assert cv.hvp(oracle, w, w)["w"].dtype == np.float32
    assert cv.hessian(oracle, w).dtype == np.float32
    for method in ("power", "lanczos"):
        vals, vecs = cv.top_eigenvalues(oracle, w, k=2, method=method)
        assert vals.dtype == np.float32 and vecs[0]["w"].dtype == np.float32
        np.testing.assert_allclose(vals, [3.0, 2.0], rtol=1e-4)
    est, se = cv.trace(oracle, w, n_samples=4)
    assert est.dtype == np.float32 and se.dtype == np.float32
    assert cv.diagonal(oracle, w, n_samples=2)["w"].dtype == np.float32
    rise, e = cv.worst_case_loss(oracle, w, 0.1, steps=5)
    assert e["w"].dtype == np.float32


def _plain_oracle(params):
    return 0.5 * float(np.sum(params["w"] ** 2)), {"w": params["w"]}


@pytest.mark.parametrize("call", [
    lambda o, w: cv.hvp(o, w, w),
    lambda o, w: cv.hessian(o, w),
    lambda o, w: cv.spectrum(o, w),
    lambda o, w: cv.top_eigenvalues(o, w),
    lambda o, w: cv.top_eigenvalues(o, w, method="lanczos"),
    lambda o, w: cv.max_eigenvalue(o, w),
    lambda o, w: cv.trace(o, w, 3),
    lambda o, w: cv.diagonal(o, w, 3),
])
def test_a_plain_oracle_or_a_problem_where_hvp_is_needed_raise_type_error_naming_hvp(call):
    w = {"w": np.ones(3)}
    with pytest.raises(TypeError, match="hvp"):
        call(_plain_oracle, w)
    p, _ = _quadratic([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match=r"hvp.*problem\.oracle"):
        call(p, w)


def test_bad_arguments_raise_errors_naming_them():
    p, oracle = _quadratic([3.0, 2.0, 1.0])
    w = p.init(0)
    with pytest.raises(ValueError, match="k=4"):
        cv.top_eigenvalues(oracle, w, k=4)
    with pytest.raises(ValueError, match="k must be"):
        cv.top_eigenvalues(oracle, w, k=0)
    with pytest.raises(ValueError, match="method"):
        cv.top_eigenvalues(oracle, w, method="arnoldi")
    with pytest.raises(ValueError, match="which"):
        cv.top_eigenvalues(oracle, w, which="SA")
    with pytest.raises(ValueError, match="distribution"):
        cv.trace(oracle, w, distribution="uniform")
    with pytest.raises(ValueError, match="n_samples"):
        cv.diagonal(oracle, w, n_samples=0)
    with pytest.raises(TypeError, match="seed"):
        cv.trace(oracle, w, seed=1.5)
    with pytest.raises(KeyError, match="v"):
        cv.hvp(oracle, w, {"u": np.ones(3)})
    with pytest.raises(ValueError, match="max_dim"):
        cv.hessian(oracle, w, max_dim=2)
    for rho in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="rho"):
            cv.worst_case_loss(oracle, w, rho)
        with pytest.raises(ValueError, match="rho"):
            cv.adaptive_sharpness(oracle, w, rho)
    with pytest.raises(ValueError, match="norm"):
        cv.worst_case_loss(oracle, w, 0.1, norm="l1")
    with pytest.raises(ValueError, match="steps"):
        cv.worst_case_loss(oracle, w, 0.1, steps=0)
    with pytest.raises(ValueError, match="rho"):
        cv.m_sharpness(p, w, 0.0, m=2)
    noisy = problems.create("quadratic", eigenvalues=[1.0, 2.0], noise=1.0, n_samples=10)
    with pytest.raises(ValueError, match="m=11"):
        cv.m_sharpness(noisy, noisy.init(0), 0.1, m=11)
    init, apply = nn.mlp([2, 3])
    q = init(0)
    x, y = np.ones((4, 2)), np.zeros(4, dtype=int)
    with pytest.raises(ValueError, match="kind"):
        cv.fisher_vp(apply, nn.cross_entropy_losses, q, x, y, q, kind="exact")
    with pytest.raises(ValueError, match="rng"):
        cv.fisher_vp(apply, nn.cross_entropy_losses, q, x, y, q, kind="true")
    with pytest.raises(ValueError, match="one loss per example"):
        cv.fisher_vp(apply, lambda o, t: ag.cross_entropy(o, t), q, x, y, q)


@pytest.mark.gpu
@pytest.mark.skipif(not backend.gpu_available(), reason="CuPy sees no CUDA GPU")
def test_cupy_params_give_numpy_results():
    p, oracle, w = _mlp()
    gw = backend.to_device(w, "gpu")
    for method in ("power", "lanczos"):
        cpu = cv.top_eigenvalues(oracle, w, k=2, method=method)[0]
        gpu = cv.top_eigenvalues(oracle, gw, k=2, method=method)[0]
        np.testing.assert_allclose(backend.to_numpy(gpu), cpu, rtol=1e-8)
    np.testing.assert_allclose(backend.to_numpy(cv.trace(oracle, gw, 20)[0]), cv.trace(oracle, w, 20)[0], rtol=1e-10)
    cpu = cv.worst_case_loss(oracle, w, 0.05, steps=5, adaptive=True)[0]
    gpu = cv.worst_case_loss(oracle, gw, 0.05, steps=5, adaptive=True)[0]
    np.testing.assert_allclose(backend.to_numpy(gpu), cpu, rtol=1e-8)
    x, y = backend.to_device(p.data["x"], "gpu"), backend.to_device(p.data["y"], "gpu")
    fv = cv.fisher_vp(p.apply, nn.cross_entropy_losses, gw, x, y, gw, kind="true", rng=0, n_samples=3)
    ref = cv.fisher_vp(p.apply, nn.cross_entropy_losses, w, p.data["x"], p.data["y"], w, kind="true", rng=0,
                       n_samples=3)
    for k in w:
        np.testing.assert_allclose(backend.to_numpy(fv[k]), ref[k], rtol=1e-8, atol=1e-12)
