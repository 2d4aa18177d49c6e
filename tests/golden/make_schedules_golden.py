"""Regenerate ``tests/golden/schedules_torch.npz``: learning rates from
``torch.optim.lr_scheduler`` for the cases that ``tests/test_schedules.py``
checks ``reference.schedules`` against.

    python tests/golden/make_schedules_golden.py

torch is needed only here (and in the optional ``peer`` test that reruns
``compute()``); the tests read the committed ``.npz``.

For every case, one float64 parameter, ``torch.optim.SGD(lr=BASE_LR)`` and the
scheduler; then, for ``k = 0 .. STEPS``:

    applied[k] = scheduler.get_last_lr()[0]     # the lr that optimizer step k+1 uses
    optimizer.step(); scheduler.step()

so ``applied[k]`` is the value after ``k`` steps, which is what
``reference.schedules`` returns for ``schedule(k)``. Where torch has a closed
form (``_get_closed_form_lr``, a private method, read with ``last_epoch = k``)
it is stored too as ``<case>/closed``: torch applies the recursive form,
which drifts from the closed form by rounding (about 1e-15 relative here).

Keys: ``<case>/applied`` and ``<case>/closed`` (float64, ``STEPS + 1``
values) and ``meta`` (a JSON string: torch version, base lr, steps and the
torch call of each case).
"""
from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np

BASE_LR = 0.1
STEPS = 100
OUT = pathlib.Path(__file__).with_name("schedules_torch.npz")

#: case -> the torch scheduler, as source text evaluated with ``S = torch.optim.lr_scheduler``
#: and ``opt`` the optimizer (kept as text so ``meta`` records exactly what was run).
CASES = {
    "step_lr": "S.StepLR(opt, step_size=7, gamma=0.5)",
    "multistep_lr": "S.MultiStepLR(opt, milestones=[10, 30, 60], gamma=0.3)",
    "exponential_lr": "S.ExponentialLR(opt, gamma=0.97)",
    "cosine_lr": "S.CosineAnnealingLR(opt, T_max=100, eta_min=0.001)",
    "cosine_lr_zero": "S.CosineAnnealingLR(opt, T_max=100)",
    "cosine_lr_short": "S.CosineAnnealingLR(opt, T_max=40, eta_min=0.001)",
    "cosine_warm_restarts": "S.CosineAnnealingWarmRestarts(opt, T_0=10, T_mult=2, eta_min=0.001)",
    "cosine_warm_restarts_mult1": "S.CosineAnnealingWarmRestarts(opt, T_0=15)",
    "linear_lr_warmup": "S.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=20)",
    "linear_lr_decay": "S.LinearLR(opt, start_factor=1.0, end_factor=0.1, total_iters=50)",
    "polynomial_lr": "S.PolynomialLR(opt, total_iters=60, power=2.0)",
    "sequential_warmup_cosine": ("S.SequentialLR(opt, [S.LinearLR(opt, start_factor=0.01, total_iters=10), "
                                 "S.CosineAnnealingLR(opt, T_max=90)], milestones=[10])"),
    "sequential_three": ("S.SequentialLR(opt, [S.LinearLR(opt, start_factor=0.1, total_iters=5), "
                         "S.StepLR(opt, step_size=10, gamma=0.5), S.ExponentialLR(opt, gamma=0.95)], "
                         "milestones=[5, 40])"),
}


def _optimizer(torch):
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    return torch.optim.SGD([p], lr=BASE_LR)


def compute():
    """``{key: array}`` for every case (and ``meta``), computed with the installed torch."""
    import torch
    from torch.optim import lr_scheduler as S

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about the private closed form and SequentialLR
        for case, src in CASES.items():
            opt = _optimizer(torch)
            sched = eval(src, {"S": S, "opt": opt})
            applied = []
            for _ in range(STEPS + 1):
                applied.append(float(sched.get_last_lr()[0]))
                opt.step()
                sched.step()
            out[f"{case}/applied"] = np.array(applied, dtype=np.float64)

            if hasattr(sched, "_get_closed_form_lr"):
                opt = _optimizer(torch)
                sched = eval(src, {"S": S, "opt": opt})
                closed = []
                for k in range(STEPS + 1):
                    sched.last_epoch = k
                    closed.append(float(sched._get_closed_form_lr()[0]))
                out[f"{case}/closed"] = np.array(closed, dtype=np.float64)

    meta = {"torch": torch.__version__, "base_lr": BASE_LR, "steps": STEPS, "cases": CASES,
            "generator": "tests/golden/make_schedules_golden.py"}
    out["meta"] = np.array(json.dumps(meta, sort_keys=True))
    return out


def main():
    arrays = compute()
    np.savez(OUT, **arrays)
    print(f"wrote {OUT} ({len(arrays) - 1} arrays, torch {json.loads(str(arrays['meta']))['torch']})")


if __name__ == "__main__":
    main()
