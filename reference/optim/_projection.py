"""GaLore-style low-rank projection of a weight matrix's gradient, written once.

Shared by the memory-efficient optimizers that keep state in a subspace
(``frugal``, ``subset_norm_subspace_momentum``, ``owlore``). For an ``m x n``
gradient ``G`` the projector is a matrix with ``r`` orthonormal rows or
columns, put on the *shorter* side so that the projected gradient is as small
as possible (GaLore's ``proj_type="std"``, Zhao et al. 2024, arXiv:2403.03507,
also FRUGAL's and the Subset-Norm/Subspace-Momentum code's default):

* ``m >= n`` ("right"): ``B`` is ``r x n`` (the top ``r`` right singular
  vectors ``Vh[:r]``); ``low = G B^T`` (``m x r``), ``back(low) = low B``;
* ``m < n`` ("left"): ``A`` is ``m x r`` (the top ``r`` left singular vectors
  ``U[:, :r]``); ``low = A^T G`` (``r x n``), ``back(low) = A low``.

``back(low(G))`` is the orthogonal projection of ``G`` onto the subspace, so
``G - back(low(G))`` is the part of the gradient the subspace misses (FRUGAL
and Subspace-Momentum update it with a state-free rule; GaLore drops it). The
bases are arrays of the gradient's dtype on its device; the sign ambiguity of
the SVD does not matter, since an optimizer's state in the subspace is
(re)started whenever the basis changes.
"""
from __future__ import annotations

import numpy as np

from ..backend import xp_of

__all__ = ["projects_right", "clamp_rank", "svd_basis", "random_basis", "project", "project_back"]


def projects_right(shape):
    """True when an ``m x n`` matrix is projected on its right (``m >= n``)."""
    return shape[0] >= shape[1]


def clamp_rank(shape, rank):
    """``min(rank, min(m, n))``: a rank larger than the matrix means the whole (rotated) space."""
    return int(min(int(rank), min(shape)))


def svd_basis(g, rank):
    """The top-``rank`` singular vectors of ``g`` on its shorter side (``Vh[:r]`` or ``U[:, :r]``)."""
    xp = xp_of(g)
    u, _, vh = xp.linalg.svd(g, full_matrices=False)
    r = clamp_rank(g.shape, rank)
    return vh[:r].copy() if projects_right(g.shape) else u[:, :r].copy()


def random_basis(shape, rank, rng, like):
    """A random semi-orthogonal basis (QR of a Gaussian matrix) of the same layout as :func:`svd_basis`.

    ``rng`` is a ``numpy.random.Generator`` (the draw happens on the host, so a seed fixes it on any
    device); ``like`` gives the dtype and device."""
    r = clamp_rank(shape, rank)
    m, n = shape
    side = n if projects_right(shape) else m
    q, _ = np.linalg.qr(rng.standard_normal((side, r)))        # side x r, orthonormal columns
    basis = q.T if projects_right(shape) else q                 # r x n  or  m x r
    return xp_of(like).asarray(basis).astype(like.dtype)


def project(g, basis):
    """The coordinates of ``g`` in the subspace: ``G B^T`` or ``A^T G``."""
    return g @ basis.T if projects_right(g.shape) else basis.T @ g


def project_back(low, basis, shape):
    """Back to the full ``shape``: ``low B`` or ``A low``."""
    return low @ basis if projects_right(shape) else basis @ low
