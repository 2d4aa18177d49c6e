"""Gradient estimators: cheaper, randomised stand-ins for exact gradients (or parts of them).

* :mod:`reference.estimators.wta_crs` — Winner-Take-All Column-Row Sampling, an
  unbiased estimator of a matrix product used for a linear layer's weight
  gradient, so that only a sample of the layer's input activations is stored.
"""
import importlib as _importlib
import pkgutil as _pkgutil

# every estimator module registers its paper in the catalog on import
for _m in sorted(m.name for m in _pkgutil.iter_modules(__path__)):
    if not _m.startswith("_"):
        _importlib.import_module(f"{__name__}.{_m}")
