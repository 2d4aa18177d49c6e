"""Regenerate ``tests/golden/second_order.npz``: float64 trajectories of
pytorch_optimizer's AdaHessian, the peer of ``reference/optim/adahessian.py``,
which ``tests/test_second_order.py`` checks ``reference.optim`` against.

    python tests/golden/make_second_order_golden.py

torch and pytorch_optimizer are needed only here (and in the optional ``peer``
test that reruns ``compute()``); the tests read the committed ``.npz``.

AdaHessian draws a random Rademacher probe every step, so the two
implementations can only agree if they use the same probes. The peer draws
them with ``torch.randint_like(p, 0, 2) * 2 - 1``, one tensor per parameter;
here ``torch.randint_like`` is replaced, while the peer steps, by a function
that hands out the probes ``reference.optim.adahessian`` draws for that step
(``probe_generator(seed, t)``, one vector over all parameters in key order,
cut into the parameters' pieces in the same order). The peer then computes
its own Hessian-vector products with torch's autograd (``loss.backward(
create_graph=True)``), on the loss written here in torch: so the file checks
the gradient, the HVP and the update, not only the update.

Problems (``reference.problems``, started at ``problem.init(seed)``):
Rosenbrock (a vector), a tanh MLP on Gaussian blobs (2-D weight matrices and
biases, cross-entropy) and a deep linear network (a product of matrices).
The problem's initial params, loss and gradient are stored too, so a test
can tell "the problem changed" (regenerate) from "the optimizer is wrong".

pytorch_optimizer's AdaHessian has no spatial averaging (Eq. 9): the cases use
vectors and matrices, where our default ``spatial_average="kernel"`` does not
average either. Its default ``eps`` is 1e-16 and ``lr`` 0.1; the cases pass the
paper's values explicitly.

Keys: ``traj/<case>/<problem>/<param>`` (``STEPS + 1`` rows: the initial
params, then the params after each step), ``problem/<problem>/init/<param>``,
``problem/<problem>/loss0``, ``problem/<problem>/grad0/<param>`` and ``meta``
(JSON: versions, steps, problems, cases).
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _peer import jsonable, problem_records, problems_meta, write_golden  # noqa: E402  (shared by every generator here)

STEPS = 25
OUT = pathlib.Path(__file__).with_name("second_order.npz")

#: name -> (problem name, its settings, init seed)
PROBLEMS = {
    "rosenbrock": ("rosenbrock", dict(), 0),
    "mlp": ("blobs", dict(hidden=(4,), activation="tanh", n_train=32, n_test=8, seed=0), 0),
    "deep_linear": ("deep_linear_network", dict(sizes=(3, 4, 2), n_train=16, seed=0), 1),
}

#: case -> (reference optimizer name, its hyperparameters, peer class name, peer keyword arguments)
CASES = {
    "adahessian": ("adahessian", dict(lr=0.15, seed=0),
                   "AdaHessian", dict(lr=0.15, betas=(0.9, 0.999), eps=1e-4, hessian_power=1.0)),
    "adahessian_options": ("adahessian", dict(lr=0.05, beta1=0.8, beta2=0.99, eps=1e-6, hessian_power=0.5,
                                              weight_decay=0.1, seed=7),
                           "AdaHessian", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, hessian_power=0.5,
                                              weight_decay=0.1, weight_decouple=True, fixed_decay=False)),
    "adahessian_samples": ("adahessian", dict(lr=0.1, n_samples=3, seed=3),
                           "AdaHessian", dict(lr=0.1, eps=1e-4, num_samples=3)),
}


def make_problem(key):
    import reference.problems as problems
    name, settings, seed = PROBLEMS[key]
    return problems.create(name, **settings), seed


def torch_loss(torch, problem_key, problem, tparams):
    """The problem's loss written in torch (float64), on the same data."""
    F = torch.nn.functional
    if problem_key == "rosenbrock":
        w = tparams["w"]
        return torch.sum(problem.b * (w[1:] - w[:-1] ** 2) ** 2 + (problem.a - w[:-1]) ** 2)
    x = torch.tensor(problem.data["x"], dtype=torch.float64)
    if problem_key == "mlp":
        h = x
        n_layers = len(problem.sizes) - 1
        for i in range(n_layers):
            h = h @ tparams[f"{i}.weight"].T + tparams[f"{i}.bias"]
            if i < n_layers - 1:
                h = torch.tanh(h)
        return F.cross_entropy(h, torch.tensor(problem.data["y"], dtype=torch.int64))
    if problem_key == "deep_linear":
        h = x
        for j in range(problem.depth):
            h = h @ tparams[f"{j}.weight"].T
        y = torch.tensor(problem.data["y"], dtype=torch.float64)
        return torch.mean(0.5 * torch.sum((h - y) ** 2, dim=1))
    raise KeyError(problem_key)


