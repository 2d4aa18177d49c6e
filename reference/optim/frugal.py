"""FRUGAL: Memory-Efficient Optimization by Reducing State Overhead for Scalable Training.

Philip Zmushko, Aleksandr Beznosikov, Martin Takac, Samuel Horvath. 2024
(ICML 2025). arXiv:2411.07837

Low-rank methods (GaLore: Adam on a projection of the gradient; BAdam: Adam
on a few blocks at a time) save optimizer memory but update the weights only
inside a low-dimensional subspace, and drop the rest of the gradient. FRUGAL
(Full-Rank Updates with GrAdient spLitting) keeps the rest: it splits every
gradient into a *state-full* part, updated by an optimizer with state (Adam)
whose state lives only in the subspace, and a *state-free* remainder,
updated by a rule with no state (signSGD or SGD). With a projector ``P_k``
onto the state-full subspace, refreshed every ``T`` steps (Algorithm 1):

    if k mod T == 0:  choose P_k (and reset the subspace state)
    g_full = P_k(g_k)                              (low-dimensional)
    g_free = g_k - P_k^{-1}(g_full)                (the rest of the gradient)
    u_full = Adam(g_full; state in the subspace)
    u_free = sign(g_free)        (signSGD; or g_free for SGD)
    x_{k+1} = x_k - lr P_k^{-1}(u_full) - lr_free u_free

The density ``rho`` is the fraction of a matrix that is state-full, so the
state of the projectable parameters is ``rho`` times Adam's. Subspaces (the
paper's three; ``projection=``):

* ``"block"`` (BAdam-like, the paper's main choice): ``round(rho * L)`` of
  the ``L`` weight matrices are state-full, whole; the others are
  state-free. Order ``block_order``: ``"random"`` (default), ``"ascending"``,
  ``"descending"`` (cyclic).
* ``"svd"`` (GaLore-like): the top ``r = round(rho * min side)`` singular
  vectors of the current gradient (``_projection``: right side when the matrix
  is tall, left otherwise).
* ``"random"``: a random semi-orthogonal basis of the same size.

Only 2-D parameters (linear layers) are split; the others (biases, norms)
always get Adam, as in the paper ("projectable" parameters are the linear
layers of the transformer blocks).

Defaults (the paper's and its code's): ``density = 0.25``, ``update_gap =
200``, ``state_free = "signsgd"``, ``state_free_lr_scale = 1`` (pre-training;
the paper uses 0.1 for fine-tuning), ``reset_state = True``, Adam's
``lr = 1e-3``, ``betas = (0.9, 0.999)``, ``eps = 1e-8``.

Conventions (from the paper's code, github.com/philip-zmushko/FRUGAL):

* Refresh at steps ``t = 1, T + 1, 2T + 1, ...`` (the code's ``step % T ==
  0`` before its 0-based counter is incremented).
* ``reset_state=True`` (the code's default): the subspace Adam moments are
  zeroed at each refresh and its bias-correction counter restarts
  (``state["sub_step"]``). With ``reset_state=False`` the moments are kept
  across refreshes in the new coordinates, GaLore's choice. In block mode a
  deactivated block's state is always dropped (the code clears it).
* Adam in the subspace is torch.optim.Adam's form,
  ``lr (m / (1 - b1^s)) / (sqrt(v / (1 - b2^s)) + eps)``.
* Weight decay: decoupled, ``x <- (1 - lr lambda) x`` before the update, for
  every parameter (the code's ``ProjOptimizer.step``).
* signSGD sees only the sign of the residual, so a residual that is zero up to
  rounding (a subspace that holds the whole gradient, e.g. the rank-one
  gradient of a two-class softmax layer) still moves every coordinate by
  ``lr_free``; the paper's code does the same. Use ``state_free="sgd"`` or a
  smaller ``state_free_lr_scale`` where that matters.
* Randomness (random blocks, random bases) comes from
  ``numpy.random.default_rng([seed, refresh index])``: reproducible from the
  state alone.

Exact special cases (tested): ``projection="block"``, ``density=1`` is Adam
(torch convention) bit for bit while no refresh happens; ``density=0`` is
signSGD on every matrix; ``state_free="none"`` with ``projection="svd"`` is
GaLore without its scale factor.

State: ``{"step", "m", "v"}`` (Adam for the parameters that are never
split), ``{"sub_m", "sub_v"}`` (the subspace moments: low-rank arrays, or the
active blocks' full moments), ``"basis"`` (the projectors, ``svd``/``random``)
and ``"sub_step"`` (steps since the last reset).
"""
from __future__ import annotations


