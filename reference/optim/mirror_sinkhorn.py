"""Mirror Sinkhorn: Fast Online Optimization on Transport Polytopes.

Marin Ballu, Quentin Berthet. ICML 2023. arXiv:2211.10420

Minimise a convex ``f`` over the transport polytope ``U(a, b) = {P >= 0 : P 1 = a,
P^T 1 = b}`` with a single loop that interleaves an entropic mirror-descent
step with one half of a Sinkhorn scaling:

    P_1 = a b^T
    for t = 1, ..., T:
        P'_{t+1} = P_t * exp(-eta_t grad f(P_t))               (mirror step, elementwise)
        P_{t+1}  = diag(a / P'_{t+1} 1) P'_{t+1}               (t odd: rows to a)
                 = P'_{t+1} diag(b / P'_{t+1}^T 1)             (t even: columns to b)
    output  P_bar_T = 1/T sum_{t=1}^T P_t

Each scaling is the KL (Bregman) projection onto one of the two affine sets
``{P 1 = a}``, ``{P^T 1 = b}``, so every iterate meets one marginal exactly
and the *average* approaches the polytope and the minimum, at the mirror-
descent rate ``O(1/sqrt(T))`` with steps ``eta_t ~ 1/sqrt(t)``, for any convex
``f`` with bounded gradients, also with noisy (stochastic, online) gradients.
With ``f = <C, P>`` it solves optimal transport without an entropic bias;
Sinkhorn's algorithm itself is the case ``f = 0`` (only scalings).

This is a **driver** over a problem, not a ``reference.optim`` optimizer: the
iterates must stay positive and on the polytope's affine hull, which an
unconstrained optimizer protocol cannot express. :func:`mirror_sinkhorn`
takes a problem with marginals ``a``, ``b`` and a plain oracle on params
``{"P": (n, m)}`` (``reference.problems`` ``optimal_transport``).

Choices (where the paper leaves room or where it was not checked against it):

* **Parity**: rows are scaled at odd ``t`` (``first="rows"``), columns at
  even ``t``; ``first="columns"`` swaps them (the choice does not change the
  guarantees).
* **Averaging** over the points where gradients were taken, ``P_1..P_T``.
* **Steps** ``eta_t = c / sqrt(t)``. ``step_scale=c`` may be given; otherwise
  ``c = sqrt(2 delta) / B`` with ``B = grad_bound`` (a bound on
  ``max |grad f|``) and ``delta = min(H(a), H(b))``, which bounds
  ``KL(P || a b^T)`` (the mutual information) for every ``P`` in ``U(a, b)``:
  the constant that balances the two terms of the standard mirror-descent
  bound ``(delta + B^2 sum eta_t^2 / 2) / sum eta_t``. A callable
  ``step_scale(t)`` gives ``eta_t`` directly.
* **A feasible output**: the average misses the marginals by ``O(1/sqrt T)``;
  ``reference.problems.composite.round_to_polytope`` (Altschuler, Weed and
  Rigollet, 2017) maps it into ``U(a, b)`` at an ``l1`` cost of twice the
  violation; the history records both.
* **Noise**: ``noise > 0`` adds ``noise * N(0, 1)`` to every gradient entry
  (a seeded generator), the paper's stochastic-gradient setting.
"""
from __future__ import annotations

import math

import numpy as np

from .. import catalog
from ..problems.composite import round_to_polytope
from .base import check_int

__all__ = ["mirror_sinkhorn", "default_step_scale"]

catalog.register(title="Mirror Sinkhorn: Fast Online Optimization on Transport Polytopes",
                 name="mirror_sinkhorn", family="optimizer-first-order", kind="implementation", module=__name__,
                 authors="Ballu, Berthet", year=2023, arxiv="2211.10420")


def _entropy(p):
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def default_step_scale(a, b, grad_bound):
    """``c = sqrt(2 delta) / B``, ``delta = min(H(a), H(b))`` (see the module docstring)."""
    if not (isinstance(grad_bound, (int, float)) and math.isfinite(grad_bound) and grad_bound > 0):
        raise ValueError(f"mirror_sinkhorn: grad_bound must be a finite number > 0, got {grad_bound!r}")
    return math.sqrt(2.0 * min(_entropy(np.asarray(a)), _entropy(np.asarray(b)))) / grad_bound


