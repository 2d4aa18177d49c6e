"""What every synthetic problem offers: seeded params, a loss, a rich oracle, batches.

A problem subclass writes down two things, in the library's autograd ops:

* ``param_shapes``: ``{name: shape}`` of its parameters and ``_init(rng)``;
* ``_loss(params, batch)`` (a scalar Tensor) and, for problems made of
  examples, ``_per_example_loss(params, batch)`` (shape ``(B,)``), whose mean
  is the loss: a finite sum ``f = (1/n) sum_i f_i``, where a regulariser
  (``lam/2 ||w||^2``) is part of every ``f_i``, so per-sample gradients
  average exactly to the gradient.

Optionally, a problem whose loss is a loss *of a model's outputs* writes
two more hooks, which give its oracle the ``outputs`` capability (used by
Gauss-Newton methods such as EGN, ``reference/optim/egn.py``):

* ``_outputs(params, batch)``: the model outputs ``z``, a Tensor of shape
  ``(N, k)`` (one row per example; a plain function is one "example");
* ``_output_loss(outputs, batch)``: the per-example losses ``l_i(z_i)``,
  shape ``(N,)``, each depending on row ``i`` only, whose mean is exactly
  the loss (so a problem whose loss has a term on the params alone, such as
  a ridge penalty, does not have the capability).

Everything else is here, once: the :class:`Oracle` (``value_and_grad``,
``loss``, ``hvp``, ``per_sample_grads``, the ``outputs`` capability, call
counts), batch sampling, dtype/device handling and input checks.

Decisions written down here:

* **Data live in float64 NumPy** and are cast to the params' dtype and
  device when used (cached per dtype/device), so one problem serves
  float32/float64 and CPU/GPU runs alike. The loss comes back as a scalar of
  the params' dtype on the params' device (a NumPy scalar, or a 0-d CuPy
  array: no host sync).
* **Batches** are dicts of arrays with the batch on axis 0 (``{"x": ...,
  "y": ...}``); ``batch=None`` means the full training set (or, for a
  function with no data such as Rosenbrock, the function itself).
  ``sample_batch(rng, size)`` draws ``size`` distinct training examples
  with a ``numpy.random.Generator``, so a seed fixes the whole run.
* **Checks**: params with missing/extra keys, wrong shapes or a non-float
  dtype, and batches with wrong keys or shapes raise errors that name the
  key and the shapes.
"""
from __future__ import annotations

import numpy as np

from .. import autograd as ag
from ..autograd.functional import _nested
from ..backend import xp_of
from ..tree import check_keys, flatten

__all__ = ["Problem", "Oracle", "check_int", "check_float"]


def check_int(where, name, value, low):
    """A problem setting as an int ``>= low``, or ``ValueError`` naming the setting."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{where}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def check_float(where, name, value, low, strict=False):
    """A problem setting as a finite float ``>= low`` (``> low`` when ``strict``), or ``ValueError`` naming it."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = None
    if isinstance(value, bool) or v is None or not np.isfinite(v) or v < low or (strict and v == low):
        raise ValueError(f"{where}: {name} must be a finite number {'>' if strict else '>='} {low:g}, got {value!r}")
    return v


