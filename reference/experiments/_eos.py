"""Edge of stability: full-batch training of small models with the sharpness tracked.

The machinery behind the sharpness demonstrations (``sam_edge_of_stability_demo``,
``quadratic_model_progressive_sharpening_demo``, ``gfs_sharpness_monotone_demo``, ...), and the
phenomenon they all start from:

    Jeremy M. Cohen, Simran Kaur, Yuanzhi Li, J. Zico Kolter, Ameet Talwalkar. "Gradient Descent
    on Neural Networks Typically Occurs at the Edge of Stability". ICLR 2021. arXiv:2103.00065

On a quadratic with Hessian eigenvalue ``lambda``, gradient descent with step ``eta`` multiplies the
error along that eigenvector by ``1 - eta lambda`` each step: it converges iff ``lambda < 2 / eta``.
Cohen et al. found that full-batch GD on neural networks does not respect this picture the way one
would expect. Two phases, measured by the **sharpness** ``lambda_max(H)``, the largest eigenvalue of
the training loss's Hessian:

1. **progressive sharpening**: while ``lambda_max < 2 / eta`` the sharpness grows (most
   markedly with the squared loss);
2. **edge of stability (EoS)**: once it reaches ``2 / eta`` it stops growing and hovers at (or
   just above) ``2 / eta``; GD is then unstable along the top eigenvector, the loss goes up and
   down from step to step (non-monotone), yet it keeps decreasing over longer horizons.

This module holds

* :class:`MLPTask`: a tanh MLP fit with the squared loss ``L = 1/(2N) sum_i (f(x_i) - y_i)^2``
  to a small data set, by default the two-spirals points of ``reference.problems`` with
  targets ``+-1`` (Cohen et al. used tanh networks and the squared loss on a CIFAR-10 subset;
  this is the same recipe in miniature). ``out_scale`` shrinks the last layer at
  initialisation so that the initial sharpness sits well below the thresholds studied
  (``0.5``: about ``2``, against ``2 / eta = 10`` for the default ``eta = 0.2``), leaving room for
  progressive sharpening;
* :func:`sharpness`: ``lambda_max`` by Lanczos (``reference.curvature.max_eigenvalue``);
* :func:`gd`: plain full-batch gradient descent (``reference.optim``'s ``sgd`` without momentum);
* :func:`train`: full-batch training with any ``reference.optim`` optimizer (plain GD is
  ``optim.create("sgd", lr=eta)``, SAM is ``optim.create("sam", inner=<GD>, rho=rho)``), the loss
  and gradient norm recorded at every step and the sharpness every ``every`` steps, stopping early
  on divergence;
* :class:`UnnormalizedSAMOracle`: the oracle ``w -> grad L(w + rho grad L(w))``; GD on it is
  *unnormalised* SAM (USAM), the variant most of the theory analyses (it has no optimizer module);
* :func:`eos_summary`: the numbers the claims rest on (initial and peak sharpness, the step at
  which a threshold is first reached, the median sharpness after it, the share of steps on which
  the loss went up);
* :class:`QuadraticRegressionModel`: the second-order regression model of Agarwala, Pedregosa and
  Pennington (ICML 2023, arXiv:2210.04860): residuals quadratic in the parameters, ``z(theta) = z_0 + G theta +
  1/2 theta^T Q theta``, with its NTK and its exact Hessian (pure NumPy, thousands of steps a
  second).

Sharpness measurement: Lanczos with relative residual tolerance ``1e-3`` and at most 40 Hessian-
vector products; the eigenvalue error is then far below the effects measured (the plateaus are
asserted to 10-20 %).
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import autograd as ag
from .. import curvature, nn, optim, problems, tree

__all__ = ["MLPTask", "sharpness", "gd", "train", "UnnormalizedSAMOracle", "eos_summary", "usam_threshold",
           "QuadraticRegressionModel"]


# ---- the task ------------------------------------------------------------------------------

class MLPTask:
    """A tanh MLP fit by the squared loss ``L(w) = 1/(2N) sum_i (f_w(x_i) - y_i)^2``.

    ``data="spirals"``: the ``n_train`` noiseless two-spirals points of
    ``reference.problems.create("two_spirals", seed=data_seed)`` with targets ``2 y - 1 = +-1``;
    ``data="sine"``: ``x ~ U(-2, 2)``, ``y = sin(3 x)``. ``hidden`` are the hidden widths.
    ``init(seed)``: the network's Glorot initialisation with the last layer's weights multiplied
    by ``out_scale``.

    Offers ``loss_fn(params)`` (an autograd scalar, for ``reference.curvature``),
    ``oracle(params) -> (loss, grads)`` and ``loss(params)`` (a float).
    """

    def __init__(self, data="spirals", n_train=64, hidden=(16, 16), out_scale=0.5, data_seed=0):
        if data == "spirals":
            sp = problems.create("two_spirals", n_train=n_train, noise=0.0, seed=data_seed)
            x, y = sp.data["x"], (2.0 * sp.data["y"] - 1.0)[:, None]
        elif data == "sine":
            rng = np.random.default_rng(data_seed)
            x = rng.uniform(-2.0, 2.0, (n_train, 1))
            y = np.sin(3.0 * x)
        else:
            raise ValueError(f"MLPTask: data must be 'spirals' or 'sine', got {data!r}")
        self.x, self.y = x, y
        self.hidden, self.out_scale = tuple(hidden), float(out_scale)
        self.sizes = [x.shape[1], *self.hidden, 1]
        self._init, self.apply = nn.mlp(self.sizes, activation="tanh")
        self._vg = ag.value_and_grad(self.loss_fn)

    def init(self, seed):
        params = self._init(seed)
        last = f"{len(self.sizes) - 2}.weight"
        params[last] = params[last] * self.out_scale
        return params

    def loss_fn(self, params):
        """``1/(2N) sum_i (f(x_i) - y_i)^2`` as an autograd scalar."""
        r = self.apply(params, self.x) - self.y
        return 0.5 * ag.mean(r * r)

    def oracle(self, params):
        loss, grads = self._vg(params)
        return float(loss), grads

    __call__ = oracle

    def loss(self, params):
        out = self.loss_fn(params)
        return float(out.value if isinstance(out, ag.Tensor) else out)


def sharpness(loss_fn, params, seed=0):
    """``lambda_max`` of the Hessian of ``loss_fn`` at ``params`` (Lanczos, rel. tol. 1e-3), a float."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # a rare unconverged estimate is still close
        return float(curvature.max_eigenvalue(loss_fn, params, method="lanczos", tol=1e-3, iters=40, seed=seed))


