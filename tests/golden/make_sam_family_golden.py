"""Regenerate ``tests/golden/sam_family.npz``: float64 trajectories of the peer
implementation that ``tests/test_sam_family.py`` checks ``reference.optim.sam``
against (pytorch_optimizer.SAM around torch.optim.SGD / Adam, plain and adaptive).

    python tests/golden/make_sam_family_golden.py

Needs torch and pytorch_optimizer (4.1.0 when this file was made). The tests read
the committed ``.npz`` and never import them.

How the peer is driven: pytorch_optimizer.SAM is a two-pass optimizer. Before each
step the torch params' ``.grad`` hold the gradient at ``w`` (computed here by the
*reference oracle* at the torch params' values); ``SAM.step(closure)`` then runs
``first_step`` (perturb the params in place by ``e_hat``), the closure (which again
evaluates the reference oracle, now at the perturbed params, and writes the result
into ``.grad``) and ``second_step`` (restore ``w`` and run the base optimizer). So
the file checks the optimizer's arithmetic alone, with the same gradients.

Peer settings that differ from its defaults, and why (each is also in the case's
``note`` in ``meta``):

* ``foreach=False``: the per-parameter code path (the same arithmetic).
* pytorch_optimizer computes the gradient norm of ``first_step`` in float32 (its
  ``get_global_gradient_norm`` casts the per-tensor norms with ``.float()``), which
  puts a relative error of ~1e-7 on the perturbation in float64 runs. The module's
  ``get_global_gradient_norm`` is replaced by the same computation in float64
  (sum of squared per-tensor norms, of ``|p| * grad`` for ``adaptive=True``), so
  the trajectories can be compared to 1e-10. Everything else is the peer's code.
* ``adaptive=True`` is the peer's ``T_w = |w|``: the library runs it as
  ``adaptive=True, eta=0``.

Keys: ``traj/<case>/<problem>/<param>`` (``STEPS + 1`` rows: the initial params,
then the params after each step), ``problem/<problem>/init/<param>``,
``problem/<problem>/loss0``, ``problem/<problem>/grad0/<param>`` and ``meta``
(JSON: versions, steps, problems, cases with the library optimizer, its
hyperparameters, the peer's settings and the problems the case runs on).
"""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _peer import jsonable, problem_records, problems_meta, write_golden  # noqa: E402  (shared by every generator here)

STEPS = 25
OUT = pathlib.Path(__file__).with_name("sam_family.npz")

#: name -> (problem name, its settings, init seed)
PROBLEMS = {
    "quadratic": ("quadratic", dict(dim=6, condition_number=10.0, noise=0.0, seed=0), 0),
    "mlp": ("two_spirals", dict(hidden=(4,), n_train=32, n_test=8, seed=0), 0),
    "deep_linear": ("deep_linear_network", dict(), 0),
}
ALL = tuple(PROBLEMS)

#: case -> (library hparams, peer kwargs, problems, note). The inner optimizer is written
#: ("library name", hparams) / ("torch.optim class", kwargs).
CASES = {
    "sam_sgd": (dict(inner=("sgd", dict(lr=0.1, momentum=0.9)), rho=0.05),
                dict(base=("SGD", dict(lr=0.1, momentum=0.9)), rho=0.05), ALL,
                "the paper's setting: SGD with momentum as the base optimizer"),
    "sam_sgd_weight_decay": (dict(inner=("sgd", dict(lr=0.05, momentum=0.9, weight_decay=5e-3)), rho=0.1),
                             dict(base=("SGD", dict(lr=0.05, momentum=0.9, weight_decay=5e-3)), rho=0.1), ALL,
                             "weight decay in the base optimizer, outside the perturbation"),
    "asam_sgd": (dict(inner=("sgd", dict(lr=0.1, momentum=0.9)), rho=0.5, adaptive=True, eta=0.0),
                 dict(base=("SGD", dict(lr=0.1, momentum=0.9)), rho=0.5, adaptive=True), ALL,
                 "adaptive (ASAM) with the peer's T_w = |w|, i.e. eta = 0"),
    "sam_adam": (dict(inner=("adam", dict(lr=0.02)), rho=0.1),
                 dict(base=("Adam", dict(lr=0.02)), rho=0.1), ALL,
                 "Adam as the base optimizer"),
}


def make_problem(key):
    import reference.problems as problems
    name, settings, seed = PROBLEMS[key]
    return problems.create(name, **settings), seed


def _patch_float64_norm(torch):
    """pytorch_optimizer.SAM's first_step with its gradient norm computed in float64 (see the docstring)."""
    import pytorch_optimizer.optimizer.sam as sam_module

    def get_global_gradient_norm(param_groups, device=None, *, weight_adaptive=False):
        total = torch.zeros(1, dtype=torch.float64)
        for group in param_groups:
            adaptive = weight_adaptive and group.get("adaptive", False)
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad * p.abs() if adaptive else p.grad
                total = total + g.norm() ** 2
        return total

    sam_module.get_global_gradient_norm = get_global_gradient_norm


def peer_trajectory(torch, case, problem_key, steps=STEPS):
    """``{param: (steps + 1, ...) array}``: pytorch_optimizer.SAM fed the reference oracle's gradients."""
    import pytorch_optimizer as po
    _, kw, _, _ = CASES[case]
    kw = dict(kw)
    base_name, base_kw = kw.pop("base")
    problem, seed = make_problem(problem_key)
    oracle = problem.oracle()
    init = problem.init(seed)
    tparams = {k: torch.tensor(v.copy(), dtype=torch.float64) for k, v in init.items()}
    opt = po.SAM(list(tparams.values()), getattr(torch.optim, base_name), foreach=False, **kw, **base_kw)

    def closure():
        """Evaluate the reference oracle at the torch params' current values; write ``.grad``."""
        params = {k: p.detach().numpy().copy() for k, p in tparams.items()}
        loss, grads = oracle(params)
        for k, p in tparams.items():
            p.grad = torch.tensor(np.asarray(grads[k]).copy(), dtype=torch.float64)
        return loss

    rows = {k: [v.copy()] for k, v in init.items()}
    for _ in range(steps):
        closure()                      # the gradient at w, which first_step reads
        opt.step(closure)              # perturb, closure at w + e_hat, restore, base step
        for k, p in tparams.items():
            rows[k].append(p.detach().numpy().copy())
    return {k: np.stack(v) for k, v in rows.items()}


def compute():
    """``{key: array}`` for every case (and ``meta``), computed with the installed peer."""
    import torch
    torch.set_default_dtype(torch.float64)
    _patch_float64_norm(torch)

    out = {}
    out.update(problem_records(PROBLEMS, make_problem))
    for case, (_, _, probs, _) in CASES.items():
        for pk in probs:
            for k, rows in peer_trajectory(torch, case, pk).items():
                out[f"traj/{case}/{pk}/{k}"] = rows

    from importlib.metadata import version
    versions = {"torch": torch.__version__, "pytorch_optimizer": version("pytorch-optimizer")}
    meta = {"versions": versions, "steps": STEPS,
            "problems": problems_meta(PROBLEMS),
            "cases": {c: {"optimizer": "sam", "hparams": jsonable(hp), "peer": "pytorch_optimizer.SAM",
                          "peer_kwargs": jsonable(kw), "problems": list(probs), "note": note}
                      for c, (hp, kw, probs, note) in CASES.items()}}
    out["meta"] = np.asarray(json.dumps(meta))
    return out


if __name__ == "__main__":
    write_golden(OUT, compute)
