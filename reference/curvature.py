"""Curvature tools: Hessian-vector products, spectra, traces, Gauss-Newton and Fisher, sharpness.

The tools the whole sharpness/curvature family uses (AdaHessian, SAM/ASAM,
edge-of-stability and "tiny subspace" demonstrations, Fisher merging ...).
Everything works on params dicts and on the first argument's Hessian:

* a **rich oracle** (anything with ``.hvp(params, v)``, e.g.
  ``problem.oracle(batch)``): its ``hvp`` is used, and its
  ``value_and_grad``/``loss`` (or its call) where a loss is needed;
* a **scalar function** ``f(params)`` written with ``reference.autograd``
  ops: the HVP is built with ``ag.hvp`` (forward-over-reverse);
* a **plain oracle** ``oracle(params) -> (loss, grads)`` serves the
  first-order tools (``worst_case_loss``, ``adaptive_sharpness``,
  ``m_sharpness``); a tool that needs Hessian-vector products raises a
  ``TypeError`` naming ``hvp``.

    from reference import curvature, problems
    p = problems.create("blobs", hidden=(8,))
    oracle, w = p.oracle(), p.init(0)
    vals, vecs = curvature.top_eigenvalues(oracle, w, k=3, method="lanczos")
    est, se = curvature.trace(oracle, w, n_samples=100, seed=0)
    rise, e = curvature.worst_case_loss(oracle, w, rho=0.05, adaptive=True)

Definitions (all in the flattened parameter vector, keys in the params'
order, the order of ``reference.tree.flatten``):

    H v                    Hessian-vector product of the loss L(w)
    top_eigenvalues        the k largest eigenvalues of H: algebraically
                           largest (which="LA", the sharpness) or largest in
                           magnitude (which="LM", what plain power iteration
                           finds, as in PyHessian)
    trace (Hutchinson)     tr H = E[z^T H z] for E[z z^T] = I (z Rademacher or
                           Gaussian); Var(z^T H z) = 2 sum_{i != j} H_ij^2
                           (Rademacher), 2 ||H||_F^2 (Gaussian)
    diagonal (Hutchinson)  diag H = E[z * (H z)]
    Gauss-Newton           G = J^T H_out J, J = d outputs / d w, H_out the
                           Hessian of the loss in the outputs (the Hessian
                           without the second-order terms of the model)
    empirical Fisher       F_emp = 1/N sum_i g_i g_i^T, g_i = grad of example
                           i's loss at its observed label
    true Fisher            F = 1/N sum_i E_{y ~ p(y | x_i, w)} [g_i(y) g_i(y)^T];
                           for softmax cross-entropy F = 1/N sum_i
                           J_i^T (diag p_i - p_i p_i^T) J_i, equal to the
                           Gauss-Newton matrix of the mean cross-entropy
    worst-case sharpness   max_{||T^{-1} e|| <= rho} L(w + e) - L(w), with T = I
                           (SAM, Foret et al. 2021) or T = diag(|w| + eta)
                           (adaptive sharpness, ASAM, Kwon et al. 2021,
                           arXiv:2102.11600)
    m-sharpness            the mean over disjoint batches of m examples of each
                           batch's worst-case increase (Foret et al. 2021;
                           Andriushchenko and Flammarion 2022)

Decisions written down here:

* **Power iteration** uses *projection* deflation: for the j-th eigenpair
  the iterate is kept orthogonal to the pairs already found, i.e. it runs
  on ``P H P`` with ``P`` the projector onto their complement (not
  Hotelling's ``H - lam v v^T``, whose zeroed directions would outrank
  negative eigenvalues). For ``which="LA"``, when the dominant eigenvalue
  found is negative the iteration is rerun on ``H - lam I``, which is then
  positive semidefinite on the remaining space, so its dominant eigenvalue
  is the algebraically largest one.
* **Lanczos** keeps the whole basis and reorthogonalises every new vector
  against it twice (classical Gram-Schmidt, twice is enough). A breakdown
  (``beta`` below ``sqrt(eps) * ||T||``) means the sequence has found an
  invariant subspace, which from a random start holds one vector of every
  eigenspace: its Ritz values are exact and are all the distinct
  eigenvalues, and the rest of the space holds only further copies of
  them. It then starts a new sequence from a random vector orthogonal to
  the basis (dropping that ``beta`` moves the eigenvalues by at most
  ``beta``), unless no copy could enter the top ``k``; so eigenvalues
  repeated in an exactly invariant way (a quadratic with a repeated
  eigenvalue) are found with their multiplicity. A single-vector Krylov
  method can still miss a copy while no breakdown has happened (a repeated
  top eigenvalue among many distinct ones); ``method="power"`` and
  ``spectrum`` do not.
* **Convergence**: a pair ``(theta, v)`` has converged when its residual
  ``||H v - theta v|| <= tol * |theta|`` (for Lanczos the residual is read
  off the tridiagonal matrix, ``beta_m |y_m|``). For a symmetric matrix the
  eigenvalue error is at most the residual and, for a simple eigenvalue,
  about ``residual^2 / gap``. Default ``tol``: 1e-6 in float64, 1e-3 in
  lower precision. A run that ends at ``iters`` without converging warns
  (``RuntimeWarning``) and returns its last estimate.
* **Host syncs**: trace, diagonal, Hessian, Gauss-Newton/Fisher products and
  the sharpness ascent run without a single device-to-host copy (the best
  perturbation is tracked with ``xp.where``, samples are drawn on the host
  with NumPy and copied to the device, so a seed gives the same probes on
  CPU and GPU). The scalar decisions that cannot be avoided sync one scalar
  each: power iteration's convergence check (once per iteration; pass
  ``tol=0`` to run exactly ``iters`` iterations without it) and its sign
  test for ``which="LA"`` (once per eigenvalue), and every Lanczos step
  (the tridiagonal matrix is diagonalised on the host to test convergence
  and breakdown).
* **Random numbers**: ``seed`` is an int or a ``numpy.random.Generator``;
  start vectors and probes are drawn in float64 and cast to the params'
  dtype.
* **Sharpness ascent** works in the scaled variable ``delta = T^{-1} e``,
  on the ball ``||delta|| <= rho``: from a random point of the ball (at a
  minimum the gradient is zero, so a start at ``e = 0`` would never move),
  ``steps`` steps of length ``lr * rho`` along the steepest-ascent direction
  of the norm (``g / ||g||_2`` for l2, ``sign(g)`` for linf, where
  ``g = T grad L(w + T delta)``), each followed by the projection back on
  the ball. The largest loss seen (including ``e = 0``) is returned, so the
  increase is never negative. ``T = |w| + eta`` is applied to *every*
  parameter, biases included: with ``eta = 0`` the measure is then exactly
  invariant to rescalings that leave the network's function unchanged
  (ReLU layer ``c`` / next layer ``1/c``), because the whole ascent is.
  The official code (SamsungLabs/ASAM) rescales only parameters named
  ``weight`` and uses ``eta = 0.01`` (our default).
* **Plain callables** are told apart by one call on the params: a tuple
  back means a plain oracle ``(loss, grads)``, anything else a scalar
  function. A rich oracle (with ``.hvp``) is never probed.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from . import autograd as ag
from . import tree
from .backend import xp_of

__all__ = ["hvp", "hessian", "spectrum", "top_eigenvalues", "max_eigenvalue", "trace", "diagonal",
           "gnvp", "fisher_vp", "worst_case_loss", "adaptive_sharpness", "m_sharpness"]


# ---- what the first argument offers -------------------------------------------

class _Objective:
    """Loss, gradient and HVP of a rich oracle, a plain oracle or a scalar function ``f(params)``."""

    def __init__(self, obj, where):
        if not callable(obj) and not callable(getattr(obj, "hvp", None)):
            raise TypeError(f"{where}: expected an oracle (a rich one, with .hvp(params, v), for Hessian "
                            f"products) or a scalar function f(params), got {type(obj).__name__}"
                            + ("; for a problem pass problem.oracle(batch)" if hasattr(obj, "oracle") else ""))
        self.obj, self.where = obj, where
        self.rich = callable(getattr(obj, "hvp", None))
        self._kind = None  # for a plain callable: "oracle" (returns (loss, grads)) or "function"

    def _plain_kind(self, params):
        if self._kind is None:
            out = self.obj(params)
            self._kind = "oracle" if isinstance(out, tuple) else "function"
        return self._kind

    def hvp(self, params, v):
        if self.rich:
            return self.obj.hvp(params, v)
        if self._plain_kind(params) == "oracle":
            hint = " (for a problem, pass problem.oracle(batch))" if hasattr(self.obj, "oracle") else ""
            raise TypeError(f"{self.where} needs Hessian-vector products, `hvp`: pass a rich oracle with "
                            f".hvp(params, v){hint} or a scalar function f(params); got a plain oracle "
                            f"{type(self.obj).__name__} that returns (loss, grads)")
        return ag.hvp(self.obj, params, v)

    def value_and_grad(self, params):
        if callable(getattr(self.obj, "value_and_grad", None)):
            return self.obj.value_and_grad(params)
        if self.rich or self._plain_kind(params) == "oracle":
            return self.obj(params)
        return ag.value_and_grad(self.obj)(params)

    def loss(self, params):
        if callable(getattr(self.obj, "loss", None)):
            out = self.obj.loss(params)
        elif self.rich or self._plain_kind(params) == "oracle":
            out = self.obj(params)[0]
        else:
            out = self.obj(params)
        return out.value if isinstance(out, ag.Tensor) else out


class _FlatHessian:
    """``H`` as a map on flat vectors (keys in the params' order), for the matrix-free methods."""

    def __init__(self, obj, params, where):
        if not isinstance(params, dict) or not params:
            raise TypeError(f"{where}: params must be a non-empty dict of arrays, got {type(params).__name__}")
        self.objective = obj if isinstance(obj, _Objective) else _Objective(obj, where)
        self.params = params
        self.flat, self.spec = tree.flatten(params)
        if self.flat.dtype.kind != "f":
            raise TypeError(f"{where}: params must be floating point, got dtype {self.flat.dtype}")
        self.xp, self.dtype, self.n = xp_of(self.flat), self.flat.dtype, int(self.flat.shape[0])

    def __call__(self, vector):
        hv = self.objective.hvp(self.params, tree.unflatten(vector, self.spec))
        return tree.flatten({k: hv[k] for k, _ in self.spec})[0]

    def to_tree(self, vector):
        return {k: v.copy() for k, v in tree.unflatten(vector, self.spec).items()}

    def draw(self, rng, shape, distribution="gaussian"):
        """Random numbers drawn on the host in float64, cast and moved to the params' device."""
        if distribution == "rademacher":
            z = rng.integers(0, 2, size=shape).astype(np.float64) * 2.0 - 1.0
        else:
            z = rng.standard_normal(shape)
        return self.xp.asarray(z.astype(self.dtype))


# ---- checks -------------------------------------------------------------------------

def _rng(seed, where):
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.default_rng(int(seed))
    raise TypeError(f"{where}: seed must be an int or a numpy.random.Generator, got {type(seed).__name__}")


def _positive_int(where, name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{where}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def _positive(where, name, value, strict=True):
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or (x <= 0 if strict else x < 0):
        raise ValueError(f"{where}: {name} must be {'> 0' if strict else '>= 0'} and finite, got {value!r}")
    return x


def _choice(where, name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{where}: {name} must be one of {list(allowed)}, got {value!r}")
    return value


def _default_tol(dtype):
    return 1e-6 if np.dtype(dtype) == np.float64 else 1e-3


# ---- Hessian-vector products and the dense Hessian -------------------------------------

def hvp(oracle_or_f, params, v):
    """``H(params) v`` as a dict like ``params``; ``v`` has the keys and shapes of ``params``.

    ``oracle_or_f``: a rich oracle (its ``.hvp`` is used) or a scalar function
    ``f(params)`` (forward-over-reverse through ``reference.autograd``).
    """
    tree.check_keys("curvature.hvp: v", params, v)
    return _Objective(oracle_or_f, "curvature.hvp").hvp(params, v)


def hessian(oracle_or_f, params, max_dim=4096):
    """The dense Hessian of the flattened params, an ``(n, n)`` array (one HVP per column).

    Rows and columns follow ``reference.tree.flatten(params)`` (the keys in
    the params' order, each leaf in C order). The result is symmetrised,
    ``(H + H^T) / 2``, which only removes rounding asymmetry. Meant for small
    models: more than ``max_dim`` parameters raise ``ValueError``.
    """
    op = _FlatHessian(oracle_or_f, params, "curvature.hessian")
    max_dim = _positive_int("curvature.hessian", "max_dim", max_dim)
    if op.n > max_dim:
        raise ValueError(f"curvature.hessian: params have {op.n} entries, more than max_dim={max_dim}; "
                         "use the matrix-free top_eigenvalues/trace instead, or raise max_dim")
    xp = op.xp
    cols = []
    for i in range(op.n):
        e = xp.zeros(op.n, dtype=op.dtype)
        e[i] = 1
        cols.append(op(e))
    H = xp.stack(cols, axis=1)
    return 0.5 * (H + H.T)


def spectrum(oracle_or_f, params, vectors=False, max_dim=4096):
    """Every eigenvalue of the dense Hessian, in increasing order (``xp.linalg.eigh``).

    With ``vectors=True`` returns ``(eigenvalues, V)``, column ``V[:, i]`` the
    unit eigenvector of eigenvalue ``i`` in the flattened layout (turn it into
    a params dict with ``tree.unflatten(V[:, i], tree.flatten(params)[1])``).
    """
    H = hessian(oracle_or_f, params, max_dim=max_dim)
    xp = xp_of(H)
    return xp.linalg.eigh(H) if vectors else xp.linalg.eigvalsh(H)


# ---- top eigenpairs: power iteration and Lanczos -------------------------------------

def top_eigenvalues(oracle, params, k=1, method="power", iters=None, tol=None, seed=0, which="LA"):
    """The ``k`` top eigenpairs of the Hessian, matrix-free (HVPs only).

    Returns ``(eigenvalues, eigenvectors)``: a 1-D array of length ``k`` (in
    the params' dtype and device) sorted from the top down, and a list of
    ``k`` unit-norm params dicts. ``which="LA"`` (default) ranks by value
    (the largest eigenvalues, the sharpness), ``"LM"`` by magnitude.

    ``method="power"``: power iteration with projection deflation, at most
    ``iters`` iterations per eigenpair (default 1000). ``method="lanczos"``:
    Lanczos with full reorthogonalisation, a Krylov space of at most
    ``iters`` dimensions (default ``min(n, 200)``). Both stop once the
    residuals are below ``tol`` relative to the eigenvalues (see the module
    docstring); ``seed`` fixes the start vectors.
    """
    where = "curvature.top_eigenvalues"
    op = _FlatHessian(oracle, params, where)
    k = _positive_int(where, "k", k)
    if k > op.n:
        raise ValueError(f"{where}: k={k} is larger than the dimension of the params ({op.n})")
    _choice(where, "method", method, ("power", "lanczos"))
    _choice(where, "which", which, ("LA", "LM"))
    tol = _default_tol(op.dtype) if tol is None else _positive(where, "tol", tol, strict=False)
    rng = _rng(seed, where)
    if method == "power":
        iters = 1000 if iters is None else _positive_int(where, "iters", iters)
        vals, vecs = _power(op, k, iters, tol, rng, which)
    else:
        iters = min(op.n, 200) if iters is None else _positive_int(where, "iters", iters)
        vals, vecs = _lanczos(op, k, min(iters, op.n), tol, rng, which)
    return vals, [op.to_tree(v) for v in vecs]


def max_eigenvalue(oracle, params, method="power", iters=None, tol=None, seed=0):
    """The largest Hessian eigenvalue ``lambda_max`` (a 0-d array): ``top_eigenvalues`` with ``k=1``.

    The sharpness of the edge-of-stability literature (GD is stable while
    ``lambda_max < 2 / lr``). For the eigenvector, call ``top_eigenvalues``.
    """
    vals, _ = top_eigenvalues(oracle, params, k=1, method=method, iters=iters, tol=tol, seed=seed)
    return vals[0]


def _power(op, k, iters, tol, rng, which):
    xp = op.xp
    found_vals, found = [], xp.zeros((0, op.n), dtype=op.dtype)
    shift = 0.0

    def project(w):  # P w: remove the directions already found
        return w - found.T @ (found @ w) if found.shape[0] else w

    for j in range(k):
        while True:
            v = project(op.draw(rng, op.n))
            v = v / xp.linalg.norm(v)
            hv = project(op(v)) - shift * v          # (P (H - shift I) P) v
            lam = xp.vdot(v, hv)
            converged = False
            for _ in range(iters):
                if tol > 0:  # one scalar sync per iteration: the residual test
                    res = float(xp.linalg.norm(hv - lam * v))
                    if res <= tol * abs(float(lam)):
                        converged = True
                        break
                v = hv / xp.linalg.norm(hv)
                v = project(v)
                v = v / xp.linalg.norm(v)
                hv = project(op(v)) - shift * v
                lam = xp.vdot(v, hv)
            # "LA" wants the largest value: a negative dominant eigenvalue means the
            # most negative one was found; shift by it and search again (sync: the sign)
            if which == "LA" and float(lam) < 0:
                shift += float(lam)
                continue
            break
        if tol > 0 and not converged:
            warnings.warn(f"curvature.top_eigenvalues: power iteration for eigenvalue {j} did not reach "
                          f"tol={tol:g} in {iters} iterations", RuntimeWarning, stacklevel=3)
        found_vals.append(lam + shift)
        found = xp.concatenate([found, v[None, :]], axis=0)
    vals = xp.stack([xp.asarray(x, dtype=op.dtype) for x in found_vals])
    order = _order(vals, which, xp)
    return vals[order], [found[i] for i in (int(o) for o in order)]


def _order(vals, which, xp):
    """Indices sorting ``vals`` from the top down (by value for "LA", by magnitude for "LM")."""
    key = vals if which == "LA" else xp.abs(vals)
    return xp.argsort(-key, kind="stable") if xp is np else xp.argsort(-key)


def _lanczos(op, k, m, tol, rng, which):
    xp = op.xp
    V = xp.zeros((m, op.n), dtype=op.dtype)
    alphas, betas = [], []  # host floats: T = tridiag(betas, alphas, betas)
    scale, block = 0.0, 0   # block: where the current Krylov sequence started
    v = op.draw(rng, op.n)
    V[0] = v / xp.linalg.norm(v)
    key = (lambda x: x) if which == "LA" else np.abs
    converged = False
    for j in range(m):
        w = op(V[j])
        alpha = xp.vdot(V[j], w)
        w = w - alpha * V[j]
        if j > block:
            w = w - betas[-1] * V[j - 1]
        for _ in range(2):  # full reorthogonalisation, classical Gram-Schmidt twice
            w = w - V[:j + 1].T @ (V[:j + 1] @ w)
        beta = float(xp.linalg.norm(w))  # the one sync per step
        alphas.append(float(alpha))
        scale = max(scale, abs(alphas[-1]), beta)
        T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        theta, Y = np.linalg.eigh(T)
        top = _order(theta, which, np)[:k]
        breakdown = beta <= math.sqrt(np.finfo(op.dtype).eps) * scale
        if j + 1 >= k:
            if not breakdown:
                residual = beta * np.abs(Y[-1, top])
                converged = bool(np.all(residual <= tol * np.abs(theta[top])))
            else:
                # The sequence found an invariant subspace: its Ritz values are exact and are
                # every distinct eigenvalue of the space it started in, so what is left holds
                # only copies of them. Done unless a copy could enter the top k.
                kth = key(theta[top[-1]])
                block_vals = np.linalg.eigvalsh(T[block:, block:])
                converged = bool(np.all(key(block_vals) < kth - tol * abs(kth)))
            if converged:
                break
        if j + 1 == m:
            break
        if breakdown:  # go on with a random vector in the complement, a new sequence
            w = op.draw(rng, op.n)
            for _ in range(2):
                w = w - V[:j + 1].T @ (V[:j + 1] @ w)
            betas.append(0.0)
            block = j + 1
            V[j + 1] = w / xp.linalg.norm(w)
        else:
            betas.append(beta)
            V[j + 1] = w / beta
    if tol > 0 and not converged and m < op.n:
        warnings.warn(f"curvature.top_eigenvalues: Lanczos did not reach tol={tol:g} in {m} steps",
                      RuntimeWarning, stacklevel=3)
    ritz = xp.asarray(Y[:, top].astype(op.dtype)).T @ V[:len(alphas)]  # row i: Ritz vector i
    return xp.asarray(theta[top].astype(op.dtype)), [ritz[i] for i in range(k)]


# ---- Hutchinson estimators ---------------------------------------------------------------

def trace(oracle, params, n_samples=100, seed=0, distribution="rademacher"):
    """Hutchinson's estimate of ``tr H`` and its standard error, as two 0-d arrays.

    ``tr H = E[z^T H z]`` for probes with ``E[z z^T] = I``: Rademacher
    (``+-1``, the smallest variance, ``2 sum_{i != j} H_ij^2``) or Gaussian
    (``2 ||H||_F^2``). The estimate is the mean of ``n_samples`` values
    ``z^T H z``; the standard error is their sample standard deviation
    (``ddof=1``) over ``sqrt(n_samples)`` (0 when ``n_samples == 1``).
    """
    where = "curvature.trace"
    op = _FlatHessian(oracle, params, where)
    n_samples = _positive_int(where, "n_samples", n_samples)
    _choice(where, "distribution", distribution, ("rademacher", "gaussian"))
    rng = _rng(seed, where)
    xp = op.xp
    samples = []
    for _ in range(n_samples):
        z = op.draw(rng, op.n, distribution)
        samples.append(xp.vdot(z, op(z)))  # z^T H z, a 0-d device array
    s = xp.stack(samples)
    mean = xp.mean(s)
    se = xp.std(s, ddof=1) / math.sqrt(n_samples) if n_samples > 1 else xp.zeros((), dtype=op.dtype)
    return mean, se


def diagonal(oracle, params, n_samples=100, seed=0, distribution="rademacher"):
    """Hutchinson's estimate of the Hessian's diagonal, a dict like ``params``.

    ``diag H = E[z * (H z)]`` (elementwise) for probes with ``E[z z^T] = I``:
    the mean of ``n_samples`` products. With Rademacher probes entry ``i``
    has variance ``sum_{j != i} H_ij^2 / n_samples`` (exact at once for a
    diagonal ``H``); with Gaussian ones ``(sum_j H_ij^2 + H_ii^2) / n_samples``.
    This is the estimator of AdaHessian and OASIS.
    """
    where = "curvature.diagonal"
    op = _FlatHessian(oracle, params, where)
    n_samples = _positive_int(where, "n_samples", n_samples)
    _choice(where, "distribution", distribution, ("rademacher", "gaussian"))
    rng = _rng(seed, where)
    total = op.xp.zeros(op.n, dtype=op.dtype)
    for _ in range(n_samples):
        z = op.draw(rng, op.n, distribution)
        total = total + z * op(z)
    return op.to_tree(total / n_samples)


# ---- Gauss-Newton and Fisher products ------------------------------------------------------

def _check_tangent(where, params, v):
    tree.check_keys(f"{where}: v", params, v)


def _scalar_loss(loss_on_outputs, y, where):
    def loss(out):
        val = loss_on_outputs(out, y)
        shape = tuple(getattr(val, "shape", ()))
        if len(shape) == 1:
            return ag.mean(val)  # per-example losses: the loss is their mean
        if shape not in ((), (1,)):
            raise ValueError(f"{where}: loss_on_outputs must return a scalar or one loss per example, "
                             f"got shape {shape}")
        return val
    return loss


def gnvp(apply, loss_on_outputs, params, x, y, v):
    """Gauss-Newton-vector product ``G v = J^T H_out J v`` as a dict like ``params``.

    ``apply(params, x)`` gives the outputs ``z`` (e.g. logits, ``(N, C)``);
    ``loss_on_outputs(z, y)`` gives the loss, a scalar or a vector of
    per-example losses whose mean is the loss. ``J = dz/dparams`` and
    ``H_out = d^2 loss / dz^2``: ``J v`` by forward mode, ``H_out (J v)`` by
    an HVP in the outputs, ``J^T (.)`` by reverse mode. ``G`` is positive
    semidefinite whenever the loss is convex in the outputs (squared error,
    cross-entropy); it equals the Hessian when the model is linear in the
    params. Terms of the loss on the params alone (weight decay) are not
    part of it: add ``lam * v`` yourself.
    """
    where = "curvature.gnvp"
    _check_tangent(where, params, v)
    model = lambda p: apply(p, x)  # noqa: E731
    out, Jv = ag.jvp(model, (params,), (v,))
    HJv = ag.hvp(_scalar_loss(loss_on_outputs, y, where), out, Jv)
    _, vjp_fn = ag.vjp(model, (params,))
    return vjp_fn(HJv)[0]


def fisher_vp(apply, loss_on_outputs, params, x, y, v, kind="empirical", rng=None, n_samples=1):
    """Fisher-vector product ``F v`` as a dict like ``params``.

    ``loss_on_outputs(z, labels)`` must return one loss per example (shape
    ``(N,)``); the loss of example ``i`` depends on output row ``i`` only.
    With ``g_i(y)`` the gradient of example ``i``'s loss at label ``y``:

    * ``kind="empirical"``: ``F v = 1/N sum_i g_i(y_i) (g_i(y_i)^T v)`` at the
      observed labels ``y`` (any loss);
    * ``kind="true"``: ``F v = 1/N sum_i E_{y ~ softmax(z_i)} g_i(y) (g_i(y)^T v)``,
      the labels drawn from the model's predictive distribution, a
      categorical over the softmax of the outputs (``z`` is ``(N, C)``
      logits): ``n_samples`` draws per example with ``rng`` (a seed or a
      ``numpy.random.Generator``, required), averaged. ``loss_on_outputs``
      must then be the cross-entropy (the negative log-likelihood of that
      distribution). Its expectation is ``1/N sum_i J_i^T (diag p_i - p_i p_i^T) J_i``.

    Computed without per-example gradients: ``g_i(y)^T v = grad_z loss_i . (J_i v)``,
    so one JVP gives ``J v``, the loss gradients in the outputs weight it,
    and one VJP maps the result back.
    """
    where = "curvature.fisher_vp"
    _check_tangent(where, params, v)
    _choice(where, "kind", kind, ("empirical", "true"))
    model = lambda p: apply(p, x)  # noqa: E731
    out, Jv = ag.jvp(model, (params,), (v,))
    xp = xp_of(out)
    N = int(out.shape[0])
    if kind == "empirical":
        S, z, u, labels = 1, out, Jv, y
    else:
        if rng is None:
            raise ValueError(f"{where}: kind='true' samples labels from the model: pass rng (an int seed "
                             "or a numpy.random.Generator)")
        rng = _rng(rng, where)
        S = _positive_int(where, "n_samples", n_samples)
        if out.ndim != 2:
            raise ValueError(f"{where}: kind='true' needs (N, C) logits from apply, got shape {tuple(out.shape)}")
        p = xp.exp(out - out.max(axis=1, keepdims=True))
        p = p / p.sum(axis=1, keepdims=True)
        cdf = xp.cumsum(p, axis=1)
        # inverse-CDF sampling on the device from uniforms drawn on the host: no sync
        U = xp.asarray(rng.random((S, N)).astype(out.dtype))
        labels = (cdf[None, :, :] < U[:, :, None]).sum(axis=2)
        labels = xp.minimum(labels, out.shape[1] - 1).reshape(S * N)
        z = xp.broadcast_to(out, (S,) + out.shape).reshape((S * N,) + out.shape[1:])
        u = xp.broadcast_to(Jv, (S,) + Jv.shape).reshape((S * N,) + Jv.shape[1:])

    def summed(o):
        losses = loss_on_outputs(o, labels)
        shape = tuple(getattr(losses, "shape", ()))
        if shape != (o.shape[0],):
            raise ValueError(f"{where}: loss_on_outputs must return one loss per example, shape "
                             f"({o.shape[0]},), got {shape}")
        return ag.sum(losses)

    G = ag.grad(summed)(z)                                   # row i: grad_z of example i's loss
    axes = tuple(range(1, G.ndim))
    r = (G * u).sum(axis=axes) if axes else G * u            # g_i^T v, one number per row
    c = (r.reshape((-1,) + (1,) * len(axes)) * G) / (N * S)
    c = c.reshape((S,) + out.shape).sum(axis=0)              # back to one row per example
    _, vjp_fn = ag.vjp(model, (params,))
    return vjp_fn(c)[0]


# ---- sharpness ---------------------------------------------------------------------------

def worst_case_loss(oracle, params, rho, steps=20, lr=1.0, norm="l2", adaptive=False, eta=0.01, seed=0):
    """``max_{||T^{-1} e|| <= rho} L(w + e) - L(w)`` by projected gradient ascent; returns ``(increase, e)``.

    ``T = I`` (plain sharpness, SAM's ball) or, with ``adaptive=True``,
    ``T = diag(|w| + eta)`` (ASAM's adaptive sharpness). ``norm`` is
    ``"l2"`` or ``"linf"``. ``steps`` ascent steps of length ``lr * rho`` in
    ``delta = T^{-1} e`` from a seeded random start (see the module
    docstring). Returns the largest increase seen (a 0-d array, >= 0) and its
    perturbation ``e`` (a dict like ``params``). ``oracle``: any oracle
    (plain or rich) or scalar function of the params.
    """
    where = "curvature.worst_case_loss"
    if not isinstance(params, dict) or not params:
        raise TypeError(f"{where}: params must be a non-empty dict of arrays, got {type(params).__name__}")
    rho = _positive(where, "rho", rho)
    steps = _positive_int(where, "steps", steps)
    lr = _positive(where, "lr", lr)
    _choice(where, "norm", norm, ("l2", "linf"))
    eta = _positive(where, "eta", eta, strict=False)
    rng = _rng(seed, where)
    obj = oracle if isinstance(oracle, _Objective) else _Objective(oracle, where)
    xp = xp_of(params)
    T = {k: xp.abs(w) + eta for k, w in params.items()} if adaptive else None
    tiny = np.finfo(next(iter(params.values())).dtype).tiny

    def perturb(delta):  # e = T delta
        return delta if T is None else tree.zip_map(lambda t, d: t * d, T, delta)

    def project(delta):
        if norm == "l2":
            nrm = tree.global_norm(delta)
            return tree.scale(xp.minimum(1.0, rho / xp.maximum(nrm, tiny)), delta)
        return tree.map(lambda d: xp.clip(d, -rho, rho), delta)

    def direction(g):
        if norm == "l2":
            nrm = tree.global_norm(g)
            return tree.scale(xp.where(nrm > 0, 1.0 / xp.where(nrm > 0, nrm, 1.0), 0.0), g)
        return tree.map(xp.sign, g)

    base = xp.asarray(obj.loss(params))
    # the random start: a point of the sphere (l2) or the box (linf), from the host generator
    start = {k: np.asarray(rng.standard_normal(w.shape) if norm == "l2" else rng.uniform(-1.0, 1.0, w.shape))
             for k, w in params.items()}
    if norm == "l2":
        s = math.sqrt(sum(float(np.sum(a * a)) for a in start.values())) or 1.0
        start = {k: a / s for k, a in start.items()}
    delta = {k: xp.asarray((rho * a).astype(params[k].dtype)) for k, a in start.items()}
    best_val, best = base, tree.zeros_like(params)
    for t in range(steps + 1):
        e = perturb(delta)
        w_e = tree.add(params, e)
        if t < steps:
            val, g = obj.value_and_grad(w_e)
        else:
            val = obj.loss(w_e)
        val = xp.asarray(val)
        better = val > best_val                      # kept on the device: no sync
        best_val = xp.where(better, val, best_val)
        best = tree.zip_map(lambda b, x: xp.where(better, x, b), best, e)
        if t < steps:
            g_delta = perturb(g)                      # d/d delta L(w + T delta) = T grad L
            delta = project(tree.axpy(lr * rho, direction(g_delta), delta))
    return best_val - base, best


def adaptive_sharpness(oracle, params, rho, norm="l2", eta=0.01, steps=20, lr=1.0, seed=0):
    """ASAM's adaptive sharpness ``max_{||T^{-1} e|| <= rho} L(w + e) - L(w)``, ``T = |w| + eta`` (0-d array).

    Kwon, Kim, Park, Choi. "ASAM: Adaptive Sharpness-Aware Minimization for
    Scale-Invariant Learning of Deep Neural Networks", ICML 2021,
    arXiv:2102.11600. ``worst_case_loss(..., adaptive=True)``'s increase.
    """
    return worst_case_loss(oracle, params, rho, steps=steps, lr=lr, norm=norm, adaptive=True, eta=eta,
                           seed=seed)[0]


def m_sharpness(problem_or_oracles, params, rho, m=None, n_batches=None, seed=0, steps=20, lr=1.0,
                norm="l2", adaptive=False, eta=0.01):
    """m-sharpness: the mean over batches of ``m`` examples of each batch's worst-case increase.

    ``problem_or_oracles`` is a problem (``reference.problems``): its
    training set is shuffled with ``seed`` and cut into ``n // m`` disjoint
    batches of ``m`` examples (the first ``n_batches`` of them if given),
    or a sequence of oracles, one per batch (``m`` is then unused). Each
    batch's ``worst_case_loss`` uses the other settings (and ``seed``).
    Returns a 0-d array. Foret et al. (2021) found smaller ``m`` to
    correlate better with generalisation.
    """
    where = "curvature.m_sharpness"
    rho = _positive(where, "rho", rho)
    if isinstance(problem_or_oracles, (list, tuple)):
        oracles = list(problem_or_oracles)
        if not oracles:
            raise ValueError(f"{where}: the sequence of oracles is empty")
    else:
        problem = problem_or_oracles
        if getattr(problem, "data", None) is None or not callable(getattr(problem, "oracle", None)):
            raise TypeError(f"{where}: pass a problem with training examples or a list of per-batch oracles, "
                            f"got {type(problem).__name__}")
        n = problem.n_train
        m = _positive_int(where, "m", n if m is None else m)
        if m > n:
            raise ValueError(f"{where}: m={m} is larger than the training set ({n} examples)")
        idx = _rng(seed, where).permutation(n)
        count = n // m if n_batches is None else min(_positive_int(where, "n_batches", n_batches), n // m)
        oracles = [problem.oracle({k: a[idx[b * m:(b + 1) * m]] for k, a in problem.data.items()})
                   for b in range(count)]
    rises = [worst_case_loss(o, params, rho, steps=steps, lr=lr, norm=norm, adaptive=adaptive, eta=eta,
                             seed=seed)[0] for o in oracles]
    xp = xp_of(params)
    return xp.mean(xp.stack([xp.asarray(r) for r in rises]))
