"""SDE models of SAM: weak order one, an implicitly regularised drift, and attraction to saddles.

Demonstrates "An SDE for Modeling SAM: Theory and Insights" (Enea Monzio Compagnoni, Luca Biggio,
Antonio Orvieto, Frank Norbert Proske, Hans Kersting, Aurelien Lucchi, ICML 2023, arXiv:2301.08203).

Stochastic SAM and its unnormalised variant USAM, with ``g_gamma`` the gradient of the mini-batch
``gamma`` drawn at step ``k`` (the same batch at both points, as SAM is run in practice):

    SAM:   x_{k+1} = x_k - eta g_gamma(x_k + rho g_gamma(x_k) / ||g_gamma(x_k)||)
    USAM:  x_{k+1} = x_k - eta g_gamma(x_k + rho g_gamma(x_k))

The paper derives SDEs ``dX = -grad f~(X) dt + sqrt(eta) S(X) dW`` whose solutions are weak
approximations of order one in ``eta`` (``|E g(x_k) - E g(X_{k eta})| = O(eta)`` on a fixed horizon).
Their drifts are gradients of **implicitly regularised losses**,

    USAM:  f~ = f + rho/2 ||grad f||^2          SAM (normalised):  f~ = f + rho ||grad f||,

(first order in ``rho``), and their diffusions depend on the Hessian ``H`` (for USAM with additive
noise on a quadratic, exactly: the noise enters as ``(I + rho H) Z``, covariance ``Sigma + rho (H
Sigma + Sigma H) + rho^2 H Sigma H`` instead of SGD's ``Sigma``). Among the insights: SAM and USAM can
be *attracted to saddle points* that SGD escapes.

``run()`` makes three checks.

1. **Weak error of order one** (USAM on a quadratic ``f = 1/2 x^T H x``, ``H`` diagonal, with additive
   Gaussian gradient noise ``g_gamma(x) = H x + Z``, ``Z ~ N(0, Sigma)``). There the USAM step is
   exactly linear, ``x_{k+1} = x_k - eta (H + rho H^2) x_k - eta (I + rho H) Z_k``, so the mean and
   covariance of the iterates are exact recursions, and the USAM SDE ``dX = -(H + rho H^2) X dt +
   sqrt(eta) (I + rho H) Sigma^{1/2} dW`` is an Ornstein-Uhlenbeck process with closed-form moments:
   the weak error of ``E f`` at a fixed time ``T`` is computed exactly for a ladder of step sizes,
   and its slope in ``log eta`` should be ``1``. The same iterates are compared with the SDE of
   *SGD* (``rho = 0``), which misses the ``rho`` terms: its error does not vanish as ``eta -> 0``.
   A Monte Carlo run of the actual USAM iterates confirms the exact discrete moments.
2. **Implicit regularisation of the drift**, on a nonquadratic loss (a 1-8-1 tanh network on
   ``reference.problems`` ``regression_1d``, at its initialisation): the
   deterministic SAM/USAM direction ``grad f(x + rho d)`` equals ``grad f~(x) + O(rho^2)``, with
   ``grad (rho/2 ||grad f||^2) = rho H grad f`` and ``grad (rho ||grad f||) = rho H grad f / ||grad
   f||`` (Hessian-vector products from ``reference.curvature``): the remainder falls 4x when ``rho``
   halves.
3. **Saddles**: ``f(x, y) = x^2 / 2 - y^2 / 2 + y^4 / 4`` (a saddle at 0, minima at ``y = +-1``),
   noisy gradients, start at ``(1, 0)``. SGD leaves the saddle in a few dozen steps; USAM with
   ``rho > 1 / |lambda_min| = 1`` turns the negative curvature into a contraction (its step multiplies
   ``y`` by ``1 + eta (1 - rho)`` near the saddle) and SAM, within a distance ``rho`` of the saddle,
   contracts towards it too (its effective radius ``rho / ||grad f||`` blows up there). Measured:
   the share of 400 noisy runs still within ``|y| < 0.5`` after ``steps`` steps.

Not reproduced: the paper's SDE for SAM with the normalisation by the *stochastic* gradient norm in
the weak-error check (only USAM's linear case, where the moments are exact, is checked), and its
neural-network experiments. Settings (``H``, ``Sigma``, ``rho``, the saddle function) are ours.
"""
from __future__ import annotations

import numpy as np

from . import register, with_defaults
from .. import curvature, problems, tree

register(__name__, title="An SDE for Modeling SAM: Theory and Insights",
         authors="Compagnoni, Biggio, Orvieto, Proske, Kersting, Lucchi", year=2023, arxiv="2301.08203",
         family="sharpness")

