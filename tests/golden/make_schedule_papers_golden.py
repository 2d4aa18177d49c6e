"""Regenerate ``tests/golden/schedule_papers.npz``: peer trajectories and schedules for
``tests/test_schedule_papers.py``.

    python tests/golden/make_schedule_papers_golden.py

Needs torch, the official ``schedulefree`` package and ``pytorch_optimizer``
(only here, and in the optional ``peer`` tests); the tests read the ``.npz``.

**Schedule-Free** (``reference/optim/schedule_free.py``). For every case and
problem: float64 parameters from ``problem.init(0)``; at every step the
gradient is *our* full-batch oracle evaluated at the peer's current
parameters (which hold ``y`` in the peers' train mode), handed to the peer
as ``p.grad``, then ``optimizer.step()``. Recorded after 0..STEPS steps:
``y`` (the parameters) and ``x = (y - (1 - beta) z) / beta`` from the peer's
``z`` slot (what the peers' ``eval()`` switches to, computed here in float64
without touching the run). Keys ``sf/<case>/<problem>/<param>/y`` and ``.../x``,
shape ``(STEPS + 1,) + param shape``.

**One-cycle** (``reference/schedules/one_cycle.py``). ``torch.optim.SGD`` with
momentum and ``torch.optim.lr_scheduler.OneCycleLR``; for ``k = 0 .. T-1``
the lr and momentum that optimizer step ``k + 1`` uses
(``get_last_lr()[0]`` and ``param_groups[0]["momentum"]`` before the step).
Keys ``one_cycle/<case>/lr`` and ``one_cycle/<case>/momentum``.

``meta``: a JSON string with the versions, the calls and our matching
hyperparameters.
"""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from reference import problems  # noqa: E402

OUT = pathlib.Path(__file__).with_name("schedule_papers.npz")
STEPS = 25

#: problem key -> (name, settings): one with vectors, one with 2-D weight matrices (an MLP)
PROBLEMS = {
    "logistic": ("logistic_regression", dict(n=64, d=4, seed=0)),
    "mlp": ("blobs", dict(hidden=(5,), n_train=60, n_test=10, seed=0)),
}

#: case -> (peer constructor as text, its kwargs, beta for x, our optimizer, our hparams)
SF_CASES = {
    "sgd_official": ("schedulefree.SGDScheduleFree", dict(lr=0.5, momentum=0.9, weight_decay=1e-2, warmup_steps=5,
                                                          foreach=False),
                     0.9, "schedule_free_sgd", dict(lr=0.5, beta=0.9, weight_decay=1e-2, warmup_steps=5)),
    "sgd_pytorch_optimizer": ("pytorch_optimizer.ScheduleFreeSGD", dict(lr=0.3, momentum=0.8, weight_decay=0.0,
                                                                      warmup_steps=3, foreach=False),
                              0.8, "schedule_free_sgd", dict(lr=0.3, beta=0.8, warmup_steps=3)),
    "adamw_paper": ("schedulefree.AdamWScheduleFreePaper", dict(lr=0.05, betas=(0.9, 0.999), eps=1e-8,
                                                              weight_decay=1e-2, warmup_steps=5, foreach=False),
                    0.9, "schedule_free_adamw", dict(lr=0.05, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2,
                                                     warmup_steps=5, lr_bias_correction=True)),
    "adamw_official": ("schedulefree.AdamWScheduleFree", dict(lr=0.05, betas=(0.9, 0.999), eps=1e-8,
                                                            weight_decay=1e-2, warmup_steps=5, foreach=False),
                       0.9, "schedule_free_adamw", dict(lr=0.05, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2,
                                                        warmup_steps=5, lr_bias_correction=False)),
    "adamw_pytorch_optimizer": ("pytorch_optimizer.ScheduleFreeAdamW", dict(lr=0.03, betas=(0.95, 0.99), eps=1e-8,
                                                                          weight_decay=1e-3, warmup_steps=4,
                                                                          foreach=False),
                                0.95, "schedule_free_adamw", dict(lr=0.03, beta1=0.95, beta2=0.99, eps=1e-8,
                                                                  weight_decay=1e-3, warmup_steps=4,
                                                                  lr_bias_correction=False)),
}

