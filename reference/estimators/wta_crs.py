"""Winner-Take-All Column Row Sampling for Memory Efficient Adaptation of Language Model.

Zirui Liu, Guanchu Wang, Shaochen Zhong, Zhaozhuo Xu, Daochen Zha, Ruixiang Tang,
Zhimeng Jiang, Kaixiong Zhou, Vipin Chaudhary, Shuai Xu, Xia Hu. NeurIPS 2023.
arXiv:2305.15265

Training memory is dominated by the activations kept for the backward pass:
a linear layer ``z = h W^T + b`` needs its input ``h`` (``N x d_in``, ``N``
the examples or tokens) to form its weight gradient

    dL/dW = dz^T h = sum_{i=1}^N dz_i^T h_i          (a product X Y, X = dz^T, Y = h)

The paper replaces this sum over ``N`` column-row pairs ``X_{:,i} Y_{i,:}``
by an unbiased estimate from ``k << N`` of them, so only ``k`` rows of ``h``
need to be stored. With pair probabilities ``p_i`` proportional to
``||X_{:,i}|| ||Y_{i,:}||`` (the variance-minimising choice):

* **CRS** (column-row sampling, Drineas et al. 2006): ``k`` i.i.d. draws
  ``j_t ~ p``, estimate ``(1/k) sum_t X_{:,j_t} Y_{j_t,:} / p_{j_t}``.
* **WTA-CRS**: the pairs with the largest probabilities (the set ``C``, the
  "winners") are kept exactly, and the remaining ``k - |C|`` draws estimate
  the rest of the sum from the renormalised distribution:

      sum_{c in C} X_{:,c} Y_{c,:}
        + (1 - sum_{c in C} p_c) / (k - |C|) * sum_{t=1}^{k-|C|} X_{:,j_t} Y_{j_t,:} / p_{j_t},
      j_t ~ p restricted to the complement of C (i.i.d.)

  Both are unbiased. Per draw the stochastic part's second-moment term is
  ``(1 - P_C) sum_{i not in C} a_i^2 / p_i`` instead of ``sum_i a_i^2 / p_i``
  (``a_i = ||X_{:,i}|| ||Y_{i,:}||``); the paper's Theorem: WTA-CRS has the
  lower variance when ``sum_{c in C} p_c > |C| / k``, i.e. when a few pairs
  carry much of the mass (heavy-tailed norms, as in transformers).

Choice of ``|C|`` (the official code's ``k_adaptive``): among ``c = 1..k-1``
minimise ``(1 - P_{top c}) / (k - c)``; if even the minimum exceeds ``1/k``
(CRS's factor) use ``|C| = 0`` (plain CRS). ``n_deterministic`` fixes ``|C|``
instead.

As a linear layer's weight-gradient estimator (:func:`linear_weight_grad`,
and :func:`mlp_loss_and_sampled_grads` for a whole MLP): the probabilities
must be chosen in the *forward* pass, when ``dz`` is not known yet. The
official code uses the output-gradient norms of the previous iteration; here
``probabilities="activation"`` uses ``||h_i||`` alone (what the forward pass
knows) and ``probabilities="exact"`` the ideal ``||h_i|| ||dz_i||`` (an
oracle, for studying the estimator). Only the weight gradient is estimated:
``dL/dh = dz W`` and the bias gradient ``sum_i dz_i`` need no stored input,
so backpropagation continues exactly. Memory: ``k`` stored rows (plus their
indices and weights) instead of ``N``.

Sampling is with replacement for the stochastic part (as in the official
code), from a ``numpy.random.Generator`` passed by the caller (the draw
happens on the host; arrays may be NumPy or CuPy).
"""
from __future__ import annotations

import numpy as np

from .. import catalog
from ..backend import to_numpy, xp_of

__all__ = ["pair_probabilities", "deterministic_size", "crs_sample", "wta_crs_sample", "sampled_matmul",
           "crs_matmul", "wta_crs_matmul", "estimator_variance", "linear_weight_grad",
           "mlp_loss_and_sampled_grads", "stored_activation_bytes"]

catalog.register(title="Winner-Take-All Column Row Sampling for Memory Efficient Adaptation of Language Model",
                 name="wta_crs", family="memory-efficient", kind="implementation", module=__name__,
                 authors="Liu, Wang, Zhong, Xu, Zha, Tang, Jiang, Zhou, Chaudhary, Xu, Hu", year=2023,
                 arxiv="2305.15265")


