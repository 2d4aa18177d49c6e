"""Many AdamW runs of one small MLP task at once: the engine of the schedule demonstrations.

The schedule papers (``linear_decay_to_zero_demo``, ``constant_lr_cooldown_demo``)
compare schedules *at the best peak learning rate*, over several seeds and
training lengths: dozens of runs of the same MLP. One run with
``reference.train.run`` costs a few milliseconds a step (the autograd tape),
so this module runs all of them together instead: the parameters of ``R``
runs are stacked along a leading axis, the MLP's forward and backward passes
are written out in batched NumPy (``matmul`` over the run axis), and AdamW is
applied to the whole ``(R, P)`` block with one learning rate per run and step.

It is *the same computation* as, for each run ``r``,

    reference.train.run(problem, optim.create("adamw", lr=schedule_r, weight_decay=wd, ...),
                        steps, batch_size=B, seed=seed_r)

(``problem.init(seed)``, one ``problem.sample_batch(rng, B)`` per step from
``numpy.random.default_rng(seed)``, torch's AdamW convention of
``reference/optim/adamw.py``); ``tests/test_schedule_papers_2.py`` checks
the two agree to 1e-12. Runs with the same seed see the same minibatches
(common random numbers: schedules are compared on identical data).

The state of a group of runs is a dict ``{"w", "m", "v"}`` of ``(R, P)``
arrays (the flattened params and AdamW's moments), ``"t"`` (steps taken),
``"seeds"`` (``(R,)``) and ``"rngs"`` (one ``Generator`` per distinct seed),
so a group can be stopped, copied (:func:`select`) and continued: that is how
cooldowns branch off a constant-learning-rate run.
"""
from __future__ import annotations

import copy

import numpy as np

__all__ = ["start", "select", "train", "unflatten", "mlp_outputs", "batched_loss_and_grads", "test_loss",
           "excess_risk", "lr_table"]


# ---- params: a dict per run <-> one flat (R, P) block ------------------------------------

def _layout(problem):
    keys = list(problem.param_shapes)
    shapes = [tuple(problem.param_shapes[k]) for k in keys]
    offsets = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
    return keys, shapes, offsets


def unflatten(problem, w):
    """``(R, P)`` flat params -> ``{key: (R, *shape)}`` views (no copy)."""
    keys, shapes, offsets = _layout(problem)
    R = w.shape[0]
    return {k: w[:, offsets[i]:offsets[i + 1]].reshape((R,) + shapes[i]) for i, k in enumerate(keys)}


def flatten(problem, params_per_run):
    """A list of params dicts -> the ``(R, P)`` block."""
    keys, _, _ = _layout(problem)
    return np.stack([np.concatenate([np.asarray(p[k], dtype=np.float64).ravel() for k in keys])
                     for p in params_per_run])


# ---- the batched MLP ---------------------------------------------------------------------

def _activation(name):
    """The activation and its derivative written in terms of (pre-activation a, output h)."""
    if name == "tanh":
        return np.tanh, lambda a, h: 1.0 - h * h
    if name == "relu":
        return (lambda a: np.maximum(a, 0.0)), (lambda a, h: (a > 0).astype(a.dtype))
    raise ValueError(f"_mlp_runs: activation {name!r} is not supported here (tanh or relu)")


def mlp_outputs(problem, params, x):
    """The MLP ``problem.apply`` for every run: ``params`` ``{key: (R, ...)}``, ``x`` ``(R, B, n_in)``.
    Returns the outputs ``(R, B, n_out)`` and the cache the backward pass needs."""
    f, _ = _activation(problem.activation)
    n_layers = len(problem.sizes) - 1
    hs, pre, h = [x], [], x
    for i in range(n_layers):
        a = np.matmul(h, np.swapaxes(params[f"{i}.weight"], 1, 2)) + params[f"{i}.bias"][:, None, :]
        pre.append(a)
        h = f(a) if i < n_layers - 1 else a
        if i < n_layers - 1:
            hs.append(h)
    return h, (hs, pre)


def batched_loss_and_grads(problem, params, x, y):
    """Mean loss over each run's batch ``(R,)`` and its gradient ``{key: (R, ...)}``: softmax
    cross-entropy for classification tasks, ``mean_j (out_j - y_j)^2`` for regression (the per-example
    losses of ``reference.nn``, averaged over the batch, as ``problem.oracle(batch)`` does)."""
    out, (hs, pre) = mlp_outputs(problem, params, x)
    _, df = _activation(problem.activation)
    B = x.shape[1]
    if problem.task == "classification":
        z = out - out.max(axis=2, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=2))
        loss = (lse - np.take_along_axis(z, y[:, :, None], axis=2)[:, :, 0]).mean(axis=1)
        d = np.exp(z - lse[:, :, None])
        np.put_along_axis(d, y[:, :, None], np.take_along_axis(d, y[:, :, None], axis=2) - 1.0, axis=2)
        d = d / B
    else:
        r = out - y
        loss = (r * r).mean(axis=(1, 2))
        d = 2.0 * r / (B * r.shape[2])
    grads = {}
    for i in range(len(problem.sizes) - 2, -1, -1):             # back through the layers
        grads[f"{i}.weight"] = np.matmul(np.swapaxes(d, 1, 2), hs[i])
        grads[f"{i}.bias"] = d.sum(axis=1)
        if i > 0:
            d = np.matmul(d, params[f"{i}.weight"]) * df(pre[i - 1], hs[i])
    return loss, grads


