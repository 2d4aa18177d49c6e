"""A Model-Based Method for Minimizing CVaR and Beyond.

Si Yi Meng, Robert M. Gower. ICML 2023. arXiv:2305.17498

The conditional value-at-risk of the losses at level ``beta`` (the mean of the
worst ``1 - beta`` fraction; ``beta = 0.9``: the worst 10%) is, by
Rockafellar and Uryasev, the minimum over an auxiliary threshold ``eta``:

    CVaR_beta(x) = min_eta  F(x, eta),   F(x, eta) = eta + E[(l(x; xi) - eta)_+] / (1 - beta)

(at the optimum ``eta`` is the ``beta``-quantile of the losses, the VaR).
The stochastic subgradient method (SGM) on ``F`` is sensitive to its step
size. The stochastic prox-linear method keeps the ``(.)_+`` exact and
linearises only the loss inside it, ``l_t + <g_t, x - x_t>`` (``l_t = l(x_t;
xi_t)``, ``g_t`` its gradient), and takes a proximal step on ``(x, eta)`` with
step ``gamma``:

    (x_{t+1}, eta_{t+1}) = argmin  eta + (l_t + <g_t, x - x_t> - eta)_+ / (1 - beta)
                                   + (||x - x_t||^2 + (eta - eta_t)^2) / (2 gamma).

Closed form (``x`` moves along ``g_t`` only; three cases of the kink):

    lam     = clip( (l_t - eta_t + gamma) / (1 + ||g_t||^2),  0,  gamma / (1 - beta) )
    x_{t+1} = x_t - lam g_t
    eta_{t+1} = eta_t - gamma + lam

``lam = 0``: the sample's linearised loss is below the threshold, only
``eta`` moves (down by ``gamma``); ``lam = gamma / (1 - beta)``: fully above,
the SGM step; in between the step lands exactly on the kink ``l_t + <g_t,
x - x_t> = eta``, a Polyak-like step that scales with the loss, which is why
the method tolerates a much wider range of ``gamma``.

The SGM baseline on the same objective (``method="subgradient"``):
``x -= gamma 1[l_t > eta_t] g_t / (1 - beta)``, ``eta -= gamma (1 -
1[l_t > eta_t] / (1 - beta))``.

Usage: ``params`` are the model's; ``eta`` lives in the optimizer state
(``state["eta"]``, a 0-d array; start ``eta_init``), so the oracle is the
plain per-sample loss oracle ``oracle(params) -> (l_t, g_t)`` on **one**
sampled example (with a minibatch, its mean loss is treated as one sample,
which is the CVaR of batch means, a different objective).

Hyperparameters: ``lr`` is ``gamma`` (float or schedule), ``beta`` the
quantile level (0.9), ``eta_init`` (0). Not reproduced: the paper's "+"
refinement of the model. Only the abstract and introduction of the paper
could be read here; the update above is derived from the stated model and
matches this project's paper notes (three cases, ``lam = (l_t - eta_t +
gamma) / (1 + ||g||^2)``); how SPL+ additionally uses the lower bound
``l >= 0`` (a truncated model, which only changes the step when ``eta_t <
0``) should be checked against the paper.
"""
from __future__ import annotations

from .. import tree
from ..backend import xp_of
from .base import Optimizer, check_grads, check_range, register

METHODS = ("prox_linear", "subgradient")


@register("spl_plus_cvar")
class SPLPlusCVaR(Optimizer):
    paper = dict(title="A Model-Based Method for Minimizing CVaR and Beyond", authors="Meng, Gower",
                 year=2023, arxiv="2305.17498", family="optimizer-first-order")
    defaults = dict(lr=0.1, beta=0.9, eta_init=0.0, method="prox_linear")
    negative_ok = ("eta_init",)
    # the two-key test quadratic's loss is far above eta = 0: every step is a capped SGM-size step
    # gamma / (1 - beta) = 10 gamma, too long for Rosenbrock's curvature at (-1.2, 1)
    descent_hparams = {"rosenbrock": dict(lr=1e-4)}

    def check(self, hp):
        super().check(hp)
        check_range("beta", hp["beta"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("eta_init", hp["eta_init"], where=self.name)
        if hp["method"] not in METHODS:
            raise ValueError(f"{self.name}: method must be one of {METHODS}, got {hp['method']!r}")

    def init_slots(self, params):
        ref = next(iter(params.values()))
        return {"eta": xp_of(ref).asarray(self.hparams["eta_init"], dtype=ref.dtype)}

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        loss, grads = oracle(params)
        check_grads(self.name, params, grads, t)
        hp = self.hparams_at(t)
        gamma, scale = hp["lr"], 1.0 / (1.0 - hp["beta"])
        eta = state["eta"]
        xp = xp_of(eta)
        loss = xp.asarray(loss).astype(eta.dtype).reshape(())
        if hp["method"] == "prox_linear":
            kink = (loss - eta + gamma) / (1.0 + tree.vdot(grads, grads))      # lands on l_t + <g, dx> = eta
            lam = xp.clip(kink, 0.0, gamma * scale)
            new_eta = eta - gamma + lam
        else:
            active = (loss > eta).astype(eta.dtype)                              # 1[l_t > eta_t]
            lam = gamma * scale * active
            new_eta = eta - gamma * (1.0 - scale * active)
        new = tree.axpy(-lam.astype(eta.dtype), grads, params)
        return new, {"step": t, "eta": xp.asarray(new_eta, dtype=eta.dtype).reshape(())}

    @staticmethod
    def cvar(losses, beta):
        """The empirical CVaR_beta of a vector of losses: ``min_eta eta + mean((l - eta)_+) / (1 - beta)``
        (a convex piecewise-linear function of ``eta``, minimised at one of the losses)."""
        xp = xp_of(losses)
        ls = xp.sort(losses.ravel())
        values = ls + xp.maximum(ls[None, :] - ls[:, None], 0.0).mean(axis=1) / (1.0 - beta)
        return values.min()
