"""Locally connected layer and adaptive average pooling over NCHW images.

LocallyConnected2d is the lectures' middle step between a fully connected and a convolutional
layer (deck 000: "Locally-connected, 400,000 hidden units 10x10 fields = 40 million params"):
each output position (oh, ow) looks at its own KH×KW window, as a convolution does, but with
its OWN filters (no weight sharing). Same notation as ``ember.ops.conv``; L = OH*OW positions,
K = C_in*KH*KW the length of one receptive field.
"""
import numpy as np

from ..autograd import Function
from .conv import col2im, pad2d, windows


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
        win = windows(xp, KH, KW, SH, SW)                      # (N, C, KH, KW, OH, OW) view
        cols = win.reshape(N, C * KH * KW, OH * OW).transpose(2, 0, 1)   # (L, N, K)
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
            wm = w.reshape(OH * OW, C_out, C * KH * KW)
            gcols = np.matmul(g, wm)                               # (L, N, K)
            gcols = gcols.transpose(1, 2, 0).reshape(N, C, KH, KW, OH, OW)
            gxp = col2im(gcols, xp_shape, SH, SW)
            grad_x = gxp[:, :, PH:xp_shape[2] - PH, PW:xp_shape[3] - PW]
        return grad_x, grad_w, grad_b


def adaptive_bins(n_in: int, n_out: int):
    """PyTorch's adaptive pooling bins: bin i covers [⌊i·n_in/n_out⌋, ⌈(i+1)·n_in/n_out⌉)."""
    return [(i * n_in // n_out, -(-(i + 1) * n_in // n_out)) for i in range(n_out)]


class AdaptiveAvgPool2d(Function):
    """y[n, c, i, j] = mean of x[n, c] over row bin i × column bin j (``adaptive_bins``).

    Shapes: (N, C, H, W) -> (N, C, OH, OW). Bins may overlap when OH does not divide H.
    Backward: every input of bin (i, j) receives grad_out[i, j]/|bin|, summed over the bins it is in.
    """
    @staticmethod
    def forward(ctx, x, output_size):
        OH, OW = output_size
        rows, cols = adaptive_bins(x.shape[2], OH), adaptive_bins(x.shape[3], OW)
        y = np.empty(x.shape[:2] + (OH, OW), dtype=x.dtype)
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
        ctx.in_shape, ctx.rows, ctx.cols = x.shape, rows, cols
        return y

    @staticmethod
    def backward(ctx, grad_out):
        shape, rows, cols = ctx.in_shape, ctx.rows, ctx.cols
        gx = np.zeros(shape, dtype=grad_out.dtype)
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                area = grad_out.dtype.type((h1 - h0) * (w1 - w0))
                gx[:, :, h0:h1, w0:w1] += (grad_out[:, :, i, j] / area)[:, :, None, None]
        return gx


class AdaptiveMaxPool2d(Function):
    """y[n, c, i, j] = max of x[n, c] over row bin i × column bin j (``adaptive_bins``),
    torch.nn.functional.adaptive_max_pool2d.

    Shapes: (N, C, H, W) -> (N, C, OH, OW). ``indices``: a list that, when given, receives the
    int64 (N, C, OH, OW) flat positions ih*W + iw of the maxima (``return_indices=True``).
    Backward: each bin's gradient goes to its first maximum (row-major), as PyTorch; bins may
    overlap, so a pixel sums the gradients of the bins whose maximum it is:
        k* = argmax over the bin,   grad_x[bin cell k*] += grad_out[i, j]
    """
    @staticmethod
    def forward(ctx, x, output_size, indices=None):
        (N, C, H, W), (OH, OW) = x.shape, output_size
        rows, cols = adaptive_bins(H, OH), adaptive_bins(W, OW)
        y = np.empty((N, C, OH, OW), dtype=x.dtype)
        flat = np.empty((N, C, OH, OW), dtype=np.int64)
        args = {}
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                cells = x[:, :, h0:h1, w0:w1].reshape(N, C, -1)
                k = cells.argmax(axis=2)[:, :, None]                        # first maximum
                y[:, :, i, j] = np.take_along_axis(cells, k, axis=2)[:, :, 0]
                kh, kw = np.divmod(k[:, :, 0], w1 - w0)
                flat[:, :, i, j] = (h0 + kh) * W + w0 + kw
                args[i, j] = k
        if indices is not None:
            indices.append(flat)
        ctx.in_shape, ctx.rows, ctx.cols, ctx.args = x.shape, rows, cols, args
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (N, C, H, W), rows, cols = ctx.in_shape, ctx.rows, ctx.cols
        gx = np.zeros((N, C, H, W), dtype=grad_out.dtype)
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                g = np.zeros((N, C, (h1 - h0) * (w1 - w0)), dtype=grad_out.dtype)
                np.put_along_axis(g, ctx.args[i, j], grad_out[:, :, i, j, None], axis=2)
                gx[:, :, h0:h1, w0:w1] += g.reshape(N, C, h1 - h0, w1 - w0)
        return gx
