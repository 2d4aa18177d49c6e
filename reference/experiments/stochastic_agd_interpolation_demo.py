"""Stochastic accelerated gradient descent under interpolation.

Demonstrates "Faster Convergence of Stochastic Accelerated Gradient Descent under Interpolation"
(Aaron Mishkin, Mert Pilanci, Mark Schmidt, 2024, arXiv:2404.02378).

When a model can fit every example exactly (*interpolation*), stochastic
gradients vanish at the optimum and their noise shrinks with the full
gradient: the *strong growth condition* ``E ||grad f_B(x)||^2 <= rho ||grad
f(x)||^2`` holds for some ``rho >= 1``. Under it SGD with step ``1 / (rho L)``
converges linearly at rate ``1 - mu / (rho L)``. Prior analyses of
stochastic Nesterov acceleration under the same condition gave
``1 - sqrt(mu / (rho^2 L))``, which can be *worse* than SGD when ``rho``
is large; the paper's estimating-sequence analysis improves the dependence
to ``sqrt(rho)``: ``1 - sqrt(mu / (rho L))``, an acceleration by a square
root of ``rho L / mu`` over SGD.

The experiment: least squares ``f(x) = 1/(2n) ||A x - b||^2`` with mini-batches
of ``batch`` rows drawn with replacement,

* *interpolating*: ``b = A x*`` (every residual vanishes at ``x*``), for several condition numbers
  of ``A^T A / n``;
* *not interpolating*: ``b = A x* + noise``; the stochastic gradients do not vanish at the optimum.

For a quadratic the strong growth constant is computed exactly:
``grad f_B(x) = H_B (x - x*)`` under interpolation, so ``rho = lambda_max(H^{-1} E[H_B^2]
H^{-1})`` with ``E[H_B^2] = H^2 + (E[(a a^T)^2] - H^2) / batch``. Both methods use the
step ``eta = 1 / (rho L)``:

    SGD:  x_{k+1} = x_k - eta grad f_B(x_k)
    AGD:  y_k = x_k + beta (x_k - x_{k-1}),   x_{k+1} = y_k - eta grad f_B(y_k),
          beta = (1 - sqrt(mu eta)) / (1 + sqrt(mu eta))

(Nesterov's constant-momentum scheme for strongly convex functions with ``L``
replaced by ``rho L``, the form the estimating sequences reduce to with a
constant step; the paper's general method also covers convex functions and
other stochastic steps.) ``run()`` counts the iterations each method needs to
bring ``f - f*`` below ``tol`` times its initial value; expected: linear
convergence of both under interpolation, with AGD's count growing like
``sqrt(rho kappa)`` and SGD's like ``rho kappa``; without interpolation both
stall at a noise floor and acceleration buys nothing. Settings are ours.
"""
from __future__ import annotations

import numpy as np

from . import register, with_defaults

register(__name__, title="Faster Convergence of Stochastic Accelerated Gradient Descent under Interpolation",
         authors="Mishkin, Pilanci, Schmidt", year=2024, arxiv="2404.02378", family="optimizer-first-order")

__all__ = ["least_squares", "constants", "train", "run", "plot", "METHODS", "DEFAULTS"]

METHODS = ("agd", "sgd")

DEFAULTS = dict(n=100, d=10, batch=10, kappas=(10.0, 100.0), seeds=(0, 1, 2), tol=1e-10, max_steps=60000,
                noise=0.1, noisy_kappa=100.0, noisy_steps=20000, check_every=10)


