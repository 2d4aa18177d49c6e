"""Small-network tasks: an MLP from :func:`reference.nn.mlp` on a 2-D (or 1-D) toy dataset.

    p = reference.problems.create("two_spirals", hidden=(32, 32), activation="tanh")
    params = p.init(0)                  # the MLP's params: "0.weight", "0.bias", ...
    loss, grads = p.oracle()(params)    # mean cross-entropy over the training set
    p.evaluate(params)                  # {"loss", "test_loss", "accuracy", "test_accuracy"}

The tasks, each a classic picture of a nonconvex training problem small
enough to train in seconds on a laptop CPU:

* ``two_spirals``: two interleaved spirals (Lang and Witbrock, 1988), 2 classes;
* ``blobs``: ``n_classes`` Gaussian blobs on a circle, ``n_classes`` classes;
* ``checkerboard``: a ``cells`` x ``cells`` checkerboard on ``[-1, 1]^2``, 2 classes;
* ``regression_1d``: ``y = sin(3 x) + noise`` on ``[-2, 2]``, mean squared error.

Settings every task shares (keyword arguments of ``create``):

* ``hidden``: widths of the hidden layers, e.g. ``(32, 32)`` (``()`` is a
  linear model);
* ``activation``: one of :data:`reference.nn.ACTIVATIONS` (the initialiser
  follows it: He for ReLU-like, Glorot otherwise);
* ``n_train``, ``n_test``: sizes of the training and held-out sets;
* ``noise``: how noisy the data are (its meaning is given per task);
* ``seed``: the seed of the *data* (``init(seed)`` seeds the params).

Decisions written down here:

* The data are drawn once, in ``__init__``, from ``numpy.random.default_rng(seed)``:
  first the training set, then the test set, so ``n_test`` never changes the
  training set. Classification sets are exactly balanced (class ``k`` gets
  ``n // K`` examples, the first ``n % K`` classes one more) and shuffled.
* The loss is the mean over examples of a per-example loss
  (:func:`reference.nn.cross_entropy_losses` or :func:`reference.nn.mse_losses`)
  with no regulariser, so per-sample gradients average to the gradient.
* Regression targets are stored with shape ``(N, 1)``, like the MLP's output.
"""
from __future__ import annotations


import numpy as np

from .. import nn
from . import register
from .base import Problem, check_float, check_int

__all__ = ["MLPTask", "TwoSpirals", "Blobs", "Checkerboard", "Regression1D"]


# ---- setting checks (shared with shapes.py) --------------------------------

def check_nonnegative(where, name, value):
    """``value`` as a finite float ``>= 0``, or ``ValueError`` naming the setting."""
    return check_float(where, name, value, 0.0)


def check_widths(where, name, value):
    """A tuple of positive ints (hidden widths or channels), or ``ValueError`` naming the setting."""
    try:
        widths = tuple(value)
    except TypeError:
        raise ValueError(f"{where}: {name} must be a tuple of positive ints, got {value!r}") from None
    if any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1 for w in widths):
        raise ValueError(f"{where}: {name} must be a tuple of positive ints, got {value!r}")
    return tuple(int(w) for w in widths)


def check_activation(where, value):
    if value not in nn.ACTIVATIONS:
        raise ValueError(f"{where}: activation must be one of {sorted(nn.ACTIVATIONS)}, got {value!r}")
    return value


def balanced_labels(rng, n, n_classes):
    """``n`` labels, each class ``n // K`` times (the first ``n % K`` once more), shuffled."""
    return rng.permutation(np.arange(n) % n_classes).astype(np.int64)


# ---- the shared task: an MLP, a dataset, a loss ----------------------------

