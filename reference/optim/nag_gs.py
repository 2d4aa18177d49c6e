"""NAG-GS: Semi-Implicit, Accelerated and Robust Stochastic Optimizer.

Valentin Leplat, Daniil Merkulov, Aleksandr Katrutsa, Daniel Bershatsky, Olga Tsymboi,
Ivan Oseledets. 2022. arXiv:2209.14937

Nesterov's accelerated gradient is the discretisation of a second-order ODE;
the paper writes it as a first-order system in ``(x, v)`` with a scaling
``gamma`` that relaxes towards the convexity parameter ``mu``,

    dx/dt = v - x,     dv/dt = (mu / gamma) (x - v) - (1 / gamma) grad f(x),     dgamma/dt = mu - gamma,

and integrates it with a *semi-implicit Gauss-Seidel* scheme: the linear
terms are taken implicitly (which is what keeps the method stable for large
steps) and the new ``x`` is used as soon as it is known. With step ``alpha``
(the learning rate), one iteration of the paper's Algorithm 1 (NAG-GS) reads

    a           = alpha / (1 + alpha)
    gamma_{k+1} = (1 - a) gamma_k + a mu
    x_{k+1}     = (1 - a) x_k + a v_k
    b           = alpha mu / (alpha mu + gamma_{k+1})
    v_{k+1}     = (1 - b) v_k + b x_{k+1} - (b / mu) grad f(x_{k+1})

with ``v_0 = x_0``. The last line is written without the division by ``mu``,
``v_{k+1} = (gamma_{k+1} v_k + alpha mu x_{k+1} - alpha grad f(x_{k+1})) /
(alpha mu + gamma_{k+1})``, which also holds for ``mu = 0``. NAG4, the
authors' fixed-``gamma`` variant, skips the ``gamma`` update
(``update_gamma=False``).

Conventions (the choices made, and why):

* ``variant="paper"`` (the default) is the algorithm above: one gradient per
  step, taken at the *new* point ``x_{k+1}``, so ``step`` calls the oracle
  there, not at the params it was given. Because ``v_0 = x_0`` the first step
  leaves ``x`` where it is (``x_1 = x_0``) and only moves ``v``. The authors'
  JAX/Optax code (skolai/nag-gs, ``nag_gs_jax.py``) computes the same
  sequence, splitting each iteration over two calls.
* ``variant="torch"`` is the authors' PyTorch code (``nag_gs_pytorch.py``):
  the gradient at the current point ``x_k`` first updates ``v`` (with
  ``b`` built from the *old* ``gamma_k``), then ``x_{k+1} = (1 - a) x_k + a
  v_{k+1}``, then ``gamma``. For a fixed ``gamma`` (NAG4) it is the paper
  variant one step ahead: ``x^torch_k = x^paper_{k+1}`` (tested); with the
  ``gamma`` update the two differ in the index of ``gamma`` inside ``b``.
  Its trajectories are checked against the official class ``NAG4`` to 1e-12
  (tests/test_misc_first_order.py). The official PyTorch ``NAGGS`` class
  never updates ``gamma`` (its ``nag_gs`` function returns the new gammas and
  ``NAGGS.step`` discards them), so it computes NAG4's iteration: it matches
  ``variant="torch", update_gamma=False`` to 1e-12, and ``update_gamma=True``
  here is what that code intends.
* ``gamma`` is one scalar for all parameters (the paper's; the PyTorch code
  keeps one per tensor, all equal), held in the state as a Python float.

Hyperparameters: ``lr`` = ``alpha``, ``mu`` (the convexity parameter, acting
like a weight decay pulling ``v`` towards ``x``), ``gamma`` = ``gamma_0``.
Defaults ``alpha = 0.05, mu = 1, gamma = 1.5`` are those of the authors' code
(its README's quadratic example); the paper tunes ``alpha`` per task and
derives the optimal ``alpha`` for a quadratic from the spectral radius of
the iteration matrix.
"""
from __future__ import annotations

from .. import tree
from ..backend import fuse
from .base import Optimizer, check_grads, check_range, register

__all__ = ["NAGGS"]

VARIANTS = ("paper", "torch")


@fuse
def _v_update(v, x, g, alpha, mu, gamma):
    """``v <- (gamma v + alpha mu x - alpha g) / (alpha mu + gamma)``, i.e. ``(1-b) v + b x - (b/mu) g``."""
    return (gamma * v + alpha * mu * x - alpha * g) / (alpha * mu + gamma)


@fuse
def _x_update(x, v, a):
    """``x <- (1 - a) x + a v`` with ``a = alpha / (1 + alpha)``."""
    return (1.0 - a) * x + a * v


@register("nag_gs")
class NAGGS(Optimizer):
    paper = dict(title="NAG-GS: Semi-Implicit, Accelerated and Robust Stochastic Optimizer",
                 authors="Leplat, Merkulov, Katrutsa, Bershatsky, Tsymboi, Oseledets", year=2022,
                 arxiv="2209.14937", family="optimizer-first-order")
    defaults = dict(lr=0.05, mu=1.0, gamma=1.5, update_gamma=True, variant="paper")

    def check(self, hp):
        super().check(hp)
        check_range("mu", hp["mu"], 0.0, where=self.name)
        check_range("gamma", hp["gamma"], 0.0, low_open=True, where=self.name)
        if not isinstance(hp["update_gamma"], bool):
            raise ValueError(f"{self.name}: update_gamma must be True or False, got {hp['update_gamma']!r}")
        if hp["variant"] not in VARIANTS:
            raise ValueError(f"{self.name}: variant must be one of {VARIANTS}, got {hp['variant']!r}")

    def init_slots(self, params):
        return {"v": tree.copy(params), "gamma": float(self.hparams["gamma"])}   # v_0 = x_0

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        alpha, mu = float(hp["lr"]), float(hp["mu"])
        a = alpha / (1.0 + alpha)
        gamma = float(state["gamma"])
        gamma_next = (1.0 - a) * gamma + a * mu if hp["update_gamma"] else gamma
        if hp["variant"] == "paper":
            x = tree.zip_map(lambda x, v: _x_update(x, v, a), params, state["v"])      # x_{k+1}
            _, g = oracle(x)                                                            # grad f(x_{k+1})
            check_grads(self.name, x, g, t)
            v = {k: _v_update(state["v"][k], x[k], g[k], alpha, mu, gamma_next) for k in x}
        else:                                                                           # authors' PyTorch order
            _, g = oracle(params)                                                       # grad f(x_k)
            check_grads(self.name, params, g, t)
            v = {k: _v_update(state["v"][k], params[k], g[k], alpha, mu, gamma) for k in params}
            x = tree.zip_map(lambda x, v: _x_update(x, v, a), params, v)
        return x, {"step": t, "v": v, "gamma": gamma_next}
