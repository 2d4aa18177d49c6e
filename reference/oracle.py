"""An oracle for faster implementations: record a reference trajectory, check another against it.

You are writing a faster Adam (a fused CUDA kernel, a JAX port, a C++ loop)
and want to know whether it computes the same thing as the readable
reference. This module records exactly what the reference does, step by
step (in float64 unless asked otherwise), and tells you the first step and parameter where your
implementation parts from it, and by how much:

    traj = reference.oracle.trajectory("adam", {"lr": 1e-2}, "softmax_regression", steps=50)
    traj.save("adam.npz")                         # or format="json" for other languages
    report = reference.oracle.replay(traj, my_adam_step)   # same gradients, your update
    print(report)                                 # "no divergence ..." or where and how much
    report = reference.oracle.compare(traj, my_params_per_step)   # your whole run

``python -m reference golden adam --steps 50 --out adam.npz`` writes one
from the shell (see :func:`golden`); ``traj.identical(traj.rerun())``
checks that a stored file is still what the current code computes.

What a :class:`Trajectory` holds (``T`` = ``steps``; ``k`` a parameter name):

* ``params[k]``: shape ``(T + 1, *shape)``; row 0 is the initial point
  ``problem.init(seed, dtype)``, row ``t`` the params after step ``t``;
* ``grads[k]``: shape ``(T, *shape)``; row ``t - 1`` is the gradient the
  oracle returned at step ``t`` (at ``params[k][t - 1]``), *before* any
  weight decay the optimizer adds itself. Optimizers that call the oracle
  more than once per step (SAM, extragradient, line searches) get shape
  ``(T, C, *shape)`` with ``C`` the largest number of calls in a step, in
  call order, NaN-padded; ``oracle_calls`` (shape ``(T,)``) counts them.
  Only ``oracle(params)`` / ``oracle.value_and_grad(params)`` calls are
  recorded; ``hvp`` and ``per_sample_grads`` pass through unrecorded;
* ``loss``: shape ``(T,)``; the loss of the step's first oracle call, i.e.
  the loss at ``params[t - 1]`` on that step's batch;
* ``state[path]``: shape ``(T, ...)``; the optimizer state after step ``t``
  (row ``t - 1``), flattened with :func:`reference.io.flatten_tree`
  (``"step"``, ``"m/W"``, ``"v/b"``, ...); :meth:`Trajectory.state_at` gives
  back the nested dict of one step;
* ``schedules[name]``: shape ``(T,)``; see "Schedules" below;
* ``batch_indices``: shape ``(T, batch_size)`` int64, or ``None`` for full batch;
* metadata: ``optimizer``, ``hparams`` (all of them, defaults included),
  ``problem``, ``problem_kw``, ``param_shapes``, ``seed``, ``dtype``,
  ``batch_size``, ``version`` (of this library), ``numpy_version``.

Decisions written down here:

* **Minibatches.** With ``batch_size``, the batches come from one generator,
  ``rng = np.random.default_rng(seed)``, drawn once per step before the
  step, as ``idx = rng.choice(problem.n_train, size=batch_size,
  replace=False)`` and ``batch = {k: v[idx] for k, v in problem.data.items()}``
  (the same draw as ``problem.sample_batch(rng, batch_size)``), and the
  step's oracle is ``problem.oracle(batch)``. The initial params come from
  ``problem.init(seed, dtype)``, which makes its own generator from the same
  seed. The indices are recorded in ``batch_indices``. Without
  ``batch_size`` every step uses the full training set (``problem.oracle()``).
* **Schedules.** A hyperparameter given as a callable (``lr=cosine(...)``)
  cannot be written to a file, so it is *evaluated*: ``schedules[name][t - 1]``
  is the value the optimizer used at step ``t`` (``Optimizer.hparams_at(t)``,
  i.e. ``schedule(t - 1)``), and ``hparams[name]`` holds
  ``{"schedule": label}`` (the callable's repr, or its qualified name where
  the repr holds a memory address, so that files are reproducible), plus
  ``"spec"``, the schedule's ``spec()``, for a ``reference.schedules``
  schedule; :func:`trajectory` rebuilds such a value (a dict with ``"spec"``)
  with ``reference.schedules.from_spec``, so the metadata re-runs.
  :meth:`Trajectory.hparams_at` gives the hyperparameters of one step with
  schedules filled in. A schedule inside a wrapped optimizer
  (``inner=create("adam", lr=fn)``) is recorded by its spec only (its step
  count is the inner optimizer's, not the outer one); one without a
  ``spec()`` there is rejected with a ``ValueError``.
* **Wrapped optimizers.** An :class:`~reference.optim.Optimizer` given as a
  hyperparameter (``inner=...``) is recorded as ``{"optimizer": name,
  "hparams": {...}}``; :func:`trajectory` accepts that form too, so
  ``--hparams`` on the command line can name an inner optimizer.
* **Tolerances.** ``compare`` calls an entry divergent when
  ``|other - ref| > atol + rtol * |ref|`` (``numpy.isclose``'s rule,
  relative to the reference), or when exactly one of the two is NaN, or they
  are infinities of different sign, or one is infinite and the other not.
  Defaults depend on the trajectory's dtype: float64 ``rtol=1e-10,
  atol=1e-12``; float32 ``rtol=1e-4, atol=1e-6``; float16 ``rtol=1e-2,
  atol=1e-3`` — loose enough for another summation order, tight enough to
  catch a misplaced ``eps``. Relative errors are ``|other - ref| / |ref|``
  (``inf`` where ``ref == 0`` and they differ).
* **Files.** ``.npz`` through :func:`reference.io.save` (no pickle): keys
  ``params/<k>``, ``grads/<k>``, ``state/<path>``, ``schedules/<name>``,
  ``loss``, ``oracle_calls``, ``batch_indices`` (an empty array that
  ``reference.io`` marks as ``None`` for full batch) and ``meta_json`` (the
  metadata as UTF-8 JSON in a uint8 array, readable from C++ with cnpy).
  ``.json``: ``{"format", "meta", "params", "grads", "state", "schedules",
  "loss", "oracle_calls", "batch_indices"}`` where each array is
  ``{"dtype", "shape", "data"}`` and ``data`` is the flat C-order list of
  values; floats are written with Python's shortest round-trip ``repr`` of
  the float64 value (float32 values are widened exactly first), so any
  correctly rounding JSON parser reads the exact bits back; NaN and
  infinities are the strings ``"nan"``, ``"inf"``, ``"-inf"`` (standard
  JSON has no such numbers). Both formats load back bit for bit.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Callable, Dict, Optional

import numpy as np

from . import __version__, io, optim, problems
from .backend import to_device, to_numpy
from .optim.base import Optimizer
from .problems.base import Problem

__all__ = ["Trajectory", "Report", "trajectory", "compare", "replay", "golden",
           "default_tolerances", "DEFAULT_PROBLEM", "FORMAT"]

FORMAT = "reference-trajectory-v1"
#: the default problem of :func:`golden`: a 2-D weight ``W`` (3, 4) and a vector bias ``b`` (3,)
DEFAULT_PROBLEM = "softmax_regression"

_TOLERANCES = {"float64": (1e-10, 1e-12), "float32": (1e-4, 1e-6), "float16": (1e-2, 1e-3)}


def default_tolerances(dtype):
    """``(rtol, atol)`` used by :func:`compare` when none are given, for ``dtype``."""
    return _TOLERANCES.get(np.dtype(dtype).name, _TOLERANCES["float32"])


# =====================================================================================
# The recorded trajectory
# =====================================================================================

@dataclasses.dataclass(eq=False)
class Trajectory:
    """One reference run, stacked per step; see the module docstring for the layout."""

    optimizer: str
    hparams: dict
    problem: str
    problem_kw: Optional[dict]
    param_shapes: Dict[str, tuple]
    seed: int
    dtype: str
    batch_size: Optional[int]
    params: Dict[str, np.ndarray]
    grads: Dict[str, np.ndarray]
    loss: np.ndarray
    state: Dict[str, np.ndarray]
    state_kinds: Dict[str, str]
    schedules: Dict[str, np.ndarray]
    oracle_calls: np.ndarray
    batch_indices: Optional[np.ndarray] = None
    version: str = __version__
    numpy_version: str = np.__version__

    # ---- views ------------------------------------------------------------------
    @property
    def steps(self) -> int:
        return int(self.loss.shape[0])

    @property
    def keys(self):
        """Parameter names, in the problem's order."""
        return list(self.params)

    def params_at(self, t):
        """The params after step ``t`` (``t = 0``: the initial point), as a dict of copies."""
        self._check_t(t, 0)
        return {k: v[t].copy() for k, v in self.params.items()}

    def grads_at(self, t):
        """The gradients fed at step ``t`` (1-based), as a dict of copies."""
        self._check_t(t, 1)
        return {k: v[t - 1].copy() for k, v in self.grads.items()}

    def state_at(self, t):
        """The optimizer state after step ``t`` (1-based), nested as ``opt.step`` returned it."""
        self._check_t(t, 1)
        flat = {p: v[t - 1].copy() for p, v in self.state.items()}
        return io.unflatten_tree(flat, self.state_kinds)

    def hparams_at(self, t):
        """The hyperparameters used at step ``t`` (1-based), schedules evaluated."""
        self._check_t(t, 1)
        return {k: float(self.schedules[k][t - 1]) if k in self.schedules else v
                for k, v in self.hparams.items()}

    def rerun(self):
        """Record the same run again from the metadata (to check that a stored file is still
        what the current code computes: ``traj.identical(traj.rerun())``)."""
        if self.problem_kw is None:
            raise ValueError(f"Trajectory.rerun: this trajectory was recorded on a {self.problem!r} Problem "
                             "object whose settings are unknown; call trajectory() with that object")
        for k, v in self.hparams.items():
            if isinstance(v, dict) and set(v) == {"schedule"}:
                raise ValueError(f"Trajectory.rerun: hyperparameter {k!r} was a schedule without a spec "
                                 f"({v['schedule']}); call trajectory() with the schedule itself")
        return trajectory(self.optimizer, self.hparams, self.problem, self.steps, seed=self.seed,
                          dtype=self.dtype, batch_size=self.batch_size, problem_kw=self.problem_kw)

    def _check_t(self, t, low):
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not low <= t <= self.steps:
            raise IndexError(f"Trajectory: step must be an int in [{low}, {self.steps}], got {t!r}")

    def __repr__(self):
        shapes = ", ".join(f"{k}: {tuple(s)}" for k, s in self.param_shapes.items())
        batch = f"batch_size={self.batch_size}" if self.batch_size else "full batch"
        return (f"<Trajectory {self.optimizer} on {self.problem} ({shapes}), {self.steps} steps, "
                f"{self.dtype}, seed={self.seed}, {batch}>")

    def identical(self, other) -> bool:
        """True when ``other`` holds the same metadata and the same bits in every array."""
        if not isinstance(other, Trajectory):
            return False
        if self._meta() != other._meta():
            return False
        for mine, theirs in zip(self._arrays(), other._arrays()):
            if not _same_bits(mine, theirs):
                return False
        return True

    def _arrays(self):
        """The array groups in a fixed order (for :meth:`identical`)."""
        return [self.params, self.grads, {"loss": self.loss}, self.state, self.schedules,
                {"oracle_calls": self.oracle_calls}, {"batch_indices": self.batch_indices}]

    # ---- files ------------------------------------------------------------------
    def _meta(self):
        return {"format": FORMAT, "optimizer": self.optimizer, "hparams": self.hparams,
                "problem": self.problem, "problem_kw": self.problem_kw,
                "param_shapes": {k: list(s) for k, s in self.param_shapes.items()},
                "seed": self.seed, "dtype": self.dtype, "batch_size": self.batch_size,
                "steps": self.steps, "state_kinds": self.state_kinds,
                "version": self.version, "numpy_version": self.numpy_version}

    def save(self, path, format=None):
        """Write to ``path`` as ``"npz"`` or ``"json"`` (default: from the suffix, else npz)."""
        path = os.fspath(path)
        if format is None:
            format = "json" if path.lower().endswith(".json") else "npz"
        if format == "npz":
            tree = {"meta_json": np.frombuffer(json.dumps(self._meta()).encode("utf-8"), dtype=np.uint8),
                    "params": self.params, "grads": self.grads, "loss": self.loss,
                    "state": io.unflatten_tree(self.state, {}), "schedules": self.schedules,
                    "oracle_calls": self.oracle_calls, "batch_indices": self.batch_indices}
            io.save(path, tree)
        elif format == "json":
            doc = {"format": FORMAT, "meta": self._meta(),
                   "params": _json_arrays(self.params), "grads": _json_arrays(self.grads),
                   "state": _json_arrays(self.state), "schedules": _json_arrays(self.schedules),
                   "loss": _json_array(self.loss), "oracle_calls": _json_array(self.oracle_calls),
                   "batch_indices": None if self.batch_indices is None else _json_array(self.batch_indices)}
            with open(path, "w", encoding="utf-8") as f:
                json.dump(doc, f)  # array data hold no NaN tokens (see _json_float)
        else:
            raise ValueError(f"Trajectory.save: format must be 'npz' or 'json', got {format!r}")
        return path

    @classmethod
    def load(cls, path):
        """Read a file written by :meth:`save` (npz or json, recognised by its content)."""
        path = os.fspath(path)
        with open(path, "rb") as f:
            magic = f.read(2)
        if magic == b"PK":
            tree = io.load(path)
            if "meta_json" not in tree:
                raise ValueError(f"Trajectory.load: {path} is a reference.io file but not a trajectory "
                                 f"(no 'meta_json'; it has {sorted(tree)})")
            meta = json.loads(bytes(np.asarray(tree["meta_json"], dtype=np.uint8)).decode("utf-8"))
            state = io.flatten_tree(tree["state"])[0]
            arrays = dict(params=tree["params"], grads=tree["grads"], loss=tree["loss"], state=state,
                          schedules=tree["schedules"], oracle_calls=tree["oracle_calls"],
                          batch_indices=tree["batch_indices"])
        else:
            try:
                with open(path, encoding="utf-8") as f:
                    doc = json.load(f)
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ValueError(f"Trajectory.load: {path} is neither a trajectory .npz nor JSON: {e}") from None
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
                raise ValueError(f"Trajectory.load: {path} has format {got!r}, expected {FORMAT!r}")
            meta = doc["meta"]
            arrays = dict(params=_from_json_arrays(doc["params"]), grads=_from_json_arrays(doc["grads"]),
                          loss=_from_json_array(doc["loss"]), state=_from_json_arrays(doc["state"]),
                          schedules=_from_json_arrays(doc["schedules"]),
                          oracle_calls=_from_json_array(doc["oracle_calls"]),
                          batch_indices=None if doc["batch_indices"] is None
                          else _from_json_array(doc["batch_indices"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"Trajectory.load: {path} has format {meta.get('format')!r}, expected {FORMAT!r}")
        order = list(meta["param_shapes"])
        arrays["params"] = {k: arrays["params"][k] for k in order}
        arrays["grads"] = {k: arrays["grads"][k] for k in order}
        return cls(optimizer=meta["optimizer"], hparams=meta["hparams"], problem=meta["problem"],
                   problem_kw=meta["problem_kw"],
                   param_shapes={k: tuple(s) for k, s in meta["param_shapes"].items()},
                   seed=meta["seed"], dtype=meta["dtype"], batch_size=meta["batch_size"],
                   state_kinds=meta["state_kinds"], version=meta["version"],
                   numpy_version=meta["numpy_version"], **arrays)


def _same_bits(a, b):
    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)) or list(a) != list(b):
            return False
        return all(_same_bits(a[k], b[k]) for k in a)
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ---- JSON arrays: exact floats through repr --------------------------------------

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _json_float(x):
    if math.isfinite(x):
        return x  # json writes repr(x): the shortest string that reads back to the same float64
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _json_array(a):
    a = np.asarray(a)
    if a.dtype.kind == "f":
        data = [_json_float(x) for x in a.astype(np.float64).ravel().tolist()]
    elif a.dtype.kind in "iub":
        data = a.ravel().tolist()
    else:
        raise TypeError(f"oracle: cannot write an array of dtype {a.dtype} to JSON")
    return {"dtype": a.dtype.name, "shape": list(a.shape), "data": data}


