"""Forward + backward of an MLP: reference.autograd against PyTorch (CPU), in one run.

The network is 784-512-512-10 with ReLU, the loss the mean softmax
cross-entropy of a batch of 256 random inputs with random labels. The
reference side is ``reference.nn.mlp`` + ``reference.autograd.value_and_grad``;
the PyTorch side is the same network (``torch.nn.Linear`` layers holding a
copy of the same weights), with ``loss.backward()``. One timed repetition is
one forward and one backward pass that leaves the whole gradient in memory.

Fairness: PyTorch is given as many intra-op threads as NumPy's BLAS uses
(read with threadpoolctl when it is installed; otherwise both are left at
their defaults and the script says so). The script first checks once that the
two gradients agree to float32 tolerance, then warms both up and reports the
median time of each over ``--reps`` repetitions and the ratio
reference / torch (target: at most 1.3). For context it also times the same
gradient written out by hand in NumPy (no autograd): the floor that any
NumPy-based engine can reach on this machine.

    python benchmarks/autograd_mlp.py                 # batch 256, float32
    python benchmarks/autograd_mlp.py --reps 100 --dtype float64
    python benchmarks/autograd_mlp.py --threads 1      # one thread each
    python benchmarks/autograd_mlp.py --profile --ops # where the reference's time goes

This is a benchmark, not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _timing import numpy_blas_threads, time_blocks  # noqa: E402  (shared by the benchmarks)
from reference import autograd as ag  # noqa: E402
from reference import nn  # noqa: E402

SIZES = [784, 512, 512, 10]
TARGET = 1.3


def make_problem(batch, dtype, seed=0):
    rng = np.random.default_rng(seed)
    init, apply = nn.mlp(SIZES, activation="relu")
    params = init(rng, dtype=dtype)
    x = rng.standard_normal((batch, SIZES[0])).astype(dtype)
    y = rng.integers(0, SIZES[-1], size=batch)
    return apply, params, x, y


def reference_step(apply):
    def loss(params, x, y):
        return ag.cross_entropy(apply(params, x), y)

    return ag.value_and_grad(loss)


def numpy_step(params, x, y):
    """The same loss and gradient written out by hand in NumPy: the floor for any NumPy autograd."""
    ws = [params[f"{i}.weight"] for i in range(len(SIZES) - 1)]
    bs = [params[f"{i}.bias"] for i in range(len(SIZES) - 1)]
    hs, masks = [x], []
    for i, (w, b) in enumerate(zip(ws, bs)):
        z = hs[-1] @ w.T + b
        if i < len(ws) - 1:
            masks.append(z > 0)
            z = np.maximum(z, 0)
        hs.append(z)
    logits = hs[-1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = -logp[np.arange(n), y].mean()
    g = np.exp(logp)
    g[np.arange(n), y] -= 1
    g /= n
    grads = {}
    for i in reversed(range(len(ws))):
        grads[f"{i}.weight"] = g.T @ hs[i]
        grads[f"{i}.bias"] = g.sum(axis=0)
        if i > 0:  # no gradient for the input
            g = (g @ ws[i]) * masks[i - 1]
    return loss, grads


def torch_model(params, torch):
    layers = []
    dtype = getattr(torch, str(params["0.weight"].dtype))
    n_layers = len(SIZES) - 1
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        lin = torch.nn.Linear(n_in, n_out, dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(params[f"{i}.weight"]))
            lin.bias.copy_(torch.from_numpy(params[f"{i}.bias"]))
        layers.append(lin)
        if i < n_layers - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    # Sequential names the Linear layers 0, 2, 4; map them to the reference's 0, 1, 2
    names = {f"{2 * i}.{k}": f"{i}.{k}" for i in range(n_layers) for k in ("weight", "bias")}
    return model, names


def torch_step(model, torch):
    def step(x, y):
        for p in model.parameters():
            p.grad = None
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss.detach()

    return step


def op_timings(batch, dtype, threads_note):
    """Time the NumPy calls the reference step is made of, to see where a gap comes from."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, SIZES[0])).astype(dtype)
    w = rng.standard_normal((SIZES[1], SIZES[0])).astype(dtype)
    wt = np.ascontiguousarray(w.T)
    h = rng.standard_normal((batch, SIZES[1])).astype(dtype)
    mask = h > 0
    cases = {
        "x @ W.T (transposed view)": lambda: x @ w.T,
        "x @ Wt (contiguous copy)": lambda: x @ wt,
        "g.T @ x (weight gradient)": lambda: h.T @ x,
        "where(h > 0, h, 0) (relu as ag.relu)": lambda: np.where(mask, h, h.dtype.type(0)),
        "maximum(h, 0)": lambda: np.maximum(h, 0),
        "h * mask": lambda: h * mask,
    }
    print(f"NumPy op timings ({threads_note}), {dtype}:")
    for name, fn in cases.items():
        fn()
        n = 50
        best = min(_loop(fn, n) for _ in range(3)) / n
        print(f"  {name:40s} {best * 1e6:9.1f} us")


