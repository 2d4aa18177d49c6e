"""ADAHESSIAN: An Adaptive Second Order Optimizer for Machine Learning.

Zhewei Yao, Amir Gholami, Sheng Shen, Mustafa Mustafa, Kurt Keutzer, Michael W. Mahoney.
AAAI 2021. arXiv:2006.00719

Adam divides the momentum by the root of an EMA of the *squared gradient*;
AdaHessian divides it by the root of an EMA of the squared *Hessian
diagonal*, so that the step is scaled by the curvature, as in Newton's
method, but only along the coordinates. The diagonal comes from Hutchinson's
estimator, one Hessian-vector product per step with a Rademacher probe ``z``
(entries +-1, ``E[z z^T] = I``):

    D_t         = z_t * (H_t z_t)                      (Sec. 3.1; E[D_t] = diag H_t)
    D^(s)_t     = D_t averaged over blocks of b         (Eq. 9, "spatial averaging")
    v_t         = beta2 v_{t-1} + (1 - beta2) D^(s)_t * D^(s)_t
    Dbar_t      = sqrt(v_t / (1 - beta2^t))            (Eq. 10, the RMS of the Hessian diagonals)
    m_t         = beta1 m_{t-1} + (1 - beta1) g_t
    mhat_t      = m_t / (1 - beta1^t)                  (Eq. 11)
    theta_t     = theta_{t-1} - lr mhat_t / (Dbar_t^k + eps)     (Algorithm 1)

with the Hessian power ``k`` in ``(0, 1]`` (``k = 1``: a diagonal Newton
step with momentum; ``k = 1/2`` is milder). Defaults from the paper and its
official code (amirgholami/adahessian): ``lr = 0.15``, ``beta1 = 0.9``,
``beta2 = 0.999``, ``eps = 1e-4``, ``k = 1``, no weight decay.

Spatial averaging (Eq. 9) replaces every entry of ``D`` by the mean over its
block: the paper uses it for convolution kernels, whose block is one
kernel's spatial extent (``kh x kw``), and keeps block size 1 for vectors
and matrices. ``spatial_average``:

* ``"kernel"`` (default): parameters with 3 or more dimensions (conv
  kernels ``(out, in, kh, kw)``, 1-D conv kernels ``(out, in, k)``) are
  averaged over their trailing dimensions (2 and beyond); vectors and
  matrices are not averaged (the paper's image classification code);
* ``"row"``: as ``"kernel"``, and each row of a matrix is one block (what
  the official "instruction" code does for fully connected layers,
  the setting of its transformer runs);
* ``"none"``: no averaging (pytorch_optimizer's AdaHessian).

Conventions that differ between implementations, and the choices made:

* **What is averaged.** The paper averages the signed ``D = z * Hz``; the
  official code averages ``|Hz| = |z * Hz|``. The two agree wherever the
  block has size 1 (only ``D^2`` enters ``v``). Default: the paper's signed
  form; ``absolute=True`` gives the official code's.
* **eps** is added to ``Dbar^k`` outside the root (paper, official code and
  pytorch_optimizer alike). The bias correction of ``v`` is applied before
  the power, ``(v_t / (1 - beta2^t))^(k/2)``, pytorch_optimizer's form; the
  official ``sqrt(v)^k / sqrt(1 - beta2^t)^k`` is the same number up to
  rounding.
* **Weight decay** is decoupled and scaled by ``lr``: ``theta <- theta - lr
  (mhat / (Dbar^k + eps) + weight_decay theta)`` (official code;
  pytorch_optimizer's default ``weight_decouple=True``).
* **The probes** live in the state: ``state["seed"]`` (from the ``seed``
  hyperparameter at ``init``) and the step counter give step ``t`` its own
  generator ``numpy.random.default_rng([seed, t])``, so a resumed run draws
  exactly the probes of an uninterrupted one. Each probe is one vector over
  all parameters in the params' key order (``reference.tree.flatten``),
  drawn on the host in float64 (``reference.curvature.diagonal``, which
  averages ``n_samples`` probes). pytorch_optimizer draws one probe per
  tensor from torch's global generator; its golden trajectories are made by
  feeding it these probes.
* **Hessian-vector products** come from the oracle's ``hvp(params, v)``
  (every ``reference.problems`` oracle has one); a plain oracle that only
  returns ``(loss, grads)`` raises ``TypeError`` naming ``hvp``. (A
  finite-difference fallback would need extra gradient calls per step and
  is not offered.)
"""
from __future__ import annotations

import numpy as np

from .. import curvature, tree
from ..backend import fuse, xp_of
from .base import Optimizer, check_grads, check_int, check_range, register
from .common import bias_correction, decoupled_decay

SPATIAL_AVERAGES = ("kernel", "row", "none")


