"""Fast Conv2d: the CHWN (batch-innermost), cache-blocked, threaded convolution.

It must equal ``ember.ops.conv.Conv2d`` (the reference: window view -> one matmul -> col2im);
``tests/test_ops.py`` runs every conv row through both and compares them (float64 1e-10).
History of the figures below: ``benchmarks/RESULTS.md`` and ``git log -- ember/ops/conv.py``.
"""
import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..ops import conv
from ..ops.conv import out_size
from . import buffers
from .threads import get_num_threads, matmul, num_parts, parallel_for, split_range


# Convolution runs in a "CHWN" layout: channels first, the batch innermost (as cuda-convnet did).
# Then a window row (kh, kw, oh) of all ow and all n is ONE contiguous run of OW*N floats, so
# im2col and col2im move long rows instead of OW-float snippets (LeNet: 10–28 floats), which made
# them 4–7× faster here. The output is returned as an (N, C, H, W) *view* of the (C, H, W, N)
# result, and the next layers (ReLU, pooling, the next conv) keep that memory order for free.
# The columns are built one block of output rows at a time (~_BLOCK_BYTES) so that im2col, the
# GEMM and col2im work on a block that stays in the CPU's cache (no cliff as the batch grows).
# With more than one thread (ember.kernels.threads), the output rows are first cut into one contiguous
# run per thread, and each thread works through its own run's blocks (parallel_for).
_BLOCK_BYTES = 1 << 20
_ROW_SPLIT = 4


# An (N, C, H, W) array that is C-contiguous (a batch as loaded, or a tensor made contiguous by
# .contiguous() or .clone()) has its images C·H·W values apart. NumPy copies it into the CHWN
# layout with the batch as the innermost loop, one value per image, so when the images are more
# than a few KiB apart every read lands on another page: (128, 16, 32, 32) float32 took 66 ms
# (~120 MB/s), the CIFAR-style input (128, 3, 32, 32) 3.0 ms. Copied in slices of CHUNK images
# the same copies took 7.2 and 0.56 ms; LeNet's 3 KiB images are copied fastest whole (1000
# images: 1.32 ms whole, 2.4 ms in slices of 8), hence FAR_BYTES. Measured on the fifteenth
# session's machine (AMD EPYC Zen 1; benchmarks/RESULTS.md, sixteenth session).
FAR_BYTES = 8192
CHUNK = 8
# From this many values on, the copy is split by rows (axis 1) between the threads (NumPy's copy
# releases the GIL): LeNet's input at batch 1000 0.84 -> 0.50 ms, the CIFAR-style input (128, 3,
# 32, 32) 0.56 -> 0.39 ms; at (256, 1, 28, 28) (200,704 values) two threads gained nothing
# (RESULTS.md, seventeenth session).
PARALLEL_COPY_MIN = 1 << 18


def copy_chwn(t, out):
    """``out[...] = t`` for a (C, H, W, N)-ordered view t (any strides) and an array ``out`` of
    its shape; returns out. Copied in slices of ``CHUNK`` batch entries when t's consecutive
    batch entries lie ``FAR_BYTES`` or more apart (an NCHW array), else in one NumPy copy; a
    4-D copy of ``PARALLEL_COPY_MIN`` values or more is first split by rows between the threads
    (``ember.kernels.threads``). The values are NumPy's assignment's either way (cast to out's
    dtype as it casts)."""
    parts = min(get_num_threads(), t.shape[1]) if t.ndim == 4 and t.size >= PARALLEL_COPY_MIN else 1
    if parts > 1:
        parallel_for(lambda r: _copy_rows(t[:, r[0]:r[1]], out[:, r[0]:r[1]]), list(split_range(t.shape[1], parts)))
        return out
    return _copy_rows(t, out)


def _copy_rows(t, out):
    """``copy_chwn`` on one thread."""
    N = t.shape[-1]
    if abs(t.strides[-1]) < FAR_BYTES or N <= CHUNK:
        out[...] = t
        return out
    for n0 in range(0, N, CHUNK):
        out[..., n0:n0 + CHUNK] = t[..., n0:n0 + CHUNK]
    return out


