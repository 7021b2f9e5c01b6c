"""Convolution and pooling over NCHW images.

Notation (as DeZero's im2col):
    N batch, C_in / C_out channels, H, W input size, KH, KW kernel size, SH, SW stride,
    PH, PW padding, DH, DW dilation, G groups, OH, OW output size,
    OH = (H + 2*PH - DH*(KH-1) - 1) // SH + 1   (deck 002: ⌊(N + 2P − F)/S⌋ + 1)
    K = (C_in/G)*KH*KW  (the length of one receptive field),  L = OH*OW.

im2col: a *window view* of the padded input shares memory with it (as_strided: window (kh, kw)
at output (oh, ow) reads x[oh*SH + kh*DH, ow*SW + kw*DW]); one copy turns it into columns
(K, L·N) and one GEMM multiplies them with the filters (Conv2d does this in a batch-innermost
layout, block by block; see the note above ``Conv2d``; ``windows``/``col2im`` below are the plain
NCHW forms, used by LocallyConnected2d). col2im, the adjoint of im2col, is a sum over the KH*KW
kernel offsets of strided slice-adds (overlapping windows *add*: assigning would drop gradient).
Deep-learning "convolution" is cross-correlation (deck 001/002): the kernel is not flipped.
"""
import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..autograd import Function
from ..threads import matmul, num_parts, outer_slices, parallel_for, split_range


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


def same_layout(a, like):
    """``a`` with the memory order of ``like`` (same shape): itself if it has it, else one copy.

    A gradient arriving in another order than the array it is combined with (e.g. an NCHW
    gradient from Flatten meeting a CHWN pooling input) makes every elementwise pass a strided
    transpose; converting it once first was ~3× faster for LeNet's second pooling layer.
    """
    if a.strides == like.strides or a.ndim < 2:
        return a
    out = np.empty_like(like, dtype=a.dtype)                   # order="K": like's memory order
    out[...] = a
    return out


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


# Convolution runs in a "CHWN" layout: channels first, the batch innermost (as cuda-convnet did).
# Then a window row (kh, kw, oh) of all ow and all n is ONE contiguous run of OW*N floats, so
# im2col and col2im move long rows instead of OW-float snippets (LeNet: 10–28 floats), which made
# them 4–7× faster here. The output is returned as an (N, C, H, W) *view* of the (C, H, W, N)
# result, and the next layers (ReLU, pooling, the next conv) keep that memory order for free.
# The columns are built one block of output rows at a time (~_BLOCK_BYTES) so that im2col, the
# GEMM and col2im work on a block that stays in the CPU's cache (no cliff as the batch grows).
# With more than one thread (ember.threads), the output rows are first cut into one contiguous
# run per thread, and each thread works through its own run's blocks (parallel_for).
_BLOCK_BYTES = 1 << 20
_ROW_SPLIT = 4


def _to_chwn(x, PH, PW):
    """(N, C, H, W) -> zero-padded (C, H+2PH, W+2PW, N), C-contiguous (free if it already is)."""
    xc = x.transpose(1, 2, 3, 0)                               # (C, H, W, N) view
    if PH or PW:
        C, H, W, N = xc.shape
        out = np.zeros((C, H + 2 * PH, W + 2 * PW, N), dtype=x.dtype)
        out[:, PH:PH + H, PW:PW + W] = xc
        return out
    return np.ascontiguousarray(xc)


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


class Conv2d(Function):
    """2-D cross-correlation: y[n, o] = b[o] + Σ_{c,kh,kw} w[o, c, kh, kw] x[n, c, oh*SH+kh*DH, ow*SW+kw*DW].

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
    Threads (ember.threads, when the work is large enough): forward and grad_w split the output
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
        ctx.args = (SH, SW), (PH, PW), (DH, DW), G, b is not None
        return y.transpose(3, 0, 1, 2)                         # (N, C_out, OH, OW) view

    @staticmethod
    def backward(ctx, grad_out):
        xc, w = ctx.saved_tensors
        (SH, SW), (PH, PW), (DH, DW), G, has_bias = ctx.args
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


class MaxPool2d(Function):
    """y[n, c, oh, ow] = max of the KH×KW window at (oh*SH, ow*SW) of x padded with -inf.

    Shapes: (N, C, H, W) -> (N, C, OH, OW).
    Backward: each window's gradient goes to ONE input, the first maximum in row-major order
    (as PyTorch; splitting it among ties would be a different subgradient and disagree with it):
        grad_x[first k with x_k == y] += grad_out    (+= because windows may overlap)
    Forward is KH*KW−1 elementwise ``np.maximum`` passes over strided views of x (one per kernel
    offset), 7× faster than ``.max`` over a window axis. No argmax is stored: backward compares
    each offset's view with y in row-major order and a ``free`` mask keeps later ties out.
    """
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding=(0, 0)):
        (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
        xp = _pad(x, PH, PW, value=-np.inf)
        OH, OW = out_size(xp.shape[2], KH, SH, 0), out_size(xp.shape[3], KW, SW, 0)
        # running max, (N, C, OH, OW); empty_like keeps x's memory order (see Conv2d's CHWN note)
        y = np.empty_like(xp[offset_slice(0, 0, OH, OW, SH, SW)])

        def run(part):                                         # threads: disjoint channels (or images)
            xs, ys = xp[part], y[part]
            np.copyto(ys, xs[offset_slice(0, 0, OH, OW, SH, SW)])
            for k in range(1, KH * KW):
                np.maximum(ys, xs[offset_slice(k // KW, k % KW, OH, OW, SH, SW)], out=ys)
        parallel_for(run, outer_slices(y, num_parts(2 * xp.size), axes=(0, 1)))
        ctx.save_for_backward(xp, y)                           # xp is usually the ReLU's output: no copy
        ctx.args = (KH, KW), (SH, SW), (PH, PW)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        xp, y = ctx.saved_tensors
        (KH, KW), (SH, SW), (PH, PW) = ctx.args
        OH, OW = y.shape[-2:]
        grad_out = same_layout(grad_out, y)
        disjoint = SH >= KH and SW >= KW                       # each pixel in at most one window
        tiles = disjoint and (OH * SH, OW * SW) == xp.shape[2:] and (SH, SW) == (KH, KW)
        # when the windows tile the input every pixel is written below, so no zero-fill is needed
        gxp = np.empty_like(xp) if tiles else np.zeros_like(xp)    # (N, C, H+2PH, W+2PW)

        def run(part):                                         # threads: disjoint channels (or images)
            xs, ys, gs, gxs = xp[part], y[part], grad_out[part], gxp[part]
            # two bool buffers shaped (and laid out) like y, reused for every offset
            hit, free = np.empty_like(ys, dtype=bool), None    # free: windows whose max is not found yet
            for k in range(KH * KW):
                sl = offset_slice(k // KW, k % KW, OH, OW, SH, SW)
                if k == KH * KW - 1:
                    hit = free if free is not None else np.ones(ys.shape, bool)
                else:
                    np.equal(xs[sl], ys, out=hit)              # offset k holds the window's max
                    if free is None:
                        free = np.logical_not(hit)
                    else:
                        hit &= free                            # ...and no earlier offset did
                        free ^= hit
                if disjoint:
                    np.multiply(gs, hit, out=gxs[sl])
                else:
                    gxs[sl] += gs * hit
        parallel_for(run, outer_slices(y, num_parts(2 * xp.size), axes=(0, 1)))
        return gxp[:, :, PH:xp.shape[2] - PH, PW:xp.shape[3] - PW]


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
