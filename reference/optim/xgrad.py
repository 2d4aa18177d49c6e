"""XGrad: Boosting Gradient-Based Optimizers With Weight Prediction.

Lei Guan, Dongsheng Li, Yanqi Shi, Jian Meng. 2023. arXiv:2305.18240

A gradient step uses the gradient at the *current* weights although the
weights are about to move. XGrad predicts where the weights will be ``s``
steps ahead, following the update rule of the optimizer in use with its
current state, and computes the forward and backward pass there; the
optimizer then updates the current (cached) weights with that gradient:

    cache theta_t
    thetahat   = theta_t - s lr Delta_t            (weight prediction)
    g_t        = grad f(thetahat)                  (forward and backward at the prediction)
    theta_{t+1} = A(theta_t, g_t)                  (the optimizer's usual update, from theta_t)

where ``Delta_t`` is the optimizer's update direction built from its state
*before* the step (the paper's Sec. 3):

* SGD with momentum:  ``Delta_t = b_{t-1}`` (the momentum buffer);
* Adam and AdamW:     ``Delta_t = mhat_{t-1} / (sqrt(vhat_{t-1}) + eps)``,
  ``mhat = m / (1 - beta1^{t-1})``, ``vhat = v / (1 - beta2^{t-1})``.

With ``s = 0`` XGrad is the inner optimizer, bit for bit (tested). For SGD
with momentum the prediction ``theta_t - lr b_{t-1}`` is where the
heavy-ball step would land without the new gradient: the gradient is taken
at a look-ahead point, the idea behind Nesterov's momentum.

Conventions (the choices made, and why), following the authors' code
(guanleics/XGrad: ``load_predicted_weights`` in SGD.py, Adam.py, AdamW.py):

* No prediction on the first step: the state is still empty (the code skips
  parameters without a gradient yet, i.e. the first iteration).
* AdamW's prediction leaves out the weight decay (the authors' code does);
  Adam's coupled L2 term is likewise not part of ``Delta_t``.
* ``lr`` in the prediction is the inner optimizer's learning rate for the
  coming step (its schedule evaluated there).
* The inner optimizer must be ``sgd`` with ``momentum > 0`` and
  ``nesterov=False``, ``adam`` or ``adamw``, the three the paper covers; any
  other raises ValueError (its update direction would need its own rule).
* One call of ``step`` is one inner step; the oracle is called once, at the
  prediction. State: ``{"step": t, "inner": <the inner optimizer's state>}``.

Defaults: ``s = 1`` (the paper's experiments predict one step ahead).
"""
from __future__ import annotations

import numbers

from .. import tree
from ..backend import fuse
from .adam import Adam
from .adamw import AdamW
from .base import Optimizer, create, register
from .common import bias_correction
from .sgd import SGD

__all__ = ["XGrad", "predicted_weights"]


@fuse
def _adam_prediction(w, m, v, step, eps, bc1, bc2):
    """``w - step (m / bc1) / (sqrt(v / bc2) + eps)``: Adam's next move from its current moments."""
    return w - step * (m / bc1) / ((v / bc2) ** 0.5 + eps)


def predicted_weights(inner, params, inner_state, s):
    """``thetahat = theta - s lr Delta`` for the inner optimizer's current state (``params`` itself
    before its first step or for ``s = 0``)."""
    k = int(inner_state["step"])                        # steps the inner optimizer has taken
    if k == 0 or s == 0:
        return params
    hp = inner.hparams_at(k + 1)
    step = s * float(hp["lr"])
    if type(inner) is SGD:
        return tree.axpy(-step, inner_state["momentum_buffer"], params)
    bc1, bc2 = bias_correction(hp["beta1"], k), bias_correction(hp["beta2"], k)
    return {n: _adam_prediction(w, inner_state["m"][n], inner_state["v"][n], step, hp["eps"], bc1, bc2)
            for n, w in params.items()}


class _PredictedOracle:
    """Evaluates the real oracle at the predicted weights, whatever params it is asked about."""

    def __init__(self, oracle, predicted):
        self._oracle, self._predicted = oracle, predicted

    def __call__(self, params):
        return self._oracle(self._predicted)

    def __getattr__(self, name):
        return getattr(self._oracle, name)


@register("xgrad")
class XGrad(Optimizer):
    paper = dict(title="XGrad: Boosting Gradient-Based Optimizers With Weight Prediction",
                 authors="Guan, Li, Shi, Meng", year=2023, arxiv="2305.18240",
                 family="optimizer-first-order")
    defaults = dict(inner=None, s=1)
    scheduled = ()

    @classmethod
    def example_hparams(cls):
        """A wrapper needs an inner optimizer: SGD with momentum (lr 1e-3 so that the default
        also descends on Rosenbrock, where the curvature is about 1000)."""
        return dict(inner=create("sgd", lr=1e-3, momentum=0.9))

    def check(self, hp):
        inner = hp["inner"]
        if type(inner) not in (SGD, Adam, AdamW):          # exactly these: a subclass has its own rule
            raise ValueError(f"{self.name}: inner must be create('sgd', momentum>0), create('adam') or "
                             f"create('adamw'), got {inner!r}")
        if type(inner) is SGD and (inner.hparams["momentum"] == 0 or inner.hparams["nesterov"]):
            raise ValueError(f"{self.name}: an inner sgd needs momentum > 0 and nesterov=False (XGrad "
                             f"predicts from the momentum buffer), got {inner!r}")
        s = hp["s"]
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"{self.name}: s must be an integer >= 0 (weight prediction steps), got {s!r}")

    def init_slots(self, params):
        return {"inner": self.hparams["inner"].init(params)}

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        inner = self.hparams["inner"]
        predicted = predicted_weights(inner, params, state["inner"], int(self.hparams["s"]))
        new_params, inner_state = inner.step(params, state["inner"], _PredictedOracle(oracle, predicted))
        return new_params, {"step": t, "inner": inner_state}
