"""MARS: Unleashing the Power of Variance Reduction for Training Large Models.

Huizhuo Yuan, Yifeng Liu, Shuang Wu, Xun Zhou, Quanquan Gu. ICML 2025. arXiv:2411.10438

Variance reduction (SVRG, SARAH, STORM) corrects a stochastic gradient with
the *change* of the gradient between the previous and the current iterate
on the same batch, which cancels most of the batch noise. MARS (Make
vAriance Reduction Shine) puts a scaled STORM correction in front of a
preconditioned optimizer; its AdamW instance (Algorithm 2, MARS-AdamW) is

    c_t      = g(x_t; xi_t) + gamma (beta1 / (1 - beta1)) (g(x_t; xi_t) - g(x_{t-1}; xi_t))
    c~_t     = c_t / ||c_t||_2    if ||c_t||_2 > 1,   else c_t              (clipping)
    m_t      = beta1 m_{t-1} + (1 - beta1) c~_t
    v_t      = beta2 v_{t-1} + (1 - beta2) c~_t^2
    m_hat_t  = m_t / (1 - beta1^t),   v_hat_t = v_t / (1 - beta2^t)
    x_{t+1}  = x_t - eta_t ( m_hat_t / (sqrt(v_hat_t) + eps) + lambda x_t )

``gamma`` scales the correction (``gamma = 0`` is AdamW on gradients clipped
to norm 1; ``gamma = 1`` would be the full STORM estimator, which the paper
finds too aggressive for large models). With ``m_0 = 0`` and ``x_0 = x_1``
the correction vanishes at the first step.

**Two gradients per step (the exact variant, the default).** ``g(x_{t-1};
xi_t)`` is the gradient at the *previous* params on the *current* batch. The
oracle handed to ``step`` is the oracle of batch ``xi_t``, so ``step`` calls
it twice: at ``x_t`` and at ``x_{t-1}``, which the state keeps
(``state["prev_params"]``). Each step therefore costs two gradient
evaluations (one at ``t = 1``), and the loss an outer loop records is the
first call's, at ``x_t``. **The approximate variant** (``variant="approx"``,
the paper's MARS-approx, and the default of the official code and of
pytorch_optimizer) replaces ``g(x_{t-1}; xi_t)`` by the previous step's
gradient ``g(x_{t-1}; xi_{t-1})`` (``state["last_grad"]``), one oracle call
per step; it then starts from ``last_grad = 0`` (official code), so its first
``c_1`` is ``(1 + gamma beta1 / (1 - beta1)) g_1`` before clipping.

Defaults (the paper's GPT-2 settings and the official code's): lr = 3e-3,
beta1 = 0.95, beta2 = 0.99, gamma = 0.025, eps = 1e-8, weight_decay = 0.

Conventions:

* The clipping norm is taken **per parameter tensor** (official code,
  pytorch_optimizer), not over the whole model; the threshold is 1.
* ``eps`` outside the square root of the bias-corrected ``v`` (the paper and
  the official code: ``denom = sqrt(v) / sqrt(1 - beta2^t) + eps``).
  pytorch_optimizer instead adds ``eps`` (and 1e-15 under the root) *before*
  the bias correction, i.e. an effective ``eps / sqrt(1 - beta2^t)``; the golden
  comparison with it therefore runs at ``eps = 0`` and a hand-computed step
  pins the ``eps`` placement (see the tests).
* Weight decay is decoupled and scaled by ``lr``, applied with ``x_t`` (as
  ``lambda x_t`` inside ``eta_t ( ... )`` above).
* MARS is applied to **every** parameter, as in the paper's algorithm; the
  official code by default hands 1-D parameters (biases, norms) to plain AdamW
  with other betas (``optimize_1d=False``), which is not reproduced.
* Only the AdamW instance is implemented; MARS-Lion (``sign(m_t)``) and
  MARS-Shampoo (an orthogonalised ``m_t``) swap the last line.

Peer: pytorch_optimizer.MARS (the approximate variant, ``optimize_1d=True``),
checked to 1e-10 at ``eps = 0`` in ``tests/test_momentum_family.py``; the
exact variant is checked against a hand-written loop with two gradient calls.
"""
from __future__ import annotations

