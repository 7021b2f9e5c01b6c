"""Classic image filtering with ember's own convolution (decks 000, 001, 002).

A filter is a small array of weights slid over an image. Deep-learning layers compute the
*cross-correlation* (deck 000: ``(I * K)(i, j) = Σ_m Σ_n I(i + m, j + n) K(m, n)``; deck 001:
"this is what people actually use"); signal processing's *convolution* flips the kernel in both
axes first (deck 002: ``(h * f)(x, y) = Σ_i Σ_j h(i, j) f(x − i, y − j)``, "to implement
convolution with a sliding mask, you must flip it in x and y"). The impulse response tells them
apart: convolving a single 1 pixel with a filter copies the filter; correlating flips it.

Every function here runs ``ember.nn.functional.conv2d`` (one depthwise conv, ``groups`` = number
of channels), so the pictures of ``ember filter`` come from the same code that trains LeNet.

Example:
    >>> from ember.viz import filters
    >>> filters.filter1d([1, 1, 1, 0, 0], [1, 0, 1]).tolist()   # deck 000's worked 1-D example
    [2.0, 1.0, 1.0]
"""
from __future__ import annotations

import os

import numpy as np

from ..nn import functional as F
from ..tensor import Tensor

# Kernels as written on the slides (row-major, top row first). Correlation applies them as shown.
KERNELS: dict[str, np.ndarray] = {
    # deck 002 "practice with linear filters": does nothing.
    "identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]]),
    # deck 002: under convolution this shifts the image one pixel to the right
    # (under correlation, one pixel to the left: "that would be a correlation filter").
    "shift": np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]]),
    # deck 000 "Box blur (normalized)", deck 002 mean filter: 1/9 ones(3, 3).
    "box-3": np.ones((3, 3)) / 9,
    # deck 001 "Convolutions on larger images": 1/49 ones(7, 7).
    "box-7": np.ones((7, 7)) / 49,
    # deck 000 "Gaussian blur (approximation)": 1/16 [[1,2,1],[2,4,2],[1,2,1]].
    "gaussian": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16,
    # deck 000 "Sharpen"; deck 001 "sharpen = highpass + identity".
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    # deck 001 "Highpass kernel: finds edges".
    "highpass": np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]]),
    # deck 000 "Edge detection", 4-neighbour Laplacian.
    "laplacian-4": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
    # deck 000 "Edge detection", 8-neighbour.
    "laplacian-8": np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]),
    # deck 000, first row of the kernel table (diagonal edges).
    "edge": np.array([[1, 0, -1], [0, 0, 0], [-1, 0, 1]]),
    # deck 001 "Sobel kernels: edges and gradient": d/dx (left to right) and d/dy (top to bottom).
    "sobel-x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "sobel-y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]),
}
# Not a single kernel: sqrt(sobel_x² + sobel_y²), see sobel_magnitude().
SOBEL_MAGNITUDE = "sobel-magnitude"
# A picture to try ``ember filter`` on: demo_image(128) saved as an 8-bit grey PNG (procedurally
# generated, so free of any licence; tests/test_vision.py checks it still equals demo_image(128)).
TEST_PICTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test-picture.png")
MODES = ("correlate", "convolve")
PADDINGS = ("valid", "same")


def kernel_names() -> list[str]:
    """All names ``get_kernel`` and ``ember filter --kernel`` accept (incl. ``sobel-magnitude``)."""
    return list(KERNELS) + [SOBEL_MAGNITUDE]


def get_kernel(name: str, dtype=np.float32) -> np.ndarray:
    """Return a copy of the named kernel as a (KH, KW) array.

    Raises:
        ValueError: unknown name; the message lists the valid names.
    """
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; valid kernels: {', '.join(kernel_names())}")
    return KERNELS[name].astype(dtype)


def _check_choice(value, valid, what):
    if value not in valid:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, valid))}, got {value!r}")


def filter2d(image, kernel, mode: str = "correlate", padding: str = "valid"):
    """Filter a grey or colour image with one 2-D kernel, channel by channel, via ``F.conv2d``.

    ``mode="correlate"``: out(i, j) = Σ_m Σ_n I(i + m, j + n) K(m, n)   (deck 000, what Conv2d does).
    ``mode="convolve"``:  the same with K flipped in both axes           (deck 002, true convolution).

    Args:
        image: array-like or Tensor of shape (H, W) or (H, W, C) (channels last, as image files).
            Float64 stays float64 (and a Tensor keeps its graph); anything else becomes float32.
        kernel: (KH, KW) array-like, or a name from ``KERNELS`` (e.g. ``"sobel-x"``).
        mode: ``"correlate"`` (default) or ``"convolve"``.
        padding: ``"valid"`` (no padding: output (H − KH + 1, W − KW + 1)) or ``"same"``
            (zero padding so the output is (H, W); an even kernel pads one more at the bottom/right).
    Returns:
        an ndarray (a Tensor if ``image`` was a Tensor) of shape (OH, OW) or (OH, OW, C).
    Raises:
        ValueError: unknown kernel name, mode or padding; a kernel that is not 2-D; an image that
            is not 2-D or 3-D, or is smaller than the kernel with ``padding="valid"``.
    """
    _check_choice(mode, MODES, "mode")
    _check_choice(padding, PADDINGS, "padding")
    is_tensor = isinstance(image, Tensor)
    x = image if is_tensor else Tensor(np.asarray(image))
    if x.dtype != np.float64:
        x = x.astype(np.float32)
    if x.ndim not in (2, 3):
        raise ValueError(f"filter2d: image must have shape (H, W) or (H, W, C), got {tuple(x.shape)}")
    k = get_kernel(kernel, x.dtype) if isinstance(kernel, str) else np.asarray(kernel, dtype=x.dtype)
    if k.ndim != 2:
        raise ValueError(f"filter2d: kernel must be 2-D (KH, KW), got shape {k.shape}")
    if mode == "convolve":
        k = k[::-1, ::-1]                                     # deck 002: flip in x and y
    KH, KW = k.shape
    H, W = x.shape[:2]
    if padding == "valid" and (H < KH or W < KW):
        raise ValueError(f"filter2d: image {H}x{W} is smaller than the kernel {KH}x{KW} "
                         f"(use padding='same')")
    C = 1 if x.ndim == 2 else x.shape[2]
    x4 = x.reshape(1, H, W, C).permute(0, 3, 1, 2)            # (1, C, H, W)
    if padding == "same":
        top, left = (KH - 1) // 2, (KW - 1) // 2
        x4 = F.pad(x4, (left, KW - 1 - left, top, KH - 1 - top))
    w = Tensor(np.ascontiguousarray(np.broadcast_to(k, (C, 1, KH, KW))))  # (C, 1, KH, KW) depthwise
    y = F.conv2d(x4, w, groups=C)                             # (1, C, OH, OW)
    y = y.permute(0, 2, 3, 1)[0]                              # (OH, OW, C)
    if x.ndim == 2:
        y = y.reshape(y.shape[0], y.shape[1])
    return y if is_tensor else y._data


