"""Gradient Norm Aware Minimization Seeks First-Order Flatness and Improves Generalization.

Xingxuan Zhang, Renzhe Xu, Han Yu, Hao Zou, Peng Cui. CVPR 2023. arXiv:2303.03108

SAM's sharpness is *zeroth-order* flatness, the worst loss rise in a ball,
``max_{||e|| <= rho} L(w + e) - L(w)``. The paper shows that it can fail to
tell a sharp minimum from a flat one (several minima inside the ball, or a
minimum whose loss rise is capped) and proposes *first-order flatness*

    R1_rho(theta) = rho max_{||xi|| <= rho} ||grad L(theta + xi)||,

which at a minimum bounds the top Hessian eigenvalue (``R1 >= rho^2 lambda_max``
to first order) and also bounds SAM's regulariser. GAM minimises
``L(theta) + alpha R1_rho(theta)``. The inner max is solved with one ascent
step on the gradient norm, whose gradient is ``grad ||grad L|| = H grad L /
||grad L||``; the gradient of ``||grad L(theta_adv)||`` is taken at the
maximiser, dropping the derivative of ``theta_adv`` (as SAM does). Algorithm
1 of the paper, in its notation:

    f_t         = H(theta_t) grad L(theta_t) / (||grad L(theta_t)|| + xi)
    theta_adv   = theta_t + rho_t f_t / (||f_t|| + xi)
    h_loss      = grad L(theta_t)
    h_norm      = rho_t H(theta_adv) grad L(theta_adv) / (||grad L(theta_adv)|| + xi)
    theta_{t+1} = theta_t - eta_t (h_loss + alpha h_norm)

``H v`` is a Hessian-vector product: the oracle must offer ``.hvp(params,
v)`` (a problem's rich oracle does); a plain oracle raises ``TypeError``
naming ``hvp``. A step costs two gradients and two Hessian-vector products.
The last line is the base optimizer's step fed ``h_loss + alpha h_norm``
(SGD or AdamW in the paper; any ``inner`` here).

**GAM + SAM** (the paper's Sec. 5, "GAM helps SAM find flatter minima"):
``h_loss`` is replaced by SAM's gradient ``grad L(theta + sam_rho g /
||g||)``; ``sam_rho = 0`` (default) is GAM alone, ``sam_rho > 0`` is
GAM+SAM (one more gradient per step).

Use: ``create("gam", inner=create("sgd", lr=0.1, momentum=0.9), rho=0.2,
alpha=0.1)``. The inner optimizer is handed an oracle whose gradient at
``theta`` is ``h_loss + alpha h_norm`` and whose loss is ``L(theta)`` (or
``L(theta + e_SAM)`` for GAM+SAM); the rich parts pass through.
State: ``{"step": t, "inner": <inner state>}``.

Conventions and choices:

* **Exact Hessian-vector products** (the paper's Algorithm 1). The official
  code (xxgege/GAM) releases an "accelerated GAM" that replaces both HVPs by
  finite differences of gradients, combines it with SAM and a GSAM-style
  gradient decomposition, with five different hyperparameters; it is not
  implemented here.
* **Defaults**: ``rho = 0.2`` (the radius the official code uses in every
  CIFAR setting, ``grad_norm_rho``), ``alpha = 0.1`` (its CIFAR-10 ResNet
  setting of the coefficient, ``grad_beta_1``), ``xi = 1e-12`` (its
  ``perturb_eps``). They are the authors' released settings, not values
  read from the paper.
* ``xi`` is added to the norms as in the paper, so a zero gradient gives
  ``f_t = 0``, ``theta_adv = theta`` and ``h_norm = 0`` (with ``xi = 0`` the
  same is ensured by a guard instead of 0/0).
* ``alpha = 0`` (with ``sam_rho = 0``) is the inner optimizer exactly, bit for
  bit (tested): ``h_loss + 0 h_norm``.
"""
from __future__ import annotations

from .. import tree
from .base import Optimizer, check_grads, check_range, create, register
from .sam import check_inner, safe_scale
from .sgd import SGD

__all__ = ["GAM", "gam_direction"]


