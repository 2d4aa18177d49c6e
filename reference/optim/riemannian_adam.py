"""Riemannian Adaptive Optimization Methods.

Gary Bécigneul and Octavian-Eugen Ganea. ICLR 2019. arXiv:1810.00760

Adam's per-coordinate adaptivity has no meaning on a general manifold (there
are no intrinsic coordinates), but on a *product* of manifolds
``M = M_1 x ... x M_n`` each factor can get its own adaptive step size. For
each component ``i`` (Algorithms 1-2, RAMSGRAD / RADAM):

    g_t^i    = grad_R f_t(x_t)^i                      Riemannian gradient
    m_t^i    = beta1 tau_{t-1}^i + (1 - beta1) g_t^i  first moment (a tangent vector at x_t^i)
    v_t^i    = beta2 v_{t-1}^i + (1 - beta2) ||g_t^i||^2_{x_t^i}     a SCALAR per component
    vhat_t^i = max(vhat_{t-1}^i, v_t^i)               (RAMSGRAD; RADAM: vhat_t^i = v_t^i)
    x_{t+1}^i = exp_{x_t^i}(-alpha m_t^i / sqrt(vhat_t^i))
    tau_t^i  = P_{x_t^i -> x_{t+1}^i}(m_t^i)          parallel transport of the momentum

With every ``M_i = R`` (one real coordinate per component) this is exactly
Adam / AMSGrad, which the paper calls the tightness of the generalisation.

Which parameters live on which manifold is the hyperparameter ``manifolds``,
a dict ``{param key: manifold name}``; every other key is Euclidean and is
updated by the very same kernel as ``reference.optim.adam`` (bit-for-bit
Adam; with ``amsgrad=True`` bit-for-bit ``amsgrad(variant="torch")``).
Manifolds implemented:

* ``"sphere"``: each row (last axis) of the parameter is a point of the unit
  sphere S^{d-1} (a 1-D parameter is one point), i.e. a product of spheres,
  one adaptive component per row. Riemannian gradient: the tangent
  projection ``g - <g, x> x``; the metric is the induced Euclidean one, so
  ``||g||_x^2 = sum g^2`` over the row; exponential map
  ``exp_x(u) = cos(|u|) x + sin(|u|) u/|u|``; parallel transport along that
  geodesic ``P(m) = m - <u, m>/|u|^2 ((1 - cos|u|) u + |u| sin|u| x)``.

* ``"poincare"``: each row (last axis) is a point of the Poincaré ball
  ``D_c^d = {x : c |x|^2 < 1}`` of curvature ``-c`` (hyperparameter ``c``,
  default 1), i.e. a product of balls, one adaptive component per row: the
  paper's WordNet setting, where an ``(n, d)`` embedding matrix is ``n``
  points and each gets its own adaptive step. The metric is conformal,
  ``g_x = lambda_x^2 I`` with ``lambda_x = 2 / (1 - c |x|^2)``, so

      grad_R f(x) = grad f(x) / lambda_x^2 = ((1 - c|x|^2)^2 / 4) grad f(x)
      ||g||_x^2   = lambda_x^2 sum g^2                      (over the row)
      exp_x(u)    = x (+) tanh(sqrt(c) lambda_x |u| / 2) u / (sqrt(c) |u|)
      P_{x->y}(v) = (lambda_x / lambda_y) gyr[y, -x] v      (parallel transport)

  with Möbius addition
  ``x (+) y = ((1 + 2c<x,y> + c|y|^2) x + (1 - c|x|^2) y) / (1 + 2c<x,y> + c^2|x|^2|y|^2)``
  and the gyration ``gyr[a, b] w = -(a (+) b) (+) (a (+) (b (+) w))`` in its
  expanded closed form (the formulas of Ganea, Bécigneul & Hofmann 2018,
  "Hyperbolic Neural Networks", which the paper uses for its Poincaré-ball
  experiments).
  After every step the point is pulled back strictly inside the ball as
  geoopt does: a row with ``|x| > (1 - eps_ball)/sqrt(c)`` is rescaled to
  that norm, ``eps_ball = 1e-5`` in float64 and ``4e-3`` in float32 (and
  lower precisions), :data:`BALL_EPS`. Without it, ``tanh`` rounding to 1
  in floating point would put far points *on* the boundary, where
  ``lambda_x`` is infinite. Example (the tree embedding problem of
  ``reference.problems.hyperbolic_problems``)::

      opt = reference.optim.create("riemannian_adam", lr=0.3, manifolds={"embedding": "poincare"})

Conventions (the paper vs. implementations):

* ``retraction="exp"`` (default, the paper: exponential map + parallel
  transport) or ``"projection"``: the first-order retraction "step in the
  ambient space, then put the point back on the manifold". On the sphere
  that is geoopt's ``Sphere``: ``(x + u)/|x + u|`` and vector transport by
  projecting onto the new tangent space. On the ball it is geoopt's
  ``PoincareBall`` (the retraction of Nickel & Kiela's Poincaré embeddings):
  ``x + u`` clipped into the ball, and the momentum moved by the parallel
  transport ``P_{x->y}`` above (geoopt's ``retr_transp``); ``"exp"`` on the
  ball is geoopt's ``PoincareBallExact``. Both are checked against geoopt.
* ``bias_correction=True`` (default; Adam's ``1 - beta^t`` factors, as in
  geoopt.optim.RiemannianAdam and torch, and needed for "Euclidean = Adam")
  or ``False`` (Algorithms 1-2 as printed, without bias correction, as in
  Reddi et al.'s AMSGrad). With it, AMSGrad's max is over the raw ``v`` and
  the correction applied afterwards (the torch / geoopt convention).
* ``eps`` is added outside the square root (Adam, torch, geoopt); the paper
  has no eps. ``weight_decay`` is coupled L2 added to the *Euclidean*
  gradient before the projection (geoopt's convention).
* The second moment of a sphere or ball parameter of shape ``(..., d)`` is
  stored with shape ``(..., 1)``: one scalar per component, as the paper
  says (geoopt stores it broadcast to the parameter's shape with equal
  values in a row; the trajectories are the same). On the ball it is the
  squared *Riemannian* norm ``lambda_x^2 |grad_R f|^2 = |grad f|^2 /
  lambda_x^2`` (the paper's ``||g_t^i||^2_{x_t^i}``; geoopt's
  ``component_inner``), measured at the point ``x_t`` where ``g_t`` lives,
  not transported (neither the paper nor geoopt transports ``v``: it is a
  scalar).
* ``stabilize``: geoopt can re-project points every ``k`` steps; here the
  ball points are clipped inside every step (as geoopt's ``retr``/``expmap``
  already do), so there is nothing left to stabilise.

Defaults: lr = 0.001, beta1 = 0.9, beta2 = 0.999 (Adam's; the paper's
experiments tune lr), eps = 1e-8, amsgrad = False (RADAM), c = 1 (the unit
Poincaré ball of curvature -1 of the paper's experiments; used only by
``"poincare"`` parameters).
"""
from __future__ import annotations

