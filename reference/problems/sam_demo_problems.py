"""Problems behind three SAM demonstrations: long-tailed blobs, a tiny MLP-Mixer, a toy forecasting task.

    p = reference.problems.create("long_tailed_blobs", imbalance=100, loss="ldam", class_weights="effective")
    p = reference.problems.create("mixer_shapes")                       # a tiny MLP-Mixer on shape images
    p = reference.problems.create("toy_linear_forecasting", model="attention")   # SAMformer's toy

* ``long_tailed_blobs`` (for ``reference.experiments.sam_imbalanced_saddle_demo``; Rangwani et al.,
  "Escaping Saddle Points for Effective Generalization on Class-Imbalanced Data", NeurIPS 2022):
  ``n_classes`` Gaussian blobs in ``n_features`` dimensions, the training set long-tailed (class ``k``
  has ``n_k = round(n_max * imbalance ** (-k / (K - 1)))`` examples, an exponential profile as in
  CIFAR-LT), the test set balanced (``n_test_per_class`` per class). The centres are drawn once
  from ``N(0, I)`` and rescaled to norm ``radius``; ``noise`` is the blobs' standard deviation.
  The model is an MLP (``reference.nn.mlp``). Losses:

  - ``loss="ce"``: cross-entropy;
  - ``loss="ldam"``: LDAM (Cao et al., NeurIPS 2019, arXiv:1906.07413): the true class's logit
    is lowered by a margin ``Delta_y = C / n_y ** (1/4)``, ``C`` such that the largest margin is
    ``max_margin`` (0.5, the official code's), and the logits are multiplied by ``scale``
    before the softmax. The official code uses ``scale = 30`` on a cosine (normalised) last
    layer; our head is a plain linear layer, whose logits are not bounded, so the default
    ``scale`` is 1.

  ``class_weights="effective"`` multiplies example ``i``'s loss by the class-balanced weight of
  Cui et al. (CVPR 2019), ``w_k = (1 - beta) / (1 - beta ** n_k)`` normalised to ``sum_k w_k =
  K`` (``beta = 0.9999``, the DRW default), divided by the mean weight over the training set, so
  that the loss is the weighted mean ``sum_i w_{y_i} l_i / sum_i w_{y_i}`` (torch's
  ``cross_entropy(weight=w)``) and still the plain mean of per-example losses (the problems'
  contract). DRW (deferred re-weighting) is ``class_weights="none"`` first, then
  ``"effective"``: two problems with the same data seed. ``minority_batch(m)`` is the training
  examples of the ``m`` smallest classes (a batch for ``oracle``: its Hessian is the
  minority-class loss Hessian). ``evaluate`` adds per-class test accuracy.

* ``mixer_shapes`` (for ``sam_mixer_smoothness_demo``; Chen, Hsieh, Gong, "When Vision
  Transformers Outperform ResNets without Pre-training or Strong Data Augmentations", ICLR
  2022): the images of ``reference.problems.create("shapes")`` (its settings pass through; the
  defaults here are smaller and noisier: 12x12 images, objects of 4 to 8 pixels, noise 0.1, 240
  training and 600 test images) classified by an MLP-Mixer (Tolstikhin et al., 2021) of ``depth`` blocks. The image is cut
  into ``patch x patch`` patches (``T`` tokens, row-major), each linearly embedded to ``width``
  channels; a block is, with pre-LayerNorm and GELU,

      U = X + (W2_tok gelu(W1_tok LN(X)^T + b1) + b2)^T          token mixing (over the T tokens)
      Y = U + gelu(LN(U) W1_ch^T + c1) W2_ch^T + c2               channel mixing

  then a final LayerNorm, the mean over tokens and a linear head. Keys:
  ``"stem.weight"`` ``(width, patch**2)``, ``"block{i}.norm1.weight"``,
  ``"block{i}.token_mlp.0.weight"`` ``(token_hidden, T)``, ``"block{i}.token_mlp.1.weight"``
  ``(T, token_hidden)``, ``"block{i}.channel_mlp.0.weight"`` ``(channel_hidden, width)``, ... ,
  ``"norm.weight"``, ``"head.weight"`` ``(3, width)`` (biases beside each). ``hidden_units(params,
  x)`` returns the first block's pre-activations (token- and channel-MLP), from which the
  demonstration counts the active (positive) units.

* ``toy_linear_forecasting`` (for ``samformer_toy_demo``; Ilbert et al., "SAMformer", ICML
  2024): inputs ``X`` of shape ``(D, L)`` (``D`` channels, a look-back window of ``L``) with
  i.i.d. ``N(0, 1)`` entries and targets ``Y = X W_toy + noise * N(0, 1)``, ``W_toy`` an
  ``(L, H)`` matrix with ``N(0, 1 / L)`` entries, shared by the channels (the paper's toy
  problem, Sec. 2.2, in miniature). The loss is the mean squared error over examples, channels
  and horizon. Models (``model``):

  - ``"linear"``: ``f(X) = X W`` (key ``"head.weight"``, stored ``(H, L)`` as a torch linear
    layer, so ``f = X W^T``);
  - ``"attention"``: the paper's simplified transformer with *channel-wise* attention (the
    tokens are the ``D`` channels, each a length-``L`` series):
    ``f(X) = [X + A(X) X W_V W_O] W``,
    ``A(X) = softmax(X W_Q W_K^T X^T / sqrt(d_model))`` (row-wise, ``D x D``); keys
    ``"attention.query"``, ``"attention.key"``, ``"attention.value"`` ``(L, d_model)``,
    ``"attention.output"`` ``(d_model, L)`` and ``"head.weight"``.

  ``revin=True`` adds reversible instance normalisation (Kim et al., ICLR 2022): each channel
  of each input is standardised over its window, with a learned affine map per channel
  (``"revin.weight"``, ``"revin.bias"``), and the forecast is mapped back with the window's
  statistics. It is off by default because with it ``X W_toy`` is no longer exactly in the model
  class (the paper's toy model has no RevIN; SAMformer adds it for real data).
  ``oracle_head()`` is the least-squares ``W`` on the training set (the best linear map, the
  "oracle" the paper compares with) and ``attention(params, x)`` the attention matrices.

Every problem here keeps the data in float64 on the host, like the others (see ``base``).
"""
from __future__ import annotations

