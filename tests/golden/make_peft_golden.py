"""Regenerate ``tests/golden/peft.npz``: what Hugging Face ``peft`` computes for EVA and Bone,
which ``tests/test_peft.py`` checks ``reference.peft`` against.

    pip install peft==0.15.2 transformers    # peft 0.15.x still has BoneConfig (removed in 0.18)
    python tests/golden/make_peft_golden.py

torch and peft are needed only here (and in the optional ``peer`` test that
reruns ``compute()``); the tests read the committed ``.npz``.

Peers (their source read in site-packages/peft/):

* ``peft.utils.incremental_pca.IncrementalPCA`` (EVA's incremental SVD),
  with ``lowrank=False`` (exact SVD), fed float64 minibatches: case ``ipca``
  records ``components_``, ``singular_values_``,
  ``explained_variance_ratio_``, ``mean_`` and ``var_`` after every batch.
* ``peft.tuners.lora.eva.get_eva_state_dict`` (EVA's whole initialisation:
  incremental SVD per layer, convergence check, rank redistribution) on a
  torch copy of a small MLP (``nn.Sequential`` of ``Linear``/``Tanh``, float64
  weights from the ``finetune_mlp`` problem). Two patches make the peer
  deterministic and exact: ``IncrementalPCA`` is built with ``lowrank=False``
  (peft uses ``torch.svd_lowrank``, a randomised SVD) and computes in float64.
  The peer's hook still casts each layer input to float32 before the SVD, so
  the generator records the layer inputs *as the peer sees them* (float32
  values) for the exact comparison. Cases ``eva_r{r}_rho{rho}``.
* ``peft.BoneConfig`` (tuners/bone/layer.py) on an MLP 4 -> 8 -> 8 -> 4:
  ``init_weights="bat"`` (the paper's weight-guided Bone, ``variant="col"``)
  with ``r=2`` and ``init_weights=True`` (``variant="shard"``) with ``r=3``,
  which does not divide the widths 4 and 8 (peft's padding rule). The zero
  initial blocks are replaced by random ones (``bone_block``) so that the
  update is not trivially zero; recorded: the merged weights (peft's
  ``get_delta_weight``), the forward output on a batch, and the gradient of
  ``0.5 * mean(out^2)`` with respect to the blocks.

Keys: ``ipca/...``, ``eva/<case>/...``, ``bone/<case>/...``, and ``meta`` (a
JSON string: versions and settings).
"""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
OUT = pathlib.Path(__file__).with_name("peft.npz")

EVA_PROBLEM = dict(name="finetune_mlp", settings=dict(base="blobs", shift="rotate", angle=60.0, hidden=[32, 32],
                                                      seed=0))
EVA_BATCH, EVA_BATCHES = 16, 8
EVA_CASES = [(2, 2.0), (3, 1.5)]           # (r, rho)
EVA_LAYERS = ["1", "2"]                    # reference names; torch Sequential names are 2 * i
BONE_SIZES = [4, 8, 8, 4]
BONE_CASES = [("col", "bat", 2), ("shard", True, 3)]


def _torch_mlp(torch, params, sizes, act):
    layers = []
    for i in range(len(sizes) - 1):
        lin = torch.nn.Linear(sizes[i], sizes[i + 1]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.asarray(params[f"{i}.weight"])))
            lin.bias.copy_(torch.from_numpy(np.asarray(params[f"{i}.bias"])))
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(act())
    return torch.nn.Sequential(*layers)


def _ipca(torch, out):
    from peft.utils.incremental_pca import IncrementalPCA
    rng = np.random.default_rng(1)
    mix = rng.standard_normal((12, 12)) * np.linspace(3.0, 0.1, 12)[:, None]
    batches = [rng.standard_normal((20, 12)) @ mix + 0.5 for _ in range(4)]
    pca = IncrementalPCA(n_components=5, lowrank=False)
    for t, x in enumerate(batches):
        out[f"ipca/x/{t}"] = x
        pca.partial_fit(torch.from_numpy(x.copy()))
        for name in ("components_", "singular_values_", "explained_variance_ratio_", "mean_", "var_"):
            out[f"ipca/{t}/{name.rstrip('_')}"] = getattr(pca, name).double().numpy().copy()


