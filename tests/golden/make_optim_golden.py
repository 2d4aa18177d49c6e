"""Regenerate ``tests/golden/optim_torch.npz``: float64 trajectories of
``torch.optim`` (and ``torch.nn.utils.clip_grad_norm_``) that
``tests/test_optim_classic.py`` checks ``reference.optim`` against.

    python tests/golden/make_optim_golden.py

torch is needed only here (and in the optional ``peer`` test that reruns
``compute()``); the tests read the committed ``.npz``.

Trajectories. For every case (an optimizer of ``reference.optim`` with its
hyperparameters, and the torch optimizer they mean) and every problem in
``PROBLEMS`` (a quadratic and a tiny MLP with 2-D weight matrices, both from
``reference.problems``, started at ``problem.init(seed)``), torch takes
``STEPS`` steps in float64. The *gradients come from the reference oracle*:
at each step the torch parameters are copied out, ``problem.oracle()(params)``
is evaluated and its gradients are written into ``p.grad`` before
``opt.step()``. So the file checks the optimizer update alone, not the
autograd; the problem's initial params, loss and gradient are stored too so
that the test can tell "the problem changed" (regenerate) from "the optimizer
is wrong".

Clipping. ``torch.nn.utils.clip_grad_norm_`` on seeded random gradient sets
(a matrix and a vector) for several thresholds, below and above the norm.

Keys: ``traj/<case>/<problem>/<param>`` (``STEPS + 1`` rows: the initial
params, then the params after each step), ``problem/<problem>/init/<param>``,
``problem/<problem>/loss0``, ``problem/<problem>/grad0/<param>``,
``clip/<i>/in/<name>``, ``clip/<i>/out/<name>``, ``clip/<i>/norm``, and
``meta`` (a JSON string: torch version, steps, problems, cases, clip
thresholds).
"""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _peer import fed_trajectory, jsonable, problem_records, problems_meta, write_golden  # noqa: E402  (shared by every generator here)

STEPS = 30
OUT = pathlib.Path(__file__).with_name("optim_torch.npz")

#: name -> (problem name, its settings, init seed)
PROBLEMS = {
    "quadratic": ("quadratic", dict(dim=6, condition_number=10.0, noise=0.0, seed=0), 0),
    "mlp": ("two_spirals", dict(hidden=(4,), n_train=32, n_test=8, seed=0), 0),
}

#: case -> (reference optimizer name, its hyperparameters). The torch optimizer
#: is built from the same numbers by ``torch_optimizer`` below.
CASES = {
    "sgd": ("sgd", dict(lr=0.1)),
    "sgd_momentum": ("sgd", dict(lr=0.05, momentum=0.9)),
    "sgd_dampening": ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.5)),
    "sgd_nesterov": ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
    "sgd_weight_decay": ("sgd", dict(lr=0.05, momentum=0.5, weight_decay=0.1)),
    "adagrad": ("adagrad", dict(lr=0.1)),
    "adagrad_options": ("adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1,
                                        initial_accumulator_value=0.5, eps=1e-6)),
    "rmsprop": ("rmsprop", dict(lr=0.01)),
    "rmsprop_centered": ("rmsprop", dict(lr=0.01, centered=True)),
    "rmsprop_momentum": ("rmsprop", dict(lr=0.005, momentum=0.9)),
    "rmsprop_all": ("rmsprop", dict(lr=0.005, alpha=0.9, eps=1e-6, momentum=0.5, centered=True,
                                    weight_decay=0.1)),
    "adam": ("adam", dict(lr=0.05)),
    "adam_options": ("adam", dict(lr=0.05, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1)),
    "adam_amsgrad_twin": ("adam", dict(lr=0.05, beta2=0.99)),
    "adamax": ("adamax", dict(lr=0.05)),
    "amsgrad": ("amsgrad", dict(lr=0.05, beta2=0.99, variant="torch")),
    "amsgrad_options": ("amsgrad", dict(lr=0.05, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1,
                                        variant="torch")),
    "adamw": ("adamw", dict(lr=0.05)),
    "adamw_options": ("adamw", dict(lr=0.05, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.5)),
    "clip_sgd": ("clip_grad_norm", dict(max_norm=0.1, inner=("sgd", dict(lr=0.1, momentum=0.9)))),
    "clip_adam": ("clip_grad_norm", dict(max_norm=0.05, inner=("adam", dict(lr=0.05)))),
}

#: clip_grad_norm_ checks: thresholds applied to each random gradient set
CLIP_MAX_NORMS = (0.01, 1.0, 3.0, 1e6)
CLIP_SETS = 3


