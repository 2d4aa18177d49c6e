"""What every parameter-efficient method shares: train a small adapter through a frozen base.

An **adapter** is a transformation of the params: the frozen pretrained
params ``base`` and a small dict of trainable adapter params ``a`` give the
*effective* params that the model's ``apply`` takes,

    params = adapter.effective(a)        # base + a -> {"0.weight": W0 + dW0, ...}

Only ``a`` is trained. Its gradient flows through the frozen base because
``effective`` is written in the library's autograd ops, so any optimizer of
:mod:`reference.optim` trains it unchanged:

    adapter = LoRA(problem.init(), rank=2)           # reference.peft.lora
    a = adapter.init(seed=0)                          # {"1.lora_A": (2, 32), "1.lora_B": (32, 2), ...}
    opt = reference.optim.create("adam", lr=1e-2)
    params_a, state = a, opt.init(a)
    params_a, state = opt.step(params_a, state, adapter.oracle(problem))
    result = finetune(problem, adapter, opt, steps=200)   # the loop, with the numbers below

:func:`finetune` is that loop written once; it reports what the family is
judged by: the number of trainable scalars, the optimizer-state bytes
(``reference.tree.nbytes`` of every slot of the optimizer state: Adam keeps
two numbers per *trainable* scalar), the loss curve and the task metrics of
the merged params. ``adapter=None`` is full fine-tuning of every param.

Decisions written down here:

* **Layers.** A layer is a prefix ``L`` with a weight ``"L.weight"`` of shape
  ``(out, in)`` and an optional ``"L.bias"``, the layout of
  :func:`reference.nn.mlp` and of ``torch.nn.Linear`` (``y = x W^T + b``).
  ``layers=None`` adapts every such layer. Adapter params are named
  ``"L.<slot>"`` (``"1.lora_A"``); biases stay frozen unless a method
  changes them (Hydra's sequential branch does).
* **Dense effective weights.** ``effective`` forms ``W + dW`` (the merged
  weight) instead of running a side branch ``x A^T B^T`` next to ``x W^T``.
  The two are equal up to rounding; the merged form is one code path for
  training, merging and evaluation, and it is the readable one. (It is not
  the memory-saving way to *run* a large model; this library measures the
  optimizer state and the trainable count, which do not depend on it.)
* **The oracle** is ``problem.oracle(batch).loss`` composed with
  ``effective``; inside the gradient transform the problem's loss stays a
  Tensor, so the gradient is exact (no finite differences).
* **dtype**: adapter params are created in the dtype of the base params.
"""
from __future__ import annotations

import numpy as np

from .. import autograd as ag
from .. import nn, tree
from ..backend import xp_of

__all__ = ["Adapter", "AdapterOracle", "linear_layers", "finetune", "compare", "state_bytes", "mlp_layer_inputs",
           "lora_uniform", "check_int"]


def linear_layers(params):
    """The prefixes ``L`` of every ``"L.weight"`` of ``params`` that is a matrix, in params order."""
    return tuple(k[:-len(".weight")] for k, v in params.items() if k.endswith(".weight") and v.ndim == 2)


def check_int(where, name, value, low, high=None):
    """``value`` as an int in ``[low, high]``, or ``ValueError`` naming the parameter and the range."""
    rng = f"[{low}, {'inf' if high is None else high}]"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{where}: {name} must be an int in {rng}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{where}: {name}={value!r} is out of range: expected an int in {rng}")
    return int(value)


def lora_uniform(rng, shape, fan_in, dtype):
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``: torch's ``kaiming_uniform_(a=sqrt(5))``, the default
    initialisation of a LoRA ``A`` (and of ``torch.nn.Linear``)."""
    bound = 1.0 / float(np.sqrt(fan_in))
    return rng.uniform(-bound, bound, shape).astype(dtype)


class Adapter:
    """Frozen ``base`` params + trainable adapter params -> effective params.

    A method subclasses this and writes two things per adapted layer:

    * ``init_layer(layer, weight, rng) -> {slot: array}``: its trainable params
      at the start of fine-tuning;
    * ``adapt_layer(layer, weight, bias, slots) -> (weight', bias')``: the
      effective weight and bias, in autograd ops (``slots`` holds Tensors
      while a gradient is taken).

    Everything else (checks, naming, the oracle, merging) is here.
    """

    name = "adapter"

    def __init__(self, base, layers=None):
        if not isinstance(base, dict) or not base:
            raise TypeError(f"{self.name}: base must be a non-empty params dict, got {type(base).__name__}")
        self.base = dict(base)
        self.layers = linear_layers(base) if layers is None else tuple(layers)
        for layer in self.layers:
            w = self.base.get(f"{layer}.weight")
            if w is None or w.ndim != 2:
                raise ValueError(f"{self.name}: layer {layer!r} has no 2-D weight {layer + '.weight'!r} in base; "
                                 f"linear layers: {list(linear_layers(base))}")

    def __repr__(self):
        return f"<{self.name} adapter on layers {list(self.layers)}>"

    # ---- written by each method ------------------------------------------------
    def init_layer(self, layer, weight, rng):
        raise NotImplementedError

    def adapt_layer(self, layer, weight, bias, slots):
        raise NotImplementedError

    # ---- shared ------------------------------------------------------------------
    def bias_of(self, layer):
        """The frozen bias of ``layer`` (``None`` when it has none)."""
        return self.base.get(f"{layer}.bias")

    def init(self, seed=0):
        """The trainable adapter params (a flat dict ``{"L.slot": array}``), reproducible from ``seed``."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        out = {}
        for layer in self.layers:
            w = self.base[f"{layer}.weight"]
            for slot, v in self.init_layer(layer, w, rng).items():
                out[f"{layer}.{slot}"] = xp_of(w).asarray(v).astype(w.dtype)
        return out

    def slots_of(self, layer, adapter_params):
        """``{slot: value}`` of one layer, taken out of the flat adapter dict."""
        prefix = f"{layer}."
        return {k[len(prefix):]: v for k, v in adapter_params.items()
                if k.startswith(prefix) and k[len(prefix):].count(".") == 0 and k not in self.base}

    def effective(self, adapter_params):
        """The params the model runs with: the base, every adapted layer replaced by its adapted weight/bias."""
        out = dict(self.base)
        for layer in self.layers:
            slots = self.slots_of(layer, adapter_params)
            if not slots:
                continue   # a layer given no adapter (e.g. rank 0 after EVA's redistribution)
            w, b = self.adapt_layer(layer, self.base[f"{layer}.weight"], self.bias_of(layer), slots)
            out[f"{layer}.weight"] = w
            if b is not None:
                out[f"{layer}.bias"] = b
        return out

    def merge(self, adapter_params):
        """``effective`` as plain arrays: the fine-tuned model, with no extra inference cost."""
        return {k: (v.value if isinstance(v, ag.Tensor) else v) for k, v in self.effective(adapter_params).items()}

    def oracle(self, problem, batch=None):
        """``oracle(adapter_params) -> (loss, grads)`` of ``problem``'s loss through the frozen base."""
        return AdapterOracle(self, problem, batch)