def pair_probabilities(col_norms, row_norms=None):
    """``p_i = a_i / sum_j a_j`` with ``a_i = ||X_{:,i}|| ||Y_{i,:}||`` (float64 on the host);
    uniform when every ``a_i`` is zero. ``row_norms=None`` uses ``col_norms`` alone."""
    a = np.asarray(to_numpy(col_norms), dtype=np.float64)
    if row_norms is not None:
        a = a * np.asarray(to_numpy(row_norms), dtype=np.float64)
    total = a.sum()
    return np.full(a.shape, 1.0 / a.size) if total == 0 else a / total


def deterministic_size(p, k):
    """``|C|`` by the paper's rule: argmin over ``c = 1..k-1`` of ``(1 - P_{top c}) / (k - c)``,
    or 0 when that minimum is above CRS's ``1/k``."""
    if k <= 1:
        return 0
    top = np.sort(p)[::-1][:k - 1]
    c = np.arange(1, k)
    score = (1.0 - np.cumsum(top)) / (k - c)
    best = int(np.argmin(score))
    return 0 if score[best] > 1.0 / k else int(c[best])


def crs_sample(p, k, rng):
    """CRS: ``k`` i.i.d. draws from ``p``; returns ``(indices, weights)`` with weights ``1 / (k p_j)``."""
    idx = rng.choice(p.size, size=int(k), replace=True, p=p)
    return idx, 1.0 / (k * p[idx])


def wta_crs_sample(p, k, rng, n_deterministic=None):
    """WTA-CRS: the ``|C|`` most probable pairs with weight 1, then ``k - |C|`` draws from ``p`` off ``C``
    with weights ``(1 - P_C) / ((k - |C|) p_j)``. Returns ``(indices, weights)`` (``k`` of each)."""
    k = int(k)
    c = deterministic_size(p, k) if n_deterministic is None else int(n_deterministic)
    if not 0 <= c <= k:
        raise ValueError(f"wta_crs_sample: n_deterministic must be in [0, k={k}], got {c}")
    winners = np.argsort(-p, kind="stable")[:c]
    rest = np.ones(p.size, dtype=bool)
    rest[winners] = False
    p_c = float(p[winners].sum())
    s = k - c
    if s == 0 or p_c >= 1.0 or not rest.any():
        return winners, np.ones(c)
    q = np.where(rest, p, 0.0) / (1.0 - p_c)                    # p restricted to the complement of C
    drawn = rng.choice(p.size, size=s, replace=True, p=q)
    weights = np.concatenate([np.ones(c), (1.0 - p_c) / (s * p[drawn])])
    return np.concatenate([winners, drawn]), weights


def sampled_matmul(x, y, indices, weights):
    """``sum_t w_t X_{:,j_t} Y_{j_t,:}`` for sampled pairs ``(j_t, w_t)``."""
    xp = xp_of(x, y)
    idx = xp.asarray(indices)
    w = xp.asarray(weights).astype(x.dtype)
    return (x[:, idx] * w) @ y[idx, :]


def _norms(x, y):
    xp = xp_of(x, y)
    return xp.sqrt((x * x).sum(axis=0)), xp.sqrt((y * y).sum(axis=1))


def crs_matmul(x, y, k, rng):
    """The CRS estimate of ``x @ y`` from ``k`` column-row pairs."""
    p = pair_probabilities(*_norms(x, y))
    return sampled_matmul(x, y, *crs_sample(p, k, rng))


def wta_crs_matmul(x, y, k, rng, n_deterministic=None):
    """The WTA-CRS estimate of ``x @ y`` from ``k`` column-row pairs."""
    p = pair_probabilities(*_norms(x, y))
    return sampled_matmul(x, y, *wta_crs_sample(p, k, rng, n_deterministic))


