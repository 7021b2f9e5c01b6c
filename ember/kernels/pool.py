"""Fast pooling: MaxPool2d by elementwise maximum passes (threaded), AvgPool2d by strided adds.

Each must equal its reference in ``ember.ops.pool``; ``tests/test_ops.py`` runs every pool row
through both (forward, gradients, ties) and compares them.
"""
import numpy as np

from ..ops import pool
from ..ops.conv import offset_slice, out_size, pad2d
from .threads import num_parts, outer_slices, parallel_for


def covers(x_shape, kernel_size, stride, padding, dilation=(1, 1), ceil_mode=False):
    """Whether the fast pools compute this call: no dilation and a ceil_mode that adds no window
    (then the floor-mode windows are the same). Anything else runs the reference op
    (``ember.ops.pool``), which implements every option; PyTorch's extras (indices, other
    divisors) are ``ember._api.pooling``'s ops, which ``ember.nn.functional`` calls directly."""
    if tuple(dilation) != (1, 1):
        return False
    return not ceil_mode or all(
        pool.pool_out_size(n, k, s, p, 1, True) == pool.pool_out_size(n, k, s, p, 1, False)
        for n, k, s, p in zip(x_shape[2:], kernel_size, stride, padding))


def same_layout(a, like):
    """``a`` with the memory order of ``like`` (same shape): itself if it has it, else one copy.

    A gradient arriving in another order than the array it is combined with (e.g. an NCHW
    gradient from Flatten meeting a CHWN pooling input) makes every elementwise pass a strided
    transpose; converting it once first was ~3× faster for LeNet's second pooling layer.
    """
    if a.strides == like.strides or a.ndim < 2:
        return a
    out = np.empty_like(like, dtype=a.dtype)                   # order="K": like's memory order
    out[...] = a
    return out


