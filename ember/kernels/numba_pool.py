"""2-D max pooling compiled with numba: forward and backward of ``ops.conv.MaxPool2d``.

The kernels work on the array seen as (P, H, W, I): P "planes" and an innermost run I. A conv
output in ember's CHWN order (ops.conv / numba_conv) is (C, H, W, N): P = C, I = N, so the
innermost loop runs over the batch, contiguous and SIMD-wide. Any other order is copied to CHWN
first when the batch has CHWN_MIN_BATCH images or more (the output is then CHWN too); a smaller
batch runs as NCHW planes (N*C, H, W, 1) with the ow loop innermost (``_forward_rows_body``).

Forward keeps, per output, the window offset k = kh*KW + kw of the first maximum in row-major
order (uint8), as the reference's argmax picks it (a NaN in a window makes y NaN and takes the
gradient, as np.argmax and PyTorch do). Backward adds grad_out at that offset:
one pass over grad_out instead of the reference's KH*KW compare-and-mask passes.
Measured (benchmarks/kernels_numba.py, LeNet's pool1, (N, 6, 28, 28) in CHWN, forward + backward,
machine loaded, load ~10): batch 64 0.96 ms CPU (best run 0.62 ms wall) vs the NumPy path's
1.94 ms (0.91); batch 256 2.35 vs 6.35 ms CPU.
Threads: items are planes (windows of different planes never share an input pixel, so no two
threads write the same gradient), each computed whole in one order: results are bit-identical
for every thread count.
"""
import numpy as np

from ..autograd import Function
from ..ops.conv import out_size
from . import buffers
from .conv import chwn
from ._jit import AVAILABLE, kernel_pair, njit, prange, run

try:  # the reference op: ops/pool.py after the layout change, ops/conv.py before it
    from ..ops.pool import MaxPool2d as _RefMaxPool2d
except ImportError:
    from ..ops.conv import MaxPool2d as _RefMaxPool2d
from .pool import MaxPool2d as _FallbackMaxPool2d, covers  # the NumPy path: what the kernels do not cover


@njit(cache=True, nogil=True, inline="always")
def max_into(y, arg, x, k):
    """y[i], arg[i] = x[i], k where x[i] > y[i] (i < len(y)): one window offset k of a running max.

    A NaN wins once and then stays (the first NaN of a window is its max and takes the gradient,
    as np.argmax and PyTorch choose); a tie keeps the earlier offset. Shared by the pool kernel
    and the fused conv + ReLU + max-pool (numba_conv).
    """
    kk = arg.dtype.type(k)
    for i in range(y.shape[0]):                                # branch-free: selects, SIMD
        v, b = x[i], y[i]
        take = (v > b) | ((v != v) & (b == b))
        y[i] = v if take else b
        arg[i] = kk if take else arg[i]


@njit(cache=True, nogil=True, inline="always")
def _max2x2(x, y, arg, p, OH, OW, I):
    """y[p, oh, ow, i], arg[p, oh, ow, i] = the max of x[p, 2oh + r, 2ow + s, i] (r, s < 2) and its
    first offset 2r + s: ``max_into`` over the 4 offsets in order from -inf (ties keep the
    earlier offset, the first NaN wins and stays), the running max in registers. One array
    loaded and two stored: LLVM vectorises the loop over i (4 max_into passes ran it scalar;
    the same change made LeNet's fused conv1 + ReLU + pool forward 2.7× faster)."""
    k1, k2, k3 = arg.dtype.type(1), arg.dtype.type(2), arg.dtype.type(3)
    for oh in range(OH):
        for ow in range(OW):
            for i in range(I):
                best, a = x[p, 2 * oh, 2 * ow, i], arg.dtype.type(0)
                v = x[p, 2 * oh, 2 * ow + 1, i]
                take = (v > best) | ((v != v) & (best == best))
                best, a = (v, k1) if take else (best, a)
                v = x[p, 2 * oh + 1, 2 * ow, i]
                take = (v > best) | ((v != v) & (best == best))
                best, a = (v, k2) if take else (best, a)
                v = x[p, 2 * oh + 1, 2 * ow + 1, i]
                take = (v > best) | ((v != v) & (best == best))
                best, a = (v, k3) if take else (best, a)
                y[p, oh, ow, i], arg[p, oh, ow, i] = best, a


