"""Accelerated Cyclic Coordinate Dual Averaging with Extrapolation for Composite Convex Optimization.

Cheuk Yin Lin, Chaobing Song, Jelena Diakonikolas. ICML 2023. arXiv:2303.16279

Problem: ``min_x f(x) + g(x)`` with ``f`` smooth convex and ``g`` convex,
block-separable (``g = sum_j g^j``), ``gamma``-strongly convex (``gamma >= 0``),
with an easy prox. The variables are split into ``m`` blocks that every
iteration (epoch) ``k`` visits **cyclically**, one partial gradient each;
the partial gradients of one epoch are taken at different points, and an
**extrapolation** with the previous epoch's ones makes the whole cycle act
like one (implicit) full gradient, which is what the analysis needs. With
``a_0 = A_0 = 0``, ``x_0 = y_0 = v_0``, ``z_0 = 0``, iteration ``k``:

    a_k:  the largest a with  a^2 = c (1 + gamma A_{k-1}) (A_{k-1} + a) / L ,    A_k = A_{k-1} + a_k
    x_k = A_{k-1}/A_k y_{k-1} + a_k/A_k v_{k-1}
    for j = 1, ..., m:
        p_k^j = grad^j f(y_k^1, ..., y_k^{j-1}, x_k^j, ..., x_k^m)           (blocks before j already updated)
        q_k^j = p_k^j + a_{k-1}/a_k (grad^j f(x_{k-1}) - p_{k-1}^j)          (extrapolation)
        z_k^j = z_{k-1}^j + a_k q_k^j                                          (dual averaging)
        v_k^j = prox_{A_k g^j}(x_0^j - z_k^j)
        y_k^j = A_{k-1}/A_k y_{k-1}^j + a_k/A_k v_k^j

and ``y_k`` is the output. For the first block the point is ``x_k`` itself,
so ``grad f(x_k)`` (needed by the next epoch's extrapolation) comes with it.
The result is the accelerated rate ``O(L ||x_0 - x*||^2 / k^2)`` (linear for
``gamma > 0``) with an ``L`` defined in the paper with respect to a
Mahalanobis norm adapted to cyclic updates (never more than ``sqrt(m)``
times the Euclidean one, often far less).

Choices, conventions and what is left out:

* **One ``step`` is one block update**, so an epoch (the paper's iteration
  ``k``) is ``m`` steps, the first of which also computes ``a_k``, ``A_k`` and
  ``x_k``. Each step calls the plain oracle once, at the block's mixed point,
  and reads block ``j`` of the gradient (a coordinate oracle such as
  ``sparse_regression.partial_gradient`` would give the same numbers at
  ``O(n)`` per block instead of ``O(n d)``; the authors' code keeps ``X y``
  up to date to get that). Params are the current ``y``: ``y_k`` after the
  last block of epoch ``k``, and ``(y_k^1..y_k^j, y_{k-1}^{j+1}..)`` within
  it. The state keeps ``x_k``, ``v``, ``z``, the latest partials ``p``,
  ``grad f(x_{k-1})`` and ``grad f(x_k)``, ``a_{k-1}, a_k, A_{k-1}, A_k``
  and the next block's index.
* **Blocks**: consecutive runs of ``block_size`` entries of the flattened
  parameters (``reference.tree.flatten`` order), visited in that order (the
  authors' code, with coordinate blocks, sweeps ``j = m, ..., 1`` and
  conditions on the blocks after ``j``: the same method with the blocks
  relabelled).
* **Step rule**: ``c = 2/5`` as in the authors' final code ("largest value
  such that Line 4 of the algorithm is satisfied"; an earlier version of the
  code used ``c = 1/2``). The hyperparameter ``lipschitz`` (``L``) is
  required: the paper's ``L`` is rarely computable, and its experiments tune
  it; ``lambda_max`` of a Hessian bound (``problem.L``) is a safe choice.
  ``gamma`` is the strong convexity modulus of ``g`` (0 by default).
* **The prox of g comes from the problem** (hyperparameter ``prox``:
  ``prox(params, step)`` is the prox of ``step * g``, e.g. the lasso's or the
  elastic net's); it must be separable over coordinates (it is applied to the
  whole vector and block ``j`` is read off). ``prox=None`` means ``g = 0``
  (then ``gamma`` must be 0).
* VR-A-CODER (the variance-reduced variant for finite sums) is not
  implemented.
"""
from __future__ import annotations

import math

from .. import tree
from ..backend import xp_of
from .base import Optimizer, check_grads, check_int, check_range, register

#: the step-rule constant of the authors' code: a_k^2 = STEP_CONSTANT (1 + gamma A_{k-1}) A_k / L
STEP_CONSTANT = 0.4


def acoder_step(A_prev, lipschitz, gamma, c=STEP_CONSTANT):
    """``a_k``: the positive root of ``a^2 = r (A_{k-1} + a)`` with ``r = c (1 + gamma A_{k-1}) / L``."""
    r = c * (1.0 + gamma * A_prev) / lipschitz
    return 0.5 * (r + math.sqrt(r * r + 4.0 * r * A_prev))


