"""Regenerate ``tests/golden/adam_family.npz``: float64 trajectories of the
pytorch_optimizer peers of the Adam-family paper files, which
``tests/test_adam_family.py`` checks ``reference.optim`` against.

    python tests/golden/make_adam_family_golden.py

torch and pytorch_optimizer are needed only here (and in the optional
``peer`` test that reruns ``compute()``); the tests read the committed ``.npz``.

For every case (a ``reference.optim`` optimizer with its hyperparameters and
the pytorch_optimizer class and arguments that mean the same update) and
every problem in ``PROBLEMS`` (a quadratic, a tiny MLP with 2-D weight
matrices and a network with scale-invariant weight matrices, all from
``reference.problems``, started at ``problem.init(seed)``), the peer takes
``STEPS`` steps in float64, *fed the reference oracle's gradients* (so the
file checks the update alone). The problem's initial params, loss and
gradient are stored too, so that a test can tell "the problem changed"
(regenerate) from "the optimizer is wrong".

Where our default follows the paper and the peer follows the authors' code,
the case uses our ``variant="official"`` (AdaBound, AdaMod, diffGrad) or a
setting on which both agree (AdamP with eps = 0: see reference/optim/adamp.py).
pytorch_optimizer's AdaBound and DiffGrad add 1e-15 to ``v_t`` inside the
square root, which no paper or authors' code does; that constant is set to
0 here (see ``peer_trajectory``).
Gravity's random initial velocity is drawn by ``reference.optim`` (from its
``seed``) and copied into the peer's state before the first step.

Keys: ``traj/<case>/<problem>/<param>`` (``STEPS + 1`` rows: the initial
params, then the params after each step), ``problem/<problem>/init/<param>``,
``problem/<problem>/loss0``, ``problem/<problem>/grad0/<param>`` and
``meta`` (JSON: versions, steps, problems, cases).
"""
from __future__ import annotations

import functools
import importlib.metadata
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _peer import fed_trajectory, jsonable, problem_records, problems_meta, write_golden  # noqa: E402  (shared by every generator here)

STEPS = 25
OUT = pathlib.Path(__file__).with_name("adam_family.npz")

#: name -> (problem name, its settings, init seed)
PROBLEMS = {
    "quadratic": ("quadratic", dict(dim=6, condition_number=10.0, noise=0.0, seed=0), 0),
    "mlp": ("two_spirals", dict(hidden=(4,), n_train=32, n_test=8, seed=0), 0),
    "scale_invariant": ("scale_invariant_net", dict(d=4, hidden=6, n_classes=3, n_train=32, n_test=8, seed=0), 0),
}

#: case -> (reference optimizer name, its hyperparameters, peer class name, peer keyword arguments)
CASES = {
    "adabelief": ("adabelief", dict(lr=0.01), "AdaBelief", dict(lr=0.01)),
    "adabelief_options": ("adabelief", dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-8, weight_decay=0.1),
                          "AdaBelief", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.1,
                                            weight_decouple=True)),
    "adabelief_rectify": ("adabelief", dict(lr=0.01, beta2=0.95, rectify=True),
                          "AdaBelief", dict(lr=0.01, betas=(0.9, 0.95), rectify=True, degenerated_to_sgd=True)),
    "adabound": ("adabound", dict(lr=0.01, gamma=0.1, variant="official"),
                 "AdaBound", dict(lr=0.01, gamma=0.1, weight_decouple=False)),
    "adabound_options": ("adabound", dict(lr=0.01, final_lr=0.05, gamma=0.05, beta1=0.8, beta2=0.99, eps=1e-6,
                                          weight_decay=0.1, variant="official"),
                         "AdaBound", dict(lr=0.01, final_lr=0.05, gamma=0.05, betas=(0.8, 0.99), eps=1e-6,
                                          weight_decay=0.1, weight_decouple=False)),
    "amsbound": ("adabound", dict(lr=0.01, gamma=0.1, beta2=0.99, amsbound=True, variant="official"),
                 "AdaBound", dict(lr=0.01, gamma=0.1, betas=(0.9, 0.99), ams_bound=True, weight_decouple=False)),
    "adamod": ("adamod", dict(lr=0.01, beta3=0.9, variant="official"),
               "AdaMod", dict(lr=0.01, betas=(0.9, 0.999, 0.9))),
    "adamod_options": ("adamod", dict(lr=0.01, beta1=0.8, beta2=0.99, beta3=0.99, eps=1e-6, weight_decay=0.1,
                                      variant="official"),
                       "AdaMod", dict(lr=0.01, betas=(0.8, 0.99, 0.99), eps=1e-6, weight_decay=0.1,
                                      weight_decouple=True)),
    "diffgrad": ("diffgrad", dict(lr=0.01, variant="official"), "DiffGrad", dict(lr=0.01)),
    "diffgrad_options": ("diffgrad", dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1,
                                          variant="official"),
                         "DiffGrad", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1,
                                          weight_decouple=False)),
    "gravity": ("gravity", dict(lr=0.1, alpha=0.01, beta=0.9, seed=0), "Gravity", dict(lr=0.1, alpha=0.01, beta=0.9)),
    "gravity_options": ("gravity", dict(lr=0.05, alpha=0.05, beta=0.7, seed=3),
                        "Gravity", dict(lr=0.05, alpha=0.05, beta=0.7)),
    "adamp": ("adamp", dict(lr=0.01, eps=0.0), "AdamP", dict(lr=0.01, eps=0.0)),
    "adamp_options": ("adamp", dict(lr=0.01, beta1=0.8, beta2=0.99, eps=0.0, weight_decay=0.1, wd_ratio=0.2,
                                    delta=0.2, nesterov=True),
                      "AdamP", dict(lr=0.01, betas=(0.8, 0.99), eps=0.0, weight_decay=0.1, wd_ratio=0.2, delta=0.2,
                                    nesterov=True, weight_decouple=True)),
    "sgdp": ("sgdp", dict(lr=0.1, momentum=0.9), "SGDP", dict(lr=0.1, momentum=0.9)),
    "sgdp_options": ("sgdp", dict(lr=0.05, momentum=0.8, dampening=0.1, weight_decay=0.1, wd_ratio=0.2),
                     "SGDP", dict(lr=0.05, momentum=0.8, dampening=0.1, weight_decay=0.1, wd_ratio=0.2,
                                  weight_decouple=True)),
    "sgdp_nesterov": ("sgdp", dict(lr=0.05, momentum=0.9, nesterov=True),
                      "SGDP", dict(lr=0.05, momentum=0.9, nesterov=True)),
    "grams": ("grams", dict(lr=0.01), "Grams", dict(lr=0.01, eps=1e-8)),
    "grams_options": ("grams", dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1),
                      "Grams", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, weight_decouple=True)),
    "ano": ("ano", dict(lr=0.01), "Ano", dict(lr=0.01)),
    "ano_options": ("ano", dict(lr=0.01, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.1),
                    "Ano", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, weight_decouple=True)),
    "anolog": ("ano", dict(lr=0.01, logarithmic_schedule=True), "Ano", dict(lr=0.01, logarithmic_schedule=True)),
}


