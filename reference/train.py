"""Training loops: ``run`` one optimizer on a problem, ``compare`` several over seeds.

    hist = reference.train.run("two_spirals", reference.optim.adam(lr=1e-2), steps=500, batch_size=64)
    table = reference.train.compare("rosenbrock", {"adam": adam(lr=1e-2), "sgd": sgd(lr=1e-3)},
                                    steps=1000, seeds=(0, 1, 2), target=1e-3)
    print(table)

Reproducibility, exactly: with seed ``s`` the initial params are
``problem.init(s, dtype)`` and minibatches are drawn, one per step, by
``problem.sample_batch(rng, batch_size)`` from ``rng = numpy.random.default_rng(s)``
(``batch_size=None``: full batch, no randomness). ``reference.oracle``
follows the same convention, so a trajectory recorded there is the run here.

The loss recorded at step ``t`` is the one the optimizer's first oracle call
returned during that step, i.e. the loss at the params *before* step ``t``
(methods that call the oracle several times per step, like SAM, do not
change what is recorded). The optimizer sees the problem's rich oracle
(``loss``, ``hvp``, ``per_sample_grads`` pass through). An optimizer with a
``needs_full_gradient(state)`` method (SARAH-type variance reduction) gets the
full-batch oracle on the steps where it returns True; no batch is drawn then.
Losses stay on the device until the end of the run (no host sync per step).
"""
from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np
from tqdm import tqdm

from . import optim as _optim
from . import problems as _problems
from .backend import to_numpy

__all__ = ["History", "Table", "run", "compare", "resolve_problem", "resolve_optimizer"]


@dataclasses.dataclass
class History:
    """What one run produced."""
    label: str
    problem: str
    seed: int
    loss: np.ndarray                  # (steps,) float64: loss before each step
    wall_time: float                  # seconds for the whole loop
    params: dict                      # final params
    state: dict                       # final optimizer state
    evals: list = dataclasses.field(default_factory=list)   # [{"step": k, **problem.evaluate(params)}]
    path: list = dataclasses.field(default_factory=list)    # params after each step (record_path=True)
    stopped_early: bool = False

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1]) if len(self.loss) else float("nan")

    def steps_to(self, target):
        """First step whose recorded loss is <= target (1-based), or None."""
        hit = np.nonzero(self.loss <= target)[0]
        return int(hit[0]) + 1 if hit.size else None


class _RecordingOracle:
    """The oracle, unchanged (``loss``, ``hvp``, ... pass through), remembering the first loss it returned."""

    def __init__(self, oracle):
        self._oracle = oracle
        self.first_loss = None

    def __call__(self, params):
        out = self._oracle(params)
        if self.first_loss is None:
            self.first_loss = out[0]
        return out

    def __getattr__(self, name):
        return getattr(self._oracle, name)


def resolve_problem(problem, **kw):
    """A Problem from a name (with settings ``kw``) or a Problem itself."""
    if isinstance(problem, str):
        return _problems.create(problem, **kw)
    if isinstance(problem, _problems.Problem):
        if kw:
            raise TypeError("problem settings can only be given with a problem name")
        return problem
    raise TypeError(f"problem must be a name or a reference.problems.Problem, got {type(problem).__name__}")


