"""Golden trajectories of geoopt.optim.RiemannianAdam (geoopt 0.5.1) on a product of spheres.

Run: python tests/golden/make_riemannian_adam_golden.py  -> tests/golden/riemannian_adam.npz
Problem: f(U, b) = -sum_i u_i^T A u_i + 0.5 |b - 1|^2 with U (3 x 5) rows on the unit sphere
(geoopt.Sphere: projection retraction + projection transport) and b (4,) Euclidean; float64,
25 steps, Adam and AMSGrad; params after every step.
"""
import os

import numpy as np
import torch
import geoopt

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
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "riemannian_adam.npz")
    np.savez(path, **out)
    print("wrote", path)


if __name__ == "__main__":
    main()
