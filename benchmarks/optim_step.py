"""One Adam step on 4M float32 parameters: reference.optim against torch.optim.Adam and the memory roofline.

The parameters are a dict of three float32 matrices, 2048x1024 + 1024x1024 +
1024x1024 = 4,194,304 values (16 MiB per copy), with a constant gradient.
Measured in one run, on one machine:

* the reference: ``reference.optim.create("adam")``'s ``step`` with an oracle
  that returns the constant gradient, inside ``reference.optim.unchecked()``
  (so the per-step NaN/Inf check, a host sync on a GPU, is left out; its cost
  is printed separately). The step is pure: it returns new params and state;
* the bare fused kernel ``adam_kernel`` (``reference/optim/adam.py``) called
  once per array, without the step's bookkeeping;
* ``torch.optim.Adam(foreach=True)`` on the CPU, in place, at torch's default
  thread count and, for context, with one thread (NumPy's elementwise
  ufuncs, which the reference is made of, run on one thread whatever the
  BLAS thread count is);
* the machine's memory copy bandwidth: ``np.copyto`` of a large buffer
  (``--copy-mib``, default 1024 MiB, well beyond the last-level cache), on one
  thread and split over torch's thread count; plus a copy of the same
  footprint as the Adam step, for context (on machines with a large L3 cache
  the Adam step's 112 MiB may stay in it).

Byte count (the roofline): an Adam step reads w, g, m, v and writes w, m, v:
4 reads + 3 writes of 4 bytes = 28 bytes per parameter, 117.4 MB per step. A
copy of N bytes counts 2N (one read, one write; write-allocate traffic is not
counted on either side). "Fraction of roofline" = (28 B x params / copy
bandwidth) / measured time.

Every timed function is first checked: three reference steps and three torch
steps from the same start agree to float32 rounding. Then each is warmed up
and timed in alternating blocks; medians are reported. Target on the CPU: the
reference within 2.5x of torch's time (``--threads`` sets torch's thread
count; default: torch's own). ``--investigate`` (automatic when the target is
missed) times the NumPy ufunc calls the kernel is made of and a few ways of
running the same update faster, without changing ``reference/optim``.

GPU (only when CuPy imports and sees a device; skipped otherwise): the same
reference step on CuPy arrays (``adam_kernel`` is then a ``cupy.fuse``
kernel) against ``torch.optim.Adam(fused=True)`` on CUDA, and the fraction of
the device's copy bandwidth, timed with CUDA events.

    python benchmarks/optim_step.py
    python benchmarks/optim_step.py --reps 50 --investigate

This is a benchmark, not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _timing import numpy_blas_threads, time_blocks  # noqa: E402  (shared by the benchmarks)
from reference import optim  # noqa: E402
from reference.backend import xp_of  # noqa: E402
from reference.optim.adam import adam_kernel  # noqa: E402  (optim.adam is the factory, not the module)

SHAPES = {"0.weight": (2048, 1024), "1.weight": (1024, 1024), "2.weight": (1024, 1024)}
BYTES_PER_PARAM = 7 * 4          # reads w, g, m, v; writes w, m, v; float32
TARGET = 2.5
HP = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)


# ---- machine ------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ---- timing -------------------------------------------------------------------

def copy_bandwidth(nbytes, threads, reps=5):
    """Bytes moved per second (2 x nbytes per copy) by np.copyto, split over ``threads`` threads."""
    src = np.ones(nbytes, dtype=np.uint8)      # touched, so no page faults are timed
    dst = np.zeros(nbytes, dtype=np.uint8)
    parts = np.array_split(np.arange(nbytes), threads)
    bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts]

    if threads == 1:
        def copy():
            np.copyto(dst, src)
    else:
        pool = concurrent.futures.ThreadPoolExecutor(threads)   # np.copyto releases the GIL

        def copy():
            list(pool.map(lambda b: np.copyto(dst[b[0]:b[1]], src[b[0]:b[1]]), bounds))
    copy()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        copy()
        ts.append(time.perf_counter() - t0)
    if threads > 1:
        pool.shutdown()
    return 2 * nbytes / statistics.median(ts)


# ---- the problem --------------------------------------------------------------

def make_arrays(seed=0, xp=np):
    rng = np.random.default_rng(seed)
    params = {k: xp.asarray(rng.standard_normal(s).astype(np.float32)) for k, s in SHAPES.items()}
    grads = {k: xp.asarray(rng.standard_normal(s).astype(np.float32)) for k, s in SHAPES.items()}
    return params, grads


def reference_stepper(params, grads):
    """A closure doing one reference Adam step (pure: the new params/state replace the old)."""
    opt = optim.create("adam", **HP)
    box = {"params": params, "state": opt.init(params)}
    loss = np.float32(0.0)

    def oracle(p):
        return loss, grads

    def step(checked=False):
        if checked:
            box["params"], box["state"] = opt.step(box["params"], box["state"], oracle)
        else:
            with optim.unchecked():
                box["params"], box["state"] = opt.step(box["params"], box["state"], oracle)

    return step, box


def kernel_caller(params, grads):
    """The bare fused kernel, once per array, at step t = 10 (fixed bias corrections).

    Like the step (and a training loop), each call's outputs are the next
    call's inputs, and the previous arrays are freed together once all the new
    ones exist. This matters: dropping each output at once (or freeing array by
    array) lets malloc hand pages back to the OS, and every call then pays
    1000-4000 page faults (2-7 ms here) that the step itself does not.
    """
    xp = xp_of(params)
    m = {k: xp.full_like(p, 0.01) for k, p in params.items()}
    v = {k: xp.full_like(p, 0.01) for k, p in params.items()}
    b1, b2 = HP["beta1"], HP["beta2"]
    bc1, bc2 = 1 - b1 ** 10, 1 - b2 ** 10

    box = {"w": dict(params), "m": m, "v": v}

    def call():
        w, m, v = box["w"], box["m"], box["v"]
        new = {k: adam_kernel(w[k], grads[k], m[k], v[k], HP["lr"], b1, b2, HP["eps"], bc1, bc2) for k in w}
        box["w"], box["m"], box["v"] = ({k: out[i] for k, out in new.items()} for i in range(3))

    return call


def torch_stepper(torch, params, grads, device="cpu", **kw):
    tp = [torch.nn.Parameter(torch.as_tensor(np.asarray(_to_numpy(params[k])), device=device)) for k in SHAPES]
    for p, k in zip(tp, SHAPES):
        p.grad = torch.as_tensor(np.asarray(_to_numpy(grads[k])), device=device)
    opt = torch.optim.Adam(tp, lr=HP["lr"], betas=(HP["beta1"], HP["beta2"]), eps=HP["eps"], **kw)
    return opt.step, tp


def _to_numpy(a):
    return a.get() if hasattr(a, "get") else a


def check_agreement(torch, ref_step, ref_box, torch_step, torch_params, steps=3, device_sync=lambda: None):
    """Both sides take ``steps`` steps from the same start; their updates must agree to float32 rounding."""
    start = {k: _to_numpy(v).copy() for k, v in ref_box["params"].items()}
    for _ in range(steps):
        ref_step(checked=True)
        torch_step()
    device_sync()
    worst = 0.0
    for k, tp in zip(SHAPES, torch_params):
        d_ref = _to_numpy(ref_box["params"][k]).astype(np.float64) - start[k]
        d_torch = tp.detach().cpu().numpy().astype(np.float64) - start[k]
        worst = max(worst, float(np.abs(d_ref - d_torch).max()) / (steps * HP["lr"]))
    # float32 rounding of w (|w| ~ 4) is ~ 2e-7 per step, i.e. ~ 2e-4 of an lr = 1e-3 step
    if worst > 1e-3:
        raise AssertionError(f"reference and torch Adam updates differ by {worst:.2e} of a step")
    return worst


# ---- investigation: where the reference's time goes ---------------------------

def investigate(params, grads, n_params, bw, torch_ms):
    """Time the ufunc calls of adam_kernel and some ways of running the same update faster."""
    b1, b2, eps, lr = HP["beta1"], HP["beta2"], HP["eps"], HP["lr"]
    bc1, bc2 = 1 - b1 ** 10, 1 - b2 ** 10
    m = {k: np.full_like(p, 0.01) for k, p in params.items()}
    v = {k: np.full_like(p, 0.01) for k, p in params.items()}

    bufs = {k: np.empty_like(p) for k, p in params.items()}

    def per_array(fn):   # each call writes into a preallocated buffer: the cost of the pass itself
        return lambda: [fn(params[k], grads[k], m[k], v[k], bufs[k]) for k in params]

    # the kernel's expression, one NumPy call at a time; in the kernel each one allocates its result
    ops = {
        "beta1 * m": lambda w, g, m, v, o: np.multiply(m, b1, out=o),
        "(1 - beta1) * g": lambda w, g, m, v, o: np.multiply(g, 1.0 - b1, out=o),
        "a + b (m update)": lambda w, g, m, v, o: np.add(m, g, out=o),
        "beta2 * v": lambda w, g, m, v, o: np.multiply(v, b2, out=o),
        "(1 - beta2) * g": lambda w, g, m, v, o: np.multiply(g, 1.0 - b2, out=o),
        "a * g": lambda w, g, m, v, o: np.multiply(m, g, out=o),
        "a + b (v update)": lambda w, g, m, v, o: np.add(v, g, out=o),
        "m / bc1": lambda w, g, m, v, o: np.divide(m, bc1, out=o),
        "lr * a": lambda w, g, m, v, o: np.multiply(m, lr, out=o),
        "v / bc2": lambda w, g, m, v, o: np.divide(v, bc2, out=o),
        "a ** 0.5 (a sqrt)": lambda w, g, m, v, o: np.sqrt(v, out=o),
        "a + eps": lambda w, g, m, v, o: np.add(v, eps, out=o),
        "a / b": lambda w, g, m, v, o: np.divide(m, v, out=o),
        "w - a": lambda w, g, m, v, o: np.subtract(w, m, out=o),
    }
    times = time_blocks({name: per_array(fn) for name, fn in ops.items()}, reps=10, warmup=1, rounds=2, pause=0.0)
    print(f"\nThe kernel's {len(ops)} NumPy calls, each over all {n_params / 1e6:.1f}M values, written into a "
          "preallocated buffer (median ms):")
    total = 0.0
    for name in ops:
        ms = statistics.median(times[name]) * 1e3
        total += ms
        print(f"  {name:24s} {ms:7.2f} ms")
    print(f"  {'sum':24s} {total:7.2f} ms  (a one-pass fused update would be about one of the slowest lines)")

    # options that keep reference/optim unchanged, timed here only
    outs = {k: (np.empty_like(p), np.empty_like(p), np.empty_like(p)) for k, p in params.items()}

    def chunked_range(k, lo, hi, chunk):
        w, g, mk, vk = (a.reshape(-1) for a in (params[k], grads[k], m[k], v[k]))
        ow, om, ov = (a.reshape(-1) for a in outs[k])
        for s in range(lo, hi, chunk):
            sl = slice(s, min(s + chunk, hi))
            ow[sl], om[sl], ov[sl] = adam_kernel(w[sl], g[sl], mk[sl], vk[sl], lr, b1, b2, eps, bc1, bc2)

    def chunked(chunk):
        return lambda: [chunked_range(k, 0, params[k].size, chunk) for k in params]

    threads = os.cpu_count() or 1
    pool = concurrent.futures.ThreadPoolExecutor(threads)

    def threaded(chunk):
        def run():
            jobs = []
            for k in params:
                n = params[k].size
                edges = np.linspace(0, n, threads + 1).astype(int)
                jobs += [pool.submit(chunked_range, k, int(a), int(b), chunk) for a, b in zip(edges[:-1], edges[1:])]
            for j in jobs:
                j.result()
        return run

    tmp = {k: np.empty_like(p) for k, p in params.items()}
    w2 = {k: p.copy() for k, p in params.items()}
    m2 = {k: x.copy() for k, x in m.items()}
    v2 = {k: x.copy() for k, x in v.items()}

    def inplace_update(w, g, m, v, t):
        np.multiply(m, b1, out=m)
        np.multiply(g, 1.0 - b1, out=t)
        np.add(m, t, out=m)
        np.multiply(v, b2, out=v)
        np.multiply(g, g, out=t)
        np.multiply(t, 1.0 - b2, out=t)
        np.add(v, t, out=v)
        np.multiply(v, 1.0 / bc2, out=t)
        np.sqrt(t, out=t)
        np.add(t, eps, out=t)
        np.divide(m, t, out=t)
        np.multiply(t, lr / bc1, out=t)
        np.subtract(w, t, out=w)

    def inplace_chunked(chunk):
        def run():
            for k in params:
                w, g, mk, vk, t = (a.reshape(-1) for a in (w2[k], grads[k], m2[k], v2[k], tmp[k]))
                for s in range(0, w.size, chunk):
                    sl = slice(s, s + chunk)
                    inplace_update(w[sl], g[sl], mk[sl], vk[sl], t[sl])
        return run

    options = {
        "adam_kernel, whole arrays (as the reference)": kernel_caller(params, grads),
        "adam_kernel on 64K-value slices (cache-resident temporaries)": chunked(1 << 16),
        f"adam_kernel on 64K-value slices, {threads} threads": threaded(1 << 16),
        "in-place ufuncs with out= (no temporaries), whole arrays": lambda: [
            inplace_update(w2[k], grads[k], m2[k], v2[k], tmp[k]) for k in params],
        "in-place ufuncs with out=, 16K-value slices": inplace_chunked(1 << 14),
    }
    times = time_blocks(options, reps=10, warmup=2, rounds=2, pause=0.1)
    pool.shutdown()
    roof_ms = BYTES_PER_PARAM * n_params / bw * 1e3
    print(f"\nWays to run the same update (median ms; ratio to torch's {torch_ms:.2f} ms; fraction of the "
          f"{roof_ms:.2f} ms roofline):")
    for name in options:
        ms = statistics.median(times[name]) * 1e3
        print(f"  {name:62s} {ms:7.2f} ms  {ms / torch_ms:5.2f}x  {roof_ms / ms:5.2f}")


# ---- GPU ---------------------------------------------------------------------

def gpu_section(torch, reps, warmup):
    """CuPy reference vs torch fused Adam on CUDA, and the device's copy bandwidth."""
    from reference import backend
    if not backend.cupy_available():
        print("\nGPU: skipped (CuPy is not installed)")
        return None
    if not backend.gpu_available():
        print("\nGPU: skipped (CuPy sees no CUDA device)")
        return None
    import cupy

    dev = cupy.cuda.Device()
    name = cupy.cuda.runtime.getDeviceProperties(dev.id)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    print(f"\nGPU: {name}, CuPy {cupy.__version__}")

    def gpu_median(fn):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        for _ in range(warmup):
            fn()
        ts = []
        for _ in range(reps):
            start.record()
            fn()
            end.record()
            end.synchronize()
            ts.append(cupy.cuda.get_elapsed_time(start, end) * 1e-3)
        return statistics.median(ts)

    nbytes = 1 << 30
    src = cupy.ones(nbytes, dtype=cupy.uint8)
    dst = cupy.zeros(nbytes, dtype=cupy.uint8)
    bw = 2 * nbytes / gpu_median(lambda: cupy.copyto(dst, src))
    del src, dst

    params, grads = make_arrays(xp=cupy)
    n_params = sum(int(p.size) for p in params.values())
    ref_step, _ = reference_stepper(params, grads)
    kernel = kernel_caller(params, grads)
    results = {"reference step": gpu_median(ref_step), "bare adam_kernel": gpu_median(kernel)}
    if torch.cuda.is_available():
        r_step, r_box = reference_stepper(*make_arrays(xp=cupy))             # agreement, from a fresh start
        t_step0, t_params0 = torch_stepper(torch, *make_arrays(), device="cuda", fused=True)
        worst = check_agreement(torch, r_step, r_box, t_step0, t_params0, device_sync=torch.cuda.synchronize)
        t_step, _ = torch_stepper(torch, *make_arrays(), device="cuda", fused=True)
        print(f"check: reference (CuPy) and torch fused Adam agree to {worst:.1e} of a step")
        results["torch Adam(fused=True)"] = gpu_median(t_step)
    else:
        print("torch sees no CUDA device: torch's fused Adam not timed")
    roof = BYTES_PER_PARAM * n_params / bw
    print(f"device copy bandwidth (cupy.copyto of 1 GiB, read + write): {bw / 1e9:.0f} GB/s; "
          f"Adam roofline {roof * 1e3:.3f} ms")
    for label, sec in results.items():
        print(f"  {label:24s} median {sec * 1e3:8.3f} ms   {roof / sec:5.2f} of roofline")
    if "torch Adam(fused=True)" in results:
        print(f"ratio reference/torch on the GPU: {results['reference step'] / results['torch Adam(fused=True)']:.2f}x")
    return results


