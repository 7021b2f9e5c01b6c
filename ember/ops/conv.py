"""Convolution and pooling over NCHW images.

Notation (as DeZero's im2col):
    N batch, C_in / C_out channels, H, W input size, KH, KW kernel size, SH, SW stride,
    PH, PW padding, DH, DW dilation, G groups, OH, OW output size,
    OH = (H + 2*PH - DH*(KH-1) - 1) // SH + 1   (deck 002: ⌊(N + 2P − F)/S⌋ + 1)
    K = (C_in/G)*KH*KW  (the length of one receptive field),  L = OH*OW.

im2col: the (N, C, KH, KW, OH, OW) *window view* of the padded input shares memory with it
(as_strided: window (kh, kw) at output (oh, ow) reads x[oh*SH + kh*DH, ow*SW + kw*DW]); one
copy turns it into columns (N, G, K, L) and one GEMM per image multiplies it with the filters.
col2im, the adjoint of im2col, is a sum over the KH*KW kernel offsets of strided slice-adds
(overlapping windows *add*: assigning would drop gradient).
Deep-learning "convolution" is cross-correlation (deck 001/002): the kernel is not flipped.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..autograd import Function


def out_size(n, k, s, p, d=1):
    """Output length of a window sweep: ⌊(n + 2p − d(k−1) − 1)/s⌋ + 1 (deck 002)."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def windows(xp, KH, KW, SH, SW, DH=1, DW=1):
    """Zero-copy window view (N, C, KH, KW, OH, OW) of an (already padded) (N, C, H, W) array."""
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


def _pad(x, PH, PW, value=0.0):
    if not (PH or PW):
        return x
    return np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)), constant_values=value)


def col2im(cols, padded_shape, SH, SW, DH=1, DW=1):
    """Adjoint of ``windows``: add each window element back to the pixel it was read from.

    cols: (N, C, KH, KW, OH, OW) -> (N, C, H + 2PH, W + 2PW); loops over KH*KW offsets, never
    over output pixels, and accumulates into a channels-first buffer.
    """
    N, C, KH, KW, OH, OW = cols.shape
    out = np.zeros(padded_shape, dtype=cols.dtype)
    for kh in range(KH):
        for kw in range(KW):
            out[offset_slice(kh, kw, OH, OW, SH, SW, DH, DW)] += cols[:, :, kh, kw]
    return out