def _loop(fn, n):
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5, help="untimed calls before each block")
    ap.add_argument("--rounds", type=int, default=5, help="alternating blocks per library")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--threads", type=int, default=None,
                    help="limit NumPy's BLAS and torch to this many threads (default: BLAS's own)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the reference step")
    ap.add_argument("--ops", action="store_true", help="time the NumPy ops the step is made of")
    args = ap.parse_args(argv)

    load_at_start = os.getloadavg()[0]  # before this script loads the CPUs itself
    blas_threads, blas_desc = numpy_blas_threads(args.threads)  # before torch is imported
    import torch

    print(f"numpy {np.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"load average {load_at_start:.2f} at start")
    if blas_threads is not None:
        torch.set_num_threads(blas_threads)
        print(f"NumPy BLAS: {blas_desc}; threads: NumPy BLAS {blas_threads}, torch {torch.get_num_threads()} "
              "(torch set to NumPy's BLAS thread count)")
    else:
        print(f"threads: NumPy's BLAS at its default ({blas_desc}), torch at its default "
              f"{torch.get_num_threads()}: the thread counts may differ")
    print(f"MLP {'-'.join(map(str, SIZES))} ReLU, batch {args.batch}, {args.dtype}, "
          f"mean cross-entropy, forward + backward")

    apply, params, x, y = make_problem(args.batch, args.dtype)
    vg = reference_step(apply)
    model, names = torch_model(params, torch)
    step = torch_step(model, torch)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    # ---- the two must compute the same thing ------------------------------
    loss_ref, g_ref = vg(params, x, y)
    loss_t = step(xt, yt)
    tol = 1e-4 if args.dtype == "float32" else 1e-10
    assert abs(float(loss_ref) - float(loss_t)) <= tol * max(1.0, abs(float(loss_t))), (float(loss_ref), float(loss_t))
    worst = 0.0
    for tname, p in model.named_parameters():
        key = names[tname]
        gt = p.grad.numpy()
        assert g_ref[key].dtype == gt.dtype == np.dtype(args.dtype), (key, g_ref[key].dtype, gt.dtype)
        err = ag.relative_error(g_ref[key].astype(np.float64), gt.astype(np.float64))
        worst = max(worst, err)
        if err > tol:
            raise AssertionError(f"gradient of {key} differs from torch: relative error {err:.2e} > {tol:g}")
    loss_np, g_np = numpy_step(params, x, y)
    worst_np = max(ag.relative_error(g_np[k].astype(np.float64), g_ref[k].astype(np.float64)) for k in g_ref)
    assert worst_np <= tol, f"hand-written NumPy gradient differs from the reference: {worst_np:.2e}"
    print(f"check: loss {float(loss_ref):.6f} (torch {float(loss_t):.6f}); "
          f"largest relative gradient error {worst:.1e} (tolerance {tol:g})")

    # ---- timings: warm up, then a block of repetitions for each -------------
    times = time_blocks({"reference": lambda: vg(params, x, y), "torch": lambda: step(xt, yt),
                         "numpy": lambda: numpy_step(params, x, y)},
                        args.reps, args.warmup, args.rounds)
    t_ref, t_torch, t_np = times["reference"], times["torch"], times["numpy"]
    m_ref, m_torch = statistics.median(t_ref), statistics.median(t_torch)
    ratio = m_ref / m_torch
    print(f"reference.autograd: median {m_ref * 1e3:8.2f} ms  (min {min(t_ref) * 1e3:.2f}, {len(t_ref)} reps)")
    print(f"torch             : median {m_torch * 1e3:8.2f} ms  (min {min(t_torch) * 1e3:.2f}, {len(t_torch)} reps)")
    m_np = statistics.median(t_np)
    print(f"hand-written NumPy: median {m_np * 1e3:8.2f} ms  (min {min(t_np) * 1e3:.2f}, {len(t_np)} reps)"
          f"  -> {m_np / m_torch:.2f}x torch: the floor for a NumPy engine")
    if load_at_start > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load_at_start:.2f} at start: other processes share the CPUs, "
              "so these timings are noisy; rerun on a quiet machine")
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"ratio reference/torch: {ratio:.2f}x  ({verdict} the {TARGET}x target); "
          f"ratio of the minimums {min(t_ref) / min(t_torch):.2f}x (less sensitive to other load)")

    if args.ops:
        op_timings(args.batch, args.dtype, f"{blas_threads} BLAS threads")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.reps):
            vg(params, x, y)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue())
    return ratio


if __name__ == "__main__":
    main()
