"""Regenerate ``tests/golden/momentum_family.npz``: float64 trajectories of the peer
implementations that ``tests/test_momentum_family.py`` checks the "momentum family"
of ``reference.optim`` against (lookahead, ademamix, madgrad, mars, sgd_sai,
lars/tvlars, adago).

    python tests/golden/make_momentum_family_golden.py

Needs torch, pytorch_optimizer (4.1.0 when this file was made), madgrad (the
official package) and sgd-sai (the official package, ``pip install sgd-sai``).
The tests read the committed ``.npz`` and never import them.

As in ``make_optim_golden.py``, every peer is fed the *reference oracle's*
gradients (the torch params are copied out at each step, the problem's oracle
is evaluated, and its gradients are written into ``p.grad``), so the file
checks the optimizer update alone. ``STEPS`` steps from ``problem.init(seed)``.

Peer settings that differ from the library's defaults, and why (each is also
written in the case's ``note`` in ``meta``):

* pytorch_optimizer optimizers run with ``foreach=False`` (the per-parameter
  code path; the same arithmetic).
* MADGRAD: both peers use ``lr + eps`` in place of ``lr``; the
  ``madgrad_paper*`` cases give the peers ``lr - eps`` so that they run the
  paper's ``lr`` (a one-ulp difference at most), the ``madgrad_official*``
  cases compare with ``add_eps_to_lr=True``.
* MARS (the peer is the approximate variant): ``eps = 0``, because
  pytorch_optimizer adds ``eps`` before the bias correction (the paper and the
  official code after it), and its ``1e-15`` under the square root is switched
  off (``exp_avg_sq_eps = 0``); ``optimize_1d=True`` so that MARS runs on the
  1-D parameters too, as in the paper's algorithm.
* AdaGO: pytorch_optimizer's Newton-Schulz runs in bfloat16 and normalises by
  ``max(||M||, 1e-7)``; it is patched to run in float64 with a 1e-300 floor
  (the library's ``ns_eps = 0`` then normalises identically), and its
  ``lr * sqrt(max(1, rows / cols))`` shape factor (not in the paper) is
  patched to 1. The library runs with ``denominator="v_squared"``, the peer's
  accumulator convention (see ``reference/optim/adago.py``).

Keys: ``traj/<case>/<problem>/<param>`` (``STEPS + 1`` rows: the initial
params, then the params after each step), ``problem/<problem>/init/<param>``,
``problem/<problem>/loss0``, ``problem/<problem>/grad0/<param>`` and ``meta``
(JSON: versions, steps, problems, cases with the library optimizer, its
hyperparameters, the peer and the problems the case runs on).
"""
from __future__ import annotations

import functools
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _peer import fed_trajectory, jsonable, problem_records, problems_meta, write_golden  # noqa: E402  (shared by every generator here)

STEPS = 30
OUT = pathlib.Path(__file__).with_name("momentum_family.npz")

#: name -> (problem name, its settings, init seed)
PROBLEMS = {
    "quadratic": ("quadratic", dict(dim=6, condition_number=10.0, noise=0.0, seed=0), 0),
    "mlp": ("two_spirals", dict(hidden=(4,), n_train=32, n_test=8, seed=0), 0),
    "deep_linear": ("deep_linear_network", dict(), 0),
    "sensing": ("matrix_sensing", dict(), 0),
}
VECTOR_AND_MLP = ("quadratic", "mlp")
MATRICES = ("deep_linear", "sensing")

