"""Exact Gauss-Newton Optimization for Training Deep Neural Networks.

Mikalai Korbit, Adeyemi D. Adeoye, Alberto Bemporad, Mario Zanon. 2024. arXiv:2405.14402

A mini-batch loss of model outputs, ``f(w) = 1/b sum_i l(y_i, z_i(w))``, has
the generalized Gauss-Newton (GGN) curvature ``H_GN = 1/b J^T Q J`` with

* ``J`` (``bc x n``): the Jacobian of the ``b`` examples' outputs (``c``
  each, stacked) in the ``n`` parameters;
* ``Q`` (``bc x bc``): the Hessian of the output loss in the outputs,
  block-diagonal with one ``c x c`` block ``d^2 l_i / d z_i^2`` per example
  (positive semidefinite for squared error and cross-entropy);
* ``g`` (``bc``): the output-loss gradients ``d l_i / d z_i``, stacked, so
  that ``grad f = 1/b J^T g``.

EGN takes the Levenberg-Marquardt (regularized GN) direction

    d_t = -(H_GN + lambda I_n)^{-1} grad f = -(J^T Q J + b lambda I_n)^{-1} J^T g

and computes it *exactly* in the ``bc``-dimensional batch space with the
Duncan-Guttman (push-through) identity
``(J^T Q J + b lambda I_n)^{-1} J^T = J^T (Q J J^T + b lambda I_bc)^{-1}``:

    d_t = -J^T (Q J J^T + b lambda_t I_bc)^{-1} g                       (EGN direction)

one LU solve of a ``bc x bc`` system instead of an ``n x n`` one (``n`` is
the number of parameters, usually far larger than the batch). Then

    alpha_t : fixed (alpha_t = lr), or Armijo backtracking from
              min(increase_factor * alpha_{t-1}, lr) until
              f(w + alpha d) <= f(w) + c alpha grad f^T d, alpha <- decrease_factor * alpha
    w_{t+1} = w_t + alpha_t d_t + mu (w_t - w_{t-1})                    (heavy-ball momentum, mu >= 0)
    rho_t   = (f(w_{t+1}) - f(w_t)) / (grad f^T dw + 1/(2b) (J dw)^T Q (J dw)),   dw = w_{t+1} - w_t
    lambda_{t+1} = lambda_t * increase  if rho_t < 1/4,
                   lambda_t * decrease  if rho_t > 3/4,   else lambda_t     (adaptive regularization)

(``rho`` compares the actual decrease of the batch loss to the one the GN
quadratic model predicts, the classic Levenberg-Marquardt trust ratio.)
With squared error ``l = 1/2 (z - y)^2``, ``Q = I`` and ``g`` is the
residual ``r``, so ``d = -(J^T J + b lambda I)^{-1} J^T r``: Levenberg-
Marquardt with damping ``b lambda`` (``Q = 2 I`` for ``l = (z - y)^2``).

Conventions and choices:

* **Defaults** are those of the authors' code (no single set is given in the
  paper text): ``lr = 1`` (the full GN step; with the line search it is the
  largest step ``alpha_max``), ``regularization = lambda_0 = 1``, no line
  search, no adaptive regularization, ``momentum = 0``. Line search:
  ``sufficient_decrease = c = 0.1`` (their ``1 - aggressiveness`` with
  aggressiveness 0.9), ``decrease_factor = 0.8``, ``increase_factor = 1.5``,
  at most ``max_line_search_steps = 15`` shrinks (after which the last trial
  is taken, as in their code), values of Vaswani et al. (2019).
  Adaptive regularization: factors ``1.01`` up and ``0.99`` down with
  thresholds ``1/4`` and ``3/4`` (Kiros, 2013).
* **lambda scales with the batch** as in the paper's ``H_GN + lambda I``
  with ``H_GN = 1/b J^T Q J``: the system matrix is ``Q J J^T + b lambda I``.
* **Momentum.** The paper offers momentum as an add-on; we follow the
  authors' code for the Gauss-Newton solvers, heavy-ball on the iterates
  ``w_{t+1} = w_t + alpha_t d_t + mu (w_t - w_{t-1})`` (the line search runs
  on ``alpha d`` alone, the momentum term is added after it). The
  velocity ``w_t - w_{t-1}`` lives in the state (``velocity``, zeros at the
  start).
* **What the oracle must offer.** EGN needs model outputs, their Jacobian
  and the output loss's derivatives: the ``outputs`` capability of
  ``reference.problems`` oracles (``output_jacobian``,
  ``output_loss_derivatives``; see ``reference/problems/base.py``). A plain
  ``oracle(params) -> (loss, grads)`` raises ``TypeError`` naming it, and so
  does a problem without model outputs (e.g. one with a ridge penalty).
* ``J`` is formed explicitly (``reference.autograd.jacobian``, whichever of
  reverse or forward mode needs fewer sweeps), as in the paper: EGN is meant
  for ``bc`` small. The gradient ``grad f`` is the oracle's (it also gives
  the finite-gradient check); ``J^T g / b`` equals it.
* ``alpha`` and ``lambda`` are host floats in the state (the line search and
  the trust ratio sync a few scalars per step).
"""
from __future__ import annotations

