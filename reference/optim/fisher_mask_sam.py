"""Improving Sharpness-Aware Minimization with Fisher Mask for Better Generalization on Language Models.

Qihuang Zhong, Liang Ding, Li Shen, Peng Mi, Juhua Liu, Bo Du, Dacheng Tao. Findings of EMNLP 2022.
arXiv:2210.05497

SAM perturbs every parameter; FSAM perturbs only the parameters that matter
most for the training loss, judged by their Fisher information, and leaves
the rest unperturbed (a sparse perturbation). With the diagonal empirical
Fisher estimated from per-example gradients ``g_i`` of ``N_F`` examples,

    F_j = (1 / N_F) sum_i (g_i)_j^2,

the binary **Fisher mask** ``m`` keeps the ``k = (1 - s) n`` coordinates with
the largest ``F_j`` (``s`` the sparse ratio, ``n`` the number of parameters,
top-k over all parameters together), refreshed every ``T_m`` steps. A step:

    g     = grad L(w)
    e     = rho (m * g) / ||m * g||          (zero outside the mask, ||e|| = rho)
    g_F   = grad L(w + e)
    w    <- base optimizer step with g_F     (AdamW in the paper)

The paper reports FSAM above SAM on GLUE/SuperGLUE fine-tuning, with the
largest gains when training data are scarce.

Use: ``create("fisher_mask_sam", inner=create("adamw", lr=1e-3), rho=0.05,
sparsity=0.9, mask_interval=100)``. The Fisher information needs
**per-sample gradients**: the oracle must offer ``.per_sample_grads(params)``
(every ``reference.problems`` oracle on examples does); a plain oracle raises
``TypeError`` naming ``per_sample_grads``. The mask is computed on the step's
batch (its first ``fisher_samples`` examples; ``None``: all of them) at steps
``1, 1 + T_m, 1 + 2 T_m, ...``, and kept in the state in between.
``fisher="batch"`` replaces the per-example average by the square of the
batch gradient (a one-sample estimate, for objectives without examples such
as Rosenbrock, or plain oracles); it is not the paper's estimator.

State: ``{"step": t, "inner": <inner state>, "mask": {key: 0/1 array in the
params' dtype}}`` (all ones before the first step).

Conventions and choices:

* **Normalisation of the masked gradient**: ``rho (m * g) / ||m * g||``, the
  sparse perturbation of the Fisher-mask SAM family (SSAM-F, Mi et al.
  2022, same group), whose norm is ``rho``. (Masking ``rho g / ||g||``
  afterwards would shrink the perturbation by ``||m * g|| / ||g||``.)
* **Defaults** ``sparsity = 0.9`` (a perturbation on 10% of the
  parameters, the paper's sparse setting), ``mask_interval = 100`` and
  ``fisher_samples = None`` (the step's batch) are this library's choices
  for small problems; the paper tunes both ``s`` and ``T_m`` (its RQ4).
  ``rho = 0.05`` as in SAM.
* **Ties** in ``F`` are broken by position (the params' key order, then C
  order), so the mask is deterministic; ``k = round((1 - s) n)``, at least 1.
* ``sparsity = 0`` keeps every coordinate: FSAM is then SAM, bit for bit
  (tested).
"""
from __future__ import annotations

import numbers

from .. import tree
from ..backend import xp_of
from .base import check_grads, check_range, create, register
from .sam import SAM, check_inner, safe_scale
from .sgd import SGD

__all__ = ["FisherMaskSAM", "empirical_fisher_diagonal", "fisher_mask", "FISHER_ESTIMATORS"]

FISHER_ESTIMATORS = ("per_sample", "batch")


def empirical_fisher_diagonal(oracle, params, n_samples=None, where="fisher_mask_sam"):
    """``F_j = mean_i (g_i)_j^2`` over the oracle's batch (its first ``n_samples`` examples)."""
    psg = getattr(oracle, "per_sample_grads", None)
    if not callable(psg):
        raise TypeError(f"{where} needs per-sample gradients, `per_sample_grads`, for the Fisher information: "
                        f"pass a rich oracle with .per_sample_grads(params) (e.g. problem.oracle(batch)); "
                        f"got {type(oracle).__name__}")
    per = psg(params)
    if n_samples is not None:
        per = {k: v[:n_samples] for k, v in per.items()}
    return {k: (v * v).mean(axis=0).astype(params[k].dtype) for k, v in per.items()}