class UnnormalizedSAMOracle:
    """``w -> (L(w + rho g), grad L(w + rho g))`` with ``g = grad L(w)``: GD on it is USAM,

        w_{t+1} = w_t - eta grad L(w_t + rho grad L(w_t))

    (SAM without the normalisation of the ascent step; Andriushchenko and Flammarion 2022,
    Agarwala and Dauphin 2023). On a quadratic with Hessian eigenvalue ``lambda`` the step
    multiplies the error by ``1 - eta lambda (1 + rho lambda)``.
    """

    def __init__(self, oracle, rho):
        self.oracle, self.rho = oracle, float(rho)

    def __call__(self, params):
        _, g = self.oracle(params)                                   # g = grad L(w)
        return self.oracle(tree.axpy(self.rho, g, params))          # grad L(w + rho g)


class _Recorder:
    """Wraps an oracle; remembers the loss and gradient norm of the first call of each step
    (for GD, SAM and USAM that call is at the current iterate ``w_t``)."""

    def __init__(self, oracle):
        self.oracle, self.first = oracle, None

    def __call__(self, params):
        loss, grads = self.oracle(params)
        if self.first is None:
            self.first = (float(loss), float(tree.global_norm(grads)))
        return loss, grads


def train(task, opt, params, steps, every=10, oracle=None, sharpness_seed=0):
    """Full-batch training of ``task`` with the optimizer ``opt`` from ``params``.

    ``oracle`` (default: ``task`` itself) is what ``opt`` steps on; its first call each step
    must be at the current iterate (true for GD, SAM and :class:`UnnormalizedSAMOracle`).
    Returns a dict: ``loss`` and ``grad_norm`` (``(steps + 1,)``, at ``w_0 .. w_steps``;
    ``nan`` after a divergence), ``sharp_steps`` and ``sharpness`` (every ``every`` steps, at
    ``w_0``, ``w_every``, ...), ``params`` (the last iterate) and ``diverged``.
    """
    oracle = task if oracle is None else oracle
    state = opt.init(params)
    loss = np.full(steps + 1, np.nan)
    gnorm = np.full(steps + 1, np.nan)
    sharp_steps, sharp = [], []
    diverged = False
    rec = _Recorder(oracle)
    for t in range(steps + 1):
        if t % every == 0:
            sharp_steps.append(t)
            sharp.append(sharpness(task.loss_fn, params, seed=sharpness_seed + t))
        rec.first = None
        if t == steps:
            last_loss, last_grads = task.oracle(params)
            loss[t], gnorm[t] = last_loss, float(tree.global_norm(last_grads))
            break
        try:
            new_params, state = opt.step(params, state, rec)
        except FloatingPointError:
            diverged = True
            break
        loss[t], gnorm[t] = rec.first
        if not np.isfinite(loss[t]) or loss[t] > 1e6:
            diverged = True
            break
        params = new_params
    return {"loss": loss, "grad_norm": gnorm, "sharp_steps": np.array(sharp_steps),
            "sharpness": np.array(sharp), "params": params, "diverged": diverged}


