"""Regenerate ``tests/golden/misc_first_order.npz``: float64 trajectories of the
authors' own PyTorch implementations of NAG-GS / NAG4 (skolai/nag-gs,
``nag_gs/nag_gs_pytorch.py``) and INNAprop (innaprop/innaprop, ``innaprop.py``),
which ``tests/test_misc_first_order.py`` checks ``reference.optim`` against.

    NAG_GS_PYTORCH=/path/to/nag_gs_pytorch.py INNAPROP_PY=/path/to/innaprop.py \\
        python tests/golden/make_misc_first_order_golden.py

The two files come from the authors' public repositories (neither is on PyPI
and neither is part of this repository: get them from the repositories named
above); torch is needed only here. Each file is imported on its own (the
nag_gs package's ``__init__`` also imports JAX, which is not needed).

For every case (a ``reference.optim`` optimizer with its hyperparameters, the
official class and its arguments) and every problem in ``PROBLEMS`` (a
quadratic and a tiny MLP with 2-D weight matrices, from ``reference.problems``,
started at ``problem.init(seed)``), the official optimizer takes ``STEPS``
steps in float64, *fed the reference oracle's gradients* at its own current
params (so the file checks the update alone).

Keys: ``traj/<case>/<problem>/<param>`` (``STEPS + 1`` rows: the initial
params, then the params after each step), ``problem/<problem>/init/<param>``,
``problem/<problem>/loss0`` and ``meta`` (JSON: versions, steps, problems, cases).
"""
from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _peer import fed_trajectory, write_golden  # noqa: E402  (shared by every generator here)

STEPS = 25
OUT = pathlib.Path(__file__).with_name("misc_first_order.npz")

#: name -> (problem name, its settings, init seed)
PROBLEMS = {
    "quadratic": ("quadratic", dict(dim=6, condition_number=10.0, noise=0.0, seed=0), 0),
    "mlp": ("two_spirals", dict(hidden=(4,), n_train=32, n_test=8, seed=0), 0),
}

#: case -> (reference optimizer name, its hyperparameters, (official file env var, class), class kwargs)
#: The official PyTorch ``NAGGS`` never changes gamma: its ``nag_gs`` function returns the updated
#: gammas, but ``NAGGS.step`` discards the return value and stores the old ones back. So it computes
#: NAG4's iteration, and the matching reference setting is ``update_gamma=False`` (the test also checks
#: that ``update_gamma=True``, the paper's NAG-GS, does differ from it).
CASES = {
    "nag_gs": ("nag_gs", dict(lr=0.05, mu=1.0, gamma=1.5, update_gamma=False, variant="torch"),
               ("NAG_GS_PYTORCH", "NAGGS"), dict(lr=0.05, mu=1.0, gamma=1.5)),
    "nag_gs_options": ("nag_gs", dict(lr=0.2, mu=0.3, gamma=0.7, update_gamma=False, variant="torch"),
                       ("NAG_GS_PYTORCH", "NAGGS"), dict(lr=0.2, mu=0.3, gamma=0.7)),
    "nag4": ("nag_gs", dict(lr=0.05, mu=1.0, gamma=1.5, update_gamma=False, variant="torch"),
             ("NAG_GS_PYTORCH", "NAG4"), dict(lr=0.05, mu=1.0, gamma=1.5)),
    "nag4_options": ("nag_gs", dict(lr=0.2, mu=0.3, gamma=0.7, update_gamma=False, variant="torch"),
                     ("NAG_GS_PYTORCH", "NAG4"), dict(lr=0.2, mu=0.3, gamma=0.7)),
    "innaprop": ("innaprop", dict(lr=0.01), ("INNAPROP_PY", "INNAprop"), dict(lr=0.01)),
    "innaprop_options": ("innaprop", dict(lr=0.05, alpha=2.0, beta=2.0, sigma=0.99, eps=1e-6, weight_decay=0.1),
                         ("INNAPROP_PY", "INNAprop"),
                         dict(lr=0.05, alpha=2.0, beta=2.0, sigma=0.99, eps=1e-6, weight_decay=0.1)),
}


def official_class(env, name):
    path = os.environ.get(env)
    if not path or not pathlib.Path(path).is_file():
        raise SystemExit(f"set {env} to the path of the authors' file (see this script's docstring)")
    spec = importlib.util.spec_from_file_location(f"_official_{env.lower()}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def make_problem(key):
    import reference.problems as problems
    name, settings, seed = PROBLEMS[key]
    return problems.create(name, **settings), seed


def peer_trajectory(torch, case, problem_key, steps=STEPS):
    """``{param: (steps + 1, ...) array}``: the official optimizer's trajectory, fed our oracle's gradients."""
    _, _, (env, cls_name), kw = CASES[case]
    problem, seed = make_problem(problem_key)
    oracle = problem.oracle()
    init = problem.init(seed)
    tparams = {k: torch.tensor(v.copy(), dtype=torch.float64, requires_grad=True) for k, v in init.items()}
    opt = official_class(env, cls_name)(list(tparams.values()), **kw)
    return fed_trajectory(torch, tparams, init, oracle, opt, steps)


def compute():
    import torch

    out = {}
    for pk in PROBLEMS:
        problem, seed = make_problem(pk)
        init = problem.init(seed)
        loss, _ = problem.oracle()(init)
        out[f"problem/{pk}/loss0"] = np.asarray(loss, dtype=np.float64)
        for k in init:
            out[f"problem/{pk}/init/{k}"] = init[k]
    for case in CASES:
        for pk in PROBLEMS:
            for k, rows in peer_trajectory(torch, case, pk).items():
                out[f"traj/{case}/{pk}/{k}"] = rows
    meta = {"torch_version": torch.__version__, "steps": STEPS,
            "sources": {"NAG_GS_PYTORCH": "skolai/nag-gs nag_gs/nag_gs_pytorch.py",
                        "INNAPROP_PY": "innaprop/innaprop innaprop.py"},
            "problems": {k: {"name": n, "settings": s, "seed": sd} for k, (n, s, sd) in PROBLEMS.items()},
            "cases": {c: {"optimizer": n, "hparams": hp, "peer": list(peer), "peer_hparams": pkw}
                      for c, (n, hp, peer, pkw) in CASES.items()}}
    out["meta"] = np.asarray(json.dumps(meta))
    return out


if __name__ == "__main__":
    write_golden(OUT, compute)