def _forward_body(x, y, arg, KH, KW, SH, SW, PH, PW, lo, hi):
    """y[p, oh, ow, i] = max_{kh,kw} x[p, oh*SH+kh-PH, ow*SW+kw-PW, i] (outside x: -inf).

    Equals ops.conv.MaxPool2d.forward; arg = the first offset kh*KW+kw that holds the max.
    The innermost loop runs over the run i (the batch, in CHWN): compare-and-select in SIMD.
    """
    H, W, I = x.shape[1], x.shape[2], x.shape[3]
    OH, OW = y.shape[1], y.shape[2]
    if KH == KW == SH == SW == 2 and PH == PW == 0 and 2 * OH <= H and 2 * OW <= W:
        for p in prange(lo, hi):                               # 2×2 windows, all inside x
            _max2x2(x, y, arg, p, OH, OW, I)
        return
    for p in prange(lo, hi):
        for oh in range(OH):
            for ow in range(OW):
                yr, ar = y[p, oh, ow], arg[p, oh, ow]
                for i in range(I):
                    yr[i], ar[i] = -np.inf, 0
                for kh in range(KH):
                    ih = oh * SH + kh - PH
                    for kw in range(KW):
                        iw = ow * SW + kw - PW
                        if ih < 0 or ih >= H or iw < 0 or iw >= W:
                            continue                           # padding: -inf never wins
                        max_into(yr, ar, x[p, ih, iw], kh * KW + kw)


def _backward_body(g, arg, gx, KH, KW, SH, SW, PH, PW, lo, hi):
    """gx[p, ih, iw, i] = Σ over the windows whose max is at (ih, iw) of g[p, oh, ow, i].

    Equals ops.conv.MaxPool2d.backward (the gradient goes to the first maximum of its window;
    += since windows may overlap; a max in the padding is dropped). Per window, one SIMD pass
    per offset k adds g where arg == k.
    """
    H, W, I = gx.shape[1], gx.shape[2], gx.shape[3]
    OH, OW = g.shape[1], g.shape[2]
    for p in prange(lo, hi):
        gx[p] = 0
        for oh in range(OH):
            for ow in range(OW):
                gr, ar = g[p, oh, ow], arg[p, oh, ow]
                for kh in range(KH):
                    ih = oh * SH + kh - PH
                    for kw in range(KW):
                        iw = ow * SW + kw - PW
                        if ih < 0 or ih >= H or iw < 0 or iw >= W:
                            continue
                        xr, k = gx[p, ih, iw], kh * KW + kw
                        for i in range(I):
                            if ar[i] == k:
                                xr[i] += gr[i]