def usam_threshold(lr, rho):
    """The sharpness at which USAM's step along the top eigenvector flips sign and grows:
    the root of ``lr lambda (1 + rho lambda) = 2``, ``(sqrt(1 + 8 rho / lr) - 1) / (2 rho)``
    (``2 / lr`` at ``rho = 0``)."""
    lr, rho = float(lr), float(rho)
    if rho == 0.0:
        return 2.0 / lr
    return (np.sqrt(1.0 + 8.0 * rho / lr) - 1.0) / (2.0 * rho)


def eos_summary(result, threshold, reach=0.95):
    """The numbers of an edge-of-stability run against a sharpness ``threshold`` (``2 / eta`` for GD).

    * ``initial_ratio``: ``sharpness(w_0) / threshold``;
    * ``reach_step``: the first measured step with ``sharpness >= reach * threshold``
      (``None`` if never);
    * ``plateau_median`` and ``plateau_q10``/``plateau_q90``: quantiles of ``sharpness /
      threshold`` from ``reach_step`` on (nan if never reached);
    * ``peak_ratio``: the largest ``sharpness / threshold``;
    * ``increase_before``/``increase_after``: the share of steps ``t`` before / after
      ``reach_step`` with ``loss[t + 1] > loss[t]`` (non-monotone loss);
    * ``loss_at_reach``, ``final_loss``, ``initial_loss``.
    """
    s = np.asarray(result["sharpness"]) / float(threshold)
    steps = np.asarray(result["sharp_steps"])
    loss = np.asarray(result["loss"])
    loss = loss[np.isfinite(loss)]
    hit = np.nonzero(s >= reach)[0]
    out = {"initial_ratio": float(s[0]), "peak_ratio": float(np.max(s)), "initial_loss": float(loss[0]),
           "final_loss": float(loss[-1]), "reach_step": None, "plateau_median": float("nan"),
           "plateau_q10": float("nan"), "plateau_q90": float("nan"), "loss_at_reach": float("nan"),
           "increase_before": float("nan"), "increase_after": float("nan")}
    up = np.diff(loss) > 0
    if hit.size:
        k = int(hit[0])
        t = int(steps[k])
        after = s[k:]
        out.update(reach_step=t, plateau_median=float(np.median(after)),
                   plateau_q10=float(np.quantile(after, 0.1)), plateau_q90=float(np.quantile(after, 0.9)),
                   loss_at_reach=float(loss[min(t, loss.size - 1)]),
                   increase_before=float(up[:t].mean()) if t > 0 else 0.0,
                   increase_after=float(up[t:].mean()) if up[t:].size else float("nan"))
    else:
        out["increase_before"] = float(up.mean())
    return out


# ---- the second-order regression model ------------------------------------------------------

