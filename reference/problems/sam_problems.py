"""Problems for the SAM family: an MLP with LayerNorm, and MLP tasks whose oracle offers input gradients.

    p = reference.problems.create("layernorm_mlp", task="two_spirals", hidden=(16, 16))
    params = p.init(0)        # "0.weight", "0.bias", "norm0.weight", "norm0.bias", ..., "2.weight", "2.bias"
    p = reference.problems.create("adversarial_mlp", task="blobs", hidden=(16,))
    oracle = p.oracle()
    loss, gx = oracle.input_grads(params)          # d loss / d x, shape like the inputs
    adv = oracle.with_inputs(x_adv)                # the same labels on perturbed inputs

Two needs of the SAM family that the other problems do not meet:

* **Normalization parameters** (SAM-ON perturbs only them). ``layernorm_mlp``
  puts a LayerNorm after every hidden linear layer, before the activation:

      h = LN(x W^T + b) = gamma * (z - mean(z)) / sqrt(var(z) + ln_eps) + beta

  over the features of each example (``ln_eps = 1e-5``, torch's default). Its
  affine parameters are named like a ``torch`` model's would be found by
  SAM-ON's default patterns: ``"norm{i}.weight"`` (``gamma``, init 1) and
  ``"norm{i}.bias"`` (``beta``, init 0). LayerNorm rather than BatchNorm:
  each example's loss depends only on that example, so per-sample
  gradients and the mean-of-losses structure of every problem stay exact
  (BatchNorm couples the examples of a batch).
* **Input gradients** (AWP trains on PGD adversarial inputs). Both problems
  return an :class:`InputOracle`, the rich oracle plus two capabilities:
  ``input_grads(params) -> (loss, d loss / d x)`` (the gradient of the
  batch's mean loss with respect to the batch's inputs ``x``, an array
  shaped like ``x``) and ``with_inputs(x)`` (an oracle on the same labels
  with the inputs replaced). ``adversarial_mlp`` is the plain MLP of
  ``reference.nn.mlp`` (keys ``"{i}.weight"``, ``"{i}.bias"``).

The data are those of the 2-D classification tasks of
``reference.problems.networks`` (``task`` in ``two_spirals``, ``blobs``,
``checkerboard``), drawn by that task with the same ``n_train``, ``n_test``,
``noise`` and ``seed``; ``task_kw`` passes further settings (``n_classes``,
``cells``, ``turns``). ``label_noise`` (default 0) flips that fraction of the
*training* labels to another class, uniformly, with a generator seeded from
``seed`` (the test labels stay clean), the setting in which SAM's and AWP's
papers report their largest gains. ``evaluate`` gives training and test loss
and accuracy.
"""
from __future__ import annotations

import math

import numpy as np

from .. import autograd as ag
from .. import nn
from . import create as create_problem, register
from .base import Oracle, Problem
from .networks import check_activation, check_int, check_widths

__all__ = ["InputOracle", "LayerNormMLP", "AdversarialMLP", "TASKS"]

TASKS = ("two_spirals", "blobs", "checkerboard")
LN_EPS = 1e-5


class InputOracle(Oracle):
    """A rich oracle with input gradients: ``input_grads(params)`` and ``with_inputs(x)``."""

    def __init__(self, problem, batch):
        super().__init__(problem, batch)
        self.calls["input_grads"] = 0

    def inputs(self):
        """The batch's inputs ``x`` (float64, on the host), the full training set for ``batch=None``."""
        return (self.problem.data if self.batch is None else self.batch)["x"]

    def input_grads(self, params):
        """``(loss, d loss / d x)``: the gradient of the batch's mean loss in its inputs (shape of ``x``)."""
        self.problem.check_params(params)
        self.calls["input_grads"] += 1
        batch = self.problem._batch_like(self.batch, params)
        consts = {k: (v.value if isinstance(v, ag.Tensor) else v) for k, v in params.items()}
        y = batch["y"]
        loss, gx = ag.value_and_grad(lambda x: ag.mean(self.problem._losses(self.problem.apply(consts, x), y)))(
            batch["x"])
        return loss, gx

    def with_inputs(self, x):
        """An oracle on the same examples' labels with inputs ``x`` (same shape as the batch's inputs)."""
        base = self.problem.data if self.batch is None else self.batch
        x = np.asarray(x.get() if hasattr(x, "get") else x, dtype=np.float64)   # host float64, like all data
        if x.shape != base["x"].shape:
            raise ValueError(f"{self.problem.name}: with_inputs needs inputs of shape {base['x'].shape}, "
                             f"got {x.shape}")
        return InputOracle(self.problem, {**base, "x": x})


