"""Layers (``ember.nn``): each holds its Parameters and calls one function of ``F`` in forward.
No layer defines a backward; the gradients live in ``ember.ops``. Convolutions: ``nn/conv.py``."""
from __future__ import annotations

import numpy as np

from . import functional as F
from . import init
from ._validation import _check_range, _pair
from .conv import Conv2d  # noqa: F401  (ember.nn.layers.Conv2d, its old home)
from .module import Module, Parameter


class Linear(Module):
    """Fully connected (affine) layer y = x Wᵀ + b (deck 000: a(l+1) = g(Θ(l) a(l))).

    Args: in_features, out_features (positive ints), bias (default True).
    Shape: (*, in_features) -> (*, out_features).
    Parameters: weight (out_features, in_features), bias (out_features,), both
        ~ U(−1/sqrt(in_features), 1/sqrt(in_features)) (PyTorch's default).
    Example: Linear(400, 120)(x) with x (64, 400) -> (64, 120).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None):
        super().__init__()
        _check_range(in_features, "in_features", 1)
        _check_range(out_features, "out_features", 1)
        self.in_features, self.out_features = in_features, out_features
        dt = np.dtype(dtype or np.float32)
        self.weight = Parameter(np.empty((out_features, in_features), dt))
        self.bias = Parameter(np.empty(out_features, dt)) if bias else None
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Bilinear(Module):
    """y = x1ᵀ A x2 + b per output feature (torch.nn.Bilinear): args in1_features, in2_features,
    out_features, bias=True; weight (out, in1, in2) and bias (out,) ~ U(−1/√in1, 1/√in1), PyTorch's
    init. forward(input1 (*, in1), input2 (*, in2)) -> (*, out). Errors: F.bilinear's."""

    def __init__(self, in1_features: int, in2_features: int, out_features: int, bias: bool = True, dtype=None):
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        dt = np.dtype(dtype or np.float32)
        self.weight = Parameter(np.empty((out_features, in1_features, in2_features), dt))
        self.bias = Parameter(np.empty(out_features, dt)) if bias else None
        bound = 1 / np.sqrt(in1_features)
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class _Pool2d(Module):
    """kernel_size, stride (None: kernel_size) and padding, kept as given (torch's attributes);
    checked here so that a bad layer fails when built (the call checks the rest, torch's way)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        _check_range(_pair(kernel_size, "kernel_size"), "kernel_size", 1)
        if stride is not None:
            _check_range(_pair(stride, "stride"), "stride", 1)
        _check_range(_pair(padding, "padding"), "padding", 0)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max pooling over KH×KW windows (deck 001: 2×2, stride 2), torch.nn.MaxPool2d.

    Args: kernel_size, stride (default kernel_size), padding=0 (−inf, at most half the kernel),
        dilation=1, return_indices=False (forward returns (output, indices), the indices flat in
        each H×W input plane, for MaxUnpool2d), ceil_mode=False: all ints or pairs.
    Shape: (N, C, H, W) or (C, H, W) -> (N, C, OH, OW) or (C, OH, OW),
        OH = ⌊(H + 2PH − DH(KH − 1) − 1)/SH⌋ + 1, ceil_mode: ⌈…⌉ + 1, less one if the last
        window would start at or past H + PH. See ``F.max_pool2d`` for the gradient and errors.
    Raises: ValueError when built with a kernel_size or stride < 1, padding < 0 or dilation < 1.
    Example: MaxPool2d(2)(x) with x (8, 6, 28, 28) -> (8, 6, 14, 14).
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__(kernel_size, stride, padding)
        _check_range(_pair(dilation, "dilation"), "dilation", 1)
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, input):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self):
        return f"{super().extra_repr()}, dilation={self.dilation}, ceil_mode={self.ceil_mode}"


class AvgPool2d(_Pool2d):
    """Average pooling over KH×KW windows, torch.nn.AvgPool2d.

    Args: kernel_size, stride (default kernel_size), padding=0 (zeros, at most half the kernel),
        ceil_mode=False, count_include_pad=True (padding cells count in the divisor),
        divisor_override=None (an int: the divisor of every window).
    Shape: as MaxPool2d's with dilation 1. See ``F.avg_pool2d`` for the divisor and errors.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None):
        super().__init__(kernel_size, stride, padding)
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def forward(self, input):
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)


