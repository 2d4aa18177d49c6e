"""Variance Reduced Halpern Iteration for Finite-Sum Monotone Inclusions.

Xufeng Cai, Ahmet Alacaoglu, Jelena Diakonikolas. ICLR 2024. arXiv:2310.02987

Find ``u*`` with ``0 = F(u*)`` for a monotone operator given as a finite sum
``F = 1/n sum_i F_i`` -- e.g. the saddle-point operator ``F = (grad_x Phi,
-grad_y Phi)`` of a convex-concave ``Phi = 1/n sum_i Phi_i``. Halpern's
iteration anchors every step to the starting point ``u_0``,

    u_{k+1} = lambda_k u_0 + (1 - lambda_k) T(u_k),     lambda_k -> 0,

which, for a nonexpansive ``T``, makes the *last iterate's* residual
``||F(u_k)||`` decay like ``1/k`` (a computable stopping criterion). The paper
replaces the ``n`` component evaluations per step by variance reduction and
gets ``O~(n + sqrt(n) L / eps)`` component evaluations for ``||F(u)|| <= eps``,
against ``O(n L_F / eps)`` for the deterministic iteration.

**Algorithm 1 (F cocoercive on average)**: a single loop with the PAGE
estimator ``F~``,

    F~(u_k) = F(u_k)                                                   with probability p_k,
            = F~(u_{k-1}) + 1/b sum_{i in S_k} (F_i(u_k) - F_i(u_{k-1}))  otherwise,
    u_{k+1} = lambda_k u_0 + (1 - lambda_k) u_k - eta F~(u_k),

with (as in the authors' experiment scripts for Algorithm 1) ``lambda_k =
2/(k+4)``, ``b = floor(sqrt(n))`` distinct components per batch, ``p_0 = p_1 =
1`` and ``p_k = 4/(k+4)`` while ``k - 1 <= sqrt(n)``, ``4/(sqrt(n)+5)``
after: full evaluations become rarer until about one every ``sqrt(n)/4``
steps, which keeps the estimator's error ``O(1/k)`` at ``O(sqrt(n))`` cost per
step. ``eta = 1/L`` by default (``L`` the on-average cocoercivity constant,
``problem.avg_cocoercive``): in the form above ``u_k - eta/(1-lambda_k) F`` is
nonexpansive whenever ``eta <= 2 (1 - lambda_0)/L = 1/L``. The deterministic
baseline :func:`halpern` is the same iteration with ``F~ = F`` at every step.

**Algorithm 2 (F monotone and Lipschitz on average)**: an inexact Halpern
iteration on the resolvent ``J(u) = (I + eta F)^{-1}(u)`` (nonexpansive for any
monotone ``F``),

    u_{k+1} = lambda_k u_0 + (1 - lambda_k) J~(u_k),   lambda_k = 1/(k+2),

where ``J~(u_k)`` approximately solves the strongly monotone finite-sum
equation ``G(v) = eta F(v) + v - u_k = 0`` by ``M_k`` steps of VR-FoRB
(Alacaoglu and Malitsky, 2022: loopless-SVRG forward-reflected-backward),

    v_bar   = alpha v_j + (1 - alpha) w_j
    v_{j+1} = v_bar - gamma [ G(w_j) + G_i(v_j) - G_i(w_{j-1}) ],   i uniform
    w_{j+1} = v_{j+1} with probability p, else w_j        (then G(w_{j+1}) is recomputed)

with ``G_i(v) = eta F_i(v) + v - u_k``. Defaults from the authors' script:
``eta = sqrt(n)/L``, ``p = 1/n``, ``alpha = 1 - p``, ``M_k = ceil(0.05 n
log(k+2))``; the step ``gamma = sqrt(p(1-p)) / L_G`` with ``L_G = eta L + 1``
(the average Lipschitz constant of ``G``; the script uses 5 times this, tuned).

Choices and what is left out:

* Both are **drivers** taking a problem, not ``reference.optim`` optimizers:
  an operator method is not a minimiser of a loss, it needs component
  evaluations of ``F`` at several points per step and the full ``F`` at
  random steps. The problem must offer ``operator(params, batch=None)``
  (``reference.problems.monotone``: ``quadratic_game``, ``bilinear_game``);
  a problem without it raises ``TypeError`` naming ``problem.operator``.
* Unconstrained problems only (``G = 0`` in the paper's ``0 in F(u) + G(u)``):
  the projection/resolvent of a constraint set used in the paper's matrix-game
  experiment is not implemented.
* The PAGE schedule, ``lambda_k = 2/(k+4)`` and the update form of Algorithm 1
  come from the authors' experiment code (the paper's analysis allows other
  constants); the corpus note's ``lambda_k = 1/(k+2)`` form is Algorithm 2's.
* Component evaluations are counted as in the paper's plots: ``n`` for a full
  ``F``, ``2b`` for a PAGE correction (the batch at two points), ``2`` per
  VR-FoRB step. Residuals ``||F(u_k)||`` recorded for the history are
  measurements, not counted.
"""
from __future__ import annotations