# ---- main --------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls before each block")
    ap.add_argument("--rounds", type=int, default=3, help="alternating blocks per function")
    ap.add_argument("--threads", type=int, default=None, help="torch's thread count (default: torch's own)")
    ap.add_argument("--copy-mib", type=int, default=1024, help="size of the buffer for the copy bandwidth")
    ap.add_argument("--investigate", action="store_true", help="also time the kernel's ufuncs and faster variants")
    ap.add_argument("--no-gpu", action="store_true")
    args = ap.parse_args(argv)

    load_at_start = os.getloadavg()[0]
    blas_threads, blas_desc = numpy_blas_threads()      # before torch is imported
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    torch_threads = torch.get_num_threads()

    print(f"CPU: {cpu_model()}, {os.cpu_count()} CPUs; numpy {np.__version__}, torch {torch.__version__}; "
          f"load average {load_at_start:.2f} at start")
    print(f"threads: torch {torch_threads} (torch.get_num_threads); NumPy BLAS "
          f"{blas_threads if blas_threads is not None else '?'} ({blas_desc}); NumPy's elementwise ufuncs, "
          "which the reference uses, run on 1 thread")

    params, grads = make_arrays()
    n_params = sum(p.size for p in params.values())
    print(f"Adam, {n_params:,} float32 params in {len(SHAPES)} arrays "
          f"({', '.join('x'.join(map(str, s)) for s in SHAPES.values())}), constant gradient; "
          f"{BYTES_PER_PARAM} bytes moved per param = {BYTES_PER_PARAM * n_params / 1e6:.1f} MB per step")

    # ---- the two must compute the same thing --------------------------------
    r_step, r_box = reference_stepper(*make_arrays())
    t_step, t_params = torch_stepper(torch, *make_arrays(), foreach=True)
    worst = check_agreement(torch, r_step, r_box, t_step, t_params)
    print(f"check: 3 steps of reference and torch Adam agree to {worst:.1e} of a step (float32 rounding)")

    # ---- memory bandwidth ----------------------------------------------------
    big = args.copy_mib << 20
    footprint = BYTES_PER_PARAM * n_params // 2          # a copy moving as many bytes as the Adam step
    bw1 = copy_bandwidth(big, 1)
    bwt = copy_bandwidth(big, torch_threads) if torch_threads > 1 else bw1
    bw_small = copy_bandwidth(footprint, 1, reps=10)
    roof1 = BYTES_PER_PARAM * n_params / bw1
    rooft = BYTES_PER_PARAM * n_params / bwt
    roof_small = BYTES_PER_PARAM * n_params / bw_small
    print(f"copy bandwidth (np.copyto, read + write): {args.copy_mib} MiB buffer: {bw1 / 1e9:.1f} GB/s on 1 thread, "
          f"{bwt / 1e9:.1f} GB/s on {torch_threads} threads; {footprint / 2**20:.0f} MiB buffer (the Adam step's "
          f"footprint): {bw_small / 1e9:.1f} GB/s on 1 thread")
    print(f"Adam roofline: {roof1 * 1e3:.2f} ms at 1 thread, {rooft * 1e3:.2f} ms at {torch_threads} threads "
          f"({roof_small * 1e3:.2f} ms at the footprint-sized copy's bandwidth)")

    # ---- timings ---------------------------------------------------------------
    ref_step, _ = reference_stepper(*make_arrays())
    kernel = kernel_caller(*make_arrays())
    t_default, _ = torch_stepper(torch, *make_arrays(), foreach=True)
    t_one, _ = torch_stepper(torch, *make_arrays(), foreach=True)

    def torch_one_thread():
        torch.set_num_threads(1)
        try:
            t_one()
        finally:
            torch.set_num_threads(torch_threads)

    fns = {
        "reference step (unchecked)": ref_step,
        "reference step (finite check on)": lambda: ref_step(checked=True),
        "bare adam_kernel, per array": kernel,
        f"torch Adam(foreach=True), {torch_threads} threads": t_default,
        "torch Adam(foreach=True), 1 thread": torch_one_thread,
    }
    times = time_blocks(fns, args.reps, args.warmup, args.rounds, pause=0.2)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nmedian of {len(times['reference step (unchecked)'])} reps after warmup "
          f"(fraction of roofline: 1-thread copy bandwidth for NumPy and torch-1-thread, "
          f"{torch_threads}-thread for torch):")
    for name, sec in med.items():
        roof = rooft if name.startswith(f"torch Adam(foreach=True), {torch_threads} ") and torch_threads > 1 else roof1
        print(f"  {name:42s} {sec * 1e3:8.2f} ms  (min {min(times[name]) * 1e3:7.2f})  "
              f"{BYTES_PER_PARAM * n_params / sec / 1e9:5.1f} GB/s  {roof / sec:5.2f} of roofline")
    ref_ms = med["reference step (unchecked)"] * 1e3
    torch_ms = med[f"torch Adam(foreach=True), {torch_threads} threads"] * 1e3
    ratio = ref_ms / torch_ms
    ratio_one = ref_ms / (med["torch Adam(foreach=True), 1 thread"] * 1e3)
    if load_at_start > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load_at_start:.2f} at start: other processes share the CPUs, "
              "so these timings are noisy; rerun on a quiet machine")
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"ratio reference/torch: {ratio:.2f}x against torch on {torch_threads} threads ({verdict} the {TARGET}x "
          f"target); {ratio_one:.2f}x against torch on 1 thread")

    if args.investigate or ratio > TARGET:
        investigate(make_arrays()[0], make_arrays()[1], n_params, bw1, torch_ms)

    if not args.no_gpu:
        gpu_section(torch, args.reps, args.warmup)
    return ratio


if __name__ == "__main__":
    main()
