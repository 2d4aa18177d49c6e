"""OwLore: Outlier-weighed Layerwise Sampled Low-Rank Projection for Memory-Efficient LLM Fine-tuning.

Pengxiang Li, Lu Yin, Xiaowei Gao, Shiwei Liu. 2024. arXiv:2405.18380

Fine-tuning every layer with Adam keeps two moments per weight. LISA
(layerwise importance sampling) instead unfreezes only ``gamma`` randomly
chosen layers for ``K`` steps at a time, freezing the rest, so optimizer
state exists only for the sampled layers. OwLore changes two things:

1. **Outlier-weighed sampling.** A layer is sampled with probability
   proportional to its *outlier ratio* (OWL, Yin et al. 2023): with
   ``A_ij = |W_ij| ||X_j||_2`` (``X_j`` the ``j``-th input feature of the
   layer over the data), the outlier ratio ``D_l`` is the fraction of the
   layer's scores above ``M`` times their mean. Layers with more outliers are
   "better trained" (more heavy-tailed, in the paper's HT-SR reading) and are
   fine-tuned more often:

       p_l = D_l / sum_k D_k,    every K steps: sample gamma layers ~ p (without replacement)

2. **Low-rank projection inside the sampled layers** (GaLore): each sampled
   weight matrix is trained with Adam on its gradient projected to rank
   ``r`` (``_projection``; the basis is the top-``r`` singular vectors of the
   gradient, refreshed every ``update_proj_gap`` steps), so its state is
   ``r x n`` (or ``m x r``) instead of ``m x n``:

       R_t = P^T G_t;  M_t, V_t = Adam moments of R_t;  N_t = M_t / (sqrt(V_t) + eps)
       W_t = W_{t-1} - lr sqrt(1 - b2^s) / (1 - b1^s) * alpha P N_t     (GaLore's AdamW)

Optimizer memory is then that of ``gamma`` layers at rank ``r``, whatever the
depth. "Layers" here are the parameter groups sharing a key prefix before the
first dot (``"0.weight"`` and ``"0.bias"`` form layer ``"0"``, as in
``reference.nn.mlp``); vectors (biases) of a sampled layer get plain Adam.
``always_active`` names layers that are never frozen (LISA and OwLore keep the
embedding and the LM head trainable).

Hyperparameters and defaults (the official run script, pixeli99/OwLore
``owlore_scripts/run_owlore_low_rank.sh`` and its ``finetuner.py``):
``active_layers`` (gamma) = 5, ``sampling_period`` (K) = 50 steps,
``rank`` = 256 (hard-coded there; clipped to ``min(m, n)``),
``update_proj_gap`` = 100, ``galore_scale`` (alpha) = 1.0, ``lr`` = 3e-4,
Adam ``betas = (0.9, 0.999)``, ``eps = 1e-6`` (GaLore's AdamW default),
``outlier_threshold`` (M) = 13 (the cached metric of the official code is
named ``llama2_ratio_13``; OWL itself uses M = 5 to 10 on LLaMA).
``gamma`` is clipped to the number of layers that can be sampled.

Where the probabilities come from: ``layer_probabilities`` (a dict ``{layer:
p}``) if given; otherwise the outlier ratios of the *initial* params (the
pretrained model, as in the paper, which computes them once before
fine-tuning), with input-feature norms ``input_norms`` (a dict ``{weight key:
(n_in,) array}``, see :func:`mlp_input_norms`) or, if absent, ones (then the
score is ``|W_ij|`` alone). If no layer has an outlier the sampling is uniform
(LISA). ``sampling="uniform"`` forces LISA's uniform sampling.

Conventions:

* The layers are (re)sampled at ``t = 1, K + 1, 2K + 1, ...``
  (``numpy.random.default_rng([seed, (t - 1) // K]).choice(L, gamma,
  replace=False, p)``, numpy's successive sampling without replacement, as
  the official code's ``np.random.choice``).
* The optimizer state of a layer that is frozen is *dropped*, and at every
  sampling round the sampled layers start from zero moments with a fresh
  bias-correction count (also a layer that happens to be sampled twice in a
  row). (The official code builds one torch optimizer over all parameters,
  whose state of frozen layers stays in memory until they are sampled again;
  the memory the method is designed around, and the one measured here, is
  that of the sampled layers only.)
* GaLore's convention inside a layer: the projector is refreshed at the
  layer's first step and every ``update_proj_gap`` steps after; the moments
  are kept across refreshes; ``eps`` added to ``sqrt(V)`` and the bias
  corrections folded into the step size; decoupled weight decay applied after
  the step, ``W <- W - lr lambda W``.

State: ``{"step", "probabilities": {layer: p}, "active": {layer: steps since
sampled}, "m", "v", "basis": {key: array}}``.
"""
from __future__ import annotations

