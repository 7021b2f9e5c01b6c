"""Pooling over NCHW images: max and average over KH×KW windows, through conv's im2col/col2im.

Notation as ``ember.ops.conv`` (N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW).
Forward takes the window view ``windows(pad(x))`` (N, C, KH, KW, OH, OW) and reduces its two
kernel axes; backward puts each window's gradient back with ``col2im`` (overlapping windows add).
Output size, PyTorch's rule (``pool_out_size``): OH = ⌊(H + 2PH − DH(KH−1) − 1)/SH⌋ + 1; with
ceil_mode the division rounds up, less one window if the last would start at or past H + PH (a
window must start inside the input or its left padding). ceil_mode's extra windows may read past
the right padding: ``pool_pad`` pads as far as the last window reaches.
Source: deck 001 (2×2 stride-2 max pooling), deck 002 (max-pool backward: "gradient router").
This file is the reference; ``ember.kernels.pool`` and ``numba_pool`` are the fast paths.
"""
import numpy as np

from ..autograd import Function
from .conv import col2im, windows


def pool_out_size(n, k, s, p, d=1, ceil_mode=False):
    """PyTorch's pooling output length: ⌊(n + 2p − d(k−1) − 1 [+ s − 1 if ceil_mode])/s⌋ + 1,
    less one in ceil mode when the last window would start at or past n + p."""
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def pool_pad(x, K, S, P, D, out, value=0.0):
    """x (N, C, H, W) padded with ``value``: P[i] before each spatial axis, and after it as far as
    the last of the ``out`` windows reaches (past P[i] in ceil mode; less when P[i] is never read).
    ``windows(pool_pad(x, ...), *K, *S, *D)`` then has exactly ``out`` windows per axis."""
    after = [max((o - 1) * s + d * (k - 1) + 1 - p - n, 0)
             for o, n, k, s, p, d in zip(out, x.shape[2:], K, S, P, D)]
    if not (any(P) or any(after)):
        return x
    return np.pad(x, ((0, 0), (0, 0), (P[0], after[0]), (P[1], after[1])), constant_values=value)


def _crop(gp, P, shape):
    """The gradient of the padded array back to x's (H, W): drop the padding rows/columns."""
    return gp[:, :, P[0]:P[0] + shape[2], P[1]:P[1] + shape[3]]


class MaxPool2d(Function):
    """y[n, c, oh, ow] = max over kh, kw of x[n, c, oh*SH − PH + kh*DH, ow*SW − PW + kw*DW]
    (positions outside x count as −inf), torch.nn.functional.max_pool2d.

    Shapes: (N, C, H, W) -> (N, C, OH, OW), OH = pool_out_size(H, KH, SH, PH, DH, ceil_mode).
    ``indices``: a list that, when given, receives the int64 (N, C, OH, OW) array of each
    maximum's flat position ih*W + iw in its input plane (torch's ``return_indices=True``).
    Backward: each window's gradient goes to ONE input, its first maximum in row-major order
    (as PyTorch; splitting it among ties would be another subgradient):
        k* = argmax over the window,   grad_x = col2im(onehot(k*) · grad_out)
    A window whose inputs are all −inf takes its first position inside x (as PyTorch), never a pad;
    a window with no cell inside x at all (dilation stepping over it) follows PyTorch's index
    (``_stray_windows``).
    """
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False, indices=None):
        (KH, KW), (SH, SW), (PH, PW), (DH, DW) = kernel_size, stride, padding, dilation
        N, C, H, W = x.shape
        OH, OW = (pool_out_size(n, k, s, p, d, ceil_mode) for n, k, s, p, d in
                  zip((H, W), kernel_size, stride, padding, dilation))
        pads = (kernel_size, stride, padding, dilation, (OH, OW))
        xp = pool_pad(x, *pads, value=-np.inf)
        cols = windows(xp, KH, KW, SH, SW, DH, DW).reshape(N, C, KH * KW, OH, OW)   # the im2col copy
        k = cols.argmax(axis=2)[:, :, None]                    # (N, C, 1, OH, OW): first maximum
        y = np.take_along_axis(cols, k, axis=2)[:, :, 0]
        inside = windows(pool_pad(np.ones((1, 1, H, W), bool), *pads, value=False), KH, KW, SH, SW, DH, DW)
        inside = inside.reshape(KH * KW, OH, OW)               # which window cells lie in x
        k = np.where(y[:, :, None] == -np.inf, inside.argmax(axis=0)[None, None, None], k)  # not a pad
        kh, kw = np.divmod(k[:, :, 0], KW)                     # k -> (ih, iw) -> ih*W + iw
        flat = (np.arange(OH)[:, None] * SH - PH + kh * DH) * W + np.arange(OW) * SW - PW + kw * DW
        ctx.stray = _stray_windows(inside, H, W, (OH, OW), stride, padding, dilation)
        if ctx.stray is not None:                              # PyTorch's index of a window outside x
            flat[:, :, ctx.stray[0], ctx.stray[1]] = ctx.stray[2]
        if indices is not None:
            indices.append(flat.astype(np.int64))
        ctx.save_for_backward(k)
        ctx.padded_shape, ctx.x_shape, ctx.kernel_size, ctx.stride, ctx.padding, ctx.dilation = \
            xp.shape, x.shape, kernel_size, stride, padding, dilation
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (k,) = ctx.saved_tensors
        N, C, OH, OW = grad_out.shape
        gcols = np.zeros((N, C, ctx.kernel_size[0] * ctx.kernel_size[1], OH, OW), grad_out.dtype)
        np.put_along_axis(gcols, k, grad_out[:, :, None], axis=2)          # onehot(k*) · grad_out
        gcols = gcols.reshape(N, C, *ctx.kernel_size, OH, OW)
        gx = _crop(col2im(gcols, ctx.padded_shape, *ctx.stride, *ctx.dilation), ctx.padding, ctx.x_shape)
        if ctx.stray is not None:                              # as PyTorch: to the cell its index names
            gx = np.ascontiguousarray(gx)
            for i, j, f in zip(*ctx.stray):
                if f < gx.shape[2] * gx.shape[3]:
                    gx.reshape(N, C, -1)[:, :, f] += grad_out[:, :, i, j]
        return gx