#: case -> (library optimizer, its hyperparameters, peer, peer kwargs, problems)
#: An inner optimizer is written ("name", hparams) (for the library) / ("torch name", kwargs) (for the peer).
CASES = {
    # Lookahead (pytorch_optimizer.Lookahead around torch.optim.SGD / Adam)
    "lookahead_sgd": ("lookahead", dict(inner=("sgd", dict(lr=0.05, momentum=0.9)), k=5, alpha=0.5),
                      "po_lookahead", dict(inner=("SGD", dict(lr=0.05, momentum=0.9)), k=5, alpha=0.5),
                      VECTOR_AND_MLP),
    "lookahead_adam": ("lookahead", dict(inner=("adam", dict(lr=0.05)), k=3, alpha=0.8),
                       "po_lookahead", dict(inner=("Adam", dict(lr=0.05)), k=3, alpha=0.8), VECTOR_AND_MLP),
    # AdEMAMix
    "ademamix": ("ademamix", dict(lr=0.02, beta3=0.999, alpha=5.0),
                 "po_ademamix", dict(lr=0.02, betas=(0.9, 0.999, 0.999), alpha=5.0), VECTOR_AND_MLP),
    "ademamix_warmup": ("ademamix", dict(lr=0.02, beta3=0.999, alpha=8.0, t_alpha_beta3=20, weight_decay=0.1),
                        "po_ademamix", dict(lr=0.02, betas=(0.9, 0.999, 0.999), alpha=8.0, t_alpha_beta3=20,
                                            weight_decay=0.1, weight_decouple=True), VECTOR_AND_MLP),
    # MADGRAD: official package and pytorch_optimizer
    "madgrad_paper_official": ("madgrad", dict(lr=0.02),
                               "madgrad", dict(lr=0.02 - 1e-6), VECTOR_AND_MLP),
    "madgrad_paper_po": ("madgrad", dict(lr=0.02),
                         "po_madgrad", dict(lr=0.02 - 1e-6), VECTOR_AND_MLP),
    "madgrad_official": ("madgrad", dict(lr=0.02, add_eps_to_lr=True),
                         "madgrad", dict(lr=0.02), VECTOR_AND_MLP),
    "madgrad_official_l2": ("madgrad", dict(lr=0.02, momentum=0.5, weight_decay=0.1, eps=1e-4, add_eps_to_lr=True),
                            "madgrad", dict(lr=0.02, momentum=0.5, weight_decay=0.1, eps=1e-4), VECTOR_AND_MLP),
    "madgrad_official_decoupled": ("madgrad", dict(lr=0.02, weight_decay=0.1, decouple_decay=True,
                                                   add_eps_to_lr=True),
                                   "madgrad", dict(lr=0.02, weight_decay=0.1, decouple_decay=True),
                                   VECTOR_AND_MLP),
    "madgrad_po_no_momentum": ("madgrad", dict(lr=0.02, momentum=0.0, add_eps_to_lr=True),
                               "po_madgrad", dict(lr=0.02, momentum=0.0), VECTOR_AND_MLP),
    # MARS (approximate variant; eps = 0, see the module docstring)
    "mars_approx": ("mars", dict(lr=0.01, eps=0.0, variant="approx"),
                    "po_mars", dict(lr=0.01, eps=0.0), VECTOR_AND_MLP + ("deep_linear",)),
    "mars_approx_options": ("mars", dict(lr=0.01, beta1=0.9, beta2=0.95, gamma=0.1, eps=0.0, weight_decay=0.1,
                                         variant="approx"),
                            "po_mars", dict(lr=0.01, betas=(0.9, 0.95), gamma=0.1, eps=0.0, weight_decay=0.1),
                            VECTOR_AND_MLP + ("deep_linear",)),
    # SGD-SaI (official sgd-sai package)
    "sgd_sai": ("sgd_sai", dict(lr=0.02), "sgd_sai", dict(lr=0.02), VECTOR_AND_MLP),
    "sgd_sai_options": ("sgd_sai", dict(lr=0.05, momentum=0.5, weight_decay=0.1, eps=1e-3),
                        "sgd_sai", dict(lr=0.05, momentum=0.5, weight_decay=0.1, eps=1e-3), VECTOR_AND_MLP),
    # LARS, and TVLARS with phi = 1 (pytorch_optimizer.LARS)
    "lars": ("lars", dict(lr=1.0, weight_decay=5e-4, trust_coefficient=1e-2, exclude_vectors=True),
             "po_lars", dict(lr=1.0, weight_decay=5e-4, trust_coefficient=1e-2), VECTOR_AND_MLP + MATRICES),
    "tvlars_phi1": ("tvlars", dict(lr=1.0, weight_decay=5e-4, trust_coefficient=1e-2, exclude_vectors=True,
                                   alpha=0.0, lmbda=0.0, gamma_min=0.0),
                    "po_lars", dict(lr=1.0, weight_decay=5e-4, trust_coefficient=1e-2), VECTOR_AND_MLP + MATRICES),
    # AdaGO (pytorch_optimizer.AdaGO, patched as described above)
    "adago": ("adago", dict(lr=0.05, ns_eps=0.0, denominator="v_squared"),
              "po_adago", dict(lr=0.05), MATRICES),
    "adago_options": ("adago", dict(lr=0.02, momentum=0.8, gamma=1.0, eps=1e-3, weight_decay=0.1, ns_eps=0.0,
                                    denominator="v_squared"),
                      "po_adago", dict(lr=0.02, momentum=0.8, gamma=1.0, eps=1e-3, weight_decay=0.1), MATRICES),
}


