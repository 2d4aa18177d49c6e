"""Shapes: a small CNN classifying generated images of circles, squares and triangles.

    p = reference.problems.create("shapes")
    params = p.init(0)                      # the CNN's params: "conv0.weight", ..., "fc.bias"
    loss, grads = p.oracle()(params)        # mean cross-entropy over the training set
    image, mask = p.image_and_mask(0)       # (16, 16) float image, (16, 16) bool mask
    p.evaluate(params)                      # {"loss", "accuracy", "test_loss", "test_accuracy"}

Every image holds exactly one object on a dark background; the class is the
object's kind (``CLASSES``: 0 circle, 1 square, 2 triangle). Because the
images are drawn here, the ground-truth object mask of every image is known:
``problem.masks`` (training set) and ``problem.test_masks`` (held-out set),
aligned with ``problem.data["x"]`` and ``problem.test_data["x"]``. That is
what attribution methods (saliency maps, Integrated Gradients) are scored
against: a good attribution puts its mass inside the mask.

How an image is drawn (all from ``numpy.random.default_rng(seed)``):

1. Pick the kind (classes exactly balanced, then shuffled), the size ``d``
   uniform in ``[min_size, max_size]`` pixels and the centre uniform among
   the positions that keep the object's bounding box inside the image.
   Pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)`` in (x, y) coordinates,
   with y pointing down as in an image.
2. The object, of extent ``d``:

   * circle: diameter ``d`` (area ``pi d^2 / 4``);
   * square: axis-aligned, side ``d`` (area ``d^2``);
   * triangle: equilateral, side ``d``, pointing up (area ``sqrt(3) d^2 / 4``).

3. Its *coverage* of each pixel, the fraction of the pixel inside the object,
   is estimated on an ``antialias x antialias`` grid of sub-pixel points
   (``antialias=1``: one point at the pixel centre, a hard edge). The clean
   image is the coverage: 1 inside the object, 0 on the background, in
   between on the edge.
4. The **mask** is ``coverage >= 0.5``: the rasterised object. ``antialias``
   must be odd, so that a row and a column of sample points run through the
   pixel centre: then a straight edge puts a pixel in the mask exactly when
   at least half of it is covered, and mask areas are unbiased. (With an
   even grid the threshold would fall half a sample early and every object
   would come out about half a sample too large.)
5. The stored image is the clean image plus Gaussian noise of standard
   deviation ``noise`` (default 0.05) on every pixel.

The model is :func:`reference.nn.cnn`: ``[conv 3x3 -> activation -> 2x2
max-pool] x len(channels) -> linear``, on inputs of shape ``(N, 1, S, S)``.

Settings: ``image_size`` (16; divisible by ``2 ** len(channels)``),
``channels`` ((4, 8)), ``kernel_size`` (3), ``activation`` ("relu"),
``n_train`` (192), ``n_test`` (96), ``noise`` (0.05), ``min_size`` (5.0; at
least 3, so that no mask is empty) and ``max_size`` (10.0) in pixels,
``antialias`` (5, odd), ``seed`` (0, the data's seed; ``init(seed)`` seeds
the params). Defaults are small because the CNN's im2col convolution in
NumPy is slower than an MLP.
"""
from __future__ import annotations

import math

import numpy as np

from .. import nn
from . import register
from .base import Problem
from .networks import balanced_labels, check_activation, check_int, check_nonnegative, check_widths

__all__ = ["Shapes", "CLASSES", "draw", "object_area"]

CLASSES = ("circle", "square", "triangle")


def object_area(kind, size):
    """The exact area in pixels of an object of kind ``kind`` (index or name) and extent ``size``."""
    kind = CLASSES[kind] if not isinstance(kind, str) else kind
    return {"circle": math.pi / 4, "square": 1.0, "triangle": math.sqrt(3) / 4}[kind] * float(size) ** 2


def _inside(kind, x, y, cx, cy, d):
    """Boolean array: which points ``(x, y)`` lie inside the object (closed set)."""
    if kind == 0:  # circle of diameter d
        return (x - cx) ** 2 + (y - cy) ** 2 <= (d / 2) ** 2
    if kind == 1:  # axis-aligned square of side d
        return (np.abs(x - cx) <= d / 2) & (np.abs(y - cy) <= d / 2)
    # equilateral triangle of side d pointing up, centred in its bounding box:
    # apex at (cx, cy - h/2), base from (cx - d/2, cy + h/2) to (cx + d/2, cy + h/2)
    h = d * math.sqrt(3) / 2
    depth = y - (cy - h / 2)  # distance below the apex
    return (depth >= 0) & (depth <= h) & (np.abs(x - cx) <= depth / h * (d / 2))


def draw(kind, cx, cy, d, image_size=16, antialias=5):
    """The clean image (pixel coverage in [0, 1]) of one object, ``(image_size, image_size)``."""
    s, a = int(image_size), int(antialias)
    offsets = (np.arange(a) + 0.5) / a                     # sub-pixel sample points in [0, 1)
    coords = (np.arange(s)[:, None] + offsets[None, :]).reshape(-1)  # s * a points along an axis
    y, x = np.meshgrid(coords, coords, indexing="ij")
    hits = _inside(kind, x, y, cx, cy, d).astype(np.float64)
    return hits.reshape(s, a, s, a).mean(axis=(1, 3))