from .. import tree
from ..backend import fuse, xp_of
from .base import Optimizer, check_grads, check_range, register
from .common import bias_correction, decoupled_decay

__all__ = ["MARS", "corrected_gradient"]

VARIANTS = ("exact", "approx")


def corrected_gradient(g, g_prev, gamma, beta1):
    """``c~_t``: the scaled STORM correction of one tensor, clipped to norm 1."""
    c = (g - g_prev) * (gamma * (beta1 / (1.0 - beta1))) + g
    xp = xp_of(c)
    norm = xp.sqrt(xp.vdot(c.ravel(), c.ravel()))
    return c / xp.maximum(norm, 1.0)          # c / ||c|| if ||c|| > 1, else c (divided by 1.0: exact)


@fuse
def mars_adamw_kernel(w, c, m, v, lr, beta1, beta2, eps, bc1, bc2):
    """The AdamW step on the corrected gradient ``c`` (weight decay already applied to ``w``)."""
    m = beta1 * m + (1.0 - beta1) * c
    v = beta2 * v + (1.0 - beta2) * c * c
    w = w - lr * (m / bc1) / ((v / bc2) ** 0.5 + eps)
    return w, m, v


@register("mars")
class MARS(Optimizer):
    paper = dict(title="MARS: Unleashing the Power of Variance Reduction for Training Large Models",
                 authors="Yuan, Liu, Wu, Zhou, Gu", year=2025, arxiv="2411.10438",
                 family="variance-reduction")
    defaults = dict(lr=3e-3, beta1=0.95, beta2=0.99, gamma=0.025, eps=1e-8, weight_decay=0.0,
                    variant="exact")

    def check(self, hp):
        super().check(hp)
        check_range("beta1", hp["beta1"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("beta2", hp["beta2"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("gamma", hp["gamma"], 0.0, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        if hp["variant"] not in VARIANTS:
            raise ValueError(f"{self.name}: variant must be one of {VARIANTS}, got {hp['variant']!r}")

    def init_slots(self, params):
        memory = ({"prev_params": tree.copy(params)} if self.hparams["variant"] == "exact"
                  else {"last_grad": tree.zeros_like(params)})
        return {"m": tree.zeros_like(params), "v": tree.zeros_like(params), **memory}

    def step(self, params, state, oracle):
        """Gradient at ``x_t`` (and, exact variant, at ``x_{t-1}`` on the same batch), then MARS-AdamW."""
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        _, g = oracle(params)                                            # g(x_t; xi_t)
        check_grads(self.name, params, g, t)
        if hp["variant"] == "approx":
            g_prev = state["last_grad"]                                  # g(x_{t-1}; xi_{t-1})
        elif t == 1:
            g_prev = g                                                   # x_0 = x_1: no correction
        else:
            _, g_prev = oracle(state["prev_params"])                     # g(x_{t-1}; xi_t), same batch
            check_grads(self.name, params, g_prev, t)
        b1, b2 = hp["beta1"], hp["beta2"]
        c = tree.zip_map(lambda gi, pi: corrected_gradient(gi, pi, hp["gamma"], b1), g, g_prev)
        bc1, bc2 = bias_correction(b1, t), bias_correction(b2, t)
        w = decoupled_decay(params, hp["lr"], hp["weight_decay"])        # x_t - eta lambda x_t
        new_w, new_m, new_v = {}, {}, {}
        for k in params:
            new_w[k], new_m[k], new_v[k] = mars_adamw_kernel(w[k], c[k], state["m"][k], state["v"][k],
                                                             hp["lr"], b1, b2, hp["eps"], bc1, bc2)
        memory = {"prev_params": dict(params)} if hp["variant"] == "exact" else {"last_grad": dict(g)}
        return new_w, {"step": t, "m": new_m, "v": new_v, **memory}