def resolve_optimizer(optimizer):
    """An Optimizer from an Optimizer, a name (paper defaults) or a ``(name, hparams)`` pair."""
    if isinstance(optimizer, _optim.Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        return _optim.create(optimizer)
    if isinstance(optimizer, tuple) and len(optimizer) == 2:
        return _optim.create(optimizer[0], **optimizer[1])
    raise TypeError(f"optimizer must be an Optimizer, a name or (name, hparams), got {optimizer!r}")


def run(problem, optimizer, steps, batch_size=None, seed=0, callbacks=(), progress=True, dtype="float64",
        eval_every=None, record_path=False, params=None, label=None):
    """Train ``optimizer`` on ``problem`` for ``steps`` steps; returns a :class:`History`.

    ``callbacks``: callables ``cb(step, params, state, loss)`` called after
    every step (``loss`` a 0-d array); one that returns ``True`` stops the run.
    ``eval_every``: also record ``problem.evaluate(params)`` every that many
    steps and at the end. ``record_path``: keep the params after every step
    (for trajectory plots of small problems). ``params``: start there instead
    of ``problem.init(seed)``. The progress bar (tqdm) shows only on a terminal.
    """
    prob = resolve_problem(problem)
    opt = resolve_optimizer(optimizer)
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"run: steps must be a non-negative int, got {steps!r}")
    if batch_size is not None and prob.n_train is None:
        raise ValueError(f"run: problem {prob.name!r} has no examples, so batch_size must be None, got {batch_size}")
    rng = np.random.default_rng(seed)
    w = prob.init(seed, dtype) if params is None else params
    state = opt.init(w)
    losses, evals, path = [], [], []
    full_oracle = prob.oracle() if batch_size is None else None
    bar = tqdm(range(int(steps)), desc=label or opt.name, disable=not (progress and sys.stderr.isatty()),
               leave=False)
    stopped = False
    start = time.perf_counter()
    for k in bar:
        if batch_size is None:
            oracle = full_oracle
        elif getattr(opt, "needs_full_gradient", None) and opt.needs_full_gradient(state):
            oracle = full_oracle or prob.oracle()  # variance-reduced methods' snapshot steps (SARAH, ...)
        else:
            oracle = prob.oracle(prob.sample_batch(rng, batch_size))
        recording = _RecordingOracle(oracle)
        w, state = opt.step(w, state, recording)
        loss = recording.first_loss
        losses.append(loss)
        if record_path:
            path.append(dict(w))
        if eval_every and (k + 1) % eval_every == 0:
            evals.append({"step": k + 1, **prob.evaluate(w)})
        if (k + 1) % 50 == 0:
            bar.set_postfix(loss=f"{float(loss):.4g}")
        if any(cb(k + 1, w, state, loss) for cb in callbacks):
            stopped = True
            break
    wall = time.perf_counter() - start
    if eval_every and (not evals or evals[-1]["step"] != len(losses)):
        evals.append({"step": len(losses), **prob.evaluate(w)})
    loss_arr = np.asarray([float(x) for x in to_numpy(losses)], dtype=np.float64) if losses else np.zeros(0)
    return History(label=label or opt.name, problem=prob.name, seed=int(seed), loss=loss_arr, wall_time=wall,
                   params=w, state=state, evals=evals, path=path, stopped_early=stopped)


@dataclasses.dataclass
class Table:
    """The result of :func:`compare`: one row per optimizer, and every history."""
    problem: str
    steps: int
    seeds: tuple
    target: float | None
    rows: list            # dicts: label, final_mean, final_std, best_mean, steps_to_target, reached, time
    histories: dict       # label -> [History per seed]

    def __str__(self):
        head = f"{self.problem}: {self.steps} steps, seeds {list(self.seeds)}"
        cols = ["optimizer", "final loss (mean ± std)", "best loss"]
        if self.target is not None:
            cols.append(f"steps to {self.target:g}")
        cols.append("time/run")
        lines = [head, " | ".join(cols)]
        for r in self.rows:
            cells = [r["label"], f"{r['final_mean']:.4e} ± {r['final_std']:.1e}", f"{r['best_mean']:.4e}"]
            if self.target is not None:
                cells.append("-" if r["steps_to_target"] is None else
                             f"{r['steps_to_target']:.0f} ({r['reached']}/{len(self.seeds)})")
            cells.append(f"{r['time']:.2f} s")
            lines.append(" | ".join(cells))
        return "\n".join(lines)


def compare(problem, optimizers, steps, seeds=(0, 1, 2), batch_size=None, target=None, progress=True,
            dtype="float64", **run_kw):
    """Run every optimizer of ``{label: optimizer}`` on ``problem`` for each seed; returns a :class:`Table`.

    ``steps_to_target`` is the mean over the seeds that reached ``target``
    (``reached`` counts them). Rows keep the order of ``optimizers``.
    """
    prob = resolve_problem(problem)
    if not optimizers:
        raise ValueError("compare: give at least one optimizer as {label: optimizer}")
    seeds = tuple(int(s) for s in seeds)
    histories, rows = {}, []
    for label, opt in optimizers.items():
        hs = [run(prob, opt, steps, batch_size=batch_size, seed=s, progress=progress, dtype=dtype,
                  label=f"{label} (seed {s})", **run_kw) for s in seeds]
        histories[label] = hs
        finals = np.array([h.final_loss for h in hs])
        bests = np.array([np.nanmin(h.loss) if len(h.loss) else np.nan for h in hs])
        hits = [h.steps_to(target) for h in hs] if target is not None else []
        hit_steps = [s for s in hits if s is not None]
        rows.append({"label": label, "final_mean": float(np.mean(finals)), "final_std": float(np.std(finals)),
                     "best_mean": float(np.mean(bests)),
                     "steps_to_target": float(np.mean(hit_steps)) if hit_steps else None,
                     "reached": len(hit_steps), "time": float(np.mean([h.wall_time for h in hs]))})
    return Table(problem=prob.name, steps=int(steps), seeds=seeds, target=target, rows=rows, histories=histories)