def require_hvp(where, oracle):
    """Raise ``TypeError`` naming ``hvp`` unless the oracle offers Hessian-vector products."""
    if not callable(getattr(oracle, "hvp", None)):
        raise TypeError(f"{where} needs Hessian-vector products: pass a rich oracle with .hvp(params, v) "
                        f"(e.g. problem.oracle(batch)); got {type(oracle).__name__}, which only returns "
                        "(loss, grads)")


def probe_generator(seed, t):
    """The generator of step ``t``'s probes: a function of the state's seed and the step alone."""
    return np.random.default_rng([int(seed), int(t)])


def hutchinson_diagonal(oracle, params, seed, t, n_samples=1):
    """``D_t``: Hutchinson's estimate of the Hessian diagonal with step ``t``'s Rademacher probes."""
    return curvature.diagonal(oracle, params, n_samples=n_samples, seed=probe_generator(seed, t),
                              distribution="rademacher")


def spatial_average(d, mode="kernel"):
    """Eq. 9: every entry of ``d`` replaced by the mean over its block (see the module docstring)."""
    if mode == "none":
        return dict(d)
    out = {}
    for k, x in d.items():
        if x.ndim >= 3:                                    # conv kernel: one block per (out, in) pair
            axes = tuple(range(2, x.ndim))
        elif x.ndim == 2 and mode == "row":                # fully connected: one block per row
            axes = (1,)
        else:
            out[k] = x
            continue
        out[k] = xp_of(x).broadcast_to(x.mean(axis=axes, keepdims=True), x.shape).copy()
    return out


@fuse
def adahessian_kernel(w, g, d, m, v, lr, beta1, beta2, half_k, eps, bc1, bc2):
    """One AdaHessian update of one array (Eqs. 10-11, Algorithm 1)."""
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * d * d
    w = w - lr * (m / bc1) / ((v / bc2) ** half_k + eps)
    return w, m, v


@register("adahessian")
class AdaHessian(Optimizer):
    """AdaHessian (Algorithm 1 of the paper); see the module docstring.

    State: ``m`` (EMA of gradients), ``v`` (EMA of squared, spatially averaged
    Hessian diagonals), ``seed`` (the probes' seed) and ``step``.
    """

    paper = dict(title="ADAHESSIAN: An Adaptive Second Order Optimizer for Machine Learning",
                 authors="Yao, Gholami, Shen, Mustafa, Keutzer, Mahoney", year=2021, arxiv="2006.00719",
                 family="optimizer-second-order")
    defaults = dict(lr=0.15, beta1=0.9, beta2=0.999, eps=1e-4, hessian_power=1.0, weight_decay=0.0,
                    spatial_average="kernel", absolute=False, n_samples=1, seed=0)

    def check(self, hp):
        super().check(hp)
        check_range("beta1", hp["beta1"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("beta2", hp["beta2"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        check_range("hessian_power", hp["hessian_power"], 0.0, 1.0, low_open=True, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        if hp["spatial_average"] not in SPATIAL_AVERAGES:
            raise ValueError(f"{self.name}: spatial_average must be one of {SPATIAL_AVERAGES}, "
                             f"got {hp['spatial_average']!r}")
        if not isinstance(hp["absolute"], bool):
            raise ValueError(f"{self.name}: absolute must be True or False, got {hp['absolute']!r}")
        for name in ("n_samples", "seed"):
            value = hp[name]
            low = 1 if name == "n_samples" else 0
            check_int(name, value, low, where=self.name)

    def init_slots(self, params):
        return {"m": tree.zeros_like(params), "v": tree.zeros_like(params), "seed": int(self.hparams["seed"])}

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        require_hvp(self.name, oracle)
        _, grads = oracle(params)
        check_grads(self.name, params, grads, t)
        # D_t = z * (H z), one Rademacher probe (or the mean of n_samples), then Eq. 9
        d = hutchinson_diagonal(oracle, params, state["seed"], t, hp["n_samples"])
        check_grads(f"{self.name} (Hessian diagonal)", params, d, t)
        if hp["absolute"]:
            d = tree.map(xp_of(d).abs, d)
        d = spatial_average(d, hp["spatial_average"])
        lr = hp["lr"]
        w = decoupled_decay(params, lr, hp["weight_decay"])
        bc1, bc2 = bias_correction(hp["beta1"], t), bias_correction(hp["beta2"], t)
        new_w, new_m, new_v = {}, {}, {}
        for k in params:
            new_w[k], new_m[k], new_v[k] = adahessian_kernel(
                w[k], grads[k], d[k], state["m"][k], state["v"][k], lr, hp["beta1"], hp["beta2"],
                0.5 * hp["hessian_power"], hp["eps"], bc1, bc2)
        return new_w, {"m": new_m, "v": new_v, "seed": state["seed"], "step": t}