import numpy as np

from ..backend import fuse, xp_of
from .base import Optimizer, check_int, check_range, register
from ._projection import clamp_rank, project, project_back, random_basis, svd_basis
from .common import bias_correction

__all__ = ["Frugal", "active_blocks", "subspace_rank"]

PROJECTIONS = ("block", "svd", "random")
STATE_FREE_RULES = ("signsgd", "sgd", "none")
BLOCK_ORDERS = ("random", "ascending", "descending")


@fuse
def _adam_moments(m, v, g, beta1, beta2):
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    return m, v


@fuse
def _adam_direction(m, v, lr, eps, bc1, bc2):
    # torch.optim.Adam's step, the same expression as reference.optim.adam.adam_kernel
    return lr * (m / bc1) / ((v / bc2) ** 0.5 + eps)


def subspace_rank(shape, density):
    """``round(density * s)`` with ``s`` the side the projector acts on (the shorter one)."""
    return int(round(density * min(shape)))


def active_blocks(keys, density, order, refresh_index, seed):
    """The matrices (keys, in the params' order) that are state-full after refresh number
    ``refresh_index`` (0-based): ``round(density * L)`` of the ``L`` matrices."""
    n = len(keys)
    n_active = int(round(density * n))
    if n_active == 0:
        return []
    if order == "random":
        pick = np.random.default_rng([int(seed), int(refresh_index)]).permutation(n)[:n_active]
    elif order == "ascending":
        pick = [(refresh_index * n_active + i) % n for i in range(n_active)]
    else:  # descending, starting from the last matrix
        pick = [(n - 1 - refresh_index * n_active - i) % n for i in range(n_active)]
    return [keys[i] for i in sorted(int(i) for i in pick)]