@register("a_coder")
class ACoder(Optimizer):
    defaults = dict(lipschitz=None, gamma=0.0, block_size=1, prox=None)
    scheduled = ()
    paper = dict(title="Accelerated Cyclic Coordinate Dual Averaging with Extrapolation for Composite "
                       "Convex Optimization",
                 authors="Lin, Song, Diakonikolas", year=2023, arxiv="2303.16279",
                 family="optimizer-first-order")
    # Rosenbrock from (-1.2, 1): curvature ~ 1000 there
    descent_hparams = {"rosenbrock": dict(lipschitz=2000.0)}

    @classmethod
    def example_hparams(cls):
        # the contract tests' two-key quadratic has curvatures up to 3
        return dict(lipschitz=3.0)

    def check(self, hp):
        where = self.name
        if hp["lipschitz"] is None:
            raise TypeError(f"{where}: needs the capability lipschitz: a Lipschitz constant L of grad f "
                            "(e.g. problem.L); got None")
        check_range("lipschitz", hp["lipschitz"], 0.0, low_open=True, where=where)
        check_range("gamma", hp["gamma"], 0.0, where=where)
        bs = hp["block_size"]
        check_int("block_size", bs, 1, where=where)
        if hp["prox"] is not None and not callable(hp["prox"]):
            raise ValueError(f"{where}: prox must be None or a callable prox(params, step)")
        if hp["prox"] is None and hp["gamma"] > 0:
            raise ValueError(f"{where}: gamma={hp['gamma']} is the strong convexity of g, but prox=None "
                             "means g = 0; pass the prox of g")

    def init_slots(self, params):
        x0, _ = tree.flatten(params)
        xp = xp_of(x0)
        zero = xp.zeros_like(x0)
        # p (the latest partials) and grad_prev (grad f(x_{k-1})) enter only multiplied by a_0 = 0 at k = 1
        return {"x0": x0.copy(), "v": x0.copy(), "z": zero, "p": zero.copy(), "x": x0.copy(),
                "grad_prev": zero.copy(), "grad_cur": zero.copy(),
                "a_prev": 0.0, "a": 0.0, "A_prev": 0.0, "A": 0.0, "block": 0}

    def _prox_flat(self, u, spec, step):
        if self.hparams["prox"] is None:
            return u
        return tree.flatten(self.hparams["prox"](tree.unflatten(u, spec), step))[0]

    def step(self, params, state, oracle):
        """One block update; block 0 of a cycle also starts the epoch (a_k, A_k, x_k)."""
        hp = self.hparams
        t = int(state["step"]) + 1
        y, spec = tree.flatten(params)
        D = y.size
        bs = hp["block_size"]
        j = int(state["block"])
        b = slice(j * bs, min((j + 1) * bs, D))
        n_blocks = -(-D // bs)
        a_prev, a, A_prev, A = state["a_prev"], state["a"], state["A_prev"], state["A"]
        x, grad_prev, grad_cur = state["x"], state["grad_prev"], state["grad_cur"]
        if j == 0:                                                            # a new epoch k
            a_prev, A_prev = a, A
            a = acoder_step(A_prev, hp["lipschitz"], hp["gamma"])               # a_k
            A = A_prev + a                                                    # A_k
            x = (A_prev / A) * y + (a / A) * state["v"]                       # x_k = A_{k-1}/A_k y_{k-1} + a_k/A_k v_{k-1}
            grad_prev = grad_cur                                              # grad f(x_{k-1})
        w = y.copy()
        w[b.start:] = x[b.start:]                                             # (y_k^1..y_k^{j-1}, x_k^j..x_k^m)
        _, grads = oracle(tree.unflatten(w, spec))
        check_grads(self.name, params, grads, t)
        g, _ = tree.flatten(grads)
        if j == 0:
            grad_cur = g                                                      # grad f(x_k), for the next epoch
        q = g[b] + (a_prev / a) * (grad_prev[b] - state["p"][b])              # q_k^j (p still holds p_{k-1}^j)
        p, z, v, y_new = state["p"].copy(), state["z"].copy(), state["v"].copy(), y.copy()
        p[b] = g[b]                                                           # p_k^j
        z[b] = z[b] + a * q                                                   # z_k^j = z_{k-1}^j + a_k q_k^j
        v[b] = self._prox_flat(state["x0"] - z, spec, A)[b]                   # v_k^j = prox_{A_k g}(x_0 - z_k)^j
        y_new[b] = (A_prev / A) * y[b] + (a / A) * v[b]                       # y_k^j
        new_state = {"step": t, "x0": state["x0"], "v": v, "z": z, "p": p, "x": x,
                     "grad_prev": grad_prev, "grad_cur": grad_cur,
                     "a_prev": a_prev, "a": a, "A_prev": A_prev, "A": A, "block": (j + 1) % n_blocks}
        return tree.unflatten(y_new, spec), new_state