def _stray_windows(inside, H, W, out, stride, padding, dilation):
    """Windows with no cell inside x (possible with dilation or ceil_mode): their max is −inf and
    PyTorch's index is ih0*W + iw0, ih0 the first window row ≥ 0 (which may lie past x, or name a
    cell outside the window; PyTorch's backward sends the gradient there). (rows, cols, index), or None."""
    rows, cols = np.nonzero(~inside.any(axis=0))
    if not rows.size:
        return None
    first = [np.arange(o) * s - p for o, s, p in zip(out, stride, padding)]
    first = [f + np.maximum((d - 1 - f) // d, 0) * d for f, d in zip(first, dilation)]   # skip cells < 0
    return rows, cols, first[0][rows] * W + first[1][cols]


def avg_pool_divisor(n, k, s, p, out):
    """Per output position along one axis: (window cells inside [−p, n + p), window cells inside
    [0, n)), PyTorch's two divisors (count_include_pad=True / False) before clipping to x."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, n + p)
    return end - start, np.minimum(end, n) - np.maximum(start, 0)


class AvgPool2d(Function):
    """y = Σ over each KH×KW window of x zero-padded, / the divisor (torch.nn.functional.avg_pool2d):

        divisor_override if given, else the window's cells inside the padded input [−P, H + P)
        (count_include_pad=True, torch's default), else its cells inside x (count_include_pad=False).
    Shapes: (N, C, H, W) -> (N, C, OH, OW), OH = pool_out_size(H, KH, SH, PH, 1, ceil_mode).
    Backward: every input of a window receives grad_out / divisor, summed over its windows:
        grad_x = col2im(grad_out / divisor broadcast over the window)
    """
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding=(0, 0), ceil_mode=False, count_include_pad=True,
                divisor_override=None):
        N, C, H, W = x.shape
        OH, OW = (pool_out_size(n, k, s, p, 1, ceil_mode) for n, k, s, p in zip((H, W), kernel_size, stride, padding))
        xp = pool_pad(x, kernel_size, stride, padding, (1, 1), (OH, OW))
        if divisor_override is not None:
            div = np.full((OH, OW), divisor_override)
        else:
            (ah, bh), (aw, bw) = (avg_pool_divisor(n, k, s, p, o) for n, k, s, p, o in
                                  zip((H, W), kernel_size, stride, padding, (OH, OW)))
            div = np.outer(ah, aw) if count_include_pad else np.outer(bh, bw)
        ctx.div = div.astype(x.dtype)
        ctx.padded_shape, ctx.x_shape, ctx.kernel_size, ctx.stride, ctx.padding = \
            xp.shape, x.shape, kernel_size, stride, padding
        return windows(xp, *kernel_size, *stride).sum(axis=(2, 3), dtype=x.dtype) / ctx.div

    @staticmethod
    def backward(ctx, grad_out):
        (KH, KW), (N, C, OH, OW) = ctx.kernel_size, grad_out.shape
        g = grad_out / ctx.div
        gcols = np.broadcast_to(g[:, :, None, None], (N, C, KH, KW, OH, OW))
        return _crop(col2im(gcols, ctx.padded_shape, *ctx.stride), ctx.padding, ctx.x_shape)


class MaxUnpool2d(Function):
    """The partial inverse of MaxPool2d (torch.nn.functional.max_unpool2d): a zero plane of
    (OH, OW) per (n, c) with y[n, c].flat[indices[n, c, i, j]] = x[n, c, i, j].

    Shapes: x and indices (N, C, H, W) -> (N, C, OH, OW); indices are flat positions in an
    OH×OW plane (MaxPool2d's ``return_indices``), checked by the caller to lie in [0, OH*OW).
    A repeated index keeps the last value written (row-major); PyTorch leaves which unspecified.
    Backward: a gather, grad_x[n, c, i, j] = grad_out[n, c].flat[indices[n, c, i, j]].
    """
    @staticmethod
    def forward(ctx, x, indices, output_size):
        N, C = x.shape[:2]
        idx = indices.reshape(N, C, -1)
        y = np.zeros((N, C, output_size[0] * output_size[1]), x.dtype)
        np.put_along_axis(y, idx, x.reshape(N, C, -1), axis=2)
        ctx.save_for_backward(idx)
        ctx.x_shape = x.shape
        return y.reshape(N, C, *output_size)

    @staticmethod
    def backward(ctx, grad_out):
        (idx,) = ctx.saved_tensors
        N, C = grad_out.shape[:2]
        g = np.take_along_axis(grad_out.reshape(N, C, -1), idx, axis=2)
        return g.reshape(ctx.x_shape), None
