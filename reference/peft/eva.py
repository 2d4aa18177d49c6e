"""One Initialization to Rule them All: Fine-tuning via Explained Variance Adaptation.

Paischer, Hauzenberger, Schmied, Alkin, Deisenroth, Hochreiter. 2024. arXiv:2410.07170
(later versions: "Parameter Efficient Fine-tuning via Explained Variance Adaptation")

LoRA starts from a random ``A`` and the same rank in every layer. EVA makes
both choices from the downstream data, before fine-tuning:

1. **Data-driven A.** For every adapted layer, collect its input activations
   ``X`` (rows: examples) on minibatches of the fine-tuning data and compute
   their SVD incrementally. The top right-singular vectors ``v_1, v_2, ...``
   (the directions of largest activation variance) become the rows of ``A``;
   ``B = 0`` as in LoRA, so the model starts exactly at the pretrained one:

       A_l = [v_1; ...; v_{r_l}]   (r_l x in),     B_l = 0,     W_l = W0_l + (alpha / r) B_l A_l

   The paper's argument: with ``B = 0`` the first gradient is ``dL/dB = G A^T``
   (``G`` the output gradient times ``X``), and the rows of ``A`` that capture
   the most variance of ``X`` give the largest expected gradient signal.
2. **Convergence check.** Minibatches are fed until, for every layer, the
   top components stop moving: the cosine similarity between each component
   before and after the latest minibatch is at least ``tau`` (0.99) for all
   the components the layer is going to use.
3. **Rank redistribution.** The budget ``sum_l r`` (``r`` per layer) is
   spread over the layers by explained variance: each layer offers up to
   ``rho * r`` components with their explained-variance ratios, and the
   ``sum_l r`` largest ratios over all layers win. A layer may end up with
   up to ``rho * r`` ranks, or none (``rho = 1`` keeps the uniform ranks).

Conventions (the authors' implementation is Hugging Face ``peft``'s EVA, read
in ``peft/tuners/lora/eva.py`` and ``peft/utils/incremental_pca.py``, version 0.15.2):

* **Incremental PCA, centred.** The "incremental SVD" is the incremental PCA
  of Ross et al. (2008) as in scikit-learn's ``IncrementalPCA``: the
  activations are centred by their running mean, and after each minibatch
  the SVD is taken of ``[diag(s) V_prev; X_batch - mean_batch; mean correction]``
  and truncated to ``rho * r`` components. Explained-variance ratio of a
  component: ``s_i^2 / (n * sum of the feature variances)``. Signs: each
  component's largest-magnitude entry is made positive (sklearn's
  ``svd_flip(u_based_decision=False)``), so successive estimates can be
  compared by cosine. ``peft`` uses a randomised low-rank SVD
  (``torch.svd_lowrank``, seed 42) in float32; here the SVD is exact, in
  float64 (the golden test patches the peer to the exact SVD).
* **Loop order** (peft's): before each minibatch, a layer whose top
  ``r_l`` components have converged stops being updated (and resumes if a
  later redistribution gives it more components than have converged); a
  minibatch with fewer rows than a layer's component count is skipped for
  that layer; the ranks are redistributed after every minibatch. The
  minibatches are cycled until every layer has converged, or ``max_steps``
  minibatches (then ``converged`` tells which layers had not).
* **Scaling**: ``alpha / r`` with the *nominal* ``r`` in every layer
  (peft's ``adjust_scaling_factors=True``); ``whiten=True`` divides each row
  of ``A`` by ``sqrt(s_i)`` (peft's option, off by default).
* A layer offers at most ``min(round(rho * r), in_features)`` components
  (peft raises instead when ``rho * r > in_features``).
"""
from __future__ import annotations

import itertools

import numpy as np

from .. import catalog
from ..backend import to_numpy
from ..optim.base import check_range
from .base import check_int, linear_layers, mlp_layer_inputs
from .lora import LoRA

