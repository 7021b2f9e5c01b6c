"""Convolution over NCHW images, and the im2col/col2im pair shared by conv, pool and local.

Notation (as DeZero's im2col):
    N batch, C_in / C_out channels, H, W input size, KH, KW kernel size, SH, SW stride,
    PH, PW padding, DH, DW dilation, G groups, OH, OW output size,
    OH = (H + 2*PH - DH*(KH-1) - 1) // SH + 1   (deck 002: ⌊(N + 2P − F)/S⌋ + 1)
    K = (C_in/G)*KH*KW  (the length of one receptive field),  L = OH*OW.

im2col: a *window view* of the padded input shares memory with it (as_strided: window (kh, kw)
at output (oh, ow) reads x[oh*SH + kh*DH, ow*SW + kw*DW]); one reshape copies it into columns
(K, L) per image, and one matmul multiplies them with the filters. col2im, the adjoint of im2col,
is a sum over the KH*KW kernel offsets of strided slice-adds (overlapping windows *add*:
assigning would drop gradient). Deep-learning "convolution" is cross-correlation (deck 001/002):
the kernel is not flipped. This file is the reference; ``ember.kernels.conv`` is the fast path.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..autograd import Function


def out_size(n, k, s, p, d=1):
    """Output length of a window sweep: ⌊(n + 2p − d(k−1) − 1)/s⌋ + 1 (deck 002)."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def pad2d(x, PH, PW, value=0.0):
    """(N, C, H, W) -> (N, C, H + 2PH, W + 2PW), the border filled with ``value`` (x itself if no padding)."""
    if not (PH or PW):
        return x
    return np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)), constant_values=value)


def windows(xp, KH, KW, SH, SW, DH=1, DW=1):
    """im2col as a zero-copy window view (N, C, KH, KW, OH, OW) of an (already padded) (N, C, H, W) array."""
    N, C, H, W = xp.shape
    OH, OW = out_size(H, KH, SH, 0, DH), out_size(W, KW, SW, 0, DW)
    sN, sC, sH, sW = xp.strides
    return as_strided(xp, (N, C, KH, KW, OH, OW), (sN, sC, sH * DH, sW * DW, sH * SH, sW * SW),
                      writeable=False)


def offset_slice(kh, kw, OH, OW, SH, SW, DH=1, DW=1):
    """Index of the (OH, OW) input positions that kernel offset (kh, kw) touches."""
    h0, w0 = kh * DH, kw * DW
    return (slice(None), slice(None), slice(h0, h0 + SH * (OH - 1) + 1, SH),
            slice(w0, w0 + SW * (OW - 1) + 1, SW))


def col2im(cols, padded_shape, SH, SW, DH=1, DW=1):
    """Adjoint of ``windows``: add each window element back to the pixel it was read from.

    cols: (N, C, KH, KW, OH, OW) -> (N, C, H + 2PH, W + 2PW); loops over the KH*KW offsets,
    never over output pixels (DLFS-1's col2im).
    """
    N, C, KH, KW, OH, OW = cols.shape
    out = np.zeros(padded_shape, dtype=cols.dtype)
    for kh in range(KH):
        for kw in range(KW):
            out[offset_slice(kh, kw, OH, OW, SH, SW, DH, DW)] += cols[:, :, kh, kw]
    return out


def unpad2d(xp, PH, PW):
    """The inverse of ``pad2d``: crop PH rows and PW columns from each border."""
    return xp[:, :, PH:xp.shape[2] - PH, PW:xp.shape[3] - PW]


class Conv2d(Function):
    """2-D cross-correlation: y[n, o] = b[o] + Σ_{c,kh,kw} w[o, c, kh, kw] x[n, c, oh*SH+kh*DH, ow*SW+kw*DW].

    Shapes: x (N, C_in, H, W), w (C_out, C_in/G, KH, KW), b (C_out,) -> y (N, C_out, OH, OW).
    Forward (deck 002, "convolution as matrix multiplication"), per group:
        cols = im2col(x)                  (N, K, L), K = C_in/G*KH*KW
        y = w cols + b                    (C_out/G, K) @ (N, K, L) -> (N, C_out/G, L)
    Backward (grad_x is a transposed convolution of grad_out with w):
        grad_b = Σ_{n,oh,ow} grad_out
        grad_w = Σ_n grad_out colsᵀ
        grad_x = col2im(wᵀ grad_out)
    """
    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        N, G = x.shape[0], groups
        C_out, Cg, KH, KW = w.shape
        xp = pad2d(x, *padding)                                    # (N, C_in, Hp, Wp)
        win = windows(xp, KH, KW, *stride, *dilation)              # (N, C_in, KH, KW, OH, OW) view
        OH, OW = win.shape[-2:]
        cols = win.reshape(N, G, Cg * KH * KW, OH * OW)            # (N, G, K, L): the im2col copy
        wg = w.reshape(G, C_out // G, Cg * KH * KW)                # (G, C_out/G, K)
        y = np.matmul(wg, cols).reshape(N, C_out, OH, OW)          # (N, G, C_out/G, L) -> y
        if b is not None:
            y += b[:, None, None]
        ctx.save_for_backward(cols, wg)
        ctx.padded_shape, ctx.padding, ctx.stride, ctx.dilation = xp.shape, padding, stride, dilation
        ctx.kernel, ctx.has_bias = (KH, KW), b is not None
        return y

    @staticmethod
    def backward(ctx, grad_out):
        cols, wg = ctx.saved_tensors
        need = ctx.needs_input_grad
        N, C_out, OH, OW = grad_out.shape
        (G, Og, K), (KH, KW) = wg.shape, ctx.kernel
        g = grad_out.reshape(N, G, Og, OH * OW)                    # (N, G, C_out/G, L)
        grad_b = grad_out.sum(axis=(0, 2, 3)) if ctx.has_bias and need[2] else None   # (C_out,)
        grad_w = None
        if need[1]:
            grad_w = np.matmul(g, cols.swapaxes(-1, -2)).sum(axis=0)   # (G, C_out/G, K)
            grad_w = grad_w.reshape(C_out, K // (KH * KW), KH, KW)
        grad_x = None
        if need[0]:
            gcols = np.matmul(wg.swapaxes(-1, -2), g)              # wᵀ g: (N, G, K, L)
            gcols = gcols.reshape(N, G * K // (KH * KW), KH, KW, OH, OW)   # (N, C_in, KH, KW, OH, OW)
            grad_x = unpad2d(col2im(gcols, ctx.padded_shape, *ctx.stride, *ctx.dilation), *ctx.padding)
        return grad_x, grad_w, grad_b
