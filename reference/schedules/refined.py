"""When, Why and How Much? Adaptive Learning Rate Scheduling by Refinement.

Aaron Defazio, Ashok Cutkosky, Harsh Mehta, Konstantin Mishchenko. 2023.
arXiv:2310.07831 (later versions: "Optimal Linear Decay Learning Rate
Schedules and Further Refinements")

The paper bounds the loss of the *last* iterate of SGD (and of any method
with a regret bound) run with step sizes ``eta_t = eta w_t``. In the worst
case the bound is minimised by **linear decay to zero**, ``w_t = 1 - t/T``
(``reference.schedules.linear_decay``): the theory's answer to why that
schedule beats cosine and step decay in practice. Given the gradient norms
``||g_t||`` that a previous run of the same problem saw, the same bound is
minimised in closed form by the **refined** schedule (the paper's Theorem
for SGD and its schedule-refinement algorithm):

    w_t = ||g_t||^-2 * sum_{p = t+1}^{T} ||g_p||^-2          (t = 1 .. T; w_T = 0)
    eta_t = eta * w_t / max_s w_s                            (peak normalised to 1)

For methods with per-coordinate steps (Adam and friends) the bound is in the
dual norm, which turns the weights into ``1 / ||g_t||_1``:

    w_t = ||g_t||_1^-1 * sum_{p = t+1}^{T} ||g_p||_1^-1      (norm="l1")

Where the norms shrink over training (the usual case) ``||g_t||^-2`` grows,
so the refined schedule *starts low and rises* (a warmup, found rather than
imposed) and, because the tail sum vanishes at ``T``, *anneals fast at the
end*. With constant norms both forms are linear decay exactly:
``w_t ~ (T - t)``.

The observed norms are noisy; the paper smooths them with a **median
filter** before refining (``window``: its width in steps; ``None`` picks
``max(1, T // 20)``, our choice, 1 means no smoothing). The refined schedule
is for the *next* run of the same length ``T``, with the peak rate ``value``
tuned as usual.

Indexing: ``refined(k)`` for ``k = 0 .. T-1`` is the value of optimizer step
``k + 1`` (the library's convention), i.e. ``w_{k+1}`` above; its last value
``refined(T - 1) = 0`` (the last step does nothing, as in the paper's
construction), and it stays 0 beyond. Linear decay in this indexing is
``linear_decay(value, total_steps=T - 1)``.

Helpers: :func:`refine` (norms -> the normalised weights, an array),
:func:`record_grad_norms` (one training run that records them, with
``reference.train``'s seeding) and :func:`refined_schedule` /
``Refined.from_grad_norms`` (norms -> a schedule to pass as ``lr``).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import catalog
from .base import Schedule, check_choice, check_int, check_value, register

__all__ = ["refine", "refined_schedule", "record_grad_norms", "Refined", "refined"]

PAPER = dict(title="When, Why and How Much? Adaptive Learning Rate Scheduling by Refinement",
             authors="Defazio, Cutkosky, Mehta, Mishchenko", year=2023, arxiv="2310.07831", family="lr-schedule")

#: the power of the norm in the weights: ||g||_2^-2 for SGD, ||g||_1^-1 for per-coordinate methods
POWERS = {"l2": 2.0, "l1": 1.0}


def smooth(grad_norms, window):
    """The median filter of width ``window`` (edges: the nearest value repeated)."""
    import scipy.ndimage
    g = np.asarray(grad_norms, dtype=np.float64)
    return g if window <= 1 else scipy.ndimage.median_filter(g, size=int(window), mode="nearest")


def refine(grad_norms, norm="l2", window=None):
    """The refined schedule's multipliers for a run of ``T = len(grad_norms)`` steps.

    ``w_t = n_t^-q sum_{p > t} n_p^-q`` with ``q = 2`` (``norm="l2"``, SGD) or
    ``q = 1`` (``norm="l1"``, the norms being l1 norms, for Adam-type
    methods), ``n`` the median-filtered norms; normalised to a maximum of 1.
    The last entry is 0."""
    check_choice("norm", norm, tuple(POWERS), "refine")
    g = np.asarray(grad_norms, dtype=np.float64)
    if g.ndim != 1 or g.size < 2 or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError(f"refine: grad_norms must be >= 2 finite positive numbers, got shape {g.shape}")
    T = g.size
    window = max(1, T // 20) if window is None else check_int("window", window, 1, "refine")
    inv = smooth(g, window) ** -POWERS[norm]                   # n_t^-q
    tail = np.cumsum(inv[::-1])[::-1]                          # tail[t] = sum_{p >= t} n_p^-q
    w = np.zeros(T)
    w[:-1] = inv[:-1] * tail[1:]                               # n_t^-q sum_{p > t} n_p^-q; w_T = 0
    return w / w.max()


@register("refined")
@dataclasses.dataclass(frozen=True, repr=False)
class Refined(Schedule):
    """``value * weights[k]`` for ``k < len(weights)``, then 0 (the weights from :func:`refine`)."""

    paper = PAPER

    value: float
    weights: tuple

    def __post_init__(self):
        self._set("value", check_value("value", self.value, self.name))
        try:
            w = tuple(float(x) for x in self.weights)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name}: weights must be a sequence of numbers in [0, 1], "
                             f"got {self.weights!r}") from None
        if not w or any(not (0.0 <= x <= 1.0) for x in w):
            raise ValueError(f"{self.name}: weights must be a non-empty sequence of numbers in [0, 1]")
        self._set("weights", w)

    @classmethod
    def from_grad_norms(cls, value, grad_norms, norm="l2", window=None):
        """The refined schedule with peak ``value`` from the norms of a previous run."""
        return cls(value, tuple(refine(grad_norms, norm, window)))

    def at(self, k):
        return self.value * self.weights[k] if k < len(self.weights) else 0.0


refined = Refined
refined_schedule = Refined.from_grad_norms


def record_grad_norms(problem, optimizer, steps, batch_size=None, seed=0, norm="l2", dtype="float64"):
    """Train as ``reference.train.run`` does (``problem.init(seed)``, one ``sample_batch`` per step
    from ``default_rng(seed)``) and record the norm of the gradient of every step (the
    optimizer's first oracle call): l2 norms, or l1 with ``norm="l1"``.

    Returns ``{"grad_norm": (steps,), "loss": (steps,) loss before each step, "params": final}``."""
    from .. import tree
    from ..train import resolve_optimizer, resolve_problem
    check_choice("norm", norm, tuple(POWERS), "record_grad_norms")
    prob, opt = resolve_problem(problem), resolve_optimizer(optimizer)
    rng = np.random.default_rng(seed)
    w = prob.init(seed, dtype)
    state = opt.init(w)
    full = prob.oracle() if batch_size is None else None
    norms, losses = [], []
    for _ in range(int(steps)):
        inner = full if batch_size is None else prob.oracle(prob.sample_batch(rng, batch_size))
        seen = []

        def oracle(params, inner=inner, seen=seen):
            out = inner(params)
            if not seen:
                seen.append(out)
            return out

        w, state = opt.step(w, state, oracle)
        loss, grads = seen[0]
        losses.append(float(loss))
        norms.append(float(tree.global_norm(grads)) if norm == "l2"
                     else sum(float(abs(g).sum()) for g in grads.values()))
    return {"grad_norm": np.array(norms), "loss": np.array(losses), "params": w}


# one catalog entry under the corpus name
catalog.register(name="refined_lr_schedule", module=__name__, kind="implementation", **PAPER)
