"""Problems for the sharpness demonstrations: an MLP on a teacher network's labels, with input gradients.

    p = reference.problems.create("teacher_mlp", dim=20, hidden=(32,), label_noise=0.2)
    oracle = p.oracle()
    loss, gx = oracle.input_grads(params)          # d loss / d x (FGSM/PGD on the student)

``teacher_mlp``: inputs ``x ~ N(0, I_dim)``; a random scalar *teacher* ``f(x) = a^T relu(W x)``
(``W`` ``(teacher_width, dim)`` and ``a`` He-normal, drawn from ``teacher_seed``, so that problems
with different data ``seed`` can share one teacher: independent training sets of one task) labels
each input with the bin of ``f(x)`` among ``K`` equally likely bins (cut at the ``k / K`` quantiles of ``f``, estimated
once on 20000 reference inputs from the same generator), so the classes are balanced;
``noise_dims`` appends that many pure-noise coordinates ``N(0, 1)`` that the labels ignore (the
student sees ``dim + noise_dims`` inputs: room to memorise with features that do not generalise);
``label_noise`` flips that fraction of the *training* labels to another class, uniformly (the test
labels stay clean). The student is ``reference.nn.mlp([dim, *hidden, K])``. Unlike the 2-D tasks of
``reference.problems.networks``, the input dimension is a setting: adversarial perturbations have
room to differ between models (the transferability demo needs that), and the labelling rule is
known exactly (``teacher_labels``).

The oracle is ``reference.problems.sam_problems.InputOracle``: the rich oracle plus
``input_grads(params)`` and ``with_inputs(x)``.

``hypercube_parity`` (Wen, Li, Ma 2023, "Sharpness Minimization Algorithms Do Not Only Minimize
Sharpness To Achieve Better Generalization", arXiv:2307.11007): inputs are the points of the
hypercube ``{-1, 1}^dim``, labels the 2-parity ``y = x_1 x_2``; ``n_train`` distinct points are
drawn (without replacement, from ``seed``) for training and the *rest of the cube* is the test set.
The model is the two-layer ReLU network of the paper, ``f(x) = sum_j a_j relu(w_j . x + b_j)``
(``bias=False``: no ``b``), no output bias, with the squared loss ``(f(x) - y)^2`` (mean over
examples). Params: ``"W"`` ``(width, dim)``, ``"b"`` ``(width,)`` (with bias), ``"a"`` ``(width,)``;
init ``W ~ N(0, 2 / dim)``, ``a ~ N(0, 1 / width)``, ``b = 0``. ``numpy_oracle(batch=None)`` is the same
loss and gradient written out in NumPy (no tape: about 20 times faster, for long full-batch SAM
runs), checked against the autograd oracle in the tests.
"""
from __future__ import annotations

import numpy as np

from .. import autograd as ag
from .. import nn
from . import register
from .base import Problem
from .networks import MLPTask, check_int, check_nonnegative
from .sam_problems import InputOracle

__all__ = ["TeacherMLP", "HypercubeParity"]


@register("teacher_mlp")
class TeacherMLP(MLPTask):
    """An MLP on labels of a random ReLU teacher in ``dim`` dimensions (see the module docstring)."""

    task = "classification"

    def __init__(self, dim=10, n_classes=3, teacher_width=8, hidden=(16,), activation="relu", n_train=256,
                 n_test=512, label_noise=0.0, noise_dims=0, seed=0, teacher_seed=0):
        where = "teacher_mlp"
        self.signal_dim = check_int(where, "dim", dim, 1)
        self.noise_dims = check_int(where, "noise_dims", noise_dims, 0)
        self.n_in = self.signal_dim + self.noise_dims
        self.n_out = check_int(where, "n_classes", n_classes, 2)
        self.teacher_width = check_int(where, "teacher_width", teacher_width, 1)
        self.label_noise = check_nonnegative(where, "label_noise", label_noise)
        if self.label_noise >= 1.0:
            raise ValueError(f"{where}: label_noise must be in [0, 1), got {label_noise!r}")
        self.teacher_seed = check_int(where, "teacher_seed", teacher_seed, 0)
        rng = np.random.default_rng([self.teacher_seed, 7])
        self.teacher = {"W": nn.he_normal(rng, (self.teacher_width, self.signal_dim)),
                        "a": nn.he_normal(rng, (1, self.teacher_width))[0]}
        ref = self.teacher_output(rng.standard_normal((20000, self.signal_dim)))
        self.cuts = np.quantile(ref, np.arange(1, self.n_out) / self.n_out)
        super().__init__(hidden=hidden, activation=activation, n_train=n_train, n_test=n_test, noise=0.0,
                         seed=seed)
        self.flipped = np.zeros(self.n_train_, dtype=bool)
        if self.label_noise > 0:
            rng = np.random.default_rng([self.seed, 1])
            y = self.data["y"]
            self.flipped = rng.random(y.shape[0]) < self.label_noise
            shift = rng.integers(1, self.n_out, size=y.shape[0])
            self.data["y"] = np.where(self.flipped, (y + shift) % self.n_out, y)

    def teacher_output(self, x):
        """``f(x) = a^T relu(W x)`` for each row of ``x`` (its first ``dim`` coordinates)."""
        x = np.asarray(x, dtype=np.float64)[:, :self.signal_dim]
        return np.maximum(x @ self.teacher["W"].T, 0.0) @ self.teacher["a"]

    def teacher_labels(self, x):
        """The teacher's class of each row of ``x``: the bin of ``f(x)``."""
        return np.searchsorted(self.cuts, self.teacher_output(x)).astype(np.int64)

    def _sample(self, rng, n):
        x = rng.standard_normal((n, self.n_in))
        return x, self.teacher_labels(x)

    def oracle(self, batch=None):
        self.check_batch(batch)
        return InputOracle(self, batch)