def least_squares(kappa, seed, n=100, d=10, noise=0.0):
    """``(A, b)``: rows ``a_i`` with ``A^T A / n`` of condition number about ``kappa``; ``b = A x* + noise``."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    A = rng.standard_normal((n, d)) @ q @ np.diag(np.geomspace(1.0, 1.0 / np.sqrt(kappa), d)) @ q.T
    x_star = rng.standard_normal(d)
    return A, A @ x_star + noise * rng.standard_normal(n)


def constants(A, batch):
    """``(L, mu, rho)``: extreme eigenvalues of ``H = A^T A / n`` and the strong growth constant of
    mini-batches of size ``batch`` (drawn with replacement)."""
    n = A.shape[0]
    H = A.T @ A / n
    eig = np.linalg.eigvalsh(H)
    fourth = np.einsum("i,ij,ik->jk", np.einsum("ij,ij->i", A, A), A, A) / n     # E[(a a^T)^2]
    EHB2 = H @ H + (fourth - H @ H) / batch
    Hinv = np.linalg.inv(H)
    return float(eig[-1]), float(eig[0]), float(np.linalg.eigvalsh(Hinv @ EHB2 @ Hinv)[-1])


def train(method, A, b, batch, steps, seed, tol=0.0, check_every=10):
    """Run SGD or AGD with ``eta = 1 / (rho L)``; returns ``(relative suboptimality every
    check_every steps, iterations to reach tol or steps)``."""
    n, d = A.shape
    L, mu, rho = constants(A, batch)
    x_star = np.linalg.lstsq(A, b, rcond=None)[0]
    f_star = 0.5 * np.mean((A @ x_star - b) ** 2)
    f0 = 0.5 * np.mean(b ** 2) - f_star                              # x_0 = 0
    eta = 1.0 / (rho * L)
    q = np.sqrt(mu * eta)
    beta = (1.0 - q) / (1.0 + q) if method == "agd" else 0.0
    rng = np.random.default_rng(seed)
    x = x_prev = np.zeros(d)
    rel = [1.0]
    for k in range(steps):
        idx = rng.integers(0, n, batch)
        y = x + beta * (x - x_prev)
        g = A[idx].T @ (A[idx] @ y - b[idx]) / batch
        x_prev, x = x, y - eta * g
        if (k + 1) % check_every == 0:
            rel.append((0.5 * np.mean((A @ x - b) ** 2) - f_star) / f0)
            if rel[-1] <= tol:
                return np.array(rel), k + 1
    return np.array(rel), steps


def run(**settings):
    """Returns ``iterations`` (``[method, kappa, seed]`` to reach ``tol``, ``max_steps`` if not),
    ``constants`` (``[kappa, seed, (L, mu, rho)]``), ``curves`` (``[method][kappa][seed]`` relative
    suboptimality every ``check_every`` steps), ``noisy`` (``[method, seed, check]``, the
    non-interpolating runs), ``noisy_floor`` (``[method, seed]``: the smallest relative
    suboptimality reached), and the ``settings``."""
    s = with_defaults(__name__, DEFAULTS, settings)
    iters = np.zeros((len(METHODS), len(s["kappas"]), len(s["seeds"])), dtype=int)
    consts = np.zeros((len(s["kappas"]), len(s["seeds"]), 3))
    curves = [[[None] * len(s["seeds"]) for _ in s["kappas"]] for _ in METHODS]
    for j, kappa in enumerate(s["kappas"]):
        for k, seed in enumerate(s["seeds"]):
            A, b = least_squares(kappa, seed, s["n"], s["d"])
            consts[j, k] = constants(A, s["batch"])
            for i, method in enumerate(METHODS):
                curves[i][j][k], iters[i, j, k] = train(method, A, b, s["batch"], s["max_steps"], seed, s["tol"],
                                                        s["check_every"])
    noisy = []
    for i, method in enumerate(METHODS):
        row = []
        for seed in s["seeds"]:
            A, b = least_squares(s["noisy_kappa"], seed, s["n"], s["d"], noise=s["noise"])
            row.append(train(method, A, b, s["batch"], s["noisy_steps"], seed, 0.0, s["check_every"])[0])
        noisy.append(row)
    noisy = np.array(noisy)
    return {"settings": s, "methods": METHODS, "kappas": np.array(s["kappas"]), "iterations": iters,
            "constants": consts, "curves": curves, "noisy": noisy, "noisy_floor": noisy.min(axis=-1)}


def plot(result, ax=None):
    """Relative suboptimality against iterations: interpolating (solid, the largest kappa) and
    non-interpolating (dashed), for seed 0."""
    import matplotlib.pyplot as plt
    from .. import plot as rplot

    with rplot.style():
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        every = result["settings"]["check_every"]
        for i, method in enumerate(result["methods"]):
            c = result["curves"][i][-1][0]
            ax.plot(np.arange(len(c)) * every, c, color=rplot.COLORS[i],
                    label=f"{method}, interpolation (kappa={result['kappas'][-1]:g})")
            c = result["noisy"][i, 0]
            ax.plot(np.arange(len(c)) * every, c, "--", color=rplot.COLORS[i], label=f"{method}, noisy targets")
        ax.set_yscale("log")
        ax.set_xscale("symlog", linthresh=100)
        ax.set_xlabel("iteration")
        ax.set_ylabel("(f - f*) / (f_0 - f*)")
        ax.set_title("stochastic AGD vs SGD, step 1/(rho L)")
        ax.legend()
    return ax
