"""Parameter-efficient fine-tuning and low-rank compression: one module per method.

An adapter maps frozen pretrained params plus a few trainable params to the
params the model runs with; :mod:`reference.peft.base` holds the shared
machinery (the :class:`~reference.peft.base.Adapter` base class, the oracle
through the frozen base, the :func:`~reference.peft.base.finetune` loop that
reports trainable scalars, optimizer-state bytes and accuracy).

* :mod:`~reference.peft.lora` — LoRA (Hu et al. 2021), the baseline adapter;
* :mod:`~reference.peft.eva` — EVA: LoRA initialised from the SVD of the layer inputs,
  ranks redistributed by explained variance;
* :mod:`~reference.peft.bone` — Bone: block-affine updates guided by the weights;
* :mod:`~reference.peft.hydra` — Hydra: a parallel and a sequential low-rank branch;
* :mod:`~reference.peft.svdquant` — SVDQuant: smoothing + a low-rank branch + 4-bit residual.

Every paper module registers itself in :mod:`reference.catalog` when imported;
importing this package imports them all.
"""
from __future__ import annotations

import importlib
import pkgutil

from .base import Adapter, AdapterOracle, compare, finetune, linear_layers, mlp_layer_inputs, state_bytes

__all__ = ["Adapter", "AdapterOracle", "compare", "finetune", "linear_layers", "mlp_layer_inputs", "state_bytes",
           "names"]


def names():
    """The method modules, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_") and m.name != "base")


for _m in names():
    importlib.import_module(f"{__name__}.{_m}")