@register("shapes")
class Shapes(Problem):
    """A small CNN on generated 16x16 images of a circle, a square or a triangle (3 classes).

    See the module docstring for how the images and their object masks are
    drawn. Extra attributes: ``masks`` / ``test_masks`` (bool, ``(N, S, S)``),
    ``geometry`` / ``test_geometry`` (dicts of ``"kind"``, ``"cx"``, ``"cy"``,
    ``"size"`` arrays: the drawn objects), ``image_and_mask(i, split)``.
    """

    def __init__(self, image_size=16, channels=(4, 8), kernel_size=3, activation="relu", n_train=192,
                 n_test=96, noise=0.05, min_size=5.0, max_size=10.0, antialias=5, seed=0):
        super().__init__()
        where = "shapes"
        self.channels = check_widths(where, "channels", channels)
        self.image_size = check_int(where, "image_size", image_size, 2 ** len(self.channels))
        if self.image_size % 2 ** len(self.channels):
            raise ValueError(f"shapes: image_size must be divisible by 2 ** len(channels) = "
                             f"{2 ** len(self.channels)}, got {image_size!r}")
        self.kernel_size = check_int(where, "kernel_size", kernel_size, 1)
        if self.kernel_size % 2 != 1:
            raise ValueError(f"shapes: kernel_size must be odd (for 'same' padding), got {kernel_size!r}")
        self.activation = check_activation(where, activation)
        self.n_train_ = check_int(where, "n_train", n_train, len(CLASSES))
        self.n_test_ = check_int(where, "n_test", n_test, 1)
        self.noise = check_nonnegative(where, "noise", noise)
        self.min_size = check_nonnegative(where, "min_size", min_size)
        self.max_size = check_nonnegative(where, "max_size", max_size)
        # from 3 pixels up, the pixel holding the object's incentre is at least half covered: no empty masks
        if not 3.0 <= self.min_size <= self.max_size <= self.image_size:
            raise ValueError(f"shapes: need 3 <= min_size <= max_size <= image_size ({self.image_size}), "
                             f"got min_size={min_size!r}, max_size={max_size!r}")
        self.antialias = check_int(where, "antialias", antialias, 1)
        if self.antialias % 2 != 1:
            raise ValueError(f"shapes: antialias must be odd (samples through the pixel centre), got {antialias!r}")
        self.seed = check_int(where, "seed", seed, 0)

        self.in_shape = (1, self.image_size, self.image_size)
        self._init_cnn, self.apply = nn.cnn(self.in_shape, self.channels, len(CLASSES), self.kernel_size,
                                            self.activation)
        self.param_shapes = {k: v.shape for k, v in self._init_cnn(0).items()}

        rng = np.random.default_rng(self.seed)
        x, y, self.masks, self.geometry = self._sample(rng, self.n_train_)
        self.data = {"x": x, "y": y}
        x, y, self.test_masks, self.test_geometry = self._sample(rng, self.n_test_)
        self.test_data = {"x": x, "y": y}

    def __repr__(self):
        return (f"<problem shapes: cnn channels {self.channels} on {self.in_shape} images, "
                f"{self.n_train_} train examples>")

    def _sample(self, rng, n):
        """``n`` noisy images ``(n, 1, S, S)``, labels, masks ``(n, S, S)`` and their geometry."""
        s = self.image_size
        kind = balanced_labels(rng, n, len(CLASSES))
        size = rng.uniform(self.min_size, self.max_size, n)
        # the bounding box (d x d for the circle and square, d x h for the triangle) stays inside
        height = np.where(kind == 2, size * math.sqrt(3) / 2, size)
        cx = rng.uniform(size / 2, s - size / 2)
        cy = rng.uniform(height / 2, s - height / 2)
        clean = np.stack([draw(k, x_, y_, d, s, self.antialias) for k, x_, y_, d in zip(kind, cx, cy, size)])
        masks = clean >= 0.5
        images = clean + self.noise * rng.standard_normal(clean.shape)
        geometry = {"kind": kind, "cx": cx, "cy": cy, "size": size}
        return images[:, None, :, :], kind, masks, geometry

    def image_and_mask(self, i, split="train"):
        """Image ``i`` as ``(S, S)`` floats and its object mask as ``(S, S)`` bools."""
        if split not in ("train", "test"):
            raise ValueError(f"shapes.image_and_mask: split must be 'train' or 'test', got {split!r}")
        data, masks = (self.data, self.masks) if split == "train" else (self.test_data, self.test_masks)
        return data["x"][i, 0], masks[i]

    def _init(self, rng):
        return self._init_cnn(rng)

    def _per_example_loss(self, params, batch):
        if batch is None:
            batch = self._batch_like(None, params)
        return nn.cross_entropy_losses(self.apply(params, batch["x"]), batch["y"])

    def evaluate(self, params):
        """Training and test loss and accuracy."""
        return self._train_test_metrics(params, self.apply, nn.cross_entropy_losses)
