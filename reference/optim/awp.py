"""Adversarial Weight Perturbation Helps Robust Generalization.

Dongxian Wu, Shu-Tao Xia, Yisen Wang. NeurIPS 2020. arXiv:2004.05884

Adversarial training (AT, Madry et al. 2018) minimises the loss on
adversarial inputs, ``min_w (1/n) sum_i max_{||x'_i - x_i||_p <= epsilon}
l(f_w(x'_i), y_i)``. The paper finds that the flatness of the *weight* loss
landscape of this adversarial loss tracks the robust generalisation gap (the
gap between robust training and test accuracy, "robust overfitting"), and
adds an adversarial perturbation of the weights: a double perturbation of
inputs and weights,

    min_w max_{v in V} (1/n) sum_i max_{||x'_i - x_i|| <= epsilon} l(f_{w+v}(x'_i), y_i),

with ``V`` a layer-wise ball relative to the weights, ``||v_l|| <= gamma
||w_l||``. A step (the paper's Algorithm 1, AT-AWP, with one weight-ascent
step as in the official code):

    x'    = PGD(x; w)                                  K1 steps of l_inf PGD on the inputs
    g     = grad_w L(w; x')
    v_l   = gamma ||w_l|| g_l / ||g_l||                for every layer l (one ascent step)
    g_AWP = grad_w L(w + v; x')
    w    <- base optimizer step with g_AWP             (= (w + v) - eta g_AWP - v)

PGD (l_inf, the paper's attack): from a uniform random start in the
``epsilon``-box, ``pgd_steps`` steps ``x' <- clip_{[x - epsilon, x + epsilon]}
(x' + pgd_step_size sign(grad_x L))``.

Use: ``create("awp", inner=create("sgd", lr=0.1, momentum=0.9), gamma=5e-3,
epsilon=8/255, pgd_steps=10, pgd_step_size=2/255)`` on an oracle that offers
**input gradients**: ``oracle.inputs()`` (the batch's inputs),
``oracle.input_grads(params) -> (loss, d loss / d x)`` and
``oracle.with_inputs(x)`` (an oracle on the same labels with inputs ``x``),
as the oracles of ``reference.problems`` ``adversarial_mlp`` and
``layernorm_mlp`` do (``reference/problems/sam_problems.py``). An oracle
without them raises ``TypeError`` naming the missing capability. With
``pgd_steps = 0`` (or ``epsilon = 0``) there is no input attack and AWP is a
layer-wise weight perturbation of the natural loss, which any oracle serves.

Conventions and choices:

* **Defaults** are the paper's CIFAR-10 AT-AWP settings: ``gamma = 5e-3``,
  ``epsilon = 8/255``, PGD-10 with step ``2/255`` and a random start. For
  data not in ``[0, 1]`` pick ``epsilon`` on the data's scale.
* **Which weights**: as in the official code (csdongxian/AWP), only tensors
  with at least two dimensions (the layers' weight matrices and kernels) are
  perturbed; 1-D tensors (biases, normalization parameters) are not
  (``weights_only=True``; ``False`` perturbs every tensor, each as its own
  "layer").
* **One weight-ascent step** of length ``gamma ||w_l||`` (the official code's
  ``K2 = 1``, which lands on the boundary of ``V``; the paper's Algorithm
  allows several projected steps).
* ``eps = 1e-20`` guards ``||g_l||`` (the official code's ``EPS``).
* The input attack is not clipped to a data range (synthetic data have
  none); the official code clips images to ``[0, 1]``.
* No AWP warm-up (the official code can start the weight perturbation after
  a few epochs; set ``gamma`` by a schedule of your own if needed).
* **Randomness**: the PGD start of step ``t`` is drawn from
  ``numpy.random.default_rng([seed, t])`` with the ``seed`` kept in the state,
  so a resumed run draws the same starts.

State: ``{"step": t, "inner": <inner state>, "seed": seed}``. The inner
optimizer sees an oracle whose gradient is ``g_AWP`` and whose loss is
``L(w + v; x')``; ``gamma = 0`` with ``pgd_steps = 0`` is the inner optimizer
exactly (tested), and ``gamma = 0`` alone is PGD adversarial training.
"""
from __future__ import annotations


import numpy as np

from ..backend import xp_of
from .base import check_int, check_range, create, register
from .sam import SAM, check_inner, safe_scale

__all__ = ["AWP", "pgd_attack", "awp_perturbation", "INPUT_CAPABILITIES"]