def estimator_variance(x, y, p, k, n_deterministic=0):
    """``E ||estimate - x @ y||_F^2`` in closed form (float64), for sampling probabilities ``p``,
    ``k`` pairs of which the ``n_deterministic`` most probable are kept exactly (0: CRS):

        (1 / s) ((1 - P_C) sum_{i not in C} a_i^2 / p_i - ||sum_{i not in C} X_i Y_i||_F^2),  s = k - |C|
    """
    x = np.asarray(to_numpy(x), dtype=np.float64)
    y = np.asarray(to_numpy(y), dtype=np.float64)
    a2 = (x * x).sum(axis=0) * (y * y).sum(axis=1)
    c = int(n_deterministic)
    rest = np.ones(p.size, dtype=bool)
    rest[np.argsort(-p, kind="stable")[:c]] = False
    p_c = float(p[~rest].sum())
    s = k - c
    if s == 0:
        return 0.0 if not rest.any() else float("inf")
    r = x[:, rest] @ y[rest, :]
    return float(((1.0 - p_c) * np.sum(a2[rest] / p[rest]) - np.sum(r * r)) / s)


def linear_weight_grad(h, dz, k, rng, method="wta_crs", probabilities="activation"):
    """An estimate of a linear layer's weight gradient ``dz^T h`` (``d_out x d_in``) from ``k`` of
    the ``N`` rows of its input ``h``; ``method`` is ``"wta_crs"``, ``"crs"`` or ``"exact"``.
    Returns ``(grad, stored_rows)``: the estimate and the row indices of ``h`` it needed."""
    n = h.shape[0]
    if method == "exact" or k >= n:
        return dz.T @ h, np.arange(n)
    xp = xp_of(h, dz)
    h_norms = xp.sqrt((h * h).sum(axis=1))
    if probabilities == "exact":
        p = pair_probabilities(h_norms, xp.sqrt((dz * dz).sum(axis=1)))
    elif probabilities == "activation":
        p = pair_probabilities(h_norms)
    else:
        raise ValueError(f"linear_weight_grad: probabilities must be 'activation' or 'exact', got {probabilities!r}")
    if method == "crs":
        idx, w = crs_sample(p, k, rng)
    elif method == "wta_crs":
        idx, w = wta_crs_sample(p, k, rng)
    else:
        raise ValueError(f"linear_weight_grad: method must be 'wta_crs', 'crs' or 'exact', got {method!r}")
    return sampled_matmul(dz.T, h, idx, w), np.unique(idx)


def stored_activation_bytes(h, stored_rows):
    """Bytes of the activation rows a layer keeps for its backward pass."""
    return int(len(stored_rows) * h.shape[1] * h.dtype.itemsize)


_ACTIVATIONS = {
    # (activation, its derivative from the activation's output)
    "tanh": (np.tanh, lambda out: 1.0 - out * out),
    "relu": (lambda z: z * (z > 0), lambda out: (out > 0).astype(out.dtype)),
}


def mlp_loss_and_sampled_grads(params, x, y, k, rng, activation="tanh", method="wta_crs",
                               probabilities="activation"):
    """Mean softmax cross-entropy of a ``reference.nn.mlp`` network on ``(x, y)`` and its gradient,
    with every weight gradient estimated from ``k`` sampled rows of the layer's input.

    Returns ``(loss, grads, stored)``: ``stored[i]`` is the number of input rows layer ``i`` keeps
    (``N`` for ``method="exact"``). Manual forward/backward for ``tanh`` and ``relu`` networks. The
    nonlinearity's derivative still reads its own output (a 1-bit mask for ReLU); as in the paper,
    only the copies the *linear* layers keep are counted as saved."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"mlp_loss_and_sampled_grads: activation must be one of {sorted(_ACTIVATIONS)}")
    act, dact = _ACTIVATIONS[activation]
    xp = xp_of(x)
    n_layers = len([key for key in params if key.endswith(".weight")])
    hs, h = [], x
    for i in range(n_layers):                               # forward: keep each layer's input
        hs.append(h)
        z = h @ params[f"{i}.weight"].T + params[f"{i}.bias"]
        h = act(z) if i < n_layers - 1 else z
    logits = h - h.max(axis=1, keepdims=True)
    logp = logits - xp.log(xp.exp(logits).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = -logp[xp.arange(n), y].mean()
    dz = xp.exp(logp)
    dz[xp.arange(n), y] -= 1.0
    dz = dz / n                                             # dL/dz of the last layer
    grads, stored = {}, {}
    for i in reversed(range(n_layers)):                     # backward
        grads[f"{i}.weight"], rows = linear_weight_grad(hs[i], dz, k, rng, method, probabilities)
        stored[i] = len(rows)
        grads[f"{i}.bias"] = dz.sum(axis=0)
        if i:
            dz = (dz @ params[f"{i}.weight"]) * dact(hs[i])     # exact: needs W, not the stored rows
    return loss, grads, stored