def filter1d(signal, kernel, mode: str = "correlate", padding: str = "valid") -> np.ndarray:
    """1-D filtering, deck 000's ``(θ * x)_i = Σ_j θ_j x_{i+j}`` (correlation; convolve flips θ).

    Shape: signal (n,), kernel (m,) -> (n − m + 1,) for ``"valid"``, (n,) for ``"same"``.
    Raises: ValueError as ``filter2d``.
    """
    x = np.asarray(signal)
    k = np.asarray(kernel, dtype=np.float64 if x.dtype == np.float64 else np.float32)
    if x.ndim != 1 or k.ndim != 1:
        raise ValueError(f"filter1d: signal and kernel must be 1-D, got shapes {x.shape} and {k.shape}")
    return filter2d(x[None, :], k[None, :], mode=mode, padding=padding)[0]


def sobel_magnitude(image, padding: str = "valid", mode: str = "correlate"):
    """Gradient magnitude sqrt(Gx² + Gy²) from the Sobel x and y kernels (deck 001).

    Shape and dtype as ``filter2d``; the result is non-negative. (The magnitude is the same for
    both modes: convolving only negates Gx and Gy.)
    """
    gx = filter2d(image, "sobel-x", mode=mode, padding=padding)
    gy = filter2d(image, "sobel-y", mode=mode, padding=padding)
    if isinstance(gx, Tensor):
        return (gx * gx + gy * gy) ** 0.5
    return np.sqrt(gx * gx + gy * gy)


def apply_named(image, name: str, mode: str = "correlate", padding: str = "same"):
    """Apply a kernel by name, including the pseudo-kernel ``"sobel-magnitude"``."""
    if name == SOBEL_MAGNITUDE:
        return sobel_magnitude(image, padding=padding, mode=mode)
    return filter2d(image, name, mode=mode, padding=padding)


def preserves_brightness(name: str) -> bool:
    """True for kernels whose weights sum to 1 (identity, shift, blurs, sharpen).

    Their output is a picture on the input's 0..255 brightness scale; every other kernel (edges,
    Laplacians, Sobel: weights summing to 0) gives a signed response, positive on one side of an
    edge and negative on the other, which ``ember filter`` draws with a diverging colour map.
    """
    return name in KERNELS and abs(float(KERNELS[name].sum()) - 1) < 1e-6


def kernel_fraction(kernel, max_denominator: int = 64) -> tuple[int, np.ndarray]:
    """Write a kernel as ``1/d × integers`` when it is one (box-3 = 1/9 × ones), for printing.

    Returns (d, integer array); d = 1 for integer kernels, and (1, the kernel itself) when no
    d ≤ ``max_denominator`` makes every weight an integer.
    """
    k = np.asarray(kernel, dtype=np.float64)
    for d in range(1, max_denominator + 1):
        scaled = k * d
        if np.allclose(scaled, np.rint(scaled), atol=1e-6):
            return d, np.rint(scaled).astype(np.int64)
    return 1, k


def demo_image(size: int = 128) -> np.ndarray:
    """A built-in grey test picture (float32 in 0..255, (size, size)) with edges in every direction.

    A horizontal brightness ramp, a bright square, a dark disk, a diagonal bar, fine vertical
    stripes and a single bright pixel (whose filtered image is the kernel's impulse response).
    """
    n = size
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64) / n
    img = 40 + 60 * xx                                           # ramp 40 -> 100
    img[(yy > 0.12) & (yy < 0.42) & (xx > 0.1) & (xx < 0.4)] = 230  # square
    img[(yy - 0.7) ** 2 + (xx - 0.28) ** 2 < 0.17 ** 2] = 10      # disk
    bar = np.abs((yy - 0.1) - (xx - 0.5)) < 0.04
    img[bar & (xx > 0.5) & (yy < 0.55)] = 200                     # diagonal bar
    stripes = (xx > 0.6) & (yy > 0.65) & (yy < 0.9)
    on = np.broadcast_to((np.arange(n) // max(n // 32, 1)) % 2 == 0, (n, n))
    img[stripes] = np.where(on[stripes], 220, 30)                # vertical stripes
    img[int(0.55 * n), int(0.85 * n)] = 255                       # impulse
    return img.astype(np.float32)
