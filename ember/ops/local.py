"""Locally connected layer over NCHW images.

LocallyConnected2d is the lectures' middle step between a fully connected and a convolutional
layer (deck 000: "Locally-connected, 400,000 hidden units 10x10 fields = 40 million params"):
each output position (oh, ow) looks at its own KH×KW window, as a convolution does, but with
its OWN filters (no weight sharing). Same notation as ``ember.ops.conv``; L = OH*OW positions,
K = C_in*KH*KW the length of one receptive field. The adaptive pools, PyTorch's and not the
decks', live in ``ember._api.pooling``.
"""
import numpy as np

from ..autograd import Function
from .conv import col2im, pad2d, unpad2d, windows


class LocallyConnected2d(Function):
    """y[n, o, i, j] = b[o, i, j] + Σ_{c,kh,kw} w[i, j, o, c, kh, kw] x[n, c, i*SH+kh, j*SW+kw].

    Shapes: x (N, C_in, H, W), w (OH, OW, C_out, C_in, KH, KW), b (C_out, OH, OW) or None
        -> y (N, C_out, OH, OW).
    Backward (one small GEMM per output position, batched with matmul over the L positions):
        grad_b = Σ_n grad_out
        grad_w[l] = grad_out[:, :, l]ᵀ cols[l]          (C_out, K) per position l
        grad_x = col2im(grad_out[:, :, l] w[l])         (strided adds back to the windows)
    """
    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0)):
        (SH, SW), (PH, PW) = stride, padding
        N = x.shape[0]
        OH, OW, C_out, C, KH, KW = w.shape
        xp = pad2d(x, PH, PW)
        cols = windows(xp, KH, KW, SH, SW).reshape(N, C * KH * KW, OH * OW).transpose(2, 0, 1)   # (L, N, K)
        wm = w.reshape(OH * OW, C_out, C * KH * KW)            # (L, C_out, K)
        y = np.matmul(cols, wm.transpose(0, 2, 1))             # (L, N, C_out)
        y = np.ascontiguousarray(y.transpose(1, 2, 0)).reshape(N, C_out, OH, OW)
        if b is not None:
            y += b
        ctx.save_for_backward(cols, w)
        ctx.padded_shape, ctx.stride, ctx.padding, ctx.has_bias = xp.shape, (SH, SW), (PH, PW), b is not None
        return y

    @staticmethod
    def backward(ctx, grad_out):
        cols, w = ctx.saved_tensors
        xp_shape, (SH, SW), (PH, PW), has_bias = ctx.padded_shape, ctx.stride, ctx.padding, ctx.has_bias
        OH, OW, C_out, C, KH, KW = w.shape
        N = grad_out.shape[0]
        need = ctx.needs_input_grad
        g = grad_out.reshape(N, C_out, OH * OW).transpose(2, 0, 1)   # (L, N, C_out)
        grad_x = grad_w = grad_b = None
        if has_bias and need[2]:
            grad_b = grad_out.sum(axis=0)                          # (C_out, OH, OW)
        if need[1]:
            grad_w = np.matmul(g.transpose(0, 2, 1), cols).reshape(w.shape)   # (L, C_out, K)
        if need[0]:
            gcols = np.matmul(g, w.reshape(OH * OW, C_out, C * KH * KW))   # (L, N, K)
            gcols = gcols.transpose(1, 2, 0).reshape(N, C, KH, KW, OH, OW)
            grad_x = unpad2d(col2im(gcols, xp_shape, SH, SW), PH, PW)
        return grad_x, grad_w, grad_b