class MaxPool1d(Module):
    """Max pooling over windows of a sequence, torch.nn.MaxPool1d (MaxPool2d on a height-1 image).

    Args: kernel_size, stride (default kernel_size), padding=0, dilation=1, return_indices=False,
        ceil_mode=False: ints (or 1-tuples), kept as given.
    Shape: (N, C, L) or (C, L) -> (N, C, OL) or (C, OL), OL = ⌊(L + 2P − D(K − 1) − 1)/S⌋ + 1
        (ceil_mode: see MaxPool2d). Errors: ``F.max_pool1d``'s, at the call (as torch).
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation, self.return_indices, self.ceil_mode = padding, dilation, return_indices, ceil_mode

    def forward(self, input):
        return F.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool1d(Module):
    """Average pooling over windows of a sequence, torch.nn.AvgPool1d.

    Args: kernel_size, stride (default kernel_size), padding=0 (stored as 1-tuples, as torch),
        ceil_mode=False, count_include_pad=True.
    Shape: (N, C, L) or (C, L) -> (N, C, OL) or (C, OL), OL = ⌊(L + 2P − K)/S⌋ + 1.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__()
        one = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,)  # noqa: E731  (torch's _single)
        self.kernel_size = one(kernel_size)
        self.stride = one(stride if stride is not None else kernel_size)
        self.padding, self.ceil_mode, self.count_include_pad = one(padding), ceil_mode, count_include_pad

    def forward(self, input):
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool2d(Module):
    """The partial inverse of MaxPool2d, torch.nn.MaxUnpool2d: forward(input, indices,
    output_size=None) puts each input value at its index of a zero output plane.

    Args: kernel_size, stride (default kernel_size), padding=0: ints or pairs, stored as pairs.
    Shape: (N, C, H, W) or (C, H, W) -> (N, C, OH, OW) or (C, OH, OW), default
        OH = (H − 1)·SH − 2PH + KH, or ``output_size`` (see ``F.max_unpool2d``).
    Example: pool = MaxPool2d(2, return_indices=True); y, i = pool(x); MaxUnpool2d(2)(y, i)
        has x's shape (for even H, W) with x's maxima in place and zeros elsewhere.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride if stride is not None else kernel_size, "stride")
        self.padding = _pair(padding, "padding")

    def forward(self, input, indices, output_size=None):
        return F.max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Flatten(Module):
    """Flatten dims start_dim..end_dim: (N, C, H, W) -> (N, C*H*W) by default (start_dim=1)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