__all__ = ["usam_discrete_moments", "usam_sde_moments", "run", "plot", "DEFAULTS"]

DEFAULTS = dict(h=(1.0, 0.5, 0.2), sigma=(1.0, 1.0, 1.0), x0=(1.0, -1.0, 2.0), rho=0.5, horizon=2.0,
                lrs=(0.02, 0.01, 0.005, 0.0025), mc_lr=0.04, mc_chains=20000, seed=0,
                drift_rhos=(0.04, 0.02, 0.01), drift_seed=0,
                saddle_lr=0.05, saddle_steps=400, saddle_chains=400, saddle_noise=0.05,
                saddle_usam_rho=2.0, saddle_sam_rho=0.3, saddle_escape=0.5)


# ---- 1. weak error on a quadratic --------------------------------------------------------------

def usam_discrete_moments(h, sigma, x0, lr, rho, steps):
    """Mean and variance (per coordinate) of ``steps`` USAM iterates on ``f = 1/2 sum h_i x_i^2`` with
    gradient noise ``N(0, diag(sigma^2))``: ``m_{k+1} = (1 - lr a) m_k``, ``v_{k+1} = (1 - lr a)^2 v_k +
    lr^2 b^2 sigma^2`` with ``a = h + rho h^2``, ``b = 1 + rho h``."""
    h, sigma, x0 = (np.asarray(v, dtype=float) for v in (h, sigma, x0))
    a, b = h + rho * h ** 2, 1.0 + rho * h
    q = 1.0 - lr * a
    m = q ** steps * x0
    v = lr ** 2 * b ** 2 * sigma ** 2 * (1.0 - q ** (2 * steps)) / (1.0 - q ** 2)
    return m, v


def usam_sde_moments(h, sigma, x0, lr, rho, t):
    """Mean and variance of the USAM SDE ``dX = -(H + rho H^2) X dt + sqrt(lr) (I + rho H) Sigma^{1/2} dW``
    at time ``t`` (an Ornstein-Uhlenbeck process; ``rho = 0`` gives SGD's SDE)."""
    h, sigma, x0 = (np.asarray(v, dtype=float) for v in (h, sigma, x0))
    a, b = h + rho * h ** 2, 1.0 + rho * h
    m = np.exp(-a * t) * x0
    v = lr * b ** 2 * sigma ** 2 * (1.0 - np.exp(-2.0 * a * t)) / (2.0 * a)
    return m, v


def _expected_f(h, m, v):
    return 0.5 * float(np.sum(np.asarray(h) * (m ** 2 + v)))


def _weak_error(s):
    h, sigma, x0, rho, T = s["h"], s["sigma"], s["x0"], s["rho"], s["horizon"]
    usam_err, sgd_sde_err, ef = [], [], []
    for lr in s["lrs"]:
        k = int(round(T / lr))
        disc = _expected_f(h, *usam_discrete_moments(h, sigma, x0, lr, rho, k))
        sde = _expected_f(h, *usam_sde_moments(h, sigma, x0, lr, rho, k * lr))
        sgd_sde = _expected_f(h, *usam_sde_moments(h, sigma, x0, lr, 0.0, k * lr))
        ef.append(disc)
        usam_err.append(abs(disc - sde))
        sgd_sde_err.append(abs(disc - sgd_sde))
    lrs = np.asarray(s["lrs"], dtype=float)
    slope = float(np.polyfit(np.log(lrs), np.log(usam_err), 1)[0])
    # Monte Carlo of the actual algorithm: each chain draws one noise vector per step and uses it at
    # both gradient evaluations (the same batch), x <- x - lr g(x + rho g(x))
    rng = np.random.default_rng(s["seed"])
    lr = s["mc_lr"]
    k = int(round(T / lr))
    hv, sg = np.asarray(h, dtype=float), np.asarray(sigma, dtype=float)
    x = np.tile(np.asarray(x0, dtype=float), (s["mc_chains"], 1))
    for _ in range(k):
        z = sg * rng.standard_normal(x.shape)
        g = hv * x + z                                   # g_gamma(x)
        g_adv = hv * (x + rho * g) + z                   # g_gamma(x + rho g_gamma(x))
        x = x - lr * g_adv
    fx = 0.5 * np.sum(hv * x ** 2, axis=1)
    return {"lrs": lrs, "usam_sde_error": np.array(usam_err), "sgd_sde_error": np.array(sgd_sde_err),
            "expected_f": np.array(ef), "slope": slope, "mc_mean_f": float(fx.mean()),
            "mc_stderr_f": float(fx.std(ddof=1) / np.sqrt(fx.size)),
            "mc_exact_f": _expected_f(h, *usam_discrete_moments(h, sigma, x0, lr, rho, k))}


