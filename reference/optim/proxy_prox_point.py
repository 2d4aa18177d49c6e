"""Two Losses Are Better Than One: Faster Optimization Using a Cheaper Proxy.

Blake Woodworth, Konstantin Mishchenko, Francis Bach. ICML 2023. arXiv:2302.03542

Minimise an objective ``f`` whose gradients are expensive (few real samples,
a simulator, private data) with the help of a cheap *proxy* ``h`` (synthetic
data, a coarse simulator, public data). Each outer step spends **one**
gradient of ``f`` and then approximately solves a proximal-point problem in
which ``h`` stands in for ``f`` and the first-order mismatch is corrected:

    c_k     = grad f(x_k) - grad h(x_k)
    x_{k+1} ~ argmin_x  phi_k(x) = h(x) + <c_k, x> + ||x - x_k||^2 / (2 eta)

``phi_k`` agrees with the proximal-point subproblem of ``f`` to first order at
``x_k`` and differs from it by ``(h - f)(x) - (h - f)(x_k) - <grad (h - f)(x_k),
x - x_k>``, which is small when ``f - h`` is ``delta``-smooth. So the method
converges at the rate of (stochastic) gradient descent on a
``delta``-smooth function, however ill-conditioned ``f`` itself is: the
number of ``f``-gradients depends on ``delta``, not on ``L_f``.

The subproblem is solved with ``inner_steps`` gradient steps of size
``inner_lr`` started at ``x_k`` (only ``h``-gradients):

    y_0 = x_k,   y_{j+1} = y_j - inner_lr (grad h(y_j) + c_k + (y_j - x_k) / eta),   x_{k+1} = y_K.

Reductions: ``h = 0`` gives ``x_{k+1} -> x_k - eta grad f(x_k)`` (gradient
descent) as the inner solve converges; ``h = f`` gives the proximal point
method; ``inner_steps = 1`` is one gradient step on ``f`` of size ``inner_lr``
(the first inner gradient is ``grad f(x_k)``).

Usage: ``create("proxy_prox_point", proxy=h_oracle, lr=eta, inner_steps=K,
inner_lr=...)`` where ``h_oracle(params) -> (loss, grads)`` has the params'
keys; the oracle given to ``step`` is the expensive ``f``. A stochastic proxy
or objective is any oracle that samples. Defaults (``lr=1``, ``inner_steps=10``,
``inner_lr=0.1``) are placeholders: the paper sets ``eta`` of order
``1/delta`` and solves the inner problem to the accuracy its theorem needs,
which with gradient descent means ``inner_lr <= 1 / (L_h + 1/eta)``.
Inner-solver choice and accuracy follow the paper's framework (any solver
reaching the required accuracy); plain gradient descent is used here.
"""
from __future__ import annotations

import math

from .. import tree
from .base import Optimizer, check_grads, check_int, check_range, register


def _zero_proxy(params):
    """``h = 0``: the example proxy (then the method is gradient descent with an inexact inner solve)."""
    return 0.0, tree.zeros_like(params)


@register("proxy_prox_point")
class ProxyProxPoint(Optimizer):
    paper = dict(title="Two Losses Are Better Than One: Faster Optimization Using a Cheaper Proxy",
                 authors="Woodworth, Mishchenko, Bach", year=2023, arxiv="2302.03542",
                 family="optimizer-first-order")
    defaults = dict(proxy=None, lr=1.0, inner_steps=10, inner_lr=0.1)
    scheduled = ("lr", "inner_lr")
    # with h = 0 each outer step is about inner_steps * inner_lr = 1 along -grad f: too long for
    # Rosenbrock at (-1.2, 1) (curvature about 1000)
    descent_hparams = {"rosenbrock": dict(lr=1e-3, inner_lr=1e-4)}

    @classmethod
    def example_hparams(cls):
        """The proxy is required; ``h = 0`` fits any params."""
        return dict(proxy=_zero_proxy)

    def check(self, hp):
        super().check(hp)
        if not callable(hp["proxy"]):
            raise ValueError(f"{self.name}: proxy must be an oracle h(params) -> (loss, grads), "
                             f"got {type(hp['proxy']).__name__}")
        k = hp["inner_steps"]
        check_int("inner_steps", k, 1, where=self.name)
        if not callable(hp["inner_lr"]):
            check_range("inner_lr", hp["inner_lr"], 0.0, math.inf, low_open=True, where=self.name)

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        proxy, eta, inner_lr = hp["proxy"], hp["lr"], hp["inner_lr"]
        _, grad_f = oracle(params)                                        # the one expensive gradient
        check_grads(self.name, params, grad_f, t)
        _, grad_h = proxy(params)
        check_grads(f"{self.name} (proxy)", params, grad_h, t)
        correction = tree.sub(grad_f, grad_h)                             # c_k = grad f(x_k) - grad h(x_k)
        y = params
        for j in range(hp["inner_steps"]):
            # grad phi_k(y) = grad h(y) + c_k + (y - x_k) / eta; at j = 0 it is grad f(x_k)
            g = grad_f if j == 0 else tree.add(proxy(y)[1], correction)
            g = tree.zip_map(lambda gi, yi, xi: gi + (yi - xi) / eta, g, y, params)
            y = tree.axpy(-inner_lr, g, y)
        return y, {"step": t}