import math

import numpy as np

from .. import autograd as ag
from .. import nn
from ..backend import to_numpy, xp_of
from . import create as create_problem, register
from .base import Problem
from .networks import check_activation, check_int, check_nonnegative, check_widths

__all__ = ["LongTailedBlobs", "MixerShapes", "ToyLinearForecasting", "layer_norm"]

LN_EPS = 1e-5


def _positive(where, name, value):
    v = check_nonnegative(where, name, value)
    if v == 0:
        raise ValueError(f"{where}: {name} must be > 0, got {value!r}")
    return v


def layer_norm(h, weight, bias, eps=LN_EPS):
    """LayerNorm over the last axis: ``weight * (h - mean) / sqrt(var + eps) + bias``."""
    mu = ag.mean(h, axis=-1, keepdims=True)
    c = h - mu
    var = ag.mean(c * c, axis=-1, keepdims=True)
    return c / ag.sqrt(var + eps) * weight + bias


# ---- long-tailed Gaussian blobs ------------------------------------------------------------

@register("long_tailed_blobs")
class LongTailedBlobs(Problem):
    """Long-tailed Gaussian blobs classified by an MLP, with LDAM and class re-weighting (module docstring)."""

    task = "classification"

    def __init__(self, n_classes=5, n_features=8, hidden=(32,), activation="relu", imbalance=100.0, n_max=300,
                 n_test_per_class=200, radius=2.5, noise=1.0, loss="ce", class_weights="none",
                 beta=0.9999, max_margin=0.5, scale=1.0, seed=0):
        super().__init__()
        where = "long_tailed_blobs"
        self.n_classes = check_int(where, "n_classes", n_classes, 2)
        self.n_features = check_int(where, "n_features", n_features, 1)
        self.hidden = check_widths(where, "hidden", hidden)
        self.activation = check_activation(where, activation)
        self.imbalance = check_nonnegative(where, "imbalance", imbalance)
        if self.imbalance < 1:
            raise ValueError(f"{where}: imbalance must be >= 1, got {imbalance!r}")
        self.n_max = check_int(where, "n_max", n_max, 1)
        self.n_test_per_class = check_int(where, "n_test_per_class", n_test_per_class, 1)
        self.radius = check_nonnegative(where, "radius", radius)
        self.noise = check_nonnegative(where, "noise", noise)
        if loss not in ("ce", "ldam"):
            raise ValueError(f"{where}: loss must be one of ['ce', 'ldam'], got {loss!r}")
        if class_weights not in ("none", "effective"):
            raise ValueError(f"{where}: class_weights must be one of ['none', 'effective'], got {class_weights!r}")
        self.loss_kind, self.class_weights = loss, class_weights
        self.beta = float(beta)
        if not (0.0 <= self.beta < 1.0):
            raise ValueError(f"{where}: beta must be in [0, 1), got {beta!r}")
        self.max_margin = check_nonnegative(where, "max_margin", max_margin)
        self.scale = _positive(where, "scale", scale)
        self.seed = check_int(where, "seed", seed, 0)

        K = self.n_classes
        self.counts = np.array([max(1, int(round(self.n_max * self.imbalance ** (-k / (K - 1)))))
                                for k in range(K)])
        rng = np.random.default_rng(self.seed)
        c = rng.standard_normal((K, self.n_features))
        self.centers = self.radius * c / np.linalg.norm(c, axis=1, keepdims=True)
        y = np.repeat(np.arange(K), self.counts)
        y = y[rng.permutation(y.size)]
        self.data = {"x": self.centers[y] + self.noise * rng.standard_normal((y.size, self.n_features)), "y": y}
        yt = np.repeat(np.arange(K), self.n_test_per_class)
        self.test_data = {"x": self.centers[yt] + self.noise * rng.standard_normal((yt.size, self.n_features)), "y": yt}

        # LDAM margins Delta_k = C / n_k^(1/4), the largest equal to max_margin
        m = 1.0 / self.counts ** 0.25
        self.margins = m * (self.max_margin / m.max()) if self.loss_kind == "ldam" else np.zeros(K)
        # class-balanced ("effective number") weights, sum K; divided by their mean over the training set
        if self.class_weights == "effective":
            w = (1.0 - self.beta) / (1.0 - self.beta ** self.counts)
            w = w * K / w.sum()
        else:
            w = np.ones(K)
        self.weights = w / w[y].mean()

        self.sizes = [self.n_features, *self.hidden, K]
        self._init_mlp, self.apply = nn.mlp(self.sizes, activation=self.activation)
        self.param_shapes = {k: v.shape for k, v in self._init_mlp(0).items()}

    def __repr__(self):
        return (f"<problem long_tailed_blobs: {self.n_classes} classes, counts {self.counts.tolist()}, "
                f"mlp {self.sizes}, loss {self.loss_kind}, weights {self.class_weights}>")

    def _init(self, rng):
        return self._init_mlp(rng)

    def _losses(self, params, x, y):
        logits = self.apply(params, x)
        yv = to_numpy(y)
        onehot = np.eye(self.n_classes)[yv]
        adjust = self._const_of(onehot * self.margins[None, :], params)
        weights = self._const_of(self.weights[yv], params)
        return nn.cross_entropy_losses(self.scale * (logits - adjust), y) * weights

    def _const_of(self, array, params):
        ref = next(iter(params.values()))
        ref = ref.value if isinstance(ref, ag.Tensor) else ref
        return xp_of(ref).asarray(array).astype(ref.dtype)

    def _per_example_loss(self, params, batch):
        if batch is None:
            batch = self._batch_like(None, params)
        return self._losses(params, batch["x"], batch["y"])

    def minority_batch(self, m=1):
        """The training examples of the ``m`` smallest classes, as a batch for ``oracle``."""
        m = check_int("long_tailed_blobs.minority_batch", "m", m, 1)
        classes = np.argsort(self.counts, kind="stable")[:m]
        keep = np.isin(self.data["y"], classes)
        return {k: v[keep] for k, v in self.data.items()}

    def class_batch(self, k):
        """The training examples of class ``k``, as a batch for ``oracle``."""
        keep = self.data["y"] == int(k)
        return {key: v[keep] for key, v in self.data.items()}

    def evaluate(self, params):
        """Training loss and accuracy, test loss and accuracy, and the test accuracy of every class."""
        self.check_params(params)
        metrics = {}
        for prefix, data in (("", self.data), ("test_", self.test_data)):
            batch = self._batch_like(data, params)
            out = self.apply(params, batch["x"])
            metrics[prefix + "loss"] = float(self._losses(params, batch["x"], batch["y"]).value.mean())
            metrics[prefix + "accuracy"] = float(nn.accuracy(out, batch["y"]))
            if prefix == "test_":
                pred = to_numpy(out.value if isinstance(out, ag.Tensor) else out).argmax(axis=1)
                metrics["class_accuracy"] = [float((pred[data["y"] == k] == k).mean())
                                             for k in range(self.n_classes)]
        return metrics