def _full_data_loss(problem, w, data, chunk=4096):
    R = w.shape[0]
    params = unflatten(problem, w)
    total = np.zeros(R)
    X, Y = data["x"], data["y"]
    for c in range(0, X.shape[0], chunk):
        x = np.broadcast_to(X[c:c + chunk], (R,) + X[c:c + chunk].shape)
        y = np.broadcast_to(Y[c:c + chunk], (R,) + Y[c:c + chunk].shape)
        out, _ = mlp_outputs(problem, params, x)
        if problem.task == "classification":
            z = out - out.max(axis=2, keepdims=True)
            losses = np.log(np.exp(z).sum(axis=2)) - np.take_along_axis(z, y[:, :, None], axis=2)[:, :, 0]
        else:
            losses = ((out - y) ** 2).mean(axis=2)
        total += losses.sum(axis=1)
    return total / X.shape[0]


def test_loss(problem, w):
    """The held-out loss of every run, ``(R,)`` (``problem.evaluate(params)["test_loss"]``)."""
    return _full_data_loss(problem, w, problem.test_data)


def excess_risk(problem, w):
    """For ``regression_1d``: ``mean_x (f_w(x) - sin(3x))^2`` over the test inputs, ``(R,)``: the
    test loss minus the part no model can remove (the target noise), without that noise's sampling
    error. It is what the schedules compete on."""
    X = problem.test_data["x"]
    clean = {"x": X, "y": problem.target(X)}
    return _full_data_loss(problem, w, clean)


# ---- AdamW on the (R, P) block --------------------------------------------------------------

def lr_table(schedules, steps, start=0):
    """``(R, steps)``: schedule ``r`` at steps ``start .. start + steps - 1``."""
    return np.array([[float(s(k)) for k in range(start, start + steps)] for s in schedules], dtype=np.float64)


def start(problem, seeds):
    """The state of runs starting from ``problem.init(seed)`` with fresh ``default_rng(seed)`` streams."""
    seeds = np.asarray([int(s) for s in seeds])
    w = flatten(problem, [problem.init(int(s)) for s in seeds])
    return {"w": w, "m": np.zeros_like(w), "v": np.zeros_like(w), "t": 0, "seeds": seeds,
            "rngs": {int(s): np.random.default_rng(int(s)) for s in np.unique(seeds)}}


def select(state, rows):
    """A copy of the runs ``rows`` (indices, repeats allowed) with their own copies of the data streams."""
    rows = np.asarray(rows)
    seeds = state["seeds"][rows]
    return {"w": state["w"][rows].copy(), "m": state["m"][rows].copy(), "v": state["v"][rows].copy(),
            "t": state["t"], "seeds": seeds,
            "rngs": {int(s): copy.deepcopy(state["rngs"][int(s)]) for s in np.unique(seeds)}}


def train(problem, state, lrs, batch_size, weight_decay, beta1=0.9, beta2=0.999, eps=1e-8, average=False):
    """Continue every run for ``lrs.shape[1]`` steps, run ``r`` with learning rates ``lrs[r]``.

    AdamW exactly as ``reference.optim.adamw`` (torch's convention):
    ``w' = w - lr wd w``; ``m, v`` the EMAs of ``g, g^2``; ``w = w' - lr m_hat / (sqrt(v_hat) + eps)``.
    Returns the new state; with ``average=True`` also the uniform average of the iterates after each
    of these steps (stochastic weight averaging over this stretch), ``(R, P)``.
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    R = state["w"].shape[0]
    if lrs.ndim != 2 or lrs.shape[0] != R:
        raise ValueError(f"_mlp_runs.train: lrs must have shape ({R}, steps), got {lrs.shape}")
    w, m, v, t = state["w"].copy(), state["m"].copy(), state["v"].copy(), state["t"]
    rngs = {s: copy.deepcopy(r) for s, r in state["rngs"].items()}
    order = sorted(rngs)
    row_of_seed = np.searchsorted(order, state["seeds"])
    g = np.zeros_like(w)
    g_views = unflatten(problem, g)
    total = np.zeros_like(w) if average else None
    for j in range(lrs.shape[1]):
        batches = [problem.sample_batch(rngs[s], batch_size) for s in order]
        x = np.stack([b["x"] for b in batches])[row_of_seed]
        y = np.stack([b["y"] for b in batches])[row_of_seed]
        _, grads = batched_loss_and_grads(problem, unflatten(problem, w), x, y)
        for k, gk in grads.items():
            g_views[k][...] = gk
        t += 1
        lr = lrs[:, j:j + 1]
        w = w - (lr * weight_decay) * w                                    # decoupled decay
        m = beta1 * m + (1.0 - beta1) * g
        v = beta2 * v + (1.0 - beta2) * (g * g)
        w = w - lr * (m / (1.0 - beta1 ** t)) / ((v / (1.0 - beta2 ** t)) ** 0.5 + eps)
        if average:
            total += w
    new = {"w": w, "m": m, "v": v, "t": t, "seeds": state["seeds"].copy(), "rngs": rngs}
    return (new, total / lrs.shape[1]) if average else new