import math

import numpy as np

from .. import autograd as ag
from ..backend import fuse, to_numpy, xp_of
from .base import Optimizer, check_int, check_range, register
from ._projection import project, project_back, svd_basis

__all__ = ["OwLore", "layer_of", "layers_of", "outlier_ratio", "outlier_probabilities", "sample_layers",
           "mlp_input_norms"]


def layer_of(key):
    """The layer a parameter belongs to: its key up to the first dot."""
    return key.split(".", 1)[0]


def layers_of(params):
    """The layers of a params dict, in the order of their first key."""
    return list(dict.fromkeys(layer_of(k) for k in params))


def outlier_ratio(weight, input_norms=None, threshold=13.0):
    """OWL's outlier ratio of one ``out x in`` weight: the fraction of ``A_ij = |W_ij| ||X_j||``
    above ``threshold`` times the mean of ``A`` (``input_norms``: the ``in`` norms ``||X_j||``)."""
    a = np.abs(to_numpy(weight)).astype(np.float64)
    if input_norms is not None:
        a = a * np.asarray(to_numpy(input_norms), dtype=np.float64)[None, :]
    return float(np.mean(a > threshold * a.mean()))


def outlier_probabilities(params, input_norms=None, threshold=13.0, layers=None):
    """``{layer: D_l / sum D}`` over ``layers`` (default: all), ``D_l`` the mean outlier ratio of the
    layer's weight matrices; uniform if no layer has an outlier."""
    layers = layers_of(params) if layers is None else list(layers)
    ratios = {}
    for layer in layers:
        mats = [k for k in params if layer_of(k) == layer and params[k].ndim == 2]
        norms = input_norms or {}
        ratios[layer] = float(np.mean([outlier_ratio(params[k], norms.get(k), threshold) for k in mats])) \
            if mats else 0.0
    total = sum(ratios.values())
    if total == 0.0:
        return {layer: 1.0 / len(layers) for layer in layers}
    return {layer: r / total for layer, r in ratios.items()}


def sample_layers(probabilities, gamma, seed, index):
    """The ``gamma`` layers sampled at sampling round ``index`` (sorted in the given order)."""
    layers = list(probabilities)
    p = np.array([probabilities[layer] for layer in layers], dtype=np.float64)
    p = p / p.sum()
    gamma = min(int(gamma), int(np.count_nonzero(p)))
    pick = np.random.default_rng([int(seed), int(index)]).choice(len(layers), size=gamma, replace=False, p=p)
    return [layers[i] for i in sorted(int(i) for i in pick)]


def mlp_input_norms(problem, params, activation=None):
    """``{"i.weight": ||X_j||_2 over the training set}`` for the inputs of every linear layer of an MLP
    problem from ``reference.problems`` (keys ``"0.weight"``, ``"1.weight"``, ...)."""
    from .. import nn
    act = nn.ACTIVATIONS[activation or problem.activation]
    h = np.asarray(problem.data["x"], dtype=np.float64)
    norms, i = {}, 0
    while f"{i}.weight" in params:
        norms[f"{i}.weight"] = np.sqrt((h * h).sum(axis=0))                  # ||X_j||_2 over the data
        z = h @ np.asarray(to_numpy(params[f"{i}.weight"]), np.float64).T + to_numpy(params[f"{i}.bias"])
        out = act(z)                                                          # an autograd Tensor
        h = np.asarray(out.value if isinstance(out, ag.Tensor) else out)
        i += 1
    return norms


@fuse
def _ema_kernel(avg, x, beta):
    return beta * avg + (1.0 - beta) * x


@fuse
def _normalized_kernel(m, v, eps):
    return m / (v ** 0.5 + eps)