class ReLU(Module):
    """max(x, 0) elementwise; any shape. ``inplace=True`` writes into the input (torch.nn.ReLU's)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu(x, inplace=self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x if x > 0 else negative_slope·x (default 0.01); any shape."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope, self.inplace)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    """x Φ(x) elementwise (torch.nn.GELU); ``approximate='tanh'`` for the tanh approximation;
    any shape. Raises ValueError for another ``approximate``."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    """x σ(x) elementwise (torch.nn.SiLU, "swish"); any shape. ``inplace=True``: into the input."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.silu(x, inplace=self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Softplus(Module):
    """log(1 + e^(βx)) / β elementwise, x where βx > threshold (torch.nn.Softplus: beta=1.0,
    threshold=20.0); any shape."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(Module):
    """x clipped to [min_val, max_val] (torch.nn.Hardtanh, defaults −1, 1); any shape."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        if max_val <= min_val:
            raise ValueError(f"Hardtanh: max_val ({max_val}) must be greater than min_val ({min_val})")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, x):
        return F.hardtanh(x, self.min_val, self.max_val, self.inplace)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class ReLU6(Module):
    """min(max(x, 0), 6) elementwise (torch.nn.ReLU6); any shape. ``inplace=True``: into the input."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu6(x, inplace=self.inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class ELU(Module):
    """x if x > 0 else alpha (e^x − 1) (torch.nn.ELU, alpha=1.0); any shape."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x):
        return F.elu(x, self.alpha, self.inplace)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Mish(Module):
    """x tanh(softplus(x)) elementwise (torch.nn.Mish; Misra 2019); any shape. ``inplace=True``:
    into the input, which is returned."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        mish = lambda t: t * F.tanh(F.softplus(t))  # noqa: E731
        return x._inplace(mish) if self.inplace else mish(x)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class PReLU(Module):
    """x where x > 0, else a·x with a learned slope a, one or one per channel (torch.nn.PReLU;
    He et al. 2015). Args: num_parameters=1 (or C), init=0.25. Shape: any; with C slopes,
    (N, C, *). Parameter: weight (num_parameters,)."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25):
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        self.weight = Parameter(np.full(num_parameters, init, np.float32))

    def forward(self, x):
        return F.prelu(x, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class ZeroPad2d(Module):
    """Zero padding of the last two dims (torch.nn.ZeroPad2d): padding an int (all four sides)
    or (left, right, top, bottom). Shape: (*, H, W) -> (*, H + top + bottom, W + left + right)."""

    def __init__(self, padding):
        super().__init__()
        self.padding = (padding,) * 4 if isinstance(padding, int) else tuple(padding)

    def forward(self, x):
        return F.pad(x, self.padding)

    def extra_repr(self):
        return f"{self.padding}"


class GLU(Module):
    """Gated linear unit along ``dim`` (torch.nn.GLU): see F.glu. Shape: (*, 2M, *) -> (*, M, *)."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.glu(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Upsample(Module):
    """Resize the spatial dims (torch.nn.Upsample): see F.interpolate. Args: size or
    scale_factor, mode='nearest', align_corners=None. Shape: (N, C, *spatial) -> (N, C, *size)."""

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.size, self.mode, self.align_corners = size, mode, align_corners
        self.scale_factor = float(scale_factor) if isinstance(scale_factor, (int, float)) else scale_factor
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self):
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size`` (torch.nn.Unflatten): (N, C·H·W) -> (N, C, H, W)."""

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x):
        d = self.dim % x.ndim
        return x.reshape(*x.shape[:d], *self.unflattened_size, *x.shape[d + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Embedding(Module):
    """A lookup table: integer indices (*) -> rows of ``weight`` (*, embedding_dim)
    (torch.nn.Embedding). Parameters: weight (num_embeddings, embedding_dim) ~ N(0, 1), the
    ``padding_idx`` row zero and without gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight=None, _freeze: bool = False, device=None, dtype=None):
        super().__init__()
        for name, value, default in (("max_norm", max_norm, None), ("scale_grad_by_freq", scale_grad_by_freq, False),
                                     ("sparse", sparse, False)):
            if value != default:
                raise NotImplementedError(f"Embedding: {name}={value!r} is not supported by ember (only {name}={default})")
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise AssertionError("Padding_idx must be within num_embeddings")
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse = max_norm, norm_type, scale_grad_by_freq, sparse
        if _weight is None:
            from ..random import default_generator
            w = default_generator().standard_normal((num_embeddings, embedding_dim)).astype(dtype or np.float32)
            if padding_idx is not None:
                w[padding_idx] = 0
        else:   # from_pretrained: the given rows themselves (memory shared, as torch; a padding row is not zeroed)
            w = np.asarray(_weight.detach().numpy() if hasattr(_weight, "detach") else _weight)
            if w.shape != (num_embeddings, embedding_dim):
                raise AssertionError("Shape of weight does not match num_embeddings and embedding_dim")
        self.weight = Parameter(w, requires_grad=not _freeze)

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx: int | None = None,
                        max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> "Embedding":
        """An Embedding whose weight is ``embeddings`` (num_embeddings, embedding_dim) itself (the
        memory shared, as torch's), in its dtype, frozen (no gradient) unless ``freeze=False``; the
        ``padding_idx`` row keeps its values and gets no gradient. Raises AssertionError for embeddings that are not 2-D.
        Source: torch.nn.Embedding.from_pretrained."""
        if len(embeddings.shape) != 2:
            raise AssertionError("Embeddings parameter is expected to be 2-dimensional")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse, _weight=embeddings,
                   _freeze=freeze)

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class Sigmoid(Module):
    """σ(x) = 1/(1 + e^−x) elementwise; any shape."""

    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x) elementwise; any shape."""

    def forward(self, x):
        return F.tanh(x)


class Softmax(Module):
    """softmax along ``dim``; same shape as the input."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)


class LogSoftmax(Module):
    """log softmax along ``dim``; same shape as the input."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.log_softmax(x, self.dim)