INPUT_CAPABILITIES = ("inputs", "input_grads", "with_inputs")


def require_input_gradients(oracle, where):
    """Raise ``TypeError`` naming the first input-gradient capability the oracle lacks."""
    for name in INPUT_CAPABILITIES:
        if not callable(getattr(oracle, name, None)):
            raise TypeError(f"{where} needs input gradients for its PGD attack: the oracle lacks `{name}` "
                            f"(needs {', '.join(INPUT_CAPABILITIES)}; e.g. reference.problems "
                            f"'adversarial_mlp'); got {type(oracle).__name__}. pgd_steps=0 runs without an attack")


def pgd_attack(oracle, params, epsilon, steps, step_size, rng=None, where="pgd_attack"):
    """``x'``: ``steps`` steps of l_inf PGD from ``oracle.inputs()`` (random start if ``rng`` is given).

    Returns the adversarial inputs (host float64, like the data)."""
    require_input_gradients(oracle, where)
    x = np.asarray(oracle.inputs(), dtype=np.float64)
    x_adv = x + (rng.uniform(-epsilon, epsilon, x.shape) if rng is not None else 0.0)
    for _ in range(steps):
        _, gx = oracle.with_inputs(x_adv).input_grads(params)        # grad_x L(w; x')
        gx = np.asarray(gx.get() if hasattr(gx, "get") else gx)
        x_adv = np.clip(x_adv + step_size * np.sign(gx), x - epsilon, x + epsilon)
    return x_adv


def awp_perturbation(params, grads, gamma, weights_only=True, eps=1e-20):
    """``v_l = gamma ||w_l|| g_l / (||g_l|| + eps)`` per tensor (1-D tensors zero with ``weights_only``)."""
    out = {}
    for k, w in params.items():
        xp = xp_of(w)
        if weights_only and w.ndim < 2:
            out[k] = xp.zeros_like(w)
            continue
        scale = safe_scale(gamma * xp.linalg.norm(w.ravel()), xp.linalg.norm(grads[k].ravel()), eps)
        out[k] = scale * grads[k]
    return out


@register("awp")
class AWP(SAM):
    paper = dict(title="Adversarial Weight Perturbation Helps Robust Generalization",
                 authors="Wu, Xia, Wang", year=2020, arxiv="2004.05884", family="sharpness")
    defaults = dict(inner=None, gamma=5e-3, epsilon=8 / 255, pgd_steps=10, pgd_step_size=2 / 255,
                    random_start=True, weights_only=True, seed=0, eps=1e-20)

    @classmethod
    def example_hparams(cls):
        """An inner optimizer and no input attack: the contract tests' oracles have no input gradients."""
        return dict(inner=create("sgd", lr=1e-2, momentum=0.9), pgd_steps=0)

    def check(self, hp):
        check_inner(self, hp)
        check_range("gamma", hp["gamma"], 0.0, where=self.name)
        check_range("epsilon", hp["epsilon"], 0.0, where=self.name)
        check_range("pgd_step_size", hp["pgd_step_size"], 0.0, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        for name in ("pgd_steps", "seed"):
            v = hp[name]
            check_int(name, v, 0, where=self.name)
        for name in ("random_start", "weights_only"):
            if not isinstance(hp[name], bool):
                raise ValueError(f"{self.name}: {name} must be True or False, got {hp[name]!r}")

    def init_slots(self, params):
        return {"inner": self.hparams["inner"].init(params), "seed": int(self.hparams["seed"])}

    def perturbation(self, params, loss, grads, slots, hp):
        """``v``: the layer-wise weight perturbation from the gradient on the adversarial inputs."""
        return awp_perturbation(params, grads, float(hp["gamma"]), hp["weights_only"], float(hp["eps"]))

    def step(self, params, state, oracle):
        """PGD on the inputs, then SAM's machinery with the layer-wise ``v`` on the adversarial oracle."""
        t = int(state["step"]) + 1
        hp = self.hparams_at(t)
        if int(hp["pgd_steps"]) > 0 and float(hp["epsilon"]) > 0:
            rng = np.random.default_rng([int(state["seed"]), t]) if hp["random_start"] else None
            x_adv = pgd_attack(oracle, params, float(hp["epsilon"]), int(hp["pgd_steps"]),
                               float(hp["pgd_step_size"]), rng, self.name)
            oracle = oracle.with_inputs(x_adv)                               # the batch on x'
        return super().step(params, state, oracle)
