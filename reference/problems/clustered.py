"""Clusters of a problem's training set, and oracles that know the cluster of their batch.

Cluster-based variance reduction (COVER, Yuan, Ying and Sayed 2019; Discover,
Tondji, Kashubin and Cisse 2021, ``reference/optim/discover.py``) keeps one
gradient memory per *cluster* of the data, so the optimizer must be told
which cluster(s) the examples of a batch belong to. This module supplies the
clusters as data and the oracles that carry them; it registers no problem.

* :func:`class_clusters` — the classes of a classification problem as
  clusters (``blobs``: one Gaussian blob per class, the paper's "clusters =
  classes" choice for CIFAR/ImageNet);
* :func:`kmeans_clusters` — k-means (Lloyd's iterations from a k-means++
  start, seeded) on the training inputs, for unlabelled structure;
* :class:`ClusterSampler` — draws batches and returns a :class:`ClusterOracle`:
  ``cluster_batch`` draws a cluster ``k`` with probability ``pi_k`` (its share
  of the training set) and then a batch *inside* that cluster, the online
  setting of COVER (every sample arrives from one cluster; also the setting of
  one worker per cluster); ``mixed_batch`` draws an ordinary uniform batch and
  labels each example with its cluster.

A :class:`ClusterOracle` is the problem's rich oracle
(:class:`reference.problems.Oracle`) plus ``cluster`` (an ``int``, when the
whole batch comes from one cluster) or ``cluster_labels`` (an int array, one
per example of a mixed batch). Decision: the cluster information travels with
the oracle, not in the optimizer's hyperparameters, because it changes with
every batch; an optimizer that needs it reads these two attributes.
"""
from __future__ import annotations

import numpy as np

from .base import Oracle

__all__ = ["ClusterOracle", "ClusterSampler", "class_clusters", "kmeans_clusters", "cluster_weights"]


class ClusterOracle(Oracle):
    """The problem's oracle on ``batch``, plus the cluster(s) its examples come from.

    Exactly one of ``cluster`` (the batch lies in one cluster) and
    ``cluster_labels`` (one label per example) is given.
    """

    def __init__(self, problem, batch, cluster=None, cluster_labels=None):
        if (cluster is None) == (cluster_labels is None):
            raise ValueError("ClusterOracle: give exactly one of cluster (an int) and cluster_labels (one per example)")
        problem.check_batch(batch)
        super().__init__(problem, batch)
        if cluster is not None:
            if isinstance(cluster, bool) or not isinstance(cluster, (int, np.integer)) or cluster < 0:
                raise ValueError(f"ClusterOracle: cluster must be an int >= 0, got {cluster!r}")
            cluster = int(cluster)
        else:
            cluster_labels = np.asarray(cluster_labels)
            n = problem.n_train if batch is None else len(next(iter(batch.values())))
            if cluster_labels.dtype.kind not in "iu" or cluster_labels.shape != (n,) or (cluster_labels < 0).any():
                raise ValueError(f"ClusterOracle: cluster_labels must be {n} ints >= 0 (one per example), "
                                 f"got shape {cluster_labels.shape} and dtype {cluster_labels.dtype}")
        self.cluster = cluster
        self.cluster_labels = cluster_labels


def cluster_weights(labels, n_clusters=None):
    """``pi_k = n_k / n``, each cluster's share of the examples, as a tuple of Python floats."""
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if n_clusters is None else int(n_clusters)
    counts = np.bincount(labels, minlength=k)
    return tuple(float(c) / float(labels.size) for c in counts)


def class_clusters(problem):
    """The class of every training example as its cluster (int64 array of length ``n_train``)."""
    y = None if problem.data is None else problem.data.get("y")
    if y is None or np.asarray(y).dtype.kind not in "iu":
        raise TypeError(f"class_clusters: problem {problem.name!r} has no integer class labels data['y']")
    return np.asarray(y, dtype=np.int64)


def kmeans_clusters(problem, k, seed=0, iterations=50, key="x"):
    """k-means clusters of the training inputs ``data[key]`` (float64, flattened per example).

    A k-means++ start drawn with ``numpy.random.default_rng(seed)``, then
    Lloyd's iterations until the assignment stops changing (at most
    ``iterations``). An emptied cluster keeps its old centre. Returns the
    int64 label of every training example.
    """
    if problem.data is None or key not in problem.data:
        raise TypeError(f"kmeans_clusters: problem {problem.name!r} has no training inputs data[{key!r}]")
    x = np.asarray(problem.data[key], dtype=np.float64).reshape(problem.n_train, -1)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(x):
        raise ValueError(f"kmeans_clusters: k must be an int in [1, {len(x)}], got {k!r}")
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):                       # k-means++: the next centre with probability ~ distance^2
        d2 = np.min(((x[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(x[rng.choice(len(x), p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(len(x))])
    centres = np.asarray(centres)
    labels = None
    for _ in range(iterations):
        new = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            if np.any(labels == j):
                centres[j] = x[labels == j].mean(axis=0)
    return labels.astype(np.int64)


class ClusterSampler:
    """Batches of ``problem`` together with their clusters.

    ``labels``: the cluster of every training example (see
    :func:`class_clusters`, :func:`kmeans_clusters`); ``weights``: ``pi_k``,
    the clusters' shares of the training set (pass them to the optimizer).
    """

    def __init__(self, problem, labels):
        labels = np.asarray(labels)
        if problem.data is None or labels.shape != (problem.n_train,) or labels.dtype.kind not in "iu":
            raise ValueError(f"ClusterSampler: labels must be {problem.n_train} ints, one per training example")
        self.problem = problem
        self.labels = labels.astype(np.int64)
        self.n_clusters = int(self.labels.max()) + 1
        self.members = [np.flatnonzero(self.labels == k) for k in range(self.n_clusters)]
        if any(len(m) == 0 for m in self.members):
            raise ValueError("ClusterSampler: clusters must be numbered 0..K-1 without an empty one")
        self.weights = cluster_weights(self.labels, self.n_clusters)

    def _take(self, idx):
        return {k: v[idx] for k, v in self.problem.data.items()}

    def cluster_batch(self, rng, size):
        """Draw ``k ~ pi``, then ``size`` distinct examples of cluster ``k``: a ``ClusterOracle`` with ``cluster = k``."""
        k = int(rng.choice(self.n_clusters, p=np.asarray(self.weights)))
        members = self.members[k]
        idx = members[rng.choice(len(members), size=min(int(size), len(members)), replace=False)]
        return ClusterOracle(self.problem, self._take(idx), cluster=k)

    def mixed_batch(self, rng, size):
        """``size`` distinct examples drawn uniformly: a ``ClusterOracle`` with ``cluster_labels``."""
        idx = rng.choice(self.problem.n_train, size=int(size), replace=False)
        return ClusterOracle(self.problem, self._take(idx), cluster_labels=self.labels[idx])