def _eva(torch, out):
    import peft.tuners.lora.eva as eva_mod
    from peft import EvaConfig, LoraConfig
    from peft.utils.incremental_pca import IncrementalPCA

    class ExactIPCA(IncrementalPCA):
        """The peer's incremental PCA with the exact SVD, computed in float64."""

        def __init__(self, **kw):
            kw["lowrank"] = False
            super().__init__(**kw)

        def partial_fit(self, X, check_input=True):
            return super().partial_fit(X.double(), check_input)

    eva_mod.IncrementalPCA = ExactIPCA
    from reference import problems
    p = problems.create(EVA_PROBLEM["name"], **EVA_PROBLEM["settings"])
    base = p.init()
    for k, v in base.items():
        out[f"eva/base/{k}"] = v
    rng = np.random.default_rng(0)
    batches = [p.sample_batch(rng, EVA_BATCH)["x"] for _ in range(EVA_BATCHES)]
    for t, x in enumerate(batches):
        out[f"eva/x/{t}"] = x
    model = _torch_mlp(torch, base, p.sizes, torch.nn.Tanh)
    # the layer inputs as the peer's SVD sees them (its hook casts them to float32)
    seen = {name: [] for name in EVA_LAYERS}
    handles = [model[2 * int(name)].register_forward_hook(
        lambda m, inp, o, name=name: seen[name].append(inp[0].detach().to(torch.float32).double().numpy().copy()))
        for name in EVA_LAYERS]
    with torch.no_grad():
        for x in batches:
            model(torch.from_numpy(x))
    for h in handles:
        h.remove()
    for name in EVA_LAYERS:
        for t, v in enumerate(seen[name]):
            out[f"eva/inputs32/{name}/{t}"] = v
    for r, rho in EVA_CASES:
        config = LoraConfig(r=r, target_modules=[str(2 * int(n)) for n in EVA_LAYERS], init_lora_weights="eva",
                            eva_config=EvaConfig(rho=rho, tau=0.99))
        state = eva_mod.get_eva_state_dict(model, [torch.from_numpy(x) for x in batches], peft_config=config,
                                           forward_fn=lambda m, inputs: m(inputs), prepare_model_inputs_fn=None,
                                           prepare_layer_inputs_fn=None, show_progress_bar=False)
        for name in EVA_LAYERS:
            a = state.get(str(2 * int(name)))
            a = np.zeros((0, base[f"{name}.weight"].shape[1])) if a is None else a.double().numpy()
            out[f"eva/r{r}_rho{rho}/{name}"] = a


def _bone(torch, out):
    from peft import BoneConfig, get_peft_model
    rng = np.random.default_rng(2)
    params = {}
    for i in range(len(BONE_SIZES) - 1):
        params[f"{i}.weight"] = rng.standard_normal((BONE_SIZES[i + 1], BONE_SIZES[i])) / np.sqrt(BONE_SIZES[i])
        params[f"{i}.bias"] = 0.1 * rng.standard_normal(BONE_SIZES[i + 1])
    x = rng.standard_normal((10, BONE_SIZES[0]))
    for k, v in params.items():
        out[f"bone/base/{k}"] = v
    out["bone/x"] = x
    for variant, init_weights, r in BONE_CASES:
        model = get_peft_model(_torch_mlp(torch, params, BONE_SIZES, torch.nn.Tanh),
                               BoneConfig(r=r, init_weights=init_weights, target_modules=["0", "2", "4"]))
        key = f"bone/{variant}"
        blocks = {}
        for name, module in model.named_modules():
            if hasattr(module, "bone_block"):
                layer = str(int(name.rsplit(".", 1)[-1]) // 2)
                block = module.bone_block["default"]
                with torch.no_grad():
                    block.copy_(torch.from_numpy(0.3 * rng.standard_normal(tuple(block.shape))))
                blocks[layer] = (module, block)
                out[f"{key}/block/{layer}"] = block.detach().numpy().copy()
        y = model(torch.from_numpy(x))
        loss = 0.5 * (y ** 2).mean()
        loss.backward()
        out[f"{key}/out"] = y.detach().numpy().copy()
        for layer, (module, block) in blocks.items():
            out[f"{key}/grad/{layer}"] = block.grad.numpy().copy()
            w = module.get_base_layer().weight.detach().clone()
            merged = (w + module.get_delta_weight("default", w) if init_weights == "bat"
                      else module.get_delta_weight_bone("default", w))
            out[f"{key}/merged/{layer}"] = merged.detach().numpy().copy()


def compute():
    """The golden arrays as a dict (torch and peft imported here only)."""
    import peft
    import torch
    torch.set_default_dtype(torch.float64)
    out = {}
    _ipca(torch, out)
    _eva(torch, out)
    _bone(torch, out)
    out["meta"] = np.array(json.dumps({
        "peft": peft.__version__, "torch": torch.__version__, "eva_problem": EVA_PROBLEM,
        "eva_batch": EVA_BATCH, "eva_batches": EVA_BATCHES, "eva_cases": EVA_CASES, "eva_layers": EVA_LAYERS,
        "bone_sizes": BONE_SIZES, "bone_cases": [[v, str(i), r] for v, i, r in BONE_CASES]}))
    return out


if __name__ == "__main__":
    arrays = compute()
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(arrays)} arrays)")
