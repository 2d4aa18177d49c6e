"""Understanding Gradient Regularization in Deep Learning: Efficient Finite-Difference Computation and Implicit Bias.

Ryo Karakida, Tomoumi Takase, Tomohiro Hayase, Kazuki Osawa. ICML 2023. arXiv:2210.02720

Gradient regularization (GR) trains on the loss plus a penalty on its
gradient norm,

    L_GR(theta) = L(theta) + (gamma / 2) ||grad L(theta)||^2,
    grad L_GR   = grad L + gamma H grad L,

whose gradient needs a Hessian-vector product ``H grad L`` (double
backpropagation, "DB", in the paper). The paper computes it instead by a
finite difference of two gradients along ``g = grad L(theta)``, with step
``epsilon``:

    forward  (F-GR):  H g ~ (grad L(theta + epsilon g) - g) / epsilon
    backward (B-GR):  H g ~ (g - grad L(theta - epsilon g)) / epsilon

so one step costs two gradient evaluations (an ascent or descent step, then
the gradient there), no second-order derivatives:

    F-GR:  grad L_GR ~ (1 - gamma / epsilon) g + (gamma / epsilon) grad L(theta + epsilon g)
    B-GR:  grad L_GR ~ (1 + gamma / epsilon) g - (gamma / epsilon) grad L(theta - epsilon g)

The paper's findings, which the tests show in miniature: the computation is
cheaper than DB (about two thirds of its matrix products); F-GR generalises
better than B-GR and DB, the more so the larger ``epsilon``; in a diagonal
linear network GR is biased towards the "rich" (sparse) regime and F-GR's
finite ``epsilon`` strengthens that bias. F-GR with ``gamma = epsilon`` is
SAM without the normalisation of the ascent step (``theta + epsilon g``
instead of ``theta + rho g / ||g||``); the flooding method performs F-GR
implicitly once the loss reaches the flood level.

Use: ``create("fd_gradient_regularization", inner=create("sgd", lr=0.1,
momentum=0.9), gamma=0.1, epsilon=0.2, variant="forward")``. The inner
optimizer is handed an oracle whose gradient at ``theta`` is the finite-
difference ``grad L_GR`` and whose loss is ``L_GR = L + gamma/2 ||g||^2``
(exact, from the gradient already computed); the rich parts pass through.
State: ``{"step": t, "inner": <inner state>}``.

Conventions and choices:

* ``epsilon`` is the paper's step along the *unnormalised* gradient, as in its
  formulas and its diagonal-linear-network analysis (SAM normalises; that is
  ``reference.optim.sam``).
* Defaults ``gamma = 0.1``, ``epsilon = 0.2``: points of the grid of the
  paper's WRN-28-10 experiments (``gamma`` in {1e-4, ..., 1e-1}, ``epsilon`` in
  {0.01, ..., 0.5}; its supplementary figure reports F/B-GR at ``gamma =
  0.1``, F-GR doing best at large ``epsilon``). ``variant="forward"`` (F-GR),
  the paper's recommendation.
* ``gamma = 0`` is the inner optimizer exactly, bit for bit (tested), though
  the second gradient is still evaluated.
* On a quadratic the finite difference is exact for every ``epsilon`` (``H``
  is constant); in general its error is ``O(epsilon)`` with opposite signs
  for the two variants (their mean is the central difference, ``O(epsilon^2)``).
"""
from __future__ import annotations

from .. import tree
from .base import Optimizer, check_grads, check_range, create, register
from .sam import check_inner
from .sgd import SGD

__all__ = ["FDGradientRegularization", "fd_gr_gradient", "VARIANTS"]

VARIANTS = ("forward", "backward")


def fd_gr_gradient(oracle, params, gamma, epsilon, variant="forward", where="fd_gradient_regularization", t=1):
    """``(L_GR, finite-difference grad L_GR)`` at ``params``; ``gamma``, ``epsilon`` Python floats."""
    loss, g = oracle(params)                                                  # g = grad L(theta)
    check_grads(where, params, g, t)
    sign = 1.0 if variant == "forward" else -1.0
    _, g_shift = oracle(tree.axpy(sign * epsilon, g, params))                # grad L(theta +- epsilon g)
    check_grads(where, params, g_shift, t)
    c = gamma / epsilon
    if variant == "forward":   # (1 - gamma/eps) g + (gamma/eps) grad L(theta + eps g)
        direction = tree.zip_map(lambda gi, si: gi + c * (si - gi), g, g_shift)
    else:                      # (1 + gamma/eps) g - (gamma/eps) grad L(theta - eps g)
        direction = tree.zip_map(lambda gi, si: gi + c * (gi - si), g, g_shift)
    sq = tree.vdot(g, g)
    return loss + (0.5 * gamma) * sq, direction                              # L + gamma/2 ||g||^2


class _FDGROracle:
    """The oracle the inner optimizer sees: (L_GR, finite-difference grad L_GR)."""

    def __init__(self, oracle, where, t, hp):
        self._oracle, self._where, self._t, self._hp = oracle, where, t, hp

    def __call__(self, params):
        hp = self._hp
        return fd_gr_gradient(self._oracle, params, float(hp["gamma"]), float(hp["epsilon"]), hp["variant"],
                              self._where, self._t)

    def __getattr__(self, name):
        return getattr(self._oracle, name)


@register("fd_gradient_regularization")
class FDGradientRegularization(Optimizer):
    paper = dict(title="Understanding Gradient Regularization in Deep Learning: Efficient Finite-Difference "
                       "Computation and Implicit Bias",
                 authors="Karakida, Takase, Hayase, Osawa", year=2023, arxiv="2210.02720", family="sharpness")
    defaults = dict(inner=None, gamma=0.1, epsilon=0.2, variant="forward")
    scheduled = ()
    # the example's lr = 1e-2 with momentum 0.9 diverges on Rosenbrock from (-1.2, 1) (curvature ~ 1000);
    # there ||g|| ~ 230, so the unnormalised ascent step epsilon g needs a small epsilon as well
    descent_hparams = {"rosenbrock": dict(inner=SGD(lr=1e-4, momentum=0.9), gamma=1e-4, epsilon=1e-3)}

    @classmethod
    def example_hparams(cls):
        """A wrapper needs an inner optimizer (contract tests, demos): SGD with momentum."""
        return dict(inner=create("sgd", lr=1e-2, momentum=0.9))

    def check(self, hp):
        check_inner(self, hp)
        check_range("gamma", hp["gamma"], 0.0, where=self.name)
        check_range("epsilon", hp["epsilon"], 0.0, low_open=True, where=self.name)
        if hp["variant"] not in VARIANTS:
            raise ValueError(f"{self.name}: variant must be one of {list(VARIANTS)}, got {hp['variant']!r}")

    def init_slots(self, params):
        return {"inner": self.hparams["inner"].init(params)}

    def step(self, params, state, oracle):
        """The inner optimizer's step fed the finite-difference ``grad L_GR``; returns ``(params, state)``."""
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        new_params, inner_state = hp["inner"].step(params, state["inner"], _FDGROracle(oracle, self.name, t, hp))
        return new_params, {"inner": inner_state, "step": t}
