"""When is SGD linearly stable at a minimum? It depends on how the per-example Hessians line up.

Demonstrates "A Precise Characterization of SGD Stability Using Loss Surface Geometry" (Gregory
Dexter, Borja Ocejo, Sathiya Keerthi, Aman Gupta, Ayan Acharya, Rajiv Khanna, ICLR 2024,
arXiv:2401.12332).

Near a minimum ``w*`` of ``L = 1/n sum_i l_i`` with per-example Hessians ``H_i`` (``H`` their mean),
SGD with step ``eta`` and batches ``S`` of size ``B`` is, to first order,

    w_{t+1} - w* = (I - eta H_S)(w_t - w*),      H_S = 1/B sum_{i in S} H_i,

a product of random matrices. It is *linearly stable* when ``E ||w_t - w*||^2`` stays bounded. GD
(``B = n``) is stable iff ``eta < 2 / lambda_max(H)``; SGD's threshold also depends on how the
``H_i`` are arranged: the paper's point, formalised there with a *coherence measure* of the ``H_i``
and necessary and sufficient conditions on ``(eta, B, lambda_max(H))``.

**Exact criterion.** The second moment ``C_t = E[(w_t - w*)(w_t - w*)^T]`` evolves linearly,

    C_{t+1} = T(C_t) = C_t - eta (H C_t + C_t H) + eta^2 E[H_S C_t H_S],
    E[H_S (.) H_S] = alpha mean_i H_i (.) H_i + (1 - alpha) H (.) H,

with ``alpha = 1 / B`` for batches drawn with replacement and ``alpha = (n - B) / (B (n - 1))``
without (so ``B = n`` without replacement is GD: ``alpha = 0``). SGD is mean-square stable iff the
spectral radius of ``T`` (on symmetric matrices) is below ``1``; :func:`critical_lr` finds the
largest such ``eta`` by bisection.

**A bracket (derived here, in the spirit of the paper's conditions).** With ``v`` the top
eigenvector of ``H``, ``lambda = lambda_max(H)`` and ``a_i = v^T H_i v`` (mean ``lambda``, variance
``s^2`` over the examples), the Rayleigh quotient of ``T`` at ``v v^T`` is ``(1 - eta lambda)^2 +
eta^2 alpha s^2``, so SGD is *unstable* once

    eta > (2 / lambda) / (1 + alpha s^2 / lambda^2),

and it is *stable* while ``eta <= 2 / max_i lambda_max(H_i)`` (every ``I - eta H_S`` is then a
contraction). ``s^2 / lambda^2`` is a coherence measure along the sharpest direction: ``0`` when
every example curves the same way there (coherent; SGD's threshold is GD's ``2 / lambda``), about
``n - 1`` when each direction is curved by one example only (incoherent; the threshold falls to
about ``2 B / (n lambda)`` for ``B << n``).

``run()``: least squares ``H_i = x_i x_i^T`` in ``d = 8`` dimensions with ``n = 8`` examples,
``x_i`` proportional to ``c u + sqrt(1 - c^2) e_i`` (``u`` one fixed unit vector, ``e_i`` the
standard basis), rescaled so that ``lambda_max(H) = 1``: ``c = 1`` makes all ``H_i`` equal
(coherent), ``c = 0`` orthogonal (incoherent). For each alignment ``c`` and batch size ``B`` it
computes the exact critical step, the bracket, and checks the second-moment recursion against a
Monte Carlo run of the linearised SGD.

Not reproduced: the paper's own coherence measure ``sigma`` and its exact bounds (its text was
not available to us; the bracket above is ours), and its cross-entropy experiments. Note the
direction of the effect: at a fixed ``lambda_max(H)``, *incoherent* per-example Hessians are the
ones that make SGD unstable at small steps (the corpus note for this entry had it the other way
round).
"""
from __future__ import annotations

import numpy as np

from . import register, with_defaults

register(__name__, title="A Precise Characterization of SGD Stability Using Loss Surface Geometry",
         authors="Dexter, Ocejo, Keerthi, Gupta, Acharya, Khanna", year=2024, arxiv="2401.12332",
         family="sharpness")

