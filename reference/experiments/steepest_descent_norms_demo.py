"""Adam, Shampoo and steepest descent under a norm.

Demonstrates "Old Optimizer, New Norm: An Anthology" (Jeremy Bernstein, Laker Newhouse, 2024,
arXiv:2409.20325). Steepest descent under a norm ``||.||`` moves along the direction of
greatest first-order decrease per unit of that norm,

    Delta = -eta argmax_{||d|| <= 1} <g, d>      (times ||g||_dual for the unnormalised form),

and the maximiser (the *duality map*) has a closed form for the norms that matter:

    ||.||_2 (Frobenius)        d = g / ||g||_F                          <g, d> = ||g||_F
    ||.||_inf (max entry)       d = sign(g)                              <g, d> = ||g||_1
    spectral (matrices)         d = U V^T   for  g = U S V^T (reduced SVD) <g, d> = ||g||_* (nuclear)

The paper's point: switch off the exponential moving averages and three
"adaptive/second-order" methods are exactly such steepest descents:

* **Adam** with ``beta1 = beta2 = 0`` (and ``eps = 0``): ``m = g``, ``v = g^2``, so the step
  ``lr m / sqrt(v) = lr sign(g)``: sign descent, steepest descent under the ``l_inf`` norm;
* **Shampoo** without accumulation: ``L = G G^T``, ``R = G^T G``, step
  ``L^{-1/4} G R^{-1/4} = U V^T``: steepest descent under the spectral norm (what Muon computes
  with Newton-Schulz iterations instead of an SVD);
* (Prodigy likewise reduces to sign descent with an adaptive scale; not shown here.)

``run()`` checks these identities numerically on random matrices (``identities``:
max abs errors, at machine precision), checks the closed-form duality maps
against a brute-force search over many random unit vectors of each norm
(``duality``: the closed form attains the dual norm and no sample beats it),
measures how fast the cubic Newton-Schulz iteration ``X <- 1.5 X - 0.5 X X^T X``
approaches ``U V^T`` (``newton_schulz``), and trains a small tanh MLP on two
spirals with three per-tensor norm assignments (``training``):

* ``"l2"``: every tensor steps along ``g / ||g||_F`` (per-layer normalised GD);
* ``"linf"``: every tensor steps along ``sign(g)`` (Adam without EMAs);
* ``"spectral"``: weight matrices step along ``U V^T`` (Shampoo without accumulation, scaled by
  ``sqrt(fan_out / fan_in)`` so that a unit step changes the layer's RMS-to-RMS gain by about
  ``eta``, the paper's recommendation for linear layers), biases along ``sign(g)``.

Each assignment is run over a grid of step sizes and seeds, with a
step size that decays linearly to zero (normalised steps otherwise end
oscillating at the scale of ``eta``), and ``best`` gives the lowest final loss
over the grid for each seed. The settings (network width, grid, steps) are
ours; the paper makes the point in prose, not with this experiment.
"""
from __future__ import annotations

import numpy as np

from .. import optim, problems
from . import register, with_defaults

register(__name__, title="Old Optimizer, New Norm: An Anthology", authors="Bernstein, Newhouse", year=2024,
         arxiv="2409.20325", family="optimizer-first-order")

__all__ = ["duality_map", "shampoo_step", "newton_schulz", "run", "plot", "SCHEMES", "DEFAULTS"]

SCHEMES = ("l2", "linf", "spectral")
NORMS = ("l2", "linf", "spectral")

DEFAULTS = dict(seed=0, n_matrices=5, shape=(6, 4), n_samples=20000, ns_steps=(5, 10, 20, 40),
                hidden=(16, 16), n_train=128, steps=150, lrs=(0.03, 0.1, 0.3), seeds=(0, 1, 2))


def duality_map(g, norm):
    """``argmax_{||d|| <= 1} <g, d>`` for ``norm`` in ``("l2", "linf", "spectral")``."""
    if norm == "l2":
        n = np.linalg.norm(g)
        return g / n if n > 0 else np.zeros_like(g)
    if norm == "linf":
        return np.sign(g)
    if norm == "spectral":
        u, _, vt = np.linalg.svd(g, full_matrices=False)
        return u @ vt
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def dual_norm(g, norm):
    """The dual norm ``max_{||d|| <= 1} <g, d>``: Frobenius, l1, nuclear."""
    return {"l2": np.linalg.norm(g), "linf": np.abs(g).sum(),
            "spectral": np.linalg.svd(g, compute_uv=False).sum()}[norm]


def shampoo_step(g):
    """Shampoo's preconditioned direction without accumulation: ``(G G^T)^{-1/4} G (G^T G)^{-1/4}``
    (inverse roots by eigendecomposition, on the range of ``G``)."""
    def inv_root(a):
        w, q = np.linalg.eigh(a)
        keep = w > w.max() * 1e-12
        return (q[:, keep] * w[keep] ** -0.25) @ q[:, keep].T
    return inv_root(g @ g.T) @ g @ inv_root(g.T @ g)


def newton_schulz(g, steps):
    """The cubic Newton-Schulz iteration towards ``U V^T`` from ``X_0 = G / ||G||_F``."""
    x = g / np.linalg.norm(g)
    for _ in range(steps):
        x = 1.5 * x - 0.5 * x @ x.T @ x
    return x


