"""Golden trajectories of geoopt.optim.RiemannianAdam (geoopt 0.5.1) on products of spheres and balls.

Run: python tests/golden/make_riemannian_adam_golden.py  -> tests/golden/riemannian_adam.npz
(needs torch, geoopt and this repository on the path). Float64, 25 steps, Adam and AMSGrad,
params after every step.

* Sphere: f(U, b) = -sum_i u_i^T A u_i + 0.5 |b - 1|^2 with U (3 x 5) rows on the unit sphere
  (geoopt.Sphere: projection retraction + projection transport) and b (4,) Euclidean.
* Poincaré ball, keys ``tree_*``: the ``poincare_tree`` problem of reference.problems (31-node
  binary tree, 2-D unit ball, c = 1, Nickel & Kiela's loss re-written in torch below), from its
  ``init(0)``, lr = 0.1, with ``PoincareBallExact`` (exp map + parallel transport: our
  ``retraction="exp"``) and ``PoincareBall`` (retraction x + u + parallel transport:
  ``retraction="projection"``).
* Poincaré ball, keys ``lin_*``: f(X, b) = -<T, X> + 0.5 |b - 1|^2 with X (4 x 3) rows in the ball of
  curvature -0.5 and b (4,) Euclidean, weight_decay = 0.01 (coupled, geoopt adds it to the Euclidean
  gradient), lr = 3: the linear term pushes every row to the boundary, so geoopt's clipping to
  norm (1 - 1e-5)/sqrt(c) is active in the later steps.
"""
import os

import sys

import numpy as np
import torch
import geoopt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

STEPS = 25


def problem():
    rng = np.random.default_rng(0)
    B = rng.standard_normal((5, 5))
    A = B @ B.T
    U = rng.standard_normal((3, 5))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    b = rng.standard_normal(4)
    return A, U, b


def main():
    A, U0, b0 = problem()
    out = {"A": A, "U0": U0, "b0": b0}
    for amsgrad in (False, True):
        At = torch.tensor(A)
        U = geoopt.ManifoldParameter(torch.tensor(U0.copy()), manifold=geoopt.Sphere())
        b = torch.nn.Parameter(torch.tensor(b0.copy()))
        opt = geoopt.optim.RiemannianAdam([U, b], lr=0.05, betas=(0.9, 0.99), eps=1e-8, amsgrad=amsgrad)
        Us, bs = [], []
        for _ in range(STEPS):
            opt.zero_grad()
            loss = -torch.einsum("ij,jk,ik->", U, At, U) + 0.5 * ((b - 1.0) ** 2).sum()
            loss.backward()
            opt.step()
            Us.append(U.detach().numpy().copy())
            bs.append(b.detach().numpy().copy())
        tag = "amsgrad" if amsgrad else "adam"
        out[f"{tag}_U"], out[f"{tag}_b"] = np.array(Us), np.array(bs)
    out.update(ball_goldens())
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "riemannian_adam.npz")
    np.savez(path, **out)
    print("wrote", path)


def _run_geoopt(params, manifolds, loss_fn, steps, **hp):
    """geoopt.optim.RiemannianAdam from ``params`` (dict of arrays); ``manifolds[k]`` or Euclidean."""
    tp = {k: (geoopt.ManifoldParameter(torch.tensor(v.copy()), manifold=manifolds[k]) if k in manifolds
              else torch.nn.Parameter(torch.tensor(v.copy()))) for k, v in params.items()}
    opt = geoopt.optim.RiemannianAdam(list(tp.values()), **hp)
    traj = {k: [] for k in tp}
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(tp).backward()
        opt.step()
        for k, v in tp.items():
            traj[k].append(v.detach().numpy().copy())
    return {k: np.array(v) for k, v in traj.items()}


def tree_loss(data, c):
    """Nickel & Kiela's loss of reference.problems "poincare_tree", in torch (mean over pairs)."""
    u, v = torch.tensor(data["u"]), torch.tensor(data["v"])
    mask = torch.tensor(data["mask"])

    def loss(p):
        X = p["embedding"]
        xu, y = X[u][:, None, :], X[None, :, :]
        q = c * ((xu - y) ** 2).sum(-1) / ((1 - c * (xu ** 2).sum(-1)) * (1 - c * (y ** 2).sum(-1)))
        z = 1 + 2 * (q + (1 - mask))
        D = torch.log(z + torch.sqrt((z - 1) * (z + 1))) / c ** 0.5
        d_uv = D[torch.arange(len(u)), v]
        return (d_uv + torch.log((mask * torch.exp(-D)).sum(1))).mean()
    return loss


def ball_goldens():
    from reference import problems
    torch.set_default_dtype(torch.float64)   # geoopt's c is a float64 tensor then, not a float32 one
    out = {}
    p = problems.create("poincare_tree")
    X0 = p.init(0)["embedding"]
    out["tree_X0"] = X0
    rng = np.random.default_rng(1)
    L = {"X": rng.uniform(-0.4, 0.4, (4, 3)), "b": rng.standard_normal(4)}
    T = rng.standard_normal((4, 3))
    out.update(lin_X0=L["X"], lin_b0=L["b"], lin_T=T)
    Tt = torch.tensor(T)
    for retraction, cls in (("exp", geoopt.PoincareBallExact), ("projection", geoopt.PoincareBall)):
        for amsgrad in (False, True):
            tag = f"{retraction}_{'amsgrad' if amsgrad else 'adam'}"
            tr = _run_geoopt({"embedding": X0}, {"embedding": cls(c=1.0)}, tree_loss(p.data, 1.0), STEPS,
                             lr=0.1, betas=(0.9, 0.99), eps=1e-8, amsgrad=amsgrad)
            out[f"tree_{tag}"] = tr["embedding"]
            tr = _run_geoopt(L, {"X": cls(c=0.5)}, lambda q: -(Tt * q["X"]).sum() + 0.5 * ((q["b"] - 1) ** 2).sum(),
                             STEPS, lr=3.0, betas=(0.9, 0.99), eps=1e-8, amsgrad=amsgrad, weight_decay=0.01)
            out[f"lin_{tag}_X"], out[f"lin_{tag}_b"] = tr["X"], tr["b"]
    return out


if __name__ == "__main__":
    main()
