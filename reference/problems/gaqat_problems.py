"""A fake-quantized MLP with learnable LSQ scales, on several source domains and a shifted target domain.

    p = reference.problems.create("gaqat_mlp", bits=4)
    params = p.init(0)   # "0.weight", "0.bias", "0.scale", "1.weight", "1.bias", "1.scale"
    p.evaluate(params)   # loss/accuracy on the source domains and ("test_") on the target domain

The problem GAQAT (``reference/optim/gaqat.py``) is tested on: quantization-
aware training (QAT) of a small network for domain generalization.

**The quantizer** is LSQ (Esser, McKinley, Bablani, Appuswamy, Modha,
"Learned Step Size Quantization", ICLR 2020, arXiv:1902.08153), per layer,
on the weights (activations stay in full precision):

    w_q = s * round( clip(w / s, -Q_N, Q_P) ),   Q_N = 2^(b-1), Q_P = 2^(b-1) - 1   (signed, b bits)

with the step size ``s`` (key ``"{i}.scale"``, shape ``(1,)``) a trained
parameter. The rounding is passed straight through (STE): ``round(v)`` is
written ``v + stop_gradient(round(v) - v)``, so that

    d w_q / d w = 1 inside the clip range, 0 outside;
    d w_q / d s = round(w/s) - w/s inside, -Q_N or Q_P outside          (LSQ's Eq. 3)

and, with ``grad_scale=True`` (LSQ's default), the gradient reaching ``s``
is multiplied by ``g = 1 / sqrt(N_w Q_P)`` (``N_w`` the layer's number of
weights) through ``s_eff = s g + stop_gradient(s - s g)`` (value ``s``).
The scales start at LSQ's ``2 mean|w| / sqrt(Q_P)``. ``round`` is a
zero-derivative primitive defined here (the autograd has none); its
derivative never reaches the loss except through the STE.

**bits=None** (the default) is the full-precision network (the scales are
then unused and get zero gradient). It is the default because at ``b``
bits the STE gradient is, by design, *not* the derivative of the loss
(which is piecewise constant in ``w``), while the problem contract test
checks gradients against finite differences. Pass ``bits=3`` or ``bits=4``
for QAT.

**The data** (``n_classes`` classes in ``n_in`` dimensions): the first two
features carry the class, ``mu_y`` on a circle of radius 2, rotated by a
per-domain angle ``~ N(0, shift^2)`` plus noise ``noise``; the other
``n_in - 2`` features are *spurious*: a per-domain, per-class mean
``nu_{e,y} ~ N(0, spurious^2 I)`` plus unit noise. A classifier that leans
on the spurious features fits the source domains but fails on a new
domain, whose rotation and spurious means are drawn afresh (with the
rotation's scale ``target_shift``). ``n_domains`` source domains of
``n_per_domain`` examples each form the training set (keys ``"x"``,
``"y"``, ``"domain"``); ``n_test`` examples of the target domain form
``test_data``. ``evaluate`` reports source (``loss``, ``accuracy``) and
target (``test_loss``, ``test_accuracy``) metrics.
"""
from __future__ import annotations

import math

import numpy as np

from .. import autograd as ag
from .. import nn
from ..autograd.tensor import Primitive, Tensor
from ..backend import xp_of
from . import register
from .base import Problem
from .networks import balanced_labels, check_activation, check_int, check_nonnegative, check_widths

__all__ = ["QuantizedDomainMLP", "lsq_quantize", "ste_round", "quant_range"]

# round with derivative zero (both modes); the STE below is what carries a gradient
_round = Primitive("round", lambda a: xp_of(a).round(a), lambda g, out, a: (None,),
                   lambda tans, out, a: Tensor._wrap(xp_of(a.value).zeros_like(a.value)))


def ste_round(v):
    """``round(v)`` forward, identity derivative: ``v + stop_gradient(round(v) - v)``."""
    v = v if isinstance(v, Tensor) else ag.identity(v)
    return v + ag.stop_gradient(_round(v) - v)


def quant_range(bits):
    """``(Q_N, Q_P)`` of a signed ``bits``-bit quantizer: ``(2^(b-1), 2^(b-1) - 1)``."""
    return 2 ** (bits - 1), 2 ** (bits - 1) - 1


def lsq_quantize(w, s, bits, grad_scale=True):
    """LSQ fake quantization ``s * round(clip(w / s, -Q_N, Q_P))`` with the STE and LSQ's gradient scale."""
    qn, qp = quant_range(bits)
    if grad_scale:
        g = 1.0 / math.sqrt(w.size * qp)
        s = s * g + ag.stop_gradient(s - s * g)            # value s, gradient scaled by g
    v = ag.clip(w / s, -float(qn), float(qp))
    return ste_round(v) * s


