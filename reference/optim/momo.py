"""MoMo: Momentum Models for Adaptive Learning Rates.

Fabian Schaipp, Ruben Ohana, Michael Eickenberg, Aaron Defazio, Robert M. Gower.
ICML 2024. arXiv:2305.07583

SGD with momentum averages the gradients; MoMo averages the *linear models*
``f(x_j; s_j) + <g_j, x - x_j>`` of the batch losses seen so far, truncates
the averaged model at a known lower bound ``f_*`` of the loss (0 for most
losses), and takes a proximal step on it. The averaged model needs three
averages (Algorithm 1), with ``f_k = f(x_k; s_k)`` and ``g_k`` its gradient:

    fbar_k  = beta fbar_{k-1}  + (1 - beta) f_k              (loss average)
    d_k     = beta d_{k-1}     + (1 - beta) g_k              (momentum)
    gamma_k = beta gamma_{k-1} + (1 - beta) <g_k, x_k>
    h_k     = fbar_k + <d_k, x_k> - gamma_k                  (the model's value at x_k)
    tau_k   = min{ alpha, (h_k - f_*)_+ / ||d_k||^2 }
    x_{k+1} = x_k - tau_k d_k

so MoMo is SGD-M whose step size is capped Polyak-style: far above ``f_*``
it takes the user's ``alpha`` (``lr``), close to it the step shrinks on its
own. That is what makes it robust to ``lr`` over orders of magnitude.
The averages start at the first values (``fbar_1 = f_1``, ``d_1 = g_1``,
``gamma_1 = <g_1, x_1>``).

**Bias correction** (the paper's appendix; ``bias_correction=True``): the
averages start at zero and, with ``rho_k = 1 - beta^k``,
``tau_k = min{ alpha / rho_k, (h_k - rho_k f_*)_+ / ||d_k||^2 }``.

**Weight decay** ``lambda`` (Sec. "MoMo with weight decay"): the proximal
step on the model plus ``lambda/2 ||x||^2`` is

    tau_k   = min{ alpha, [(1 + alpha lambda)(fbar_k - rho_k f_*) + <d_k, x_k>
                           - (1 + alpha lambda) gamma_k]_+ / ||d_k||^2 }
    x_{k+1} = (x_k - tau_k d_k) / (1 + alpha lambda).

**MoMo-Adam** (Algorithm 2; registered as ``momo_adam``) uses the same
model in Adam's geometry: with ``v_k = beta2 v_{k-1} + (1 - beta2) g_k^2``
and ``D_k = diag(eps + sqrt(v_k / (1 - beta2^k)))``, always the
bias-corrected averages (zero start, ``rho_k = 1 - beta1^k``, ``beta =
beta1`` for ``fbar``, ``d`` and ``gamma``):

    tau_k   = min{ alpha / rho_k, (h_k - rho_k f_*)_+ / ||d_k||^2_{D_k^{-1}} }
    x_{k+1} = x_k - tau_k D_k^{-1} d_k

(with weight decay as above: the ``(1 + alpha lambda)`` factors in the
numerator and a division by ``1 + alpha lambda`` after the step, or, with
``divide=False``, AdamW's ``x <- (1 - alpha lambda) x`` before it).

**MoMo\\*** (``estimate_lower_bound=True``, the paper's online lower bound
for losses whose minimum is unknown): ``f_*`` starts at ``lower_bound`` and
is updated every step; before the step it is reset to
``max(cap / (2 c rho_k), lower_bound)`` when ``cap = c fbar_k + <d_k, x_k>
- c gamma_k`` falls below ``c rho_k f_*`` (``c = 1 + alpha lambda``), and after
it becomes ``max((h_k - tau_k ||d_k||^2 / 2) / rho_k, lower_bound)``.

Hyperparameters (``lr`` is the paper's ``alpha``, ``lower_bound`` its
``f_*``; defaults of the official package ``momo-opt``): MoMo ``lr=1``,
``beta=0.9``; MoMo-Adam ``lr=1e-2``, ``beta1=0.9``, ``beta2=0.999``,
``eps=1e-8``; both ``lower_bound=0`` (the **interpolation/nonnegative-loss
assumption**: set it to a known lower bound of every batch loss; a value
above the true minimum stalls the method there), ``weight_decay=0``.

Conventions (all those of the official implementation ``momo-opt`` 0.1.0,
fabian-sp/MoMo, whose trajectories ``tests/test_model_based.py`` checks):

* the averaged quantities are *not* divided by ``rho_k``; instead ``alpha``
  and ``f_*`` are rescaled by it, as written above;
* ``eps`` is added outside the square root of the bias-corrected ``v``,
  like Adam; ``||d||^2_{D^{-1}} = sum d^2 / D``;
* the loss enters as the oracle returns it, cast to the params' dtype; the
  loss is summed over all parameters (one step size for the whole tree);
* a zero momentum ``d_k = 0`` gives ``tau_k = alpha`` (nothing moves) instead
  of 0/0;
* everything stays on the device: ``tau_k`` and the averages are 0-d arrays,
  the min/max are ``xp.minimum``/``xp.maximum`` (no host synchronisation).
"""
from __future__ import annotations

