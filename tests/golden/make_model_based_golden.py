"""Regenerate ``tests/golden/model_based.npz``: float64 trajectories of the
official MoMo implementation (``pip install momo-opt``, package ``momo``,
version 0.1.0, fabian-sp/MoMo; it needs torch) that ``tests/test_model_based.py``
checks ``reference.optim.momo`` / ``momo_adam`` against.

    python tests/golden/make_model_based_golden.py

torch and momo-opt are needed only here; the tests read the committed ``.npz``.

For every case (a reference optimizer with its hyperparameters, translated to
the official class's arguments by ``official_optimizer``) and every problem in
``PROBLEMS`` (least squares with a vector parameter, softmax regression with a
2-D weight matrix, and least squares on seeded minibatches), the official
optimizer takes ``STEPS`` steps in float64. The loss and gradients come from
the reference oracle at the official optimizer's current parameters (written
into ``p.grad``; the loss passed as ``step(loss=...)``), so the file checks the
update alone. torch's default dtype is set to float64 first (see ``compute``). Minibatch ``k`` (0-based) is
``problem.sample_batch(np.random.default_rng([BATCH_SEED, k]), batch_size)``.

Keys: ``traj/<case>/<problem>/<param>`` (``STEPS + 1`` rows: the initial
params, then the params after every step), and ``meta`` (a JSON string).
"""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

STEPS = 25
BATCH_SEED = 1234
OUT = pathlib.Path(__file__).with_name("model_based.npz")

#: name -> (problem name, its settings, init seed, minibatch size or None for the full batch)
PROBLEMS = {
    "least_squares": ("least_squares", dict(n=20, d=5, noise=0.1, seed=0), 0, None),
    "softmax": ("softmax_regression", dict(n=30, d=4, n_classes=3, lam=1e-2, n_test=0, seed=0), 0, None),
    "least_squares_batches": ("least_squares", dict(n=20, d=5, noise=0.0, seed=1), 1, 4),
}

#: case -> (reference optimizer name, its hyperparameters)
CASES = {
    "momo": ("momo", dict(lr=1.0)),
    "momo_small_lr": ("momo", dict(lr=0.05, beta=0.8)),
    "momo_bias_correction_wd": ("momo", dict(lr=0.5, beta=0.8, bias_correction=True, weight_decay=0.1)),
    "momo_lower_bound": ("momo", dict(lr=2.0, lower_bound=0.02)),
    "momo_star": ("momo", dict(lr=1.0, estimate_lower_bound=True)),
    "momo_star_wd": ("momo", dict(lr=1.0, weight_decay=0.05, estimate_lower_bound=True, bias_correction=True)),
    "momo_adam": ("momo_adam", dict(lr=0.05)),
    "momo_adam_options": ("momo_adam", dict(lr=0.1, beta1=0.8, beta2=0.99, eps=1e-6, lower_bound=0.01)),
    "momo_adam_wd": ("momo_adam", dict(lr=0.1, weight_decay=0.1)),
    "momo_adam_wd_adamw": ("momo_adam", dict(lr=0.1, weight_decay=0.1, divide=False)),
    "momo_adam_star": ("momo_adam", dict(lr=0.1, estimate_lower_bound=True)),
}


def official_optimizer(name, hp, torch_params):
    import momo
    if name == "momo":
        return momo.Momo(torch_params, lr=hp["lr"], beta=hp.get("beta", 0.9), lb=hp.get("lower_bound", 0.0),
                         weight_decay=hp.get("weight_decay", 0.0),
                         bias_correction=hp.get("bias_correction", False),
                         use_fstar=hp.get("estimate_lower_bound", False))
    if name == "momo_adam":
        return momo.MomoAdam(torch_params, lr=hp["lr"], betas=(hp.get("beta1", 0.9), hp.get("beta2", 0.999)),
                             eps=hp.get("eps", 1e-8), weight_decay=hp.get("weight_decay", 0.0),
                             lb=hp.get("lower_bound", 0.0), divide=hp.get("divide", True),
                             use_fstar=hp.get("estimate_lower_bound", False))
    raise KeyError(name)


def batch_at(problem, k, batch_size):
    if batch_size is None:
        return None
    return problem.sample_batch(np.random.default_rng([BATCH_SEED, k]), batch_size)


def compute():
    import torch
    from reference import problems

    # The official code creates the <g, x> average with torch.zeros(1) / torch.tensor(0.) (the default
    # dtype): without this it would be accumulated in float32 even for float64 params.
    torch.set_default_dtype(torch.float64)
    out = {}
    for pname, (kind, settings, seed, batch_size) in PROBLEMS.items():
        prob = problems.create(kind, **settings)
        init = prob.init(seed)
        for case, (name, hp) in CASES.items():
            keys = list(init)
            tparams = [torch.tensor(init[k].copy(), dtype=torch.float64, requires_grad=False) for k in keys]
            opt = official_optimizer(name, hp, tparams)
            rows = {k: [init[k].copy()] for k in keys}
            for step in range(STEPS):
                params = {k: p.detach().numpy().copy() for k, p in zip(keys, tparams)}
                loss, grads = prob.oracle(batch_at(prob, step, batch_size))(params)
                for k, p in zip(keys, tparams):
                    p.grad = torch.tensor(np.asarray(grads[k], dtype=np.float64))
                opt.step(loss=torch.tensor(float(loss), dtype=torch.float64))
                for k, p in zip(keys, tparams):
                    rows[k].append(p.detach().numpy().copy())
            for k in keys:
                out[f"traj/{case}/{pname}/{k}"] = np.stack(rows[k])
    return out


def main():
    import momo
    import torch
    out = compute()
    meta = dict(torch=torch.__version__, momo=momo.__version__, steps=STEPS, batch_seed=BATCH_SEED,
                problems={k: [v[0], v[1], v[2], v[3]] for k, v in PROBLEMS.items()},
                cases={k: [v[0], v[1]] for k, v in CASES.items()})
    np.savez(OUT, meta=np.asarray(json.dumps(meta)), **out)
    print(f"wrote {OUT} ({len(out)} arrays)")


if __name__ == "__main__":
    sys.exit(main())
