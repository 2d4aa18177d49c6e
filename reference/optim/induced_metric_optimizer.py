"""The Optimiser Hidden in Plain Sight: Training with the Loss Landscape's Induced Metric.

2025 (authors and arXiv id: see the catalog entry of papers.jsonl; not recorded there).

Pictures of a loss landscape draw the graph of the loss, the surface
``(theta, L(theta))`` in ``R^{n+1}``. That surface carries the metric it
inherits from the flat space around it, the *induced metric*

    G(theta) = I + xi^2 grad L(theta) grad L(theta)^T

(``xi`` scales the loss axis against the parameter axes). Steepest descent
in this metric (a natural-gradient step) needs no matrix: by the
Sherman-Morrison formula ``G^{-1} g = g - xi^2 g (g^T g) / (1 + xi^2 ||g||^2)``,
so

    theta_{t+1} = theta_t - lr grad L / (1 + xi^2 ||grad L||^2).

Where the landscape is flat (``||g|| -> 0``) this is gradient descent; where
it is steep the step shrinks like ``1 / ||g||``: a smooth form of gradient
clipping, with step length ``lr ||g|| / (1 + xi^2 ||g||^2) <= lr / (2 xi)``
(the maximum at ``||g|| = 1 / xi``).

Conventions (the choices made, and why):

* ``||grad L||`` is the norm of the whole gradient (all parameters
  together): the graph is that of the loss over the whole parameter space.
* Only the basic method is implemented; the paper's variants that apply the
  same factor on top of a preconditioner (Adam) or imply a learning-rate
  schedule with decoupled weight decay are not.
* Defaults ``lr = 0.01, xi = 1`` are ours.
"""
from __future__ import annotations

from .. import tree
from .base import Optimizer, check_range, register

__all__ = ["InducedMetricOptimizer"]


@register("induced_metric_optimizer")
class InducedMetricOptimizer(Optimizer):
    paper = dict(title="The Optimiser Hidden in Plain Sight: Training with the Loss Landscape's Induced Metric",
                 authors="", year=2025, arxiv="", family="optimizer-first-order")
    defaults = dict(lr=0.01, xi=1.0)
    # from (-1.2, 1) on Rosenbrock ||g|| ~ 230, so with xi = 1 each step is ~ lr / 230: 200 steps barely
    # move; xi = 0.01 lets steps of ~ lr ||g|| / 6 through (the curvature ~ 1000 asks for lr ~ 1e-3)
    descent_hparams = {"rosenbrock": dict(lr=1e-3, xi=0.01)}

    def check(self, hp):
        super().check(hp)
        check_range("xi", hp["xi"], 0.0, where=self.name)

    def update(self, params, grads, state, t, hp):
        sq = tree.vdot(grads, grads)                                        # ||grad L||^2 (0-d array)
        scale = hp["lr"] / (1.0 + hp["xi"] ** 2 * sq)                       # lr / (1 + xi^2 ||g||^2)
        return tree.zip_map(lambda w, g: w - (scale * g).astype(w.dtype), params, grads), {}
