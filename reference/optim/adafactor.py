"""Adafactor: Adaptive Learning Rates with Sublinear Memory Cost.

Noam Shazeer and Mitchell Stern. ICML 2018. arXiv:1804.04235

Adam and RMSProp keep one second-moment accumulator per parameter. For an
``n x m`` weight matrix Adafactor keeps only the running *row sums* ``R`` (n
numbers) and *column sums* ``C`` (m numbers) of the squared gradients and
rebuilds a rank-one estimate ``V_hat = R C / (1^T R)`` of the full
accumulator (the minimiser of the generalised KL divergence to it among
rank-one non-negative matrices, Sec. 3): O(n + m) memory instead of O(n m).
Vectors keep a full accumulator. The paper adds three more changes (Sec.
5-8): no momentum, an increasing second-moment decay, update clipping, and a
step size relative to the scale of the parameters. Algorithm 4 (matrices),
for ``t = 1, 2, ...``:

    alpha_t = max(eps2, RMS(X_{t-1})) rho_t                    relative step size
    G_t     = grad f_t(X_{t-1})
    R_t     = beta2_t R_{t-1} + (1 - beta2_t) (G_t^2 + eps1 1_n 1_m^T) 1_m
    C_t     = beta2_t C_{t-1} + (1 - beta2_t) 1_n^T (G_t^2 + eps1 1_n 1_m^T)
    V_hat_t = R_t C_t / (1_n^T R_t)
    U_t     = G_t / sqrt(V_hat_t)
    U_hat_t = U_t / max(1, RMS(U_t) / d)                        update clipping
    X_t     = X_{t-1} - alpha_t U_hat_t

and Algorithm 5 (vectors) replaces the factored estimate by
``V_hat_t = beta2_t V_hat_{t-1} + (1 - beta2_t)(G_t^2 + eps1)``. The
proposed hyperparameters (Sec. 9): ``eps1 = 1e-30``, ``eps2 = 1e-3``,
``d = 1``, ``rho_t = min(1e-2, 1 / sqrt(t))``, ``beta1 = 0``,
``beta2_t = 1 - t^(-0.8)`` (``beta2_1 = 0``, so no bias correction is needed:
the EMA's weights always sum to one).

Hyperparameters (keyword = paper symbol): ``lr`` = ``rho_t`` (``None``, the
default, is the paper's relative schedule ``min(1e-2, 1/sqrt(t))``; a float
or a schedule ``k -> rho`` replaces it), ``decay_rate`` = ``c`` in
``beta2_t = 1 - t^(-c)``, ``clip_threshold`` = ``d``, ``eps1``, ``eps2``,
``beta1`` (momentum, 0 = none), ``scale_parameter`` (the ``max(eps2,
RMS(X))`` factor; False gives ``alpha_t = rho_t``), and three options that
implementations add: ``warmup_init`` (``rho_t = min(1e-6 t, 1/sqrt(t))``,
from tensor2tensor / transformers), ``beta2_cap`` (``beta2_t = min(cap, 1 -
t^(-c))``, pytorch_optimizer's ``betas[1]``; the paper's form is
``beta2_cap = 1``, the default) and ``weight_decay``.

Conventions and how the peers differ (pytorch_optimizer.AdaFactor, read from
its source; transformers.optimization.Adafactor follows the same recipe):

* The peers store row and column *means* of ``G^2 + eps1`` instead of sums;
  ``V_hat`` is identical (``R C / 1^T R`` with sums equals ``r c / mean(r)``
  with means). We store the paper's sums. Tensors with more than two axes are
  factored over their last two axes (as both peers do).
* ``beta2_t``: transformers uses ``1 - t^(-0.8)`` (the paper's);
  pytorch_optimizer caps it at ``betas[1] = 0.999`` by default. We default to
  the paper (no cap) and offer ``beta2_cap``.
* Momentum (``beta1 > 0``; the paper's Table 2 tries it but gives no
  formula): both peers average the *final, clipped and scaled* update,
  ``m_t = beta1 m_{t-1} + (1 - beta1) alpha_t U_hat_t``, ``X_t = X_{t-1} -
  m_t``; we do the same. (pytorch_optimizer keeps this buffer in bfloat16 by
  default; we keep the params' dtype, as its ``momentum_dtype`` option allows.)
* Weight decay (not in the paper): decoupled and scaled by the step,
  ``X <- X - alpha_t lambda X`` before the update, as both peers do.
* ``RMS(X_{t-1})`` is taken before the weight decay, as in both peers.

State: ``{"step", "row": {key: R}, "col": {key: C}, "v": {key: V}}`` with
``row``/``col`` for arrays of two or more axes and ``v`` for the others, plus
``"m"`` when ``beta1 > 0``. ``reference.tree.nbytes`` of the state of an
``n x m`` matrix is ``(n + m) * itemsize`` (Adam's is ``2 n m * itemsize``).
"""
from __future__ import annotations

import math

from ..backend import fuse, xp_of
from .base import Optimizer, check_lr, check_range, register

__all__ = ["Adafactor", "is_factored", "factored_second_moment", "rms"]


def is_factored(shape):
    """True for arrays whose second moment is factored (two or more axes)."""
    return len(shape) >= 2


def rms(x):
    """``sqrt(mean(x^2))`` as a 0-d array (no host sync)."""
    xp = xp_of(x)
    return xp.sqrt(xp.mean(x * x))


