"""AdaGrad Meets Muon: Adaptive Stepsizes for Orthogonal Updates.

Minxin Zhang, Yuxuan Liu, Hayden Schaeffer. 2025. arXiv:2509.02981

Muon steps a weight matrix along the *orthogonalised* momentum ``Orth(M) =
U V^T`` (``M = U S V^T``, its reduced SVD): every singular direction moves by
the same amount, a steepest-descent step in the spectral norm. How large
that step should be is left to a hand-tuned learning rate. AdaGO keeps the
direction and takes the step size from AdaGrad-Norm: one scalar per matrix
accumulates the (capped) squared gradient norms, and the step is the capped
current gradient norm over the square root of that sum:

    m_t       = mu m_{t-1} + (1 - mu) g_t                      (momentum, an EMA)
    v_t^2     = v_{t-1}^2 + min(||g_t||^2, gamma^2)              (AdaGrad-Norm accumulator)
    O_t       = Orth(m_t)                                        (U V^T)
    alpha_t   = max(eps, eta min(||g_t||, gamma) / v_t)          (adaptive stepsize, floored)
    theta_t   = theta_{t-1} - alpha_t O_t

(norms are Frobenius norms of the layer's gradient). The cap ``gamma`` keeps
one huge gradient from freezing the accumulator; the floor ``eps`` keeps the
step from vanishing. The paper proves optimal rates for nonconvex problems
in the deterministic and stochastic settings; memory is Muon's plus one
scalar per layer.

Orthogonalisation. ``orthogonalization="newton_schulz"`` (the default, what
Muon and the paper's experiments use in practice) runs Muon's quintic
Newton-Schulz iteration (Jordan et al. 2024): with ``X_0 = M / (||M||_F +
ns_eps)`` (transposed first if it has more rows than columns),

    A = X_k X_k^T,   X_{k+1} = a X_k + (b A + c A A) X_k,   (a, b, c) = (3.4445, -4.7750, 2.0315),

``ns_steps = 5`` times. These coefficients trade exactness for speed: the
singular values of the result lie roughly in [0.7, 1.2], not at 1.
``orthogonalization="svd"`` computes ``U V^T`` exactly (every singular value
1; the form the analysis assumes). The paper's algorithm box was not
available while this file was written; the iteration above is Muon's
reference one, which the paper builds on ("minimal modification to Muon").

Conventions:

* Tensors that are not matrices are treated as matrices: a vector of shape
  ``(n,)`` as the row ``(1, n)`` (whose ``U V^T`` is ``v / ||v||``), a scalar as
  ``(1, 1)``, a tensor with more dimensions as ``(shape[0], -1)``. (Muon and
  pytorch_optimizer hand non-matrix parameters to AdamW instead.)
* ``weight_decay``: decoupled, ``theta <- (1 - lr lambda) theta`` before the
  step (pytorch_optimizer's; the paper has none; default 0).
* ``denominator``: ``"v"`` divides by ``v_t = sqrt(v_t^2)`` as in the paper;
  ``"v_squared"`` divides by the accumulator ``v_t^2`` itself, which is what
  pytorch_optimizer.AdaGO 4.1.0 does (``step = lr min(||g||, gamma) / v``
  with ``v`` its running sum of squares). The option exists to check the rest
  of the update against that peer.
* The accumulator starts at ``v_0^2 = v0 ** 2`` (default ``v0 = 1e-3``, i.e.
  pytorch_optimizer's initial ``1e-6`` for the sum of squares).
* pytorch_optimizer also multiplies ``lr`` by ``sqrt(max(1, rows / cols))``
  (Keller Jordan's shape factor), runs Newton-Schulz in bfloat16 and
  normalises by ``max(||M||, 1e-7)``; not reproduced (the golden generator
  switches those off in the peer; with ``ns_eps = 0`` the normalisations agree).

Defaults (pytorch_optimizer's; the paper's experiment settings were not
available): lr (eta) = 5e-2, momentum (mu) = 0.95, gamma = 10, eps = 5e-4,
v0 = 1e-3, weight_decay = 0, ns_steps = 5, ns_eps = 1e-7.
Slots: ``momentum_buffer`` and ``v_squared`` (a 0-d array per tensor).
"""
from __future__ import annotations


from .. import tree
from ..backend import xp_of
from .base import Optimizer, check_int, check_range, register

__all__ = ["AdaGO", "newton_schulz", "orthogonalize_svd", "NS_COEFFICIENTS"]

#: Muon's quintic Newton-Schulz coefficients (a, b, c)
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
ORTHOGONALIZATIONS = ("newton_schulz", "svd")
DENOMINATORS = ("v", "v_squared")