import math

import numpy as np

from .. import catalog, tree

__all__ = ["page_probability", "halpern", "vr_halpern", "vr_forb_resolvent", "inexact_vr_halpern"]

catalog.register(title="Variance Reduced Halpern Iteration for Finite-Sum Monotone Inclusions",
                 name="vr_halpern", family="variance-reduction", kind="implementation", module=__name__,
                 authors="Cai, Alacaoglu, Diakonikolas", year=2024, arxiv="2310.02987")


def _check_problem(problem, where):
    if not callable(getattr(problem, "operator", None)):
        raise TypeError(f"{where}: the problem must offer problem.operator(params, batch=None), the "
                        f"monotone operator F (see reference.problems.monotone); "
                        f"{type(problem).__name__} has none")
    if problem.n_train is None:
        raise TypeError(f"{where}: the problem must be a finite sum (have examples)")


def _positive(name, value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{where}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def _default_step(problem, constant, where):
    """``1/L`` for the problem's cocoercivity constant ``L`` (an error if it is not cocoercive)."""
    L = getattr(problem, constant, None)
    if L is None or not math.isfinite(L):
        raise ValueError(f"{where}: the default step is 1/problem.{constant}, but this problem has "
                         f"{constant} = {L} (not cocoercive: use inexact_vr_halpern, or pass eta)")
    return 1.0 / L


def _history():
    return {"evals": [], "iteration": [], "residual": []}


def _record(hist, problem, u, k, evals):
    hist["evals"].append(evals)
    hist["iteration"].append(k)
    hist["residual"].append(problem.residual(u))


def _finish(hist, u):
    out = {k: np.asarray(v, dtype=np.float64) for k, v in hist.items()}
    out["params"] = u
    return out


def _anchor(u0, u, lam, eta, direction):
    """``lam u_0 + (1 - lam) u - eta d`` leaf by leaf."""
    return tree.zip_map(lambda a, b, d: lam * a + (1.0 - lam) * b - eta * d, u0, u, direction)


def page_probability(k, n):
    """The probability of a full evaluation at iteration ``k`` (0-based) in Algorithm 1."""
    if k <= 1:
        return 1.0
    if k - 1 <= math.sqrt(n):
        return 4.0 / (k + 4.0)
    return 4.0 / (math.sqrt(n) + 5.0)


def halpern(problem, max_evals, eta=None, seed=0, dtype="float64", params=None, record_every=1):
    """Deterministic Halpern iteration ``u_{k+1} = lambda_k u_0 + (1 - lambda_k) u_k - eta F(u_k)``.

    ``lambda_k = 2/(k+4)`` and ``eta = 1/problem.cocoercive`` by default (the
    baseline of Algorithm 1: the same iteration with exact ``F``, ``n``
    component evaluations per step). Stops when ``max_evals`` component
    evaluations are spent. Returns ``evals``, ``iteration``, ``residual``
    (``||F(u_k)||`` every ``record_every`` iterations) and ``params``.
    """
    _check_problem(problem, "halpern")
    n = problem.n_train
    eta = _default_step(problem, "cocoercive", "halpern") if eta is None else _positive("eta", eta, "halpern")
    u0 = problem.init(seed, dtype) if params is None else params
    u, k, evals, hist = u0, 0, 0, _history()
    _record(hist, problem, u, k, evals)
    while evals + n <= max_evals:
        F = problem.operator(u)
        evals += n
        u = _anchor(u0, u, 2.0 / (k + 4.0), eta, F)
        k += 1
        if k % record_every == 0:
            _record(hist, problem, u, k, evals)
    return _finish(hist, u)


def vr_halpern(problem, max_evals, eta=None, batch_size=None, seed=0, dtype="float64", params=None,
               record_every=1):
    """Algorithm 1: Halpern iteration with the PAGE estimator (``F`` cocoercive on average).

    ``eta = 1/problem.avg_cocoercive`` and ``batch_size = floor(sqrt(n))`` by
    default; coins and batches come from ``numpy.random.default_rng(seed)``.
    Returns the history like :func:`halpern` (plus ``full``: 1 where a full
    evaluation was drawn).
    """
    _check_problem(problem, "vr_halpern")
    n = problem.n_train
    eta = _default_step(problem, "avg_cocoercive", "vr_halpern") if eta is None else _positive("eta", eta, "vr_halpern")
    b = int(math.isqrt(n)) if batch_size is None else batch_size
    if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 1 <= b <= n:
        raise ValueError(f"vr_halpern: batch_size must be an int in [1, {n}], got {batch_size!r}")
    rng = np.random.default_rng(seed)
    u0 = problem.init(seed, dtype) if params is None else params
    u, u_prev, F_est = u0, None, None
    k, evals, hist, fulls = 0, 0, _history(), []
    _record(hist, problem, u, k, evals)
    while True:
        full = k <= 1 or rng.random() < page_probability(k, n)
        cost = n if full else 2 * b
        if evals + cost > max_evals:
            break
        if full:
            F_est = problem.operator(u)                                         # F~(u_k) = F(u_k)
        else:
            batch = problem.sample_batch(rng, b)
            diff = tree.sub(problem.operator(u, batch), problem.operator(u_prev, batch))
            F_est = tree.add(F_est, diff)                                       # PAGE correction
        evals += cost
        fulls.append(float(full))
        u_prev, u = u, _anchor(u0, u, 2.0 / (k + 4.0), eta, F_est)
        k += 1
        if k % record_every == 0:
            _record(hist, problem, u, k, evals)
    out = _finish(hist, u)
    out["full"] = np.asarray(fulls)
    return out


def vr_forb_resolvent(problem, u, eta, inner_steps, rng, p=None, gamma=None):
    """Approximate ``(I + eta F)^{-1}(u)`` by ``inner_steps`` VR-FoRB steps on ``G(v) = eta F(v) + v - u``.

    Starts at ``v = w = u``; ``p = 1/n`` (snapshot probability), ``alpha = 1 - p``,
    ``gamma = sqrt(p (1 - p)) / (eta L + 1)`` with ``L = problem.avg_lipschitz``
    by default. Returns ``(v, evals)``, ``evals`` the component evaluations used.
    """
    n = problem.n_train
    p = 1.0 / n if p is None else p
    if not 0.0 < p <= 1.0:
        raise ValueError(f"vr_forb_resolvent: p must be in (0, 1], got {p!r}")
    alpha = 1.0 - p
    if gamma is None:
        gamma = math.sqrt(p * (1.0 - p)) / (eta * problem.avg_lipschitz + 1.0) if p < 1.0 else \
            1.0 / (2.0 * (eta * problem.avg_lipschitz + 1.0))

    def G_full(w):                                                  # G(w) = eta F(w) + w - u
        return tree.zip_map(lambda f, a, b: eta * f + a - b, problem.operator(w), w, u)

    v, w, w_prev = u, u, u
    G_w, evals = G_full(w), n
    for _ in range(int(inner_steps)):
        batch = problem.sample_batch(rng, 1)
        # G_i(v_j) - G_i(w_{j-1}) = eta (F_i(v_j) - F_i(w_{j-1})) + v_j - w_{j-1}
        dF = tree.sub(problem.operator(v, batch), problem.operator(w_prev, batch))
        direction = tree.zip_map(lambda g, d, a, b: g + eta * d + a - b, G_w, dF, v, w_prev)
        v_bar = tree.zip_map(lambda a, b: alpha * a + (1.0 - alpha) * b, v, w)
        v = tree.axpy(-gamma, direction, v_bar)
        evals += 2
        w_prev = w
        if rng.random() < p:                                          # new snapshot
            w = v
            G_w = G_full(w)
            evals += n
    return v, evals


def inexact_vr_halpern(problem, max_evals, eta=None, inner_scale=0.05, p=None, gamma=None, seed=0,
                       dtype="float64", params=None):
    """Algorithm 2: inexact Halpern iteration on the resolvent, solved by VR-FoRB (``F`` monotone).

    ``eta = sqrt(n) / problem.avg_lipschitz`` and ``M_k = ceil(inner_scale n
    log(k + 2))`` inner steps by default. Returns the history like
    :func:`halpern` (one record per outer iteration).
    """
    _check_problem(problem, "inexact_vr_halpern")
    n = problem.n_train
    eta = math.sqrt(n) / problem.avg_lipschitz if eta is None else _positive("eta", eta, "inexact_vr_halpern")
    rng = np.random.default_rng(seed)
    u0 = problem.init(seed, dtype) if params is None else params
    u, k, evals, hist = u0, 0, 0, _history()
    _record(hist, problem, u, k, evals)
    while evals < max_evals:
        inner = math.ceil(inner_scale * n * math.log(k + 2))
        J, used = vr_forb_resolvent(problem, u, eta, inner, rng, p=p, gamma=gamma)
        evals += used
        lam = 1.0 / (k + 2.0)
        u = tree.zip_map(lambda a, b: lam * a + (1.0 - lam) * b, u0, J)   # u_{k+1} = lam u_0 + (1-lam) J~(u_k)
        k += 1
        _record(hist, problem, u, k, evals)
    return _finish(hist, u)