class Problem:
    """Base class of the synthetic problems; see the module docstring."""

    name = "problem"
    #: False where ``init`` ignores the seed (e.g. Rosenbrock's classic fixed start).
    seeded_init = True

    def __init__(self):
        self.param_shapes = {}
        self.data = None       # dict of float64/int arrays with examples on axis 0 (training set)
        self.test_data = None  # held-out examples, same layout, where the problem has them
        self._cache = {}

    # ---- to be provided by subclasses ----------------------------------------
    def _init(self, rng):
        raise NotImplementedError

    def _loss(self, params, batch):
        """Scalar loss as a Tensor. By default the mean of the per-example losses."""
        return ag.mean(self._per_example_loss(params, batch))

    def _per_example_loss(self, params, batch):
        raise TypeError(f"problem {self.name!r} has no per-example losses (it is a plain function of the params)")

    def _outputs(self, params, batch):
        """Model outputs ``z`` (a Tensor of shape ``(N, k)``); optional, see the module docstring."""
        raise TypeError(f"problem {self.name!r} has no model outputs: its oracle lacks the 'outputs' "
                        "capability (the problem defines no _outputs/_output_loss hooks)")

    def _output_loss(self, outputs, batch):
        """Per-example losses ``l_i(z_i)`` (shape ``(N,)``, mean = the loss); optional."""
        raise TypeError(f"problem {self.name!r} has no loss of model outputs: its oracle lacks the 'outputs' "
                        "capability (the problem defines no _outputs/_output_loss hooks)")

    @property
    def has_outputs(self) -> bool:
        """Whether this problem (as configured) offers the ``outputs`` capability."""
        return self._outputs_unavailable() is None

    def _outputs_unavailable(self):
        """``None`` where the ``outputs`` capability exists, else the reason it does not (a string).

        By default: whether the subclass overrides both hooks. A subclass whose
        hooks exist only for some settings (a ridge penalty makes the loss more
        than a loss of the outputs) refines this."""
        cls = type(self)
        if cls._outputs is Problem._outputs or cls._output_loss is Problem._output_loss:
            return "the problem defines no _outputs/_output_loss hooks"
        # a subclass that redefines the loss below the class that wrote the hooks makes them stale
        owner = _defining_class(cls, "_output_loss")
        for name in ("_loss", "_per_example_loss"):
            c = _defining_class(cls, name)
            if c is not owner and issubclass(c, owner):
                return (f"{c.__name__} redefines {name} below {owner.__name__}, which wrote the output hooks, "
                        "so they may no longer describe its loss")
        return None

    # ---- public interface -------------------------------------------------------
    def __repr__(self):
        return f"<problem {self.name}: params {self.param_shapes}>"

    @property
    def n_train(self):
        """Number of training examples (``None`` for a plain function)."""
        if self.data is None:
            return None
        return int(next(iter(self.data.values())).shape[0])

    @property
    def dim(self) -> int:
        """Total number of scalar parameters."""
        return int(sum(int(np.prod(s)) for s in self.param_shapes.values()))

    @property
    def optimum(self):
        """The minimiser as a params dict (float64) where it is known, else ``None``."""
        return None

    @property
    def optimal_value(self):
        """The minimum of the (full-batch) loss where it is known, else ``None``."""
        return None

    def init(self, seed=0, dtype="float64"):
        """Initial params, reproducible from ``seed`` (an int or a ``numpy.random.Generator``)."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        dt = np.dtype(dtype)
        if dt.kind != "f":
            raise TypeError(f"{self.name}.init: dtype must be a float dtype, got {dt}")
        return {k: np.asarray(v, dtype=np.float64).astype(dt) for k, v in self._init(rng).items()}

    def check_params(self, params, where="params"):
        """Raise a clear error unless ``params`` has this problem's keys, shapes and a float dtype."""
        check_keys(f"{self.name}: {where}", self.param_shapes, params)
        dtypes = set()
        for k, shape in self.param_shapes.items():
            v = params[k]
            v = v.value if isinstance(v, ag.Tensor) else v
            got = tuple(getattr(v, "shape", ()))
            if got != tuple(shape):
                raise ValueError(f"{self.name}: {where}[{k!r}] must have shape {tuple(shape)}, got {got}")
            dt = getattr(v, "dtype", None)
            if dt is None or np.dtype(dt).kind != "f":
                raise TypeError(f"{self.name}: {where}[{k!r}] must be a float array, got dtype {dt}")
            dtypes.add(np.dtype(dt))
        if len(dtypes) > 1:
            raise TypeError(f"{self.name}: {where} mixes dtypes {sorted(map(str, dtypes))}")

    def sample_batch(self, rng, size):
        """``size`` distinct training examples drawn with ``rng`` (``None`` for a plain function)."""
        if self.data is None:
            return None
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"{self.name}.sample_batch: rng must be a numpy.random.Generator, got {type(rng).__name__}")
        n = self.n_train
        if not (isinstance(size, (int, np.integer)) and 1 <= size <= n):
            raise ValueError(f"{self.name}.sample_batch: size must be an int in [1, {n}], got {size!r}")
        idx = rng.choice(n, size=int(size), replace=False)
        return {k: v[idx] for k, v in self.data.items()}

    def full_batch(self):
        """The whole training set as one batch (``None`` for a plain function)."""
        return None if self.data is None else dict(self.data)

    def check_batch(self, batch):
        """Raise ``ValueError`` unless ``batch`` has the training data's keys and per-example shapes."""
        if batch is None:
            return
        if self.data is None:
            raise ValueError(f"{self.name}: this problem has no data; pass batch=None")
        if not isinstance(batch, dict):
            raise TypeError(f"{self.name}: a batch is a dict of arrays with keys {sorted(self.data)}, got {type(batch).__name__}")
        check_keys(f"{self.name}: batch", self.data, batch)
        sizes = set()
        for k, ref in self.data.items():
            got = tuple(batch[k].shape)
            if got[1:] != tuple(ref.shape[1:]) or len(got) != ref.ndim:
                raise ValueError(f"{self.name}: batch[{k!r}] must have shape (B,) + {tuple(ref.shape[1:])}, got {got}")
            sizes.add(got[0])
        if len(sizes) != 1 or 0 in sizes:
            raise ValueError(f"{self.name}: batch arrays must share one nonzero batch size, got "
                             f"{ {k: tuple(v.shape) for k, v in batch.items()} }")

    def loss(self, params, batch=None):
        """The loss at ``params`` on ``batch`` (default: the full training set), a 0-d array."""
        return self.oracle(batch).loss(params)

    def oracle(self, batch=None):
        """A rich oracle on ``batch`` (see :class:`Oracle`)."""
        self.check_batch(batch)
        return Oracle(self, batch)

    def evaluate(self, params):
        """Metrics of ``params`` (floats): the full-batch training loss, plus problem-specific ones."""
        return {"loss": float(self.loss(params))}

    # ---- helpers for subclasses ---------------------------------------------------
    def _train_test_metrics(self, params, outputs, losses, accuracy=True):
        """The usual metrics of a model with a held-out set, as floats.

        ``loss`` and ``test_loss``: the mean of ``losses(z, y)`` (per-example losses) with
        ``z = outputs(params, x)`` on ``self.data`` and ``self.test_data``; with ``accuracy``
        also ``accuracy`` and ``test_accuracy`` (arg-max of ``z`` against the labels ``y``).
        """
        from .. import nn
        self.check_params(params)
        metrics = {}
        for prefix, data in (("", self.data), ("test_", self.test_data)):
            batch = self._batch_like(data, params)
            z = outputs(params, batch["x"])
            per_example = losses(z, batch["y"])
            metrics[prefix + "loss"] = float((per_example.value if isinstance(per_example, ag.Tensor)
                                              else per_example).mean())
            if accuracy:
                metrics[prefix + "accuracy"] = float(nn.accuracy(z, batch["y"]))
        return metrics

    def _batch_like(self, batch, params):
        """``batch`` (or the full data) with floats cast to the params' dtype and device."""
        ref = next(iter(params.values()))
        ref = ref.value if isinstance(ref, ag.Tensor) else ref
        xp, dt = xp_of(ref), ref.dtype
        if batch is None:
            if self.data is None:
                return None
            key = (xp.__name__, str(dt))
            if key not in self._cache:
                self._cache[key] = _cast(self.data, xp, dt)
            return self._cache[key]
        return _cast(batch, xp, dt)

    def _const(self, array, params):
        """A float64 constant of the problem cast to the params' dtype and device (cached)."""
        ref = next(iter(params.values()))
        ref = ref.value if isinstance(ref, ag.Tensor) else ref
        xp, dt = xp_of(ref), ref.dtype
        key = (id(array), xp.__name__, str(dt))
        hit = self._cache.get(key)
        if hit is None or hit[0] is not array:  # keep `array` alive so its id cannot be reused
            hit = self._cache[key] = (array, xp.asarray(array).astype(dt))
        return hit[1]


