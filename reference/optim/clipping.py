"""On the difficulty of training Recurrent Neural Networks.

Razvan Pascanu, Tomas Mikolov and Yoshua Bengio. ICML 2013. arXiv:1211.5063

A recurrent network's loss surface has "cliffs": along directions where the
recurrence is close to unstable, the gradient (a product of T Jacobians)
becomes orders of magnitude larger than elsewhere, and one gradient step
taken there throws the parameters far away, undoing the progress made so far
(the paper's geometric interpretation and its error-surface figure). The
remedy (the paper's Algorithm 1) keeps the gradient's direction and caps its
norm: with ``g`` the gradient of all parameters seen as one vector and a
threshold ``tau``,

    if ||g|| > tau:   g <- tau g / ||g||

and then takes the usual SGD step. The demonstration on the paper's
single-unit recurrent net ``x_t = w sigma(x_{t-1}) + b`` is
``reference.experiments.exploding_gradients``.

Convention: torch.nn.utils.clip_grad_norm_ (which the golden files check)
computes the global 2-norm and multiplies every gradient by

    scale = min(1, max_norm / (||g|| + eps)),   eps = 1e-6

(read from torch's ``_clip_grads_with_norm_``). That is the default here
(``eps=1e-6``): it differs from the paper's form only by a relative
``eps / ||g||`` when clipping is active. ``eps=0`` gives the paper's form
exactly (and, computed as below, still never divides by zero). The threshold ``max_norm`` is the
paper's ``tau``; the paper suggests a value around the average gradient norm
seen in training. (The paper's other proposal, a soft constraint against
*vanishing* gradients in RNNs, is not implemented here.)

Two ways in:

* :func:`clip_by_global_norm` ``(grads, max_norm)`` -> clipped grads, a plain
  function on a gradient tree;
* the optimizer wrapper ``create("clip_grad_norm", inner=create("sgd",
  lr=0.1), max_norm=1.0)``: every gradient the oracle gives the inner
  optimizer is clipped first (methods that evaluate the gradient several
  times per step get every evaluation clipped). Its state is ``{"step": t,
  "inner": <the inner optimizer's state>}``. The rich parts of the oracle
  (``loss``, ``hvp``, ``per_sample_grads``) pass through unclipped.
"""
from __future__ import annotations

from .. import tree
from ..backend import xp_of
from .base import create, Optimizer, check_grads, check_range, register

__all__ = ["clip_by_global_norm", "ClipGradNorm"]


def clip_by_global_norm(grads, max_norm, eps=1e-6):
    """``grads * min(1, max_norm / (||grads|| + eps))`` with the norm of the whole tree.

    The direction is kept and the norm becomes ``min(||g||, max_norm)`` (up to
    the ``eps``). The scale is a 0-d array of the gradients' dtype, computed
    on their device (no host synchronisation).
    """
    # Python floats (as check_range returns them), so that the scale keeps the gradients' dtype
    max_norm = check_range("max_norm", max_norm, 0.0, low_open=True, where="clip_by_global_norm")
    eps = check_range("eps", eps, 0.0, where="clip_by_global_norm")
    norm = tree.global_norm(grads)
    # max_norm / max(norm + eps, max_norm) == min(1, max_norm / (norm + eps)), bit for bit,
    # and never divides by zero (max_norm > 0), so eps = 0 is safe for a zero gradient.
    scale = max_norm / xp_of(grads).maximum(norm + eps, max_norm)
    return tree.scale(scale, grads)


class _ClippedOracle:
    """The wrapped oracle: checks the raw gradient, then returns it clipped."""

    def __init__(self, oracle, where, t, max_norm, eps):
        self._oracle, self._where, self._t = oracle, where, t
        self._max_norm, self._eps = max_norm, eps

    def __call__(self, params):
        loss, grads = self._oracle(params)
        check_grads(self._where, params, grads, self._t)   # name the raw non-finite gradient
        return loss, clip_by_global_norm(grads, self._max_norm, self._eps)

    def __getattr__(self, name):                            # loss, hvp, calls, ...: unchanged
        return getattr(self._oracle, name)


@register("clip_grad_norm")
class ClipGradNorm(Optimizer):
    paper = dict(title="On the difficulty of training Recurrent Neural Networks",
                 authors="Pascanu, Mikolov, Bengio", year=2013, arxiv="1211.5063",
                 family="optimizer-first-order")
    defaults = dict(inner=None, max_norm=1.0, eps=1e-6)
    scheduled = ()

    @classmethod
    def example_hparams(cls):
        """A wrapper needs an inner optimizer (used by the contract tests and demos)."""
        return dict(inner=create("sgd", lr=1e-2))

    def check(self, hp):
        if not isinstance(hp["inner"], Optimizer):
            raise ValueError(f"{self.name}: inner must be an optimizer such as create('sgd', lr=0.1), "
                             f"got {type(hp['inner']).__name__}")
        check_range("max_norm", hp["max_norm"], 0.0, low_open=True, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)

    def init_slots(self, params):
        return {"inner": self.hparams["inner"].init(params)}

    def step(self, params, state, oracle):
        """Run the inner optimizer's step on the clipped gradients; returns ``(params, state)``."""
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        clipped = _ClippedOracle(oracle, self.name, t, hp["max_norm"], hp["eps"])
        new_params, inner_state = hp["inner"].step(params, state["inner"], clipped)
        return new_params, {"inner": inner_state, "step": t}