import math

from .. import tree
from ..backend import xp_of
from .base import Optimizer, check_grads, check_int, check_range, register

__all__ = ["EGN", "egn_direction", "require_outputs"]

_NEEDED = ("output_jacobian", "output_loss_derivatives")


def require_outputs(where, oracle):
    """Raise ``TypeError`` naming the ``outputs`` capability unless the oracle offers it."""
    missing = [m for m in _NEEDED if not callable(getattr(oracle, m, None))]
    if missing:
        raise TypeError(f"{where} needs model outputs: an oracle with the 'outputs' capability "
                        f"({', '.join(_NEEDED)}), e.g. problem.oracle(batch) of a problem with model "
                        f"outputs (problem.has_outputs); got {type(oracle).__name__}, which lacks "
                        f"{', '.join(missing)}")


def flat_jacobian(J, params):
    """The Jacobian dict (leaves ``(b, c) + shape``) as a ``(b c, n)`` matrix, columns in ``params``' key order."""
    xp = xp_of(*J.values())
    b, c = next(iter(J.values())).shape[:2]
    return xp.concatenate([J[k].reshape(b * c, -1) for k in params], axis=1)


def block_diagonal(Q):
    """``Q`` of shape ``(b, c, c)`` (one block per example) as the ``(b c, b c)`` block-diagonal matrix."""
    xp = xp_of(Q)
    b, c, _ = Q.shape
    full = xp.zeros((b, c, b, c), dtype=Q.dtype)
    idx = xp.arange(b)
    full[idx, :, idx, :] = Q
    return full.reshape(b * c, b * c)


def egn_direction(J, Q, g, regularization, batch_size):
    """The EGN direction ``d = -J^T (Q J J^T + b lambda I)^{-1} g`` (flat, length ``n``).

    ``J``: ``(b c, n)``; ``Q``: ``(b c, b c)``; ``g``: ``(b c,)`` output-loss
    gradients (not divided by ``b``); ``regularization``: ``lambda``;
    ``batch_size``: ``b``. See the module docstring.
    """
    xp = xp_of(J)
    M = Q @ (J @ J.T) + (batch_size * regularization) * xp.eye(J.shape[0], dtype=J.dtype)  # Q J J^T + b lambda I
    u = xp.linalg.solve(M, g)                                   # (Q J J^T + b lambda I)^{-1} g
    return -(J.T @ u)                                           # d = -J^T u


