"""Thermodynamic Natural Gradient Descent.

Kaelan Donatella, Samuel Duffield, Maxwell Aifer, Denis Melanson, Gavin Crooks, Patrick J. Coles.
2024. arXiv:2405.13817

Natural gradient descent (NGD) steps along ``(F + lambda I)^{-1} g``, which
on a digital computer costs a linear solve per step. TNGD hands that solve to
an analog "thermodynamic" device (a stochastic processing unit, SPU) whose
state ``x`` follows an Ornstein-Uhlenbeck (OU) process

    dx = -((F + lambda I) x - g) dt + N(0, 2 kappa dt)                         (the SPU)

whose stationary distribution is ``N((F + lambda I)^{-1} g, kappa (F + lambda I)^{-1})``:
its *mean* is the damped natural gradient. Training runs in a hybrid
digital-analog loop (the paper's TNGD algorithm): at step ``k`` the digital
side computes the gradient ``g_k`` (and, every ``refresh`` steps, the
curvature ``F``) and uploads them; the SPU then evolves for an analog time
``t`` *from the state it was left in* (no reset between steps); its state is
read out and

    x_k      = x(t)  after  dx = -((F_k + lambda I) x - g_k) ds + N(0, 2 kappa ds),  x(0) = x_{k-1}
    theta_k+1 = theta_k - lr x_k

For ``t -> infinity`` and ``kappa = 0`` this is exact damped NGD; for short
``t`` the readout lags behind, ``x_k ~ x_{k-1} + t (g_k - (F + lambda I) x_{k-1})``,
that is ``x_k ~ (I - t (F + lambda I)) x_{k-1} + t g_k``, an exponential
average of past gradients (a momentum-like method). The device starts from
the first gradient, ``x_0 = g_0``, so the first step interpolates between a
gradient step (``t = 0``) and the natural-gradient step (``t -> infinity``),
the role the paper gives to ``t`` (note that without a reset, ``t = 0`` at
every step would keep reading out ``g_0``); a start at ``0`` is the other
natural choice and only changes the first few steps.

This file is a *digital simulation* of that loop: the SPU is simulated by
Euler-Maruyama with step ``dt``,

    x <- x - dt ((F + lambda I) x - g) + sqrt(2 kappa dt) xi,     xi ~ N(0, I),

``ceil(t / dt)`` sub-steps per training step (the last one shortened so the
window is exactly ``t``). Euler-Maruyama keeps the exact fixed point
``(F + lambda I)^{-1} g`` of the mean; it is stable for
``dt * lambda_max(F + lambda I) < 2``, which is checked whenever ``F`` is
refreshed (``ValueError`` naming ``dt``), as is ``lambda_min(F + lambda I) > 0``
(the OU process has no stationary state otherwise; ``ValueError`` naming
``damping``). The ``(F + lambda I)`` is a dense ``n x n`` matrix: this is
for small models (tests, lessons), like the paper's own simulations.

Conventions and choices:

* **Readout.** ``averaging_time = 0`` (default) reads the final state
  ``x(t)``, one sample of the OU process (one reading of the device). With
  ``averaging_time = tau > 0`` the readout is the time average of ``x``
  over the last ``tau`` of the window (the equilibrium-mean estimator of
  thermodynamic linear algebra, Aifer et al. 2023): for ``kappa > 0`` its
  error shrinks like ``1 / tau``; the device's state carries on from ``x(t)``
  either way.
* **Curvature** ``F`` (``curvature``):
  ``"hessian"`` (default) the dense Hessian of the oracle's loss
  (``reference.curvature.hessian``, one HVP per parameter; works with every
  ``reference.problems`` oracle). For a generalised linear model with its
  canonical link (logistic/softmax regression, least squares) the Hessian
  *is* the Fisher information and the Gauss-Newton matrix (plus the
  regulariser's ``lam I``), so this is NGD there. For a nonconvex loss the
  Hessian may be indefinite: ``damping`` must then exceed its most negative
  eigenvalue (checked, see above). ``"empirical_fisher"``: ``F = 1/B sum_i
  g_i g_i^T`` from the oracle's ``per_sample_grads`` (the curvature
  ``reference.curvature`` calls the empirical Fisher; positive
  semidefinite for any model). The paper's experiments use the GGN
  ``J^T H_L J`` in a low-rank form that the SPU couples to directly; an
  oracle of this library does not expose the model's Jacobian, and for
  the convex models above the GGN equals the Hessian.
* **Refresh.** ``F`` is recomputed at steps ``1, 1 + refresh, 1 + 2 refresh,
  ...`` (``refresh = 1``: every step); in between the stored ``F`` is used
  with the fresh gradient, as in the paper's loop where the curvature is
  uploaded less often than the gradient.
* **Noise** lives in the state: step ``k`` draws its ``ceil(t/dt) x n``
  normals from ``numpy.random.default_rng([seed, k])`` (``seed`` from the
  hyperparameter at ``init``), on the host in float64, cast to the params'
  dtype; so a resumed run is bit-identical to an uninterrupted one.
  ``kappa`` is the paper's noise scale ``kappa_0`` (``sigma = sqrt(2 kappa)``
  in ``dx = ... + sigma dW``); ``kappa = 0`` simulates a noiseless device.
* **Defaults** (ours; the paper tunes them per task): ``lr = 0.5``,
  ``damping = 1e-3``, ``analog_time = 20``, ``dt = 0.1``, ``kappa = 0``,
  ``refresh = 1``. Analog time is in the units of ``1 / F``: ``t = 20``
  relaxes every mode of curvature above ~0.25 to within ``e^-5`` (slower
  modes keep a lag, the momentum-like regime); ``dt = 0.1`` is stable up
  to a curvature of 20. Problems with a large curvature (Rosenbrock) need
  a smaller ``dt``.
* Not implemented: the paper's TNGD-Adam variant (the readout fed to Adam
  in place of the gradient), and the finite upload delay of the hardware.
"""
from __future__ import annotations