def _as_matrix(x):
    if x.ndim == 0:
        return x.reshape(1, 1)
    if x.ndim == 1:
        return x.reshape(1, -1)
    return x.reshape(x.shape[0], -1)


def newton_schulz(m, steps=5, eps=1e-7, coefficients=NS_COEFFICIENTS):
    """Muon's quintic Newton-Schulz approximation of ``U V^T`` for a matrix ``m``."""
    xp = xp_of(m)
    a, b, c = coefficients
    transpose = m.shape[0] > m.shape[1]
    x = m.T if transpose else m
    norm = xp.sqrt(xp.vdot(x.ravel(), x.ravel())) + eps
    x = x / xp.where(norm > 0, norm, 1.0)                    # X_0 = M / (||M||_F + eps); 0 stays 0
    for _ in range(int(steps)):
        A = x @ x.T
        x = a * x + (b * A + c * (A @ A)) @ x
    return x.T if transpose else x


def orthogonalize_svd(m):
    """``U V^T`` from the reduced SVD of ``m`` (exact; zero singular values give zero directions)."""
    xp = xp_of(m)
    u, s, vt = xp.linalg.svd(m, full_matrices=False)
    keep = (s > s.max() * max(m.shape) * xp.finfo(m.dtype).eps).astype(m.dtype) if s.size else s
    return (u * keep) @ vt


@register("adago")
class AdaGO(Optimizer):
    paper = dict(title="AdaGrad Meets Muon: Adaptive Stepsizes for Orthogonal Updates",
                 authors="Zhang, Liu, Schaeffer", year=2025, arxiv="2509.02981", family="optimizer-first-order")
    defaults = dict(lr=5e-2, momentum=0.95, gamma=10.0, eps=5e-4, v0=1e-3, weight_decay=0.0, ns_steps=5,
                    ns_eps=1e-7, orthogonalization="newton_schulz", denominator="v")

    def check(self, hp):
        super().check(hp)
        check_range("momentum", hp["momentum"], 0.0, 1.0, high_open=True, where=self.name)
        check_range("gamma", hp["gamma"], 0.0, low_open=True, where=self.name)
        check_range("eps", hp["eps"], 0.0, where=self.name)
        check_range("v0", hp["v0"], 0.0, low_open=True, where=self.name)
        check_range("weight_decay", hp["weight_decay"], 0.0, where=self.name)
        check_range("ns_eps", hp["ns_eps"], 0.0, where=self.name)
        steps = hp["ns_steps"]
        check_int("ns_steps", steps, 1, where=self.name)
        if hp["orthogonalization"] not in ORTHOGONALIZATIONS:
            raise ValueError(f"{self.name}: orthogonalization must be one of {ORTHOGONALIZATIONS}, "
                             f"got {hp['orthogonalization']!r}")
        if hp["denominator"] not in DENOMINATORS:
            raise ValueError(f"{self.name}: denominator must be one of {DENOMINATORS}, got {hp['denominator']!r}")

    def init_slots(self, params):
        xp = xp_of(params)
        v0_sq = float(self.hparams["v0"]) ** 2
        return {"momentum_buffer": tree.zeros_like(params),
                "v_squared": {k: xp.full((), v0_sq, dtype=p.dtype) for k, p in params.items()}}

    def orthogonalize(self, m, hp):
        mat = _as_matrix(m)
        if hp["orthogonalization"] == "svd":
            o = orthogonalize_svd(mat)
        else:
            o = newton_schulz(mat, hp["ns_steps"], hp["ns_eps"])
        return o.reshape(m.shape)

    def update(self, params, grads, state, t, hp):
        mu, gamma, lr = hp["momentum"], hp["gamma"], hp["lr"]
        new_w, new_m, new_v = {}, {}, {}
        for k, w in params.items():
            xp = xp_of(w)
            g = grads[k]
            if hp["weight_decay"]:
                w = w * (1.0 - lr * hp["weight_decay"])                        # decoupled decay
            m = mu * state["momentum_buffer"][k] + (1.0 - mu) * g               # m_t
            g_norm = xp.sqrt(xp.vdot(g.ravel(), g.ravel()))                     # ||g_t||
            v_sq = state["v_squared"][k] + xp.minimum(g_norm * g_norm, gamma * gamma)   # v_t^2
            denom = xp.sqrt(v_sq) if hp["denominator"] == "v" else v_sq
            alpha = xp.maximum(lr * xp.minimum(g_norm, gamma) / denom, hp["eps"])       # alpha_t
            new_w[k] = w - alpha * self.orthogonalize(m, hp)                    # theta_t
            new_m[k], new_v[k] = m, v_sq.astype(w.dtype)
        return new_w, {"momentum_buffer": new_m, "v_squared": new_v}
