"""Bolstering Stochastic Gradient Descent with Model Building.

S. Ilker Birbil, Ozgur Martin, Gonenc Onay, Figen Oztoprak. TOP 2024. arXiv:2111.07058

SMB (Stochastic Model Building) is SGD with a one-shot, model-based
replacement for backtracking. Each step draws one mini-batch ``xi_k`` and
keeps it for every evaluation of the step (Algorithm 1):

    f_k, g_k = f(x_k; xi_k), grad f(x_k; xi_k)                       (line 3)
    s^t_k = -alpha_k g_k,  x^t_k = x_k + s^t_k                         (lines 4-5, the SGD trial step)
    f^t_k, g^t_k = f(x^t_k; xi_k), grad f(x^t_k; xi_k)               (line 6, same batch)
    if f^t_k <= f_k - c alpha_k ||g_k||^2:  x_{k+1} = x^t_k            (Eq. 3, stochastic Armijo)
    else, for every parameter group p (here: every key of the params dict):
        y_{k,p} = g^t_{k,p} - g_{k,p}
        s_{k,p} = c_g,p(delta) g_{k,p} + c_y,p(delta) y_{k,p} + c_s,p(delta) s^t_{k,p}   (Eq. 4)
        x_{k+1} = x_k + s_k

The model step minimises (a relaxation of) the quadratic model that blends
the two linear models at ``x_k`` and ``x^t_k``, inside the "trust region"
``||s||^2 + ||s - s^t||^2 <= ||s^t||^2`` (Oztoprak and Birbil 2018,
Sec. 2.2). With ``s = s^t_{k,p}``, ``g = g_{k,p}``, ``y = y_{k,p}`` (Eq. 4-5):

    delta  = 1/2 ( ||s|| (||y|| + ||g|| / eta) - y^T s )
    theta  = (y^T s + 2 delta)^2 - ||s||^2 ||y||^2
    c_g    = -||s||^2 / (2 delta)
    c_y    = -||s||^2 / (2 delta theta) [ -(y^T s + 2 delta) s^T g + ||s||^2 y^T g ]
    c_s    = -||s||^2 / (2 delta theta) [ -(y^T s + 2 delta) y^T g + ||y||^2 s^T g ]

where ``0 < eta < 1`` bounds the model step, ``||s_{k,p}|| <= eta ||s^t_{k,p}||``.
The paper's appendix shows the step is a quasi-Newton step
``s_{k,p} = -alpha H_{k,p} g_{k,p}`` with ``H_{k,p} = B_{k,p}^{-1}``,

    B_{k,p} = ( sigma_p I - g y^T - y g^T ) / ||g||^2,
    sigma_p = ||g|| ||y|| + ||g||^2 / eta + y^T g,

whose eigenvalues lie in ``[1/eta, 1/eta + 2 ||y|| / ||g||]``; the tests
check Eq. 4 against this closed form. Each parameter group gets its own
model (its own ``B``), so the step lengths differ between layers: the
paper's "diagonalization".

Hyperparameters (paper's names spelled out): ``lr`` = ``alpha_k`` (a float
or a schedule), ``c`` (Armijo constant), ``eta``. Defaults: ``lr = 0.5`` and
``c = 0.1``, the paper's experimental settings (Sec. 3: "default constant
learning rates of 0.5 for SMB", SLS's ``c = 0.1``); ``eta = 0.99``, the
authors' code default (the paper only requires ``0 < eta < 1``).

State: ``{"step": t, "model_steps": m}`` with ``m`` the number of steps
so far at which the trial point was rejected and the model step taken
(Python int). The method keeps no memory across steps: every model is
built from the current batch alone.

Conventions and choices:

* **Parameter groups** are the keys of the params dict (each layer tensor),
  as in the authors' code (one model per ``torch`` parameter tensor). The
  Armijo test is on the whole vector (``||g_k||`` over every group), as in
  Algorithm 1 and the authors' code.
* **theta is evaluated cancellation-free.** From the definition of delta,
  ``y^T s + 2 delta = ||s|| (||y|| + ||g|| / eta)``, hence exactly
  ``theta = ||s||^2 (||g|| / eta) (2 ||y|| + ||g|| / eta)``; the paper's
  difference of squares loses digits when ``||g|| << ||y||``. Same number
  in exact arithmetic (checked in the tests to 1e-12).
* **A group with zero gradient** has a zero trial step and zero model step
  (``||s_{k,p}|| <= eta ||s^t_{k,p}|| = 0``), where Eq. 4 is 0/0.
* **Oracle calls**: two per step, ``oracle(x_k)`` and ``oracle(x^t_k)``;
  the oracle is built on one batch, so both are the same mini-batch, as
  the paper requires. Non-finite values at the trial point (a diverging
  trial step) raise ``FloatingPointError`` like any gradient.
* **Not implemented**: the SMBi variant (Algorithm 2: the model from a
  second, independent batch) needs two oracles per step, which the
  one-oracle optimizer protocol does not offer; and the authors' optional
  learning-rate auto-scheduling (``autoschedule``, not part of the paper's
  algorithm boxes). The authors' code skips the model step when
  ``||g_k|| < 1e-8``; the paper does not, and neither does this file.

No peer package implements SMB (checked: pytorch-optimizer 4.1.0 has none);
the tests use hand-computed steps and the quasi-Newton closed form above.

The claim in miniature (``tests/test_smb_gaqat.py``, 3 seeds, batch 32,
150 steps, median final full-batch loss): with ``lr`` below the Armijo
threshold no trial step is rejected and SMB *is* SGD; at the top of a 100x
range SMB's excess loss is several times lower than SGD's (logistic
regression, lr 30: 0.33 vs 3.4; MLP on noisy blobs, lr 10: 0.91 vs 3.2).
SMB degrades too: far from ``x_k`` (a very long trial step) the secant
``y`` of a saturating loss understates the curvature, and a batch Armijo
test can accept a step that is long for the full loss.
"""
from __future__ import annotations

