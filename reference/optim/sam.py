"""Sharpness-Aware Minimization for Efficiently Improving Generalization.

Pierre Foret, Ariel Kleiner, Hossein Mobahi, Behnam Neyshabur. ICLR 2021. arXiv:2010.01412

SAM minimises the worst loss in a ball of radius ``rho`` around the weights
instead of the loss itself,

    min_w  L^SAM(w) = max_{||e||_2 <= rho} L(w + e),

so that it seeks weights whose whole neighbourhood has low loss (a flat
minimum). The inner maximisation is solved to first order: the linearised
loss ``L(w) + e^T grad L(w)`` is largest at the dual vector of the gradient
(the paper's Eq. 2, with p = 2)

    e_hat(w) = rho grad L(w) / ||grad L(w)||_2,

and the gradient of ``L^SAM`` is approximated by the gradient *at the
perturbed point*, dropping the second-order terms that come from
differentiating through ``e_hat(w)`` (Eq. 3):

    g_SAM = grad L(w) |_{w + e_hat(w)}.

Algorithm 1 then updates ``w`` with ``g_SAM`` (SGD with momentum in the
paper's experiments; any base optimizer here). A SAM step costs two
gradient evaluations on the same batch: one at ``w``, one at ``w + e_hat``.

ASAM (adaptive sharpness; Kwon, Kim, Park, Choi, "ASAM: Adaptive
Sharpness-Aware Minimization for Scale-Invariant Learning of Deep Neural
Networks", ICML 2021, arXiv:2102.11600) measures the ball in the rescaled
coordinates ``T_w^{-1} e`` with ``T_w = diag(|w|) + eta I``, which makes the
sharpness invariant to rescalings of the weights that leave the network's
function unchanged. The first-order maximiser becomes (ASAM's Eq. 6)

    e_hat(w) = rho T_w^2 grad L(w) / ||T_w grad L(w)||_2

(``adaptive=True``, with ``eta``; ``T_w = I`` recovers SAM).

Use: ``create("sam", inner=create("sgd", lr=0.1, momentum=0.9), rho=0.05)``.
The inner optimizer is handed an oracle whose gradient at ``w`` is
``g_SAM(w)``; its loss is ``L(w + e_hat(w))``, the first-order estimate of
``L^SAM(w)`` (so an inner method that reads the loss, a line search or a
Polyak step, sees the SAM objective). An inner method that calls the oracle
several times per step gets a SAM gradient at every point it asks about.
The rich parts of the oracle (``loss``, ``hvp``, ``per_sample_grads``) pass
through unperturbed. State: ``{"step": t, "inner": <inner state>}``.

Conventions that differ between implementations, and the choices made:

* **eps in the normalisation.** The paper divides by ``||g||``; the torch
  implementations (davda54/sam, pytorch_optimizer.SAM) divide by
  ``||g|| + 1e-12``. Default ``eps = 1e-12`` (a relative change of 1e-12
  once ``||g||`` is of order 1); ``eps = 0`` is the paper's formula, and a
  zero gradient then gives a zero perturbation instead of 0/0.
* **ASAM's ``T_w`` is applied to every parameter**, biases included, with
  ``eta = 0.01`` (ASAM's default) as in ``reference.curvature.worst_case_loss``;
  the official ASAM code rescales only the tensors named ``weight`` (biases
  get ``T = 1``). pytorch_optimizer.SAM(adaptive=True) and davda54/sam use
  ``T_w = |w|`` (``eta = 0``) on every tensor: ``adaptive=True, eta=0``
  matches them (checked against the golden file). ASAM's experiments use a
  larger ``rho`` than SAM (0.5 to 2 on CIFAR, where SAM uses 0.05 to 0.1):
  the default ``rho = 0.05`` is SAM's.
* **Only the paper's p = 2 ball** is implemented: the paper found p = 2 best
  (its Appendix C.5) and uses it in every experiment.
* **Weight decay** belongs to the inner optimizer (``create("sgd",
  weight_decay=...)``): the paper adds ``lambda ||w||^2`` to the training
  loss, outside the max, and the torch implementations hand the decay to
  the base optimizer. The perturbation is computed from the loss gradient
  alone.
* **Second-order terms** (the derivative of ``e_hat(w)``) are dropped, as in
  the paper's Eq. 3 and every implementation; the paper reports that keeping
  them hurts.

**m-sharpness and the batch.** ``e_hat`` is computed from the gradient of
the batch the oracle is built on, and ``g_SAM`` is evaluated on that same
batch. In the paper's data-parallel implementation each accelerator computes
its own ``e_hat`` on its own ``m`` examples and the ``g_SAM`` of the
accelerators are averaged: "m-sharpness". The paper (Sec. 4.1, Fig. 3)
found that smaller ``m`` generalises better and that m-sharpness correlates
better with the generalisation gap than full-batch sharpness. To run
m-SAM, average the steps' ``g_SAM`` over sub-batch oracles (one per ``m``
examples), e.g. with an oracle that splits its batch; to *measure*
m-sharpness use ``reference.curvature.m_sharpness``. With a full-batch
oracle this wrapper is full-batch ("n-") SAM.

Peer: pytorch_optimizer.SAM (driven through its ``step(closure)``:
``first_step`` perturbs with the stored gradients, the closure recomputes
them at the perturbed point, ``second_step`` restores the weights and runs
the base optimizer); golden trajectories in ``tests/golden/sam_family.npz``,
checked by ``tests/test_sam_family.py`` to 1e-10.

Variants (SAM-ON, Fisher-mask SAM, AWP, ...) subclass :class:`SAM` and
override :meth:`SAM.perturbation` (and :meth:`SAM.prepare` for state such as
a mask).
"""
from __future__ import annotations