@register("gaqat_mlp")
class QuantizedDomainMLP(Problem):
    """An MLP with LSQ fake-quantized weights on a domain-generalization task (see the module docstring).

    Params: ``"{i}.weight"`` ``(out, in)``, ``"{i}.bias"`` ``(out,)`` and
    ``"{i}.scale"`` ``(1,)`` for every linear layer ``i``.
    """

    def __init__(self, bits=None, hidden=(16,), activation="relu", n_in=6, n_classes=3, n_domains=3,
                 n_per_domain=60, n_test=300, noise=0.6, shift=0.3, target_shift=0.6, spurious=1.5,
                 grad_scale=True, seed=0):
        super().__init__()
        where = self.name
        if bits is not None:
            self.bits = check_int(where, "bits", bits, 2)
        else:
            self.bits = None
        self.hidden = check_widths(where, "hidden", hidden)
        self.activation = check_activation(where, activation)
        self.n_in = check_int(where, "n_in", n_in, 3)
        self.n_out = check_int(where, "n_classes", n_classes, 2)
        self.n_domains = check_int(where, "n_domains", n_domains, 1)
        self.n_per_domain = check_int(where, "n_per_domain", n_per_domain, self.n_out)
        self.n_test_ = check_int(where, "n_test", n_test, 1)
        self.noise = check_nonnegative(where, "noise", noise)
        self.shift = check_nonnegative(where, "shift", shift)
        self.target_shift = check_nonnegative(where, "target_shift", target_shift)
        self.spurious = check_nonnegative(where, "spurious", spurious)
        if not isinstance(grad_scale, bool):
            raise ValueError(f"{where}: grad_scale must be True or False, got {grad_scale!r}")
        self.grad_scale = grad_scale
        self.seed = check_int(where, "seed", seed, 0)
        self.sizes = [self.n_in, *self.hidden, self.n_out]
        self.param_shapes = {}
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            self.param_shapes.update({f"{i}.weight": (b, a), f"{i}.bias": (b,), f"{i}.scale": (1,)})
        rng = np.random.default_rng(self.seed)
        xs, ys, ds = [], [], []
        for e in range(self.n_domains):
            x, y = self._domain(rng, self.n_per_domain, self.shift)
            xs.append(x), ys.append(y), ds.append(np.full(y.shape, e))
        self.data = {"x": np.concatenate(xs), "y": np.concatenate(ys), "domain": np.concatenate(ds)}
        x, y = self._domain(rng, self.n_test_, self.target_shift)
        self.test_data = {"x": x, "y": y, "domain": np.full(y.shape, self.n_domains)}

    def __repr__(self):
        b = "full precision" if self.bits is None else f"{self.bits}-bit LSQ weights"
        return f"<problem {self.name}: mlp {self.sizes} ({b}), {self.n_domains} source domains>"

    def scale_keys(self):
        """The quantizer step sizes' keys, one per layer."""
        return [k for k in self.param_shapes if k.endswith(".scale")]

    def _domain(self, rng, n, shift):
        """``n`` examples of a new domain: rotated class signal plus domain-specific spurious features."""
        K, d = self.n_out, self.n_in
        y = balanced_labels(rng, n, K)
        angle = 2 * np.pi * np.arange(K) / K
        mu = 2.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)                 # (K, 2)
        phi = shift * rng.standard_normal()
        R = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
        nu = self.spurious * rng.standard_normal((K, d - 2))                        # spurious class means
        signal = (mu[y] + self.noise * rng.standard_normal((n, 2))) @ R.T
        spur = nu[y] + rng.standard_normal((n, d - 2))
        return np.concatenate([signal, spur], axis=1), y

    def _init(self, rng):
        params = {}
        qp = quant_range(self.bits if self.bits is not None else 4)[1]
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            w = nn.he_normal(rng, (b, a)) if self.activation == "relu" else nn.glorot_normal(rng, (b, a))
            params[f"{i}.weight"], params[f"{i}.bias"] = w, np.zeros(b)
            params[f"{i}.scale"] = np.array([2.0 * np.abs(w).mean() / math.sqrt(qp)])   # LSQ's init
        return params

    def quantized_weights(self, params):
        """The weights the network computes with (``w_q`` per layer; ``w`` at full precision), as arrays."""
        out = {}
        for i in range(len(self.sizes) - 1):
            w, s = params[f"{i}.weight"], params[f"{i}.scale"]
            out[f"{i}.weight"] = w if self.bits is None else lsq_quantize(w, s, self.bits, self.grad_scale).value
        return out

    def apply(self, params, x):
        act = nn.ACTIVATIONS[self.activation]
        h = x
        last = len(self.sizes) - 2
        for i in range(last + 1):
            w = params[f"{i}.weight"]
            if self.bits is not None:
                w = lsq_quantize(w, params[f"{i}.scale"], self.bits, self.grad_scale)
            else:
                w = w + 0.0 * params[f"{i}.scale"]            # full precision: the scale is unused
            h = h @ ag.transpose(w) + params[f"{i}.bias"]
            if i < last:
                h = act(h)
        return h

    def _per_example_loss(self, params, batch):
        if batch is None:
            batch = self._batch_like(None, params)
        return nn.cross_entropy_losses(self.apply(params, batch["x"]), batch["y"])

    def evaluate(self, params):
        """Source-domain (training) and target-domain (``test_``) loss and accuracy."""
        return self._train_test_metrics(params, self.apply, nn.cross_entropy_losses)
