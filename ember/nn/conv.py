"""Convolution-family layers: ``Conv1d``, ``Conv2d`` (one ``_ConvNd`` base), ``LocallyConnected2d``,
``AdaptiveAvgPool2d``.

Each holds its Parameters and calls one function of ``F``; gradients live in ``ember.ops``.
"""
from __future__ import annotations

import math

import numpy as np

from . import functional as F
from . import init
from ._validation import _check_range, _pair, _single
from .module import Module, Parameter


class _ConvNd(Module):
    """Shared constructor of ``Conv1d``/``Conv2d`` (as torch's ``_ConvNd``): validates the
    arguments, normalises them to ``_ndim``-tuples, creates weight (C_out, C_in/groups, *K) and
    bias (C_out,) with PyTorch's default init U(−1/sqrt(k), 1/sqrt(k)), k = C_in/groups·ΠK.

    Raises: ValueError for non-positive channels, sizes, strides, dilations or groups, a negative
        padding, a kernel/stride/... that is not an int (or an ``_ndim``-tuple), or channels not
        divisible by groups (PyTorch's messages).
    """
    _ndim = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", dtype=None):
        super().__init__()
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"padding_mode must be one of ['zeros', 'reflect', 'replicate', 'circular'], "
                             f"but got padding_mode='{padding_mode}'")
        self.padding_mode = padding_mode
        tup = _pair if self._ndim == 2 else (lambda v, name: (_single(v, name),))
        ks, st, dl = (tup(v, n) for v, n in ((kernel_size, "kernel_size"), (stride, "stride"), (dilation, "dilation")))
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("kernel_size", ks),
                        ("stride", st), ("dilation", dl), ("groups", groups)):
            _check_range(v, name, 1)
        if isinstance(padding, str):                          # torch keeps 'same'/'valid' as given
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'same', 'valid'}}")
            if padding == "same" and any(s != 1 for s in st):
                raise ValueError("padding='same' is not supported for strided convolutions")
            pd = padding
        else:
            pd = tup(padding, "padding")
            _check_range(pd, "padding", 0)
        if in_channels % groups:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups:
            raise ValueError("out_channels must be divisible by groups")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.padding, self.dilation = ks, st, pd, dl
        dt = np.dtype(dtype or np.float32)
        self.weight = Parameter(np.empty(self._weight_shape(in_channels, out_channels, groups, ks), dt))
        self.bias = Parameter(np.empty(out_channels, dt)) if bias else None
        init.default_layer_init_(self.weight, self.bias)

    @staticmethod
    def _weight_shape(in_channels, out_channels, groups, kernel_size):
        return (out_channels, in_channels // groups, *kernel_size)

    def forward(self, x):
        conv = F.conv2d if self._ndim == 2 else F.conv1d
        if self.padding_mode != "zeros":   # torch's: pad with the mode first, then convolve unpadded
            x = F.pad(x, [v for before_after in reversed(self.padding_pairs()) for v in before_after], mode=self.padding_mode)
            return conv(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def padding_pairs(self):
        """Per spatial dim, the (before, after) padding this layer applies: ``padding`` twice, or
        for 'valid' zeros, for 'same' F.same_padding's (the odd one after)."""
        if self.padding == "valid":
            return [(0, 0)] * self._ndim
        if self.padding == "same":
            return F.same_padding(self.kernel_size, self.dilation)
        return [(p, p) for p in self.padding]

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        for name, default in (("padding", (0,) * self._ndim), ("dilation", (1,) * self._ndim)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        s += "" if self.bias is not None else ", bias=False"
        return s + ("" if self.padding_mode == "zeros" else f", padding_mode={self.padding_mode}")


class Conv1d(_ConvNd):
    """1-D convolution (cross-correlation) layer: deck 000's (θ * x)_i = Σ_j θ_j x_{i+j}, with
    ``out_channels`` filters over ``in_channels`` input channels.

    Args: in_channels, out_channels, kernel_size (int), stride=1, padding=0, dilation=1,
        groups=1, bias=True.
    Shape: (N, C_in, L) -> (N, C_out, OL),  OL = ⌊(L + 2P − D(K − 1) − 1)/S⌋ + 1.
    Parameters: weight (C_out, C_in/groups, K), bias (C_out,), ~ U(−1/sqrt(k), 1/sqrt(k)),
        k = C_in/groups·K (PyTorch's default).
    Raises: ValueError for non-positive sizes or channels not divisible by groups.
    Example: Conv1d(1, 1, 3, bias=False) with weight [1, 0, 1] maps [1, 1, 1, 0, 0] to [2, 1, 1].
    """
    _ndim = 1


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation) layer with ``out_channels`` filters (deck 000/001/002).

    Args: in_channels, out_channels, kernel_size (int or (KH, KW)), stride=1, padding=0,
        dilation=1, groups=1, bias=True.
    Shape: (N, C_in, H, W) -> (N, C_out, OH, OW),
        OH = (H + 2*PH − DH*(KH−1) − 1) // SH + 1,  OW likewise.
    Parameters: weight (C_out, C_in/groups, KH, KW), bias (C_out,),
        ~ U(−1/sqrt(k), 1/sqrt(k)), k = C_in/groups·KH·KW (PyTorch's default).
    Example: Conv2d(1, 6, 5, padding=2)(x) with x (8, 1, 28, 28) -> (8, 6, 28, 28).
    """
    _ndim = 2


class _ConvTransposeNd(_ConvNd):
    """Shared constructor of ``ConvTranspose1d``/``ConvTranspose2d`` (torch's ``_ConvTransposeNd``):
    ``_ConvNd``'s checks, weight (C_in, C_out/groups, *K) (PyTorch's layout for the transposed
    conv), bias (C_out,), both ~ U(−1/sqrt(k), 1/sqrt(k)) with k = C_out/groups·ΠK (PyTorch's
    fan-in of that weight), and ``output_padding``.

    forward(input, output_size=None): ``output_size`` (the spatial size, optionally with N and C
    in front) picks the output_padding that gives it, as PyTorch's.
    Raises: ValueError for a padding_mode other than 'zeros' or a string padding (PyTorch's
        transposed convs pad with zeros only), for an output_size outside the sizes the stride
        allows (PyTorch's message), and as ``_ConvNd``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__}: padding={padding!r} is not supported (give the padding "
                             f"as an int or a tuple)")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype)
        tup = _pair if self._ndim == 2 else (lambda v, name: (_single(v, name),))
        self.output_padding = tup(output_padding, "output_padding")

    @staticmethod
    def _weight_shape(in_channels, out_channels, groups, kernel_size):
        return (in_channels, out_channels // groups, *kernel_size)   # PyTorch's layout when transposed

    def _output_padding(self, x, output_size):
        if output_size is None:
            return self.output_padding
        size = list(output_size)[-self._ndim:]
        spatial = x.shape[-self._ndim:]
        lo = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in
              zip(spatial, self.stride, self.padding, self.dilation, self.kernel_size)]
        hi = [m + s - 1 for m, s in zip(lo, self.stride)]
        if any(not a <= v <= b for v, a, b in zip(size, lo, hi)):
            raise ValueError(f"requested an output size of {tuple(size)}, but valid sizes range from {lo} to {hi} "
                             f"(for an input of {tuple(spatial)})")
        return tuple(v - a for v, a in zip(size, lo))

    def forward(self, x, output_size=None):
        conv = F.conv_transpose2d if self._ndim == 2 else F.conv_transpose1d
        return conv(x, self.weight, self.bias, self.stride, self.padding, self._output_padding(x, output_size),
                    self.groups, self.dilation)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        for name, default in (("padding", (0,) * self._ndim), ("dilation", (1,) * self._ndim),
                              ("output_padding", (0,) * self._ndim)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution ("deconvolution", the upsampling layer of DCGAN's generator and of
    decoders; torch.nn.ConvTranspose2d): the adjoint of Conv2d with the same arguments.

    Args: in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
        bias=True, dilation=1 (PyTorch's order).
    Shape: (N, C_in, H, W) -> (N, C_out, H_out, W_out),
        H_out = (H − 1)·SH − 2·PH + DH·(KH − 1) + output_padding + 1.
    Parameters: weight (C_in, C_out/groups, KH, KW), bias (C_out,).
    Example: ConvTranspose2d(16, 8, 4, stride=2, padding=1) doubles the size: (N, 16, 7, 7) -> (N, 8, 14, 14).
    """
    _ndim = 2


class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution (torch.nn.ConvTranspose1d): (N, C_in, L) -> (N, C_out, L_out),
    L_out = (L − 1)·S − 2P + D·(K − 1) + output_padding + 1; weight (C_in, C_out/groups, K).
    See ``ConvTranspose2d``."""
    _ndim = 1


class LocallyConnected2d(Module):
    """A convolution without weight sharing: every output position has its own filters (deck 000:
    "locally-connected" sits between fully connected and convolutional layers). No PyTorch twin.

    Args: in_channels, out_channels, input_size (H, W) (the weights depend on the positions),
        kernel_size, stride=1, padding=0, bias=True.
    Shape: (N, C_in, H, W) -> (N, C_out, OH, OW),  OH = ⌊(H + 2PH − KH)/SH⌋ + 1.
    Parameters: weight (OH, OW, C_out, C_in, KH, KW), bias (C_out, OH, OW), both
        ~ U(−1/sqrt(k), 1/sqrt(k)), k = C_in·KH·KW (as a Conv2d's).
    Raises: ValueError for non-positive sizes or an input smaller than the kernel.
    Example: LocallyConnected2d(1, 4, (28, 28), 5)(x) with x (8, 1, 28, 28) -> (8, 4, 24, 24),
        with 24·24·4·25 = 57,600 weights where Conv2d(1, 4, 5) has 100.
    """

    def __init__(self, in_channels, out_channels, input_size, kernel_size, stride=1, padding=0,
                 bias: bool = True, dtype=None):
        super().__init__()
        _check_range(in_channels, "in_channels", 1)
        _check_range(out_channels, "out_channels", 1)
        hw, ks = _pair(input_size, "input_size"), _pair(kernel_size, "kernel_size")
        st, pd = _pair(stride, "stride"), _pair(padding, "padding")
        for name, v in (("input_size", hw), ("kernel_size", ks), ("stride", st)):
            _check_range(v, name, 1)
        _check_range(pd, "padding", 0)
        OH = (hw[0] + 2 * pd[0] - ks[0]) // st[0] + 1
        OW = (hw[1] + 2 * pd[1] - ks[1]) // st[1] + 1
        if OH < 1 or OW < 1:
            raise ValueError(f"input_size {hw} (padding {pd}) is smaller than kernel_size {ks}")
        self.in_channels, self.out_channels, self.input_size = in_channels, out_channels, hw
        self.kernel_size, self.stride, self.padding, self.output_size = ks, st, pd, (OH, OW)
        dt = np.dtype(dtype or np.float32)
        bound = 1 / math.sqrt(in_channels * ks[0] * ks[1])
        self.weight = init.uniform_(Parameter(np.empty((OH, OW, out_channels, in_channels, *ks), dt)), -bound, bound)
        self.bias = init.uniform_(Parameter(np.empty((out_channels, OH, OW), dt)), -bound, bound) if bias else None

    def forward(self, x):
        return F.locally_connected2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                + ("" if self.bias is not None else ", bias=False"))


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size, whatever the input size (PyTorch's bins).

    Args: output_size: int or (OH, OW) (None keeps that input dim), torch.nn.AdaptiveAvgPool2d.
    Shape: (N, C, H, W) or (C, H, W) -> (N, C, OH, OW) or (C, OH, OW). ``AdaptiveAvgPool2d(1)`` is
    global average pooling. Errors: ``F.adaptive_avg_pool2d``'s.
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(Module):
    """Average pooling of (N, C, L) or (C, L) to ``output_size`` bins (torch.nn.AdaptiveAvgPool1d;
    PyTorch's bins): AdaptiveAvgPool2d over a height of 1."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x.unsqueeze(-2), (1, self.output_size)).squeeze(-2)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(AdaptiveAvgPool1d):
    """Max pooling of (N, C, L) or (C, L) to ``output_size`` bins (torch.nn.AdaptiveMaxPool1d);
    return_indices=False (forward returns (output, indices along L))."""

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__(output_size)
        self.return_indices = return_indices

    def forward(self, x):
        out = F.adaptive_max_pool2d(x.unsqueeze(-2), (1, self.output_size), self.return_indices)
        if self.return_indices:
            return out[0].squeeze(-2), out[1].squeeze(-2)
        return out.squeeze(-2)


class AdaptiveMaxPool2d(Module):
    """Max pooling to a fixed output size over PyTorch's adaptive bins, torch.nn.AdaptiveMaxPool2d.

    Args: output_size: int or (OH, OW) (None keeps that input dim); return_indices=False (forward
        returns (output, indices), the indices flat in each H×W input plane).
    Shape: (N, C, H, W) or (C, H, W) -> (N, C, OH, OW) or (C, OH, OW). Errors: ``F.adaptive_max_pool2d``'s.
    """

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input):
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"