@register("owlore")
class OwLore(Optimizer):
    paper = dict(title="OwLore: Outlier-weighed Layerwise Sampled Low-Rank Projection for Memory-Efficient "
                       "LLM Fine-tuning",
                 authors="Li, Yin, Gao, Liu", year=2024, arxiv="2405.18380", family="memory-efficient")
    defaults = dict(lr=3e-4, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.0, active_layers=5,
                    sampling_period=50, rank=256, update_proj_gap=100, galore_scale=1.0, outlier_threshold=13.0,
                    sampling="outlier", layer_probabilities=None, input_norms=None, always_active=(), seed=0)
    # lr = 3e-4 (the paper's LLaMA fine-tuning rate) is too small to move Rosenbrock's (-1.2, 1)
    # 10% in 200 steps; the descent check uses Adam-like rates.
    descent_hparams = {"rosenbrock": dict(lr=1e-2), "quadratic": dict(lr=1e-2)}

    def check(self, hp):
        super().check(hp)
        check_range("beta1", hp["beta1"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("beta2", hp["beta2"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        check_range("galore_scale", hp["galore_scale"], 0.0, low_open=True, where=self.name)
        check_range("outlier_threshold", hp["outlier_threshold"], 0.0, where=self.name)
        for key, low in (("active_layers", 1), ("sampling_period", 1), ("rank", 1), ("update_proj_gap", 1),
                         ("seed", 0)):
            v = hp[key]
            check_int(key, v, low, where=self.name)
        if hp["sampling"] not in ("outlier", "uniform"):
            raise ValueError(f"{self.name}: sampling must be 'outlier' or 'uniform', got {hp['sampling']!r}")
        probs = hp["layer_probabilities"]
        if probs is not None:
            if not isinstance(probs, dict) or not probs:
                raise ValueError(f"{self.name}: layer_probabilities must be a dict {{layer: p}}, got {probs!r}")
            for layer, p in probs.items():
                check_range(f"layer_probabilities[{layer!r}]", p, 0.0, where=self.name)
            if sum(probs.values()) <= 0:
                raise ValueError(f"{self.name}: layer_probabilities must not all be zero")
        if not isinstance(hp["always_active"], (tuple, list)):
            raise ValueError(f"{self.name}: always_active must be a tuple of layer names, got "
                             f"{hp['always_active']!r}")

    # ---- which layers, with which probability ------------------------------------------
    def _probabilities(self, params):
        hp = self.hparams
        sampleable = [layer for layer in layers_of(params) if layer not in hp["always_active"]]
        if hp["layer_probabilities"] is not None:
            missing = sorted(set(sampleable) - set(hp["layer_probabilities"]))
            if missing:
                raise KeyError(f"{self.name}: layer_probabilities has no entry for layers {missing}")
            probs = {layer: float(hp["layer_probabilities"][layer]) for layer in sampleable}
        elif hp["sampling"] == "uniform":
            probs = {layer: 1.0 for layer in sampleable}
        else:
            probs = outlier_probabilities(params, hp["input_norms"], hp["outlier_threshold"], sampleable)
        total = sum(probs.values())
        return {layer: p / total for layer, p in probs.items()}

    def init_slots(self, params):
        # the layers are sampled (and their state created) at the first step
        return {"probabilities": self._probabilities(params), "active": {}, "m": {}, "v": {}, "basis": {}}

    # ---- one step ----------------------------------------------------------------------
    def update(self, params, grads, state, t, hp):
        b1, b2, eps, lr = hp["beta1"], hp["beta2"], hp["eps"], hp["lr"]
        period = int(hp["sampling_period"])
        if (t - 1) % period == 0:                      # resample; every sampled layer restarts its state
            chosen = sample_layers(state["probabilities"], hp["active_layers"], hp["seed"], (t - 1) // period) \
                if state["probabilities"] else []
            chosen += [layer for layer in layers_of(params) if layer in hp["always_active"]]
            active = {layer: 0 for layer in chosen}
        else:
            active = dict(state["active"])
        m, v, basis, new_w = {}, {}, {}, {}
        for k, w in params.items():
            layer = layer_of(k)
            if layer not in active:
                new_w[k] = w                                                   # frozen
                continue
            s = active[layer] + 1                                              # the layer's own step
            g = grads[k]
            fresh = s == 1
            if w.ndim == 2:                                                    # GaLore inside the layer
                if fresh or (s - 1) % int(hp["update_proj_gap"]) == 0:
                    basis[k] = svd_basis(g, hp["rank"])
                else:
                    basis[k] = state["basis"][k]
                g_in = project(g, basis[k])                                    # R_t = P^T G_t
            else:
                g_in = g
            m_prev = xp_of(g).zeros_like(g_in) if fresh else state["m"][k]
            v_prev = xp_of(g).zeros_like(g_in) if fresh else state["v"][k]
            m[k] = _ema_kernel(m_prev, g_in, b1)
            v[k] = _ema_kernel(v_prev, g_in * g_in, b2)
            n = _normalized_kernel(m[k], v[k], eps)                            # M_t / (sqrt(V_t) + eps)
            if w.ndim == 2:
                n = hp["galore_scale"] * project_back(n, basis[k], g.shape)
            step_size = lr * math.sqrt(1.0 - b2 ** s) / (1.0 - b1 ** s)
            w = w - step_size * n
            if hp["weight_decay"]:
                w = w - (lr * hp["weight_decay"]) * w
            new_w[k] = w
        active = {layer: s + 1 for layer, s in active.items()}
        return new_w, {"probabilities": state["probabilities"], "active": active, "m": m, "v": v, "basis": basis}