from .. import tree
from ..backend import fuse, xp_of
from .base import Optimizer, check_grads, check_range, register
from .common import bias_correction, ema


def _scalar(value, like):
    """``value`` (a loss, an average: Python float, NumPy scalar or 0-d array) as a 0-d array of
    ``like``'s dtype. (A NumPy float64 *scalar* is a Python float subclass and would be saved as one.)"""
    xp = xp_of(like)
    return xp.asarray(value).astype(like.dtype).reshape(())


def momo_step_size(loss_avg, dot, gamma, norm_sq, lower_bound, lr, rho, c, estimate, initial_lower_bound):
    """The truncated-model step size and the lower bound for the next step.

    ``h = loss_avg + dot - gamma`` is the model's value at ``x_k``; with ``c = 1 + lr lambda``
    the step is ``min(lr / rho, [c (loss_avg - rho f_*) + dot - c gamma]_+ / norm_sq)``.
    With ``estimate`` (MoMo*), ``f_*`` is reset before and updated after the step.
    All inputs but the hyperparameters are 0-d arrays; so are both results.
    """
    xp = xp_of(loss_avg)
    if estimate:   # reset when the model at x_k has dropped below the current estimate
        cap = c * loss_avg + dot - c * gamma
        lower_bound = xp.where(cap < c * rho * lower_bound,
                               xp.maximum(cap / (2.0 * c * rho), initial_lower_bound), lower_bound)
    numerator = xp.maximum(c * (loss_avg - rho * lower_bound) + dot - c * gamma, 0.0)
    positive = norm_sq > 0
    polyak = xp.where(positive, numerator / xp.where(positive, norm_sq, 1.0), lr / rho)
    tau = xp.minimum(lr / rho, polyak)
    if estimate:   # the model's minimum along the step, as the next lower bound
        h = loss_avg + dot - gamma
        lower_bound = xp.maximum((h - 0.5 * tau * norm_sq) / rho, initial_lower_bound)
    return _scalar(tau, loss_avg), _scalar(lower_bound, loss_avg)


def _check_common(opt, hp):
    check_range("weight_decay", hp["weight_decay"], 0.0, where=opt.name)
    check_range("lower_bound", hp["lower_bound"], where=opt.name)
    for flag in ("estimate_lower_bound",) + (("bias_correction",) if "bias_correction" in hp else ()) \
            + (("divide",) if "divide" in hp else ()):
        if not isinstance(hp[flag], bool):
            raise ValueError(f"{opt.name}: {flag} must be True or False, got {hp[flag]!r}")


def _scalar_slots(params, lower_bound):
    ref = next(iter(params.values()))
    xp = xp_of(ref)
    return {"loss_avg": xp.zeros((), dtype=ref.dtype), "gamma": xp.zeros((), dtype=ref.dtype),
            "lower_bound": _scalar(lower_bound, ref)}