def factored_second_moment(row, col):
    """``V_hat = R C / (1^T R)`` from row sums ``R`` (shape ``s[:-1]``) and column sums ``C``
    (shape ``s[:-2] + s[-1:]``), over the last two axes."""
    total = row.sum(axis=-1, keepdims=True)                    # 1_n^T R_t, shape s[:-2] + (1,)
    return (row / total)[..., :, None] * col[..., None, :]


@fuse
def _ema_kernel(avg, x, beta):
    return beta * avg + (1.0 - beta) * x


@fuse
def _scale_by_rsqrt_kernel(g, v):
    # U_t = G_t / sqrt(V_hat_t)
    return g / v ** 0.5


def relative_step_size(t, warmup_init):
    """The paper's ``rho_t = min(1e-2, 1/sqrt(t))``; with warmup, ``min(1e-6 t, 1/sqrt(t))``."""
    return min(1e-6 * t if warmup_init else 1e-2, 1.0 / math.sqrt(t))


@register("adafactor")
class Adafactor(Optimizer):
    paper = dict(title="Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
                 authors="Shazeer, Stern", year=2018, arxiv="1804.04235", family="memory-efficient")
    defaults = dict(lr=None, beta1=0.0, decay_rate=0.8, clip_threshold=1.0, eps1=1e-30, eps2=1e-3,
                    scale_parameter=True, warmup_init=False, beta2_cap=1.0, weight_decay=0.0)
    # The relative step (alpha ~ 1e-2 RMS(X)) moves Rosenbrock's (-1.2, 1) by about 1e-2 per step;
    # 200 steps go from loss 24.2 to ~4, so the defaults pass the descent check as they are.

    def check(self, hp):
        if hp["lr"] is not None:
            check_lr("lr", hp["lr"], self.name)
        check_range("beta1", hp["beta1"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("decay_rate", hp["decay_rate"], 0.0, 1.0, low_open=True, where=self.name)
        check_range("clip_threshold", hp["clip_threshold"], 0.0, low_open=True, where=self.name)
        check_range("eps1", hp["eps1"], 0.0, where=self.name)
        check_range("eps2", hp["eps2"], 0.0, where=self.name)
        check_range("beta2_cap", hp["beta2_cap"], 0.0, 1.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        for flag in ("scale_parameter", "warmup_init"):
            if not isinstance(hp[flag], bool):
                raise ValueError(f"{self.name}: {flag} must be True or False, got {hp[flag]!r}")
        if hp["warmup_init"] and hp["lr"] is not None:
            raise ValueError(f"{self.name}: warmup_init=True shapes the relative step size; it needs lr=None, "
                             f"got lr={hp['lr']!r}")

    def init_slots(self, params):
        row, col, v = {}, {}, {}
        for k, w in params.items():
            xp = xp_of(w)
            if is_factored(w.shape):
                row[k] = xp.zeros(w.shape[:-1], dtype=w.dtype)                 # R_0 = 0 (n numbers)
                col[k] = xp.zeros(w.shape[:-2] + w.shape[-1:], dtype=w.dtype)  # C_0 = 0 (m numbers)
            else:
                v[k] = xp.zeros_like(w)                                         # V_0 = 0 (vectors)
        slots = {"row": row, "col": col, "v": v}
        if self.hparams["beta1"] > 0:
            slots["m"] = {k: xp_of(w).zeros_like(w) for k, w in params.items()}
        return slots

    def update(self, params, grads, state, t, hp):
        beta2_t = min(hp["beta2_cap"], 1.0 - t ** (-hp["decay_rate"]))   # increasing decay, beta2_1 = 0
        rho_t = relative_step_size(t, hp["warmup_init"]) if hp["lr"] is None else hp["lr"]
        eps1, eps2, d, beta1, lam = hp["eps1"], hp["eps2"], hp["clip_threshold"], hp["beta1"], hp["weight_decay"]
        new_w, row, col, v = {}, {}, {}, {}
        m = {} if beta1 > 0 else None
        for k, x in params.items():
            xp, g = xp_of(x), grads[k]
            # alpha_t = max(eps2, RMS(X_{t-1})) rho_t
            alpha = xp.maximum(rms(x), eps2) * rho_t if hp["scale_parameter"] else rho_t
            sq = g * g + eps1                                                  # G_t^2 + eps1
            if is_factored(x.shape):
                row[k] = _ema_kernel(state["row"][k], sq.sum(axis=-1), beta2_t)   # R_t
                col[k] = _ema_kernel(state["col"][k], sq.sum(axis=-2), beta2_t)   # C_t
                v_hat = factored_second_moment(row[k], col[k])                    # R_t C_t / 1^T R_t
            else:
                v[k] = v_hat = _ema_kernel(state["v"][k], sq, beta2_t)
            u = _scale_by_rsqrt_kernel(g, v_hat)                                  # U_t
            u = u / xp.maximum(rms(u) / d, 1.0)                                   # U_hat_t (clipping)
            if lam:
                x = x - (alpha * lam) * x                                         # decoupled decay
            step = alpha * u
            if m is not None:
                m[k] = step = _ema_kernel(state["m"][k], step, beta1)
            new_w[k] = x - step                                                   # X_t
        slots = {"row": row, "col": col, "v": v}
        if m is not None:
            slots["m"] = m
        return new_w, slots

