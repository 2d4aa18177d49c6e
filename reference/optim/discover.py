"""Variance Reduction in Deep Learning: More Momentum is All You Need.

Tondji, Kashubin, Cisse. 2021. arXiv:2111.11828
(the same arXiv id is also listed as "Discover: Deep Scalable Variance Reduction", Tondji and Cisse)

Rich datasets are clustered (classes, or k-means clusters of the inputs), and
much of the noise of a stochastic gradient is *between* clusters: which
cluster the examples came from. Discover removes that part with one memory
per cluster, the "multi-momentum" of COVER (Yuan, Ying and Sayed, "COVER: a
cluster-based variance reduced method for online learning", ICASSP 2019), a
SAGA over clusters instead of over examples, and hands the corrected
gradient to an ordinary deep-learning optimizer (SGD + momentum, QHM or IGT).

With ``K`` clusters of weights ``pi_k`` (their shares of the data,
``sum_k pi_k = 1``), cluster memories ``m_k`` (zero at the start) and a batch
from cluster ``z_t``:

    g_t     = grad f(theta~_t; batch_t)            gradient at the base's point theta~_t
    d_t     = g_t - m_{z_t} + sum_k pi_k m_k        the variance-reduced gradient
    m_{z_t} <- beta_c m_{z_t} + (1 - beta_c) g_t    the cluster's momentum (others unchanged)
    theta_{t+1} = base optimizer step with d_t in place of the stochastic gradient

If ``z_t ~ pi`` then ``E[d_t] = grad f`` for any memories (the correction has
mean zero), and once ``m_k`` tracks ``grad f_k`` the between-cluster part of
the noise cancels: what is left is the noise *inside* a cluster. With one
cluster (``K = 1``) the correction is ``m_0 - m_0 = 0`` and Discover is the
base optimizer, bit for bit.

Base optimizers (``base=``), fed ``d_t``:

* ``"sgdm"`` (default) — heavy ball in torch's convention (as ``sgd.py``):
  ``b_1 = d_1``, ``b_t = mu b_{t-1} + d_t``, ``theta <- theta - lr b_t``;
* ``"qhm"`` — quasi-hyperbolic momentum (Ma and Yarats, ICLR 2019):
  ``b_t = beta b_{t-1} + (1 - beta) d_t`` (``b_0 = 0``),
  ``theta <- theta - lr ((1 - nu) d_t + nu b_t)``;
* ``"igt"`` — implicit gradient transport (Arnold, Manzagol, Babanezhad,
  Mitliagkas and Le Roux, NeurIPS 2019): the gradient is taken at the
  transported point ``theta~_t = theta_t + gamma_t / (1 - gamma_t) (theta_t -
  theta_{t-1})``, ``v_t = gamma_t v_{t-1} + (1 - gamma_t) d_t``,
  ``theta <- theta - lr v_t``, with the anytime average ``gamma_t = (t - 1) / t``
  (1-based ``t``, so ``v_1 = d_1``) capped at ``momentum``.

WHAT IS FROM THE PAPER AND WHAT IS RECONSTRUCTED. The paper's full text (its
algorithm box) could not be read from here: only its abstract (and that of
the earlier version) was available. From the paper: the idea (exploit the
clustering of the data; one momentum per cluster, COVER's multi-momentum;
combine it with SGD + momentum, QHM and IGT), clusters given by prior
knowledge such as classes, and the claims (faster convergence than the base
optimizer, robustness to label noise). COVER's own paper could not be read
either; its update is known here only through the corpus note and a
third-party code (control variate ``g - m_z + sum_k pi_k m_k`` with an EMA
memory per cluster). Reconstructed from those: the exact estimator ``d_t``
(the SAGA form, unbiased, rather than the biased SAG form ``sum_k pi_k m_k``),
the memory update as an EMA with its own coefficient ``cluster_momentum``
(``beta_c = 0`` keeps the latest cluster gradient, a plain SAGA memory; the
third-party COVER code scales the EMA rate by ``1 / pi_k``, not reproduced),
zero-initialised memories, feeding ``d_t`` to the base optimizer unchanged,
the mixed-batch rule below, the IGT schedule, and every default value. Treat
the defaults as this library's choices, not the paper's.

How the optimizer learns the cluster (a decision of this library): the
oracle says so. A :class:`reference.problems.clustered.ClusterOracle` carries

* ``oracle.cluster`` — an ``int``: the whole batch comes from one cluster (the
  online setting of COVER; ``ClusterSampler.cluster_batch`` draws ``k ~ pi``
  and then a batch inside cluster ``k``); or
* ``oracle.cluster_labels`` — one int per example of an ordinary mixed batch;
  then ``n_k`` examples of cluster ``k`` have batch-mean gradient ``g_{t,k}``
  (from ``oracle.per_sample_grads``, which must exist) and

      d_t = g_t - sum_k (n_k / B) m_k + sum_k pi_k m_k,
      m_k <- beta_c m_k + (1 - beta_c) g_{t,k}   for every k in the batch,

  unbiased for uniform batches (``E[n_k / B] = pi_k`` when ``pi`` are the data
  shares). A batch whose composition is exactly ``pi`` gets no correction at
  all (stratified sampling already removed the between-cluster noise).

A plain oracle (neither attribute) is one cluster: allowed only with
``n_clusters = 1``, where Discover is its base optimizer; with more clusters it
raises ``TypeError`` naming ``oracle.cluster``.

Conventions:

* ``cluster_weights`` default to uniform ``1 / K``; any positive weights are
  normalised to sum to 1 (so data counts ``n_k`` may be passed).
  ``ClusterSampler.weights`` gives the data shares.
* Weight decay is L2, added to ``d_t`` (``d_t + lambda theta~_t``), not stored
  in the memories: it is deterministic, so a lagged copy of it would only
  add bias.
* The memories are kept as one stacked array per parameter, shape
  ``(K,) + shape``: ``K`` times the model's memory, the method's price.

Defaults (this library's, see above): lr = 0.1, momentum = 0.9 (the usual
CIFAR/ImageNet SGD + momentum settings), cluster_momentum = 0.9, nu = 0.7
(QHM's recommended value), n_clusters = 1, cluster_weights = None (uniform),
base = "sgdm", weight_decay = 0.
"""
from __future__ import annotations

