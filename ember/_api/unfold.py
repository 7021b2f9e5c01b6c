"""im2col and col2im as PyTorch's ops: F.unfold (the sliding blocks of an image as columns) and
F.fold (its adjoint: columns summed back into an image), each the other's backward.

    unfold: (N, C, H, W) -> (N, C·KH·KW, L), column l holding the (padded) window at output l,
            L = OH·OW, OH = ⌊(H + 2P − D(K − 1) − 1)/S⌋ + 1      (ops.conv.windows, one copy)
    fold:   (N, C·KH·KW, L) -> (N, C, H, W), overlapping window entries added (ops.conv.col2im)

Source: PyTorch 2.13's torch.nn.functional.unfold / fold and nn.Unfold / nn.Fold (arguments,
shapes, errors); the im2col/col2im pair of ember/ops/conv.py (deck 002).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..ops import conv as _conv


def _blocks(spatial, k, d, p, s):
    return tuple(_conv.out_size(n, kk, ss, pp, dd) for n, kk, ss, pp, dd in zip(spatial, k, s, p, d))


class Unfold(Function):
    """x (N, C, H, W) -> the columns (N, C·KH·KW, L); backward: col2im of the gradient."""

    @staticmethod
    def forward(ctx, x, kernel_size=(1, 1), dilation=(1, 1), padding=(0, 0), stride=(1, 1)):
        xp = _conv.pad2d(x, *padding)
        win = _conv.windows(xp, *kernel_size, *stride, *dilation)      # (N, C, KH, KW, OH, OW) view
        N, C, KH, KW, OH, OW = win.shape
        ctx.padded_shape, ctx.win_shape, ctx.stride, ctx.dilation, ctx.padding = \
            xp.shape, win.shape, stride, dilation, padding
        return win.reshape(N, C * KH * KW, OH * OW)

    @staticmethod
    def backward(ctx, grad):
        cols = grad.reshape(ctx.win_shape)
        return _conv.unpad2d(_conv.col2im(cols, ctx.padded_shape, *ctx.stride, *ctx.dilation), *ctx.padding)


class Fold(Function):
    """cols (N, C·KH·KW, L) -> the image (N, C, H, W), windows added; backward: unfold of the gradient."""

    @staticmethod
    def forward(ctx, cols, output_size=(1, 1), kernel_size=(1, 1), dilation=(1, 1), padding=(0, 0), stride=(1, 1)):
        N, CK, L = cols.shape
        KH, KW = kernel_size
        OH, OW = _blocks(output_size, kernel_size, dilation, padding, stride)
        padded = (N, CK // (KH * KW), output_size[0] + 2 * padding[0], output_size[1] + 2 * padding[1])
        ctx.kernel_size, ctx.dilation, ctx.padding, ctx.stride = kernel_size, dilation, padding, stride
        img = _conv.col2im(cols.reshape(N, CK // (KH * KW), KH, KW, OH, OW), padded, *stride, *dilation)
        return np.ascontiguousarray(_conv.unpad2d(img, *padding))

    @staticmethod
    def backward(ctx, grad):
        xp = _conv.pad2d(grad, *ctx.padding)
        win = _conv.windows(xp, *ctx.kernel_size, *ctx.stride, *ctx.dilation)
        N, C, KH, KW, OH, OW = win.shape
        return win.reshape(N, C * KH * KW, OH * OW)


def _pairs(**named):
    from ..nn._validation import _pair
    return [_pair(v, k) for k, v in named.items()]


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """torch.nn.functional.unfold: (N, C, H, W) or (C, H, W) -> (N, C·KH·KW, L) or (C·KH·KW, L).
    Raises: RuntimeError for another rank or windows that do not fit (PyTorch's messages)."""
    k, d, p, s = _pairs(kernel_size=kernel_size, dilation=dilation, padding=padding, stride=stride)
    if input.ndim not in (3, 4):
        raise RuntimeError(f"Input Error: Only 3D or 4D input Tensors are supported (got {input.ndim}D)")
    unbatched = input.ndim == 3
    x = input.unsqueeze(0) if unbatched else input
    blocks = tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1 for n, kk, dd, pp, ss in zip(x.shape[2:], k, d, p, s))
    if min(blocks) < 1:
        raise RuntimeError(f"Given input with spatial size {tuple(x.shape[2:])}, kernel_size={k}, dilation={d}, "
                           f"padding={p}, calculated shape of the array of sliding blocks as {blocks}, but its "
                           f"components must be at least one.")
    out = Unfold.apply(x, kernel_size=k, dilation=d, padding=p, stride=s)
    return out.squeeze(0) if unbatched else out


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """torch.nn.functional.fold: (N, C·KH·KW, L) or (C·KH·KW, L) -> (N, C, H, W) or (C, H, W) with
    (H, W) = output_size. Raises: RuntimeError when the channels are not divisible by KH·KW or L
    is not the number of windows (PyTorch's messages)."""
    o, k, d, p, s = _pairs(output_size=output_size, kernel_size=kernel_size, dilation=dilation, padding=padding,
                           stride=stride)
    unbatched = input.ndim == 2
    x = input.unsqueeze(0) if unbatched else input
    if x.ndim != 3:
        raise RuntimeError(f"Input Error: Only unbatched (2D) or batched (3D) input Tensors are supported (got "
                           f"{input.ndim}D)")
    if x.shape[1] % (k[0] * k[1]):
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the product of kernel_size, but "
                           f"got input.size(1)={x.shape[1]} and kernel_size={k}.")
    blocks = _blocks(o, k, d, p, s)
    if x.shape[2] != blocks[0] * blocks[1]:
        raise RuntimeError(f"Given output_size={o}, kernel_size={k}, dilation={d}, padding={p}, stride={s}, expected "
                           f"size of input's dimension 2 to match the calculated number of sliding blocks "
                           f"{blocks[0]} * {blocks[1]} = {blocks[0] * blocks[1]}, but got input.size(2)={x.shape[2]}.")
    out = Fold.apply(x, output_size=o, kernel_size=k, dilation=d, padding=p, stride=s)
    return out.squeeze(0) if unbatched else out
