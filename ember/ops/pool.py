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
PyTorch's extras beyond the decks (``return_indices``, the windows lying wholly outside the input,
``count_include_pad=False``, ``divisor_override``, MaxUnpool2d) live in ``ember._api.pooling``.
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
    Backward: each window's gradient goes to ONE input, its first maximum in row-major order
    (as PyTorch; splitting it among ties would be another subgradient):
        k* = argmax over the window,   grad_x = col2im(onehot(k*) · grad_out)
    A window whose inputs are all −inf takes its first position inside x (as PyTorch), never a pad.
    ``ctx.inside`` (KH*KW, OH, OW) marks the window cells inside x, for ``ember._api.pooling``.
    """
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
        N, C, H, W = x.shape
        out = tuple(pool_out_size(n, k, s, p, d, ceil_mode)
                    for n, k, s, p, d in zip((H, W), kernel_size, stride, padding, dilation))
        pads = (kernel_size, stride, padding, dilation, out)
        xp = pool_pad(x, *pads, value=-np.inf)
        cols = windows(xp, *kernel_size, *stride, *dilation).reshape(N, C, kernel_size[0] * kernel_size[1], *out)
        k = cols.argmax(axis=2)[:, :, None]                    # (N, C, 1, OH, OW): first maximum
        y = np.take_along_axis(cols, k, axis=2)[:, :, 0]
        cells = pool_pad(np.ones((1, 1, H, W), bool), *pads, value=False)      # True inside x
        ctx.inside = windows(cells, *kernel_size, *stride, *dilation).reshape(-1, *out)   # (KH*KW, OH, OW)
        k = np.where(y[:, :, None] == -np.inf, ctx.inside.argmax(axis=0), k)   # an all −inf window: not a pad
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
        return _crop(col2im(gcols, ctx.padded_shape, *ctx.stride, *ctx.dilation), ctx.padding, ctx.x_shape)


class AvgPool2d(Function):
    """y = Σ over each KH×KW window of x zero-padded, / the divisor (torch.nn.functional.avg_pool2d):

        ``divisor`` (OH, OW) if given, else the window's cells inside the padded input [−P, H + P)
        (torch's default, count_include_pad=True): KH·KW, fewer for a ceil_mode window past it.
    Shapes: (N, C, H, W) -> (N, C, OH, OW), OH = pool_out_size(H, KH, SH, PH, 1, ceil_mode).
    Backward: every input of a window receives grad_out / divisor, summed over its windows:
        grad_x = col2im(grad_out / divisor broadcast over the window)
    """
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding=(0, 0), ceil_mode=False, divisor=None):
        H, W = x.shape[2:]
        out = tuple(pool_out_size(n, k, s, p, 1, ceil_mode) for n, k, s, p in zip((H, W), kernel_size, stride, padding))
        xp = pool_pad(x, kernel_size, stride, padding, (1, 1), out)
        if divisor is None:                                    # a window starting at i·s − p ends by n + p
            divisor = np.outer(*(np.minimum(k, n + 2 * p - s * np.arange(o))
                                 for n, k, s, p, o in zip((H, W), kernel_size, stride, padding, out)))
        ctx.div = divisor.astype(x.dtype)
        ctx.padded_shape, ctx.x_shape, ctx.kernel_size, ctx.stride, ctx.padding = \
            xp.shape, x.shape, kernel_size, stride, padding
        return windows(xp, *kernel_size, *stride).sum(axis=(2, 3), dtype=x.dtype) / ctx.div

    @staticmethod
    def backward(ctx, grad_out):
        (KH, KW), (N, C, OH, OW) = ctx.kernel_size, grad_out.shape
        g = grad_out / ctx.div
        gcols = np.broadcast_to(g[:, :, None, None], (N, C, KH, KW, OH, OW))
        return _crop(col2im(gcols, ctx.padded_shape, *ctx.stride), ctx.padding, ctx.x_shape)