import math

import numpy as np

from .. import tree
from ..backend import fuse, xp_of
from .base import Optimizer, check_grads, check_range, register
from .common import l2_gradient

__all__ = ["Discover", "BASES", "variance_reduced_gradient"]

BASES = ("sgdm", "qhm", "igt")


# ---- the cluster estimator (COVER's multi-momentum) -----------------------------------

def variance_reduced_gradient(g, memory, weights, shares):
    """``d = g + sum_k pi_k m_k - sum_k s_k m_k`` for one parameter.

    ``memory``: the stacked cluster memories ``(K,) + g.shape``; ``weights``:
    ``pi_k`` (Python floats); ``shares``: ``{k: s_k}``, the batch's share of
    each cluster present (``{z: 1.0}`` for a single-cluster batch). Written as
    ``g + correction`` so that a zero correction (``K = 1``) returns ``g``
    unchanged, bit for bit.
    """
    xp = xp_of(g, memory)
    pi = xp.asarray(weights, dtype=memory.dtype)
    correction = xp.tensordot(pi, memory, axes=1)             # sum_k pi_k m_k
    for k, s in shares.items():
        correction = correction - s * memory[k]               # - sum_k s_k m_k
    return g + correction


@fuse
def _ema(m, g, beta):
    return beta * m + (1.0 - beta) * g


@fuse
def _heavy_ball(b, d, mu):
    return mu * b + d


@fuse
def _qhm_step(w, b, d, lr, beta, nu):
    b = beta * b + (1.0 - beta) * d
    w = w - lr * ((1.0 - nu) * d + nu * b)
    return w, b


