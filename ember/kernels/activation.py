"""Fast ReLU: SIMD-friendly maximum, a fused mask-times-gradient, threads for large arrays.

It must equal ``ember.ops.activation.ReLU``; ``tests/test_ops.py`` compares them row by row.
"""
import numpy as np

from ..ops import activation
from .conv import chwn
from .threads import num_parts, outer_slices, parallel_for


def _zero_row(x):
    """Zeros that broadcast against x along its innermost memory axis (a 0 scalar if it is short).

    ``np.maximum(x, 0)`` runs NumPy's loop for a scalar operand, which has no SIMD version here:
    against a row of zeros as long as x's innermost run (the batch, in a CHWN conv output) the
    same maximum took 0.10 ms instead of 0.23 ms for LeNet's (64, 6, 28, 28) activation.
    """
    if x.ndim < 2 or x.size < 4096:
        return x.dtype.type(0)
    axis = int(np.argmin(np.abs(x.strides)))                 # the axis whose elements are adjacent
    if x.shape[axis] < 32 or x.strides[axis] != x.itemsize:
        return x.dtype.type(0)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    return np.zeros(shape, x.dtype)


class ReLU(activation.ReLU):
    """Fast ``ember.ops.activation.ReLU``: y = max(x, 0);  grad_x = grad_out * [x > 0] (tested equal).

    Why it is faster than the reference: the maximum is taken against a row of zeros along
    x's innermost memory axis (NumPy's SIMD loop; 0.10 ms instead of 0.23 ms for LeNet's
    (64, 6, 28, 28) activation, see ``_zero_row``), backward writes the 0/1 mask straight into
    the output buffer (no bool temporary), and large arrays are cut into one contiguous piece
    per thread (``threads.outer_slices``; part of the 1.25–1.4× at batch 256 with two threads).
    """
    @staticmethod
    def forward(ctx, x):
        zero, parts = _zero_row(x), num_parts(2 * x.size)
        if parts == 1:
            y = np.maximum(x, zero)
        else:
            y, zero = np.empty_like(x), np.broadcast_to(zero, x.shape)
            parallel_for(lambda p: np.maximum(x[p], zero[p], out=y[p]), outer_slices(y, parts))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return relu_grad(y, grad_out)


# A broadcast gradient (a mean over H and W: (N, C) values seen as (N, C, H, W) with zero
# strides, N-major) against a conv kernel's CHWN-ordered activation made NumPy's loop over the
# two run ~3× slower than over one memory order: the gradient is copied into the activation's
# order first when the array has at least BROADCAST_COPY_MIN values. Measured (float32, one
# thread): (128, 32, 32, 32) 24.6 -> 7.8 ms, (64, 16, 16, 16) 1.30 -> 0.45 ms, (16, 16, 16, 16)
# 0.20 -> 0.19 ms; an NCHW-contiguous gradient was slower copied ((64, 16, 16, 16): 0.74 ->
# 1.31 ms) and is left as it is (benchmarks/RESULTS.md, sixteenth session).
BROADCAST_COPY_MIN = 1 << 16


def relu_grad(y, grad_out):
    """grad_out · [y > 0] (ReLU's VJP from its output y; any shape, grad_out y's shape): the 0/1
    mask written straight into the result, then multiplied in place (no bool temporary), one
    contiguous piece per thread for large arrays. Also ``matmul.LinearReLU``'s backward.
    A broadcast grad_out against a CHWN-ordered 4-D y is first copied into y's memory order
    (``BROADCAST_COPY_MIN``); the values are the same products either way."""
    if (y.ndim == 4 and y.size >= BROADCAST_COPY_MIN and grad_out.shape == y.shape and 0 in grad_out.strides
            and y.transpose(1, 2, 3, 0).flags.c_contiguous):
        grad_out = chwn(grad_out.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    g = np.empty_like(y, dtype=np.result_type(grad_out, y))

    def mask_times_grad(p):    # [y > 0] written as 0/1 floats, then * grad_out: no bool array
        np.greater(y[p], 0, out=g[p], casting="unsafe")
        g[p] *= grad_out[p]
    parallel_for(mask_times_grad, outer_slices(g, num_parts(2 * y.size)))
    return g