class MaxPool2d(pool.MaxPool2d):
    """Fast ``ember.ops.pool.MaxPool2d``: same arguments, same result, ties included (tested).

    y[n, c, oh, ow] = max of the KH×KW window at (oh*SH, ow*SW) of x padded with -inf.

    Shapes: (N, C, H, W) -> (N, C, OH, OW).
    Backward: each window's gradient goes to ONE input, the first maximum in row-major order
    (as PyTorch; splitting it among ties would be a different subgradient and disagree with it):
        grad_x[first k with x_k == y] += grad_out    (+= because windows may overlap)
    Why it is faster than the reference (argmax over a copied window axis, then col2im):
    forward is KH*KW−1 elementwise ``np.maximum`` passes over strided views of x (one per kernel
    offset), 7× faster than ``.max`` over a window axis. No argmax is stored: backward compares
    each offset's view with y in row-major order and a ``free`` mask keeps later ties out. It
    keeps its input's memory order (CHWN after the fast conv), and large inputs are cut into one
    contiguous piece of channels per thread (``outer_slices``).
    Dilation and a ceil_mode that adds windows run the reference op (``covers``).
    """
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
        ctx.fallback = None if covers(x.shape, kernel_size, stride, padding, dilation, ceil_mode) \
            else pool.MaxPool2d
        if ctx.fallback is not None:
            return ctx.fallback.forward(ctx, x, kernel_size, stride, padding, dilation, ceil_mode)
        (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
        xp = pad2d(x, PH, PW, value=-np.inf)
        OH, OW = out_size(xp.shape[2], KH, SH, 0), out_size(xp.shape[3], KW, SW, 0)
        # running max, (N, C, OH, OW); empty_like keeps x's memory order (see Conv2d's CHWN note)
        y = np.empty_like(xp[offset_slice(0, 0, OH, OW, SH, SW)])

        def run(part):                                         # threads: disjoint channels (or images)
            xs, ys = xp[part], y[part]
            np.copyto(ys, xs[offset_slice(0, 0, OH, OW, SH, SW)])
            for k in range(1, KH * KW):
                np.maximum(ys, xs[offset_slice(k // KW, k % KW, OH, OW, SH, SW)], out=ys)
        parallel_for(run, outer_slices(y, num_parts(2 * xp.size), axes=(0, 1)))
        ctx.save_for_backward(xp, y)                           # xp is usually the ReLU's output: no copy
        ctx.kernel_size, ctx.stride, ctx.padding = (KH, KW), (SH, SW), (PH, PW)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.fallback is not None:
            return ctx.fallback.backward(ctx, grad_out)
        xp, y = ctx.saved_tensors
        (KH, KW), (SH, SW), (PH, PW) = ctx.kernel_size, ctx.stride, ctx.padding
        OH, OW = y.shape[-2:]
        grad_out = same_layout(grad_out, y)
        disjoint = SH >= KH and SW >= KW                       # each pixel in at most one window
        tiles = disjoint and (OH * SH, OW * SW) == xp.shape[2:] and (SH, SW) == (KH, KW)
        # when the windows tile the input every pixel is written below, so no zero-fill is needed
        gxp = np.empty_like(xp) if tiles else np.zeros_like(xp)    # (N, C, H+2PH, W+2PW)

        def run(part):                                         # threads: disjoint channels (or images)
            xs, ys, gs, gxs = xp[part], y[part], grad_out[part], gxp[part]
            # two bool buffers shaped (and laid out) like y, reused for every offset
            hit, free = np.empty_like(ys, dtype=bool), None    # free: windows whose max is not found yet
            for k in range(KH * KW):
                sl = offset_slice(k // KW, k % KW, OH, OW, SH, SW)
                if k == KH * KW - 1:
                    hit = free if free is not None else np.ones(ys.shape, bool)
                else:
                    np.equal(xs[sl], ys, out=hit)              # offset k holds the window's max
                    if free is None:
                        free = np.logical_not(hit)
                    else:
                        hit &= free                            # ...and no earlier offset did
                        free ^= hit
                if disjoint:
                    np.multiply(gs, hit, out=gxs[sl])
                else:
                    gxs[sl] += gs * hit
        parallel_for(run, outer_slices(y, num_parts(2 * xp.size), axes=(0, 1)))
        return gxp[:, :, PH:xp.shape[2] - PH, PW:xp.shape[3] - PW]


class AvgPool2d(pool.AvgPool2d):
    """Fast ``ember.ops.pool.AvgPool2d``: same arguments, same result (tested).

    y = mean of each KH×KW window of x zero-padded (count_include_pad=True, as torch's default).
    Why it is faster than the reference (a mean over the window view, col2im of a broadcast
    copy): KH*KW strided adds into the output, never a (N, C, KH, KW, OH, OW) temporary.

    Shapes: (N, C, H, W) -> (N, C, OH, OW).
    Backward: every input of a window receives grad_out / (KH*KW), summed over the windows it is in.
    Only a ceil_mode that adds no window; anything else runs the reference op (PyTorch's other
    divisors are ``ember._api.pooling.AvgPool2d``'s).
    """
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding=(0, 0), ceil_mode=False, divisor=None):
        plain = divisor is None and covers(x.shape, kernel_size, stride, padding, ceil_mode=ceil_mode)
        ctx.fallback = None if plain else pool.AvgPool2d
        if ctx.fallback is not None:
            return ctx.fallback.forward(ctx, x, kernel_size, stride, padding, ceil_mode, divisor)
        (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
        xp = pad2d(x, PH, PW)
        OH, OW = out_size(xp.shape[2], KH, SH, 0), out_size(xp.shape[3], KW, SW, 0)
        y = np.zeros((x.shape[0], x.shape[1], OH, OW), dtype=x.dtype)
        for k in range(KH * KW):
            y += xp[offset_slice(k // KW, k % KW, OH, OW, SH, SW)]
        ctx.padded_shape, ctx.kernel_size, ctx.stride, ctx.padding = xp.shape, (KH, KW), (SH, SW), (PH, PW)
        return y / x.dtype.type(KH * KW)

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.fallback is not None:
            return ctx.fallback.backward(ctx, grad_out)
        xp_shape, (KH, KW), (SH, SW), (PH, PW) = ctx.padded_shape, ctx.kernel_size, ctx.stride, ctx.padding
        OH, OW = grad_out.shape[-2:]
        g = grad_out / grad_out.dtype.type(KH * KW)
        gxp = np.zeros(xp_shape, dtype=grad_out.dtype)
        for k in range(KH * KW):
            gxp[offset_slice(k // KW, k % KW, OH, OW, SH, SW)] += g
        return gxp[:, :, PH:xp_shape[2] - PH, PW:xp_shape[3] - PW]