@register("discover")
class Discover(Optimizer):
    paper = dict(title="Variance Reduction in Deep Learning: More Momentum is All You Need",
                 authors="Tondji, Kashubin, Cisse", year=2021, arxiv="2111.11828",
                 family="variance-reduction")
    defaults = dict(lr=0.1, momentum=0.9, cluster_momentum=0.9, nu=0.7, n_clusters=1,
                    cluster_weights=None, base="sgdm", weight_decay=0.0)
    # lr = 0.1 with momentum 0.9 (the deep-learning default) diverges on Rosenbrock from (-1.2, 1),
    # where the curvature is ~1000 (heavy ball needs lr * L < 2 (1 + mu)); SGD's own test setting is used.
    descent_hparams = {"rosenbrock": dict(lr=1e-3)}

    # ---- hyperparameters ------------------------------------------------------------
    def check(self, hp):
        super().check(hp)
        check_range("momentum", hp["momentum"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("cluster_momentum", hp["cluster_momentum"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("nu", hp["nu"], 0.0, 1.0, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        k = hp["n_clusters"]
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{self.name}: n_clusters must be an int >= 1, got {k!r}")
        hp["n_clusters"] = int(k)
        if hp["base"] not in BASES:
            raise ValueError(f"{self.name}: base must be one of {BASES}, got {hp['base']!r}")
        w = hp["cluster_weights"]
        if w is not None:
            try:
                w = tuple(float(x) for x in w)
            except (TypeError, ValueError):
                raise ValueError(f"{self.name}: cluster_weights must be None or {k} positive numbers, "
                                 f"got {hp['cluster_weights']!r}") from None
            if len(w) != k or not all(math.isfinite(x) and x > 0 for x in w):
                raise ValueError(f"{self.name}: cluster_weights must be None or {k} positive numbers "
                                 f"(one per cluster), got {hp['cluster_weights']!r}")
            total = math.fsum(w)
            hp["cluster_weights"] = tuple(x / total for x in w)

    @property
    def weights(self):
        """``pi_k``: the cluster weights as Python floats summing to 1."""
        k = self.hparams["n_clusters"]
        w = self.hparams["cluster_weights"]
        return tuple([1.0 / k] * k) if w is None else w

    # ---- state --------------------------------------------------------------------
    def init_slots(self, params):
        K = self.hparams["n_clusters"]
        memory = {k: xp_of(v).zeros((K,) + tuple(v.shape), dtype=v.dtype) for k, v in params.items()}
        slots = {"cluster_memory": memory, "momentum_buffer": tree.zeros_like(params)}
        if self.hparams["base"] == "igt":
            slots["previous_params"] = tree.copy(params)
        return slots

    # ---- which cluster(s) the batch comes from ------------------------------------------
    def _cluster_gradients(self, oracle, point, g, K):
        """``{k: (s_k, g_{t,k})}``: each cluster's share of the batch and its batch-mean gradient."""
        cluster = getattr(oracle, "cluster", None)
        labels = getattr(oracle, "cluster_labels", None)
        if cluster is not None:
            if isinstance(cluster, bool) or not isinstance(cluster, (int, np.integer)) or not 0 <= cluster < K:
                raise ValueError(f"{self.name}: oracle.cluster must be an int in [0, {K}), got {cluster!r}")
            return {int(cluster): (1.0, g)}
        if labels is not None:
            psg = getattr(oracle, "per_sample_grads", None)
            if psg is None:
                raise TypeError(f"{self.name}: oracle.cluster_labels needs oracle.per_sample_grads "
                                "(a rich oracle) to split the batch gradient by cluster")
            labels = np.asarray(labels)
            if labels.ndim != 1 or labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= K:
                raise ValueError(f"{self.name}: oracle.cluster_labels must be ints in [0, {K}), one per example")
            per_sample = psg(point)                                           # leading batch axis
            xp = xp_of(*per_sample.values())
            out = {}
            for k in np.unique(labels):
                rows = np.flatnonzero(labels == k)
                idx = xp.asarray(rows)
                out[int(k)] = (len(rows) / labels.size,                      # s_k = n_k / B, g_{t,k}
                               {p: per_sample[p][idx].mean(axis=0) for p in per_sample})
            return out
        if K == 1:
            return {0: (1.0, g)}
        raise TypeError(f"{self.name}: n_clusters={K} needs an oracle that names the cluster of its batch: "
                        "oracle.cluster (an int) or oracle.cluster_labels (one per example), "
                        "e.g. from reference.problems.clustered.ClusterSampler")

    # ---- one step -----------------------------------------------------------------
    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        base, K, lr, mu = hp["base"], hp["n_clusters"], hp["lr"], hp["momentum"]

        # where the base optimizer evaluates the gradient
        if base == "igt":
            gamma = min((t - 1) / t, mu)                                      # anytime average, capped
            shift = gamma / (1.0 - gamma)
            point = tree.zip_map(lambda w, w_prev: w + shift * (w - w_prev), params, state["previous_params"])
        else:
            point = params
        _, g = oracle(point)                                                  # g_t
        check_grads(self.name, params, g, t)
        clusters = self._cluster_gradients(oracle, point, g, K)

        # the variance-reduced gradient d_t, then the memories of the clusters in the batch
        M = state["cluster_memory"]
        shares = {k: s for k, (s, _) in clusters.items()}
        d = {p: variance_reduced_gradient(g[p], M[p], self.weights, shares) for p in params}
        new_M = {}
        for p, m in M.items():
            m = m.copy()
            for k, (_, gk) in clusters.items():
                m[k] = _ema(M[p][k], gk[p], hp["cluster_momentum"])          # m_k <- beta_c m_k + (1 - beta_c) g_k
            new_M[p] = m
        d = l2_gradient(d, point, hp["weight_decay"])

        # the base optimizer, fed d_t
        buf = state["momentum_buffer"]
        slots = {}
        if base == "sgdm":
            new_buf = d if t == 1 else tree.zip_map(lambda b, di: _heavy_ball(b, di, mu), buf, d)
            new_params = tree.axpy(-lr, new_buf, params)
        elif base == "qhm":
            new_params, new_buf = {}, {}
            for p in params:
                new_params[p], new_buf[p] = _qhm_step(params[p], buf[p], d[p], lr, mu, hp["nu"])
        else:  # igt
            new_buf = tree.zip_map(lambda v, di: _ema(v, di, gamma), buf, d)  # v_t = gamma v + (1 - gamma) d
            new_params = tree.axpy(-lr, new_buf, params)
            slots["previous_params"] = dict(params)
        return new_params, {"step": t, "cluster_memory": new_M, "momentum_buffer": new_buf, **slots}
