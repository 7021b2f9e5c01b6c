"""``ember.nn.functional`` (import as F): PyTorch's functional API over ember's ops.

Each function validates its arguments (``ember.nn._validation``), normalises ints to (h, w) pairs
and calls one op's ``apply``, through ``ember.kernels.dispatch`` where a fast kernel exists; the
gradients live in ``ember.ops``.
"""
from __future__ import annotations

import numpy as np

from ..kernels import dispatch
from ..ops import activation as _act, conv as _conv, local as _local, loss as _loss, matmul as _mm
from ..ops import movement as _mv, norm as _norm, pool as _pool
from ..random import default_generator
from ..tensor import Tensor
from ._validation import (ShapeError, _check_4d, _check_float, _check_params, _check_range, _check_reduction,
                          _class_weight, _legacy_reduction, _pair, _pm_one, _same_shape, _targets)


# ---- activations --------------------------------------------------------------------------
def _in_place(x: Tensor, f, *args) -> Tensor:
    """``f(x, *args)`` written into x, and x returned: torch's ``inplace=True`` (x's storage, its
    views and its version counter change as with ``x.relu_()``, ``Tensor._inplace``'s rules: a
    leaf that requires grad is refused; a backward that saved x's old values raises)."""
    return x._inplace(lambda s: f(s, *args))


def relu(x: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0) elementwise; any shape. ``inplace=True``: into x, x returned (``_in_place``)."""
    if inplace:
        return _in_place(x, relu)
    return dispatch(_act.ReLU).apply(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x if x > 0 else negative_slope * x (deck 000's "ReLU leakiness"); any shape.
    ``inplace=True``: into x, x returned (``_in_place``)."""
    if inplace:
        return _in_place(x, leaky_relu, negative_slope)
    return _act.LeakyReLU.apply(x, negative_slope=negative_slope)


def sigmoid(x: Tensor) -> Tensor:
    """σ(x) = 1 / (1 + e^−x), computed without overflow; any shape."""
    return _act.Sigmoid.apply(x)


