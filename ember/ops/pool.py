"""Pooling over NCHW images: max and average over KH×KW windows, through conv's im2col/col2im.

Notation as ``ember.ops.conv`` (N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW).
Forward takes the window view ``windows(pad(x))`` (N, C, KH, KW, OH, OW) and reduces its two
kernel axes; backward puts each window's gradient back with ``col2im`` (overlapping windows add).
Source: deck 001 (2×2 stride-2 max pooling), deck 002 (max-pool backward: "gradient router").
This file is the reference; ``ember.kernels.pool`` is the fast path.
"""
import numpy as np

from ..autograd import Function
from .conv import col2im, pad2d, unpad2d, windows


class MaxPool2d(Function):
    """y[n, c, oh, ow] = max of the KH×KW window at (oh*SH, ow*SW) of x padded with −inf.

    Shapes: (N, C, H, W) -> (N, C, OH, OW).
    Backward: each window's gradient goes to ONE input, its first maximum in row-major order
    (as PyTorch; splitting it among ties would be another subgradient):
        k* = argmax over the window,   grad_x = col2im(onehot(k*) · grad_out)
    """
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding=(0, 0)):
        (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
        xp = pad2d(x, PH, PW, value=-np.inf)
        win = windows(xp, KH, KW, SH, SW)                      # (N, C, KH, KW, OH, OW) view
        N, C, _, _, OH, OW = win.shape
        cols = win.reshape(N, C, KH * KW, OH, OW)              # the im2col copy
        k = cols.argmax(axis=2)[:, :, None]                    # (N, C, 1, OH, OW): first maximum
        ctx.save_for_backward(k)
        ctx.padded_shape, ctx.kernel_size, ctx.stride, ctx.padding = xp.shape, kernel_size, stride, padding
        return np.take_along_axis(cols, k, axis=2)[:, :, 0]

    @staticmethod
    def backward(ctx, grad_out):
        (k,) = ctx.saved_tensors
        N, C, OH, OW = grad_out.shape
        gcols = np.zeros((N, C, ctx.kernel_size[0] * ctx.kernel_size[1], OH, OW), grad_out.dtype)
        np.put_along_axis(gcols, k, grad_out[:, :, None], axis=2)          # onehot(k*) · grad_out
        gcols = gcols.reshape(N, C, *ctx.kernel_size, OH, OW)
        return unpad2d(col2im(gcols, ctx.padded_shape, *ctx.stride), *ctx.padding)


class AvgPool2d(Function):
    """y = mean of each KH×KW window of x zero-padded (count_include_pad=True, as torch's default).

    Shapes: (N, C, H, W) -> (N, C, OH, OW).
    Backward: every input of a window receives grad_out / (KH*KW), summed over its windows:
        grad_x = col2im(grad_out / (KH*KW) broadcast over the window)
    """
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding=(0, 0)):
        xp = pad2d(x, *padding)
        ctx.padded_shape, ctx.kernel_size, ctx.stride, ctx.padding = xp.shape, kernel_size, stride, padding
        return windows(xp, *kernel_size, *stride).mean(axis=(2, 3), dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        (KH, KW), (N, C, OH, OW) = ctx.kernel_size, grad_out.shape
        g = grad_out / grad_out.dtype.type(KH * KW)
        gcols = np.broadcast_to(g[:, :, None, None], (N, C, KH, KW, OH, OW))
        return unpad2d(col2im(gcols, ctx.padded_shape, *ctx.stride), *ctx.padding)