@register("hypercube_parity")
class HypercubeParity(Problem):
    """The 2-parity ``x_1 x_2`` on ``{-1, 1}^dim`` for a two-layer ReLU network (see the module docstring)."""

    name = "hypercube_parity"

    def __init__(self, dim=6, n_train=24, width=16, bias=True, seed=0):
        super().__init__()
        where = self.name
        self.n_in = check_int(where, "dim", dim, 2)
        if self.n_in > 16:
            raise ValueError(f"{where}: dim must be at most 16 (the whole cube is enumerated), got {dim}")
        self.n_train_ = check_int(where, "n_train", n_train, 1)
        if self.n_train_ >= 2 ** self.n_in:
            raise ValueError(f"{where}: n_train must be below 2**dim = {2 ** self.n_in}, got {n_train}")
        self.width = check_int(where, "width", width, 1)
        self.bias = bool(bias)
        self.seed = check_int(where, "seed", seed, 0)
        cube = np.array(np.meshgrid(*[[-1.0, 1.0]] * self.n_in, indexing="ij")).reshape(self.n_in, -1).T
        order = np.random.default_rng(self.seed).permutation(cube.shape[0])
        x = cube[order]
        y = x[:, 0] * x[:, 1]
        self.data = {"x": x[:self.n_train_], "y": y[:self.n_train_]}
        self.test_data = {"x": x[self.n_train_:], "y": y[self.n_train_:]}
        self.param_shapes = {"W": (self.width, self.n_in), "a": (self.width,)}
        if self.bias:
            self.param_shapes["b"] = (self.width,)

    def __repr__(self):
        return (f"<problem {self.name}: dim {self.n_in}, width {self.width}, bias {self.bias}, "
                f"{self.n_train_} train points>")

    def _init(self, rng):
        params = {"W": rng.standard_normal((self.width, self.n_in)) * np.sqrt(2.0 / self.n_in),
                  "a": rng.standard_normal(self.width) / np.sqrt(self.width)}
        if self.bias:
            params["b"] = np.zeros(self.width)
        return params

    def apply(self, params, x):
        """``f(x) = relu(x W^T + b) a``, shape ``(N,)``."""
        z = x @ ag.transpose(params["W"])
        if self.bias:
            z = z + params["b"]
        return ag.matmul(ag.relu(z), params["a"])

    def _per_example_loss(self, params, batch):
        if batch is None:
            batch = self._batch_like(None, params)
        r = self.apply(params, batch["x"]) - batch["y"]
        return r * r

    def predict(self, params, x):
        """``f(x)`` in NumPy."""
        z = np.asarray(x) @ params["W"].T + (params["b"] if self.bias else 0.0)
        return np.maximum(z, 0.0) @ params["a"]

    def numpy_oracle(self, batch=None):
        """A plain oracle ``params -> (mean squared error, grads)`` in NumPy (same values as ``oracle``)."""
        data = self.data if batch is None else batch
        X, y = np.asarray(data["x"], dtype=np.float64), np.asarray(data["y"], dtype=np.float64)
        N, bias = X.shape[0], self.bias

        def oracle(params):
            z = X @ params["W"].T + (params["b"] if bias else 0.0)
            h = np.maximum(z, 0.0)
            r = h @ params["a"] - y
            dz = (2.0 / N) * r[:, None] * (z > 0) * params["a"][None, :]
            grads = {"W": dz.T @ X, "a": (2.0 / N) * (h.T @ r)}
            if bias:
                grads["b"] = dz.sum(axis=0)
            return float(np.mean(r * r)), {k: grads[k] for k in params}
        return oracle

    def evaluate(self, params):
        """Training and test mean squared error (the test set is the rest of the cube)."""
        self.check_params(params)
        return {prefix + "loss": float(np.mean((self.predict(params, d["x"]) - d["y"]) ** 2))
                for prefix, d in (("", self.data), ("test_", self.test_data))}