class Conv2d(Function):
    """2-D cross-correlation: y[n, o] = b[o] + Σ_{c,kh,kw} w[o, c, kh, kw] x[n, c, oh*SH+kh*DH, ow*SW+kw*DW].

    Shapes: x (N, C_in, H, W), w (C_out, C_in/G, KH, KW), b (C_out,) -> y (N, C_out, OH, OW).
    Backward (VJPs; grad_x is a transposed convolution of grad_out with w):
        grad_b = Σ_{n,oh,ow} grad_out
        grad_w = Σ_n grad_out[n] colsᵀ[n]          (GEMM per image, summed)
        grad_x = col2im(wᵀ grad_out)               (GEMM, then strided adds)
    """
    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        (SH, SW), (PH, PW), (DH, DW), G = stride, padding, dilation, groups
        N, C, H, W = x.shape
        C_out, Cg, KH, KW = w.shape
        xp = _pad(x, PH, PW)                                   # (N, C, H+2PH, W+2PW)
        win = windows(xp, KH, KW, SH, SW, DH, DW)              # (N, C, KH, KW, OH, OW) view
        OH, OW = win.shape[-2:]
        cols = win.reshape(N, G, Cg * KH * KW, OH * OW)        # (N, G, K, L) the one copy
        wm = w.reshape(G, C_out // G, Cg * KH * KW)            # (G, C_out/G, K)
        y = np.matmul(wm, cols).reshape(N, C_out, OH, OW)      # (N, C_out, OH, OW)
        if b is not None:
            y += b.reshape(1, C_out, 1, 1)
        ctx.save_for_backward(cols, w)
        ctx.args = xp.shape, (SH, SW), (PH, PW), (DH, DW), G, b is not None
        return y

    @staticmethod
    def backward(ctx, grad_out):
        cols, w = ctx.saved_tensors
        xp_shape, (SH, SW), (PH, PW), (DH, DW), G, has_bias = ctx.args
        N, C_out, OH, OW = grad_out.shape
        _, Cg, KH, KW = w.shape
        need = ctx.needs_input_grad
        g = grad_out.reshape(N, G, C_out // G, OH * OW)       # (N, G, C_out/G, L)
        grad_x = grad_w = grad_b = None
        if has_bias and need[2]:
            grad_b = grad_out.reshape(N, C_out, OH * OW).sum(axis=(0, 2))          # (C_out,)
        if need[1]:
            gw = np.matmul(g, cols.transpose(0, 1, 3, 2))    # (N, G, C_out/G, K)
            grad_w = gw.sum(axis=0).reshape(w.shape)          # (C_out, C_in/G, KH, KW)
        if need[0]:
            wm = w.reshape(G, C_out // G, Cg * KH * KW)
            gcols = np.matmul(wm.transpose(0, 2, 1), g)       # (N, G, K, L)
            gcols = gcols.reshape(N, G * Cg, KH, KW, OH, OW)  # (N, C_in, KH, KW, OH, OW)
            gxp = col2im(gcols, xp_shape, SH, SW, DH, DW)     # (N, C_in, H+2PH, W+2PW)
            grad_x = gxp[:, :, PH:xp_shape[2] - PH, PW:xp_shape[3] - PW]
        return grad_x, grad_w, grad_b


class MaxPool2d(Function):
    """y[n, c, oh, ow] = max of the KH×KW window at (oh*SH, ow*SW) of x padded with -inf.

    Shapes: (N, C, H, W) -> (N, C, OH, OW).
    Backward: each window's gradient goes to ONE input, the first maximum in row-major order
    (as PyTorch; splitting it among ties would be a different subgradient and disagree with it):
        grad_x[argmax of window] += grad_out[window]    (+= because windows may overlap)
    The max and its argmax are kept with elementwise passes over the KH*KW offsets: a strict
    ``>`` keeps the earliest offset on ties.
    """
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding=(0, 0)):
        (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
        xp = _pad(x, PH, PW, value=-np.inf)
        OH, OW = out_size(xp.shape[2], KH, SH, 0), out_size(xp.shape[3], KW, SW, 0)
        y = xp[offset_slice(0, 0, OH, OW, SH, SW)].copy()     # (N, C, OH, OW) running max
        arg = np.zeros(y.shape, dtype=np.uint8 if KH * KW < 256 else np.int32)
        for k in range(1, KH * KW):
            v = xp[offset_slice(k // KW, k % KW, OH, OW, SH, SW)]
            better = v > y                                     # strict: ties keep the first
            np.copyto(y, v, where=better)
            arg[better] = k
        ctx.save_for_backward(arg)
        ctx.args = xp.shape, (KH, KW), (SH, SW), (PH, PW)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (arg,) = ctx.saved_tensors
        xp_shape, (KH, KW), (SH, SW), (PH, PW) = ctx.args
        OH, OW = grad_out.shape[-2:]
        gxp = np.zeros(xp_shape, dtype=grad_out.dtype)        # (N, C, H+2PH, W+2PW)
        for k in range(KH * KW):
            gxp[offset_slice(k // KW, k % KW, OH, OW, SH, SW)] += np.where(arg == k, grad_out, 0)
        return gxp[:, :, PH:xp_shape[2] - PH, PW:xp_shape[3] - PW]


class AvgPool2d(Function):
    """y = mean of each KH×KW window of x zero-padded (count_include_pad=True, as torch's default).

    Shapes: (N, C, H, W) -> (N, C, OH, OW).
    Backward: every input of a window receives grad_out / (KH*KW), summed over the windows it is in.
    """
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding=(0, 0)):
        (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
        xp = _pad(x, PH, PW)
        OH, OW = out_size(xp.shape[2], KH, SH, 0), out_size(xp.shape[3], KW, SW, 0)
        y = np.zeros((x.shape[0], x.shape[1], OH, OW), dtype=x.dtype)
        for k in range(KH * KW):
            y += xp[offset_slice(k // KW, k % KW, OH, OW, SH, SW)]
        ctx.args = xp.shape, (KH, KW), (SH, SW), (PH, PW)
        return y / x.dtype.type(KH * KW)

    @staticmethod
    def backward(ctx, grad_out):
        xp_shape, (KH, KW), (SH, SW), (PH, PW) = ctx.args
        OH, OW = grad_out.shape[-2:]
        g = grad_out / grad_out.dtype.type(KH * KW)
        gxp = np.zeros(xp_shape, dtype=grad_out.dtype)
        for k in range(KH * KW):
            gxp[offset_slice(k // KW, k % KW, OH, OW, SH, SW)] += g
        return gxp[:, :, PH:xp_shape[2] - PH, PW:xp_shape[3] - PW]
