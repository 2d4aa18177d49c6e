"""Test-session settings.

The suite runs in parallel (pytest-xdist, one worker per core). Each worker
is a process with its own BLAS; letting every one of them also start a BLAS
thread per core oversubscribes the machine (measured: 10x slower small
matmuls on 2 cores). So unless the caller chose otherwise, the workers (which
inherit this environment when they are spawned) use one BLAS thread each.
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MPLBACKEND", "Agg")
