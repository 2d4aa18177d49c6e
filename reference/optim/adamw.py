"""Decoupled Weight Decay Regularization.

Ilya Loshchilov and Frank Hutter. ICLR 2019. arXiv:1711.05101

For plain SGD, L2 regularisation (adding ``lambda w`` to the gradient) and
weight decay (shrinking ``w`` by a factor each step) are the same thing once
the decay is rescaled by the learning rate. For Adam they are not: the L2
term passes through the adaptive scaling ``1 / (sqrt(v_hat) + eps)``, so
weights with large gradients are barely regularised. The paper *decouples*
the decay from the gradient step (Algorithm 2, "AdamW"):

    m_t     = beta1 m_{t-1} + (1 - beta1) g_t          (g_t: the loss gradient only)
    v_t     = beta2 v_{t-1} + (1 - beta2) g_t^2
    m_hat_t = m_t / (1 - beta1^t),   v_hat_t = v_t / (1 - beta2^t)
    w_t     = w_{t-1} - eta_t (alpha m_hat_t / (sqrt(v_hat_t) + eps) + lambda w_{t-1})

where ``alpha`` is the base step size and ``eta_t`` a schedule *multiplier*
(cosine annealing with warm restarts in the paper) that scales both terms.

Convention (torch.optim.AdamW's, which the golden files check): the decay is
applied first, scaled by the learning rate, and then the Adam step:

    w'  = w_{t-1} - lr_t * weight_decay * w_{t-1}
    w_t = w' - lr_t m_hat_t / (sqrt(v_hat_t) + eps)

The two forms are the same update with ``lr_t = eta_t alpha`` and
``weight_decay = lambda / alpha``: torch folds ``alpha`` into the learning
rate, so its decay per step is ``lr_t * weight_decay = eta_t lambda`` and a
schedule on ``lr`` (a callable) plays the role of ``eta_t`` for both terms,
as in the paper. To run the paper's ``(alpha, lambda, eta_t)``, pass
``lr=lambda k: alpha * eta(k)`` and ``weight_decay=lambda_ / alpha``.

Defaults: lr = 0.001, beta1 = 0.9, beta2 = 0.999, eps = 1e-8 (the paper's,
from Adam) and weight_decay = 0.01, torch's default: the paper has no
universal lambda (it tunes a "normalised" lambda per task), and 0.01 is what
users of AdamW get elsewhere. ``weight_decay = 0`` is Adam exactly, bit for
bit (tested). ``eps`` is outside the square root, as in ``adam``.
"""
from __future__ import annotations

from .. import tree
from .adam import adam_kernel, check_adam_hparams
from .base import Optimizer, register
from .common import bias_correction, decoupled_decay


@register("adamw")
class AdamW(Optimizer):
    paper = dict(title="Decoupled Weight Decay Regularization", authors="Loshchilov, Hutter", year=2019,
                 arxiv="1711.05101", family="optimizer-first-order")
    defaults = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2)

    def check(self, hp):
        super().check(hp)
        check_adam_hparams(self, hp)

    def init_slots(self, params):
        return {"m": tree.zeros_like(params), "v": tree.zeros_like(params)}

    def update(self, params, grads, state, t, hp):
        w = decoupled_decay(params, hp["lr"], hp["weight_decay"])      # w' = w - lr wd w
        bc1, bc2 = bias_correction(hp["beta1"], t), bias_correction(hp["beta2"], t)
        new_w, new_m, new_v = {}, {}, {}
        for k in params:                                               # the Adam step, on the loss gradient
            new_w[k], new_m[k], new_v[k] = adam_kernel(w[k], grads[k], state["m"][k], state["v"][k],
                                                       hp["lr"], hp["beta1"], hp["beta2"], hp["eps"], bc1, bc2)
        return new_w, {"m": new_m, "v": new_v}