@register("egn")
class EGN(Optimizer):
    """Exact Gauss-Newton (EGN); see the module docstring.

    State: ``step``, ``stepsize`` (``alpha_t`` of the last step: the line
    search restarts from it), ``regularization`` (``lambda`` for the next
    step), ``velocity`` (``w_t - w_{t-1}``, a dict like params, or ``None``
    without momentum).
    """

    paper = dict(title="Exact Gauss-Newton Optimization for Training Deep Neural Networks",
                 authors="Korbit, Adeoye, Bemporad, Zanon", year=2024, arxiv="2405.14402",
                 family="optimizer-second-order")
    defaults = dict(lr=1.0, regularization=1.0, line_search=False, sufficient_decrease=0.1,
                    decrease_factor=0.8, increase_factor=1.5, max_line_search_steps=15,
                    adaptive_regularization=False, regularization_increase=1.01,
                    regularization_decrease=0.99, momentum=0.0)
    scheduled = ("lr",)

    def check(self, hp):
        super().check(hp)
        w = self.name
        check_range("regularization", hp["regularization"], 0.0, low_open=True, where=w)
        check_range("sufficient_decrease", hp["sufficient_decrease"], 0.0, 1.0, low_open=True, high_open=True,
                    where=w)
        check_range("decrease_factor", hp["decrease_factor"], 0.0, 1.0, low_open=True, high_open=True, where=w)
        check_range("increase_factor", hp["increase_factor"], 1.0, where=w)
        check_range("regularization_increase", hp["regularization_increase"], 1.0, where=w)
        check_range("regularization_decrease", hp["regularization_decrease"], 0.0, 1.0, low_open=True, where=w)
        check_range("momentum", hp["momentum"], 0.0, 1.0, high_open=True, where=w)
        v = hp["max_line_search_steps"]
        check_int("max_line_search_steps", v, 0, where=w)
        for name in ("line_search", "adaptive_regularization"):
            if not isinstance(hp[name], bool):
                raise ValueError(f"{w}: {name} must be True or False, got {hp[name]!r}")

    def init_slots(self, params):
        hp = self.hparams
        lr0 = hp["lr"](0) if callable(hp["lr"]) else hp["lr"]
        velocity = tree.zeros_like(params) if hp["momentum"] > 0 else None
        return {"stepsize": float(lr0), "regularization": float(hp["regularization"]), "velocity": velocity}

    # ---- step 1: the direction, in batch space ------------------------------------------
    def direction(self, params, oracle, regularization):
        """``(d, J, Q, b)``: the EGN direction (flat), the flat ``J`` and block-diagonal ``Q`` it used, and ``b``."""
        z, J_tree = oracle.output_jacobian(params)
        g, Q_blocks = oracle.output_loss_derivatives(z)
        b = int(z.shape[0])
        J = flat_jacobian(J_tree, params)                     # (b c, n)
        Q = block_diagonal(Q_blocks)                          # (b c, b c)
        d = egn_direction(J, Q, g.reshape(-1), regularization, b)
        return d, J, Q, b

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        require_outputs(self.name, oracle)
        loss, grads = oracle(params)
        check_grads(self.name, params, grads, t)
        g_flat, spec = tree.flatten({k: grads[k] for k in params})
        lam = float(state["regularization"])
        d, J, Q, b = self.direction(params, oracle, lam)
        d = d.astype(g_flat.dtype)
        d_tree = tree.unflatten(d, spec)
        loss_of = oracle.loss if callable(getattr(oracle, "loss", None)) else (lambda p: oracle(p)[0])
        f_cur = float(loss)

        # ---- step 2: the step size alpha_t ----
        f_next = None
        if hp["line_search"]:
            alpha_max = float(hp["lr"])
            alpha = min(float(state["stepsize"]) * hp["increase_factor"], alpha_max)
            slope = float(g_flat @ d)                         # grad f^T d (< 0 for a descent direction)
            trial = tree.axpy(alpha, d_tree, params)
            f_next = float(loss_of(trial))
            for _ in range(hp["max_line_search_steps"]):
                if math.isfinite(f_next) and f_next <= f_cur + hp["sufficient_decrease"] * alpha * slope:
                    break                                     # Armijo's sufficient decrease holds
                alpha *= hp["decrease_factor"]
                trial = tree.axpy(alpha, d_tree, params)
                f_next = float(loss_of(trial))
        else:
            alpha = float(hp["lr"])
        new_params = tree.axpy(alpha, d_tree, params)         # w + alpha d

        # ---- step 3: heavy-ball momentum ----
        velocity = None
        if hp["momentum"] > 0:
            new_params = tree.axpy(hp["momentum"], state["velocity"], new_params)   # + mu (w_t - w_{t-1})
            velocity = tree.sub(new_params, params)
            f_next = None                                     # the momentum term moved the point

        # ---- step 4: adaptive regularization (the trust ratio rho) ----
        lam_next = lam
        if hp["adaptive_regularization"]:
            f_next = float(loss_of(new_params)) if f_next is None else f_next
            dw = tree.flatten({k: new_params[k] - params[k] for k in params})[0]
            Jdw = J @ dw
            predicted = float(g_flat @ dw) + 0.5 * float(Jdw @ (Q @ Jdw)) / b
            rho = (f_next - f_cur) / predicted if predicted != 0 else 0.0   # no predicted change: count as poor
            if not math.isfinite(rho) or rho < 0.25:
                lam_next = lam * hp["regularization_increase"]
            elif rho > 0.75:
                lam_next = lam * hp["regularization_decrease"]
        return new_params, {"step": t, "stepsize": float(alpha), "regularization": float(lam_next),
                            "velocity": velocity}
