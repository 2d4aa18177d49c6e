"""A flattest interpolant need not generalise, while SAM's (less flat) solution does.

Demonstrates "Sharpness Minimization Algorithms Do Not Only Minimize Sharpness To Achieve Better
Generalization" (Kaiyue Wen, Zhiyuan Li, Tengyu Ma, NeurIPS 2023, arXiv:2307.11007).

The paper's claim: for two-layer ReLU networks trained with the squared loss on the 2-parity
``y = x_1 x_2`` over the hypercube ``{-1, 1}^d``, whether the flattest interpolating models (minimal
trace of the training-loss Hessian) generalise depends on the architecture: (1) *without bias*,
flatness provably implies generalisation; (2)/(3) with other architectures there exist flattest
interpolants that do not generalise at all, and yet a sharpness-minimisation algorithm (SAM) may
still find a model that generalises: SAM does not (only) generalise by minimising sharpness.

Everything here is exact (``reference.problems.create("hypercube_parity")``, the network
``f(x) = sum_j a_j relu(w_j . x + b_j)``, loss ``L = 1/n sum_i (f(x_i) - y_i)^2``):

* **The trace of the Hessian.** ``f`` is linear in ``a`` and piecewise linear in ``(w_j, b_j)``, so
  every *diagonal* second derivative of ``f`` vanishes (almost everywhere) and

      tr H(theta) = 2/n sum_i ||grad_theta f(x_i)||^2
                  = 2/n sum_i sum_j [relu(z_ij)^2 + a_j^2 1(z_ij > 0) (||x_i||^2 + 1_bias)],

  at any ``theta``, interpolating or not (``z_ij = w_j . x_i + b_j``; checked against
  ``reference.curvature.hessian`` in the tests).
* **The flattest interpolants.** By AM-GM, term by term, ``relu(z)^2 + a^2 D >= 2 sqrt(D) |a|
  relu(z)`` with ``D = d + 1_bias``, hence for any interpolant of any width
  ``tr H >= 2/n sum_i 2 sqrt(D) |y_i| = 4 sqrt(D)`` (``|y_i| = 1``). A network attaining the bound is a
  flattest interpolant (a certificate, no search needed).
* **With bias, a memorising flattest interpolant** (the paper's construction of a non-generalising
  flattest model, in our scaling): one neuron per training point, ``w_j = c x_j``, ``b_j = -c (d - 1)``,
  ``a_j = y_j / c`` with ``c^2 = sqrt(d + 1)``. On the cube ``x_j . x <= d - 2`` for ``x != x_j``, so
  neuron ``j`` fires only at ``x_j`` (value ``c``): it interpolates, attains ``4 sqrt(d + 1)``, and
  predicts ``0`` on every unseen point: test MSE exactly 1 (no better than the zero function).
* **Without bias, the generalising construction** ``x_1 x_2 = (|x_1 + x_2| - |x_1 - x_2|) / 2`` written
  with four ReLUs (``|u| = relu(u) + relu(-u)``), each scaled so ``4 c^2 = d / (4 c^2)``, attains
  ``4 sqrt(d)``: it is a flattest interpolant and has test MSE 0 (a bias-free network cannot isolate
  one vertex, and the paper proves every flattest model generalises there). With bias the same
  construction (``b = 0``, scaled for ``D = d + 1``) is *also* flattest: two interpolants of exactly
  equal, minimal trace, one with test MSE 0 and one with test MSE 1, so the flatness alone cannot
  decide generalisation there.

``run()`` trains, from the same random init (width 64, ``n = 200`` of the ``2^10`` vertices), full
batch GD and SAM (``optim.create("sam", inner=SGD(lr), rho)``) in both architectures and compares
their trace and test MSE (on the other 824 vertices) with the constructions'.

What reproduces (seeds 0-2): with bias, the memorising construction is flatter than SAM's solution
(trace 13.3 vs 31-36; GD's about 120) yet has test MSE 1.0, while SAM's test MSE is 0.003-0.015:
SAM generalises, but not by reaching the flattest interpolant (scenario 3 of the paper).
Without bias, the flattest interpolant (trace ``4 sqrt(10)`` = 12.6) and SAM's solution both
generalise. What is ours / not covered: the sizes (``d = 10``, ``n = 200``, width 64, ``lr = 0.05``,
``rho = 0.1``, 2000 steps), the scalings of the constructions; SAM does not reach the flattest
trace in 2000 steps (it is about 2.3-3.7 x the bound), so "SAM's solution" is a late iterate, not
its limit. The paper's scenario 2 (architectures where SAM also fails) and its simplified
BatchNorm/LayerNorm variants are not reproduced here.
"""
from __future__ import annotations

import numpy as np

from . import register, with_defaults
from .. import optim, problems

register(__name__, title="Sharpness Minimization Algorithms Do Not Only Minimize Sharpness To Achieve Better "
                         "Generalization",
         authors="Wen, Li, Ma", year=2023, arxiv="2307.11007", family="sharpness")

__all__ = ["run", "plot", "DEFAULTS", "hessian_trace", "trace_lower_bound", "memorizing_interpolant",
           "parity_interpolant"]

