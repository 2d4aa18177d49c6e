"""Helpers every benchmark here shares: NumPy's BLAS thread count, and block-wise timing.

Not a benchmark itself; imported by the scripts of this folder.
"""
from __future__ import annotations

import os
import time


def numpy_blas_threads(limit=None):
    """(threads, description) of the BLAS NumPy uses, or (None, reason) without threadpoolctl.

    With ``limit``, NumPy's BLAS is first limited to that many threads.
    """
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        if limit is not None:
            raise SystemExit("--threads needs threadpoolctl (pip install threadpoolctl)")
        return None, "threadpoolctl is not installed: NumPy's BLAS threads are unknown"
    if limit is not None:
        threadpool_limits(limits=limit, user_api="blas")
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    # torch is not imported yet, so every BLAS seen here is NumPy's (or SciPy's)
    if not blas:
        return None, "threadpoolctl found no BLAS library"
    info = blas[0]
    desc = f"{info.get('internal_api')} {info.get('version')} ({os.path.basename(info.get('filepath', '?'))})"
    return int(info["num_threads"]), desc


def time_blocks(fns, reps, warmup, rounds, pause=0.3):
    """Median-ready timings of each function in ``fns``, measured in alternating blocks.

    Each of ``rounds`` rounds runs, for every function in turn, ``warmup``
    untimed calls and then ``reps // rounds`` timed ones. Blocks (rather than
    alternating single calls) keep the two libraries' thread pools from
    fighting: OpenBLAS and OpenMP workers busy-wait for a while after a call,
    so a pause before each block lets the other library's workers go to sleep.
    Alternating the blocks spreads any drift of the machine's load over both.
    """
    per_round = max(1, reps // rounds)
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(pause)
            for _ in range(warmup):
                fn()
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return times