def make_problem(key):
    import reference.problems as problems
    name, settings, seed = PROBLEMS[key]
    return problems.create(name, **settings), seed


def _patch_adago(torch):
    """pytorch_optimizer.AdaGO with float64 Newton-Schulz and no shape factor (see the module docstring)."""
    import pytorch_optimizer.optimizer.muon.adago as adago_module
    from pytorch_optimizer.optimizer.utils.matrix import zero_power_via_newton_schulz_5
    adago_module.zero_power_via_newton_schulz_5 = functools.partial(zero_power_via_newton_schulz_5,
                                                                     dtype=torch.float64, eps=1e-300)
    adago_module.get_adjusted_lr = lambda lr, shape, use_adjusted_lr=False: lr


def _patch_mars():
    """pytorch_optimizer.MARS without the 1e-15 under the square root."""
    from pytorch_optimizer.base.optimizer import BaseOptimizer
    from pytorch_optimizer.optimizer.mars import MARS
    original = BaseOptimizer.apply_ams_bound
    MARS.apply_ams_bound = staticmethod(
        lambda ams_bound, exp_avg_sq, max_exp_avg_sq, eps, exp_avg_sq_eps=1e-15:
        original(ams_bound, exp_avg_sq, max_exp_avg_sq, eps, 0.0))


def peer_optimizer(torch, params, peer, kw):
    """The peer optimizer named ``peer`` on the list of torch tensors ``params``."""
    import pytorch_optimizer as po
    kw = dict(kw)
    if peer == "po_lookahead":
        inner_name, inner_kw = kw.pop("inner")
        return po.Lookahead(getattr(torch.optim, inner_name)(params, **inner_kw), **kw)
    if peer == "po_ademamix":
        return po.AdEMAMix(params, foreach=False, **kw)
    if peer == "madgrad":
        import madgrad
        return madgrad.MADGRAD(params, **kw)
    if peer == "po_madgrad":
        return po.MADGRAD(params, foreach=False, **kw)
    if peer == "po_mars":
        _patch_mars()
        return po.MARS(params, mars_type="adamw", optimize_1d=True, foreach=False, **kw)
    if peer == "sgd_sai":
        import sgd_sai
        return sgd_sai.SGD_sai(params, **kw)
    if peer == "po_lars":
        return po.LARS(params, foreach=False, **kw)
    if peer == "po_adago":
        _patch_adago(torch)
        return po.AdaGO([dict(params=params, use_muon=True)], foreach=False, **kw)
    raise KeyError(peer)


def peer_trajectory(torch, case, problem_key, steps=STEPS):
    """``{param: (steps + 1, ...) array}``: the peer's trajectory, fed the reference oracle's gradients."""
    _, _, peer, kw, _ = CASES[case]
    problem, seed = make_problem(problem_key)
    oracle = problem.oracle()
    init = problem.init(seed)
    tparams = {k: torch.tensor(v.copy(), dtype=torch.float64) for k, v in init.items()}
    opt = peer_optimizer(torch, list(tparams.values()), peer, kw)
    return fed_trajectory(torch, tparams, init, oracle, opt, steps)


def compute():
    """``{key: array}`` for every case (and ``meta``), computed with the installed peers."""
    import torch
    torch.set_default_dtype(torch.float64)

    out = {}
    out.update(problem_records(PROBLEMS, make_problem))
    for case, (_, _, _, _, probs) in CASES.items():
        for pk in probs:
            for k, rows in peer_trajectory(torch, case, pk).items():
                out[f"traj/{case}/{pk}/{k}"] = rows

    versions = {"torch": torch.__version__}
    for mod in ("pytorch_optimizer", "madgrad", "sgd_sai"):
        try:
            from importlib.metadata import version
            versions[mod] = version(mod.replace("_", "-"))
        except Exception:  # pragma: no cover
            versions[mod] = "unknown"
    meta = {"versions": versions, "steps": STEPS,
            "problems": problems_meta(PROBLEMS),
            "cases": {c: {"optimizer": n, "hparams": jsonable(hp), "peer": peer, "peer_kwargs": jsonable(kw),
                          "problems": list(probs)}
                      for c, (n, hp, peer, kw, probs) in CASES.items()}}
    out["meta"] = np.asarray(json.dumps(meta))
    return out


if __name__ == "__main__":
    write_golden(OUT, compute)