DEFAULTS = dict(seeds=(0, 1, 2), dim=10, n_train=200, width=64, lr=0.05, rho=0.1, steps=2000)


def hessian_trace(problem, params, data=None):
    """Exact ``tr H`` of the mean squared loss of ``hypercube_parity``: ``2/n sum_i ||grad f(x_i)||^2``."""
    X = np.asarray((problem.data if data is None else data)["x"])
    z = X @ params["W"].T + (params["b"] if problem.bias else 0.0)
    active = z > 0
    D = (X * X).sum(axis=1) + (1.0 if problem.bias else 0.0)
    per = (np.maximum(z, 0.0) ** 2).sum(axis=1) + (active * params["a"][None, :] ** 2).sum(axis=1) * D
    return 2.0 / X.shape[0] * float(per.sum())


def trace_lower_bound(problem):
    """``2/n sum_i 2 sqrt(D) |y_i|``, ``D = d + 1_bias``: no interpolant of any width is flatter."""
    D = problem.n_in + (1 if problem.bias else 0)
    return 4.0 * np.sqrt(D) * float(np.mean(np.abs(problem.data["y"])))


def memorizing_interpolant(problem):
    """With bias: one neuron per training point, firing only there; flattest, test MSE 1."""
    if not problem.bias:
        raise ValueError("memorizing_interpolant needs the network with bias (bias=True)")
    X, y, d = problem.data["x"], problem.data["y"], problem.n_in
    c = (d + 1.0) ** 0.25
    return {"W": c * X.copy(), "a": y / c, "b": np.full(X.shape[0], -c * (d - 1.0))}


def parity_interpolant(problem):
    """``x_1 x_2 = (|x_1 + x_2| - |x_1 - x_2|) / 2`` with four scaled ReLUs (no bias needed; with bias
    the biases are 0). Flattest in both architectures (trace ``4 sqrt(D)``); generalises exactly."""
    D = problem.n_in + (1 if problem.bias else 0)
    c = D ** 0.25 / 2.0                                         # 4 c^2 = D / (4 c^2)
    W = np.zeros((4, problem.n_in))
    W[0, :2], W[1, :2], W[2, :2], W[3, :2] = (1, 1), (-1, -1), (1, -1), (-1, 1)
    params = {"W": c * W, "a": np.array([1, 1, -1, -1]) / (2.0 * c)}
    if problem.bias:
        params["b"] = np.zeros(4)
    return params


def _train(problem, opt, w0, steps):
    oracle = problem.numpy_oracle()
    w, state = dict(w0), opt.init(w0)
    for _ in range(steps):
        w, state = opt.step(w, state, oracle)
    return w


def _setting(s, seed, bias):
    p = problems.create("hypercube_parity", dim=s["dim"], n_train=s["n_train"], width=s["width"], bias=bias,
                        seed=seed)
    w0 = p.init(100 + seed)
    models = {"gd": _train(p, optim.create("sgd", lr=s["lr"]), w0, s["steps"]),
              "sam": _train(p, optim.create("sam", inner=optim.create("sgd", lr=s["lr"]), rho=s["rho"]), w0,
                            s["steps"])}
    if bias:
        models["flattest_memorizing"] = memorizing_interpolant(p)
    models["flattest_parity"] = parity_interpolant(p)
    out = {"lower_bound": trace_lower_bound(p)}
    for name, w in models.items():
        mse = {k: float(np.mean((p.predict(w, d["x"]) - d["y"]) ** 2)) for k, d in (("train", p.data),
                                                                                     ("test", p.test_data))}
        out[name] = {"trace": hessian_trace(p, w), "train_mse": mse["train"], "test_mse": mse["test"],
                     "width": int(w["a"].shape[0])}
    return out


def run(**settings):
    """``result["bias"][seed]`` and ``result["no_bias"][seed]``: for ``gd``, ``sam`` and the
    constructions (``flattest_memorizing`` with bias only, ``flattest_parity``): ``trace`` (exact
    Hessian trace), ``train_mse``, ``test_mse``; and ``lower_bound`` (the flattest possible trace)."""
    s = with_defaults(__name__, DEFAULTS, settings)
    return {"settings": s, "bias": {sd: _setting(s, sd, True) for sd in s["seeds"]},
            "no_bias": {sd: _setting(s, sd, False) for sd in s["seeds"]}}


def plot(result, ax=None):
    """Test MSE against Hessian trace for every model (both architectures, every seed)."""
    import matplotlib.pyplot as plt
    from .. import plot as rplot

    with rplot.style():
        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 3.5))
        markers = {"gd": "o", "sam": "s", "flattest_memorizing": "X", "flattest_parity": "*"}
        for i, arch in enumerate(("bias", "no_bias")):
            color = rplot.COLORS[i % len(rplot.COLORS)]
            for j, r in enumerate(result[arch].values()):
                for name, m in markers.items():
                    if name in r:
                        ax.scatter(r[name]["trace"], r[name]["test_mse"], marker=m, color=color,
                                   label=f"{arch}: {name}" if j == 0 else None)
        ax.set_xscale("log")
        ax.set_xlabel("trace of the Hessian")
        ax.set_ylabel("test MSE")
        ax.set_title("flattest interpolants vs SAM and GD")
        ax.legend(fontsize=7)
    return ax
