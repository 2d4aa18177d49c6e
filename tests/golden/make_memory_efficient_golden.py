"""Regenerate ``tests/golden/memory_efficient.npz``: float64 trajectories of the
pytorch-optimizer peers of the memory-efficient group, which
``tests/test_memory_efficient.py`` checks ``reference.optim`` against.

    python tests/golden/make_memory_efficient_golden.py

torch and pytorch_optimizer are needed only here (and in the optional ``peer``
test that reruns ``compute()``); the tests read the committed ``.npz``.

Peers (their source read in site-packages/pytorch_optimizer/optimizer/):

* ``AdaFactor`` (adafactor.py) for ``adafactor``. Built with
  ``momentum_dtype=torch.float64`` (its default keeps the momentum in
  bfloat16) and ``foreach=False``. Its ``betas[1]`` caps ``beta2_t``; in 30
  steps ``1 - t^(-0.8) <= 0.934``, so the default cap 0.999 never binds and
  the trajectory is the paper's uncapped one (case ``adafactor_cap`` uses a
  binding cap 0.5).
* ``AdamWSN`` (snsm.py) for ``subset_norm_subspace_momentum`` with full
  momentum and Subset-Norm second moments (the peer has no subspace
  momentum). Its convention (shared with the paper's code): the 2-D weights
  go to a parameter group with ``sn=True`` and the rest to a plain Adam group;
  the decoupled weight decay is applied *after* the update.

Trajectories. For every case and every problem in ``PROBLEMS`` (a quadratic
and a small MLP with 2-D weight matrices of unequal sides, both from
``reference.problems``, started at ``problem.init(seed)``), the peer takes
``STEPS`` steps in float64 fed the *reference oracle's gradients* (the torch
params are copied out, ``problem.oracle()(params)`` evaluated, and its
gradients written into ``p.grad`` before ``opt.step()``), so the file checks
the optimizer update alone.

Keys: ``traj/<case>/<problem>/<param>`` (``STEPS + 1`` rows: the initial
params, then the params after each step), ``problem/<problem>/init/<param>``,
``problem/<problem>/grad0/<param>``, and ``meta`` (a JSON string: versions,
steps, problems, cases).
"""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _peer import fed_trajectory, problem_records, write_golden  # noqa: E402  (shared by every generator here)

STEPS = 25
OUT = pathlib.Path(__file__).with_name("memory_efficient.npz")

#: name -> (problem name, its settings, init seed)
PROBLEMS = {
    "quadratic": ("quadratic", dict(dim=6, condition_number=10.0, noise=0.0, seed=0), 0),
    "mlp": ("blobs", dict(hidden=(6, 5), n_train=32, n_test=8, seed=0), 0),
}

#: case -> (reference optimizer name, its hyperparameters). The peer is built from the
#: same numbers by ``peer_optimizer`` below.
CASES = {
    "adafactor": ("adafactor", dict()),
    "adafactor_momentum": ("adafactor", dict(beta1=0.9, weight_decay=0.1)),
    "adafactor_cap": ("adafactor", dict(beta2_cap=0.5, clip_threshold=0.5, decay_rate=0.6)),
    "adafactor_lr": ("adafactor", dict(lr=0.02, scale_parameter=False)),
    "adafactor_lr_scaled": ("adafactor", dict(lr=0.05, eps2=0.5)),
    "adafactor_warmup": ("adafactor", dict(warmup_init=True, eps1=1e-3)),
    "subset_norm": ("subset_norm_subspace_momentum",
                    dict(lr=0.01, momentum="full", subset_size=4, beta2=0.999, eps=1e-8)),
    "subset_norm_options": ("subset_norm_subspace_momentum",
                            dict(lr=0.01, momentum="full", subset_size=3, beta1=0.8, beta2=0.99, eps=1e-6,
                                 weight_decay=0.1)),
}


def peer_optimizer(torch, tparams, name, hp):
    """The pytorch_optimizer optimizer that ``reference.optim.create(name, **hp)`` reproduces."""
    import pytorch_optimizer as po
    if name == "adafactor":
        beta1 = hp.get("beta1", 0.0)
        return po.AdaFactor(list(tparams.values()), lr=hp.get("lr") or 1e-3,
                            betas=(beta1 if beta1 > 0 else None, hp.get("beta2_cap", 0.999)),
                            decay_rate=-hp.get("decay_rate", 0.8), weight_decay=hp.get("weight_decay", 0.0),
                            weight_decouple=True, fixed_decay=False,
                            clip_threshold=hp.get("clip_threshold", 1.0),
                            scale_parameter=hp.get("scale_parameter", True),
                            relative_step=hp.get("lr") is None, warmup_init=hp.get("warmup_init", False),
                            eps1=hp.get("eps1", 1e-30), eps2=hp.get("eps2", 1e-3),
                            momentum_dtype=torch.float64, foreach=False)
    if name == "subset_norm_subspace_momentum":
        sn = [p for p in tparams.values() if p.ndim == 2]
        regular = [p for p in tparams.values() if p.ndim != 2]
        groups = [g for g in ({"params": regular, "sn": False}, {"params": sn, "sn": True}) if g["params"]]
        return po.AdamWSN(groups, lr=hp["lr"], betas=(hp.get("beta1", 0.9), hp.get("beta2", 0.999)),
                          weight_decay=hp.get("weight_decay", 0.0), weight_decouple=True, fixed_decay=False,
                          subset_size=hp["subset_size"], eps=hp.get("eps", 1e-8), foreach=False)
    raise KeyError(name)


def make_problem(key):
    import reference.problems as problems
    name, settings, seed = PROBLEMS[key]
    return problems.create(name, **settings), seed


def peer_trajectory(torch, case, problem_key, steps=STEPS):
    """``{param: (steps + 1, ...) array}``: the peer's trajectory, fed the reference oracle's gradients."""
    name, hp = CASES[case]
    problem, seed = make_problem(problem_key)
    oracle = problem.oracle()
    init = problem.init(seed)
    tparams = {k: torch.tensor(v.copy(), dtype=torch.float64) for k, v in init.items()}
    opt = peer_optimizer(torch, tparams, name, hp)
    return fed_trajectory(torch, tparams, init, oracle, opt, steps)


def compute():
    """``{key: array}`` for every case (and ``meta``), computed with the installed peers."""
    import torch
    import importlib.metadata

    out = {}
    out.update(problem_records(PROBLEMS, make_problem, with_loss=False))
    for case in CASES:
        for pk in PROBLEMS:
            for k, rows in peer_trajectory(torch, case, pk).items():
                out[f"traj/{case}/{pk}/{k}"] = rows
    meta = {"torch_version": torch.__version__,
            "pytorch_optimizer_version": importlib.metadata.version("pytorch_optimizer"), "steps": STEPS,
            "problems": {k: {"name": n, "settings": {a: (list(b) if isinstance(b, tuple) else b)
                                                     for a, b in s.items()}, "seed": sd}
                         for k, (n, s, sd) in PROBLEMS.items()},
            "cases": {c: {"optimizer": n, "hparams": hp} for c, (n, hp) in CASES.items()}}
    out["meta"] = np.asarray(json.dumps(meta))
    return out


if __name__ == "__main__":
    write_golden(OUT, compute)