__all__ = ["IncrementalPCA", "eva_components", "redistribute_ranks", "EVA"]

catalog.register(title="One Initialization to Rule them All: Fine-tuning via Explained Variance Adaptation",
                 name="eva_lora_init", family="memory-efficient", kind="implementation", module=__name__,
                 authors="Paischer, Hauzenberger, Schmied, Alkin, Deisenroth, Hochreiter", year=2024,
                 arxiv="2410.07170")


# ---- 1. the incremental SVD of the activations (incremental PCA) -------------------

class IncrementalPCA:
    """Top ``n_components`` principal directions of a stream of minibatches (Ross et al. 2008).

    After ``partial_fit`` on batches ``X_1, ..., X_t``: ``components`` (k x d,
    orthonormal rows), ``singular_values`` (k), ``explained_variance_ratio``
    (k), ``mean`` (d), ``var`` (d), ``n_seen``. With ``n_components`` at
    least the rank of the data, the result is the exact PCA of all rows seen.
    """

    def __init__(self, n_components):
        self.n_components = int(n_components)
        self.components = None
        self.n_seen = 0

    def partial_fit(self, x):
        x = np.asarray(to_numpy(x), dtype=np.float64)
        n = x.shape[0]
        total = self.n_seen + n
        # running mean and variance (Chan, Golub, LeVeque)
        batch_mean = x.mean(axis=0)
        batch_ssd = ((x - batch_mean) ** 2).sum(axis=0)
        if self.components is None:
            mean, ssd = batch_mean, batch_ssd
            stacked = x - batch_mean
        else:
            delta = batch_mean - self.mean
            mean = self.mean + delta * (n / total)
            ssd = self.var * self.n_seen + batch_ssd + delta ** 2 * (self.n_seen * n / total)
            # the old components, scaled by their singular values, stand in for the rows seen so far;
            # the last row corrects for the shift of the mean
            correction = np.sqrt(self.n_seen * n / total) * (self.mean - batch_mean)
            stacked = np.vstack([self.singular_values[:, None] * self.components, x - batch_mean, correction])
        _, s, vt = np.linalg.svd(stacked, full_matrices=False)
        vt = vt * np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(axis=1)])[:, None]   # svd_flip
        var = ssd / total
        k = self.n_components
        self.components, self.singular_values = vt[:k], s[:k]
        self.explained_variance_ratio = s[:k] ** 2 / np.sum(var * total)
        self.mean, self.var, self.n_seen = mean, var, total
        return self


# ---- 3. redistributing the rank budget by explained variance ------------------------

def redistribute_ranks(ratios, budget):
    """``{layer: rank}``: the ``budget`` largest explained-variance ratios over all layers, counted per layer.

    ``ratios``: ``{layer: the ratios of the components it offers}`` (descending
    within a layer, so a layer's winners are always its top components).
    """
    keys = [layer for layer, r in ratios.items() for _ in r]
    values = np.concatenate([np.asarray(r, dtype=np.float64) for r in ratios.values()])
    winners = np.argsort(-values, kind="stable")[:budget]
    counts = {layer: 0 for layer in ratios}
    for i in winners:
        counts[keys[i]] += 1
    return counts


# ---- 1-3 together --------------------------------------------------------------------