@contextlib.contextmanager
def fed_probes(torch, pieces):
    """Within the block, ``torch.randint_like(p, 0, 2)`` returns the next of ``pieces`` (0/1 values)."""
    original = torch.randint_like
    queue = list(pieces)

    def randint_like(p, low, high=None, **kw):
        assert (low, high) == (0, 2), (low, high)
        piece = queue.pop(0)
        assert tuple(piece.shape) == tuple(p.shape), (piece.shape, p.shape)
        return torch.tensor(piece, dtype=p.dtype)

    torch.randint_like = randint_like
    try:
        yield
    finally:
        torch.randint_like = original
    assert not queue, f"{len(queue)} probe pieces were not used"


def adahessian_probes(params, seed, t, n_samples):
    """Step ``t``'s probes as 0/1 pieces, one per parameter per sample, in the order the peer asks."""
    from reference.optim.adahessian import probe_generator
    rng = probe_generator(seed, t)
    n = sum(v.size for v in params.values())
    pieces = []
    for _ in range(n_samples):   # the draw of reference.curvature.diagonal (via _FlatHessian.draw)
        z = rng.integers(0, 2, size=n).astype(np.float64) * 2.0 - 1.0
        i = 0
        for v in params.values():
            pieces.append((z[i:i + v.size].reshape(v.shape) + 1.0) / 2.0)
            i += v.size
    return pieces


def peer_trajectory(torch, case, problem_key, steps=STEPS):
    """``{param: (steps + 1, ...) array}``: the peer's trajectory with our probes and its own HVPs."""
    import pytorch_optimizer

    ours, hp, peer_name, peer_kw = CASES[case]
    problem, seed = make_problem(problem_key)
    init = problem.init(seed)
    tparams = {k: torch.tensor(v.copy(), dtype=torch.float64, requires_grad=True) for k, v in init.items()}
    opt = getattr(pytorch_optimizer, peer_name)(list(tparams.values()), **peer_kw)
    rows = {k: [v.copy()] for k, v in init.items()}
    for t in range(1, steps + 1):
        opt.zero_grad()
        loss = torch_loss(torch, problem_key, problem, tparams)
        loss.backward(create_graph=True)
        with fed_probes(torch, adahessian_probes(init, hp.get("seed", 0), t, hp.get("n_samples", 1))):
            opt.step()
        for k, p in tparams.items():
            p.grad = None
            rows[k].append(p.detach().numpy().copy())
    return {k: np.stack(v) for k, v in rows.items()}


def compute():
    """``{key: array}`` for every case (and ``meta``), computed with the installed peers."""
    import torch

    out = {}
    out.update(problem_records(PROBLEMS, make_problem))
    for case in CASES:
        for pk in PROBLEMS:
            for k, rows in peer_trajectory(torch, case, pk).items():
                out[f"traj/{case}/{pk}/{k}"] = rows

    meta = {"torch_version": torch.__version__,
            "pytorch_optimizer_version": importlib.metadata.version("pytorch_optimizer"),
            "steps": STEPS,
            "problems": problems_meta(PROBLEMS),
            "cases": {c: {"optimizer": n, "hparams": jsonable(hp), "peer": pn, "peer_hparams": jsonable(pkw)}
                      for c, (n, hp, pn, pkw) in CASES.items()}}
    out["meta"] = np.asarray(json.dumps(meta))
    return out


if __name__ == "__main__":
    write_golden(OUT, compute)
