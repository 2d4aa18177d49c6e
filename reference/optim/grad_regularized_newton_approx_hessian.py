"""Gradient-Normalized Smoothness for Optimization with Approximate Hessians.

Andrei Semenov, Martin Jaggi, Nikita Doikov. 2025. arXiv:2506.13710

A Newton step with an *approximate* Hessian ``H_k`` (exact, diagonal,
Fisher, Gauss-Newton, ...) regularised by a multiple of the identity that is
proportional to the gradient norm:

    lambda_k = ||grad f(x_k)|| / gamma_k,
    x_{k+1}  = x_k - (H_k + lambda_k I)^{-1} grad f(x_k).

``gamma_k`` estimates the *gradient-normalized smoothness* at ``x_k``: the
radius of the ball around ``x_k`` on which ``H_k`` linearises the gradient
field well relative to the gradient's size. It is found by an adaptive
search (the paper's Algorithm 1): a trial step is accepted when it decreases
the function enough,

    f(x_k) - f(x_k + delta) >= ||grad f(x_k + delta)||^2 / (8 lambda_k),

and then ``gamma`` is doubled for the next iteration; otherwise ``gamma`` is
halved (``lambda`` doubled) and the step recomputed. Accepted steps decrease
``f`` monotonically, from any start, for any Hessian approximation; where
``H_k`` is good the regulariser vanishes with the gradient and the method is
as fast as Newton's, which the paper proves without knowing any smoothness
constant (global linear rates for logistic and softmax regression with
approximate Hessians, rates for Hölder-continuous Hessians, ...).

``hessian`` (the approximation ``H_k``):

* ``"exact"``: the dense Hessian (``reference.curvature.hessian``, one HVP
  per parameter: small models);
* ``"diagonal"``: its diagonal only;
* ``"fisher"``: the empirical Fisher ``1/n sum_i g_i g_i^T`` from the
  oracle's ``per_sample_grads`` (problems made of examples);
* a callable ``hessian(oracle, params) -> (n, n) array`` in the flattened
  layout of ``reference.tree.flatten`` (e.g. a Gauss-Newton matrix).

Defaults and conventions, from the official code (epfml/grad-norm-smooth,
``grad_norm_smooth``): ``gamma_0 = 1``, at most 40 trials per iteration
(when all fail, the last trial step is taken, as there), ``lambda =
||g|| / (gamma + eps)`` with ``eps = 1e-8``, ``gamma`` kept ``>= 1e-9``
when doubled. The norm is the Euclidean one (the paper allows any ``B``).
Choices made here:

* A trial at which ``H_k + lambda_k I`` is not positive definite (possible
  with the exact Hessian of a nonconvex function) or whose loss or gradient
  is not finite counts as rejected (the official code solves with a Cholesky
  factorisation and stops the search on its error).
* Every trial evaluates the loss and the gradient at the trial point (one
  oracle call; ``adaptive_search=False`` takes the first step with ``gamma``
  fixed at ``gamma_0`` and makes no trial call); the gradient at ``x_{k+1}`` is computed again by the next
  ``step`` (one more call than the official code, which reuses it), so that
  a step needs nothing but its own oracle.
* ``state["gamma"]`` carries ``gamma_k``; ``state["lambda"]`` records the
  regularisation of the last accepted step and ``state["trials"]`` how many
  trials it took.
"""
from __future__ import annotations

import math


from .. import curvature, tree
from ..backend import xp_of
from .base import Optimizer, check_grads, check_int, check_range, register

HESSIANS = ("exact", "diagonal", "fisher")


def approximate_hessian(kind, oracle, params):
    """``H_k`` as a dense ``(n, n)`` array in the flattened layout (see the module docstring)."""
    if callable(kind):
        return kind(oracle, params)
    if kind == "fisher":
        psg = getattr(oracle, "per_sample_grads", None)
        if not callable(psg):
            raise TypeError("grad_regularized_newton_approx_hessian: hessian='fisher' needs "
                            "oracle.per_sample_grads (a problem made of examples)")
        per_sample = psg(params)
        rows = [per_sample[k].reshape(per_sample[k].shape[0], -1) for k in params]
        xp = xp_of(rows[0])
        G = xp.concatenate(rows, axis=1)                                 # (N, n): one gradient per row
        return G.T @ G / G.shape[0]
    if not callable(getattr(oracle, "hvp", None)):
        raise TypeError(f"grad_regularized_newton_approx_hessian: hessian={kind!r} needs Hessian-vector "
                        "products: pass a rich oracle with .hvp(params, v)")
    H = curvature.hessian(oracle, params)
    if kind == "diagonal":
        return xp_of(H).diag(xp_of(H).diag(H))
    return H