from functools import partial

from ..backend import xp_of
from .adam import adam_kernel, check_adam_hparams
from .amsgrad import moments_kernel, step_kernel
from .base import Optimizer, check_range, register
from .common import bias_correction, l2_gradient

MANIFOLDS = ("euclidean", "sphere", "poincare")
RETRACTIONS = ("exp", "projection")


# ---- the unit sphere, row-wise (last axis) ------------------------------------------

def _row_dot(a, b):
    return (a * b).sum(axis=-1, keepdims=True)


def sphere_proj(x, u):
    """Projection onto the tangent space at ``x``: ``u - <u, x> x`` (also the Riemannian gradient)."""
    return u - _row_dot(x, u) * x


def sphere_exp_transport(x, u, m):
    """``exp_x(u)`` and the parallel transport of ``m`` along the geodesic ``t -> exp_x(t u)``."""
    xp = xp_of(x)
    n = _row_dot(u, u) ** 0.5
    safe = xp.where(n > 0, n, xp.ones_like(n))
    c, s = xp.cos(n), xp.sin(n)
    y = c * x + (s / safe) * u
    coef = _row_dot(u, m) / (safe * safe)
    tau = m - coef * ((1.0 - c) * u + n * s * x)
    return y, tau


def sphere_retr_transport(x, u, m):
    """geoopt's Sphere: retraction ``(x + u)/|x + u|``, transport by projection onto the new tangent space."""
    y = x + u
    y = y / _row_dot(y, y) ** 0.5
    return y, sphere_proj(y, m)