__all__ = ["second_moment_operator", "spectral_radius", "critical_lr", "bracket", "example_hessians", "alpha",
           "run", "plot", "DEFAULTS"]

DEFAULTS = dict(d=8, n=8, alignments=(1.0, 0.9, 0.7, 0.5, 0.3, 0.0), batch_sizes=(1, 2, 4, 8),
                mc_alignment=0.5, mc_batch=2, mc_steps=15, mc_chains=20000, seed=0)


def alpha(n, B, replace=True):
    """Weight of ``mean_i H_i (.) H_i`` in ``E[H_S (.) H_S]``: ``1/B`` with replacement,
    ``(n - B) / (B (n - 1))`` without."""
    if replace:
        return 1.0 / B
    return 0.0 if n == 1 else (n - B) / (B * (n - 1.0))


def second_moment_operator(hessians, lr, B, replace=True):
    """``T`` as a ``(d^2, d^2)`` matrix acting on ``vec(C)`` (row-major): ``C -> E[(I - lr H_S) C (I - lr H_S)]``."""
    Hs = np.asarray(hessians, dtype=float)
    n, d, _ = Hs.shape
    H = Hs.mean(axis=0)
    I = np.eye(d)
    a = alpha(n, B, replace)
    M = np.mean([np.kron(Hi, Hi) for Hi in Hs], axis=0)             # vec(H_i C H_i) = (H_i x H_i) vec C
    return (np.eye(d * d) - lr * (np.kron(H, I) + np.kron(I, H))
            + lr ** 2 * (a * M + (1 - a) * np.kron(H, H)))


def spectral_radius(hessians, lr, B, replace=True):
    """Spectral radius of ``T`` on symmetric matrices (``T`` commutes with transposition; the
    symmetriser projects the antisymmetric part away)."""
    T = second_moment_operator(hessians, lr, B, replace)
    d = int(round(np.sqrt(T.shape[0])))
    K = np.eye(d * d).reshape(d, d, d, d).transpose(1, 0, 2, 3).reshape(d * d, d * d)   # vec(C) -> vec(C^T)
    P = 0.5 * (np.eye(d * d) + K)
    return float(np.max(np.abs(np.linalg.eigvalsh(P @ T @ P))))           # T is self-adjoint


def critical_lr(hessians, B, replace=True, tol=1e-10):
    """The largest ``eta`` with spectral radius ``<= 1`` (bisection). Directions no ``H_i`` curves
    (zero curvature, as in any overparameterised least squares) keep the radius at exactly ``1``:
    they are neutral, so the test is ``radius <= 1 + 1e-9``."""
    lam = float(np.linalg.eigvalsh(np.mean(hessians, axis=0))[-1])
    lo, hi = 0.0, 2.0 / lam * (1 + 1e-9)                       # SGD is never stabler than GD

    def stable(lr):
        return spectral_radius(hessians, lr, B, replace) <= 1.0 + 1e-9

    if stable(hi):
        return hi
    for _ in range(200):
        if hi - lo <= tol * hi:
            break
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if stable(mid) else (lo, mid)
    return lo


def bracket(hessians, B, replace=True):
    """``(stable_below, unstable_above, coherence)``: ``2 / max_i lambda_max(H_i)``, ``(2/lambda) /
    (1 + alpha s^2 / lambda^2)`` and ``s^2 / lambda^2`` (see the module docstring)."""
    Hs = np.asarray(hessians, dtype=float)
    n = Hs.shape[0]
    w, V = np.linalg.eigh(Hs.mean(axis=0))
    lam, v = w[-1], V[:, -1]
    a_i = np.einsum("i,nij,j->n", v, Hs, v)
    coherence = float(a_i.var() / lam ** 2)
    stable = 2.0 / max(np.linalg.eigvalsh(Hi)[-1] for Hi in Hs)
    unstable = (2.0 / lam) / (1.0 + alpha(n, B, replace) * coherence)
    return float(stable), float(unstable), coherence


