"""PA&DA: Jointly Sampling PAth and DAta for Consistent NAS.

Shun Lu, Yu Hu, Longxing Yang, Zihao Sun, Jilin Mei, Jianchao Tan, Chengru Song.
CVPR 2023. arXiv:2302.14772

One-shot NAS trains a weight-sharing supernet by sampling a path (one
candidate operation per edge) and a minibatch at every step; the paper traces
poor ranking consistency to the *variance* of that stochastic gradient and
reduces it by sampling both paths and data by importance. Its transferable
core -- implemented here -- is data importance sampling for any finite sum
``f = 1/N sum_i f_i``: draw example ``i`` with probability ``p_i`` and use

    g~ = 1/B sum_{j=1..B} grad f_{i_j}(w) / (N p_{i_j}),      i_j ~ p i.i.d.,

which is unbiased (``E g~ = grad f``) for any ``p`` with ``p_i > 0``; the
trace of its covariance is

    Var(p) = 1/B [ 1/N^2 sum_i ||grad f_i||^2 / p_i  -  ||grad f||^2 ],

minimised (Cauchy-Schwarz) by ``p_i`` proportional to the per-sample
gradient norm ``||grad f_i||`` -- the paper's "normalised gradient norm".
Uniform sampling (``p_i = 1/N``) gives ``1/B [mean ||grad f_i||^2 -
||grad f||^2]``, the optimum ``1/B [(mean ||grad f_i||)^2 - ||grad f||^2]``:
the gain is the spread of the norms.

The practical scheme (paper and official code ``ShunLu91/PA-DA``):

* the score of example ``i`` is its gradient norm *seen during the last
  epoch* (the norm costs nothing extra where the gradient is computed anyway;
  an example seen again averages the new norm with the stored one,
  ``s_i <- (s_i + ||g_i||) / 2``; examples never seen keep their old score);
* the probabilities are refreshed once per epoch and mixed with the uniform
  distribution, ``p = tau s / sum(s) + (1 - tau) / N``, with ``tau`` annealed
  linearly from 0 to 1 over training (``tau = epoch / epochs``), which keeps
  every ``p_i > 0`` (except in the last instant) and the weights bounded.

Conventions and choices:

* **Score.** The official code scores an example by the norm of the
  cross-entropy gradient with respect to the *logits*, ``||softmax(z) -
  onehot(y)||`` (:func:`logit_gradient_norms`, a cheap proxy). By default
  :func:`train` uses the exact per-sample gradient norm from the rich oracle's
  ``per_sample_grads`` (a ``TypeError`` names that capability when missing),
  which it needs anyway to form ``g~``; ``score="logits"`` with a problem's
  ``logits(params, batch)`` is not offered, as the library's problems do not
  share a logits interface.
* **Reweighting.** The paper's estimator divides by ``N p_i``; the official
  code resamples the epoch's indices with ``p`` and then takes the *plain*
  batch mean (biased towards high-norm examples). ``reweight=True`` (default)
  is the paper's unbiased form, ``reweight=False`` the official code's.
* **Batches** are drawn i.i.d. with replacement from the epoch's ``p`` (the
  official code draws the whole epoch's index list that way, then batches it).
* **Left out: path sampling.** PA&DA samples each edge's operation with
  probability mixed the same way from the average gradient norm of that
  operation's weights, and evaluates by the Kendall tau between supernet and
  stand-alone accuracies of all paths. That needs a supernet with
  per-operation weights and the stand-alone training of every path; on a toy
  supernet the ranking statistic over a handful of paths is too noisy to test
  in seconds, so it is not implemented. :func:`mixed_probabilities` is the
  rule the paper uses for paths as well as data.

This is not a ``reference.optim`` optimizer: it decides *which examples* an
optimizer sees and how they are weighted. :func:`train` runs any optimizer
with it (the weighted gradient is what the optimizer's oracle returns).
"""
from __future__ import annotations

import math

import numpy as np

from .. import catalog
from ..backend import to_numpy, xp_of
from .base import check_range

__all__ = ["mixed_probabilities", "logit_gradient_norms", "per_sample_gradient_norms", "importance_weights",
           "estimator_variance", "DataImportanceSampler", "train"]

catalog.register(title="PA&DA: Jointly Sampling PAth and DAta for Consistent NAS",
                 name="pa_da_importance_sampling", family="variance-reduction", kind="implementation",
                 module=__name__, authors="Lu, Hu, Yang, Sun, Mei, Tan, Song", year=2023, arxiv="2302.14772")


def mixed_probabilities(scores, tau):
    """``tau s / sum(s) + (1 - tau) / N``: importance scores mixed with the uniform distribution.

    ``scores`` are non-negative (float64 NumPy); all zero gives the uniform
    distribution. ``tau`` in ``[0, 1]`` (0: uniform, 1: proportional to the scores).
    """
    s = np.asarray(scores, dtype=np.float64)
    tau = check_range("tau", tau, 0.0, 1.0, where="mixed_probabilities")
    if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("mixed_probabilities: scores must be a non-empty 1-D array of finite numbers >= 0")
    n = s.size
    total = s.sum()
    normalised = s / total if total > 0 else np.full(n, 1.0 / n)
    return tau * normalised + (1.0 - tau) / n


def logit_gradient_norms(logits, labels):
    """``||softmax(z_i) - onehot(y_i)||``: the norm of the cross-entropy gradient w.r.t. the logits.

    The official code's per-example score (a cheap proxy for the full gradient norm).
    """
    xp = xp_of(logits)
    z = logits - logits.max(axis=1, keepdims=True)
    p = xp.exp(z)
    p = p / p.sum(axis=1, keepdims=True)
    p[xp.arange(p.shape[0]), labels] -= 1.0
    return xp.sqrt((p * p).sum(axis=1))


