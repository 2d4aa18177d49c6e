"""Saving and loading params and optimizer state as ``.npz`` (never pickle).

    reference.io.save("run.npz", {"params": params, "state": state})
    tree = reference.io.load("run.npz")

Nested dicts are flattened with ``/`` between levels (``"state/m/0.weight"``),
so a key may not itself contain ``/``. Leaves may be arrays (NumPy or CuPy;
CuPy arrays are copied to the host), Python ``int``/``float``/``bool`` and
``None``. Every leaf keeps its exact dtype and bits; Python scalars come back
as Python scalars of the same type (an optimizer's integer ``step`` stays an
``int``), so that a run resumed from a file continues bit for bit.

The file carries a format marker; loading a file that is not one of ours, a
truncated file, or one without an expected key raises ``ValueError`` naming
the path and what is wrong. ``allow_pickle=False`` always.
"""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from .backend import to_numpy

__all__ = ["save", "load", "flatten_tree", "unflatten_tree", "SEP", "FORMAT"]

SEP = "/"
FORMAT = "reference-tree-v1"
_META = "__reference_meta__"


def flatten_tree(tree, prefix=""):
    """``{"a": {"b": x}} -> {"a/b": x}`` plus a record of which leaves were Python scalars."""
    flat, kinds = {}, {}
    if not isinstance(tree, dict):
        raise TypeError(f"io: expected a dict at {prefix or 'the top level'}, got {type(tree).__name__}")
    for k, v in tree.items():
        if not isinstance(k, str) or SEP in k or not k:
            raise ValueError(f"io: keys must be non-empty strings without {SEP!r}, got {k!r} at {prefix or 'top level'}")
        path = f"{prefix}{SEP}{k}" if prefix else k
        if isinstance(v, dict):
            if not v:
                kinds[path] = "emptydict"
                flat[path] = np.zeros(0)
                continue
            f2, k2 = flatten_tree(v, path)
            flat.update(f2)
            kinds.update(k2)
        elif v is None:
            kinds[path] = "none"
            flat[path] = np.zeros(0)
        elif isinstance(v, bool):
            kinds[path] = "bool"
            flat[path] = np.asarray(v)
        elif isinstance(v, int):
            kinds[path] = "int"
            flat[path] = np.asarray(v, dtype=np.int64)
        elif isinstance(v, float):
            kinds[path] = "float"
            flat[path] = np.asarray(v, dtype=np.float64)
        elif hasattr(v, "dtype") and hasattr(v, "shape"):
            arr = to_numpy(v)
            if arr.dtype == object:
                raise TypeError(f"io: {path!r} is an object array; only numeric arrays can be saved")
            flat[path] = np.asarray(arr)
        else:
            raise TypeError(f"io: cannot save {path!r} of type {type(v).__name__}; use arrays, "
                            "Python numbers, None or dicts")
    return flat, kinds


def unflatten_tree(flat, kinds):
    tree = {}
    for path, arr in flat.items():
        parts = path.split(SEP)
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        kind = kinds.get(path)
        if kind == "none":
            value = None
        elif kind == "emptydict":
            value = {}
        elif kind == "bool":
            value = bool(arr)
        elif kind == "int":
            value = int(arr)
        elif kind == "float":
            value = float(arr)
        else:
            value = arr
        node[parts[-1]] = value
    return tree


def save(path, tree):
    """Write ``tree`` (a dict, possibly nested) to ``path`` as an uncompressed ``.npz``."""
    flat, kinds = flatten_tree(tree)
    meta = json.dumps({"format": FORMAT, "kinds": kinds, "keys": list(flat)})
    path = os.fspath(path)
    with open(path, "wb") as f:
        np.savez(f, **{_META: np.asarray(meta)}, **flat)
    return path


def load(path, expect_keys=None):
    """Read a tree written by :func:`save`. ``expect_keys``: top-level keys that must be present."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
            if _META not in files:
                raise ValueError(f"io.load: {path} is not a file written by reference.io.save (no format marker)")
            meta = json.loads(str(z[_META]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"io.load: {path} has format {meta.get('format')!r}, expected {FORMAT!r}")
            missing = [k for k in meta["keys"] if k not in files]
            if missing:
                raise ValueError(f"io.load: {path} is missing arrays {missing[:5]} listed in its header")
            flat = {k: z[k] for k in meta["keys"]}
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"io.load: {path} is not a readable .npz file (truncated or corrupt): {e}") from None
    tree = unflatten_tree(flat, meta["kinds"])
    if expect_keys is not None:
        absent = [k for k in expect_keys if k not in tree]
        if absent:
            raise ValueError(f"io.load: {path} has no {absent}; it has {sorted(tree)}")
    return tree