def make_problem(key):
    import reference.problems as problems
    name, settings, seed = PROBLEMS[key]
    return problems.create(name, **settings), seed


def peer_trajectory(torch, case, problem_key, steps=STEPS):
    """``{param: (steps + 1, ...) array}``: the peer's trajectory, fed the reference oracle's gradients."""
    import pytorch_optimizer

    from reference import optim

    ours, hp, peer_name, peer_kw = CASES[case]
    problem, seed = make_problem(problem_key)
    oracle = problem.oracle()
    init = problem.init(seed)
    tparams = {k: torch.tensor(v.copy(), dtype=torch.float64, requires_grad=True) for k, v in init.items()}
    opt = getattr(pytorch_optimizer, peer_name)(list(tparams.values()), **peer_kw)
    if peer_name in ("AdaBound", "DiffGrad"):
        # pytorch_optimizer adds 1e-15 to v_t inside the square root (its apply_ams_bound's exp_avg_sq_eps),
        # which neither the papers nor the authors' codes do; it moves the MLP trajectories by up to 5e-9
        # (coordinates with tiny gradients), so the file is made with it set to 0 to check the rest exactly.
        base = type(opt)
        opt.apply_ams_bound = functools.partial(base.apply_ams_bound, exp_avg_sq_eps=0.0)
        opt.apply_ams_bound_foreach = functools.partial(base.apply_ams_bound_foreach, exp_avg_sq_eps=0.0)
    if peer_name == "Gravity":  # the same V_0 as reference.optim's (drawn from its seed)
        v0 = optim.create(ours, **hp).init(init)["velocity"]
        for k, p in tparams.items():
            opt.state[p]["v"] = torch.tensor(v0[k].copy(), dtype=torch.float64)
    return fed_trajectory(torch, tparams, init, oracle, opt, steps)


def compute():
    """``{key: array}`` for every case (and ``meta``), computed with the installed peers."""
    import torch

    out = {}
    out.update(problem_records(PROBLEMS, make_problem))
    for case in CASES:
        for pk in PROBLEMS:
            for k, rows in peer_trajectory(torch, case, pk).items():
                out[f"traj/{case}/{pk}/{k}"] = rows

    meta = {"torch_version": torch.__version__, "pytorch_optimizer_version": importlib.metadata.version("pytorch_optimizer"),
            "steps": STEPS,
            "problems": problems_meta(PROBLEMS),
            "cases": {c: {"optimizer": n, "hparams": jsonable(hp), "peer": pn, "peer_hparams": jsonable(pkw)}
                      for c, (n, hp, pn, pkw) in CASES.items()}}
    out["meta"] = np.asarray(json.dumps(meta))
    return out


if __name__ == "__main__":
    write_golden(OUT, compute)