@register("grad_regularized_newton_approx_hessian")
class GradRegularizedNewton(Optimizer):
    """Gradient-regularized Newton with approximate Hessians (Algorithm 1); see the module docstring.

    State: ``gamma``, ``lambda`` (last accepted regularisation), ``trials`` and ``step``.
    """

    paper = dict(title="Gradient-Normalized Smoothness for Optimization with Approximate Hessians",
                 authors="Semenov, Jaggi, Doikov", year=2025, arxiv="2506.13710",
                 family="optimizer-second-order")
    defaults = dict(gamma0=1.0, hessian="exact", adaptive_search=True, max_trials=40, gamma_min=1e-9,
                    eps=1e-8)
    scheduled = ()

    def check(self, hp):
        check_range("gamma0", hp["gamma0"], 0.0, low_open=True, where=self.name)
        check_range("gamma_min", hp["gamma_min"], 0.0, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        if not (callable(hp["hessian"]) or hp["hessian"] in HESSIANS):
            raise ValueError(f"{self.name}: hessian must be one of {HESSIANS} or a callable "
                             f"(oracle, params) -> (n, n) array, got {hp['hessian']!r}")
        if not isinstance(hp["adaptive_search"], bool):
            raise ValueError(f"{self.name}: adaptive_search must be True or False, got {hp['adaptive_search']!r}")
        v = hp["max_trials"]
        check_int("max_trials", v, 1, where=self.name)

    def init_slots(self, params):
        return {"gamma": float(self.hparams["gamma0"]), "lambda": None, "trials": 0}

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        hp = self.hparams
        loss, g = oracle(params)
        check_grads(self.name, params, g, t)
        g_flat, spec = tree.flatten({k: g[k] for k in params})
        xp, n = xp_of(g_flat), g_flat.shape[0]
        H = approximate_hessian(hp["hessian"], oracle, params)
        lowest = float(xp.linalg.eigvalsh(0.5 * (H + H.T))[0])
        f_k, g_norm = float(loss), float(xp.linalg.norm(g_flat))
        gamma = state["gamma"]
        if g_norm == 0.0:                                    # a stationary point: nothing to do
            return dict(params), {"gamma": gamma, "lambda": 0.0, "trials": 0, "step": t}
        candidate, lam, trials = None, None, 0
        for trial in range(1, hp["max_trials"] + 1):
            trials = trial
            lam_trial = g_norm / (gamma + hp["eps"])
            if lowest + lam_trial <= 0:                      # H + lambda I not positive definite: reject
                gamma *= 0.5
                continue
            lam = lam_trial
            delta = xp.linalg.solve(H + lam * xp.eye(n, dtype=H.dtype), -g_flat)
            candidate = tree.add(params, tree.unflatten(delta.astype(g_flat.dtype), spec))
            if not hp["adaptive_search"]:
                break
            f_new, g_new = oracle(candidate)
            f_new = float(f_new)
            g_new_sq = float(sum(float((g_new[k] * g_new[k]).sum()) for k in params))
            if math.isfinite(f_new) and math.isfinite(g_new_sq) and f_k - f_new >= g_new_sq / (8.0 * lam):
                gamma = max(2.0 * gamma, hp["gamma_min"])   # accepted: try a larger radius next time
                break
            gamma *= 0.5                                     # rejected: twice the regularisation
        # after max_trials rejections the last trial step is taken (the official code's behaviour)
        if candidate is None or tree.all_finite(candidate) is not None:
            raise FloatingPointError(f"{self.name}: no finite regularized Newton step in {hp['max_trials']} "
                                     f"trials at step {t}")
        return candidate, {"gamma": gamma, "lambda": lam, "trials": trials, "step": t}