class _TaskMLP(Problem):
    """An MLP on the data of a 2-D classification task of ``reference.problems.networks``."""

    task = "classification"

    def __init__(self, task="two_spirals", hidden=(16, 16), activation="relu", n_train=256, n_test=256,
                 noise=None, label_noise=0.0, seed=0, **task_kw):
        super().__init__()
        where = self.name
        if task not in TASKS:
            raise ValueError(f"{where}: task must be one of {list(TASKS)}, got {task!r}")
        self.hidden = check_widths(where, "hidden", hidden)
        if not self.hidden:
            raise ValueError(f"{where}: hidden must list at least one width, got {hidden!r}")
        self.activation = check_activation(where, activation)
        self.seed = check_int(where, "seed", seed, 0)
        self.label_noise = float(label_noise)
        if not (0.0 <= self.label_noise < 1.0) or math.isnan(self.label_noise):
            raise ValueError(f"{where}: label_noise must be in [0, 1), got {label_noise!r}")
        kw = dict(hidden=(), n_train=n_train, n_test=n_test, seed=seed, **task_kw)
        if noise is not None:
            kw["noise"] = noise
        source = create_problem(task, **kw)
        self.source = source
        self.n_in, self.n_out = source.n_in, source.n_out
        self.data = {"x": source.data["x"].copy(), "y": source.data["y"].copy()}
        self.test_data = {"x": source.test_data["x"].copy(), "y": source.test_data["y"].copy()}
        if self.label_noise > 0:
            rng = np.random.default_rng([self.seed, 1])
            y = self.data["y"]
            flip = rng.random(y.shape[0]) < self.label_noise
            shift = rng.integers(1, self.n_out, size=y.shape[0])        # another class, uniformly
            self.data["y"] = np.where(flip, (y + shift) % self.n_out, y)
            self.flipped = flip
        else:
            self.flipped = np.zeros(self.data["y"].shape[0], dtype=bool)
        self.sizes = [self.n_in, *self.hidden, self.n_out]
        self._winit = nn.he_normal if self.activation in ("relu", "gelu", "softplus") else nn.glorot_normal

    def __repr__(self):
        return f"<problem {self.name}: {self.sizes} ({self.activation}) on {self.source.name}>"

    def _losses(self, out, y):
        return nn.cross_entropy_losses(out, y)

    def _per_example_loss(self, params, batch):
        if batch is None:
            batch = self._batch_like(None, params)
        return self._losses(self.apply(params, batch["x"]), batch["y"])

    def oracle(self, batch=None):
        self.check_batch(batch)
        return InputOracle(self, batch)

    def evaluate(self, params):
        """Training and test loss and accuracy."""
        return self._train_test_metrics(params, self.apply, self._losses)


@register("layernorm_mlp")
class LayerNormMLP(_TaskMLP):
    """An MLP with a LayerNorm after every hidden linear layer (see the module docstring).

    Params: ``"{i}.weight"`` ``(out, in)``, ``"{i}.bias"`` for the linear
    layers ``i = 0 .. len(hidden)``, and ``"norm{i}.weight"``,
    ``"norm{i}.bias"`` (width ``hidden[i]``) for the LayerNorms.
    """

    def __init__(self, task="two_spirals", hidden=(16, 16), activation="relu", n_train=256, n_test=256,
                 noise=None, label_noise=0.0, seed=0, **task_kw):
        super().__init__(task, hidden, activation, n_train, n_test, noise, label_noise, seed, **task_kw)
        shapes = {}
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            shapes[f"{i}.weight"], shapes[f"{i}.bias"] = (b, a), (b,)
            if i < len(self.hidden):
                shapes[f"norm{i}.weight"], shapes[f"norm{i}.bias"] = (b,), (b,)
        self.param_shapes = shapes

    def norm_keys(self):
        """The LayerNorm parameters' keys."""
        return [k for k in self.param_shapes if k.startswith("norm")]

    def _init(self, rng):
        params = {}
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            params[f"{i}.weight"] = self._winit(rng, (b, a))
            params[f"{i}.bias"] = np.zeros(b)
            if i < len(self.hidden):
                params[f"norm{i}.weight"] = np.ones(b)
                params[f"norm{i}.bias"] = np.zeros(b)
        return {k: params[k] for k in self.param_shapes}

    def apply(self, params, x):
        act = nn.ACTIVATIONS[self.activation]
        h = x
        last = len(self.sizes) - 2
        for i in range(last + 1):
            h = h @ ag.transpose(params[f"{i}.weight"]) + params[f"{i}.bias"]
            if i < last:
                mu = ag.mean(h, axis=1, keepdims=True)                       # LayerNorm over the features
                c = h - mu
                var = ag.mean(c * c, axis=1, keepdims=True)
                h = c / ag.sqrt(var + LN_EPS) * params[f"norm{i}.weight"] + params[f"norm{i}.bias"]
                h = act(h)
        return h


@register("adversarial_mlp")
class AdversarialMLP(_TaskMLP):
    """The plain MLP of ``reference.nn.mlp`` on a 2-D task, with input gradients for adversarial training.

    Params: ``"{i}.weight"`` ``(out, in)`` and ``"{i}.bias"``. The inputs of
    the tasks lie in about ``[-2.5, 2.5]^2`` (blobs), ``[-1, 1]^2``
    (two_spirals, checkerboard): choose the attack radius accordingly.
    """

    def __init__(self, task="blobs", hidden=(16,), activation="relu", n_train=256, n_test=256,
                 noise=None, label_noise=0.0, seed=0, **task_kw):
        super().__init__(task, hidden, activation, n_train, n_test, noise, label_noise, seed, **task_kw)
        self._init_mlp, self.apply = nn.mlp(self.sizes, activation=self.activation)
        self.param_shapes = {k: v.shape for k, v in self._init_mlp(0).items()}

    def _init(self, rng):
        return self._init_mlp(rng)