# ---- a tiny MLP-Mixer on shape images ------------------------------------------------------

@register("mixer_shapes")
class MixerShapes(Problem):
    """A tiny MLP-Mixer on the generated shape images of ``shapes`` (module docstring)."""

    task = "classification"

    def __init__(self, patch=4, width=12, token_hidden=12, channel_hidden=24, depth=1, image_size=12,
                 n_train=240, n_test=600, noise=0.1, min_size=4.0, max_size=8.0, seed=0, **shapes_kw):
        super().__init__()
        where = "mixer_shapes"
        self.patch = check_int(where, "patch", patch, 1)
        self.width = check_int(where, "width", width, 1)
        self.token_hidden = check_int(where, "token_hidden", token_hidden, 1)
        self.channel_hidden = check_int(where, "channel_hidden", channel_hidden, 1)
        self.depth = check_int(where, "depth", depth, 1)
        self.image_size = check_int(where, "image_size", image_size, 1)
        if self.image_size % self.patch:
            raise ValueError(f"{where}: image_size ({image_size}) must be divisible by patch ({patch})")
        self.seed = check_int(where, "seed", seed, 0)
        source = create_problem("shapes", image_size=image_size, n_train=n_train, n_test=n_test, noise=noise,
                                min_size=min_size, max_size=max_size, seed=seed, channels=(), **shapes_kw)
        self.source = source
        self.n_classes = 3
        self.grid = self.image_size // self.patch
        self.tokens = self.grid ** 2
        self.data = {"x": source.data["x"].copy(), "y": source.data["y"].copy()}
        self.test_data = {"x": source.test_data["x"].copy(), "y": source.test_data["y"].copy()}
        P, C, T = self.patch ** 2, self.width, self.tokens
        shapes = {"stem.weight": (C, P), "stem.bias": (C,)}
        for i in range(self.depth):
            b = f"block{i}."
            shapes.update({b + "norm1.weight": (C,), b + "norm1.bias": (C,),
                           b + "token_mlp.0.weight": (self.token_hidden, T), b + "token_mlp.0.bias": (self.token_hidden,),
                           b + "token_mlp.1.weight": (T, self.token_hidden), b + "token_mlp.1.bias": (T,),
                           b + "norm2.weight": (C,), b + "norm2.bias": (C,),
                           b + "channel_mlp.0.weight": (self.channel_hidden, C),
                           b + "channel_mlp.0.bias": (self.channel_hidden,),
                           b + "channel_mlp.1.weight": (C, self.channel_hidden), b + "channel_mlp.1.bias": (C,)})
        shapes.update({"norm.weight": (C,), "norm.bias": (C,), "head.weight": (self.n_classes, C),
                       "head.bias": (self.n_classes,)})
        self.param_shapes = shapes

    def __repr__(self):
        return (f"<problem mixer_shapes: {self.tokens} tokens of {self.patch}x{self.patch}, width {self.width}, "
                f"depth {self.depth}>")

    def _init(self, rng):
        params = {}
        for k, shape in self.param_shapes.items():
            if k.endswith("norm1.weight") or k.endswith("norm2.weight") or k == "norm.weight":
                params[k] = np.ones(shape)
            elif k.endswith(".bias"):
                params[k] = np.zeros(shape)
            else:
                params[k] = nn.glorot_normal(rng, shape)
        return params

    def patches(self, x):
        """Images ``(N, 1, S, S)`` -> patches ``(N, T, patch**2)`` (tokens in row-major order)."""
        n, g, p = x.shape[0], self.grid, self.patch
        z = ag.reshape(x, (n, g, p, g, p))
        z = ag.transpose(z, (0, 1, 3, 2, 4))
        return ag.reshape(z, (n, g * g, p * p))

    def _block(self, params, i, h, record=None):
        b = f"block{i}."
        z = layer_norm(h, params[b + "norm1.weight"], params[b + "norm1.bias"])
        zt = ag.transpose(z, (0, 2, 1))                                      # (N, C, T)
        a = zt @ ag.transpose(params[b + "token_mlp.0.weight"]) + params[b + "token_mlp.0.bias"]
        if record is not None:
            record["token"] = a
        u = ag.gelu(a) @ ag.transpose(params[b + "token_mlp.1.weight"]) + params[b + "token_mlp.1.bias"]
        h = h + ag.transpose(u, (0, 2, 1))
        z = layer_norm(h, params[b + "norm2.weight"], params[b + "norm2.bias"])
        a = z @ ag.transpose(params[b + "channel_mlp.0.weight"]) + params[b + "channel_mlp.0.bias"]
        if record is not None:
            record["channel"] = a
        u = ag.gelu(a) @ ag.transpose(params[b + "channel_mlp.1.weight"]) + params[b + "channel_mlp.1.bias"]
        return h + u

    def apply(self, params, x, record=None):
        """Logits ``(N, 3)`` of images ``x`` ``(N, 1, S, S)``."""
        h = self.patches(x) @ ag.transpose(params["stem.weight"]) + params["stem.bias"]     # (N, T, C)
        for i in range(self.depth):
            h = self._block(params, i, h, record if i == 0 else None)
        h = layer_norm(h, params["norm.weight"], params["norm.bias"])
        h = ag.mean(h, axis=1)
        return h @ ag.transpose(params["head.weight"]) + params["head.bias"]

    def hidden_units(self, params, x):
        """The first block's hidden pre-activations: ``{"token": (N, C, token_hidden), "channel": (N, T,
        channel_hidden)}`` (a unit is active where its pre-activation is positive: GELU(a) > 0 iff a > 0)."""
        record = {}
        self.apply(params, x, record)
        return {k: to_numpy(v.value if isinstance(v, ag.Tensor) else v) for k, v in record.items()}

    def _per_example_loss(self, params, batch):
        if batch is None:
            batch = self._batch_like(None, params)
        return nn.cross_entropy_losses(self.apply(params, batch["x"]), batch["y"])

    def evaluate(self, params):
        """Training and test loss and accuracy."""
        return self._train_test_metrics(params, self.apply, nn.cross_entropy_losses)