@register("momo")
class MoMo(Optimizer):
    paper = dict(title="MoMo: Momentum Models for Adaptive Learning Rates",
                 authors="Schaipp, Ohana, Eickenberg, Defazio, Gower", year=2024, arxiv="2305.07583",
                 family="optimizer-first-order")
    defaults = dict(lr=1.0, beta=0.9, lower_bound=0.0, weight_decay=0.0, bias_correction=False,
                    estimate_lower_bound=False)
    #: a lower bound of the loss may be negative
    negative_ok = ("lower_bound",)

    def check(self, hp):
        super().check(hp)
        check_range("beta", hp["beta"], 0.0, 1.0, high_open=True, where=self.name)
        _check_common(self, hp)

    def init_slots(self, params):
        return {"d": tree.zeros_like(params), **_scalar_slots(params, self.hparams["lower_bound"])}

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        loss, grads = oracle(params)
        check_grads(self.name, params, grads, t)
        hp = self.hparams_at(t)
        lr, beta, lam = hp["lr"], hp["beta"], hp["weight_decay"]
        f = _scalar(loss, next(iter(params.values())))
        g_dot_x = tree.vdot(grads, params).astype(f.dtype)                # <g_k, x_k>
        if t == 1 and not hp["bias_correction"]:                          # start at the first values
            loss_avg, d, gamma = f, grads, g_dot_x
        else:
            loss_avg = beta * state["loss_avg"] + (1.0 - beta) * f        # fbar_k
            d = ema(state["d"], grads, beta)                              # d_k
            gamma = beta * state["gamma"] + (1.0 - beta) * g_dot_x        # gamma_k
        rho = bias_correction(beta, t) if hp["bias_correction"] else 1.0
        c = 1.0 + lr * lam
        tau, lower_bound = momo_step_size(
            loss_avg, tree.vdot(d, params), gamma, tree.vdot(d, d), state["lower_bound"],
            lr, rho, c, hp["estimate_lower_bound"], hp["lower_bound"])
        new = tree.axpy(-tau, d, params)                                  # x_k - tau_k d_k
        if lam > 0:
            new = tree.scale(1.0 / c, new)                                # proximal weight decay
        return new, {"step": t, "d": d, "loss_avg": _scalar(loss_avg, f), "gamma": _scalar(gamma, f),
                     "lower_bound": lower_bound}


@fuse
def _adam_moments(m, v, g, beta1, beta2):
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    return m, v


@fuse
def _preconditioner(v, bc2, eps):
    return (v / bc2) ** 0.5 + eps                                         # D_k


@fuse
def _preconditioned_step(w, m, D, tau, decay, divisor):
    return (decay * w - tau * m / D) / divisor


@register("momo_adam")
class MoMoAdam(Optimizer):
    """MoMo-Adam (Algorithm 2 of the MoMo paper; catalogued under ``momo``)."""
    defaults = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, lower_bound=0.0, weight_decay=0.0,
                    divide=True, estimate_lower_bound=False)
    negative_ok = ("lower_bound",)

    def check(self, hp):
        super().check(hp)
        check_range("beta1", hp["beta1"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("beta2", hp["beta2"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        _check_common(self, hp)

    def init_slots(self, params):
        return {"m": tree.zeros_like(params), "v": tree.zeros_like(params),
                **_scalar_slots(params, self.hparams["lower_bound"])}

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        loss, grads = oracle(params)
        check_grads(self.name, params, grads, t)
        hp = self.hparams_at(t)
        lr, b1, b2, lam = hp["lr"], hp["beta1"], hp["beta2"], hp["weight_decay"]
        f = _scalar(loss, next(iter(params.values())))
        m, v, D = {}, {}, {}
        for k in params:
            m[k], v[k] = _adam_moments(state["m"][k], state["v"][k], grads[k], b1, b2)   # d_k, v_k
            D[k] = _preconditioner(v[k], bias_correction(b2, t), hp["eps"])
        loss_avg = b1 * state["loss_avg"] + (1.0 - b1) * f                              # fbar_k
        gamma = b1 * state["gamma"] + (1.0 - b1) * tree.vdot(grads, params).astype(f.dtype)
        norm_sq = sum(xp_of(m[k]).sum(m[k] * m[k] / D[k]) for k in params)             # ||d||^2_{D^-1}
        c = 1.0 + lr * lam
        tau, lower_bound = momo_step_size(
            loss_avg, tree.vdot(m, params), gamma, norm_sq, state["lower_bound"],
            lr, bias_correction(b1, t), c, hp["estimate_lower_bound"], hp["lower_bound"])
        if hp["divide"]:   # proximal weight decay: (x - tau D^-1 d) / (1 + lr lambda)
            decay, divisor = 1.0, c
        else:              # AdamW's: (1 - lr lambda) x - tau D^-1 d
            decay, divisor = 1.0 - lr * lam, 1.0
        new = {k: _preconditioned_step(params[k], m[k], D[k], tau, decay, divisor) for k in params}
        return new, {"step": t, "m": m, "v": v, "loss_avg": _scalar(loss_avg, f), "gamma": _scalar(gamma, f),
                     "lower_bound": lower_bound}