def chwn(t, dtype=None):
    """``np.ascontiguousarray(t, dtype)`` for a (C, H, W, N)-ordered view t, e.g.
    ``x.transpose(1, 2, 3, 0)`` of an (N, C, H, W) array: t itself when it is C-contiguous of
    that dtype (a kernel's CHWN output seen as NCHW), else a copy by ``copy_chwn``."""
    dtype = t.dtype if dtype is None else np.dtype(dtype)
    if t.flags.c_contiguous and t.dtype == dtype:
        return t
    return copy_chwn(t, buffers.empty(t.shape, dtype))


def _to_chwn(x, PH, PW):
    """(N, C, H, W) -> zero-padded (C, H+2PH, W+2PW, N), C-contiguous (free if it already is).

    The border is zeroed and the interior copied (``copy_chwn``), each once: ``np.zeros`` of
    the whole array came from calloc, whose fresh pages the copy then faulted in (CIFAR-style
    16×34×34×128 float32: 1.16 ms against 0.83 ms, 2026-12-01, RESULTS.md seventh session).
    """
    xc = x.transpose(1, 2, 3, 0)                               # (C, H, W, N) view
    if PH or PW:
        C, H, W, N = xc.shape
        out = buffers.empty((C, H + 2 * PH, W + 2 * PW, N), x.dtype)
        out[:, :PH] = 0
        out[:, PH + H:] = 0
        out[:, PH:PH + H, :PW] = 0
        out[:, PH:PH + H, PW + W:] = 0
        copy_chwn(xc, out[:, PH:PH + H, PW:PW + W])
        return out
    return chwn(xc)


