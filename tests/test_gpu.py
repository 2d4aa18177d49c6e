"""The same code on CuPy arrays gives NumPy's results (skipped where CuPy sees no GPU).

Tolerances: 1e-12 relative in float64, 1e-5 in float32 (reduction order differs
between cuBLAS/CUB and NumPy's BLAS, so bit equality is not expected).
"""
import numpy as np
import pytest

from reference import autograd as ag
from reference import backend, nn, problems

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not backend.gpu_available(), reason="CuPy sees no CUDA GPU")]

TOL = {np.float32: 1e-5, np.float64: 1e-12}


def _close(gpu, cpu, dtype):
    gpu = backend.to_numpy(gpu)
    np.testing.assert_allclose(gpu, cpu, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_autograd_ops_match_numpy(dtype):
    from tests.test_autograd import CASES
    for name, fn, make in CASES:
        args = tuple(a.astype(dtype) for a in make())
        if name in ("dropout",):
            continue  # the mask comes from a NumPy generator on the host: compared separately
        gargs = backend.to_device(args, "gpu")
        f = lambda *a: ag.sum(fn(*a) ** 2)  # noqa: E731
        cpu_val, cpu_g = ag.value_and_grad(lambda a: f(*a))(args)
        gpu_val, gpu_g = ag.value_and_grad(lambda a: f(*a))(gargs)
        assert type(gpu_val).__module__.startswith("cupy"), name
        _close(gpu_val, cpu_val, dtype)
        for g, c in zip(gpu_g, cpu_g):
            assert g.dtype == dtype, name
            _close(g, c, dtype)
        v = tuple(np.ones_like(a) for a in args)
        _close(ag.jvp(fn, gargs, backend.to_device(v, "gpu"))[1], ag.jvp(fn, args, v)[1], dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mlp_and_cnn_match_numpy(dtype):
    for init, apply, x in [
        (*nn.mlp([4, 16, 3]), np.random.default_rng(0).standard_normal((8, 4))),
        (*nn.cnn((1, 8, 8), channels=(2, 3), n_classes=3), np.random.default_rng(0).standard_normal((4, 1, 8, 8))),
    ]:
        params, x = init(0, dtype=dtype), x.astype(dtype)
        y = np.arange(len(x)) % 3
        loss = lambda p, x, y: ag.cross_entropy(apply(p, x), y)  # noqa: E731
        cpu = ag.value_and_grad(loss)(params, x, y)
        gpu = ag.value_and_grad(loss)(backend.to_device(params, "gpu"), backend.to_device(x, "gpu"),
                                      backend.to_device(y, "gpu"))
        _close(gpu[0], cpu[0], dtype)
        for k in params:
            _close(gpu[1][k], cpu[1][k], dtype)


@pytest.mark.parametrize("name", problems.names())
def test_problem_oracles_match_numpy(name):
    p = problems.create(name)
    params = p.init(0)
    v = {k: np.ones(s) for k, s in p.param_shapes.items()}
    cpu, gpu_params = p.oracle(), backend.to_device(params, "gpu")
    loss, g = cpu(params)
    gloss, gg = p.oracle()(gpu_params)
    _close(gloss, loss, np.float64)
    for k in g:
        _close(gg[k], g[k], np.float64)
    hv = cpu.hvp(params, v)
    ghv = p.oracle().hvp(gpu_params, backend.to_device(v, "gpu"))
    for k in hv:
        _close(ghv[k], hv[k], np.float64)


# ---- every registered optimizer: the same steps on CuPy as on NumPy ---------------------------

#: settings an optimizer needs on the MLP beyond its example_hparams (its default curvature, the Hessian,
#: is indefinite on an MLP, which its positive-definiteness check rejects)
GPU_RUN_HPARAMS = {"thermodynamic_ngd": dict(curvature="empirical_fisher")}


def _optimizer_run(name, device, steps=5):
    """``steps`` full-batch steps of ``name`` (with its ``example_hparams()``) on a small MLP problem
    whose oracle has every capability (loss, HVP, per-sample gradients, outputs), from the same init,
    on ``device``; returns the params as NumPy arrays, or None when the optimizer needs an oracle
    capability this problem lacks (a prox, coordinate access, manifold params ...)."""
    from reference import optim
    cls = optim.get_class(name)
    hp = dict(cls.example_hparams()) if hasattr(cls, "example_hparams") else {}
    opt = optim.create(name, **hp, **GPU_RUN_HPARAMS.get(name, {}))
    p = problems.create("blobs", hidden=(8,), n_train=32)
    params = backend.to_device(p.init(0), device)
    oracle = p.oracle()
    try:
        state = opt.init(params)
        for _ in range(steps):
            params, state = opt.step(params, state, oracle)
    except TypeError:
        return None
    return backend.to_numpy(params)


def _optimizer_names():
    from reference import optim
    return optim.names()


@pytest.mark.parametrize("name", _optimizer_names())
def test_optimizers_match_numpy(name):
    """Float64, 5 steps: the CuPy trajectory equals NumPy's to 1e-10 (fused kernels, reductions in another
    order); randomness lives in the optimizer state and is drawn on the host, so it is the same on both."""
    cpu = _optimizer_run(name, "cpu")
    if cpu is None:
        pytest.skip(f"{name} needs an oracle capability the blobs MLP does not offer")
    gpu = _optimizer_run(name, "gpu")
    assert gpu is not None
    for k in cpu:
        np.testing.assert_allclose(gpu[k], cpu[k], rtol=1e-10, atol=1e-10, err_msg=f"{name}: {k}")