def _json_arrays(d):
    return {k: _json_array(v) for k, v in d.items()}


def _from_json_array(doc):
    dt = np.dtype(doc["dtype"])
    if dt.kind == "f":
        vals = [_NONFINITE[x] if isinstance(x, str) else float(x) for x in doc["data"]]
        arr = np.array(vals, dtype=np.float64).astype(dt)
    else:
        arr = np.array(doc["data"], dtype=dt)
    return arr.reshape(tuple(doc["shape"]))


def _from_json_arrays(d):
    return {k: _from_json_array(v) for k, v in d.items()}


# =====================================================================================
# Recording
# =====================================================================================

class _Recorder:
    """Wraps an oracle; keeps a copy of every ``(loss, grads)`` it hands to the optimizer.

    The rich parts of the oracle (``hvp``, ``per_sample_grads``, ``loss``, ...)
    pass through unrecorded.
    """

    def __init__(self, oracle):
        self._oracle = oracle
        self.calls = []

    def __call__(self, params):
        loss, grads = self._oracle(params)
        self.calls.append((np.array(to_numpy(loss), copy=True),
                           {k: np.array(to_numpy(g), copy=True) for k, g in grads.items()}))
        return loss, grads

    def value_and_grad(self, params):
        return self(params)

    def __getattr__(self, name):
        return getattr(self._oracle, name)