# ---- SAMformer's toy linear forecasting problem --------------------------------------------

@register("toy_linear_forecasting")
class ToyLinearForecasting(Problem):
    """``Y = X W_toy + noise``, fit by a linear model or a channel-wise attention model (module docstring)."""

    task = "regression"

    def __init__(self, model="attention", channels=7, lookback=32, horizon=8, d_model=8, n_train=256,
                 n_test=512, noise=0.5, revin=False, seed=0):
        super().__init__()
        where = "toy_linear_forecasting"
        if model not in ("attention", "linear"):
            raise ValueError(f"{where}: model must be one of ['attention', 'linear'], got {model!r}")
        self.model = model
        self.channels = check_int(where, "channels", channels, 1)
        self.lookback = check_int(where, "lookback", lookback, 1)
        self.horizon = check_int(where, "horizon", horizon, 1)
        self.d_model = check_int(where, "d_model", d_model, 1)
        self.noise = check_nonnegative(where, "noise", noise)
        self.revin = bool(revin)
        self.seed = check_int(where, "seed", seed, 0)
        D, L, H = self.channels, self.lookback, self.horizon
        rng = np.random.default_rng(self.seed)
        self.w_toy = rng.standard_normal((L, H)) / math.sqrt(L)
        n_train = check_int(where, "n_train", n_train, 1)
        n_test = check_int(where, "n_test", n_test, 1)
        self.data = self._sample(rng, n_train)
        self.test_data = self._sample(rng, n_test)
        shapes = {}
        if self.revin:
            shapes.update({"revin.weight": (D,), "revin.bias": (D,)})
        if model == "attention":
            d = self.d_model
            shapes.update({"attention.query": (L, d), "attention.key": (L, d), "attention.value": (L, d),
                           "attention.output": (d, L)})
        shapes["head.weight"] = (H, L)
        self.param_shapes = shapes

    def __repr__(self):
        return (f"<problem toy_linear_forecasting: {self.model}, D={self.channels}, L={self.lookback}, "
                f"H={self.horizon}{', RevIN' if self.revin else ''}>")

    def _sample(self, rng, n):
        x = rng.standard_normal((n, self.channels, self.lookback))
        y = x @ self.w_toy + self.noise * rng.standard_normal((n, self.channels, self.horizon))
        return {"x": x, "y": y}

    def _init(self, rng):
        params = {}
        for k, shape in self.param_shapes.items():
            if k == "revin.weight":
                params[k] = np.ones(shape)
            elif k == "revin.bias":
                params[k] = np.zeros(shape)
            else:       # N(0, 1 / fan_in): the variance of torch's default uniform init, up to a factor 3
                fan_in = shape[1] if k == "head.weight" else shape[0]
                params[k] = rng.standard_normal(shape) / math.sqrt(fan_in)
        return params

    def attention(self, params, x):
        """The channel-wise attention matrices ``A(X)``, ``(N, D, D)`` (rows sum to 1)."""
        q = x @ params["attention.query"]
        k = x @ params["attention.key"]
        return ag.softmax(q @ ag.transpose(k, (0, 2, 1)) / math.sqrt(self.d_model), axis=-1)

    def apply(self, params, x):
        """Forecasts ``(N, D, H)`` of inputs ``(N, D, L)``."""
        if self.revin:
            mu = ag.mean(x, axis=-1, keepdims=True)
            c = x - mu
            sd = ag.sqrt(ag.mean(c * c, axis=-1, keepdims=True) + LN_EPS)
            gamma = ag.reshape(params["revin.weight"], (self.channels, 1))
            beta = ag.reshape(params["revin.bias"], (self.channels, 1))
            x = c / sd * gamma + beta
        h = x
        if self.model == "attention":
            h = x + self.attention(params, x) @ (x @ params["attention.value"]) @ params["attention.output"]
        out = h @ ag.transpose(params["head.weight"])
        if self.revin:
            out = (out - beta) / (gamma + LN_EPS) * sd + mu
        return out

    def _per_example_loss(self, params, batch):
        if batch is None:
            batch = self._batch_like(None, params)
        err = self.apply(params, batch["x"]) - batch["y"]
        return ag.mean(ag.reshape(err * err, (err.shape[0], -1)), axis=1)

    def oracle_head(self):
        """The least-squares linear map on the training set, ``(L, H)`` (pooled over channels)."""
        x = self.data["x"].reshape(-1, self.lookback)
        y = self.data["y"].reshape(-1, self.horizon)
        return np.linalg.lstsq(x, y, rcond=None)[0]

    def mse(self, pred, data=None):
        """Mean squared error of forecasts ``pred`` against ``data``'s targets (default: the test set)."""
        data = self.test_data if data is None else data
        return float(np.mean((to_numpy(pred) - data["y"]) ** 2))

    def evaluate(self, params):
        """Training and test MSE, and the oracle's (least-squares linear map) test MSE."""
        self.check_params(params)
        metrics = {}
        for prefix, data in (("", self.data), ("test_", self.test_data)):
            batch = self._batch_like(data, params)
            out = self.apply(params, batch["x"])
            metrics[prefix + "loss"] = self.mse(out.value if isinstance(out, ag.Tensor) else out, data)
        metrics["oracle_test_loss"] = self.mse(self.test_data["x"] @ self.oracle_head())
        return metrics