class MLPTask(Problem):
    """An MLP ``n_in -> hidden -> n_out`` on a dataset ``{"x": (N, n_in), "y": ...}``.

    Subclasses set ``n_in``, ``n_out``, ``task`` (``"classification"`` or
    ``"regression"``) and write ``_sample(rng, n) -> (x, y)``.
    """

    n_in = 2
    n_out = 2
    task = "classification"

    def __init__(self, hidden=(32, 32), activation="tanh", n_train=256, n_test=256, noise=0.0, seed=0):
        super().__init__()
        where = self.name
        self.hidden = check_widths(where, "hidden", hidden)
        self.activation = check_activation(where, activation)
        self.n_train_ = check_int(where, "n_train", n_train, self.n_out if self.task == "classification" else 2)
        self.n_test_ = check_int(where, "n_test", n_test, 1)
        self.noise = check_nonnegative(where, "noise", noise)
        self.seed = check_int(where, "seed", seed, 0)
        self.sizes = [self.n_in, *self.hidden, self.n_out]
        self._init_mlp, self.apply = nn.mlp(self.sizes, activation=self.activation)
        self.param_shapes = {k: v.shape for k, v in self._init_mlp(0).items()}
        rng = np.random.default_rng(self.seed)
        x, y = self._sample(rng, self.n_train_)
        self.data = {"x": x, "y": y}
        x, y = self._sample(rng, self.n_test_)
        self.test_data = {"x": x, "y": y}

    def __repr__(self):
        return f"<problem {self.name}: mlp {self.sizes} ({self.activation}), {self.n_train_} train examples>"

    def _sample(self, rng, n):
        raise NotImplementedError

    def _init(self, rng):
        return self._init_mlp(rng)

    def _losses(self, out, y):
        """Per-example losses of the MLP's outputs ``out`` against targets ``y``."""
        return nn.cross_entropy_losses(out, y) if self.task == "classification" else nn.mse_losses(out, y)

    def _per_example_loss(self, params, batch):
        if batch is None:
            batch = self._batch_like(None, params)
        return self._losses(self.apply(params, batch["x"]), batch["y"])

    # the 'outputs' capability (see problems/base.py): z = the MLP's outputs (logits or
    # predictions, (N, n_out)); l_i = the per-example cross-entropy or squared error
    def _outputs(self, params, batch):
        if batch is None:
            batch = self._batch_like(None, params)
        return self.apply(params, batch["x"])

    def _output_loss(self, outputs, batch):
        if batch is None:
            batch = self._batch_like(None, {"z": outputs.value if hasattr(outputs, "value") else outputs})
        return self._losses(outputs, batch["y"])

    def evaluate(self, params):
        """Training and test loss, and for classification the training and test accuracy."""
        return self._train_test_metrics(params, self.apply, self._losses, accuracy=self.task == "classification")


# ---- the tasks -------------------------------------------------------------

@register("two_spirals")
class TwoSpirals(MLPTask):
    """Two interleaved spirals (Lang and Witbrock, 1988), 2 classes.

    Class ``k`` in {0, 1} lies on the arm ``r (cos(a + k pi), sin(a + k pi))``
    with ``r = t``, ``a = 2 pi turns t`` for ``t ~ U(0.05, 1)``; ``noise`` is
    the standard deviation of Gaussian jitter added to the points (default
    0.02; the arms are ``1 / (2 turns)`` apart). Extra setting: ``turns``
    (default 1.0, the number of full turns of each arm).
    """

    def __init__(self, hidden=(32, 32), activation="tanh", n_train=256, n_test=256, noise=0.02,
                 turns=1.0, seed=0):
        self.turns = check_nonnegative("two_spirals", "turns", turns)
        if self.turns == 0:
            raise ValueError(f"two_spirals: turns must be > 0, got {turns!r}")
        super().__init__(hidden, activation, n_train, n_test, noise, seed)

    def _sample(self, rng, n):
        y = balanced_labels(rng, n, 2)
        t = rng.uniform(0.05, 1.0, n)
        a = 2 * np.pi * self.turns * t + np.pi * y
        x = np.stack([t * np.cos(a), t * np.sin(a)], axis=1)
        return x + self.noise * rng.standard_normal((n, 2)), y


