"""One optimizer step of the zoo: reference.optim against its peer, for Adam, AdEMAMix, Adafactor and AdaGO.

The parameters are those of ``optim_step.py`` (4,194,304 float32 values in
three matrices, 2048x1024 and two 1024x1024), with fixed random gradients.
For each optimizer the reference ``step`` (under ``optim.unchecked()``, so
the per-step NaN/Inf check, a host sync on a GPU, is left out) is timed
against the peer it is verified against in ``tests/golden``:

==========  ==========================================  =============================================
optimizer   reference                                   peer
==========  ==========================================  =============================================
adam        ``adam`` (lr 1e-3)                          ``torch.optim.Adam(foreach=True)``
ademamix    ``ademamix`` (lr 1e-3, beta3 0.999, alpha 5)  ``pytorch_optimizer.AdEMAMix`` (same)
adafactor   ``adafactor`` (lr 1e-3, no relative step)    ``pytorch_optimizer.AdaFactor`` (same)
adago       ``adago`` (lr 0.05, 5 Newton-Schulz steps)   ``pytorch_optimizer.AdaGO`` (same)
==========  ==========================================  =============================================

Before timing, both sides take three steps from the same start and their
updates are compared (relative to the update's size). Adam, AdEMAMix and
Adafactor agree to float32 rounding. AdaGO does not exactly: pytorch-
optimizer runs its Newton-Schulz iteration in bfloat16 and scales the step by
a shape factor (``tests/golden/make_momentum_family_golden.py`` patches both to
compare in float64); the difference is printed, not asserted.

Threads: torch gets as many threads as NumPy's BLAS; the reference's
elementwise kernels run through ``backend.fuse`` (blocked, on every core;
``REFERENCE_THREADS``), its matrix products (Adafactor's factored second
moment, AdaGO's Newton-Schulz) through BLAS. Where CuPy sees a GPU and torch
has CUDA, the same comparison runs on the GPU (CUDA events, device synced).
Target: each reference step at most 2.5x its peer's. A benchmark, not a
test: nothing here asserts a time.

    python benchmarks/optim_zoo_step.py                   # all four
    python benchmarks/optim_zoo_step.py --only adafactor --reps 30
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
from optim_step import SHAPES, TARGET  # noqa: E402
from reference import backend, optim  # noqa: E402

CASES = {
    "adam": (dict(lr=1e-3), "torch_adam", dict(lr=1e-3)),
    "ademamix": (dict(lr=1e-3, beta3=0.999, alpha=5.0), "AdEMAMix",
                 dict(lr=1e-3, betas=(0.9, 0.999, 0.999), alpha=5.0)),
    "adafactor": (dict(lr=1e-3, scale_parameter=False), "AdaFactor",
                  dict(lr=1e-3, betas=(None, 0.999), decay_rate=-0.8, relative_step=False, scale_parameter=False,
                       warmup_init=False, clip_threshold=1.0, eps1=1e-30, eps2=1e-3, weight_decouple=True)),
    "adago": (dict(lr=0.05), "AdaGO", dict(lr=0.05)),
}
EXACT = {"adam", "ademamix", "adafactor"}


def make_arrays(xp=np, seed=0):
    rng = np.random.default_rng(seed)
    params = {k: xp.asarray(rng.standard_normal(s).astype(np.float32)) for k, s in SHAPES.items()}
    grads = {k: xp.asarray((0.1 * rng.standard_normal(s)).astype(np.float32)) for k, s in SHAPES.items()}
    return params, grads


def reference_stepper(name, hp, params, grads):
    opt = optim.create(name, **hp)
    box = {"params": params, "state": opt.init(params)}
    loss = np.float32(0.0)

    def step():
        with optim.unchecked():
            box["params"], box["state"] = opt.step(box["params"], box["state"], lambda p: (loss, grads))

    return step, box


def peer_stepper(torch, peer, kw, params, grads, device):
    tp = [torch.nn.Parameter(torch.as_tensor(np.asarray(backend.to_numpy(params[k])), device=device)) for k in SHAPES]
    for p, k in zip(tp, SHAPES):
        p.grad = torch.as_tensor(np.asarray(backend.to_numpy(grads[k])), device=device)
    if peer == "torch_adam":
        opt = torch.optim.Adam(tp, foreach=True, **kw)
    else:
        import pytorch_optimizer as po
        if peer == "AdaGO":
            opt = po.AdaGO([dict(params=tp, use_muon=True)], **kw)
        else:
            opt = getattr(po, peer)(tp, **kw)
    return opt.step, tp


def agreement(ref_step, box, peer_step, tp, sync, steps=3):
    start = {k: backend.to_numpy(v).astype(np.float64) for k, v in box["params"].items()}
    for _ in range(steps):
        ref_step()
        peer_step()
    sync()
    worst = 0.0
    for k, p in zip(SHAPES, tp):
        d_ref = backend.to_numpy(box["params"][k]).astype(np.float64) - start[k]
        d_peer = p.detach().cpu().numpy().astype(np.float64) - start[k]
        worst = max(worst, float(np.abs(d_ref - d_peer).max() / max(np.abs(d_peer).max(), 1e-30)))
    return worst


def compare(torch, names, device, reps, warmup, rounds):
    xp = np

    def sync():
        if device == "cuda":
            xp.cuda.Device().synchronize()
            torch.cuda.synchronize()

    if device == "cuda":
        import cupy
        xp = cupy
    ratios = {}
    for name in names:
        hp, peer, kw = CASES[name]
        params, grads = make_arrays(xp)
        ref_step, box = reference_stepper(name, hp, params, grads)
        peer_step, tp = peer_stepper(torch, peer, kw, params, grads, device)
        err = agreement(ref_step, box, peer_step, tp, sync)
        note = "" if name in EXACT else " (not expected to be exact: bfloat16 Newton-Schulz and a shape factor in the peer)"
        if name in EXACT and err > 1e-3:
            raise AssertionError(f"{name}: reference and peer updates differ by {err:.2e} of the update")

        def timed(fn):
            def call():
                fn()
                sync()
            return call

        times = time_blocks({"reference": timed(ref_step), "peer": timed(peer_step)}, reps, warmup, rounds)
        m_ref, m_peer = statistics.median(times["reference"]), statistics.median(times["peer"])
        ratios[name] = m_ref / m_peer
        print(f"{name:10s} [{device}] agreement {err:.1e} of the update{note}")
        print(f"{'':10s} reference {m_ref * 1e3:8.2f} ms (min {min(times['reference']) * 1e3:.2f})   "
              f"{peer:10s} {m_peer * 1e3:8.2f} ms (min {min(times['peer']) * 1e3:.2f})   "
              f"ratio {ratios[name]:.2f}x ({'meets' if ratios[name] <= TARGET else 'misses'} the {TARGET}x target)")
    return ratios


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=sorted(CASES), default=sorted(CASES, key=list(CASES).index))
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    blas_threads, blas_desc = numpy_blas_threads()
    import torch
    if blas_threads is not None:
        torch.set_num_threads(blas_threads)
    print(f"numpy {np.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load:.2f} "
          f"at start; threads: NumPy BLAS {blas_threads}, torch {torch.get_num_threads()}")
    print(f"{sum(int(np.prod(s)) for s in SHAPES.values()):,} float32 params in {len(SHAPES)} matrices")
    compare(torch, args.only, "cpu", args.reps, args.warmup, args.rounds)
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load:.2f} at start: the CPU timings are noisy; rerun on a quiet machine")
    if backend.gpu_available() and torch.cuda.is_available():
        compare(torch, args.only, "cuda", args.reps, args.warmup, args.rounds)
    else:
        print("GPU: skipped (needs CuPy with a CUDA device and torch with CUDA)")


if __name__ == "__main__":
    main()