def _hparams_to_json(hp, where, top=True, scheduled=()):
    """The hyperparameters as JSON values; callables (schedules) become labels."""
    out = {}
    for k, v in hp.items():
        if isinstance(v, Optimizer):
            out[k] = {"optimizer": v.name, "hparams": _hparams_to_json(v.hparams, f"{where}.{k}", top=False)}
        elif callable(v):
            spec = _spec_of(v)
            if not top and spec is None:
                raise ValueError(f"oracle: {where}: hyperparameter {k!r} of a wrapped optimizer is a schedule "
                                 f"({_label(v)}) without a spec(); its values cannot be recorded, only the "
                                 "outer optimizer's; use a reference.schedules schedule")
            if top and k not in scheduled:
                raise ValueError(f"oracle: {where}: hyperparameter {k!r} is a callable but {where} does not "
                                 f"schedule it (schedulable: {list(scheduled)})")
            out[k] = {"schedule": _label(v)} if spec is None else {"schedule": _label(v), "spec": spec}
        else:
            out[k] = _jsonable(v, f"{where}: hyperparameter {k!r}")
    return out


def _spec_of(fn):
    """``fn.spec()`` for a ``reference.schedules`` schedule (JSON-ready, rebuildable), else ``None``."""
    spec = getattr(fn, "spec", None)
    if not callable(spec):
        return None
    try:
        return _jsonable(spec(), "a schedule spec")
    except TypeError:
        return None


