"""Lookahead Optimizer: k steps forward, 1 step back.

Michael R. Zhang, James Lucas, Geoffrey Hinton, Jimmy Ba. NeurIPS 2019. arXiv:1907.08610

Lookahead wraps any optimizer ``A`` (the "inner" or fast optimizer). It keeps
two copies of the weights: *slow* weights ``phi`` and *fast* weights
``theta``. The inner optimizer takes ``k`` steps from the slow weights; then
the slow weights move a fraction ``alpha`` of the way towards where the fast
weights ended, and the fast weights restart from there (Algorithm 1):

    for t = 1, 2, ...
        theta_{t,0} = phi_{t-1}                                  (synchronise)
        for i = 1..k:
            theta_{t,i} = theta_{t,i-1} + A(L, theta_{t,i-1}, d)  (k inner steps)
        phi_t = phi_{t-1} + alpha (theta_{t,k} - phi_{t-1})       (1 step back)

The slow update is an exponential moving average of the end points of the
inner loops, which damps the oscillation of the fast weights across high
curvature directions and lowers the variance of the iterates (the paper
analyses this on the noisy quadratic model). Defaults from the paper:
``k = 5``, ``alpha = 0.5`` (its experiments use k in {5, 10} and alpha in
{0.5, 0.8}).

Conventions:

* One call of ``step`` is **one inner step**, as in every other wrapper of the
  library and in pytorch_optimizer.Lookahead / optax.lookahead. On every
  ``k``-th call (``t % k == 0``) the synchronisation happens right after the
  inner step, so the params returned by that call are the new slow weights
  ``phi`` (= the restarted fast weights). In between, the returned params are
  the fast weights ``theta``; the slow weights are ``state["slow"]`` (the
  paper evaluates on them; :func:`slow_weights` returns them).
* The inner optimizer's state (momentum, Adam moments, its step counter) is
  **carried over** across synchronisations (the paper's default; it reports
  that resetting or interpolating it makes little difference). The fast
  weights are reset but the inner state is not.
* ``alpha = 1`` makes the slow weights jump to the fast ones: Lookahead is then
  the inner optimizer exactly (tested bit for bit).

State: ``{"step": t, "inner": <inner optimizer state>, "slow": phi}``.
Peer: pytorch_optimizer.Lookahead (pullback_momentum="none"), whose
trajectories ``tests/test_momentum_family.py`` checks to 1e-10.
"""
from __future__ import annotations

import numbers

from .. import tree
from .base import Optimizer, check_range, create, register

__all__ = ["Lookahead", "slow_weights"]


def slow_weights(state):
    """The slow weights ``phi`` held in a Lookahead state (what the paper evaluates)."""
    return state["slow"]


@register("lookahead")
class Lookahead(Optimizer):
    paper = dict(title="Lookahead Optimizer: k steps forward, 1 step back",
                 authors="Zhang, Lucas, Hinton, Ba", year=2019, arxiv="1907.08610",
                 family="optimizer-first-order")
    defaults = dict(inner=None, k=5, alpha=0.5)
    scheduled = ()

    @classmethod
    def example_hparams(cls):
        """A wrapper needs an inner optimizer (contract tests, demos). Adam with lr = 1e-2:
        the default 1e-3, halved by the slow-weight averaging, moves too little in 200 steps."""
        return dict(inner=create("adam", lr=1e-2))

    def check(self, hp):
        if not isinstance(hp["inner"], Optimizer):
            raise ValueError(f"{self.name}: inner must be an optimizer such as create('adam'), "
                             f"got {type(hp['inner']).__name__}")
        k = hp["k"]
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"{self.name}: k must be an integer >= 1 (inner steps per synchronisation), "
                             f"got {k!r}")
        check_range("alpha", hp["alpha"], 0.0, 1.0, low_open=True, where=self.name)

    def init_slots(self, params):
        # phi_0 = theta_0: the slow weights start at the initial params (a copy, never an alias)
        return {"inner": self.hparams["inner"].init(params), "slow": tree.copy(params)}

    def step(self, params, state, oracle):
        """One inner step on the fast weights; every k-th step, also the slow update."""
        t = int(state["step"]) + 1
        hp = self.hparams
        fast, inner_state = hp["inner"].step(params, state["inner"], oracle)   # theta_{t,i}
        slow = state["slow"]
        if t % int(hp["k"]) == 0:
            alpha = float(hp["alpha"])
            # phi_t = phi_{t-1} + alpha (theta_{t,k} - phi_{t-1}), written as the interpolation
            # (1 - alpha) phi + alpha theta so that alpha = 1 gives theta bit for bit; theta restarts at phi_t
            slow = tree.zip_map(lambda p, f: (1.0 - alpha) * p + alpha * f, slow, fast)
            fast = tree.copy(slow)
        return fast, {"step": t, "inner": inner_state, "slow": slow}