@register("frugal")
class Frugal(Optimizer):
    paper = dict(title="FRUGAL: Memory-Efficient Optimization by Reducing State Overhead for Scalable Training",
                 authors="Zmushko, Beznosikov, Takac, Horvath", year=2024, arxiv="2411.07837",
                 family="memory-efficient")
    defaults = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, density=0.25, update_gap=200,
                    projection="block", block_order="random", state_free="signsgd", state_free_lr_scale=1.0,
                    reset_state=True, seed=0)
    # The quadratic's and Rosenbrock's params are vectors (never split: Adam), so the defaults
    # pass the descent check as they are.

    def check(self, hp):
        super().check(hp)
        check_range("beta1", hp["beta1"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("beta2", hp["beta2"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        check_range("density", hp["density"], 0.0, 1.0, where=self.name)
        check_range("state_free_lr_scale", hp["state_free_lr_scale"], 0.0, where=self.name)
        for key, low in (("update_gap", 1), ("seed", 0)):
            v = hp[key]
            check_int(key, v, low, where=self.name)
        for key, allowed in (("projection", PROJECTIONS), ("state_free", STATE_FREE_RULES),
                             ("block_order", BLOCK_ORDERS)):
            if hp[key] not in allowed:
                raise ValueError(f"{self.name}: {key} must be one of {allowed}, got {hp[key]!r}")
        if not isinstance(hp["reset_state"], bool):
            raise ValueError(f"{self.name}: reset_state must be True or False, got {hp['reset_state']!r}")

    @staticmethod
    def _splittable(w):
        return w.ndim == 2

    def init_slots(self, params):
        m, v = {}, {}
        for k, w in params.items():
            if not self._splittable(w):
                m[k], v[k] = xp_of(w).zeros_like(w), xp_of(w).zeros_like(w)
        # the subspace (and its state) is chosen at the first step
        return {"m": m, "v": v, "sub_m": {}, "sub_v": {}, "basis": {}, "sub_step": 0}

    # ---- choosing the state-full subspace (every update_gap steps) --------------------
    def _refresh(self, params, grads, state, t, hp):
        """New subspace: returns ``(sub_m, sub_v, basis, sub_step)``."""
        refresh_index = (t - 1) // int(hp["update_gap"])
        keys = [k for k, w in params.items() if self._splittable(w)]
        keep = not hp["reset_state"]
        sub_m, sub_v, basis = {}, {}, {}
        if hp["projection"] == "block":
            for k in active_blocks(keys, hp["density"], hp["block_order"], refresh_index, hp["seed"]):
                # a block that stays active keeps its moments only with reset_state=False
                old = keep and k in state["sub_m"]
                sub_m[k] = state["sub_m"][k] if old else xp_of(grads[k]).zeros_like(grads[k])
                sub_v[k] = state["sub_v"][k] if old else xp_of(grads[k]).zeros_like(grads[k])
            return sub_m, sub_v, basis, (state["sub_step"] if keep else 0)
        rng = np.random.default_rng([int(hp["seed"]), refresh_index])
        for k in keys:
            g = grads[k]
            r = clamp_rank(g.shape, subspace_rank(g.shape, hp["density"]))
            if r == 0:
                continue                                  # nothing state-full in this matrix
            basis[k] = svd_basis(g, r) if hp["projection"] == "svd" else random_basis(g.shape, r, rng, g)
            low_shape = project(g, basis[k]).shape
            old = keep and k in state["sub_m"] and state["sub_m"][k].shape == low_shape
            sub_m[k] = state["sub_m"][k] if old else xp_of(g).zeros(low_shape, dtype=g.dtype)
            sub_v[k] = state["sub_v"][k] if old else xp_of(g).zeros(low_shape, dtype=g.dtype)
        return sub_m, sub_v, basis, (state["sub_step"] if keep else 0)

    # ---- one step -------------------------------------------------------------------
    def update(self, params, grads, state, t, hp):
        lr, b1, b2, eps = hp["lr"], hp["beta1"], hp["beta2"], hp["eps"]
        lr_free = lr * hp["state_free_lr_scale"]
        if (t - 1) % int(hp["update_gap"]) == 0:
            sub_m, sub_v, basis, sub_step = self._refresh(params, grads, state, t, hp)
        else:
            sub_m, sub_v, basis, sub_step = state["sub_m"], state["sub_v"], state["basis"], state["sub_step"]
        sub_step += 1
        new_w, m, v, new_sub_m, new_sub_v = {}, {}, {}, {}, {}
        for k, w in params.items():
            g = grads[k]
            if hp["weight_decay"]:
                w = w - (lr * hp["weight_decay"]) * w                         # decoupled, before the step
            if k in state["m"]:                                               # never split: Adam
                m[k], v[k] = _adam_moments(state["m"][k], state["v"][k], g, b1, b2)
                new_w[k] = w - _adam_direction(m[k], v[k], lr, eps, bias_correction(b1, t), bias_correction(b2, t))
                continue
            bc1, bc2 = bias_correction(b1, sub_step), bias_correction(b2, sub_step)
            if k in basis:                                                    # svd / random subspace
                g_full = project(g, basis[k])                                 # P_k(g)
                g_free = g - project_back(g_full, basis[k], g.shape)          # g - P_k^{-1}(P_k(g))
                new_sub_m[k], new_sub_v[k] = _adam_moments(sub_m[k], sub_v[k], g_full, b1, b2)
                u_full = _adam_direction(new_sub_m[k], new_sub_v[k], lr, eps, bc1, bc2)
                w = w - project_back(u_full, basis[k], g.shape)
            elif k in sub_m:                                                  # an active block: all state-full
                new_sub_m[k], new_sub_v[k] = _adam_moments(sub_m[k], sub_v[k], g, b1, b2)
                new_w[k] = w - _adam_direction(new_sub_m[k], new_sub_v[k], lr, eps, bc1, bc2)
                continue
            else:                                                             # an inactive block: all state-free
                g_free = g
            if hp["state_free"] == "signsgd":
                w = w - lr_free * xp_of(g_free).sign(g_free)
            elif hp["state_free"] == "sgd":
                w = w - lr_free * g_free
            new_w[k] = w
        return new_w, {"m": m, "v": v, "sub_m": new_sub_m, "sub_v": new_sub_v, "basis": basis,
                       "sub_step": sub_step}
