"""Normalization Layers Are All That Sharpness-Aware Minimization Needs.

Maximilian Mueller, Tiffany Vlaar, David Rolnick, Matthias Hein. NeurIPS 2023. arXiv:2306.04226

SAM-ON ("SAM-OnlyNorm") is SAM whose ascent step perturbs *only* the affine
parameters of the normalization layers (BatchNorm's or LayerNorm's ``gamma``
and ``beta``, typically 0.1% of all parameters); every other parameter stays
where it is. With ``N`` the set of normalization parameters,

    g     = grad L(w)
    e_N   = rho g_N / ||g_N||,    e_i = 0 for i not in N
    g_ON  = grad L(w + e)                          (the gradient of *all* parameters)
    w    <- base optimizer step with g_ON

The norm is taken over the normalization parameters only, so the
perturbation has length ``rho`` inside that subspace. The paper finds that
SAM-ON generalises better than SAM on all parameters ("SAM-all") for
ResNets (BatchNorm) and ViTs (LayerNorm), for SAM and its variants (ASAM,
...), and that other sparse perturbations of the same size do not do as
well; it also finds SAM-ON's minima can be *sharper*, casting doubt on
sharpness being the whole story. The adaptive variant (ASAM-ON) restricts
ASAM's ``e = rho T^2 g / ||T g||``, ``T = |w| + eta``, the same way
(``adaptive=True``).

Use: ``create("sam_on", inner=create("sgd", lr=0.1, momentum=0.9), rho=0.5)``.
Which parameters are normalization parameters is decided by **name**, as in
the official code: a key belongs to ``N`` when it contains one of
``patterns`` (default ``("norm", "bn")``, the official code's test, which
catches ``"bn1.weight"``, ``"layer1.0.norm.bias"``,
``"norm0.weight"`` of ``reference.problems`` ``layernorm_mlp``). Give your
own patterns for other naming schemes. A step on params with no matching
key raises ``ValueError`` naming the patterns and the keys (perturbing
nothing silently would be the inner optimizer in disguise).

Conventions and choices:

* ``rho = 0.5``: the official code's default (SAM-ON's radius is larger than
  SAM's since the perturbed subspace is tiny; its README example runs
  ASAM-ON with ``rho = 10``).
* As in ``sam``: ``eps = 1e-12`` in the normalisation (the official code
  uses 1e-16), ``T_w`` applied to every selected parameter (the official
  code rescales only tensors named ``weight`` unless ``normalize_bias``).
* With patterns that select every key, SAM-ON is SAM, bit for bit (tested).

State: ``{"step": t, "inner": <inner state>}`` (the selection is recomputed
from the keys, which never change).
"""
from __future__ import annotations

from .. import tree
from .base import create, register
from .sam import SAM, sam_perturbation
from .sgd import SGD

__all__ = ["SAMON", "normalization_keys"]


def normalization_keys(params, patterns=("norm", "bn")):
    """The keys of ``params`` that contain one of ``patterns`` (the perturbed set ``N``), in order."""
    return [k for k in params if any(p in k for p in patterns)]


@register("sam_on")
class SAMON(SAM):
    paper = dict(title="Normalization Layers Are All That Sharpness-Aware Minimization Needs",
                 authors="Mueller, Vlaar, Rolnick, Hein", year=2023, arxiv="2306.04226", family="sharpness")
    defaults = dict(inner=None, rho=0.5, patterns=("norm", "bn"), adaptive=False, eta=0.01, eps=1e-12)
    # the example's lr = 1e-2 with momentum 0.9 diverges on Rosenbrock from (-1.2, 1) (curvature ~ 1000)
    descent_hparams = {"rosenbrock": dict(inner=SGD(lr=1e-4, momentum=0.9), rho=0.05)}

    @classmethod
    def example_hparams(cls):
        """An inner optimizer, and patterns for the contract tests' params, which have no normalization
        layers: "bias" and "w" select keys of both their two-key params and their one-key problems."""
        return dict(inner=create("sgd", lr=1e-2, momentum=0.9), patterns=("bias", "w"))

    def check(self, hp):
        super().check(hp)
        pats = hp["patterns"]
        if isinstance(pats, str) or not isinstance(pats, (tuple, list)) or not pats \
                or not all(isinstance(p, str) and p for p in pats):
            raise ValueError(f"{self.name}: patterns must be a non-empty tuple of non-empty strings "
                             f"(substrings of the normalization parameters' keys), got {pats!r}")

    def perturbation(self, params, loss, grads, slots, hp):
        """``e`` on the normalization parameters (SAM's or ASAM's formula there), zero elsewhere."""
        keys = normalization_keys(params, hp["patterns"])
        if not keys:
            raise ValueError(f"{self.name}: no parameter key contains one of patterns={tuple(hp['patterns'])!r}; "
                             f"keys are {list(params)}. Name the normalization parameters or pass patterns=")
        sub = sam_perturbation({k: params[k] for k in keys}, {k: grads[k] for k in keys}, float(hp["rho"]),
                               hp["adaptive"], float(hp["eta"]), float(hp["eps"]))
        zeros = tree.zeros_like({k: v for k, v in params.items() if k not in sub})
        return {k: sub[k] if k in sub else zeros[k] for k in params}