import math

import numpy as np

from .. import curvature, tree
from ..backend import xp_of
from .adahessian import require_hvp
from .base import Optimizer, check_grads, check_int, check_range, register

CURVATURES = ("hessian", "empirical_fisher")


def n_substeps(analog_time, dt):
    """Euler-Maruyama sub-steps in an analog window of length ``analog_time`` (``0`` for ``t = 0``)."""
    return int(math.ceil(analog_time / dt - 1e-9)) if analog_time > 0 else 0


def simulate_ou(A, b, x0, analog_time, dt, kappa=0.0, averaging_time=0.0, rng=None):
    """The SPU: ``dx = -(A x - b) ds + N(0, 2 kappa ds)`` from ``x0`` for time ``analog_time``.

    Euler-Maruyama with step ``dt`` (the last sub-step shortened so the
    window is exactly ``analog_time``). Returns ``(readout, x_end)``: the
    final state ``x_end`` and the readout, ``x_end`` itself for
    ``averaging_time = 0`` or else the average of the states at the ends of
    the sub-steps that fall in the last ``averaging_time`` of the window
    (each weighted by its sub-step length). ``rng``: a
    ``numpy.random.Generator`` (needed when ``kappa > 0``); all the normals
    of the window are drawn at once, ``(steps, n)`` in float64.
    """
    xp = xp_of(A)
    steps = n_substeps(analog_time, dt)
    if steps == 0:
        return x0, x0
    dts = [dt] * (steps - 1) + [analog_time - dt * (steps - 1)]
    noise = None
    if kappa > 0:
        if rng is None:
            raise ValueError("simulate_ou: kappa > 0 needs rng, a numpy.random.Generator")
        noise = xp.asarray(rng.standard_normal((steps, x0.shape[0])).astype(x0.dtype))
    x = x0
    avg, weight = None, 0.0
    start_avg = analog_time - averaging_time
    s = 0.0
    for j, h in enumerate(dts):
        x = x - h * (A @ x - b)                                   # drift
        if noise is not None:
            x = x + math.sqrt(2.0 * kappa * h) * noise[j]         # diffusion
        s += h
        if averaging_time > 0 and s > start_avg + 1e-12 * analog_time:
            avg = h * x if avg is None else avg + h * x
            weight += h
    return (x if avg is None else avg / weight), x