# ---- the Poincaré ball of curvature -c, row-wise (last axis) -----------------------

#: geoopt's clipping margin: rows are kept at norm <= (1 - BALL_EPS) / sqrt(c)
BALL_EPS = {"float64": 1e-5, "float32": 4e-3}


def ball_eps(dtype):
    """The clipping margin for ``dtype``: 1e-5 in float64, 4e-3 in float32 and lower precisions."""
    return BALL_EPS["float64"] if str(dtype) == "float64" else BALL_EPS["float32"]


def ball_lambda(x, c):
    """Conformal factor ``lambda_x = 2 / (1 - c |x|^2)``, one per row (shape ``(..., 1)``)."""
    return 2.0 / (1.0 - c * _row_dot(x, x))


def ball_rgrad(x, g, c):
    """Riemannian gradient ``g / lambda_x^2 = ((1 - c|x|^2)^2 / 4) g``."""
    return g / ball_lambda(x, c) ** 2


def ball_project(x, c):
    """Pull rows with ``|x| > (1 - eps)/sqrt(c)`` back onto that sphere (geoopt's ``projx``)."""
    xp = xp_of(x)
    max_norm = (1.0 - ball_eps(x.dtype)) / c ** 0.5
    n = _row_dot(x, x) ** 0.5
    return xp.where(n > max_norm, x * (max_norm / xp.maximum(n, 1e-15)), x)


def mobius_add(x, y, c):
    """``x (+) y``, Möbius addition on the ball of curvature -c."""
    xy, x2, y2 = _row_dot(x, y), _row_dot(x, x), _row_dot(y, y)
    num = (1.0 + 2.0 * c * xy + c * y2) * x + (1.0 - c * x2) * y
    return num / (1.0 + 2.0 * c * xy + c * c * x2 * y2)


def gyration(a, b, w, c):
    """``gyr[a, b] w = -(a (+) b) (+) (a (+) (b (+) w))`` in closed form."""
    ab, aw, bw = _row_dot(a, b), _row_dot(a, w), _row_dot(b, w)
    a2, b2 = _row_dot(a, a), _row_dot(b, b)
    A = -c * c * aw * b2 + c * bw + 2.0 * c * c * ab * bw
    B = -c * c * bw * a2 - c * aw
    D = 1.0 + 2.0 * c * ab + c * c * a2 * b2
    return w + 2.0 * (A * a + B * b) / D


def ball_transport(x, y, v, c):
    """Parallel transport ``P_{x->y}(v) = (lambda_x / lambda_y) gyr[y, -x] v`` along the geodesic."""
    return gyration(y, -x, v, c) * (ball_lambda(x, c) / ball_lambda(y, c))


def ball_exp(x, u, c):
    """``exp_x(u) = x (+) tanh(sqrt(c) lambda_x |u| / 2) u / (sqrt(c) |u|)`` (not yet clipped)."""
    xp = xp_of(x)
    n = _row_dot(u, u) ** 0.5
    safe = xp.where(n > 0, n, xp.ones_like(n))
    sc = c ** 0.5
    return mobius_add(x, xp.tanh(sc * ball_lambda(x, c) * n / 2.0) * u / (sc * safe), c)


def ball_exp_transport(x, u, m, c):
    """``x_{t+1} = exp_x(u)`` clipped into the ball, and ``m`` parallel-transported to it."""
    y = ball_project(ball_exp(x, u, c), c)
    return y, ball_transport(x, y, m, c)


def ball_retr_transport(x, u, m, c):
    """geoopt's PoincareBall: retraction ``x + u`` clipped into the ball, parallel transport of ``m``."""
    y = ball_project(x + u, c)
    return y, ball_transport(x, y, m, c)