def _hvp(oracle, params, v, where):
    hvp = getattr(oracle, "hvp", None)
    if not callable(hvp):
        raise TypeError(f"{where} needs Hessian-vector products, `hvp`: pass a rich oracle with "
                        f".hvp(params, v) (e.g. problem.oracle(batch)); got {type(oracle).__name__}, "
                        f"which only returns (loss, grads)")
    return hvp(params, v)


def gam_direction(oracle, params, rho, alpha, xi=1e-12, sam_rho=0.0, where="gam", t=1):
    """``(loss, h_loss + alpha h_norm)`` at ``params`` (Algorithm 1); ``oracle`` must have ``.hvp``.

    ``rho``, ``alpha``, ``xi``, ``sam_rho`` are Python floats. Returns the loss
    at ``params`` (at the SAM point for ``sam_rho > 0``) and the direction.
    """
    loss, g = oracle(params)                                               # grad L(theta_t)
    check_grads(where, params, g, t)
    Hg = _hvp(oracle, params, g, where)                                    # H(theta_t) grad L(theta_t)
    f = tree.scale(safe_scale(1.0, tree.global_norm(g), xi), Hg)           # f_t = H g / (||g|| + xi)
    step = tree.scale(safe_scale(rho, tree.global_norm(f), xi), f)         # rho_t f_t / (||f_t|| + xi)
    theta_adv = tree.add(params, step)                                     # theta_adv
    _, g_adv = oracle(theta_adv)                                           # grad L(theta_adv)
    check_grads(where, params, g_adv, t)
    Hg_adv = _hvp(oracle, theta_adv, g_adv, where)                         # H(theta_adv) grad L(theta_adv)
    h_norm = tree.scale(safe_scale(rho, tree.global_norm(g_adv), xi), Hg_adv)   # h_norm
    if sam_rho > 0.0:                                                      # GAM + SAM: h_loss = g_SAM
        e = tree.scale(safe_scale(sam_rho, tree.global_norm(g), xi), g)
        loss, g = oracle(tree.add(params, e))
        check_grads(where, params, g, t)
    return loss, tree.axpy(alpha, h_norm, g)                               # h_loss + alpha h_norm


class _GAMOracle:
    """The oracle the inner optimizer sees: GAM's direction in place of the gradient."""

    def __init__(self, oracle, where, t, hp):
        self._oracle, self._where, self._t, self._hp = oracle, where, t, hp

    def __call__(self, params):
        hp = self._hp
        return gam_direction(self._oracle, params, float(hp["rho"]), float(hp["alpha"]), float(hp["xi"]),
                             float(hp["sam_rho"]), self._where, self._t)

    def __getattr__(self, name):
        return getattr(self._oracle, name)


@register("gam")
class GAM(Optimizer):
    paper = dict(title="Gradient Norm Aware Minimization Seeks First-Order Flatness and Improves Generalization",
                 authors="Zhang, Xu, Yu, Zou, Cui", year=2023, arxiv="2303.03108", family="sharpness")
    defaults = dict(inner=None, rho=0.2, alpha=0.1, xi=1e-12, sam_rho=0.0)
    scheduled = ()
    # the example's lr = 1e-2 with momentum 0.9 diverges on Rosenbrock from (-1.2, 1) (curvature ~ 1000)
    descent_hparams = {"rosenbrock": dict(inner=SGD(lr=1e-4, momentum=0.9))}

    @classmethod
    def example_hparams(cls):
        """A wrapper needs an inner optimizer (contract tests, demos): SGD with momentum."""
        return dict(inner=create("sgd", lr=1e-2, momentum=0.9))

    def check(self, hp):
        check_inner(self, hp)
        for name in ("rho", "alpha", "xi", "sam_rho"):
            check_range(name, hp[name], 0.0, where=self.name)

    def init_slots(self, params):
        return {"inner": self.hparams["inner"].init(params)}

    def step(self, params, state, oracle):
        """The inner optimizer's step fed ``h_loss + alpha h_norm``; returns ``(params, state)``."""
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        if not callable(getattr(oracle, "hvp", None)):
            _hvp(oracle, params, params, self.name)            # raises the TypeError naming `hvp`
        new_params, inner_state = hp["inner"].step(params, state["inner"], _GAMOracle(oracle, self.name, t, hp))
        return new_params, {"inner": inner_state, "step": t}