class QuadraticRegressionModel:
    """Residuals quadratic in the parameters (Agarwala, Pedregosa, Pennington 2023):

        z_a(theta) = z0_a + G_a . theta + 1/2 theta^T Q_a theta,     a = 1 .. M
        L(theta)   = 1/(2M) sum_a z_a^2

    ``z0`` ``(M,)``, ``G`` ``(M, D)``, ``Q`` ``(M, D, D)`` symmetric. The Jacobian is ``J(theta) =
    G + Q theta`` (row ``a``: ``G_a + Q_a theta``), the gradient ``J^T z / M``, the NTK (Gauss-Newton
    matrix in output space) ``J J^T / M`` and the Hessian ``J^T J / M + sum_a z_a Q_a / M``. The
    NTK's top eigenvalue equals the Gauss-Newton matrix ``J^T J / M``'s; near a zero-loss point
    (``z -> 0``) it is the sharpness. Everything is closed form (no autograd), so thousands of GD
    steps take milliseconds.
    """

    def __init__(self, z0, G, Q):
        self.z0 = np.asarray(z0, dtype=np.float64)
        self.G = np.asarray(G, dtype=np.float64)
        Q = np.asarray(Q, dtype=np.float64)
        self.Q = 0.5 * (Q + np.swapaxes(Q, 1, 2))
        self.M, self.D = self.G.shape

    @classmethod
    def random(cls, D, M, seed=0, q_scale=1.0, z_scale=1.0):
        """``G`` and ``Q`` with independent ``N(0, 1/D)`` entries (``Q`` symmetrised, times
        ``q_scale``), ``z0 ~ N(0, z_scale^2)``."""
        rng = np.random.default_rng(seed)
        G = rng.standard_normal((M, D)) / np.sqrt(D)
        Q = q_scale * rng.standard_normal((M, D, D)) / np.sqrt(D)
        z0 = z_scale * rng.standard_normal(M)
        return cls(z0, G, Q)

    def _zj(self, theta):
        """Residuals ``z`` and Jacobian ``J`` at ``theta`` (one contraction with ``Q``)."""
        Qt = (self.Q.reshape(self.M * self.D, self.D) @ theta).reshape(self.M, self.D)   # row a: Q_a theta
        return self.z0 + self.G @ theta + 0.5 * (Qt @ theta), self.G + Qt

    def residuals(self, theta):
        return self._zj(theta)[0]

    def jacobian(self, theta):
        return self._zj(theta)[1]

    def loss(self, theta):
        z = self.residuals(theta)
        return 0.5 * float(z @ z) / self.M

    def grad(self, theta):
        z, J = self._zj(theta)
        return J.T @ z / self.M

    def ntk_eigenvalue(self, theta):
        """Top eigenvalue of the NTK ``J J^T / M`` (= of the Gauss-Newton matrix ``J^T J / M``)."""
        J = self.jacobian(theta)
        K = J @ J.T if self.M <= self.D else J.T @ J
        return float(np.linalg.eigvalsh(K / self.M)[-1])

    def hessian(self, theta):
        z, J = self._zj(theta)
        return (J.T @ J + np.tensordot(z, self.Q, axes=1)) / self.M

    def sharpness(self, theta):
        return float(np.linalg.eigvalsh(self.hessian(theta))[-1])

    def loss_fn(self, params):
        """``L`` as an autograd function of ``{"theta": (D,)}`` (to check the closed forms with
        ``reference.curvature``)."""
        th = params["theta"]
        z = self.z0 + ag.matmul(self.G, th) + 0.5 * ag.sum(ag.matmul(self.Q, th) * th, axis=1)
        return 0.5 * ag.sum(z * z) / self.M

    def run(self, theta0, lr, steps, rho=0.0, every=10):
        """``steps`` steps of GD (``rho = 0``) or USAM (``rho > 0``) from ``theta0``.

        Returns ``loss`` and ``ntk`` (top NTK eigenvalue) at every step, ``(steps + 1,)``,
        ``sharp_steps`` and ``sharpness`` (top Hessian eigenvalue) every ``every`` steps, and
        ``theta`` (the last iterate); after a divergence the rest is ``nan``."""
        theta = np.array(theta0, dtype=np.float64)
        loss, ntk = np.full(steps + 1, np.nan), np.full(steps + 1, np.nan)
        sharp_steps = np.arange(0, steps + 1, every)
        sharp = np.full(sharp_steps.size, np.nan)
        for t in range(steps + 1):
            z, J = self._zj(theta)
            loss[t] = 0.5 * float(z @ z) / self.M
            if not np.isfinite(loss[t]) or loss[t] > 1e8:
                loss[t] = np.nan
                break
            K = J @ J.T if self.M <= self.D else J.T @ J
            ntk[t] = float(np.linalg.eigvalsh(K / self.M)[-1])
            if t % every == 0:
                sharp[t // every] = self.sharpness(theta)
            if t == steps:
                break
            g = J.T @ z / self.M
            if rho:
                g = self.grad(theta + rho * g)            # USAM: the gradient at theta + rho g
            theta = theta - lr * g
        return {"loss": loss, "ntk": ntk, "sharp_steps": sharp_steps, "sharpness": sharp, "theta": theta}


def gd(lr):
    """Plain full-batch gradient descent, ``w <- w - lr grad L(w)``."""
    return optim.create("sgd", lr=lr)
