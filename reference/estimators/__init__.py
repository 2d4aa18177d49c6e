"""Gradient estimators: cheaper, randomised stand-ins for exact gradients (or parts of them).

* :mod:`reference.estimators.wta_crs` — Winner-Take-All Column-Row Sampling, an
  unbiased estimator of a matrix product used for a linear layer's weight
  gradient, so that only a sample of the layer's input activations is stored.
"""