def _forward_rows_body(x, y, arg, KH, KW, SH, SW, PH, PW, lo, hi):
    """The same as ``_forward_body`` for a run I = 1 (NCHW planes x (P, H, W)): the innermost loop
    runs over ow instead, so it is a loop of OW iterations, not one of length 1 per window.

    For each output pixel the offsets are still visited in row-major order (kh, then kw), so the
    maximum, its first offset and the NaN rule are those of ``_forward_body``.
    """
    H, W = x.shape[1], x.shape[2]
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(lo, hi):
        for oh in range(OH):
            yr, ar = y[p, oh], arg[p, oh]
            for ow in range(OW):
                yr[ow], ar[ow] = -np.inf, 0
            for kh in range(KH):
                ih = oh * SH + kh - PH
                if ih < 0 or ih >= H:
                    continue                                   # padding: -inf never wins
                xr = x[p, ih]
                for kw in range(KW):
                    k = kh * KW + kw
                    ow0 = max(0, (PW - kw + SW - 1) // SW)     # first ow with iw >= 0
                    ow1 = min(OW, (W - 1 + PW - kw) // SW + 1)  # past the last ow with iw < W
                    for ow in range(ow0, ow1):
                        v, b = xr[ow * SW + kw - PW], yr[ow]
                        if v > b:
                            yr[ow], ar[ow] = v, k
                        elif v != v and b == b:                # the first NaN (as _forward_body)
                            yr[ow], ar[ow] = v, k


def _backward_rows_body(g, arg, gx, KH, KW, SH, SW, PH, PW, lo, hi):
    """``_backward_body`` for NCHW planes (P, H, W): the innermost loop over ow adds g where
    arg == k at input column ow*SW + kw - PW (each window's gradient goes to its one offset)."""
    H, W = gx.shape[1], gx.shape[2]
    OH, OW = g.shape[1], g.shape[2]
    for p in prange(lo, hi):
        gx[p] = 0
        for oh in range(OH):
            gr, ar = g[p, oh], arg[p, oh]
            for kh in range(KH):
                ih = oh * SH + kh - PH
                if ih < 0 or ih >= H:
                    continue
                xr = gx[p, ih]
                for kw in range(KW):
                    k = kh * KW + kw
                    ow0 = max(0, (PW - kw + SW - 1) // SW)
                    ow1 = min(OW, (W - 1 + PW - kw) // SW + 1)
                    for ow in range(ow0, ow1):
                        if ar[ow] == k:
                            xr[ow * SW + kw - PW] += gr[ow]


_forward = kernel_pair(_forward_body)
_backward = kernel_pair(_backward_body)
_forward_rows = kernel_pair(_forward_rows_body)
_backward_rows = kernel_pair(_backward_rows_body)


# From this batch size on an NCHW input is copied to CHWN first: the compare-and-select over a
# contiguous batch is SIMD, the one over a row's stride-2 pixels branches on the data. Measured
# (LeNet's pool1 input (64, 6, 28, 28) NCHW, forward, one thread, load ~8): 2.1 ms CPU with the
# rows kernel, 0.24 ms + the copy with CHWN; the copy takes ~0.1 ms.
CHWN_MIN_BATCH = 8


def _planes(x):
    """(P, H, W, I) array of x (N, C, H, W), and the layout that undoes it: a view when x is
    CHWN in memory (the batch innermost), a CHWN copy of a batch of CHWN_MIN_BATCH or more,
    else NCHW planes (N*C, H, W, 1)."""
    N, C, H, W = x.shape
    if x.transpose(1, 2, 3, 0).flags.c_contiguous or N >= CHWN_MIN_BATCH:
        return chwn(x.transpose(1, 2, 3, 0)), "chwn"
    return np.ascontiguousarray(x).reshape(N * C, H, W, 1), "nchw"


def _unplanes(a, layout, N, C):
    """(P, OH, OW, I) back to an (N, C, OH, OW) view."""
    if layout == "chwn":
        return a.transpose(3, 0, 1, 2)
    return a.reshape(N, C, a.shape[1], a.shape[2])


def _as_layout(g, layout):
    """grad_out (N, C, OH, OW) as a contiguous (P, OH, OW, I) array."""
    if layout == "chwn":
        return chwn(g.transpose(1, 2, 3, 0))
    N, C, OH, OW = g.shape
    return np.ascontiguousarray(g).reshape(N * C, OH, OW, 1)


class MaxPool2d(_RefMaxPool2d):
    """Max pooling with compiled kernels; equals ``ember.ops.conv.MaxPool2d``.

    Same forward signature (x, kernel_size, stride, padding=(0, 0)); the output keeps x's memory
    order (CHWN after a conv). float32/float64 with KH*KW <= 256 (the offset is a uint8);
    anything else, or no numba, runs the NumPy path, and dilation or a ceil_mode that
    adds windows the reference op (through the NumPy path's ``covers``). A subclass of the reference op.
    """
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
        (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
        if not (AVAILABLE and x.dtype in (np.float32, np.float64) and KH * KW <= 256 and x.size
                and covers(x.shape, kernel_size, stride, padding, dilation, ceil_mode)):
            ctx.numba_fallback = _FallbackMaxPool2d         # (it sets its own ctx.fallback)
            return _FallbackMaxPool2d.forward(ctx, x, kernel_size, stride, padding, dilation, ceil_mode)
        ctx.numba_fallback = None
        N, C, H, W = x.shape
        OH, OW = out_size(H, KH, SH, PH), out_size(W, KW, SW, PW)
        xp, layout = _planes(x)
        P, _, _, I = xp.shape
        y = buffers.empty((P, OH, OW, I), x.dtype)
        arg = buffers.empty((P, OH, OW, I), np.uint8)
        if I == 1:                                             # NCHW: rows, the ow loop innermost
            run(_forward_rows, P, xp[..., 0], y[..., 0], arg[..., 0], KH, KW, SH, SW, PH, PW,
                work=y.size * KH * KW)
        else:
            run(_forward, P, xp, y, arg, KH, KW, SH, SW, PH, PW, work=y.size * KH * KW)
        ctx.save_for_backward(arg)
        ctx.x_shape, ctx.layout = (N, C, H, W), layout
        ctx.kernel_size, ctx.stride, ctx.padding = (KH, KW), (SH, SW), (PH, PW)
        return _unplanes(y, layout, N, C)

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.numba_fallback is not None:
            return ctx.numba_fallback.backward(ctx, grad_out)
        (arg,) = ctx.saved_tensors
        (N, C, H, W), layout = ctx.x_shape, ctx.layout
        (KH, KW), (SH, SW), (PH, PW) = ctx.kernel_size, ctx.stride, ctx.padding
        g = _as_layout(grad_out, layout)
        P, _, _, I = g.shape
        gx = buffers.empty((P, H, W, I), g.dtype)
        if I == 1:
            run(_backward_rows, P, g[..., 0], arg[..., 0], gx[..., 0], KH, KW, SH, SW, PH, PW,
                work=g.size * KH * KW)
        else:
            run(_backward, P, g, arg, gx, KH, KW, SH, SW, PH, PW, work=g.size * KH * KW)
        return _unplanes(gx, layout, N, C)