def example_hessians(d, n, c):
    """``H_i = x_i x_i^T`` with ``x_i`` proportional to ``c u + sqrt(1 - c^2) e_i`` (``u = 1/sqrt(d)``
    times the ones vector rotated away from the axes, ``e_i`` the i-th basis vector), scaled so that
    ``lambda_max(mean_i H_i) = 1``."""
    rng = np.random.default_rng(12345)                              # a fixed direction u
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    X = np.array([c * u + np.sqrt(max(1.0 - c * c, 0.0)) * np.eye(d)[i % d] for i in range(n)])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Hs = np.einsum("ni,nj->nij", X, X)
    return Hs / np.linalg.eigvalsh(Hs.mean(axis=0))[-1]


def _monte_carlo(s):
    """Second moment after ``mc_steps`` steps of linearised SGD (batches with replacement), Monte
    Carlo over chains against ``T^t(C_0)``, at the critical step."""
    Hs = example_hessians(s["d"], s["n"], s["mc_alignment"])
    B, n, d = s["mc_batch"], s["n"], s["d"]
    lr = critical_lr(Hs, B)
    rng = np.random.default_rng(s["seed"])
    w0 = np.ones(d) / np.sqrt(d)
    W = np.tile(w0, (s["mc_chains"], 1))
    for _ in range(s["mc_steps"]):
        idx = rng.integers(0, n, size=(W.shape[0], B))
        HS = Hs[idx].mean(axis=1)                                    # (chains, d, d)
        W = W - lr * np.einsum("kij,kj->ki", HS, W)
    sq = np.sum(W ** 2, axis=1)
    T = second_moment_operator(Hs, lr, B)
    C = np.outer(w0, w0).ravel()
    for _ in range(s["mc_steps"]):
        C = T @ C
    return {"lr": lr, "mc_mean_sq": float(sq.mean()), "mc_stderr": float(sq.std(ddof=1) / np.sqrt(sq.size)),
            "exact_mean_sq": float(np.trace(C.reshape(d, d)))}


def run(**settings):
    """``critical[alignment][B]`` (``eta* lambda_max / 2``, batches with replacement), ``without``
    (same, without replacement), ``bracket[alignment][B]`` (the stable-below and unstable-above
    steps times ``lambda_max / 2``), ``coherence[alignment]`` (``s^2 / lambda^2``), and the Monte Carlo
    check ``mc``."""
    s = with_defaults(__name__, DEFAULTS, settings)
    critical, without, brackets, coherence = {}, {}, {}, {}
    for c in s["alignments"]:
        Hs = example_hessians(s["d"], s["n"], c)                     # lambda_max(H) = 1
        critical[c], without[c], brackets[c] = {}, {}, {}
        for B in s["batch_sizes"]:
            critical[c][B] = critical_lr(Hs, B) / 2.0
            without[c][B] = critical_lr(Hs, B, replace=False) / 2.0
            st, un, coherence[c] = bracket(Hs, B)
            brackets[c][B] = (st / 2.0, un / 2.0)
    return {"settings": s, "critical": critical, "without": without, "bracket": brackets,
            "coherence": coherence, "mc": _monte_carlo(s)}


def plot(result, ax=None):
    """``eta* lambda_max / 2`` against the alignment of the per-example Hessians, one line per batch
    size (1 = GD's threshold)."""
    import matplotlib.pyplot as plt
    from .. import plot as rplot

    with rplot.style():
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        al = list(result["critical"])
        for i, B in enumerate(result["settings"]["batch_sizes"]):
            ax.plot(al, [result["critical"][c][B] for c in al], "o-", color=rplot.COLORS[i], label=f"B={B}")
            ax.plot(al, [result["bracket"][c][B][1] for c in al], ":", color=rplot.COLORS[i])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xlabel("alignment c of the per-example Hessians (1 = coherent)")
        ax.set_ylabel("critical step x lambda_max / 2")
        ax.set_title("SGD's linear stability threshold (dotted: instability bound)")
        ax.legend()
    return ax