# ---- 2. the drift is the gradient of an implicitly regularised loss -------------------------------

def _drift(s):
    prob = problems.create("regression_1d", hidden=(8,), n_train=32, seed=s["drift_seed"])
    oracle = prob.oracle()
    x = prob.init(s["drift_seed"])
    _, g = oracle(x)
    gnorm = float(tree.global_norm(g))
    hg = curvature.hvp(oracle, x, g)                               # H grad f
    out = {"rhos": np.asarray(s["drift_rhos"], dtype=float), "usam_remainder": [], "sam_remainder": []}
    for rho in s["drift_rhos"]:
        # USAM: grad f(x + rho g) vs grad f + rho H g  (= grad (f + rho/2 ||grad f||^2))
        _, gu = oracle(tree.axpy(rho, g, x))
        out["usam_remainder"].append(float(tree.global_norm(tree.sub(gu, tree.axpy(rho, hg, g)))))
        # SAM: grad f(x + rho g/||g||) vs grad f + rho H g / ||g||  (= grad (f + rho ||grad f||))
        _, gs = oracle(tree.axpy(rho / gnorm, g, x))
        out["sam_remainder"].append(float(tree.global_norm(tree.sub(gs, tree.axpy(rho / gnorm, hg, g)))))
        # (the regularisers' gradients, checked by autograd in the tests)
    out["usam_remainder"] = np.array(out["usam_remainder"])
    out["sam_remainder"] = np.array(out["sam_remainder"])
    return out


# ---- 3. saddles ---------------------------------------------------------------------------------

def saddle_grad(xy):
    """Gradient of ``f(x, y) = x^2/2 - y^2/2 + y^4/4`` for an ``(n, 2)`` batch of points."""
    x, y = xy[:, 0], xy[:, 1]
    return np.stack([x, -y + y ** 3], axis=1)


def _saddle(s):
    rng = np.random.default_rng(s["seed"] + 1)
    n, lr, noise = s["saddle_chains"], s["saddle_lr"], s["saddle_noise"]
    methods = {"sgd": 0.0, "usam": s["saddle_usam_rho"], "sam": s["saddle_sam_rho"]}
    still = {m: np.empty(s["saddle_steps"] + 1) for m in methods}
    pts = {m: np.tile([1.0, 0.0], (n, 1)) for m in methods}
    for m in methods:
        still[m][0] = 1.0
    for t in range(s["saddle_steps"]):
        z = noise * rng.standard_normal((n, 2))      # common random numbers across methods
        for m, rho in methods.items():
            p = pts[m]
            g = saddle_grad(p) + z
            if m == "usam":
                g = saddle_grad(p + rho * g) + z
            elif m == "sam":
                norm = np.linalg.norm(g, axis=1, keepdims=True)
                g = saddle_grad(p + rho * g / norm) + z
            pts[m] = p - lr * g
            still[m][t + 1] = np.mean(np.abs(pts[m][:, 1]) < s["saddle_escape"])
    return {"near_saddle": still, "final_distance": {m: float(np.median(np.linalg.norm(p, axis=1)))
                                                     for m, p in pts.items()}}


def run(**settings):
    """``weak``: step sizes, exact weak errors of the USAM SDE and of SGD's SDE, their log-log slope,
    and a Monte Carlo check of the exact discrete moments; ``drift``: the remainders ``||grad f(x +
    rho d) - grad f~(x)||`` for USAM and SAM over ``rho``; ``saddle``: per method the share of runs
    still near the saddle after each step."""
    s = with_defaults(__name__, DEFAULTS, settings)
    return {"settings": s, "weak": _weak_error(s), "drift": _drift(s), "saddle": _saddle(s)}


def plot(result, ax=None):
    """Weak error against the step size: the USAM SDE (slope 1) and SGD's SDE (no convergence)."""
    import matplotlib.pyplot as plt
    from .. import plot as rplot

    with rplot.style():
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        w = result["weak"]
        ax.loglog(w["lrs"], w["usam_sde_error"], "o-", color=rplot.COLORS[0],
                  label=f"USAM SDE (slope {w['slope']:.2f})")
        ax.loglog(w["lrs"], w["sgd_sde_error"], "s--", color=rplot.COLORS[1], label="SGD SDE")
        ax.set_xlabel("step size eta")
        ax.set_ylabel("|E f(x_k) - E f(X_{k eta})|")
        ax.set_title("weak error of SDE models of USAM")
        ax.legend()
    return ax