from .. import tree
from ..backend import xp_of
from .base import Optimizer, check_grads, check_range, register

__all__ = ["SMB", "model_step"]


def model_step(g, y, s, eta):
    """Eq. 4-5 for one parameter group: ``c_g g + c_y y + c_s s`` (zero where ``s = 0``).

    ``g`` the gradient at ``x_k``, ``y = g^t - g``, ``s`` the trial step,
    ``eta`` a Python float. Scalars stay 0-d arrays of the group's dtype.
    """
    xp = xp_of(g)
    ss, yy, gg = xp.vdot(s, s), xp.vdot(y, y), xp.vdot(g, g)
    ys, sg, yg = xp.vdot(y, s), xp.vdot(s, g), xp.vdot(y, g)
    norm_s, norm_y, norm_g = xp.sqrt(ss), xp.sqrt(yy), xp.sqrt(gg)
    delta = 0.5 * (norm_s * (norm_y + norm_g / eta) - ys)                       # Eq. 5
    ys_2delta = ys + 2.0 * delta                                                # = ||s|| (||y|| + ||g||/eta)
    theta = ss * (norm_g / eta) * (2.0 * norm_y + norm_g / eta)                 # = (y^T s + 2 delta)^2 - ||s||^2 ||y||^2
    ok = ss > 0
    safe = lambda d: xp.where(ok, d, 1.0)                                      # noqa: E731 - 0/0 guard for s = 0
    c_g = xp.where(ok, -ss / safe(2.0 * delta), 0.0)                            # c_g(delta)
    common = xp.where(ok, -ss / safe(2.0 * delta * theta), 0.0)                 # -||s||^2 / (2 delta theta)
    c_y = common * (-ys_2delta * sg + ss * yg)                                  # c_y(delta)
    c_s = common * (-ys_2delta * yg + yy * sg)                                  # c_s(delta)
    dt = g.dtype
    return c_g.astype(dt) * g + c_y.astype(dt) * y + c_s.astype(dt) * s         # Eq. 4


@register("smb_model_building")
class SMB(Optimizer):
    paper = dict(title="Bolstering Stochastic Gradient Descent with Model Building",
                 authors="Birbil, Martin, Onay, Oztoprak", year=2024, arxiv="2111.07058",
                 family="optimizer-second-order")
    defaults = dict(lr=0.5, c=0.1, eta=0.99)
    # the paper's lr = 0.5 is a trial step of length 0.5 * ||g|| ~ 100 on Rosenbrock at (-1.2, 1):
    # the model step (at most eta * ||s^t||) then still overshoots; a small trial step suits that start
    descent_hparams = {"rosenbrock": dict(lr=1e-3)}

    def check(self, hp):
        super().check(hp)
        check_range("c", hp["c"], 0.0, low_open=True, where=self.name)
        check_range("eta", hp["eta"], 0.0, 1.0, low_open=True, high_open=True, where=self.name)

    def init_slots(self, params):
        return {"model_steps": 0}

    def step(self, params, state, oracle):
        """One SMB step (Algorithm 1); two oracle calls on the oracle's batch."""
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        alpha, c, eta = float(hp["lr"]), float(hp["c"]), float(hp["eta"])
        f, g = oracle(params)                                                   # line 3
        check_grads(self.name, params, g, t)
        s_trial = tree.scale(-alpha, g)                                         # line 4: s^t = -alpha g
        x_trial = tree.add(params, s_trial)                                     # line 5
        f_trial, g_trial = oracle(x_trial)                                      # line 6 (same batch)
        check_grads(self.name, params, g_trial, t)
        gnorm2 = float(tree.vdot(g, g))
        if float(f_trial) <= float(f) - c * alpha * gnorm2:                     # line 7, Eq. 3
            return x_trial, {"step": t, "model_steps": int(state["model_steps"])}
        step = {k: model_step(g[k], g_trial[k] - g[k], s_trial[k], eta)         # lines 10-12
                for k in params}
        new = tree.add(params, step)                                            # line 13
        return new, {"step": t, "model_steps": int(state["model_steps"]) + 1}