def torch_optimizer(torch, params, name, hp):
    """The torch optimizer that ``reference.optim.create(name, **hp)`` reproduces."""
    O = torch.optim
    if name == "sgd":
        return O.SGD(params, lr=hp["lr"], momentum=hp.get("momentum", 0.0), dampening=hp.get("dampening", 0.0),
                     nesterov=hp.get("nesterov", False), weight_decay=hp.get("weight_decay", 0.0))
    if name == "adagrad":
        return O.Adagrad(params, lr=hp["lr"], lr_decay=hp.get("lr_decay", 0.0),
                         weight_decay=hp.get("weight_decay", 0.0),
                         initial_accumulator_value=hp.get("initial_accumulator_value", 0.0),
                         eps=hp.get("eps", 1e-10))
    if name == "rmsprop":
        return O.RMSprop(params, lr=hp["lr"], alpha=hp.get("alpha", 0.99), eps=hp.get("eps", 1e-8),
                         weight_decay=hp.get("weight_decay", 0.0), momentum=hp.get("momentum", 0.0),
                         centered=hp.get("centered", False))
    betas = (hp.get("beta1", 0.9), hp.get("beta2", 0.999))
    if name == "adam":
        return O.Adam(params, lr=hp["lr"], betas=betas, eps=hp.get("eps", 1e-8),
                      weight_decay=hp.get("weight_decay", 0.0))
    if name == "adamax":
        return O.Adamax(params, lr=hp["lr"], betas=betas, eps=hp.get("eps", 1e-8),
                        weight_decay=hp.get("weight_decay", 0.0))
    if name == "amsgrad":
        assert hp["variant"] == "torch"
        return O.Adam(params, lr=hp["lr"], betas=betas, eps=hp.get("eps", 1e-8),
                      weight_decay=hp.get("weight_decay", 0.0), amsgrad=True)
    if name == "adamw":
        return O.AdamW(params, lr=hp["lr"], betas=betas, eps=hp.get("eps", 1e-8),
                       weight_decay=hp.get("weight_decay", 1e-2))
    raise KeyError(name)


def make_problem(key):
    import reference.problems as problems
    name, settings, seed = PROBLEMS[key]
    return problems.create(name, **settings), seed


def torch_trajectory(torch, case, problem_key, steps=STEPS):
    """``{param: (steps + 1, ...) array}``: torch's trajectory, fed the reference oracle's gradients."""
    name, hp = CASES[case]
    problem, seed = make_problem(problem_key)
    oracle = problem.oracle()
    init = problem.init(seed)
    tparams = {k: torch.tensor(v.copy(), dtype=torch.float64) for k, v in init.items()}
    clip = None
    if name == "clip_grad_norm":
        clip = hp["max_norm"]
        name, hp = hp["inner"]
    opt = torch_optimizer(torch, list(tparams.values()), name, hp)
    before = None if clip is None else (lambda: torch.nn.utils.clip_grad_norm_(list(tparams.values()), clip))
    return fed_trajectory(torch, tparams, init, oracle, opt, steps, before_step=before)


def clip_inputs(i):
    """Seeded random gradient set number ``i``: a 2-D and a 1-D array, norms of order 1 to 10."""
    rng = np.random.default_rng(100 + i)
    scale = 10.0 ** (i - 1)
    return {"weight": scale * rng.standard_normal((3, 4)), "bias": scale * rng.standard_normal(5)}


def compute():
    """``{key: array}`` for every case (and ``meta``), computed with the installed torch."""
    import torch

    out = {}
    out.update(problem_records(PROBLEMS, make_problem))
    for case in CASES:
        for pk in PROBLEMS:
            for k, rows in torch_trajectory(torch, case, pk).items():
                out[f"traj/{case}/{pk}/{k}"] = rows
    clip_cases = []
    for i in range(CLIP_SETS):
        g = clip_inputs(i)
        for j, max_norm in enumerate(CLIP_MAX_NORMS):
            key = f"clip/{i}_{j}"
            tensors = {k: torch.nn.Parameter(torch.zeros(v.shape, dtype=torch.float64)) for k, v in g.items()}
            for k, p in tensors.items():
                p.grad = torch.tensor(g[k].copy())
            norm = torch.nn.utils.clip_grad_norm_(list(tensors.values()), max_norm)
            out[f"{key}/norm"] = np.asarray(float(norm))
            for k in g:
                out[f"{key}/in/{k}"] = g[k]
                out[f"{key}/out/{k}"] = tensors[k].grad.numpy().copy()
            clip_cases.append({"key": key, "max_norm": max_norm})

    meta = {"torch_version": torch.__version__, "steps": STEPS,
            "problems": problems_meta(PROBLEMS),
            "cases": {c: {"optimizer": n, "hparams": jsonable(hp)} for c, (n, hp) in CASES.items()},
            "clip": clip_cases}
    out["meta"] = np.asarray(json.dumps(meta))
    return out


if __name__ == "__main__":
    write_golden(OUT, compute)
