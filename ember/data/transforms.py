"""Data augmentation and normalisation on whole batches (``ember.data.transforms``).

Every transform is a callable on a batch of images, an ndarray or Tensor of shape (N, C, H, W)
(float), or on one image (C, H, W), returning the same type and dtype. ``ToTensor`` comes first
for pictures stored as uint8 (N, H, W, C) (``ImageFolder``, ``CIFAR10``): it gives float32
(N, C, H, W) in [0, 1]. Random transforms draw ONE vector of parameters per
batch (one value per image) from ``ember.random.default_generator()``, so ``ember.manual_seed``
makes them reproducible, and they are vectorised over the batch (no Python loop over images).
Names and arguments follow ``torchvision.transforms`` (which works on one image at a time).
"""
from __future__ import annotations

import math

import numpy as np

from ..random import default_generator
from ..tensor import Tensor


def _unwrap(x):
    """(ndarray (N, C, H, W), rewrap function giving back the input's type and rank); one image
    (C, H, W) is a batch of one. Raises ValueError for another rank."""
    is_tensor = isinstance(x, Tensor)
    a = x._data if is_tensor else np.asarray(x)
    if a.ndim not in (3, 4):
        raise ValueError(f"transforms work on batches of shape (N, C, H, W) or images of shape (C, H, W), "
                         f"got shape {a.shape}")
    single = a.ndim == 3

    def wrap(v):
        v = v[0] if single else v
        return Tensor(v) if is_tensor else v
    return (a[None] if single else a), wrap


class ToTensor:
    """torchvision's ``ToTensor`` layout and scaling, on one picture or a batch: HWC -> CHW, and
    uint8 values divided by 255 into float32 [0, 1]; other dtypes are only transposed (as
    torchvision leaves non-uint8 arrays unscaled).

    Shape: (H, W) -> (1, H, W); (H, W, C) -> (C, H, W); (N, H, W, C) -> (N, C, H, W).
    Returns the input's type (ndarray or Tensor), unlike torchvision (always a Tensor): ember's
    DataLoader turns ndarray batches into Tensors itself. Raises ValueError for another rank.
    """

    def __call__(self, x):
        is_tensor = isinstance(x, Tensor)
        a = x._data if is_tensor else np.asarray(x)
        if a.ndim == 2:
            a = a[None]
        elif a.ndim in (3, 4):
            a = np.moveaxis(a, -1, -3)               # (..., H, W, C) -> (..., C, H, W)
        else:
            raise ValueError(f"ToTensor: expected (H, W), (H, W, C) or (N, H, W, C), got shape {a.shape}")
        a = a.astype(np.float32) / np.float32(255) if a.dtype == np.uint8 else np.ascontiguousarray(a)
        return Tensor(a) if is_tensor else a

    def __repr__(self):
        return "ToTensor()"