def eva_components(batches, ranks, rho=2.0, tau=0.99, max_steps=1000):
    """EVA's initialisation from a stream of layer inputs.

    ``batches``: a list of dicts ``{layer: (N, in_l) activations}`` (one per
    minibatch, cycled); ``ranks``: the nominal rank per layer. Returns a dict
    with ``"ranks"`` (after redistribution), ``"components"`` (the rows of
    ``A``, ``ranks[l] x in_l``), ``"singular_values"``,
    ``"explained_variance_ratio"``, ``"steps"`` (minibatches used) and
    ``"converged"`` (per layer).
    """
    if not batches:
        raise ValueError("eva: batches is empty")
    layers = list(ranks)
    dims = {layer: batches[0][layer].shape[1] for layer in layers}
    offer = {layer: min(int(round(ranks[layer] * rho)), dims[layer]) for layer in layers}
    budget = int(sum(ranks.values()))
    pca = {layer: IncrementalPCA(offer[layer]) for layer in layers}
    similar = {layer: np.zeros(offer[layer], dtype=bool) for layer in layers}   # component converged?
    frozen = {layer: False for layer in layers}
    rank_dist = dict(offer)
    steps = 0
    for batch in itertools.cycle(batches):
        # 2. a layer whose components in use have converged stops; it resumes if it needs more
        for layer in layers:
            done = bool(np.all(similar[layer][:rank_dist[layer]]))
            if done and not frozen[layer]:
                frozen[layer] = True
            elif frozen[layer] and not done:
                frozen[layer] = False
        if all(frozen.values()) or steps >= max_steps:
            break
        steps += 1
        for layer in layers:
            x = batch[layer]
            if frozen[layer] or x.shape[0] < offer[layer]:
                continue
            previous = pca[layer].components
            pca[layer].partial_fit(x)
            if previous is not None:   # cosine similarity of each component before and after
                current = pca[layer].components
                cos = np.sum(current * previous, axis=1) / np.maximum(
                    np.linalg.norm(current, axis=1) * np.linalg.norm(previous, axis=1), 1e-8)
                similar[layer] = cos >= tau
        if all(p.components is not None for p in pca.values()):
            rank_dist = redistribute_ranks({layer: pca[layer].explained_variance_ratio for layer in layers}, budget)
    if any(p.components is None for p in pca.values()):
        raise ValueError("eva: some layer never saw a minibatch with at least as many rows as components")
    return {"ranks": rank_dist,
            "components": {layer: pca[layer].components[:rank_dist[layer]] for layer in layers},
            "singular_values": {layer: pca[layer].singular_values[:rank_dist[layer]] for layer in layers},
            "explained_variance_ratio": {layer: pca[layer].explained_variance_ratio for layer in layers},
            "steps": steps,
            "converged": {layer: bool(np.all(similar[layer][:rank_dist[layer]])) for layer in layers}}


class EVA(LoRA):
    """LoRA whose ``A`` rows and per-layer ranks come from the downstream data (see the module docstring).

    ``batches``: input minibatches ``x`` of the fine-tuning task (arrays
    ``(N, n_in)``), run through the frozen MLP (``activation``: its activation
    name) to get every layer's inputs. ``rank`` is the nominal rank ``r``.
    """

    name = "eva"

    def __init__(self, base, batches, activation="tanh", rank=4, rho=2.0, tau=0.99, alpha=None, layers=None,
                 whiten=False, max_steps=1000):
        check_int(self.name, "rank", rank, 1)
        check_range("rho", rho, 1.0, where=self.name)
        check_range("tau", tau, 0.0, 1.0, where=self.name)
        check_int(self.name, "max_steps", max_steps, 1)
        layers = linear_layers(base) if layers is None else tuple(layers)
        inputs = [mlp_layer_inputs(base, np.asarray(to_numpy(x), dtype=np.float64), activation) for x in batches]
        nominal = {layer: min(rank, min(base[f"{layer}.weight"].shape)) for layer in layers}
        self.eva = eva_components([{layer: b[layer] for layer in layers} for b in inputs], nominal, rho, tau,
                                  max_steps)
        self.rho, self.tau, self.whiten = float(rho), float(tau), bool(whiten)
        super().__init__(base, rank=self.eva["ranks"], alpha=rank if alpha is None else alpha, layers=layers)
        self.rank = int(rank)                       # the scaling keeps the nominal rank (see Conventions)
        self.scaling = self.alpha / self.rank

    def init_A(self, layer, weight, r, rng):
        a = self.eva["components"][layer][:r]
        if self.whiten:
            a = a / np.sqrt(self.eva["singular_values"][layer][:r])[:, None]
        return a.astype(weight.dtype)
