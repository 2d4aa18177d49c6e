"""Hessian-vector product of an MLP: reference.curvature.hvp against PyTorch's double backward, in one run.

The network and loss are those of ``autograd_mlp.py`` (784-512-512-10, mean
softmax cross-entropy of a batch of random inputs with random labels), with
``--activation tanh`` by default so that every layer contributes curvature
(``relu`` is also accepted). One timed repetition is one product ``H v`` for a
fixed random direction ``v``:

* reference: ``reference.curvature.hvp(loss_fn, params, v)``, forward-over-
  reverse (the JVP of the gradient: one forward pass with dual numbers and one
  reverse sweep), on NumPy arrays, or on CuPy arrays where CuPy sees a GPU;
* torch: the usual double backward, ``g = grad(loss, params,
  create_graph=True)`` then ``grad(g . v, params)`` (reverse-over-reverse),
  on the CPU, and on CUDA where torch sees a GPU.

The script first checks that the two products agree (float32 tolerance),
warms up, and reports medians and the ratio reference / torch, with the same
thread matching as ``autograd_mlp.py``. Target: within 2x of torch (an HVP
costs about two gradients in either library, so the gradient's 1.3x target
doubled leaves room for the dual-number bookkeeping). This is a benchmark,
not a test: nothing here asserts a time.

    python benchmarks/hvp_mlp.py                      # batch 256, float32, CPU (and GPU if present)
    python benchmarks/hvp_mlp.py --dtype float64 --reps 30
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _timing import numpy_blas_threads, time_blocks  # noqa: E402
from autograd_mlp import SIZES  # noqa: E402
from reference import autograd as ag  # noqa: E402
from reference import curvature, nn  # noqa: E402

TARGET = 2.0


def make_problem(batch, dtype, activation, seed=0):
    rng = np.random.default_rng(seed)
    init, apply = nn.mlp(SIZES, activation=activation)
    params = init(rng, dtype=dtype)
    x = rng.standard_normal((batch, SIZES[0])).astype(dtype)
    y = rng.integers(0, SIZES[-1], size=batch)
    v = {k: rng.standard_normal(p.shape).astype(dtype) for k, p in params.items()}
    return apply, params, x, y, v


def reference_hvp(apply, x, y):
    def loss(params):
        return ag.cross_entropy(apply(params, x), y)

    return lambda params, v: curvature.hvp(loss, params, v)


def torch_hvp(params, x, y, activation, torch, device):
    """(closure computing H v by double backward, parameter names in the reference's order)."""
    dt = getattr(torch, str(params["0.weight"].dtype))
    keys = list(params)
    ps = [torch.tensor(params[k], dtype=dt, device=device, requires_grad=True) for k in keys]
    xt = torch.tensor(x, device=device)
    yt = torch.tensor(y, device=device)
    act = torch.tanh if activation == "tanh" else torch.relu
    n_layers = len(SIZES) - 1

    def loss_fn():
        h = xt
        for i in range(n_layers):
            h = h @ ps[2 * i].T + ps[2 * i + 1]
            if i < n_layers - 1:
                h = act(h)
        return torch.nn.functional.cross_entropy(h, yt)

    def hvp(vs):
        g = torch.autograd.grad(loss_fn(), ps, create_graph=True)
        dot = sum((gi * vi).sum() for gi, vi in zip(g, vs))
        out = torch.autograd.grad(dot, ps)
        if device != "cpu":
            torch.cuda.synchronize()
        return out

    assert keys == [f"{i}.{k}" for i in range(n_layers) for k in ("weight", "bias")], keys
    return hvp, keys


def compare(name_ref, name_torch, f_ref, f_torch, reps, warmup, rounds, sync=None):
    def ref():
        out = f_ref()
        if sync:
            sync()
        return out

    times = time_blocks({"reference": ref, "torch": f_torch}, reps, warmup, rounds)
    m_ref, m_t = statistics.median(times["reference"]), statistics.median(times["torch"])
    print(f"{name_ref:34s}: median {m_ref * 1e3:8.2f} ms  (min {min(times['reference']) * 1e3:.2f})")
    print(f"{name_torch:34s}: median {m_t * 1e3:8.2f} ms  (min {min(times['torch']) * 1e3:.2f})")
    ratio = m_ref / m_t
    print(f"ratio reference/torch: {ratio:.2f}x ({'meets' if ratio <= TARGET else 'misses'} the {TARGET}x target); "
          f"ratio of the minimums {min(times['reference']) / min(times['torch']):.2f}x")
    return ratio


def check(h_ref, h_t, keys, tol, to_host=np.asarray):
    worst = max(ag.relative_error(to_host(h_ref[k]).astype(np.float64), h_t[i].detach().cpu().numpy().astype(np.float64))
                for i, k in enumerate(keys))
    if worst > tol:
        raise AssertionError(f"HVPs differ: largest relative error {worst:.2e} > {tol:g}")
    return worst


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--activation", choices=["tanh", "relu"], default="tanh")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)

    load = os.getloadavg()[0]
    blas_threads, blas_desc = numpy_blas_threads(args.threads)
    import torch
    if blas_threads is not None:
        torch.set_num_threads(blas_threads)
    print(f"numpy {np.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load:.2f} at start; "
          f"threads: NumPy BLAS {blas_threads} ({blas_desc}), torch {torch.get_num_threads()}")
    print(f"HVP of MLP {'-'.join(map(str, SIZES))} {args.activation}, batch {args.batch}, {args.dtype}, "
          "mean cross-entropy")
    tol = 1e-3 if args.dtype == "float32" else 1e-9

    apply, params, x, y, v = make_problem(args.batch, args.dtype, args.activation)
    hv = reference_hvp(apply, x, y)
    t_hvp, keys = torch_hvp(params, x, y, args.activation, torch, "cpu")
    vt = [torch.from_numpy(v[k]) for k in keys]
    worst = check(hv(params, v), t_hvp(vt), keys, tol)
    print(f"check (CPU): largest relative error of H v against torch {worst:.1e} (tolerance {tol:g})")
    compare("reference.curvature.hvp (NumPy)", "torch double backward (CPU)",
            lambda: hv(params, v), lambda: t_hvp(vt), args.reps, args.warmup, args.rounds)
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load:.2f} at start: the CPU timings are noisy; rerun on a quiet machine")

    try:
        import cupy as cp
        gpu = cp.cuda.runtime.getDeviceCount() > 0
    except Exception as exc:  # no CuPy, or no device
        print(f"GPU: skipped ({type(exc).__name__}: CuPy is not installed or sees no GPU)")
        return
    if not gpu:
        print("GPU: skipped (CuPy sees no GPU)")
        return
    from reference.backend import to_device
    gp, gx, gv = to_device(params, "gpu"), cp.asarray(x), to_device(v, "gpu")
    hv_gpu = reference_hvp(apply, gx, cp.asarray(y))
    sync = cp.cuda.Device().synchronize
    if torch.cuda.is_available():
        t_gpu, _ = torch_hvp(params, x, y, args.activation, torch, "cuda")
        vt_gpu = [torch.tensor(v[k], device="cuda") for k in keys]
        worst = check(hv_gpu(gp, gv), t_gpu(vt_gpu), keys, tol, to_host=cp.asnumpy)
        print(f"check (GPU): largest relative error {worst:.1e}")
        compare("reference.curvature.hvp (CuPy)", "torch double backward (CUDA)",
                lambda: hv_gpu(gp, gv), lambda: t_gpu(vt_gpu), args.reps, args.warmup, args.rounds, sync=sync)
    else:
        worst = check(hv_gpu(gp, gv), t_hvp(vt), keys, tol, to_host=cp.asnumpy)
        print(f"check (GPU vs torch CPU): largest relative error {worst:.1e}; torch has no CUDA here, so the GPU "
              "time is reported alone")
        import time
        for _ in range(args.warmup):
            hv_gpu(gp, gv)
        sync()
        ts = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            hv_gpu(gp, gv)
            sync()
            ts.append(time.perf_counter() - t0)
        print(f"reference.curvature.hvp (CuPy): median {statistics.median(ts) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
