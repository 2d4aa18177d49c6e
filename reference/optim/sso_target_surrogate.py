"""Target-based Surrogates for Stochastic Optimization.

Jonathan Wilder Lavington, Sharan Vaswani, Reza Babanezhad, Mark Schmidt, Nicolas Le Roux.
ICML 2023. arXiv:2302.02607

When the gradient of the loss with respect to the model's outputs is the
expensive part (a simulator or an environment in imitation and
reinforcement learning, an adversary), spend it once and reuse it: write the
loss as ``l(z)`` of the *targets* ``z = f(theta; X)`` (e.g. logits), take the
gradient ``grad l(z_t)`` at ``z_t = f(theta_t; X)`` and minimise the
*surrogate*

    g_t(theta) = l(z_t) + <grad l(z_t), f(theta) - z_t> + ||f(theta) - z_t||^2 / (2 eta)

approximately over ``theta`` with ``m`` cheap inner steps that only
backpropagate through the model ``f``:

    grad g_t(theta) = J_f(theta)^T [ grad l(z_t) + (f(theta) - z_t) / eta ]
    theta_{t,0} = theta_t,   theta_{t,j+1} = theta_{t,j} - inner_lr grad g_t(theta_{t,j}),   theta_{t+1} = theta_{t,m}.

For ``eta <= 1 / L_l`` (``L_l`` the smoothness of ``l`` as a function of the
whole target vector; for a mean of ``n`` per-example ``lambda``-smooth losses,
``L_l = lambda / n``) the surrogate is a global upper bound on ``l(f(theta))``
that touches it at ``theta_t``, so whenever the inner steps decrease
``g_t`` the loss decreases: a majorisation-minimisation method. On
minibatches (the oracle of one batch) this is SSO, projected SGD in target
space. ``m = 1`` is one SGD step of size ``inner_lr`` (the first inner
gradient is ``J^T grad l(z_t) = grad_theta l(f(theta_t))``).

Oracle: ``reference.problems.model_based_problems.TargetOracle(apply, loss,
x, y)`` provides ``targets_and_vjp`` and ``loss_and_target_grad``. A plain
oracle ``(loss, grads)`` is treated as the identity model ``f(theta) =
theta`` (the targets are the parameters), where the surrogate's minimiser is
the gradient step ``theta_t - eta grad l(theta_t)``, approached by the inner
loop.

Hyperparameters: ``lr`` is the target step ``eta``, ``inner_steps`` is ``m``,
``inner_lr`` the inner gradient step (the paper's inner solver is any
deterministic method: GD, SGD on the batch, L-BFGS; gradient descent here).
Defaults ``lr=1``, ``inner_steps=10``, ``inner_lr=0.1`` are placeholders to
tune.
"""
from __future__ import annotations

import math

from .. import tree
from .base import Optimizer, check_grads, check_int, check_range, register


class _IdentityTargets:
    """A plain oracle seen as the identity model: targets = params, vjp = identity."""

    def __init__(self, oracle):
        self.oracle = oracle

    def loss_and_target_grad(self, z):
        return self.oracle(z)

    def targets_and_vjp(self, params):
        return params, lambda v: v


def _combine(grad_l, z, z_t, eta):
    """``grad l(z_t) + (z - z_t) / eta`` for arrays or trees of arrays."""
    if isinstance(z, dict):
        return tree.zip_map(lambda g, a, b: g + (a - b) / eta, grad_l, z, z_t)
    return grad_l + (z - z_t) / eta


@register("sso_target_surrogate")
class SSO(Optimizer):
    paper = dict(title="Target-based Surrogates for Stochastic Optimization",
                 authors="Lavington, Vaswani, Babanezhad, Schmidt, Le Roux", year=2023, arxiv="2302.02607",
                 family="optimizer-first-order")
    defaults = dict(lr=1.0, inner_steps=10, inner_lr=0.1)
    scheduled = ("lr", "inner_lr")
    # the identity model's inner loop moves about inner_steps * inner_lr = 1 along -grad per step:
    # too long for Rosenbrock at (-1.2, 1) (curvature about 1000)
    descent_hparams = {"rosenbrock": dict(lr=1e-3, inner_lr=1e-4)}

    def check(self, hp):
        super().check(hp)
        k = hp["inner_steps"]
        check_int("inner_steps", k, 1, where=self.name)
        if not callable(hp["inner_lr"]):
            check_range("inner_lr", hp["inner_lr"], 0.0, math.inf, low_open=True, where=self.name)

    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        eta, inner_lr = hp["lr"], hp["inner_lr"]
        split = oracle if hasattr(oracle, "targets_and_vjp") else _IdentityTargets(oracle)
        z_t, vjp = split.targets_and_vjp(params)
        _, grad_l = split.loss_and_target_grad(z_t)                       # the one expensive gradient
        theta = params
        for j in range(hp["inner_steps"]):
            if j > 0:
                z, vjp = split.targets_and_vjp(theta)
            else:
                z = z_t
            g = vjp(_combine(grad_l, z, z_t, eta))                        # J^T [grad l(z_t) + (z - z_t) / eta]
            if j == 0:
                check_grads(self.name, params, g, t)
            theta = tree.axpy(-inner_lr, g, theta)
        return theta, {"step": t}