class AdapterOracle:
    """The problem's loss as a function of the adapter params only (see the module docstring)."""

    def __init__(self, adapter, problem, batch=None):
        self.adapter = adapter
        self.problem = problem
        self.inner = problem.oracle(batch)

    def _f(self, adapter_params):
        return self.inner.loss(self.adapter.effective(adapter_params))

    def __call__(self, adapter_params):
        return self.value_and_grad(adapter_params)

    def value_and_grad(self, adapter_params):
        return ag.value_and_grad(self._f)(adapter_params)

    def loss(self, adapter_params):
        return self.inner.loss(self.adapter.merge(adapter_params))


def state_bytes(state):
    """Bytes held by the arrays of an optimizer state (``reference.tree.nbytes`` of every slot).

    Slots are dicts of arrays (``state["m"]``); nested dicts are followed;
    Python numbers such as ``state["step"]`` hold no array memory.
    """
    total = 0
    for v in state.values():
        if isinstance(v, dict):
            arrays = {k: x for k, x in v.items() if hasattr(x, "nbytes")}
            total += tree.nbytes(arrays) + state_bytes({k: x for k, x in v.items() if isinstance(x, dict)})
        elif hasattr(v, "nbytes") and getattr(v, "ndim", 0) > 0:
            total += int(v.nbytes)
    return int(total)


def finetune(problem, adapter, optimizer, steps, adapter_params=None, seed=0, record_every=1):
    """Fine-tune ``problem`` from its pretrained ``init()`` with full-batch steps of ``optimizer``.

    ``adapter=None``: full fine-tuning (every param trained). Otherwise only
    ``adapter_params`` (default ``adapter.init(seed)``) are trained through the
    frozen base. Returns a dict:

    * ``"trainable"``: trainable scalars; ``"state_bytes"``: optimizer-state bytes;
    * ``"losses"``: the training loss before the first step and every
      ``record_every`` steps after it;
    * ``"params"``: the final (merged) params; ``"metrics"``: ``problem.evaluate`` of them;
    * ``"adapter_params"``: the trained adapter params (``None`` for full fine-tuning).
    """
    if adapter is None:
        x = problem.init(seed)
        oracle = problem.oracle()
    else:
        x = adapter.init(seed) if adapter_params is None else dict(adapter_params)
        oracle = adapter.oracle(problem)
    state = optimizer.init(x)
    losses = []
    for t in range(steps):
        if t % record_every == 0:
            losses.append(float(oracle.loss(x)))
        x, state = optimizer.step(x, state, oracle)
    losses.append(float(oracle.loss(x)))
    params = x if adapter is None else adapter.merge(x)
    return {"trainable": tree.size(x), "state_bytes": state_bytes(state), "losses": np.asarray(losses),
            "params": params, "metrics": problem.evaluate(params),
            "adapter_params": None if adapter is None else x}


def compare(problem, methods, optimizer, steps, seed=0):
    """:func:`finetune` of each ``{name: adapter or None}`` with a fresh ``optimizer()`` (a factory);
    ``{name: {"trainable", "state_bytes", "final_loss", "accuracy", "test_accuracy"}}``."""
    rows = {}
    for name, adapter in methods.items():
        r = finetune(problem, adapter, optimizer(), steps, seed=seed)
        rows[name] = {"trainable": r["trainable"], "state_bytes": r["state_bytes"],
                      "final_loss": float(r["losses"][-1]), "accuracy": r["metrics"].get("accuracy"),
                      "test_accuracy": r["metrics"].get("test_accuracy")}
    return rows


def mlp_layer_inputs(params, x, activation):
    """The input of every linear layer of a :func:`reference.nn.mlp` (``{"0": x, "1": h1, ...}``).

    Calibration data for methods that look at activations (EVA's SVD of the
    layer inputs, SVDQuant's smoothing factors). ``activation`` is the MLP's
    activation name (``problem.activation``); plain arrays in, plain arrays out.
    """
    act = nn.ACTIVATIONS[activation]
    layers = linear_layers(params)
    h, out = x, {}
    for i, layer in enumerate(layers):
        out[layer] = h
        z = h @ params[f"{layer}.weight"].T
        if f"{layer}.bias" in params:
            z = z + params[f"{layer}.bias"]
        if i < len(layers) - 1:
            z = act(z)
            z = z.value if isinstance(z, ag.Tensor) else z
        h = z
    return out