@register("blobs")
class Blobs(MLPTask):
    """``n_classes`` isotropic Gaussian blobs in 2-D, one class each.

    The centres sit evenly on a circle of radius 2: centre ``k`` is
    ``2 (cos(2 pi k / K), sin(2 pi k / K))``; ``noise`` is the blobs' standard
    deviation (default 0.5, so neighbouring blobs overlap a little for large
    ``K``). Extra setting: ``n_classes`` (default 3, at least 2).
    """

    def __init__(self, hidden=(32, 32), activation="tanh", n_train=256, n_test=256, noise=0.5,
                 n_classes=3, seed=0):
        self.n_classes = check_int("blobs", "n_classes", n_classes, 2)
        self.n_out = self.n_classes
        super().__init__(hidden, activation, n_train, n_test, noise, seed)

    @property
    def centers(self):
        """The blob centres, ``(n_classes, 2)``."""
        angle = 2 * np.pi * np.arange(self.n_classes) / self.n_classes
        return 2.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)

    def _sample(self, rng, n):
        y = balanced_labels(rng, n, self.n_classes)
        return self.centers[y] + self.noise * rng.standard_normal((n, 2)), y


@register("checkerboard")
class Checkerboard(MLPTask):
    """A ``cells`` x ``cells`` checkerboard on ``[-1, 1]^2``, 2 classes.

    The label of a point is the colour of its square:
    ``(floor((x0 + 1) cells / 2) + floor((x1 + 1) cells / 2)) mod 2``. Each
    point is drawn uniformly inside a square of its class (so the classes are
    exactly balanced), then ``noise`` (default 0: clean labels) is the
    standard deviation of Gaussian jitter added afterwards, which blurs the
    borders. Extra setting: ``cells`` (default 4, at least 2).
    """

    def __init__(self, hidden=(32, 32), activation="tanh", n_train=512, n_test=256, noise=0.0,
                 cells=4, seed=0):
        self.cells = check_int("checkerboard", "cells", cells, 2)
        super().__init__(hidden, activation, n_train, n_test, noise, seed)

    def label_of(self, x):
        """The checkerboard colour of points ``x`` (N, 2) in ``[-1, 1]^2``."""
        idx = np.clip(np.floor((np.asarray(x) + 1.0) * self.cells / 2.0), 0, self.cells - 1).astype(np.int64)
        return (idx[:, 0] + idx[:, 1]) % 2

    def _sample(self, rng, n):
        y = balanced_labels(rng, n, 2)
        grid = np.stack(np.meshgrid(np.arange(self.cells), np.arange(self.cells), indexing="ij"), -1).reshape(-1, 2)
        cell = np.empty((n, 2), dtype=np.int64)
        for colour in (0, 1):  # a square of the example's colour, uniformly among those squares
            squares = grid[grid.sum(axis=1) % 2 == colour]
            pick = y == colour
            cell[pick] = squares[rng.integers(0, len(squares), int(pick.sum()))]
        x = -1.0 + (cell + rng.uniform(0, 1, (n, 2))) * (2.0 / self.cells)
        return x + self.noise * rng.standard_normal((n, 2)), y


@register("regression_1d")
class Regression1D(MLPTask):
    """1-D regression: ``y = sin(3 x) + noise * N(0, 1)`` for ``x ~ U(-2, 2)``; MSE loss.

    ``noise`` (default 0.1) is the target noise's standard deviation, so the
    best possible test loss is ``noise ** 2``. Targets have shape ``(N, 1)``.
    """

    n_in = 1
    n_out = 1
    task = "regression"

    def __init__(self, hidden=(32, 32), activation="tanh", n_train=256, n_test=256, noise=0.1, seed=0):
        super().__init__(hidden, activation, n_train, n_test, noise, seed)

    @staticmethod
    def target(x):
        """The noiseless target ``sin(3 x)``."""
        return np.sin(3.0 * np.asarray(x))

    def _sample(self, rng, n):
        x = rng.uniform(-2.0, 2.0, (n, 1))
        return x, self.target(x) + self.noise * rng.standard_normal((n, 1))