def _blocks(OH, OW, bytes_per_pixel, parts=1):
    """Per part, the blocks (o0, o1, w0, w1) of output pixels whose columns take ~``_BLOCK_BYTES``.

    The output rows are first cut into ``parts`` runs, one per thread; the threads' blocks are
    alive at the same time, so each gets 1/parts of the budget (memory as with one thread). A
    block is whole rows o0..o1 (w0, w1 = 0, OW), or, when one row's columns exceed the budget
    ``_ROW_SPLIT``-fold (LeNet's conv2 at batch 1000: 6 MB a row), the run w0..w1 of one row;
    either way its columns are one contiguous range of the CHWN output (``_span``). Rows up to
    4× the budget stay whole: cutting them into pixel runs multiplied the calls per op and
    measured 1.4× slower at batch 256 with two threads.
    """
    budget = _BLOCK_BYTES // parts
    bytes_per_pixel = max(1, bytes_per_pixel)  # a batch of N = 0 (issue 14 item 7): one empty block a row
    per_row = bytes_per_pixel * OW
    runs = []
    for a, b in split_range(OH, parts):
        if per_row <= _ROW_SPLIT * budget:
            step = max(1, budget // per_row)
            runs.append([(o, min(b, o + step), 0, OW) for o in range(a, b, step)])
        else:
            step = max(1, budget // bytes_per_pixel)
            runs.append([(o, o + 1, w, min(OW, w + step)) for o in range(a, b) for w in range(0, OW, step)])
    return runs


def _span(block, OW, N):
    """The columns of a block in the (C_out, OH*OW*N) output: a slice."""
    o0, o1, w0, w1 = block
    return slice((o0 * OW + w0) * N, ((o1 - 1) * OW + w1) * N)


def _columns_chwn(xc, block, KH, KW, SH, SW, DH, DW):
    """im2col of one block of output pixels from xc (C, Hp, Wp, N): (C*KH*KW, pixels*N).

    Row (c, kh, kw), column (oh, ow, n) holds xc[c, oh*SH + kh*DH, ow*SW + kw*DW, n].
    """
    o0, o1, w0, w1 = block
    C, _, _, N = xc.shape
    sC, sH, sW, sN = xc.strides
    shape, strides = (C, KH, KW, o1 - o0, w1 - w0, N), (sC, sH * DH, sW * DW, sH * SH, sW * SW, sN)
    if xc.flags.c_contiguous:  # the same window view as as_strided below, built in 2 µs instead of 10
        win = np.ndarray(shape, xc.dtype, buffer=xc, offset=o0 * SH * sH + w0 * SW * sW, strides=strides)
    else:
        win = as_strided(xc[:, o0 * SH:, w0 * SW:], shape, strides, writeable=False)
    return win.reshape(C * KH * KW, -1)                        # the copy: runs of (w1-w0)*N when SW = 1


class Conv2d(conv.Conv2d):
    """Fast ``ember.ops.conv.Conv2d``: same arguments, same result (tested to 1e-10 in float64).

    y[n, o] = b[o] + Σ_{c,kh,kw} w[o, c, kh, kw] x[n, c, oh*SH+kh*DH, ow*SW+kw*DW].
    Why it is faster than the reference (window view -> one matmul -> col2im): the CHWN layout
    makes im2col/col2im move rows of OW*N floats (4–7× faster than NCHW's OW-float snippets at
    LeNet's sizes), the columns are built one cache-sized block at a time (no slowdown as the
    batch grows), and big inputs split the output rows between threads (LeNet-5 training step
    at batch 256: 1.25–1.4× faster with two threads; benchmarks/RESULTS.md).

    Shapes: x (N, C_in, H, W), w (C_out, C_in/G, KH, KW), b (C_out,) -> y (N, C_out, OH, OW).
    Forward, per group and block of output pixels: cols = im2col(x) (K, pixels*N) with
    K = C_in/G*KH*KW, and y = w (C_out/G, K) @ cols (one GEMM).
    Backward (VJPs; grad_x is a transposed convolution of grad_out with w), with
    g = grad_out as (C_out/G, pixels*N) per block:
        grad_b = Σ_{n,oh,ow} grad_out = g @ 1           (a GEMV with a ones vector)
        grad_w = Σ_blocks g colsᵀ                        (one GEMM per block)
        grad_x = col2im(wᵀ g)                            (GEMM, then KH*KW strided adds)
    The columns are rebuilt in backward rather than kept: the input is KH*KW× smaller than its
    columns, and rebuilding a cache-sized block is cheaper than reading a big one back.
    Threads (ember.kernels.threads, when the work is large enough): forward and grad_w split the output
    rows between them (grad_w: one partial sum per thread, added in order); grad_x runs on this
    thread alone (col2im's KH*KW small adds per block made two threads queue for the GIL).
    """
    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        (SH, SW), (PH, PW), (DH, DW), G = stride, padding, dilation, groups
        N, C = x.shape[:2]
        C_out, Cg, KH, KW = w.shape
        Og, K = C_out // G, Cg * KH * KW
        xc = _to_chwn(x, PH, PW)                               # (C, Hp, Wp, N)
        OH, OW = out_size(xc.shape[1], KH, SH, 0, DH), out_size(xc.shape[2], KW, SW, 0, DW)
        y = np.empty((C_out, OH, OW, N), dtype=np.result_type(x, w))
        y2 = y.reshape(C_out, OH * OW * N)                     # a block = a range of its columns
        wm = w.reshape(C_out, K)                               # (C_out, K)

        def run(blocks):                                       # one thread's run of output rows
            for blk in blocks:
                cs = _span(blk, OW, N)
                for gi in range(G):
                    cols = _columns_chwn(xc[gi * Cg:(gi + 1) * Cg], blk, KH, KW, SH, SW, DH, DW)
                    matmul(wm[gi * Og:(gi + 1) * Og], cols, out=y2[gi * Og:(gi + 1) * Og, cs])
                if b is not None:
                    y2[:, cs] += b[:, None]
        parts = num_parts(G * K * OH * OW * N)                 # work: the columns' floats
        parallel_for(run, _blocks(OH, OW, G * K * N * x.itemsize, parts))
        ctx.save_for_backward(xc, w)
        ctx.stride, ctx.padding, ctx.dilation, ctx.groups, ctx.has_bias = (SH, SW), (PH, PW), (DH, DW), G, b is not None
        return y.transpose(3, 0, 1, 2)                         # (N, C_out, OH, OW) view

    @staticmethod
    def backward(ctx, grad_out):
        xc, w = ctx.saved_tensors
        (SH, SW), (PH, PW), (DH, DW), G, has_bias = ctx.stride, ctx.padding, ctx.dilation, ctx.groups, ctx.has_bias
        N, C_out, OH, OW = grad_out.shape
        C, Hp, Wp, _ = xc.shape
        _, Cg, KH, KW = w.shape
        Og, K = C_out // G, Cg * KH * KW
        need = ctx.needs_input_grad
        dt = grad_out.dtype
        g2 = np.ascontiguousarray(grad_out.transpose(1, 2, 3, 0)).reshape(C_out, -1)  # (C_out, OH*OW*N)
        grad_b = matmul(g2, np.ones(g2.shape[1], dt)) if has_bias and need[2] else None   # (C_out,)

        def weight_grad(blocks):                               # Σ g colsᵀ over some blocks
            gw = np.zeros((C_out, K), dt)
            for blk in blocks:
                cs = _span(blk, OW, N)
                for gi in range(G):
                    oi = slice(gi * Og, (gi + 1) * Og)
                    cols = _columns_chwn(xc[gi * Cg:(gi + 1) * Cg], blk, KH, KW, SH, SW, DH, DW)
                    gw[oi] += matmul(g2[oi, cs], cols.T)
            return gw

        grad_w = None
        if need[1]:                                            # partial sums added in part order
            parts = num_parts(G * K * OH * OW * N)             # work: the columns' floats
            sums = parallel_for(weight_grad, _blocks(OH, OW, G * K * N * xc.itemsize, parts))
            grad_w = functools.reduce(np.add, sums).reshape(w.shape)
        grad_x = None
        if need[0]:
            grad_xc = np.zeros(xc.shape, dt)                   # (C, Hp, Wp, N)
            # When all of one kernel row's columns fit the cache budget (LeNet's conv2 up to batch
            # ~100), go one kernel row kh at a time: gcols_kh = w[:, :, kh]ᵀ g spans every output
            # row, so col2im is KH*KW adds in all instead of KH*KW per block of rows (25 instead
            # of 125 at batch 64: 15% faster). Bigger inputs use blocks of rows of the whole wᵀ g
            # (the per-kh GEMMs, with KH× fewer rows, were 28% slower at batch 256).
            by_kh = Cg * KW * OH * OW * N * xc.itemsize <= _BLOCK_BYTES
            for gi in range(G):
                wg = w[gi * Og:(gi + 1) * Og]                  # (C_out/G, C_in/G, KH, KW)
                dst = grad_xc[gi * Cg:(gi + 1) * Cg]
                for khs in ([[kh] for kh in range(KH)] if by_kh else [range(KH)]):
                    wt = wg[:, :, khs].reshape(Og, -1).T       # (C_in/G*len(khs)*KW, C_out/G)
                    for o0, o1, w0, w1 in _blocks(OH, OW, wt.shape[0] * N * xc.itemsize)[0]:
                        g = g2[gi * Og:(gi + 1) * Og, _span((o0, o1, w0, w1), OW, N)]
                        gcols = matmul(wt, g).reshape(Cg, len(khs), KW, o1 - o0, w1 - w0, N)   # wᵀ g
                        for i, kh in enumerate(khs):           # col2im: add each offset's rows back
                            for kw in range(KW):
                                h0, v0 = o0 * SH + kh * DH, w0 * SW + kw * DW
                                dst[:, h0:h0 + SH * (o1 - o0 - 1) + 1:SH,
                                    v0:v0 + SW * (w1 - w0 - 1) + 1:SW] += gcols[:, i, kw]
            grad_x = grad_xc[:, PH:Hp - PH, PW:Wp - PW].transpose(3, 0, 1, 2)   # (N, C, H, W) view
        return grad_x, grad_w, grad_b