def mirror_sinkhorn(problem, steps, step_scale=None, grad_bound=None, first="rows", noise=0.0, seed=0,
                    oracle=None, record_every=0):
    """Run Mirror Sinkhorn for ``steps`` iterations on ``problem`` (marginals ``problem.a``, ``problem.b``).

    ``step_scale``: ``c`` in ``eta_t = c / sqrt(t)``, or a callable ``t -> eta_t``; if ``None``, computed
    from ``grad_bound`` by :func:`default_step_scale`. ``oracle`` defaults to ``problem.oracle()``.
    Returns ``{"plan": P_bar_T, "last": P_{T+1}, "history": {...}}`` where the history (every
    ``record_every`` steps, if > 0) has ``step``, ``objective`` and ``violation`` of the average and
    ``rounded_objective`` of its rounding onto ``U(a, b)`` (needs ``problem.objective_value``).
    """
    where = "mirror_sinkhorn"
    for cap in ("a", "b"):
        if getattr(problem, cap, None) is None:
            raise TypeError(f"{where}: the problem must offer the marginals problem.a and problem.b "
                            f"(e.g. reference.problems' optimal_transport); {type(problem).__name__} has no {cap!r}")
    check_int("steps", steps, 1, where=where)
    if first not in ("rows", "columns"):
        raise ValueError(f"{where}: first must be 'rows' or 'columns', got {first!r}")
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"{where}: noise must be a finite number >= 0, got {noise!r}")
    a, b = np.asarray(problem.a, dtype=np.float64), np.asarray(problem.b, dtype=np.float64)
    if step_scale is None:
        if grad_bound is None:
            raise TypeError(f"{where}: pass step_scale, or grad_bound (a bound on max |grad f|) to derive it")
        step_scale = default_step_scale(a, b, grad_bound)
    if callable(step_scale):
        eta_of = step_scale
    else:
        if not (isinstance(step_scale, (int, float)) and math.isfinite(step_scale) and step_scale > 0):
            raise ValueError(f"{where}: step_scale must be a number > 0 or a callable, got {step_scale!r}")
        eta_of = lambda t: step_scale / math.sqrt(t)  # noqa: E731
    oracle = problem.oracle() if oracle is None else oracle
    rng = np.random.default_rng(seed)
    P = np.outer(a, b)                                             # P_1 = a b^T
    P_bar = np.zeros_like(P)
    history = {"step": [], "objective": [], "violation": [], "rounded_objective": []}
    rows_at_odd = first == "rows"
    for t in range(1, steps + 1):
        _, grads = oracle({"P": P})
        G = np.asarray(grads["P"], dtype=np.float64)
        if noise:
            G = G + noise * rng.standard_normal(G.shape)
        if not np.all(np.isfinite(G)):
            raise FloatingPointError(f"{where}: non-finite gradient at step {t}")
        P_bar += (P - P_bar) / t                                   # running mean of P_1..P_t
        P_prime = P * np.exp(-eta_of(t) * G)                       # mirror (entropic) step
        if (t % 2 == 1) == rows_at_odd:
            P = P_prime * (a / P_prime.sum(axis=1))[:, None]       # rows to a
        else:
            P = P_prime * (b / P_prime.sum(axis=0))[None, :]       # columns to b
        if record_every and t % record_every == 0:
            history["step"].append(t)
            history["violation"].append(float(np.abs(P_bar.sum(1) - a).sum() + np.abs(P_bar.sum(0) - b).sum()))
            if hasattr(problem, "objective_value"):
                history["objective"].append(problem.objective_value(P_bar))
                history["rounded_objective"].append(problem.objective_value(round_to_polytope(P_bar, a, b)))
    return {"plan": P_bar, "last": P, "history": {k: np.asarray(v, dtype=np.float64) for k, v in history.items()}}
