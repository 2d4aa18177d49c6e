"""A problem with scale-invariant weights, for AdamP/SGDP (Heo et al., ICLR 2021).

``scale_invariant_net``: a two-layer classifier on Gaussian blobs whose weight
matrices are normalised before use, as a normalization layer would do:

    h_i      = tanh( sqrt(H) * V x_i / ||V||_F )                  (V: (H, d), whole-tensor normalised)
    logits_i = temperature * (W_k / ||W_k||) . h_i + b_k          (W: (K, H), each row normalised)
    f        = mean_i cross_entropy(logits_i, y_i)

so ``f(cV, W) = f(V, W)`` for every ``c > 0`` (LayerNorm/weight-norm style, the
"layer" view of AdamP) and ``f(V, diag(c) W) = f(V, W)`` for every positive
``c`` per row (BatchNorm style, the "channel" view); the bias ``b`` is an
ordinary parameter. The gradient of a scale-invariant weight is orthogonal
to it (``<grad_W, W> = 0``), so a gradient step can only grow its norm, and
the effective step size ``~ lr / ||W||^2`` shrinks as it does: the
phenomenon AdamP and SGDP correct.

Settings: ``d`` (input dimension, default 8), ``hidden`` (H, default 16),
``n_classes`` (K, default 4), ``n_train`` / ``n_test`` (default 256 each),
``noise`` (the blobs' standard deviation, default 1.0), ``temperature``
(default 4.0), ``seed`` (the data's seed; ``init(seed)`` seeds the params).
The data: ``K`` class centres drawn once from ``N(0, 4/d I)`` scaled to norm 2,
examples ``x = centre[y] + noise * N(0, I)``, balanced labels. Params start
from ``N(0, 1)`` (their scale does not matter to the loss, only to the
optimizers). Keys: ``"0.weight"`` (V), ``"1.weight"`` (W), ``"1.bias"`` (b).
"""
from __future__ import annotations

import math

import numpy as np

from .. import autograd as ag
from .. import nn
from . import register
from .base import Problem
from .networks import balanced_labels, check_int, check_nonnegative


@register("scale_invariant_net")
class ScaleInvariantNet(Problem):
    def __init__(self, d=8, hidden=16, n_classes=4, n_train=256, n_test=256, noise=1.0, temperature=4.0,
                 seed=0):
        super().__init__()
        where = self.name
        self.d = check_int(where, "d", d, 1)
        self.hidden = check_int(where, "hidden", hidden, 1)
        self.n_classes = check_int(where, "n_classes", n_classes, 2)
        n_train = check_int(where, "n_train", n_train, self.n_classes)
        n_test = check_int(where, "n_test", n_test, 1)
        self.noise = check_nonnegative(where, "noise", noise)
        self.temperature = check_nonnegative(where, "temperature", temperature)
        seed = check_int(where, "seed", seed, 0)
        rng = np.random.default_rng(seed)
        c = rng.standard_normal((self.n_classes, self.d))
        self.centers = 2.0 * c / np.linalg.norm(c, axis=1, keepdims=True)
        self.data = self._sample(rng, n_train)
        self.test_data = self._sample(rng, n_test)
        self.param_shapes = {"0.weight": (self.hidden, self.d), "1.weight": (self.n_classes, self.hidden),
                             "1.bias": (self.n_classes,)}

    def __repr__(self):
        return (f"<problem {self.name}: d={self.d}, hidden={self.hidden}, {self.n_classes} classes, "
                f"{self.n_train} train examples>")

    def _sample(self, rng, n):
        y = balanced_labels(rng, n, self.n_classes)
        return {"x": self.centers[y] + self.noise * rng.standard_normal((n, self.d)), "y": y}

    def _init(self, rng):
        return {k: rng.standard_normal(s) for k, s in self.param_shapes.items()}

    def logits(self, params, x):
        V, W, b = params["0.weight"], params["1.weight"], params["1.bias"]
        V_unit = V / ag.sqrt(ag.sum(V * V))                                   # ||V||_F = 1
        h = ag.tanh(math.sqrt(self.hidden) * ag.matmul(x, ag.transpose(V_unit)))
        W_unit = W / ag.sqrt(ag.sum(W * W, axis=1, keepdims=True))           # every row of unit norm
        return self.temperature * ag.matmul(h, ag.transpose(W_unit)) + b

    def _per_example_loss(self, params, batch):
        if batch is None:
            batch = self._batch_like(None, params)
        return nn.cross_entropy_losses(self.logits(params, batch["x"]), batch["y"])

    def evaluate(self, params):
        """Training and test loss and accuracy."""
        return self._train_test_metrics(params, self.logits, nn.cross_entropy_losses)