class Compose:
    """Apply transforms in order: ``Compose([RandomCrop(28, 2), RandomHorizontalFlip()])``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self):
        return "Compose(\n" + "".join(f"    {t!r},\n" for t in self.transforms) + ")"


class Normalize:
    """(x − mean[c]) / std[c] per channel c, as torchvision's ``Normalize``.

    Args: mean, std: a float or one value per channel (e.g. ``CIFAR10_MEAN``, ``CIFAR10_STD``
    in ``ember.data.cifar``). Raises: ValueError for a zero std or a channel-count mismatch (at
    call time); TypeError for integer images (torchvision's rule: normalise after ``ToTensor``).
    """

    def __init__(self, mean, std):
        self.mean, self.std = np.atleast_1d(np.asarray(mean, np.float64)), np.atleast_1d(np.asarray(std, np.float64))
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std evaluated to zero, got std={std!r}")

    def __call__(self, x):
        a, wrap = _unwrap(x)
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"Normalize: expected float images, got {a.dtype}; apply ToTensor first")
        if self.mean.size not in (1, a.shape[1]) or self.std.size not in (1, a.shape[1]):
            raise ValueError(f"Normalize: {a.shape[1]} channels but mean/std have {self.mean.size}/{self.std.size} values")
        m = self.mean.astype(a.dtype).reshape(1, -1, 1, 1)
        s = self.std.astype(a.dtype).reshape(1, -1, 1, 1)
        return wrap((a - m) / s)

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomCrop:
    """Pad each image by ``padding`` pixels (value ``fill``) and cut a random ``size`` window from it,
    a different window per image (the standard CIFAR/Fashion-MNIST "shift" augmentation).

    Args: size: int or (h, w); padding=0: int; fill=0.0 (in the units of the input, e.g. the
        normalised background value): a number, or a sequence of one value per channel.
    Shape: (N, C, H, W) -> (N, C, h, w). Raises: ValueError when the padded image is smaller than size.
    """

    def __init__(self, size, padding: int = 0, fill: float = 0.0):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.padding, self.fill = int(padding), fill

    def __call__(self, x):
        a, wrap = _unwrap(x)
        N, C, H, W = a.shape
        h, w = self.size
        p = self.padding
        if H + 2 * p < h or W + 2 * p < w:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the padded image {H + 2 * p}x{W + 2 * p}")
        xp = a
        if p:  # fill: a scalar, or one value per channel (C,)
            xp = np.empty((N, C, H + 2 * p, W + 2 * p), a.dtype)
            xp[...] = np.asarray(self.fill, a.dtype).reshape(-1, 1, 1)
            xp[:, :, p:p + H, p:p + W] = a
        g = default_generator()
        top = g.integers(0, H + 2 * p - h + 1, N)               # (N,) per-image offsets
        left = g.integers(0, W + 2 * p - w + 1, N)
        rows = (top[:, None] + np.arange(h))[:, None, :, None]  # (N, 1, h, 1)
        cols = (left[:, None] + np.arange(w))[:, None, None, :]  # (N, 1, 1, w)
        out = xp[np.arange(N)[:, None, None, None], np.arange(C)[None, :, None, None], rows, cols]
        return wrap(out)

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left–right with probability p (default 0.5), independently per image."""

    def __init__(self, p: float = 0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, x):
        a, wrap = _unwrap(x)
        flip = default_generator().random(a.shape[0]) < self.p   # (N,)
        return wrap(np.where(flip[:, None, None, None], a[..., ::-1], a))

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomAffine:
    """Small random rotations, shifts and scalings, one draw per image, bilinear resampling.

    Args:
        degrees: rotation angle drawn from U(−degrees, degrees) (or U(a, b) for a pair).
        translate: (fx, fy): shift by U(−fx·W, fx·W) columns and U(−fy·H, fy·H) rows; None: none.
        scale: (lo, hi): zoom factor U(lo, hi); None: 1.
        fill: value of the pixels that come from outside the image (default 0.0).
    Shape: (N, C, H, W) -> (N, C, H, W); rotation about the image centre, as torchvision.
    """

    def __init__(self, degrees, translate=None, scale=None, fill: float = 0.0):
        self.degrees = (-degrees, degrees) if isinstance(degrees, (int, float)) else tuple(degrees)
        self.translate, self.scale, self.fill = translate, scale, fill

    def __call__(self, x):
        a, wrap = _unwrap(x)
        N, C, H, W = a.shape
        g = default_generator()
        theta = np.deg2rad(g.uniform(*self.degrees, N))                      # (N,)
        tx = g.uniform(-1, 1, N) * (self.translate[0] * W if self.translate else 0)
        ty = g.uniform(-1, 1, N) * (self.translate[1] * H if self.translate else 0)
        s = g.uniform(*self.scale, N) if self.scale else np.ones(N)
        cy, cx = (H - 1) / 2, (W - 1) / 2
        yy, xx = np.meshgrid(np.arange(H) - cy, np.arange(W) - cx, indexing="ij")   # (H, W) output coords
        cos, sin = (np.cos(theta) / s)[:, None, None], (np.sin(theta) / s)[:, None, None]
        xo, yo = xx[None] - tx[:, None, None], yy[None] - ty[:, None, None]  # undo the shift, then
        src_x = cos * xo + sin * yo + cx                                      # the inverse rotation/zoom
        src_y = -sin * xo + cos * yo + cy                                     # (N, H, W) source coords
        x0, y0 = np.floor(src_x).astype(np.intp), np.floor(src_y).astype(np.intp)
        fx, fy = (src_x - x0).astype(a.dtype), (src_y - y0).astype(a.dtype)
        out = np.zeros_like(a)
        n = np.arange(N)[:, None, None]
        for dy, dx, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
            yi, xi = y0 + dy, x0 + dx
            inside = (yi >= 0) & (yi < H) & (xi >= 0) & (xi < W)           # (N, H, W)
            v = a[n, :, np.clip(yi, 0, H - 1), np.clip(xi, 0, W - 1)]      # (N, H, W, C)
            v = np.where(inside[..., None], v, a.dtype.type(self.fill))
            out += (wgt[..., None] * v).transpose(0, 3, 1, 2)
        return wrap(out)

    def __repr__(self):
        return f"RandomAffine(degrees={self.degrees}, translate={self.translate}, scale={self.scale})"


def default_augmentation(fill: float = 0.0) -> Compose:
    """The ``ember train --augment`` pipeline for 28×28 images: random 2-pixel shifts
    (``RandomCrop(28, padding=2)``) and left–right flips. ``fill`` is the background value."""
    return Compose([RandomCrop(28, padding=2, fill=fill), RandomHorizontalFlip()])


__all__ = ["Compose", "Normalize", "RandomAffine", "RandomCrop", "RandomHorizontalFlip", "ToTensor",
           "default_augmentation"]