def per_sample_gradient_norms(oracle, params):
    """``||grad f_i(w)||`` for every example of the oracle's batch (all parameters as one vector)."""
    psg = getattr(oracle, "per_sample_grads", None)
    if psg is None:
        raise TypeError("pa_da_importance_sampling needs oracle.per_sample_grads (a rich oracle from "
                        "reference.problems) for per-sample gradient norms")
    grads = psg(params)
    return _norms(grads)


def _norms(per_sample):
    sq = None
    for g in per_sample.values():
        term = (g.reshape(g.shape[0], -1) ** 2).sum(axis=1)
        sq = term if sq is None else sq + term
    return xp_of(sq).sqrt(sq)


def importance_weights(probabilities, indices):
    """``1 / (N p_i)`` for the drawn ``indices``: the factors that make the estimate unbiased."""
    p = np.asarray(probabilities, dtype=np.float64)
    return 1.0 / (p.size * p[np.asarray(indices)])


def estimator_variance(per_sample_grads, probabilities, batch_size=1):
    """Trace of the covariance of ``g~`` (``batch_size`` i.i.d. draws from ``probabilities``).

    ``per_sample_grads``: an ``(N, D)`` array (or a dict of arrays with the
    examples on axis 0) of *all* examples' gradients. Returns a float:
    ``1/B [ 1/N^2 sum_i ||g_i||^2 / p_i - ||mean_i g_i||^2 ]``.
    """
    if isinstance(per_sample_grads, dict):
        G = np.concatenate([to_numpy(g).reshape(g.shape[0], -1) for g in per_sample_grads.values()], axis=1)
    else:
        G = np.asarray(to_numpy(per_sample_grads), dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    n = G.shape[0]
    if p.shape != (n,) or np.any(p <= 0) or not math.isclose(p.sum(), 1.0, rel_tol=1e-9):
        raise ValueError(f"estimator_variance: probabilities must be a distribution over the {n} examples "
                         "with every p_i > 0")
    sq = (G * G).sum(axis=1)
    mean = G.mean(axis=0)
    return float((np.sum(sq / p) / n ** 2 - mean @ mean) / batch_size)


class DataImportanceSampler:
    """Per-example scores, refreshed probabilities and weighted minibatches (see the module docstring).

    ``sample(rng, batch_size)`` -> ``(indices, weights)`` with ``weights = 1/(N p_i)``;
    ``record(indices, norms)`` stores the norms seen; ``refresh(tau)`` recomputes
    ``p`` from the scores (call once per epoch). Everything is float64 NumPy.
    """

    def __init__(self, n):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"DataImportanceSampler: n must be an int >= 1, got {n!r}")
        self.n = int(n)
        self.scores = np.zeros(self.n)
        self.probabilities = np.full(self.n, 1.0 / self.n)

    def refresh(self, tau):
        self.probabilities = mixed_probabilities(self.scores, tau)
        return self.probabilities

    def sample(self, rng, batch_size):
        idx = rng.choice(self.n, size=int(batch_size), replace=True, p=self.probabilities)
        return idx, importance_weights(self.probabilities, idx)

    def record(self, indices, norms):
        for i, s in zip(np.asarray(indices), np.asarray(to_numpy(norms), dtype=np.float64)):
            self.scores[i] = s if self.scores[i] == 0.0 else 0.5 * (self.scores[i] + s)


def train(problem, optimizer, epochs, batch_size, seed=0, dtype="float64", reweight=True, tau=None,
          uniform=False, params=None):
    """Train ``optimizer`` on a finite-sum ``problem`` with PA&DA data importance sampling.

    Each epoch has ``ceil(N / batch_size)`` steps; at its start the
    probabilities are refreshed with ``tau = epoch / epochs`` (or the constant
    ``tau`` given). ``uniform=True`` is the baseline: the same loop with
    uniform sampling (with replacement). Per step the optimizer's oracle
    returns the batch loss (plain mean) and the importance-weighted gradient
    (``reweight``), and the per-sample gradient norms at that point update the
    scores. Returns ``params``, ``loss`` (full training loss after every
    epoch) and ``probabilities`` (the last epoch's).
    """
    if problem.n_train is None:
        raise ValueError(f"train: problem {problem.name!r} is not a finite sum (it has no examples)")
    if tau is not None:
        check_range("tau", tau, 0.0, 1.0, where="train")
    n = problem.n_train
    rng = np.random.default_rng(seed)
    w = problem.init(seed, dtype) if params is None else params
    state = optimizer.init(w)
    sampler = DataImportanceSampler(n)
    steps = math.ceil(n / batch_size)
    losses = []
    for epoch in range(int(epochs)):
        if not uniform:
            sampler.refresh(epoch / epochs if tau is None else tau)
        for _ in range(steps):
            idx, weights = sampler.sample(rng, batch_size)
            oracle = problem.oracle({k: v[idx] for k, v in problem.data.items()})
            seen = {}

            def weighted_oracle(p, _oracle=oracle, _weights=weights, _seen=seen):
                per_sample = _oracle.per_sample_grads(p)
                if not _seen:
                    _seen["norms"] = _norms(per_sample)
                ref = next(iter(per_sample.values()))
                wts = xp_of(ref).asarray(_weights if reweight else np.ones_like(_weights), dtype=ref.dtype)
                g = {k: (wts.reshape((-1,) + (1,) * (v.ndim - 1)) * v).mean(axis=0) for k, v in per_sample.items()}
                return _oracle.loss(p), g

            w, state = optimizer.step(w, state, weighted_oracle)
            sampler.record(idx, seen["norms"])
        losses.append(float(problem.loss(w)))
    return {"params": w, "loss": np.asarray(losses), "probabilities": sampler.probabilities.copy()}