def fisher_mask(fisher, sparsity):
    """The 0/1 mask (params' dtype) keeping the ``round((1 - sparsity) n)`` largest entries of ``fisher``."""
    flat, spec = tree.flatten(fisher)
    xp = xp_of(flat)
    n = int(flat.shape[0])
    k = max(1, int(round((1.0 - sparsity) * n)))
    order = xp.argsort(-flat, kind="stable") if xp.__name__ == "numpy" else xp.argsort(-flat)
    keep = xp.zeros(n, dtype=flat.dtype)
    keep[order[:k]] = 1
    return {key: v.copy() for key, v in tree.unflatten(keep, spec).items()}


@register("fisher_mask_sam")
class FisherMaskSAM(SAM):
    paper = dict(title="Improving Sharpness-Aware Minimization with Fisher Mask for Better Generalization on "
                       "Language Models",
                 authors="Zhong, Ding, Shen, Mi, Liu, Du, Tao", year=2022, arxiv="2210.05497", family="sharpness")
    defaults = dict(inner=None, rho=0.05, sparsity=0.9, mask_interval=100, fisher_samples=None,
                    fisher="per_sample", eps=1e-12)
    # the example's lr = 1e-2 with momentum 0.9 diverges on Rosenbrock from (-1.2, 1) (curvature ~ 1000)
    descent_hparams = {"rosenbrock": dict(inner=SGD(lr=1e-4, momentum=0.9))}

    @classmethod
    def example_hparams(cls):
        """An inner optimizer, and the batch-gradient Fisher: the contract tests' objectives (a plain
        quadratic oracle, Rosenbrock) have no examples to take per-sample gradients of."""
        return dict(inner=create("sgd", lr=1e-2, momentum=0.9), fisher="batch")

    def check(self, hp):
        check_inner(self, hp)
        check_range("rho", hp["rho"], 0.0, where=self.name)
        check_range("sparsity", hp["sparsity"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        T = hp["mask_interval"]
        if isinstance(T, bool) or not isinstance(T, numbers.Integral) or T < 1:
            raise ValueError(f"{self.name}: mask_interval must be an integer >= 1 (steps between mask updates), "
                             f"got {T!r}")
        if hp["fisher"] not in FISHER_ESTIMATORS:
            raise ValueError(f"{self.name}: fisher must be one of {list(FISHER_ESTIMATORS)}, got {hp['fisher']!r}")
        n = hp["fisher_samples"]
        if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
            raise ValueError(f"{self.name}: fisher_samples must be None (the whole batch) or an integer >= 1, "
                             f"got {n!r}")

    def init_slots(self, params):
        return {"inner": self.hparams["inner"].init(params), "mask": tree.full_like(params, 1)}

    def prepare(self, params, state, oracle, t, hp):
        """Every ``mask_interval`` steps (from step 1): the Fisher mask from the batch's per-sample gradients."""
        if (t - 1) % int(hp["mask_interval"]) != 0:
            return {}
        if hp["fisher"] == "per_sample":
            fisher = empirical_fisher_diagonal(oracle, params, hp["fisher_samples"], self.name)
        else:                                                   # the squared batch gradient
            fisher = tree.map(lambda g: g * g, oracle(params)[1])
        check_grads(self.name, params, fisher, t)               # a NaN/Inf here names the parameter
        return {"mask": fisher_mask(fisher, float(hp["sparsity"]))}

    def perturbation(self, params, loss, grads, slots, hp):
        """``e = rho (m * g) / ||m * g||``."""
        mg = tree.zip_map(lambda m, g: m * g, slots["mask"], grads)
        return tree.scale(safe_scale(float(hp["rho"]), tree.global_norm(mg), float(hp["eps"])), mg)