from .. import tree
from ..backend import xp_of
from .base import Optimizer, check_grads, check_range, create, register
from .sgd import SGD

__all__ = ["SAM", "sam_perturbation", "PerturbedOracle", "safe_scale"]


def safe_scale(numerator, norm, eps):
    """``numerator / (norm + eps)`` as a 0-d array, and ``0`` where ``norm + eps == 0``.

    The guard keeps ``eps = 0`` (the paper's formula) finite for a zero
    gradient, without a host synchronisation (``xp.where``)."""
    xp = xp_of(norm)
    denom = norm + eps
    positive = denom > 0
    return xp.where(positive, numerator / xp.where(positive, denom, 1.0), 0.0).astype(norm.dtype)


def sam_perturbation(params, grads, rho, adaptive=False, eta=0.01, eps=1e-12):
    """``e_hat(w)``: ``rho g / (||g|| + eps)``, or with ``adaptive`` ``rho T^2 g / (||T g|| + eps)``, ``T = |w| + eta``.

    ``rho``, ``eta`` and ``eps`` are Python floats (so the result keeps the
    params' dtype); the norms are of the whole tree as one vector.
    """
    if not adaptive:
        scale = safe_scale(rho, tree.global_norm(grads), eps)           # rho / ||g||
        return tree.scale(scale, grads)                                  # e = rho g / ||g||
    T = tree.map(lambda w: xp_of(w).abs(w) + eta, params)                # T_w = |w| + eta
    Tg = tree.zip_map(lambda t, g: t * g, T, grads)                      # T_w g
    scale = safe_scale(rho, tree.global_norm(Tg), eps)                   # rho / ||T_w g||
    return tree.zip_map(lambda t, tg: scale * (t * tg), T, Tg)           # e = rho T_w^2 g / ||T_w g||


class PerturbedOracle:
    """The oracle the inner optimizer sees: at ``w`` it returns ``(L(w + e), grad L(w + e))``.

    ``perturb(w, loss, grads) -> e`` (a dict like ``w``, or ``None`` for no
    perturbation) is called with the loss and gradient at ``w`` (both
    gradients are checked, naming the parameter and the step). Attributes
    other than the call (``loss``, ``hvp``, ``calls``, ...) are the wrapped
    oracle's, unperturbed.
    """

    def __init__(self, oracle, perturb, where, t):
        self._oracle, self._perturb, self._where, self._t = oracle, perturb, where, t

    def __call__(self, params):
        loss, grads = self._oracle(params)                  # g = grad L(w)
        check_grads(self._where, params, grads, self._t)
        e = self._perturb(params, loss, grads)              # e_hat(w)
        if e is None:
            return loss, grads
        w_adv = tree.add(params, e)                         # w + e_hat
        loss_adv, grads_adv = self._oracle(w_adv)           # g_SAM = grad L(w + e_hat)
        check_grads(self._where, params, grads_adv, self._t)
        return loss_adv, grads_adv

    def __getattr__(self, name):
        return getattr(self._oracle, name)


def check_inner(opt, hp):
    if not isinstance(hp["inner"], Optimizer):
        raise ValueError(f"{opt.name}: inner must be an optimizer such as create('sgd', lr=0.1, momentum=0.9), "
                         f"got {type(hp['inner']).__name__}")


@register("sam")
class SAM(Optimizer):
    paper = dict(title="Sharpness-Aware Minimization for Efficiently Improving Generalization",
                 authors="Foret, Kleiner, Mobahi, Neyshabur", year=2021, arxiv="2010.01412",
                 family="sharpness")
    defaults = dict(inner=None, rho=0.05, adaptive=False, eta=0.01, eps=1e-12)
    scheduled = ()
    # the example's lr = 1e-2 with momentum 0.9 diverges on Rosenbrock from (-1.2, 1) (curvature ~ 1000)
    descent_hparams = {"rosenbrock": dict(inner=SGD(lr=1e-4, momentum=0.9))}

    @classmethod
    def example_hparams(cls):
        """A wrapper needs an inner optimizer (contract tests, demos): the paper's SGD with momentum."""
        return dict(inner=create("sgd", lr=1e-2, momentum=0.9))

    def check(self, hp):
        check_inner(self, hp)
        check_range("rho", hp["rho"], 0.0, where=self.name)
        check_range("eta", hp["eta"], 0.0, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        if not isinstance(hp["adaptive"], bool):
            raise ValueError(f"{self.name}: adaptive must be True or False, got {hp['adaptive']!r}")

    def init_slots(self, params):
        return {"inner": self.hparams["inner"].init(params)}

    # ---- the two hooks a variant overrides ------------------------------------------
    def prepare(self, params, state, oracle, t, hp):
        """Slots to refresh before the step (e.g. a mask); returns a dict merged into the state."""
        return {}

    def perturbation(self, params, loss, grads, slots, hp):
        """``e_hat(w)`` from the gradient at ``w`` (Eq. 2; ASAM's Eq. 6 with ``adaptive``)."""
        return sam_perturbation(params, grads, float(hp["rho"]), hp["adaptive"], float(hp["eta"]),
                                float(hp["eps"]))

    # ---- the step ------------------------------------------------------------------------
    def step(self, params, state, oracle):
        """The inner optimizer's step, fed ``g_SAM = grad L(w + e_hat(w))``; returns ``(params, state)``."""
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        slots = {k: v for k, v in state.items() if k not in ("step", "inner")}
        slots.update(self.prepare(params, state, oracle, t, hp))
        perturbed = PerturbedOracle(oracle, lambda w, loss, g: self.perturbation(w, loss, g, slots, hp),
                                    self.name, t)
        new_params, inner_state = hp["inner"].step(params, state["inner"], perturbed)
        return new_params, {**slots, "inner": inner_state, "step": t}
