"""Pieces every golden-file generator here shares (imported by the make_*_golden.py scripts).

The generators run a peer (torch.optim, pytorch-optimizer, official code) on the
reference problems and store its trajectories; these helpers are the parts that
do not depend on the peer: the problem records, the fed-trajectory loop, the
JSON metadata of the problem table, and writing the file.
"""
import pathlib
import sys

import numpy as np


def problem_records(problems, make_problem, with_loss=True):
    """``problem/{key}/init|grad0[/loss0]`` arrays: the start the goldens were made from.

    The tests compare them with the current problems, so a changed problem is
    reported as such rather than as an optimizer mismatch.
    """
    out = {}
    for pk in problems:
        problem, seed = make_problem(pk)
        init = problem.init(seed)
        loss, grads = problem.oracle()(init)
        if with_loss:
            out[f"problem/{pk}/loss0"] = np.asarray(loss, dtype=np.float64)
        for k in init:
            out[f"problem/{pk}/init/{k}"] = init[k]
            out[f"problem/{pk}/grad0/{k}"] = np.asarray(grads[k])
    return out


def fed_trajectory(torch, tparams, init, oracle, opt, steps, before_step=None):
    """``{param: (steps + 1, ...) array}``: the torch optimizer ``opt`` fed the reference oracle's gradients.

    ``before_step()`` runs between setting ``.grad`` and ``opt.step()`` (e.g. gradient clipping).
    """
    rows = {k: [v.copy()] for k, v in init.items()}
    for _ in range(steps):
        params = {k: p.detach().numpy().copy() for k, p in tparams.items()}
        _, grads = oracle(params)
        for k, p in tparams.items():
            p.grad = torch.tensor(np.asarray(grads[k]).copy(), dtype=torch.float64)
        if before_step is not None:
            before_step()
        opt.step()
        for k, p in tparams.items():
            rows[k].append(p.detach().numpy().copy())
    return {k: np.stack(v) for k, v in rows.items()}


def jsonable(hp):
    """Hyperparameters as JSON values (tuples become lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in hp.items()}


def problems_meta(problems):
    """The metadata entry of a generator's ``{key: (name, settings, seed)}`` problem table."""
    return {k: {"name": n, "settings": jsonable(s), "seed": sd} for k, (n, s, sd) in problems.items()}


def write_golden(out_path, compute):
    """Run ``compute()`` with the repository importable and write its arrays to ``out_path`` (.npz)."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
    out = compute()
    np.savez_compressed(out_path, **out)
    print(f"wrote {out_path} ({out_path.stat().st_size} bytes, {len(out)} arrays)")