#: case -> OneCycleLR kwargs (with SGD(momentum=0.9)), and our one_cycle / one_cycle_momentum arguments
ONE_CYCLE_CASES = {
    "linear_three_phase": dict(max_lr=0.1, total_steps=100, pct_start=0.45, anneal_strategy="linear",
                               three_phase=True, div_factor=25.0, final_div_factor=1e4,
                               base_momentum=0.85, max_momentum=0.95),
    "cos_two_phase": dict(max_lr=0.1, total_steps=100, pct_start=0.3, anneal_strategy="cos",
                          three_phase=False, div_factor=25.0, final_div_factor=1e4,
                          base_momentum=0.85, max_momentum=0.95),
    "cos_three_phase": dict(max_lr=2.0, total_steps=77, pct_start=0.25, anneal_strategy="cos",
                            three_phase=True, div_factor=10.0, final_div_factor=100.0,
                            base_momentum=0.8, max_momentum=0.9),
    "linear_two_phase": dict(max_lr=0.5, total_steps=53, pct_start=0.4, anneal_strategy="linear",
                             three_phase=False, div_factor=5.0, final_div_factor=1e3,
                             base_momentum=0.7, max_momentum=0.99),
}


def _peer(spec, params, kw):
    import pytorch_optimizer  # noqa: F401  (named in the spec strings)
    import schedulefree  # noqa: F401
    module, cls = spec.split(".")
    return getattr({"schedulefree": schedulefree, "pytorch_optimizer": pytorch_optimizer}[module], cls)(params, **kw)


def sf_trajectory(case, problem_key):
    """``{param: (y, x)}`` of the peer for ``case`` on ``problem_key`` (arrays ``(STEPS + 1,) + shape``)."""
    import torch
    spec, kw, beta, _, _ = SF_CASES[case]
    name, settings = PROBLEMS[problem_key]
    prob = problems.create(name, **settings)
    oracle = prob.oracle()
    init = prob.init(0)
    keys = list(init)
    ts = [torch.tensor(init[k], dtype=torch.float64, requires_grad=True) for k in keys]
    opt = _peer(spec, ts, kw)
    opt.train()
    ys = {k: [init[k].copy()] for k in keys}
    xs = {k: [init[k].copy()] for k in keys}
    for _ in range(STEPS):
        _, g = oracle({k: t.detach().numpy().copy() for k, t in zip(keys, ts)})
        for k, t in zip(keys, ts):
            t.grad = torch.tensor(np.asarray(g[k]), dtype=torch.float64)
        opt.step()
        for k, t in zip(keys, ts):
            y = t.detach().numpy().copy()
            z = opt.state[t]["z"].detach().numpy()
            ys[k].append(y)
            xs[k].append((y - (1.0 - beta) * z) / beta)
    return {k: (np.array(ys[k]), np.array(xs[k])) for k in keys}


def one_cycle_sequences(case):
    """``(lr, momentum)`` that torch's SGD uses at steps ``k = 0 .. T-1`` under OneCycleLR."""
    import torch
    kw = ONE_CYCLE_CASES[case]
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=kw["max_lr"], momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, **kw)
    lrs, moms = [], []
    for _ in range(kw["total_steps"]):
        lrs.append(sched.get_last_lr()[0])
        moms.append(opt.param_groups[0]["momentum"])
        p.grad = torch.ones_like(p)
        opt.step()
        sched.step()
    return np.array(lrs, dtype=np.float64), np.array(moms, dtype=np.float64)


def compute():
    import importlib.metadata as md
    import torch
    out = {}
    for case in SF_CASES:
        for pk in PROBLEMS:
            for k, (y, x) in sf_trajectory(case, pk).items():
                out[f"sf/{case}/{pk}/{k}/y"] = y
                out[f"sf/{case}/{pk}/{k}/x"] = x
    for case in ONE_CYCLE_CASES:
        out[f"one_cycle/{case}/lr"], out[f"one_cycle/{case}/momentum"] = one_cycle_sequences(case)
    meta = {"torch": torch.__version__, "schedulefree": md.version("schedulefree"),
            "pytorch_optimizer": md.version("pytorch_optimizer"), "steps": STEPS,
            "problems": PROBLEMS,
            "sf_cases": {c: {"peer": s, "peer_kwargs": kw, "beta": b, "ours": o, "ours_hparams": hp}
                         for c, (s, kw, b, o, hp) in SF_CASES.items()},
            "one_cycle_cases": ONE_CYCLE_CASES}
    out["meta"] = np.array(json.dumps(meta))
    return out


if __name__ == "__main__":
    data = compute()
    np.savez_compressed(OUT, **data)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(data)} arrays)")