def _label(fn):
    """A deterministic label for a schedule: its repr, unless that is a default one with an address."""
    text = repr(fn)
    if " at 0x" in text or " object at " in text:
        text = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    return text


def _jsonable(v, where):
    """``v`` as plain JSON values (numbers, strings, lists, dicts), or a TypeError naming ``where``."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x, where) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist(), where)
    if isinstance(v, dict):
        return {str(k): _jsonable(x, where) for k, x in v.items()}
    raise TypeError(f"oracle: {where} has type {type(v).__name__}, which cannot be recorded; "
                    "use numbers, strings, lists or dicts")


def _hparams_from_json(hp, where):
    """Turn ``{"optimizer": name, "hparams": {...}}`` values into optimizer objects."""
    if hp is None:
        return {}
    if not isinstance(hp, dict):
        raise TypeError(f"oracle: {where}: hparams must be a dict, got {type(hp).__name__}")
    out = {}
    for k, v in hp.items():
        if isinstance(v, dict) and "optimizer" in v and set(v) <= {"optimizer", "hparams"}:
            v = optim.create(v["optimizer"], **_hparams_from_json(v.get("hparams"), f"{where}.{k}"))
        elif isinstance(v, dict) and "spec" in v and set(v) <= {"schedule", "spec"}:
            from .schedules import from_spec
            v = from_spec(v["spec"])
        elif isinstance(v, dict) and set(v) == {"schedule"}:
            raise ValueError(f"oracle: {where}: hyperparameter {k!r} is a recorded schedule label {v!r} "
                             "without a spec; pass the schedule itself (a callable) to re-run it")
        out[k] = v
    return out


def _int_arg(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"oracle.trajectory: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def trajectory(name, hparams=None, problem=DEFAULT_PROBLEM, steps=50, seed=0, dtype="float64",
               batch_size=None, problem_kw=None):
    """Run optimizer ``name`` for ``steps`` steps and record everything; returns a :class:`Trajectory`.

    ``name``: a name from ``reference.optim.names()``, or an optimizer object
    (then ``hparams`` must be ``None``). ``hparams``: a dict of
    hyperparameters (missing ones take the paper's defaults; all of them are
    recorded). ``problem``: a name from
    ``reference.problems.names()`` (built with ``problem_kw``) or a
    :class:`~reference.problems.Problem`. ``seed`` fixes the initial params and,
    with ``batch_size``, the minibatches (see the module docstring for the exact
    draw). ``dtype``: the params' float dtype.
    """
    if isinstance(name, Optimizer):  # an optimizer object (e.g. one being prototyped, not registered)
        if hparams:
            raise ValueError(f"oracle.trajectory: got the optimizer object {name!r}; its hparams are its own, "
                             f"so pass hparams=None (got {hparams!r})")
        opt, name = name, name.name
    elif isinstance(name, str):
        cls = optim.get_class(name)  # KeyError listing the valid names
        opt = cls(**_hparams_from_json(hparams, name))
    else:
        raise TypeError(f"oracle.trajectory: name must be an optimizer name (str) or an Optimizer, got "
                        f"{type(name).__name__}; valid names: {', '.join(optim.names())}")
    hparams_json = _hparams_to_json(opt.hparams, name, scheduled=opt.scheduled)
    schedule_keys = [k for k, v in opt.hparams.items() if callable(v) and not isinstance(v, Optimizer)]

    if isinstance(problem, str):
        prob = problems.create(problem, **(problem_kw or {}))  # KeyError listing the valid names
        problem_kw = _jsonable(dict(problem_kw or {}), f"problem_kw of {problem!r}")
    elif isinstance(problem, Problem):
        if problem_kw:
            raise ValueError("oracle.trajectory: problem_kw is only for a problem given by name; "
                             f"got a {problem.name!r} object and problem_kw={problem_kw!r}")
        prob, problem_kw = problem, None
    else:
        raise TypeError(f"oracle.trajectory: problem must be a name or a Problem, got {type(problem).__name__}; "
                        f"valid names: {', '.join(problems.names())}")

    steps = _int_arg("steps", steps, 1)
    seed = _int_arg("seed", seed, 0)
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"oracle.trajectory: dtype must be a float dtype (float64, float32, ...), got {dt}")
    if batch_size is not None:
        if prob.n_train is None:
            raise ValueError(f"oracle.trajectory: problem {prob.name!r} has no training examples to "
                             f"draw batches from; use batch_size=None")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or not 1 <= batch_size <= prob.n_train:
            raise ValueError(f"oracle.trajectory: batch_size must be None or an int in [1, {prob.n_train}] "
                             f"(the training set of {prob.name!r}), got {batch_size!r}")
        batch_size = int(batch_size)

    # ---- the run ------------------------------------------------------------------
    params = prob.init(seed, dt)
    state = opt.init(params)
    rng = np.random.default_rng(seed) if batch_size else None
    full_oracle = None if batch_size else prob.oracle()
    p_hist = [{k: np.array(v, copy=True) for k, v in params.items()}]
    calls, s_hist, idx_hist, sched_hist = [], [], [], []
    state_kinds = None
    for t in range(1, steps + 1):
        if batch_size:
            idx = rng.choice(prob.n_train, size=batch_size, replace=False)
            oracle = prob.oracle({k: v[idx] for k, v in prob.data.items()})
            idx_hist.append(np.asarray(idx, dtype=np.int64))
        else:
            oracle = full_oracle
        rec = _Recorder(oracle)
        if schedule_keys:
            at = opt.hparams_at(t)
            sched_hist.append([float(at[k]) for k in schedule_keys])
        params, state = opt.step(params, state, rec)
        calls.append(rec.calls)
        p_hist.append({k: np.array(to_numpy(v), copy=True) for k, v in params.items()})
        flat, kinds = io.flatten_tree(state)
        if state_kinds is None:
            state_kinds, first = kinds, flat
        elif set(flat) != set(first) or any(np.shape(flat[p]) != np.shape(first[p]) for p in flat):
            changed = sorted(set(flat) ^ set(first)) or \
                [p for p in flat if np.shape(flat[p]) != np.shape(first[p])]
            raise ValueError(f"oracle.trajectory: {name}'s state changed layout at step {t} "
                             f"(paths {changed}); a trajectory needs the same state paths and shapes every step")
        s_hist.append({p: np.array(v, copy=True) for p, v in flat.items()})

    keys = list(p_hist[0])
    grads, loss, n_calls = _stack_calls(calls, p_hist[0], dt)
    return Trajectory(
        optimizer=name, hparams=hparams_json, problem=prob.name, problem_kw=problem_kw,
        param_shapes={k: tuple(v.shape) for k, v in p_hist[0].items()}, seed=seed, dtype=dt.name,
        batch_size=batch_size,
        params={k: np.stack([p[k] for p in p_hist]) for k in keys},
        grads=grads, loss=loss,
        state={p: np.stack([s[p] for s in s_hist]) for p in s_hist[0]}, state_kinds=state_kinds,
        schedules={k: np.array([row[i] for row in sched_hist], dtype=np.float64)
                   for i, k in enumerate(schedule_keys)},
        oracle_calls=n_calls,
        batch_indices=np.stack(idx_hist) if batch_size else None)


def _stack_calls(calls, params0, dt):
    """Per-step oracle calls -> ``grads`` (T, ...) or (T, C, ...), ``loss`` (T,), counts (T,)."""
    n_calls = np.array([len(c) for c in calls], dtype=np.int64)
    first = next((c[0][0] for c in calls if c), None)
    loss_dtype = first.dtype if first is not None and first.dtype.kind == "f" else dt
    loss = np.array([c[0][0] if c else np.nan for c in calls], dtype=loss_dtype)
    if np.all(n_calls == 1):
        grads = {k: np.stack([c[0][1][k] for c in calls]) for k in params0}
    else:
        width = max(1, int(n_calls.max()))
        grads = {}
        for k, p in params0.items():
            g = np.full((len(calls), width) + p.shape, np.nan, dtype=p.dtype)
            for t, c in enumerate(calls):
                for j, (_, gr) in enumerate(c):
                    g[t, j] = gr[k]
            grads[k] = g
    return grads, loss, n_calls


# =====================================================================================
# Comparing
# =====================================================================================

@dataclasses.dataclass(eq=False)
class Report:
    """How far another implementation's params are from the reference, step by step.

    ``max_abs[k]`` and ``max_rel[k]`` have shape ``(T + 1,)`` indexed by step
    (row 0: the initial point; NaN where ``other`` gave no initial point);
    ``max_abs_all``/``max_rel_all`` are their maxima over the parameters.
    ``first_step`` is the first step with an entry beyond tolerance (``None``
    if none); ``first_param``, ``first_index``, ``reference_value``,
    ``other_value``, ``abs_err``, ``rel_err`` describe the worst entry of that
    step (largest error relative to its tolerance), ``n_bad``/``n_total`` how
    many entries of that step are beyond tolerance. ``diverged_at[k]`` is the
    first bad step of each parameter. ``other`` holds the compared params
    (stacked, NumPy) when :func:`replay` made them.
    """

    label: str
    rtol: float
    atol: float
    steps: int
    dtype: str
    max_abs: Dict[str, np.ndarray]
    max_rel: Dict[str, np.ndarray]
    diverged_at: Dict[str, Optional[int]]
    first_step: Optional[int] = None
    first_param: Optional[str] = None
    first_index: Optional[tuple] = None
    reference_value: Optional[float] = None
    other_value: Optional[float] = None
    abs_err: Optional[float] = None
    rel_err: Optional[float] = None
    n_bad: int = 0
    n_total: int = 0
    other: Optional[Dict[str, np.ndarray]] = None

    @property
    def ok(self) -> bool:
        """True when no entry at any step is beyond tolerance."""
        return self.first_step is None

    @property
    def max_abs_all(self):
        return _nanmax_rows(self.max_abs)

    @property
    def max_rel_all(self):
        return _nanmax_rows(self.max_rel)

    def _fmt(self, x):
        return str(np.dtype(self.dtype).type(x))

    def __str__(self):
        worst_abs = float(np.nanmax(self.max_abs_all))
        worst_rel = float(np.nanmax(self.max_rel_all))
        head = f"{self.label}: {self.steps} steps, rtol={self.rtol:g}, atol={self.atol:g}"
        if self.ok:
            lines = [head, f"no divergence: every step within tolerance "
                           f"(max abs err {worst_abs:.3g}, max rel err {worst_rel:.3g})"]
        else:
            idx = self.first_index
            lines = [head,
                     f"first divergence at step {self.first_step}, parameter {self.first_param!r}, "
                     f"index {idx}: reference {self._fmt(self.reference_value)} vs other "
                     f"{self._fmt(self.other_value)}, abs err {self.abs_err:.3g}, rel err {self.rel_err:.3g} "
                     f"({self.n_bad} of {self.n_total} entries beyond tolerance at this step)",
                     f"worst over all steps: abs err {worst_abs:.3g}, rel err {worst_rel:.3g}"]
        width = max([len("parameter")] + [len(repr(k)) for k in self.max_abs])
        lines.append(f"  {'parameter':<{width}}  {'max abs err':>11}  {'max rel err':>11}  first bad step")
        for k in self.max_abs:
            bad = self.diverged_at[k]
            lines.append(f"  {k!r:<{width}}  {float(np.nanmax(self.max_abs[k])):>11.3g}  "
                         f"{float(np.nanmax(self.max_rel[k])):>11.3g}  {'-' if bad is None else bad}")
        return "\n".join(lines)

    __repr__ = __str__


def _nanmax_rows(d):
    rows = np.stack(list(d.values()))
    out = np.full(rows.shape[1], np.nan)
    has = ~np.all(np.isnan(rows), axis=0)
    out[has] = np.nanmax(rows[:, has], axis=0)
    return out


def _params_per_step(other, where):
    """``other`` (dict of stacked arrays, a Trajectory, or a list of per-step dicts) as a dict."""
    if isinstance(other, Trajectory):
        return other.params
    if isinstance(other, (list, tuple)):
        if not other or not all(isinstance(p, dict) for p in other):
            raise TypeError(f"{where}: a list for 'other' must hold one params dict per step")
        keys = list(other[0])
        for t, p in enumerate(other):
            if list(p) != keys and set(p) != set(keys):
                raise KeyError(f"{where}: other[{t}] has keys {sorted(p)}, other[0] has {sorted(keys)}")
        return {k: np.stack([to_numpy(p[k]) for p in other]) for k in keys}
    if isinstance(other, dict):
        return {k: to_numpy(v) for k, v in other.items()}
    raise TypeError(f"{where}: other must be a dict {{key: array (steps + 1 or steps, ...)}}, "
                    f"a list of params dicts or a Trajectory, got {type(other).__name__}")


def compare(trajectory, other, rtol=None, atol=None, label=None):
    """Compare ``other``'s params per step with the reference ``trajectory``; returns a :class:`Report`.

    ``other``: ``{key: array}`` with shape ``(steps + 1, *shape)`` (the initial
    point first) or ``(steps, *shape)`` (after steps 1..steps), a list of
    per-step params dicts of those lengths, or another :class:`Trajectory`.
    Keys or shapes that do not match the reference raise ``KeyError`` /
    ``ValueError`` naming them. ``rtol``/``atol`` default to
    :func:`default_tolerances` of the trajectory's dtype.
    """
    where = "oracle.compare"
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"{where}: the first argument must be a Trajectory, got {type(trajectory).__name__}")
    d_rtol, d_atol = default_tolerances(trajectory.dtype)
    rtol = d_rtol if rtol is None else float(rtol)
    atol = d_atol if atol is None else float(atol)
    if not (rtol >= 0 and atol >= 0):
        raise ValueError(f"{where}: rtol and atol must be >= 0, got rtol={rtol}, atol={atol}")
    ref = trajectory.params
    oth = _params_per_step(other, where)
    missing = [k for k in ref if k not in oth]
    extra = [k for k in oth if k not in ref]
    if missing or extra:
        raise KeyError(f"{where}: parameter keys do not match the reference: missing {missing}, "
                       f"unexpected {extra} (the reference has {list(ref)})")
    T = trajectory.steps
    lengths = set()
    for k, r in ref.items():
        o = np.asarray(oth[k])
        shape = tuple(r.shape[1:])
        if o.ndim != r.ndim or tuple(o.shape[1:]) != shape or o.shape[0] not in (T + 1, T):
            raise ValueError(f"{where}: parameter {k!r} has shape {tuple(o.shape)}; expected "
                             f"{(T + 1,) + shape} (initial point and {T} steps) or {(T,) + shape} ({T} steps)")
        if o.dtype.kind not in "fiu":
            raise TypeError(f"{where}: parameter {k!r} has dtype {o.dtype}, expected a float array")
        lengths.add(o.shape[0])
    if len(lengths) > 1:
        raise ValueError(f"{where}: parameters disagree on the number of steps: "
                         f"{ {k: int(np.shape(oth[k])[0]) for k in ref} }")
    offset = T + 1 - lengths.pop()  # 0: other includes the initial point; 1: it starts after step 1

    max_abs, max_rel, diverged_at, bad_masks, ratios, diffs, rels = {}, {}, {}, {}, {}, {}, {}
    for k, r in ref.items():
        a = r[offset:].astype(np.float64).reshape(T + 1 - offset, -1)
        b = np.asarray(oth[k]).astype(np.float64).reshape(T + 1 - offset, -1)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            diff = np.where(a == b, 0.0, np.abs(a - b))
            diff = np.where(np.isnan(a) & np.isnan(b), 0.0, diff)
            diff = np.where(np.isnan(diff), np.inf, diff)   # one NaN, or opposite infinities
            rel = np.where(diff == 0, 0.0, diff / np.abs(a))
            rel = np.where(np.isnan(rel), np.inf, rel)
            tol = atol + rtol * np.abs(a)
            bad = (diff > tol) | np.isinf(diff)
            ratio = np.where(bad, np.where(tol > 0, diff / tol, np.inf), 0.0)
        pad = np.full(offset, np.nan)
        n = a.shape[1]
        max_abs[k] = np.concatenate([pad, diff.max(axis=1) if n else np.zeros(len(a))])
        max_rel[k] = np.concatenate([pad, rel.max(axis=1) if n else np.zeros(len(a))])
        steps_bad = np.flatnonzero(bad.any(axis=1))
        diverged_at[k] = int(steps_bad[0]) + offset if steps_bad.size else None
        bad_masks[k], ratios[k], diffs[k], rels[k] = bad, ratio, diff, rel

    label = label or f"{trajectory.optimizer} on {trajectory.problem} ({trajectory.dtype})"
    report = Report(label=label, rtol=rtol, atol=atol, steps=T, dtype=trajectory.dtype, max_abs=max_abs,
                    max_rel=max_rel, diverged_at=diverged_at)
    bad_steps = [s for s in diverged_at.values() if s is not None]
    if bad_steps:
        s = min(bad_steps)
        row = s - offset
        best = None
        for k in ref:  # the worst entry of the first bad step, relative to its tolerance
            if diverged_at[k] == s:
                j = int(np.argmax(ratios[k][row]))
                if best is None or ratios[k][row, j] > best[2]:
                    best = (k, j, ratios[k][row, j])
        k, j, _ = best
        shape = tuple(ref[k].shape[1:])
        report.first_step, report.first_param = s, k
        report.first_index = tuple(int(i) for i in np.unravel_index(j, shape)) if shape else ()
        report.reference_value = float(ref[k][s].reshape(-1)[j])
        report.other_value = float(np.asarray(oth[k])[row].reshape(-1)[j])
        report.abs_err, report.rel_err = float(diffs[k][row, j]), float(rels[k][row, j])
        report.n_bad = int(sum(int(bad_masks[q][row].sum()) for q in ref))
        report.n_total = int(sum(bad_masks[q].shape[1] for q in ref))
    return report


def replay(trajectory, step_fn: Callable, rtol=None, atol=None, device=None):
    """Feed the recorded gradients to ``step_fn`` step by step and :func:`compare` its params.

    ``step_fn(params, grads, state, t)`` is your update for step ``t``
    (1-based): ``params`` is what it returned at step ``t - 1`` (at ``t = 1``
    a fresh copy of the initial point), ``grads`` a fresh copy of the
    reference gradients of step ``t`` (for multi-call optimizers each has a
    leading axis of calls, see the module docstring), ``state`` whatever it
    returned as state at step ``t - 1`` (``None`` at ``t = 1``). It returns
    ``params`` or ``(params, state)``; arrays may be updated in place (they
    are copied when recorded). Hyperparameters of step ``t``, schedules
    evaluated: ``trajectory.hparams_at(t)``. ``device="gpu"`` hands CuPy
    arrays to ``step_fn``. The gradients are the reference's, so this checks
    the update alone, independently of how your code computes gradients.
    Returns a :class:`Report` whose ``other`` holds the params ``step_fn``
    produced.
    """
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"oracle.replay: the first argument must be a Trajectory, got {type(trajectory).__name__}")
    if not callable(step_fn):
        raise TypeError("oracle.replay: step_fn must be callable as step_fn(params, grads, state, t)")
    move = (lambda tree: to_device(tree, device)) if device else (lambda tree: tree)
    params = move(trajectory.params_at(0))
    state = None
    out = [trajectory.params_at(0)]
    for t in range(1, trajectory.steps + 1):
        result = step_fn(params, move(trajectory.grads_at(t)), state, t)
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], dict):
            params, state = result
        elif isinstance(result, dict):
            params = result
        else:
            raise TypeError(f"oracle.replay: step_fn returned {type(result).__name__} at step {t}; "
                            "expected params (a dict) or (params, state)")
        if set(params) != set(trajectory.params):
            raise KeyError(f"oracle.replay: step_fn returned keys {sorted(params)} at step {t}, "
                           f"expected {trajectory.keys}")
        out.append({k: np.array(to_numpy(v), copy=True) for k, v in params.items()})
    stacked = {k: np.stack([p[k] for p in out]) for k in trajectory.keys}
    report = compare(trajectory, stacked, rtol=rtol, atol=atol,
                     label=f"replay of {trajectory.optimizer} on {trajectory.problem} ({trajectory.dtype})")
    report.other = stacked
    return report


# =====================================================================================
# The golden file (for ``python -m reference golden``)
# =====================================================================================

def golden(name, steps=50, out=None, format=None, problem=None, seed=0, dtype="float64", hparams=None,
           batch_size=None, problem_kw=None):
    """Record ``trajectory(name, hparams, problem, steps, seed, dtype)`` and write it to ``out``.

    ``out`` defaults to ``NAME.npz`` (``NAME.json`` with ``format="json"``);
    ``format`` defaults to the suffix of ``out`` (``.json`` -> json, else npz).
    ``problem`` defaults to :data:`DEFAULT_PROBLEM` (softmax regression: a
    (3, 4) matrix ``W`` and a (3,) vector ``b``). ``hparams`` is a dict or a
    JSON string (``'{"lr": 0.01}'``). Returns the path written.
    """
    if format is not None and format not in ("npz", "json"):
        raise ValueError(f"oracle.golden: format must be 'npz' or 'json', got {format!r}")
    if out is None:
        out = f"{name}.{format or 'npz'}"
    out = os.fspath(out)
    if format is None:
        format = "json" if out.lower().endswith(".json") else "npz"
    if isinstance(hparams, str):
        try:
            hparams = json.loads(hparams)
        except json.JSONDecodeError as e:
            raise ValueError(f"oracle.golden: hparams is not valid JSON ({e}): {hparams!r}") from None
    traj = trajectory(name, hparams, DEFAULT_PROBLEM if problem is None else problem, steps, seed=seed,
                      dtype=dtype, batch_size=batch_size, problem_kw=problem_kw)
    return traj.save(out, format=format)