def tanh(x: Tensor) -> Tensor:
    """tanh(x) elementwise; any shape."""
    return _act.Tanh.apply(x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """x Φ(x), Φ the standard normal CDF; approximate='tanh' uses
    Φ(x) ≈ (1 + tanh(√(2/π)(x + 0.044715 x³)))/2 (torch.nn.functional.gelu); any shape.
    Raises ValueError for another ``approximate``."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _act.GELU.apply(x, approximate=approximate)


def silu(x: Tensor, inplace: bool = False) -> Tensor:
    """x σ(x) (swish, torch.nn.functional.silu); any shape. ``inplace=True``: into x, x returned."""
    if inplace:
        return _in_place(x, silu)
    return _act.SiLU.apply(x)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + e^(βx)) / β, reverting to x where βx > threshold (torch.nn.functional.softplus);
    any shape."""
    return _act.Softplus.apply(x, beta=beta, threshold=threshold)


def hardtanh(x: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """x clipped to [min_val, max_val] (torch.nn.functional.hardtanh); any shape.
    ``inplace=True``: into x, x returned (``_in_place``)."""
    if inplace:
        return _in_place(x, hardtanh, min_val, max_val)
    return x.clamp(min_val, max_val)


def relu6(x: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6) (torch.nn.functional.relu6); any shape. ``inplace=True``: into x."""
    return hardtanh(x, 0.0, 6.0, inplace)


def elu(x: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x if x > 0 else alpha (e^x − 1) (torch.nn.functional.elu; Clevert et al. 2015); any shape.
    The exponential only sees min(x, 0), so no inf ever meets a zero gradient.
    ``inplace=True``: into x, x returned (``_in_place``)."""
    if inplace:
        return _in_place(x, elu, alpha)
    return _where(x > 0, x, (x.clamp(max=0.0).exp() - 1) * alpha)


def logsigmoid(x: Tensor) -> Tensor:
    """log σ(x) = −softplus(−x) (torch.nn.functional.logsigmoid); any shape."""
    return -softplus(-x)


def softmin(x: Tensor, dim: int) -> Tensor:
    """softmax(−x) along dim (torch.nn.functional.softmin); same shape as x."""
    return softmax(-x, dim)


def normalize(x: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """x / max(‖x‖_p, eps) along dim (torch.nn.functional.normalize); same shape as x."""
    return x / x.norm(p, dim=dim, keepdim=True).clamp(min=eps)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Σ_dim (x1/max(‖x1‖, eps)) (x2/max(‖x2‖, eps)) (torch.nn.functional.cosine_similarity; the
    inputs broadcast); the shape of x1 * x2 without dim."""
    return (normalize(x1, 2.0, dim, eps) * normalize(x2, 2.0, dim, eps)).sum(dim)


def embedding(input, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` (num_embeddings, D) picked by the integer ``input`` (*) -> (*, D)
    (torch.nn.functional.embedding); the rows at ``padding_idx`` get no gradient.
    Raises IndexError for an index outside [0, num_embeddings)."""
    idx = input.numpy() if isinstance(input, Tensor) else np.asarray(input)
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"embedding: expected an integer index tensor, got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= weight.shape[0]):
        raise IndexError(f"embedding: index out of range (indices must be in [0, {weight.shape[0]}))")
    out = weight[idx]
    if padding_idx is None:
        return out
    pad = Tensor(np.broadcast_to((idx == padding_idx % weight.shape[0])[..., None], out.shape))
    return _where(pad, out.detach(), out)


def _where(cond, a, b):
    from ..ops.elementwise import Where
    return Where.apply(cond.numpy(), a, b)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """Integer class labels (any shape (*)) -> int64 one-hot (*, num_classes), as
    torch.nn.functional.one_hot; ``num_classes=-1`` means max label + 1. Not differentiable.
    Raises RuntimeError for non-integer input, negative labels or labels >= num_classes."""
    labels = tensor.numpy() if isinstance(tensor, Tensor) else np.asarray(tensor)
    if labels.dtype.kind not in "iu":
        raise RuntimeError(f"one_hot is only applicable to index tensor of integer dtype, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise RuntimeError("one_hot: class values must be non-negative")
    if num_classes == -1:
        if not labels.size:
            raise RuntimeError("one_hot: cannot infer the total number of classes from an empty tensor")
        num_classes = int(labels.max()) + 1
    if labels.size and labels.max() >= num_classes:
        raise RuntimeError(f"one_hot: class values must be smaller than num_classes ({num_classes}), "
                           f"got {int(labels.max())}")
    return Tensor((labels[..., None] == np.arange(num_classes)).astype(np.int64))


def softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    """exp(x) / Σ_dim exp(x), max-subtracted for stability; same shape as x (cast to ``dtype``
    first if given). Raises: RuntimeError for an integer or bool x, as torch."""
    return x.softmax(dim, dtype=dtype)


def log_softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    """log softmax(x) along dim, as x − max − log Σ exp(x − max); same shape as x (cast to
    ``dtype`` first if given). Raises: RuntimeError for an integer or bool x, as torch."""
    return x.log_softmax(dim, dtype=dtype)


# ---- layers -------------------------------------------------------------------------------
def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x Wᵀ + b.

    Shape: x (*, in_features), weight (out_features, in_features), bias (out_features,)
        -> (*, out_features).
    Raises: ShapeError if x's last dimension is not in_features (or a weight/bias of the wrong
        shape); TypeError for a non-float input or one whose dtype differs from the weight's.
    """
    _check_params(x, weight, bias, 2, "linear")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        got = x.shape[-1] if x.ndim else "a 0-d tensor"
        raise ShapeError(f"linear: expected input with {weight.shape[1]} features (last dimension), "
                         f"got {got} (input shape {tuple(x.shape)})")
    return dispatch(_mm.Linear).apply(x, weight, bias)


def same_padding(kernel, dilation):
    """Per dim, the (before, after) zeros of padding='same': total D(K − 1), before = ⌊total/2⌋,
    the odd one after (torch's rule for even kernels)."""
    return [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation)]


def _string_padding(x: Tensor, padding: str, kernel, stride, dilation):
    """(x, symmetric padding) for padding='valid' or 'same' (torch.nn.functional.conv2d's strings):
    'same' keeps the size at stride 1; an odd total pads x's right/bottom by one more first.
    Raises: RuntimeError for another string or 'same' with a stride (torch's messages)."""
    if padding == "valid":
        return x, (0,) * len(kernel)
    if padding != "same":
        raise RuntimeError(f"Invalid padding string: '{padding}'")
    if any(s != 1 for s in stride):
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    pads = same_padding(kernel, dilation)
    extra = [after - before for before, after in reversed(pads)]      # 0 or 1 per dim, from the last
    if any(extra):
        x = pad(x, [v for e in extra for v in (0, e)])
    return x, tuple(before for before, _ in pads)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D cross-correlation of a batch of images with C_out filters (deck 001/002).

    Shape:
        x: (N, C_in, H, W), weight: (C_out, C_in/groups, KH, KW), bias: (C_out,)
        -> (N, C_out, OH, OW),  OH = ⌊(H + 2*PH − DH*(KH−1) − 1)/SH⌋ + 1 (same for W).
    Args: stride, padding, dilation: int or (h, w); groups: int dividing C_in and C_out.
    Raises: ShapeError for a wrong rank, channel count or an input smaller than the kernel;
        ValueError for stride/dilation/groups < 1 or padding < 0; TypeError for a dtype mismatch.
    """
    _check_4d(x, "conv2d")
    _check_params(x, weight, bias, 4, "conv2d")
    if isinstance(padding, str):
        x, padding = _string_padding(x, padding, weight.shape[2:], _pair(stride, "stride"), _pair(dilation, "dilation"))
    (SH, SW), (PH, PW), (DH, DW) = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    _check_range((SH, SW), "stride", 1, "conv2d")
    _check_range((PH, PW), "padding", 0, "conv2d")
    _check_range((DH, DW), "dilation", 1, "conv2d")
    _check_range((groups,), "groups", 1, "conv2d")
    C_out, Cg, KH, KW = weight.shape
    if x.shape[1] != Cg * groups:
        raise ShapeError(f"conv2d: expected input with {Cg * groups} channels, got {x.shape[1]} "
                         f"channels (input shape {tuple(x.shape)})")
    OH, OW = _conv.out_size(x.shape[2], KH, SH, PH, DH), _conv.out_size(x.shape[3], KW, SW, PW, DW)
    if OH < 1 or OW < 1:
        raise ShapeError(f"conv2d: input of size {x.shape[2]}x{x.shape[3]} (padded "
                         f"{x.shape[2] + 2 * PH}x{x.shape[3] + 2 * PW}) is smaller than the kernel {KH}x{KW}")
    return dispatch(_conv.Conv2d).apply(x, weight, bias, stride=(SH, SW), padding=(PH, PW),
                                        dilation=(DH, DW), groups=groups)


def _pool_ints(v, name, what, n=2, optional=False):
    """kernel_size/stride/padding/dilation as an n-tuple of ints, as torch parses them: an int or
    a tuple of 1 or n ints (stride: also None or () for "the kernel size", returned as None).
    Raises: TypeError for a non-integer, ValueError for another length (torch's wording)."""
    if optional and (v is None or (isinstance(v, (tuple, list)) and len(v) == 0)):
        return None
    vals = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in vals):
        raise TypeError(f"{what}(): argument '{name}' must be tuple of ints, not {type(v).__name__}")
    if len(vals) not in (1, n):
        ints = "a single int" if n == 1 else f"a single int, or a tuple of {('one', 'two')[n - 1]} ints"
        verb = "must be either" if name == "dilation" else "must either be"    # torch's two wordings
        raise ValueError(f"{what}: {name} {verb} {'omitted, ' if optional else ''}{ints}")
    return tuple(int(i) for i in vals) * (n // len(vals))


def _pool2d_check(x, K, S, P, D, ceil_mode, what):
    """torch's checks of a 2-D pool call, in torch's order and wording (ATen's
    pooling_output_shape and pool2d_shape_check), each message prefixed with "<what>: " as all of
    ember.nn.functional's (a layer's ModuleError shows torch's words after its path); returns (OH, OW).

    Raises ValueError: "stride should not be zero", "pad must be non-negative, but got pad: P",
    "pad should be at most half of effective kernel size, but got pad=P, kernel_size=K and
    dilation=D" (P > ⌊(D(K−1)+1)/2⌋), "kernel size should be greater than zero, but got kH: .. kW: ..",
    "stride should be greater than zero, but got dH: .. dW: ..", "dilation should be greater than
    zero, but got dilationH: .. dilationW: ..", "pad should be smaller than or equal to half of
    kernel size, but got padW = .., padH = .., kW = .., kH = .." (P > ⌊K/2⌋); ShapeError: "Given
    input size: (CxHxW). Calculated output size: (CxOHxOW). Output size is too small", and for an
    input with an empty C, H or W "Expected 3D or 4D (batch mode) tensor with optional 0 dim batch
    size for input, but got:[N, C, H, W]".
    """
    out = []
    for n, k, s, p, d in zip(x.shape[2:], K, S, P, D):
        if s == 0:
            raise ValueError(f"{what}: stride should not be zero")
        if p < 0:
            raise ValueError(f"{what}: pad must be non-negative, but got pad: {p}")
        if p > int(((k - 1) * d + 1) / 2):                    # C++'s division: truncates toward 0
            raise ValueError(f"{what}: pad should be at most half of effective kernel size, but got pad={p}, "
                             f"kernel_size={k} and dilation={d}")
        out.append(_pool.pool_out_size(n, k, s, p, d, ceil_mode))
    if min(K) <= 0:
        raise ValueError(f"{what}: kernel size should be greater than zero, but got kH: {K[0]} kW: {K[1]}")
    if min(S) <= 0:
        raise ValueError(f"{what}: stride should be greater than zero, but got dH: {S[0]} dW: {S[1]}")
    if min(D) <= 0:
        raise ValueError(f"{what}: dilation should be greater than zero, but got dilationH: {D[0]} dilationW: {D[1]}")
    if 0 in x.shape[1:]:
        raise ShapeError(f"{what}: Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, "
                         f"but got:{list(x.shape)}")
    if P[0] > K[0] // 2 or P[1] > K[1] // 2:
        raise ValueError(f"{what}: pad should be smaller than or equal to half of kernel size, but got padW = {P[1]}, "
                         f"padH = {P[0]}, kW = {K[1]}, kH = {K[0]}")
    if min(out) < 1:
        C, H, W = x.shape[1:]
        raise ShapeError(f"{what}: Given input size: ({C}x{H}x{W}). Calculated output size: ({C}x{out[0]}x{out[1]}). "
                         "Output size is too small")
    return tuple(out)


def _pooling():
    """``ember._api.pooling``, PyTorch's pooling beyond the decks (indices, other divisors, unpooling,
    adaptive pools). Imported at the call: ``ember._api``'s package init imports this module (it
    sits above nn), so importing it here at load time would be a circle."""
    from .._api import pooling
    return pooling


def _batched(x, what):
    """x as (N, C, H, W) and whether it was an unbatched (C, H, W) input (torch accepts both).
    Raises: TypeError for a non-Tensor; ShapeError "non-empty 3D or 4D (batch mode) tensor
    expected for input" for another rank."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{what}: expected a Tensor, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise ShapeError(f"{what}: non-empty 3D or 4D (batch mode) tensor expected for input")
    return (x.unsqueeze(0), True) if x.ndim == 3 else (x, False)


def max_pool2d_with_indices(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode: bool = False, return_indices: bool = False):
    """``max_pool2d(..., return_indices=True)``: the pooled Tensor and the int64 indices of each
    maximum (torch.nn.functional.max_pool2d_with_indices; ``return_indices`` is ignored, as
    torch's). See ``max_pool2d`` for shapes and errors."""
    return _max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over each KH×KW window (deck 001's 2×2 stride-2 example), torch.nn.functional.max_pool2d.

    Shape: (N, C, H, W) or (C, H, W) -> (N, C, OH, OW) or (C, OH, OW), any float dtype kept, with
        OH = ⌊(H + 2PH − DH(KH − 1) − 1)/SH⌋ + 1  (ceil_mode=True: ⌈…⌉ + 1, less one when that
        last window would start at or past H + PH: every window starts inside the input or the
        left padding). Likewise OW.
    Args: kernel_size, stride (default: kernel_size), padding (implicit −inf, at most half the
        kernel), dilation (spacing of the window's cells): an int or a pair; ceil_mode;
        return_indices: also return the int64 indices (N, C, OH, OW) of each maximum, flat in its
        H×W input plane (ih·W + iw), the input ``max_unpool2d`` takes.
    The gradient of each window goes to its first maximum (row-major), as torch; a window of
    −inf inputs to its first cell inside the input.
    Raises (torch's checks, in torch's order, its words after "max_pool2d: "; all listed in
    ``_pool2d_check``): ShapeError "non-empty 3D or 4D (batch mode) tensor expected for input" (rank),
    "Given input size: (CxHxW). Calculated output size: (CxOHxOW). Output size is too small";
    ValueError "stride should not be zero", "pad must be non-negative, but got pad: P",
    "pad should be at most half of effective kernel size, but got pad=P, kernel_size=K and
    dilation=D", "pad should be smaller than or equal to half of kernel size, but got padW = ..,
    padH = .., kW = .., kH = ..", "kernel size should be greater than zero, but got kH: .. kW: ..",
    "dilation should be greater than zero, ..."; "max_pool2d: kernel_size must either be a single
    int, or a tuple of two ints" (likewise stride, padding, dilation); TypeError for a non-int.
    """
    return _max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, what="max_pool2d"):
    K = _pool_ints(kernel_size, "kernel_size", what)
    S = _pool_ints(stride, "stride", what, optional=True) or K
    P, D = _pool_ints(padding, "padding", what), _pool_ints(dilation, "dilation", what)
    x4, unbatched = _batched(x, what)
    _pool2d_check(x4, K, S, P, D, bool(ceil_mode), what)
    holder = [] if return_indices else None
    if return_indices or D != (1, 1):       # torch's indices, and windows dilation puts outside the input
        y = _pooling().MaxPool2d.apply(x4, kernel_size=K, stride=S, padding=P, dilation=D,
                                       ceil_mode=bool(ceil_mode), indices=holder)
    else:   # the kernels run what they implement, the reference op the rest (ember.kernels.pool.covers)
        y = dispatch(_pool.MaxPool2d).apply(x4, kernel_size=K, stride=S, padding=P, dilation=D,
                                            ceil_mode=bool(ceil_mode))
    idx = Tensor(holder[0]) if return_indices else None
    if unbatched:
        y, idx = y.squeeze(0), (idx.squeeze(0) if return_indices else None)
    return (y, idx) if return_indices else y


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    """Mean over each KH×KW window, torch.nn.functional.avg_pool2d.

    Shape: (N, C, H, W) or (C, H, W) -> (N, C, OH, OW) or (C, OH, OW), OH as max_pool2d's with
        dilation 1 (ceil_mode's rule included).
    Divisor of each window: ``divisor_override`` if given; else with count_include_pad (torch's
    default) its cells inside the zero-padded input [−P, H + P) — so a ceil_mode window that
    reaches past the padding divides by fewer — else its cells inside the input.
    Raises: ValueError "divisor must be not zero" for divisor_override=0, and max_pool2d's errors.
    """
    what = "avg_pool2d"
    K = _pool_ints(kernel_size, "kernel_size", what)
    S = _pool_ints(stride, "stride", what, optional=True) or K
    P = _pool_ints(padding, "padding", what)
    if divisor_override is not None and divisor_override == 0:
        raise ValueError(f"{what}: divisor must be not zero")
    x4, unbatched = _batched(input, what)
    _pool2d_check(x4, K, S, P, (1, 1), bool(ceil_mode), what)
    if count_include_pad and divisor_override is None:
        y = dispatch(_pool.AvgPool2d).apply(x4, kernel_size=K, stride=S, padding=P, ceil_mode=bool(ceil_mode))
    else:                                   # torch's other divisors
        y = _pooling().AvgPool2d.apply(x4, kernel_size=K, stride=S, padding=P, ceil_mode=bool(ceil_mode),
                                       count_include_pad=bool(count_include_pad),
                                       divisor_override=None if divisor_override is None else int(divisor_override))
    return y.squeeze(0) if unbatched else y


def max_unpool2d(input: Tensor, indices: Tensor, kernel_size, stride=None, padding=0, output_size=None) -> Tensor:
    """The partial inverse of max_pool2d (torch.nn.functional.max_unpool2d): zeros everywhere
    except input[n, c, i, j] at flat position indices[n, c, i, j] of its output plane (a repeated
    index keeps the last value in row-major order; which one PyTorch keeps is unspecified).

    Shape: input, indices (N, C, H, W) or (C, H, W) -> (N, C, OH, OW) or (C, OH, OW) with the
        default OH = (H − 1)·SH − 2PH + KH (the size max_pool2d came from in floor mode), or
        ``output_size``: (OH, OW) or (N, C, OH, OW) (e.g. the pooled input's ``.shape``), each
        strictly between default − S and default + S.
    Raises (torch's wording after "max_unpool2d: "): ShapeError "Input to max_unpooling2d should be a 3d or 4d Tensor, ..."
        and "Expected shape of indices to be same as that of the input tensor (...)"; TypeError
        "elements in indices should be type int64 but got: ..."; ValueError "output_size should be a
        sequence containing 2 or 4 elements, ..." and "invalid output_size ... (dim d must be
        between lo and hi)"; IndexError "Found an invalid max index: I (output volumes are of size OHxOW)".
    """
    what = "max_unpool2d"
    K = _pool_ints(kernel_size, "kernel_size", what)
    S = _pool_ints(stride, "stride", what, optional=True) or K
    P = _pool_ints(padding, "padding", what)
    if not isinstance(input, Tensor):
        raise TypeError(f"{what}: expected a Tensor, got {type(input).__name__}")
    default = [(n - 1) * s + k - 2 * p for n, k, s, p in zip(input.shape[-2:], K, S, P)]
    size = default
    if output_size is not None:
        size = output_size[2:] if len(output_size) == 4 else output_size
        if len(size) != 2:
            raise ValueError(f"{what}: output_size should be a sequence containing 2 or 4 elements, but it has a length of "
                             f"'{len(size)}'")
        for d in range(2):
            lo, hi = default[d] - S[d], default[d] + S[d]
            if not lo < size[d] < hi:
                raise ValueError(f'{what}: invalid output_size "{size}" (dim {d} must be between {lo} and {hi})')
        size = [int(v) for v in size]
    if input.ndim not in (3, 4):
        raise ShapeError(f"{what}: Input to max_unpooling2d should be a 3d or 4d Tensor, but got a tensor with "
                         f"{input.ndim} dimensions.")
    idx = indices._data if isinstance(indices, Tensor) else np.asarray(indices)
    if tuple(idx.shape) != tuple(input.shape):
        raise ShapeError(f"{what}: Expected shape of indices to be same as that of the input tensor ({list(input.shape)}) "
                         f"but got indices tensor with shape: {list(idx.shape)}")
    if idx.dtype != np.int64:
        raise TypeError(f"{what}: elements in indices should be type int64 but got: {idx.dtype}")
    plane = size[0] * size[1]
    if idx.size and (idx.min() < 0 or idx.max() >= plane):
        bad = idx[(idx < 0) | (idx >= plane)][-1]                # torch names the last one
        raise IndexError(f"{what}: Found an invalid max index: {bad} (output volumes are of size {size[0]}x{size[1]})")
    x4, unbatched = _batched(input, what)
    y = _pooling().MaxUnpool2d.apply(x4, Tensor(idx.reshape(x4.shape)), output_size=tuple(size))
    return y.squeeze(0) if unbatched else y


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """1-D cross-correlation (deck 000: (θ * x)_i = Σ_j θ_j x_{i+j}), as conv2d with H = 1.

    Shape: x (N, C_in, L), weight (C_out, C_in/groups, K), bias (C_out,)
        -> (N, C_out, OL),  OL = ⌊(L + 2P − D(K−1) − 1)/S⌋ + 1.
    Args: stride, padding, dilation: int (or a 1-tuple); groups: int dividing C_in and C_out.
    Raises: ShapeError for a wrong rank, channel count or an input shorter than the kernel.
    Example: x = [1, 1, 1, 0, 0], θ = [1, 0, 1] -> [2, 1, 1] (deck 000's worked example).
    """
    if not isinstance(x, Tensor) or x.ndim != 3:
        raise ShapeError(f"conv1d: expected a 3-D input (N, C, L), got shape {tuple(getattr(x, 'shape', ()))}")
    one = lambda v, name: int(v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else _pair(v, name)[0])  # noqa: E731
    s, d = one(stride, "stride"), one(dilation, "dilation")
    p = padding if isinstance(padding, str) else one(padding, "padding")   # 'same'/'valid': conv2d's
    if weight.ndim != 3:
        raise ShapeError(f"conv1d: expected a 3-D weight (C_out, C_in/groups, K), got {tuple(weight.shape)}")
    try:
        y = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, s), p if isinstance(p, str) else (0, p), (1, d), groups)
    except ShapeError as e:
        raise ShapeError(str(e).replace("conv2d", "conv1d").replace("input of size 1x", "input of length ")) from None
    return y.squeeze(2)


def conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed 2-D convolution, the adjoint of conv2d (torch.nn.functional.conv_transpose2d;
    the math in ``ember/_api/conv_transpose.py``). Note PyTorch's argument order: groups before
    dilation.

    Shape: x (N, C_in, H, W) or unbatched (C_in, H, W), weight (C_in, C_out/groups, KH, KW),
        bias (C_out,) -> (N, C_out, H_out, W_out), H_out = (H − 1)·SH − 2·PH + DH·(KH − 1) + OPH + 1.
    Raises: RuntimeError with PyTorch's messages for an input whose channels are not weight's
        first dim, or an output_padding not smaller than the stride or the dilation; ValueError
        for a stride/dilation/groups < 1 or a negative padding; TypeError for a dtype mismatch.
    """
    from .._api.conv_transpose import ConvTranspose2d
    unbatched = isinstance(x, Tensor) and x.ndim == 3
    if unbatched:
        x = x.unsqueeze(0)
    _check_params(x, weight, None, 4, "conv_transpose2d")
    if bias is not None and tuple(bias.shape) != (weight.shape[1] * groups,):
        raise ShapeError(f"conv_transpose2d: expected a bias of shape ({weight.shape[1] * groups},), got "
                         f"{tuple(bias.shape)}")
    st, pd, op, dl = (_pair(v, n) for v, n in ((stride, "stride"), (padding, "padding"),
                                                (output_padding, "output_padding"), (dilation, "dilation")))
    _check_range(st, "stride", 1, "conv_transpose2d")
    _check_range(pd + op, "padding", 0, "conv_transpose2d")
    _check_range(dl, "dilation", 1, "conv_transpose2d")
    _check_range((groups,), "groups", 1, "conv_transpose2d")
    if x.ndim != 4 or x.shape[1] != weight.shape[0]:
        shown = list(x.shape[1:]) if unbatched else list(x.shape)
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected input"
                           f"{[1] + shown if unbatched else shown} to have {weight.shape[0]} channels, but got "
                           f"{x.shape[1] if x.ndim > 1 else 0} channels instead")
    if any(o >= max(s, d) for o, s, d in zip(op, st, dl)):
        raise RuntimeError(f"output padding must be smaller than either stride or dilation, but got "
                           f"output_padding_height: {op[0]} output_padding_width: {op[1]} stride_height: {st[0]} "
                           f"stride_width: {st[1]} dilation_height: {dl[0]} dilation_width: {dl[1]}")
    y = ConvTranspose2d.apply(x, weight, bias, stride=st, padding=pd, output_padding=op, groups=groups, dilation=dl)
    return y.squeeze(0) if unbatched else y


def conv_transpose1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed 1-D convolution (torch.nn.functional.conv_transpose1d), as conv_transpose2d with
    H = 1: x (N, C_in, L) or (C_in, L), weight (C_in, C_out/groups, K) -> (N, C_out, L_out),
    L_out = (L − 1)·S − 2P + D·(K − 1) + output_padding + 1. Raises as conv_transpose2d."""
    one = lambda v, name: int(v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else _pair(v, name)[0])  # noqa: E731
    s, p, o, d = (one(v, n) for v, n in ((stride, "stride"), (padding, "padding"),
                                          (output_padding, "output_padding"), (dilation, "dilation")))
    y = conv_transpose2d(x.unsqueeze(-2), weight.unsqueeze(2), bias, (1, s), (0, p), (0, o), groups, (1, d))
    return y.squeeze(-2)


def unfold(x: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """im2col (torch.nn.functional.unfold): (N, C, H, W) -> (N, C·KH·KW, L); see ember/_api/unfold.py."""
    from .._api.unfold import unfold as _unfold
    return _unfold(x, kernel_size, dilation, padding, stride)


def fold(x: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """col2im (torch.nn.functional.fold): (N, C·KH·KW, L) -> (N, C, H, W); see ember/_api/unfold.py."""
    from .._api.unfold import fold as _fold
    return _fold(x, output_size, kernel_size, dilation, padding, stride)


def bilinear(x1: Tensor, x2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y[..., o] = Σ_ij x1[..., i]·weight[o, i, j]·x2[..., j] + bias[o] (torch.nn.functional.bilinear):
    x1 (*, in1), x2 (*, in2), weight (out, in1, in2) -> (*, out); one matmul of x1 with the
    (in1, out·in2) weight, then a product with x2 summed over in2. Differentiable.
    Raises: RuntimeError when a feature size is not the weight's (PyTorch's message)."""
    out, in1, in2 = weight.shape
    for k, (x, n) in enumerate(((x1, in1), (x2, in2)), 1):
        if x.shape[-1] != n:
            raise RuntimeError(f"bilinear(): input{k} size does not match weight size: got {x.shape[-1]} but expected {n}")
    lead = tuple(x1.shape[:-1])
    t = x1.reshape(-1, in1).matmul(weight.permute(1, 0, 2).reshape(in1, out * in2)).reshape(-1, out, in2)
    y = (t * x2.reshape(-1, 1, in2)).sum(-1).reshape(*lead, out)
    return y if bias is None else y + bias


def locally_connected2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0) -> Tensor:
    """Locally connected layer: a convolution whose filters differ at every output position.

    Shape: x (N, C_in, H, W), weight (OH, OW, C_out, C_in, KH, KW), bias (C_out, OH, OW)
        -> (N, C_out, OH, OW), OH = ⌊(H + 2PH − KH)/SH⌋ + 1.
    Raises: ShapeError when the channels or the output size implied by x differ from weight's.
    """
    _check_4d(x, "locally_connected2d")
    _check_float(x, "locally_connected2d")
    (SH, SW), (PH, PW) = _pair(stride, "stride"), _pair(padding, "padding")
    OH, OW, C_out, C, KH, KW = weight.shape
    if x.shape[1] != C:
        raise ShapeError(f"locally_connected2d: expected input with {C} channels, got {x.shape[1]} "
                         f"channels (input shape {tuple(x.shape)})")
    oh, ow = _conv.out_size(x.shape[2], KH, SH, PH), _conv.out_size(x.shape[3], KW, SW, PW)
    if (oh, ow) != (OH, OW):
        raise ShapeError(f"locally_connected2d: input of size {x.shape[2]}x{x.shape[3]} gives a {oh}x{ow} "
                         f"output, but the weights are for a {OH}x{OW} output")
    return _local.LocallyConnected2d.apply(x, weight, bias, stride=(SH, SW), padding=(PH, PW))


def _adaptive_args(x, output_size, what):
    """x as (N, C, H, W) (and whether it was unbatched) and the output size (OH, OW), None
    keeping that input size; torch's checks and wording after "<what>: "."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{what}: expected a Tensor, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        colon = ":" if what == "adaptive_max_pool2d" else ""             # torch's two wordings
        raise ShapeError(f"{what}(): Expected 3D or 4D tensor, but got{colon} {list(x.shape)}")
    for d in range(x.ndim - 3, x.ndim):
        if x.shape[d] == 0:
            raise ShapeError(f"{what}(): Expected input to have non-zero size for non-batch dimensions, "
                             f"but input has sizes {list(x.shape)} with dimension {d} being empty")
    size = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    if len(size) != 2:
        raise ValueError(f"{what}: output_size must be 2")
    size = tuple(x.shape[x.ndim - 2 + i] if s is None else s for i, s in enumerate(size))
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size):
        raise TypeError(f"{what}(): argument 'output_size' must be tuple of ints, not {type(output_size).__name__}")
    if min(size) < 0:
        raise ValueError(f"{what}: elements of output_size must be greater than or equal to 0 but received "
                         f"{{{size[0]}, {size[1]}}}")
    return (x.unsqueeze(0), True) if x.ndim == 3 else (x, False), (int(size[0]), int(size[1]))


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average over PyTorch's adaptive bins so the output is exactly ``output_size``
    (torch.nn.functional.adaptive_avg_pool2d): bin i of n_out over n_in covers
    [⌊i·n_in/n_out⌋, ⌈(i+1)·n_in/n_out⌉).

    Shape: (N, C, H, W) or (C, H, W) -> (N, C, OH, OW) or (C, OH, OW); output_size is an int or
        (OH, OW), None keeping that input size, 0 giving an empty output (as torch).
    Raises (torch's wording after "adaptive_avg_pool2d: "): ShapeError for another rank or an
        empty C/H/W, ValueError for a negative size or one of length ≠ 2.
    """
    (x, unbatched), size = _adaptive_args(input, output_size, "adaptive_avg_pool2d")
    y = _pooling().AdaptiveAvgPool2d.apply(x, output_size=size)
    return y.squeeze(0) if unbatched else y


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """Max over PyTorch's adaptive bins (see adaptive_avg_pool2d), torch.nn.functional.adaptive_max_pool2d.

    Shape: as adaptive_avg_pool2d's. return_indices: also return the int64 indices of the maxima,
    flat in each H×W input plane. The gradient of each bin goes to its first maximum (row-major).
    Raises: as adaptive_avg_pool2d (messages after "adaptive_max_pool2d: ").
    """
    (x, unbatched), size = _adaptive_args(input, output_size, "adaptive_max_pool2d")
    holder = [] if return_indices else None
    y = _pooling().AdaptiveMaxPool2d.apply(x, output_size=size, indices=holder)
    idx = Tensor(holder[0]) if return_indices else None
    if unbatched:
        y, idx = y.squeeze(0), (idx.squeeze(0) if return_indices else None)
    return (y, idx) if return_indices else y


def adaptive_max_pool2d_with_indices(input: Tensor, output_size, return_indices: bool = False):
    """``adaptive_max_pool2d(..., return_indices=True)`` (return_indices is ignored, as torch's)."""
    return adaptive_max_pool2d(input, output_size, True)


def _pool1d_input(x, what):
    if not isinstance(x, Tensor):
        raise TypeError(f"{what}: expected a Tensor, got {type(x).__name__}")
    if what == "max_pool1d" and (x.ndim not in (2, 3) or 0 in x.shape[-2 if x.ndim == 3 else 0:]):
        raise ShapeError("max_pool1d: Expected 2D or 3D (batch mode) tensor with optional 0 dim batch size for "
                         f"input, but got:{list(x.shape)}")
    if what == "avg_pool1d" and x.ndim not in (2, 3):
        raise ShapeError(f"avg_pool1d: Expected 2 to 3 dimensions, but got {x.ndim}-dimensional tensor for "
                         "argument #1 'self' (while checking arguments for avg_pool1d)")


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over windows of a sequence, torch.nn.functional.max_pool1d: max_pool2d on a height-1 image.

    Shape: (N, C, L) or (C, L) -> (N, C, OL) or (C, OL), OL = ⌊(L + 2P − D(K − 1) − 1)/S⌋ + 1
        (ceil_mode as max_pool2d's). return_indices: also the int64 positions of the maxima in L.
    Raises (torch's max_pool1d wording): ShapeError for another rank or an empty C or L;
        ValueError "max_pool1d() kernel_size must be greater than zero, but got K", "... stride
        must be greater than zero ...", "... padding must be non-negative ...", "... padding
        should be at most half of kernel size, but got padding=P and kernel_size=K", "... dilation
        must be greater than zero ...", "max_pool1d() Invalid computed output size: OL", and for
        an argument of more than one int "max_pool1d() kernel_size must be an int, list of ints
        or tuple of ints of size 1 but got size n" (likewise stride, padding, dilation).
    """
    _pool1d_input(input, "max_pool1d")
    args = {}
    for name, v, lead in (("kernel_size", kernel_size, "an int, list of ints or tuple of ints"),
                          ("stride", stride, "None, an int, list of ints, or tuple of ints"),
                          ("padding", padding, "an int, list of ints, or tuple of ints"),
                          ("dilation", dilation, "an int, list of ints, or tuple of ints")):
        if isinstance(v, (tuple, list)) and len(v) != 1 and not (name == "stride" and len(v) == 0):
            raise ValueError(f"max_pool1d() {name} must be {lead} of size 1 but got size {len(v)}")
        args[name] = _pool_ints(v, name, "max_pool1d", n=1, optional=name == "stride")
    (k,), (p,), (d,) = args["kernel_size"], args["padding"], args["dilation"]
    (s,) = args["stride"] or (k,)
    for ok, msg in ((k > 0, f"kernel_size must be greater than zero, but got {k}"),
                    (s > 0, f"stride must be greater than zero, but got {s}"),
                    (p >= 0, f"padding must be non-negative, but got {p}"),
                    (p <= k // 2, f"padding should be at most half of kernel size, but got padding={p} and "
                                  f"kernel_size={k}"),
                    (d > 0, f"dilation must be greater than zero, but got {d}")):
        if not ok:
            raise ValueError(f"max_pool1d() {msg}")
    OL = _pool.pool_out_size(input.shape[-1], k, s, p, d, bool(ceil_mode))
    if OL <= 0:
        raise ShapeError(f"max_pool1d() Invalid computed output size: {OL}")
    out = _max_pool2d(input.unsqueeze(-2), (1, k), (1, s), (0, p), (1, d), ceil_mode, return_indices)
    return (out[0].squeeze(-2), out[1].squeeze(-2)) if return_indices else out.squeeze(-2)


def max_pool1d_with_indices(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode: bool = False, return_indices: bool = False):
    """``max_pool1d(..., return_indices=True)`` (return_indices is ignored, as torch's)."""
    return max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over windows of a sequence, torch.nn.functional.avg_pool1d: avg_pool2d on a height-1
    image, as torch computes it (so its errors are avg_pool2d's, after "avg_pool1d: ").

    Shape: (N, C, L) or (C, L) -> (N, C, OL) or (C, OL), OL = ⌊(L + 2P − K)/S⌋ + 1 (ceil_mode as
        avg_pool2d's; count_include_pad: padding cells count in the divisor).
    Raises: ShapeError for another rank; ValueError "avg_pool1d() argument 'kernel_size' should
        contain one int (got n)" (likewise stride, padding), and avg_pool2d's errors.
    """
    _pool1d_input(input, "avg_pool1d")
    args = {}
    for name, v in (("kernel_size", kernel_size), ("stride", stride), ("padding", padding)):
        if isinstance(v, (tuple, list)) and len(v) != 1 and not (name == "stride" and len(v) == 0):
            raise ValueError(f"avg_pool1d() argument '{name}' should contain one int (got {len(v)})")
        args[name] = _pool_ints(v, name, "avg_pool1d", n=1, optional=name == "stride")
    (k,), (p,) = args["kernel_size"], args["padding"]
    (s,) = args["stride"] or (k,)
    try:
        y = avg_pool2d(input.unsqueeze(-2), (1, k), (1, s), (0, p), ceil_mode, count_include_pad)
    except ValueError as e:                                    # ShapeError included
        raise type(e)(str(e).replace("avg_pool2d: ", "avg_pool1d: ", 1)) from None
    return y.squeeze(-2)


def dropout(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Inverted dropout (Srivastava et al. 2014): zero each element with probability p and scale
    the rest by 1/(1 − p) in training; identity in evaluation. The mask comes from
    ``ember.random.default_generator()``. Any shape. ``inplace=True``: into x, x returned.
    Raises: ValueError unless 0 ≤ p ≤ 1.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return x
    if inplace:
        return _in_place(x, dropout, p, training)
    if p == 1:
        return x * 0.0
    mask = default_generator().random(x.shape, dtype=np.float32) >= p
    return _norm.Dropout.apply(x, mask, p=p)


def _feature_dropout(x: Tensor, p: float, training: bool, inplace: bool) -> Tensor:
    """Channel dropout over dims 0 and 1 of x: each x[n, c] kept whole with probability 1 − p and
    scaled by 1/(1 − p), or zeroed (torch's feature_dropout); the mask from ember's generator."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return x
    if inplace:
        return _in_place(x, _feature_dropout, p, training, False)
    if p == 1:
        return x * 0.0
    keep = default_generator().random(x.shape[:2]) >= p
    mask = (keep / (1 - p)).astype(x.dtype).reshape(x.shape[:2] + (1,) * (x.ndim - 2))
    return x * Tensor(mask)


def dropout1d(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Channel dropout for (N, C, L) or (C, L) inputs (torch.nn.functional.dropout1d): each channel
    x[n, c] is zeroed with probability p, the others scaled by 1/(1 − p); identity in evaluation.
    Raises: ValueError unless 0 ≤ p ≤ 1; RuntimeError for another number of dims (torch's message)."""
    if x.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {x.ndim}D input. Note that dropout1d "
                           "exists to provide channel-wise dropout on inputs with 1 spatial dimension, a channel "
                           "dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    if x.ndim == 2:                                           # unbatched (C, L): one mask entry per channel
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        if not training or p == 0:
            return x
        unbatched = lambda t: _feature_dropout(t.unsqueeze(0), p, training, False).squeeze(0)  # noqa: E731
        return _in_place(x, unbatched) if inplace else unbatched(x)
    return _feature_dropout(x, p, training, inplace)


def dropout2d(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Channel dropout for (N, C, H, W) inputs (torch.nn.functional.dropout2d; Tompson et al.
    2015): each feature map x[n, c] is zeroed with probability p, the others scaled by 1/(1 − p);
    identity in evaluation. A 3-D input is taken as (N, C, L), as torch does (with its warning).
    Raises: ValueError unless 0 ≤ p ≤ 1."""
    import warnings
    if x.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {x.ndim}-D input to dropout2d, which is deprecated and will result in "
                      "an error in a future release. To retain the behavior and silence this warning, please use "
                      "dropout instead.", stacklevel=2)
    if x.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim.",
                      stacklevel=2)
    return _feature_dropout(x, p, training, inplace)


def glu(x: Tensor, dim: int = -1) -> Tensor:
    """Gated linear unit (torch.nn.functional.glu; Dauphin et al. 2017): a ⊗ σ(b) with a, b the
    two halves of x along ``dim``. Shape: (*, 2M, *) -> (*, M, *).
    Raises: RuntimeError for a 0-d x or an odd size along dim (torch's messages)."""
    if x.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    if x.shape[dim] % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim % x.ndim} is size {x.shape[dim]}")
    a, b = x.chunk(2, dim)
    return a * sigmoid(b)


def prelu(x: Tensor, weight: Tensor) -> Tensor:
    """x where x > 0, else weight·x, with one weight or one per channel (dim 1)
    (torch.nn.functional.prelu; He et al. 2015). Raises: RuntimeError when weight has
    neither 1 element nor x's channel count."""
    n = weight.numel()
    if n != 1 and (x.ndim < 2 or x.shape[1] != n):
        raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter numbers = {n} and "
                           f"channel size = {x.shape[1] if x.ndim >= 2 else 1}.")
    w = weight.reshape((1, n) + (1,) * (x.ndim - 2)) if n != 1 and x.ndim >= 2 else weight.reshape(())
    return _where(x > 0, x, w * x)                             # at 0 the slope's branch, as torch's gradient


def kl_div(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """Kullback–Leibler divergence with input = log q: Σ t (log t − input) (t log t = 0 where
    t = 0), or with log_target exp(t)(t − input) (torch.nn.functional.kl_div). reduction
    'batchmean' divides the sum by the batch size (the KL definition); 'mean' by every element
    (torch's default, which warns about it). Shapes broadcast.
    Raises: ValueError for an unknown reduction."""
    import warnings
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce, "mean")
    elif reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    if reduction not in ("none", "mean", "sum", "batchmean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    t = target if isinstance(target, Tensor) else Tensor(np.asarray(target, input.dtype))
    if log_target:
        loss = t.exp() * (t - input)
    else:
        safe = _where(Tensor(t._data > 0), t, Tensor(np.ones_like(t._data)))   # log sees 1 where t = 0
        loss = t * safe.log() - t * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _weighted(loss, None, reduction)


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation per channel (Ioffe & Szegedy 2015), as torch.nn.functional.batch_norm.

    Shape: x (N, C) or (N, C, *); running_mean/var, weight, bias (C,) -> like x.
    Training: normalise with the batch mean and biased variance, and update the running
    statistics in place: r ← (1 − momentum)·r + momentum·batch (the variance update uses the
    unbiased batch variance, M/(M − 1)·σ²). Evaluation: normalise with the running statistics.
    Raises: ShapeError for a channel-count mismatch; ValueError for training with one value per channel.
    """
    if x.ndim < 2:
        raise ShapeError(f"batch_norm: expected an input of shape (N, C) or (N, C, *), got {tuple(x.shape)}")
    C = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and t.shape != (C,):
            raise ShapeError(f"batch_norm: expected input with {C if t is None else t.shape[0]} channels, "
                             f"got {C} channels (input shape {tuple(x.shape)})")
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation mode needs running_mean and running_var")
        return dispatch(_norm.BatchNorm).apply(x, weight, bias, mean=running_mean._data, var=running_var._data, eps=eps)
    m = x._data.size // C
    if m == 0:  # an empty batch (issue 14 item 7): an empty output, running statistics untouched, as torch
        return dispatch(_norm.BatchNorm).apply(x, weight, bias, mean=np.zeros(C, x.dtype), var=np.ones(C, x.dtype), eps=eps)
    if m <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
    stats = {}
    out = dispatch(_norm.BatchNorm).apply(x, weight, bias, eps=eps, stats=stats)
    if running_mean is not None and running_var is not None:
        mu, var = stats["mean"], stats["var"]                  # batch mean, biased variance (C,)
        mom = running_mean.dtype.type(momentum)
        running_mean._data *= 1 - mom
        running_mean._data += mom * mu.astype(running_mean.dtype)
        running_var._data *= 1 - mom
        running_var._data += mom * (var * (m / (m - 1))).astype(running_var.dtype)
    return out


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(Q Kᵀ · scale + bias) V (Vaswani et al. 2017, eq. 1; torch.nn.functional.scaled_dot_product_attention).

    Shapes: query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); the leading
    dims broadcast. scale defaults to 1/√E. bias: 0, plus −inf above the diagonal if is_causal
    (query i sees keys 0..i), plus attn_mask: a bool mask keeps the pairs that are True (the
    others get −inf; note nn.MultiheadAttention's bool masks mean the opposite), a float mask is
    added. Dropout with probability dropout_p on the attention weights (always when dropout_p >
    0, as PyTorch's function: pass 0.0 in evaluation). A row whose keys are all masked gives NaN,
    as PyTorch's reference. Differentiable in query, key, value and a float mask.
    Raises: RuntimeError for is_causal together with attn_mask; NotImplementedError for enable_gqa.
    """
    if enable_gqa:
        raise NotImplementedError("scaled_dot_product_attention: enable_gqa is not supported by ember")
    L, S = query.shape[-2], key.shape[-2]
    scale = 1 / np.sqrt(query.shape[-1]) if scale is None else scale
    scores = query.matmul(key.transpose(-2, -1)) * scale
    if is_causal:
        if attn_mask is not None:
            raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
        attn_mask = Tensor(np.tril(np.ones((L, S), bool)))
    if attn_mask is not None:
        if attn_mask._data.dtype == np.bool_:
            scores = scores + Tensor(np.where(attn_mask._data, 0.0, -np.inf).astype(scores._data.dtype))
        else:
            scores = scores + attn_mask
    weights = softmax(scores, -1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, True)
    return weights.matmul(value)


def layer_norm(x: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Layer normalisation (Ba et al. 2016) over the trailing ``normalized_shape`` dims of each sample.

    Shape: x (*, *normalized_shape); weight, bias normalized_shape -> like x.
    Raises: ShapeError if x's trailing dims are not normalized_shape.
    """
    ns = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(ns):]) != ns or x.ndim < len(ns):
        raise ShapeError(f"layer_norm: expected input with trailing dimensions {ns}, got shape {tuple(x.shape)}")
    return _norm.LayerNorm.apply(x, weight, bias, ndim=len(ns), eps=eps)


def group_norm(x: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Group normalisation (Wu & He 2018; torch.nn.functional.group_norm): the C channels of each
    sample split into ``num_groups`` groups, each normalised by its own mean and biased variance
    (layer_norm over the group), then weight·x̂ + bias per channel.
    Shape: x (N, C, *); weight, bias (C,) -> like x.
    Raises: RuntimeError when C is not divisible by num_groups (torch's message)."""
    if x.ndim < 2 or x.shape[1] % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {list(x.shape)} and num_groups={num_groups}")
    N, C = x.shape[:2]
    group = int(np.prod(x.shape[1:])) // num_groups
    y = layer_norm(x.reshape(N, num_groups, group), (group,), eps=eps).reshape(*x.shape)
    channel = (1, C) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * weight.reshape(channel)
    if bias is not None:
        y = y + bias.reshape(channel)
    return y


def _source_index(n_in: int, n_out: int, scale, mode: str, align_corners: bool):
    """torch's source coordinates of the n_out output positions along one dim of F.interpolate:
    (index, None) for the nearest modes, (i0, i1, λ) for linear (value = (1 − λ) x[i0] + λ x[i1])."""
    dst = np.arange(n_out, dtype=np.float64)
    if mode in ("nearest", "nearest-exact"):
        s = 1.0 / scale if scale else n_in / n_out
        src = np.floor((dst + 0.5) * s if mode == "nearest-exact" else dst * s)
        return np.minimum(src.astype(np.int64), n_in - 1), None
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        s = 1.0 / scale if scale else n_in / n_out
        src = np.maximum((dst + 0.5) * s - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    return i0, (np.minimum(i0 + 1, n_in - 1), src - i0)


def interpolate(x: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None, antialias: bool = False) -> Tensor:
    """Resize the spatial dims (torch.nn.functional.interpolate): modes 'nearest' and
    'nearest-exact' (any of (N, C, L), (N, C, H, W), (N, C, D, H, W)), 'linear' (3-D) and
    'bilinear' (4-D) with torch's source coordinates (``align_corners``). ``size`` or
    ``scale_factor`` (output = ⌊in·scale⌋). Gathers and weighted sums of ember's ops, so the
    gradient sums over every output a value reached.
    Raises: ValueError for neither or both of size/scale_factor, a mode that does not fit the
    dims, align_corners with a nearest mode; NotImplementedError for other modes or antialias."""
    spatial = x.ndim - 2
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined")
    linear = {"linear": 1, "bilinear": 2}
    if mode not in ("nearest", "nearest-exact", *linear) or antialias:
        raise NotImplementedError(f"interpolate: mode {mode!r}{' with antialias' if antialias else ''} is not "
                                  f"supported (nearest, nearest-exact, linear, bilinear)")
    if mode in linear and linear[mode] != spatial:
        raise ValueError(f"Got {x.ndim}D input, but {mode} mode needs {linear[mode] + 2}D input")
    if mode not in linear and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear | "
                         "bicubic | trilinear")
    scales = [None] * spatial
    if size is None:
        scales = list(scale_factor) if isinstance(scale_factor, (tuple, list)) else [scale_factor] * spatial
        size = [int(np.floor(n * s)) for n, s in zip(x.shape[2:], scales)]
        if recompute_scale_factor:
            scales = [None] * spatial
    size = list(size) if isinstance(size, (tuple, list)) else [size] * spatial
    for i in range(spatial):
        dim = 2 + i
        index, lerp = _source_index(x.shape[dim], size[i], scales[i], mode, bool(align_corners))
        take = lambda idx: x[(slice(None),) * dim + (idx,)]  # noqa: E731
        if lerp is None:
            x = take(index)
        else:
            i1, lam = lerp
            shape = [1] * x.ndim
            shape[dim] = size[i]
            lam = Tensor(lam.astype(x.dtype).reshape(shape))
            x = take(index) * (1 - lam) + take(i1) * lam
    return x


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """‖x1 − x2 + eps‖_p along the last dim (torch.nn.functional.pairwise_distance); shapes
    broadcast: (N, D), (N, D) -> (N,). Differentiable (the 2-norm's gradient at 0 is 0)."""
    return (x1 - x2 + eps).norm(p, dim=-1, keepdim=keepdim)


def pad(x: Tensor, pad: tuple, mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad the last len(pad)/2 dims; ``pad`` = (left, right, top, bottom, ...) from the last dim,
    as torch.nn.functional.pad. Modes: 'constant' (``value``), 'reflect' (mirror without the
    edge: [2 1 | 0 1 2 3 | 2 1]), 'replicate' (the edge repeated), 'circular' (wrapped around).
    The non-constant modes gather x by index, so the gradient sums over every copy of a value.
    Raises: ValueError for an odd or too long ``pad``, a negative width, or an unknown mode;
        RuntimeError for a reflect pad not smaller than the dim, or a circular one larger
        (torch's rules).
    """
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: padding length must be even and at most 2*{x.ndim}, got {len(pad)}")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding is not supported, got {tuple(pad)}")
    if mode == "constant":
        return _mv.Pad.apply(x, pad=tuple(pad), value=value)
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(f"Unrecognised padding mode {mode}")
    for i in range(len(pad) // 2):
        dim, (left, right), n = x.ndim - 1 - i, pad[2 * i:2 * i + 2], x.shape[x.ndim - 1 - i]
        if mode == "reflect" and max(left, right) >= n:
            raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding input dimension, "
                               f"but got: padding ({left}, {right}) at dimension {dim} of input {list(x.shape)}")
        if mode == "circular" and max(left, right) > n:
            raise RuntimeError("Padding value causes wrapping around more than once.")
        idx = np.arange(-left, n + right)
        if mode == "reflect":
            idx = np.abs(idx)
            idx = np.where(idx >= n, 2 * (n - 1) - idx, idx)
        idx = np.clip(idx, 0, n - 1) if mode == "replicate" else idx % n
        x = x[(slice(None),) * dim + (idx,)]
    return x


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) with start_dim=1."""
    return x.flatten(start_dim, end_dim)


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate tensors along an existing dim."""
    return _mv.Cat.apply(*tensors, dim=dim)


def stack(tensors, dim: int = 0) -> Tensor:
    """Stack same-shape tensors along a new dim."""
    return cat([t.unsqueeze(dim) for t in tensors], dim=dim)


# ---- losses -------------------------------------------------------------------------------
def _positions(loss, input, target, reduction, **options):
    """A classification loss over (N, C, d1, ...) logits and (N, d1, ...) targets (a segmentation
    map): each of the N·d1·... positions is one sample of the (N·d, C) loss, so 'mean' averages over
    all of them (weighted, ignoring ignore_index) as PyTorch's; 'none' gives (N, d1, ...).
    Raises: RuntimeError for a target of another shape (PyTorch's message)."""
    C, rest = input.shape[1], (input.shape[0],) + tuple(input.shape[2:])
    tgt = target if isinstance(target, Tensor) else Tensor(np.asarray(target))
    if tgt._data.dtype.kind == "f" and tuple(tgt.shape) == tuple(input.shape):     # soft labels per position
        flat_target = tgt.movedim(1, -1).reshape(-1, C)
    elif tuple(tgt.shape) == rest:
        flat_target = tgt.reshape(-1)
    else:
        raise RuntimeError(f"size mismatch (got input: {list(input.shape)} , target: {list(tgt.shape)}")
    out = loss(input.movedim(1, -1).reshape(-1, C), flat_target, reduction=reduction, **options)
    return out.reshape(*rest) if reduction == "none" else out


def cross_entropy(input: Tensor, target, weight=None, size_average=None, ignore_index: int = -100,
                  reduce=None, reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy from logits, fused and max-subtracted (stable for any logits).

    L_i = (1 − ε)·(−w[t_i] log p[i, t_i]) + (ε/C)·Σ_c −w[c] log p[i, c],  p = softmax(input),
    0 for samples whose target equals ignore_index; 'mean' divides by Σ_i w[t_i] over the
    non-ignored samples (N when weight is None), exactly as torch.
    Shape: input (N, C) float logits, target (N,) integer classes in [0, C) (or ignore_index) as a
        Tensor or ndarray, weight (C,) -> scalar (mean/sum) or (N,) (none); or input (N, C, d1, ...)
        and target (N, d1, ...), a class per position (segmentation; ``_positions``). A float target of shape
        (N, C) holds class probabilities (soft labels): L_i = −Σ_c w[c]·ỹ[i, c]·log p[i, c] with
        ỹ = (1 − ε)·y + ε/C, and 'mean' divides by N, as torch.
    Args: weight: per-class rescaling; ignore_index: target value to skip; label_smoothing ε in [0, 1];
        size_average/reduce: deprecated torch aliases of reduction.
    Raises: IndexError naming a target outside [0, C); ShapeError for mismatched shapes;
        ValueError for an unknown reduction or ε outside [0, 1].
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if input.ndim > 2:   # (N, C, d1, ...) with targets (N, d1, ...): every position is a sample, as torch
        return _positions(cross_entropy, input, target, reduction, weight=weight, ignore_index=ignore_index,
                          label_smoothing=label_smoothing)
    if input.ndim != 2:
        raise ShapeError(f"cross_entropy: expected logits of shape (N, C), got {tuple(input.shape)}")
    w = _class_weight(weight, input, "cross_entropy")
    tgt = target if isinstance(target, Tensor) else np.asarray(target)
    if tgt.dtype.kind == "f" and tuple(tgt.shape) == tuple(input.shape):  # soft labels (N, C), as torch
        y = _same_shape(input, target, "cross_entropy")
        return _loss.CrossEntropySoft.apply(input, y, weight=w, label_smoothing=label_smoothing, reduction=reduction)
    t = _targets(target, input.shape[1], input.shape[0], "cross_entropy", ignore_index)
    return dispatch(_loss.CrossEntropy).apply(input, t, weight=w, ignore_index=ignore_index,
                                              label_smoothing=label_smoothing, reduction=reduction)


def nll_loss(input: Tensor, target, weight=None, size_average=None, ignore_index: int = -100,
             reduce=None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities: L_i = −w[t_i]·input[i, t_i] (0 where
    t_i = ignore_index); 'mean' divides by Σ_i w[t_i] over non-ignored samples, as torch.

    Shape: input (N, C), target (N,) integer classes, weight (C,) -> scalar, or (N,) for 'none';
        or input (N, C, d1, ...) with target (N, d1, ...) (``_positions``).
    Raises: IndexError for a target outside [0, C); ShapeError; ValueError for an unknown reduction.
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if input.ndim > 2:   # (N, C, d1, ...) with targets (N, d1, ...), as torch
        return _positions(nll_loss, input, target, reduction, weight=weight, ignore_index=ignore_index)
    if input.ndim != 2:
        raise ShapeError(f"nll_loss: expected log-probabilities of shape (N, C), got {tuple(input.shape)}")
    t = _targets(target, input.shape[1], input.shape[0], "nll_loss", ignore_index)
    w = _class_weight(weight, input, "nll_loss")
    return _loss.NLLLoss.apply(input, t, weight=w, ignore_index=ignore_index, reduction=reduction)


def multi_margin_loss(input: Tensor, target, p: int = 1, margin: float = 1.0, weight=None,
                      size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """Multiclass SVM (hinge) loss of deck 002, as torch's multi_margin_loss:
    L_i = (1/C) Σ_{j ≠ t_i} w[t_i]·max(0, margin − x[i, t_i] + x[i, j])^p.

    Shape: input (N, C) or (C,), target (N,) or () integer classes, weight (C,) -> scalar, or
        (N,) ('none'; () for a 1-D input).
    Raises: ValueError for p not in {1, 2} or an unknown reduction; IndexError, ShapeError.
    """
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if p not in (1, 2):
        raise ValueError(f"multi_margin_loss: only p == 1 and p == 2 supported, got p={p!r}")
    if input.ndim not in (1, 2):
        raise ShapeError(f"multi_margin_loss: expected input of shape (N, C) or (C,), got {tuple(input.shape)}")
    x = input if input.ndim == 2 else input.reshape(1, -1)
    tt = target._data if isinstance(target, Tensor) else np.asarray(target)
    t = _targets(tt.reshape(-1) if input.ndim == 1 else tt, x.shape[1], x.shape[0], "multi_margin_loss")
    out = _loss.MultiMarginLoss.apply(x, t, p=p, margin=margin, weight=_class_weight(weight, x, "multi_margin_loss"),
                                    reduction=reduction)
    return out.reshape(()) if input.ndim == 1 and reduction == "none" else out


def hinge_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Binary hinge loss of deck 002: max(0, 1 − y·f) for scores f and labels y ∈ {−1, 1}
    (no torch twin). Any shape; input and target shapes must match.
    Raises: ValueError for labels other than ±1 or an unknown reduction; ShapeError.
    """
    _check_reduction(reduction)
    return _loss.HingeLoss.apply(input, _pm_one(input, target, "hinge_loss"), reduction=reduction)


def logistic_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Binary logistic loss of deck 002: log(1 + exp(−y·f)) for scores f and labels y ∈ {−1, 1},
    computed as softplus(−y f) without overflow for any |f| (no torch twin; it equals
    binary_cross_entropy_with_logits(f, (y + 1)/2)). Any shape; shapes must match.
    Raises: ValueError for labels other than ±1 or an unknown reduction; ShapeError.
    """
    _check_reduction(reduction)
    return _loss.LogisticLoss.apply(input, _pm_one(input, target, "logistic_loss"), reduction=reduction)


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Mean squared error (1/n) Σ (input − target)²; shapes must match."""
    _check_reduction(reduction)
    return _loss.MSELoss.apply(input, _same_shape(input, target, "mse_loss"), reduction=reduction)


def l1_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """Mean absolute error |input − target| (gradient sign(d), 0 at d = 0); shapes must match."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _loss.L1Loss.apply(input, _same_shape(input, target, "l1_loss"), reduction=reduction)


def smooth_l1_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """Smooth L1: 0.5 d²/β for |d| < β, else |d| − 0.5β (d = input − target; β = 0 gives L1).
    Raises: ValueError for a negative beta or an unknown reduction; ShapeError for mismatched shapes."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss does not support negative values for beta, got beta={beta}")
    return _loss.SmoothL1Loss.apply(input, _same_shape(input, target, "smooth_l1_loss"), c=beta,
                                  reduction=reduction)


def huber_loss(input: Tensor, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Huber: 0.5 d² for |d| < δ, else δ(|d| − 0.5δ) (d = input − target); shapes must match.
    Raises: ValueError for delta ≤ 0 or an unknown reduction; ShapeError for mismatched shapes."""
    _check_reduction(reduction)
    if delta <= 0:
        raise ValueError(f"huber_loss does not support non-positive values for delta, got delta={delta}")
    return _loss.HuberLoss.apply(input, _same_shape(input, target, "huber_loss"), c=delta, reduction=reduction)


def _weighted(loss: Tensor, weight, reduction: str) -> Tensor:
    """loss (elementwise) × weight (broadcast to it), then reduced: mean over the elements, as torch."""
    if weight is not None:
        loss = loss * weight
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def binary_cross_entropy(input: Tensor, target, weight=None, size_average=None, reduce=None,
                         reduction: str = "mean") -> Tensor:
    """−mean[w (y log p + (1−y) log(1−p))] for probabilities p in [0, 1]; shapes must match;
    ``weight`` (optional) broadcasts to them (torch.nn.functional.binary_cross_entropy).
    Raises: ValueError for p outside [0, 1]; ShapeError for mismatched shapes."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    target = _same_shape(input, target, "binary_cross_entropy")
    if input._data.size and (input._data.min() < 0 or input._data.max() > 1):
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1 "
                         "(use binary_cross_entropy_with_logits for logits)")
    if weight is None:
        return _loss.BCELoss.apply(input, target, reduction=reduction)
    return _weighted(_loss.BCELoss.apply(input, target, reduction="none"), weight, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None) -> Tensor:
    """BCE(σ(z), y) computed from logits z without overflow; shapes must match
    (torch.nn.functional.binary_cross_entropy_with_logits). ``weight`` broadcasts to the loss;
    ``pos_weight`` p (one per class, the last dim) weighs the positive term:
        ℓ = −w [p y log σ(z) + (1 − y) log(1 − σ(z))] = w [(1 − y) z + ((p − 1) y + 1) softplus(−z)].
    Raises: ShapeError for mismatched shapes."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    target = _same_shape(input, target, "binary_cross_entropy_with_logits")
    if weight is None and pos_weight is None:
        return _loss.BCEWithLogitsLoss.apply(input, target, reduction=reduction)
    if pos_weight is None:
        return _weighted(_loss.BCEWithLogitsLoss.apply(input, target, reduction="none"), weight, reduction)
    target = target if isinstance(target, Tensor) else Tensor(np.asarray(target, input.dtype))
    loss = (1 - target) * input + ((pos_weight - 1) * target + 1) * softplus(-input)
    return _weighted(loss, weight, reduction)

