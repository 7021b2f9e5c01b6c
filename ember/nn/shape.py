"""Padding, pixel shuffle and distance modules with PyTorch's names, compositions of ``F.pad``,
reshape/permute and ember's norms (no backward of their own).

    ReflectionPad1d/2d, ReplicationPad1d/2d, CircularPad1d/2d, ConstantPad1d/2d, ZeroPad1d:
        F.pad with the mode; padding an int (every side) or (left, right[, top, bottom])
    pixel_shuffle(x, r):   (*, C·r², H, W) -> (*, C, H·r, W·r)   (Shi et al. 2016, "sub-pixel convolution")
    pixel_unshuffle(x, r): its inverse, (*, C, H·r, W·r) -> (*, C·r², H, W)
    CosineSimilarity(dim=1, eps=1e-8), PairwiseDistance(p=2.0, eps=1e-6, keepdim=False): F's functions
"""
from __future__ import annotations

from . import functional as F
from .module import Module


class _PadNd(Module):
    """F.pad(x, padding, mode, value) with ``padding`` an int (all 2·ndim sides) or a 2·ndim-tuple."""
    _ndim, _mode = 2, "constant"

    def __init__(self, padding, value=0.0):
        super().__init__()
        self.padding = (padding,) * (2 * self._ndim) if isinstance(padding, int) else tuple(padding)
        if len(self.padding) != 2 * self._ndim:
            raise ValueError(f"{type(self).__name__}: padding must be an int or a {2 * self._ndim}-tuple, got "
                             f"{padding!r}")
        self.value = value

    def forward(self, x):
        if self._mode == "constant":
            return F.pad(x, self.padding, value=self.value)
        return F.pad(x, self.padding, mode=self._mode)

    def extra_repr(self):
        return f"{self.padding}"


def _pads(mode, ndim, doc):
    base = type(f"_{mode.capitalize()}Pad{ndim}d", (_PadNd,), {"_ndim": ndim, "_mode": mode, "__module__": __name__})

    def init(self, padding):
        _PadNd.__init__(self, padding)
    name = {"reflect": "Reflection", "replicate": "Replication", "circular": "Circular"}[mode] + f"Pad{ndim}d"
    return type(name, (base,), {"__init__": init, "__doc__": doc, "__module__": __name__})


ReflectionPad1d = _pads("reflect", 1, "Mirror padding of the last dim (torch.nn.ReflectionPad1d): (*, W) -> (*, W + l + r).")
ReflectionPad2d = _pads("reflect", 2, "Mirror padding of the last two dims (torch.nn.ReflectionPad2d).")
ReplicationPad1d = _pads("replicate", 1, "Edge padding of the last dim (torch.nn.ReplicationPad1d).")
ReplicationPad2d = _pads("replicate", 2, "Edge padding of the last two dims (torch.nn.ReplicationPad2d).")
CircularPad1d = _pads("circular", 1, "Wrap-around padding of the last dim (torch.nn.CircularPad1d).")
CircularPad2d = _pads("circular", 2, "Wrap-around padding of the last two dims (torch.nn.CircularPad2d).")


class ConstantPad1d(_PadNd):
    """Padding of the last dim with ``value`` (torch.nn.ConstantPad1d): padding, value."""
    _ndim = 1

    def extra_repr(self):
        return f"padding={self.padding}, value={float(self.value)}"


class ConstantPad2d(ConstantPad1d):
    """Padding of the last two dims with ``value`` (torch.nn.ConstantPad2d): padding, value."""
    _ndim = 2


class ZeroPad1d(_PadNd):
    """Zero padding of the last dim (torch.nn.ZeroPad1d): padding an int or (left, right)."""
    _ndim = 1

    def __init__(self, padding):
        super().__init__(padding)


def pixel_shuffle(x, upscale_factor: int):
    """(*, C·r², H, W) -> (*, C, H·r, W·r): out[c, h·r + i, w·r + j] = x[c·r² + i·r + j, h, w]
    (torch.nn.functional.pixel_shuffle). Raises: RuntimeError when C is not divisible by r²."""
    r = int(upscale_factor)
    *lead, C, H, W = x.shape
    if C % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                           f"upscale_factor, but input.size(-3)={C} is not divisible by {r * r}")
    n = len(lead)
    y = x.reshape(*lead, C // (r * r), r, r, H, W)
    y = y.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)          # (*, C, H, r, W, r)
    return y.reshape(*lead, C // (r * r), H * r, W * r)


def pixel_unshuffle(x, downscale_factor: int):
    """(*, C, H·r, W·r) -> (*, C·r², H, W), the inverse of pixel_shuffle
    (torch.nn.functional.pixel_unshuffle). Raises: RuntimeError when H or W is not divisible by r."""
    r = int(downscale_factor)
    *lead, C, H, W = x.shape
    if H % r or W % r:
        raise RuntimeError(f"pixel_unshuffle expects height to be divisible by downscale_factor, but input.size(-2)="
                           f"{H} is not divisible by {r}" if H % r else
                           f"pixel_unshuffle expects width to be divisible by downscale_factor, but input.size(-1)="
                           f"{W} is not divisible by {r}")
    n = len(lead)
    y = x.reshape(*lead, C, H // r, r, W // r, r)
    y = y.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)          # (*, C, r, r, H/r, W/r)
    return y.reshape(*lead, C * r * r, H // r, W // r)


class PixelShuffle(Module):
    """Sub-pixel upsampling (torch.nn.PixelShuffle): (*, C·r², H, W) -> (*, C, H·r, W·r)."""

    def __init__(self, upscale_factor: int):
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, x):
        return pixel_shuffle(x, self.upscale_factor)

    def extra_repr(self):
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """The inverse of PixelShuffle (torch.nn.PixelUnshuffle): (*, C, H·r, W·r) -> (*, C·r², H, W)."""

    def __init__(self, downscale_factor: int):
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, x):
        return pixel_unshuffle(x, self.downscale_factor)

    def extra_repr(self):
        return f"downscale_factor={self.downscale_factor}"


class CosineSimilarity(Module):
    """F.cosine_similarity(x1, x2, dim, eps) (torch.nn.CosineSimilarity): args dim=1, eps=1e-8."""

    def __init__(self, dim: int = 1, eps: float = 1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    """F.pairwise_distance(x1, x2, p, eps, keepdim) (torch.nn.PairwiseDistance): args p=2.0,
    eps=1e-6, keepdim=False."""

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1, x2):
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


class Unfold(Module):
    """im2col as a layer (torch.nn.Unfold): args kernel_size, dilation=1, padding=0, stride=1;
    (N, C, H, W) -> (N, C·KH·KW, L). Errors: F.unfold's."""

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def forward(self, x):
        return F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, stride={self.stride}"


class Fold(Unfold):
    """col2im as a layer (torch.nn.Fold): args output_size, kernel_size, dilation=1, padding=0,
    stride=1; (N, C·KH·KW, L) -> (N, C, H, W). Errors: F.fold's."""

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__(kernel_size, dilation, padding, stride)
        self.output_size = output_size

    def forward(self, x):
        return F.fold(x, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self):
        return f"output_size={self.output_size}, " + super().extra_repr()