def _defining_class(cls, name):
    """The class in ``cls``'s MRO whose body defines attribute ``name``."""
    return next(c for c in cls.__mro__ if name in c.__dict__)


def _cast(data, xp, dt):
    out = {}
    for k, v in data.items():
        v = xp.asarray(v)
        out[k] = v.astype(dt) if v.dtype.kind == "f" else v
    return out


class Oracle:
    """Evaluations of a problem's loss on one batch.

    ``oracle(params) -> (loss, grads)`` is the plain oracle every optimizer
    takes. The rich part, for algorithms that need more:

    * ``value_and_grad(params)``, ``loss(params)``;
    * ``hvp(params, v)``: Hessian-vector product (forward-over-reverse);
    * ``per_sample_grads(params)``: a dict with a leading batch axis;
    * ``calls``: how many of each evaluation were made (``{"grad": 3, ...}``).

    The ``outputs`` capability, for problems whose loss is a loss of model
    outputs, ``f(w) = 1/N sum_i l_i(z_i(w))`` with ``z_i`` row ``i`` of the
    outputs ``z`` (``N`` examples, ``k`` outputs each):

    * ``outputs(params)``: ``z``, an array of shape ``(N, k)``;
    * ``output_loss(outputs)``: the per-example losses ``l_i(z_i)``, shape
      ``(N,)``; ``mean(output_loss(outputs(params))) == loss(params)``;
    * ``output_jacobian(params)``: ``(z, J)``, ``J`` a dict like ``params``
      whose leaf ``k`` has shape ``(N, k_out) + params[k].shape``:
      ``J[k][i, j] = d z_ij / d params[k]`` (``ag.jacobian``, reverse or
      forward mode, whichever needs fewer sweeps);
    * ``output_loss_derivatives(outputs)``: ``(g, Q)``, the per-example
      output-loss gradients ``g[i] = d l_i / d z_i`` (shape ``(N, k)``) and
      Hessians ``Q[i] = d^2 l_i / d z_i^2`` (shape ``(N, k, k)``; ``k``
      Hessian-vector products in the outputs).

    On a problem without it (``problem.has_outputs`` is False) these raise a
    ``TypeError`` naming the problem and the missing ``outputs`` capability.
    """

    def __init__(self, problem, batch):
        self.problem = problem
        self.batch = batch
        self.calls = {"loss": 0, "grad": 0, "hvp": 0, "per_sample_grads": 0, "outputs": 0,
                      "output_jacobian": 0}

    def _f(self, params):
        return self.problem._loss(params, self.problem._batch_like(self.batch, params))

    def __call__(self, params):
        return self.value_and_grad(params)

    def value_and_grad(self, params):
        self.problem.check_params(params)
        self.calls["grad"] += 1
        return ag.value_and_grad(self._f)(params)

    def loss(self, params):
        self.problem.check_params(params)
        self.calls["loss"] += 1
        out = self._f(params)
        # inside a transform (ag.grad of a function calling loss) keep the Tensor, so it stays differentiable
        return out.value if isinstance(out, ag.Tensor) and not _nested() else out

    def hvp(self, params, v):
        self.problem.check_params(params)
        self.problem.check_params(v, "v")
        self.calls["hvp"] += 1
        return ag.hvp(self._f, params, v)

    def per_sample_grads(self, params):
        self.problem.check_params(params)
        if self.problem.data is None:
            raise TypeError(f"problem {self.problem.name!r} has no examples, so no per-sample gradients")
        self.calls["per_sample_grads"] += 1
        batch = self.problem._batch_like(self.batch, params)
        keys = list(batch)
        return ag.per_example_grads(
            lambda p, *arrays: self.problem._per_example_loss(p, dict(zip(keys, arrays))))(
            params, *[batch[k] for k in keys])

    # ---- the outputs capability --------------------------------------------------
    def _require_outputs(self, where):
        reason = self.problem._outputs_unavailable()
        if reason is not None:
            raise TypeError(f"oracle.{where}: problem {self.problem.name!r} lacks the 'outputs' capability "
                            f"(model outputs and a loss of them): {reason}")

    def _model(self, params):
        return self.problem._outputs(params, self.problem._batch_like(self.batch, params))

    def _check_outputs(self, where, z):
        if len(getattr(z, "shape", ())) != 2:
            raise ValueError(f"oracle.{where}: problem {self.problem.name!r} returned outputs of shape "
                             f"{tuple(getattr(z, 'shape', ()))}; expected (N, k)")

    def outputs(self, params):
        """The model outputs ``z`` at ``params``, shape ``(N, k)``."""
        self._require_outputs("outputs")
        self.problem.check_params(params)
        self.calls["outputs"] += 1
        z = self._model(params)
        z = z.value if isinstance(z, ag.Tensor) and not _nested() else z
        self._check_outputs("outputs", z)
        return z

    def output_loss(self, outputs):
        """Per-example losses ``l_i(z_i)`` of outputs ``z`` (shape ``(N,)``); their mean is the loss."""
        self._require_outputs("output_loss")
        out = self.problem._output_loss(outputs, self._output_batch(outputs))
        return out.value if isinstance(out, ag.Tensor) and not _nested() else out

    def _output_batch(self, outputs):
        ref = outputs.value if isinstance(outputs, ag.Tensor) else outputs
        return self.problem._batch_like(self.batch, {"z": ref})

    def output_jacobian(self, params):
        """``(z, J)``: the outputs and their Jacobian, ``J[k]`` of shape ``(N, k_out) + params[k].shape``."""
        self._require_outputs("output_jacobian")
        self.problem.check_params(params)
        self.calls["output_jacobian"] += 1
        theta, spec = flatten({k: params[k] for k in params})
        batch = self.problem._batch_like(self.batch, params)

        def model_of_flat(th):
            p, i = {}, 0
            for k, shape in spec:
                n = int(np.prod(shape)) if shape else 1
                p[k] = ag.reshape(th[i:i + n], shape)
                i += n
            return self.problem._outputs(p, batch)

        z = self.outputs(params)
        self.calls["outputs"] -= 1   # counted as part of the Jacobian
        J = ag.jacobian(model_of_flat)(theta)                       # (N, k, n)
        N, k = z.shape
        out, i = {}, 0
        for key, shape in spec:
            n = int(np.prod(shape)) if shape else 1
            out[key] = J[:, :, i:i + n].reshape((N, k) + tuple(shape))
            i += n
        return z, out

    def output_loss_derivatives(self, outputs):
        """``(g, Q)``: gradients ``(N, k)`` and Hessians ``(N, k, k)`` of each ``l_i`` in its outputs ``z_i``."""
        self._require_outputs("output_loss_derivatives")
        self._check_outputs("output_loss_derivatives", outputs)
        batch = self._output_batch(outputs)
        total = lambda z: ag.sum(self.problem._output_loss(z, batch))  # noqa: E731  sum_i l_i(z_i)
        g = ag.grad(total)(outputs)
        xp = xp_of(outputs)
        k = int(outputs.shape[1])
        cols = []
        for j in range(k):   # l_i depends on row i only, so one HVP with e_j in every row gives column j of every Q_i
            e = xp.zeros_like(outputs)
            e[:, j] = 1
            cols.append(ag.hvp(total, outputs, e))
        return g, xp.stack(cols, axis=2)