@register("riemannian_adam")
class RiemannianAdam(Optimizer):
    paper = dict(title="Riemannian Adaptive Optimization Methods", authors="Bécigneul, Ganea", year=2019,
                 arxiv="1810.00760", family="optimizer-first-order")
    defaults = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False,
                    manifolds=None, retraction="exp", bias_correction=True, c=1.0)

    def check(self, hp):
        super().check(hp)
        check_adam_hparams(self, hp)
        check_range("c", hp["c"], 0.0, low_open=True, where=self.name)
        man = hp["manifolds"] or {}
        if not isinstance(man, dict):
            raise ValueError(f"{self.name}: manifolds must be a dict {{param key: manifold}}, got {man!r}")
        for k, v in man.items():
            if v not in MANIFOLDS:
                raise ValueError(f"{self.name}: manifolds[{k!r}]={v!r}; expected one of {MANIFOLDS}")
        if hp["retraction"] not in RETRACTIONS:
            raise ValueError(f"{self.name}: retraction must be one of {RETRACTIONS}, got {hp['retraction']!r}")

    def manifold(self, key):
        return (self.hparams["manifolds"] or {}).get(key, "euclidean")

    def init_slots(self, params):
        xp = xp_of(next(iter(params.values())))
        m, v = {}, {}
        for k, w in params.items():
            m[k] = xp.zeros_like(w)
            # one scalar second moment per manifold component (per row on the sphere and the ball)
            v[k] = xp.zeros_like(w) if self.manifold(k) == "euclidean" else xp.zeros_like(w[..., :1])
        slots = {"m": m, "v": v}
        if self.hparams["amsgrad"]:
            slots["vhat"] = {k: xp_of(a).zeros_like(a) for k, a in v.items()}
        return slots

    def update(self, params, grads, state, t, hp):
        g = l2_gradient(grads, params, hp["weight_decay"])
        b1, b2, lr, eps = hp["beta1"], hp["beta2"], hp["lr"], hp["eps"]
        bc1, bc2 = ((bias_correction(b1, t), bias_correction(b2, t)) if hp["bias_correction"] else (1.0, 1.0))
        amsgrad = hp["amsgrad"]
        new_w, slots = {}, {"m": {}, "v": {}}
        if amsgrad:
            slots["vhat"] = {}
        for k, x in params.items():
            if self.manifold(k) == "euclidean" and not amsgrad:
                # Adam exactly (the same kernel as reference.optim.adam)
                new_w[k], slots["m"][k], slots["v"][k] = adam_kernel(x, g[k], state["m"][k], state["v"][k],
                                                                     lr, b1, b2, eps, bc1, bc2)
                continue
            if self.manifold(k) == "euclidean":
                # AMSGrad exactly (reference.optim.amsgrad, variant="torch")
                m, v = moments_kernel(g[k], state["m"][k], state["v"][k], b1, b2)
                vhat = xp_of(v).maximum(state["vhat"][k], v)
                new_w[k] = step_kernel(x, m, vhat, lr, eps, bc1, bc2)
                slots["m"][k], slots["v"][k], slots["vhat"][k] = m, v, vhat
                continue
            # sphere / ball: state["m"] holds tau_{t-1}, already a tangent vector at x_t
            if self.manifold(k) == "sphere":
                rg = sphere_proj(x, g[k])                                  # g_t = grad_R f(x_t)
                sq = _row_dot(rg, rg)                                      # ||g_t||^2_x (induced metric)
                move = sphere_exp_transport if hp["retraction"] == "exp" else sphere_retr_transport
            else:
                c = float(hp["c"])                                         # a Python float keeps float32 float32
                rg = ball_rgrad(x, g[k], c)                                # g_t = grad f / lambda_x^2
                sq = ball_lambda(x, c) ** 2 * _row_dot(rg, rg)             # ||g_t||^2_x = lambda_x^2 |g_t|^2
                move = partial(ball_exp_transport if hp["retraction"] == "exp" else ball_retr_transport, c=c)
            m = b1 * state["m"][k] + (1.0 - b1) * rg                       # m_t
            v = b2 * state["v"][k] + (1.0 - b2) * sq                       # v_t
            if amsgrad:
                vhat = xp_of(v).maximum(state["vhat"][k], v)               # vhat_t
                slots["vhat"][k] = vhat
            else:
                vhat = v
            u = -lr * (m / bc1) / ((vhat / bc2) ** 0.5 + eps)              # -alpha m_t / sqrt(vhat_t)
            new_w[k], tau = move(x, u, m)                                  # x_{t+1}, tau_t
            slots["m"][k], slots["v"][k] = tau, v
        return new_w, slots