@register("thermodynamic_ngd")
class ThermodynamicNGD(Optimizer):
    """TNGD, a digital simulation of the paper's hybrid loop; see the module docstring.

    State: ``x`` (the SPU's state, a flat vector in the params' key order),
    ``F`` (the curvature last uploaded, ``n x n``), ``seed`` and ``step``.
    """

    paper = dict(title="Thermodynamic Natural Gradient Descent",
                 authors="Donatella, Duffield, Aifer, Melanson, Crooks, Coles", year=2024, arxiv="2405.13817",
                 family="optimizer-second-order")
    defaults = dict(lr=0.5, damping=1e-3, analog_time=20.0, dt=0.1, kappa=0.0, averaging_time=0.0, refresh=1,
                    curvature="hessian", seed=0)
    scheduled = ("lr",)
    # Rosenbrock's curvature reaches ~2500 near the start (and its Hessian is indefinite in parts of
    # the valley): Euler-Maruyama needs dt < 2 / lambda_max, and the damping keeps F + lambda I positive.
    descent_hparams = {"rosenbrock": dict(dt=5e-4, analog_time=0.05, damping=10.0)}

    def check(self, hp):
        super().check(hp)
        check_range("damping", hp["damping"], 0.0, where=self.name)
        check_range("analog_time", hp["analog_time"], 0.0, where=self.name)
        check_range("dt", hp["dt"], 0.0, low_open=True, where=self.name)
        check_range("kappa", hp["kappa"], 0.0, where=self.name)
        check_range("averaging_time", hp["averaging_time"], 0.0, hp["analog_time"], where=self.name)
        if hp["curvature"] not in CURVATURES:
            raise ValueError(f"{self.name}: curvature must be one of {CURVATURES}, got {hp['curvature']!r}")
        for name, low in (("refresh", 1), ("seed", 0)):
            v = hp[name]
            check_int(name, v, low, where=self.name)

    def init_slots(self, params):
        flat, _ = tree.flatten(params)
        xp = xp_of(flat)
        n = int(flat.shape[0])
        return {"x": xp.zeros(n, dtype=flat.dtype), "F": xp.zeros((n, n), dtype=flat.dtype),
                "seed": int(self.hparams["seed"])}

    # ---- the digital side: the curvature ------------------------------------------------
    def curvature_matrix(self, oracle, params, t):
        """The dense ``F`` at ``params`` (``n x n``, rows in the params' key order)."""
        if self.hparams["curvature"] == "hessian":
            require_hvp(self.name, oracle)
            F = curvature.hessian(oracle, params)
        else:
            if not callable(getattr(oracle, "per_sample_grads", None)):
                raise TypeError(f"{self.name}: curvature='empirical_fisher' needs per-sample gradients, "
                                f"`per_sample_grads`: pass a rich oracle (problem.oracle(batch)); got "
                                f"{type(oracle).__name__}")
            psg = oracle.per_sample_grads(params)
            B = int(next(iter(psg.values())).shape[0])
            G = xp_of(psg[next(iter(params))]).concatenate([psg[k].reshape(B, -1) for k in params], axis=1)
            F = (G.T @ G) / B                                       # 1/B sum_i g_i g_i^T
        if not bool(xp_of(F).isfinite(F).all()):
            raise FloatingPointError(f"{self.name}: non-finite curvature ({self.hparams['curvature']}) at step {t}")
        return F

    def _check_spectrum(self, A, t):
        ev = np.linalg.eigvalsh(np.asarray(A.get() if hasattr(A, "get") else A, dtype=np.float64))
        lo, hi = float(ev[0]), float(ev[-1])
        if lo <= 0:
            raise ValueError(f"{self.name}: F + damping I is not positive definite at step {t} (smallest "
                             f"eigenvalue {lo:.3g}): raise damping above {max(0.0, -lo + self.hparams['damping']):.3g}"
                             " or use curvature='empirical_fisher'")
        if self.hparams["dt"] * hi >= 2.0:
            raise ValueError(f"{self.name}: dt={self.hparams['dt']!r} is too large for the curvature at step {t} "
                             f"(largest eigenvalue of F + damping I {hi:.3g}); Euler-Maruyama needs dt < "
                             f"{2.0 / hi:.3g}")

    # ---- one turn of the hybrid loop ------------------------------------------------------
    def step(self, params, state, oracle):
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        _, grads = oracle(params)                                   # digital: g_k
        check_grads(self.name, params, grads, t)
        g, spec = tree.flatten({k: grads[k] for k in params})
        xp = xp_of(g)
        n = int(g.shape[0])
        eye = xp.eye(n, dtype=g.dtype)
        if (t - 1) % hp["refresh"] == 0:                           # digital: F, every `refresh` steps
            F = self.curvature_matrix(oracle, params, t)
            self._check_spectrum(F + hp["damping"] * eye, t)
        else:
            F = state["F"]
        A = F + hp["damping"] * eye                                 # uploaded to the SPU with g_k
        x0 = g if t == 1 else state["x"]                            # the device is never reset
        rng = np.random.default_rng([int(state["seed"]), t])
        readout, x_end = simulate_ou(A, g, x0, hp["analog_time"], hp["dt"], hp["kappa"], hp["averaging_time"],
                                     rng)
        step_vec = tree.unflatten(readout, spec)
        new_params = {k: params[k] - hp["lr"] * step_vec[k] for k in params}   # theta <- theta - lr x_k
        return new_params, {"x": x_end.copy() if x_end is x0 else x_end, "F": F, "seed": state["seed"],
                            "step": t}