def _unit_samples(rng, shape, norm, n):
    """``n`` random points on the unit sphere of ``norm`` (for the brute-force search)."""
    z = rng.standard_normal((n,) + shape)
    if norm == "l2":
        return z / np.linalg.norm(z.reshape(n, -1), axis=1).reshape((n,) + (1,) * len(shape))
    if norm == "linf":
        # mostly vertices (sign patterns, where the maximum lies) and some scaled Gaussian points
        d = np.sign(z)
        half = n // 2
        peak = np.abs(z[half:]).reshape(n - half, -1).max(axis=1)
        d[half:] = z[half:] / peak.reshape((n - half,) + (1,) * len(shape))
        return d
    s = np.linalg.svd(z, compute_uv=False)[:, 0]
    return z / s[:, None, None]


def _identities(s, rng):
    errs = {"adam_is_sign_descent": 0.0, "shampoo_is_spectral_descent": 0.0}
    lr = 0.1
    for _ in range(s["n_matrices"]):
        g = rng.standard_normal(s["shape"])
        adam = optim.create("adam", lr=lr, beta1=0.0, beta2=0.0, eps=0.0)
        w0 = {"w": rng.standard_normal(s["shape"])}
        w1, _ = adam.step(w0, adam.init(w0), lambda p: (0.0, {"w": g}))
        errs["adam_is_sign_descent"] = max(errs["adam_is_sign_descent"],
                                           float(np.max(np.abs((w0["w"] - w1["w"]) - lr * np.sign(g)))))
        errs["shampoo_is_spectral_descent"] = max(errs["shampoo_is_spectral_descent"],
                                                  float(np.max(np.abs(shampoo_step(g) - duality_map(g, "spectral")))))
    return errs


def _duality(s, rng):
    out = {}
    for norm in NORMS:
        g = rng.standard_normal(s["shape"])
        d = duality_map(g, norm)
        samples = _unit_samples(rng, s["shape"], norm, s["n_samples"])
        best_sample = float(np.max(np.tensordot(samples, g, axes=len(s["shape"]))))
        out[norm] = {"closed_form": float(np.sum(g * d)), "dual_norm": float(dual_norm(g, norm)),
                     "best_sample": best_sample}
    return out


def _newton_schulz(s, rng):
    g = rng.standard_normal(s["shape"])
    target = duality_map(g, "spectral")
    return {int(k): float(np.max(np.abs(newton_schulz(g, k) - target))) for k in s["ns_steps"]}


def _direction(name, g, scheme):
    if scheme == "l2":
        return duality_map(g, "l2")
    if scheme == "linf" or g.ndim == 1:
        return np.sign(g)
    fan_out, fan_in = g.shape
    return np.sqrt(fan_out / fan_in) * duality_map(g, "spectral")


def _train(scheme, lr, seed, s):
    prob = problems.create("two_spirals", hidden=tuple(s["hidden"]), n_train=s["n_train"], seed=seed)
    params, oracle = prob.init(seed), prob.oracle()
    n = s["steps"]
    curve = np.empty(n + 1)
    for k in range(n):
        loss, g = oracle(params)
        curve[k] = float(loss)
        eta = lr * (1.0 - k / n)                         # linear decay to zero
        params = {name: w - eta * _direction(name, g[name], scheme) for name, w in params.items()}
    curve[n] = float(prob.loss(params))
    return curve


def run(**settings):
    """The identities, the brute-force check of the duality maps, Newton-Schulz, and the training
    runs; see the module docstring. Returns ``identities`` (max abs errors), ``duality`` (per norm:
    closed-form value, dual norm, best of the random samples), ``newton_schulz`` (steps -> max abs
    error to ``U V^T``), ``curves`` (``[scheme, lr, seed, step]`` losses), ``final`` (``[scheme, lr,
    seed]``), ``best`` (``[scheme, seed]``: the lowest final loss over the step sizes), ``schemes``,
    ``lrs`` and the ``settings``."""
    s = with_defaults(__name__, DEFAULTS, settings)
    rng = np.random.default_rng(s["seed"])
    curves = np.array([[[_train(sc, lr, seed, s) for seed in s["seeds"]] for lr in s["lrs"]] for sc in SCHEMES])
    final = curves[..., -1]
    return {"settings": s, "identities": _identities(s, rng), "duality": _duality(s, rng),
            "newton_schulz": _newton_schulz(s, rng), "schemes": SCHEMES, "lrs": np.array(s["lrs"]),
            "curves": curves, "final": final, "best": np.nanmin(final, axis=1)}


def plot(result, ax=None):
    """Loss curves of each norm assignment at its best step size (median over seeds)."""
    import matplotlib.pyplot as plt
    from .. import plot as rplot

    with rplot.style():
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        for i, scheme in enumerate(result["schemes"]):
            j = int(np.argmin(np.median(result["final"][i], axis=1)))
            med = np.median(result["curves"][i, j], axis=0)
            ax.plot(med, color=rplot.COLORS[i], label=f"{scheme} (lr={result['lrs'][j]:g})")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title("steepest descent under per-tensor norms")
        ax.legend()
    return ax
