"""Direct 2-D convolution compiled with numba: the forward and both gradients of ``ops.conv.Conv2d``.

Notation as ember/ops/conv.py: N batch, C / C_out channels, H, W, KH, KW, SH, SW, PH, PW,
DH, DW, G groups, Cg = C/G and Og = C_out/G channels per group, OH, OW output size.

Layout "CHWN", the batch innermost (as ops.conv's NumPy path): x is held as (C, Hp, Wp, N), the
output as (C_out, OH, OW, N), and each array row (c, h) is one contiguous run of W*N floats.
With stride 1 the pixels (ow, n) of an output row and the pixels (ow + kw*DW, n) of the input
row that kernel offset kw reads are two equally long contiguous runs, so the innermost loop of
every kernel below is one SIMD loop over OW*N floats: an axpy (forward, grad_x) or a dot product
(grad_w). No im2col is built (the GEMM path copies every input float KH*KW times first).

Threads: every output element is computed by one loop iteration, in one fixed order, so the
result does not depend on the thread count or the partition (bit-identical across reruns and
thread counts; tested). Each kernel is compiled twice from one Python body (``_jit.kernel_pair``):
``parallel=True`` (numba's ``prange`` over the items, OpenMP threads) and ``nogil=True`` serial
over an item range [lo, hi) that ``_jit.run`` can split over a pool of Python threads.

Measured (2-core Xeon, AVX-512, float32, batch 64, one thread, LeNet's conv2 6→16 5×5 on 14×14;
the machine was shared with other jobs, so best of 11 runs of 5 calls, over several minutes):
forward 0.30–0.62 ms (50–104 GFLOP/s), grad_w 0.31–0.54 ms (57–99 GFLOP/s), grad_x 0.52–0.90 ms
(34–59 GFLOP/s); the NumPy path (im2col + GEMM + col2im) took ~0.9 ms forward and ~3.6 ms
forward + backward. One term per pass (the first version): 19 GFLOP/s forward. LeNet-5 training
step (benchmarks/kernels_numba.py, load ~2, medians of 7): batch 64 5.5 ms vs 12.5 ms NumPy path,
batch 256 17.1 vs 34.4 ms; with Conv2dReLU fused: 4.7 and 14.8 ms.

Output-stationary 8-channel blocks (2026-12-01, issue 13: ResNet-20's 3×3 stride-1 layers,
16-64 channels at 32×32 to 8×8, N = 128): the forward (``_conv_rows8``) and grad_x
(``_grad_x_rows8``) sum 8 output (input) channels × a strip of ``STRIP`` floats of one row in an
L1 scratch block over every term and write it once, instead of reading and writing 4 whole rows
(from L2) every 4 terms; grad_w (``_grad_w_taps8``, KW = 3) takes 8 output channels × the 3 kw
offsets of one kh per pass. Blocks of 4 (the kernels above) remain for strides > 1, fewer than 8
channels per group and the channel tail. Measured (benchmarks/conv_layers.py --ab-block, one
thread, float32, load ~6 on the 2 shared cores, medians of 7 alternating rounds, wall ms old →
new): 16→16 32×32 forward 31.1 → 24.3, grad_x 44.4 → 30.6; 32→32 16×16 32.2 → 32.0 and
33.6 → 26.4; 64→64 8×8 37.3 → 30.9 and 38.1 → 21.6 (per-round ratios 0.57-0.95); PyTorch on
the same arrays 22.6/29.0, 20.2/16.0, 12.2/15.2 ms; grad_w (a second run, load ~5.9) 25.8 → 24.1,
16.9 → 16.3, 17.9 → 16.8 (per-round 0.87-0.97; PyTorch 16.7, 13.8, 9.5). The kernels vectorise to AVX2 (ymm) FMAs:
numba's LLVM target prefers 256-bit vectors on this CPU.

Conv2dReLUMaxPool2d (conv → ReLU → 2×2 max-pool as one op, run by ``ember.kernels.fusion`` for
nn.Sequential): per LeNet-5 training step at batch 64 (same process, alternating with the layers
run one by one; the machine at load 5–9, so CPU time is the figure that means something) -20%
CPU (medians 6.43 vs 8.08 and 4.61 vs 5.74 ms in two runs), and the conv output is never stored.
"""
import numpy as np

from ..autograd import Function, is_grad_enabled
from ..ops.conv import Conv2d as _RefConv2d   # the reference op (its name, whatever is patched later)
from ._jit import AVAILABLE, kernel_pair, njit, prange, run
from . import buffers
from .numba_pool import max_into
from .conv import _to_chwn as to_chwn, chwn   # the NumPy kernel's layout changes, shared

try:  # after the layout change the NumPy fast path is ember.kernels.conv: the better fallback
    from .conv import Conv2d as _FallbackConv2d
except ImportError:  # before it, ops.conv.Conv2d is that path
    _FallbackConv2d = _RefConv2d


def out_size(n, k, s, p, d=1):
    """Output length of a window sweep: (n + 2p − d(k−1) − 1) // s + 1 (deck 002)."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


# ------------------------------------------------------------------------------------ kernels
# Arrays arrive flattened to 3-D: x (C, Hp, Wp*N), y and g (C_out, OH, OW*N), gx (C, H, W*N).
# With SW == 1 an output row is one block of OW*N floats; otherwise OW blocks of N floats.

_FM = {"reassoc", "contract"}   # lets LLVM vectorise the sums (FMA, reordered lanes); the order is still fixed


@njit(cache=True, nogil=True, fastmath=_FM, inline="always")
def madd4x4(y0, y1, y2, y3, x0, x1, x2, x3, m, n):
    """y_r[j] += Σ_s m[r, s] · x_s[j] for r, s < 4 and j < n: a 4×4 block of axpys in one pass.

    Each x float loaded feeds 4 rows and each y float is loaded and stored once per 4
    multiply-adds: 16 FMAs per 8 loads + 4 stores (one axpy at a time took 2 loads + 1 store
    per FMA and was memory-bound in L1). The conv forward's (rows: output channels, s: terms)
    and grad_x's (rows: input channels, s: output channels) inner loop.
    """
    a0, a1, a2, a3 = m[0, 0], m[0, 1], m[0, 2], m[0, 3]
    b0, b1, b2, b3 = m[1, 0], m[1, 1], m[1, 2], m[1, 3]
    c0, c1, c2, c3 = m[2, 0], m[2, 1], m[2, 2], m[2, 3]
    d0, d1, d2, d3 = m[3, 0], m[3, 1], m[3, 2], m[3, 3]
    for j in range(n):
        u0, u1, u2, u3 = x0[j], x1[j], x2[j], x3[j]
        y0[j] += a0 * u0 + a1 * u1 + a2 * u2 + a3 * u3
        y1[j] += b0 * u0 + b1 * u1 + b2 * u2 + b3 * u3
        y2[j] += c0 * u0 + c1 * u1 + c2 * u2 + c3 * u3
        y3[j] += d0 * u0 + d1 * u1 + d2 * u2 + d3 * u3


@njit(cache=True, nogil=True, fastmath=_FM, inline="always")
def madd4x1(y0, y1, y2, y3, x, m, n):
    """y_r[j] += m[r] · x[j] for r < 4 and j < n: one input row into 4 rows (a 4×4 block's tail)."""
    a0, a1, a2, a3 = m[0], m[1], m[2], m[3]
    for j in range(n):
        u = x[j]
        y0[j] += a0 * u
        y1[j] += a1 * u
        y2[j] += a2 * u
        y3[j] += a3 * u


@njit(cache=True, nogil=True, fastmath=_FM, inline="always")
def madd1x4(y, x0, x1, x2, x3, m, n):
    """y[j] += Σ_s m[s] · x_s[j] for s < 4 and j < n: 4 input rows into one row."""
    a0, a1, a2, a3 = m[0], m[1], m[2], m[3]
    for j in range(n):
        y[j] += a0 * x0[j] + a1 * x1[j] + a2 * x2[j] + a3 * x3[j]


@njit(cache=True, nogil=True, fastmath=_FM)
def _conv_rows(xf, wf, rel, b, yt, c0, row, co0, nco, base0, nblk, blk, SWN):
    """yt[c0 + r, row] = the output row of channel co0 + r (r < nco ≤ 4), bias included.

    The row is b[co0 + r] + Σ_t wf[co0 + r, t] · (input row of term t): term t = (ci, kh, kw)
    reads xf from base0 + rel[t] (+ ob*SWN for the ob-th of nblk blocks of blk floats). The T
    terms are added in blocks of 4 channels x 4 terms per pass (``madd4x4``). Shared by the conv forward (yt = y) and the fused conv + ReLU + max-pool (yt = a
    scratch block of rows).
    """
    T = wf.shape[1]
    for r in range(nco):
        yr = yt[c0 + r, row]
        for j in range(nblk * blk):
            yr[j] = b[co0 + r]
    for ob in range(nblk):
        base = base0 + ob * SWN
        if nco == 4:                                           # 4 channels x 4 terms per pass
            y0, y1 = yt[c0, row, ob * blk:], yt[c0 + 1, row, ob * blk:]
            y2, y3 = yt[c0 + 2, row, ob * blk:], yt[c0 + 3, row, ob * blk:]
            t = 0
            while t + 4 <= T:
                x0, x1 = xf[base + rel[t]:], xf[base + rel[t + 1]:]
                x2, x3 = xf[base + rel[t + 2]:], xf[base + rel[t + 3]:]
                madd4x4(y0, y1, y2, y3, x0, x1, x2, x3, wf[co0:co0 + 4, t:t + 4], blk)
                t += 4
            while t < T:                                       # the last T % 4 terms
                madd4x1(y0, y1, y2, y3, xf[base + rel[t]:], wf[co0:co0 + 4, t], blk)
                t += 1
        else:                                                  # 1-3 channels: one at a time
            for r in range(nco):
                ys = yt[c0 + r, row, ob * blk:]
                co = co0 + r
                t = 0
                while t + 4 <= T:
                    x0, x1 = xf[base + rel[t]:], xf[base + rel[t + 1]:]
                    x2, x3 = xf[base + rel[t + 2]:], xf[base + rel[t + 3]:]
                    madd1x4(ys, x0, x1, x2, x3, wf[co, t:t + 4], blk)
                    t += 4
                while t < T:
                    x0, a0 = xf[base + rel[t]:], wf[co, t]
                    for j in range(blk):
                        ys[j] += a0 * x0[j]
                    t += 1


# ResNet-20's 3×3 stride-1 layers (16-64 channels): the output-stationary block below. madd4x4
# reads and writes its 4 output rows once per 4 terms, and those rows (4 × OW*N floats, 64 KiB
# at 32×32, N = 128) come from L2; here 8 output channels × one strip of STRIP floats are summed
# in a scratch block that stays in L1 across all the C*KH*KW terms and is written to y once.
# The scratch is one array with a constant row stride, so LLVM checks it against the 4 input
# rows with 4 runtime alias checks and vectorises the loop (8 separate output rows took 32
# checks, over LLVM's limit of 8: the loop ran scalar at ~6 GFLOP/s).
STRIP = 512     # floats of one output row per pass (2 KiB float32, 8 rows: 16 KiB of the 48 KiB L1)


@njit(cache=True, nogil=True, fastmath=_FM, inline="always")
def madd8x4(acc, x0, x1, x2, x3, m, n):
    """acc[r, j] += Σ_s m[r, s] · x_s[j] for r < 8, s < 4 and j < n: 32 FMAs per 4 input loads
    and 8 loads + 8 stores of the scratch block (in L1). m (8, 4): weights of 8 rows × 4 terms.
    The forward's (rows: output channels, s: terms) and grad_x's (rows: input channels, s:
    output channels) output-stationary inner loop."""
    a00, a01, a02, a03 = m[0, 0], m[0, 1], m[0, 2], m[0, 3]
    a10, a11, a12, a13 = m[1, 0], m[1, 1], m[1, 2], m[1, 3]
    a20, a21, a22, a23 = m[2, 0], m[2, 1], m[2, 2], m[2, 3]
    a30, a31, a32, a33 = m[3, 0], m[3, 1], m[3, 2], m[3, 3]
    a40, a41, a42, a43 = m[4, 0], m[4, 1], m[4, 2], m[4, 3]
    a50, a51, a52, a53 = m[5, 0], m[5, 1], m[5, 2], m[5, 3]
    a60, a61, a62, a63 = m[6, 0], m[6, 1], m[6, 2], m[6, 3]
    a70, a71, a72, a73 = m[7, 0], m[7, 1], m[7, 2], m[7, 3]
    for j in range(n):
        u0, u1, u2, u3 = x0[j], x1[j], x2[j], x3[j]
        acc[0, j] += a00 * u0 + a01 * u1 + a02 * u2 + a03 * u3
        acc[1, j] += a10 * u0 + a11 * u1 + a12 * u2 + a13 * u3
        acc[2, j] += a20 * u0 + a21 * u1 + a22 * u2 + a23 * u3
        acc[3, j] += a30 * u0 + a31 * u1 + a32 * u2 + a33 * u3
        acc[4, j] += a40 * u0 + a41 * u1 + a42 * u2 + a43 * u3
        acc[5, j] += a50 * u0 + a51 * u1 + a52 * u2 + a53 * u3
        acc[6, j] += a60 * u0 + a61 * u1 + a62 * u2 + a63 * u3
        acc[7, j] += a70 * u0 + a71 * u1 + a72 * u2 + a73 * u3


@njit(cache=True, nogil=True, fastmath=_FM, inline="always")
def madd8x3(acc, x0, x1, x2, m, n):
    """acc[r, j] += Σ_s m[r, s] · x_s[j] for r < 8, s < 3 and j < n: ``madd8x4`` for the last 3 of
    T terms (a 3-channel first layer's 27 or 147), one pass instead of 3 × 8 row passes."""
    a00, a01, a02 = m[0, 0], m[0, 1], m[0, 2]
    a10, a11, a12 = m[1, 0], m[1, 1], m[1, 2]
    a20, a21, a22 = m[2, 0], m[2, 1], m[2, 2]
    a30, a31, a32 = m[3, 0], m[3, 1], m[3, 2]
    a40, a41, a42 = m[4, 0], m[4, 1], m[4, 2]
    a50, a51, a52 = m[5, 0], m[5, 1], m[5, 2]
    a60, a61, a62 = m[6, 0], m[6, 1], m[6, 2]
    a70, a71, a72 = m[7, 0], m[7, 1], m[7, 2]
    for j in range(n):
        u0, u1, u2 = x0[j], x1[j], x2[j]
        acc[0, j] += a00 * u0 + a01 * u1 + a02 * u2
        acc[1, j] += a10 * u0 + a11 * u1 + a12 * u2
        acc[2, j] += a20 * u0 + a21 * u1 + a22 * u2
        acc[3, j] += a30 * u0 + a31 * u1 + a32 * u2
        acc[4, j] += a40 * u0 + a41 * u1 + a42 * u2
        acc[5, j] += a50 * u0 + a51 * u1 + a52 * u2
        acc[6, j] += a60 * u0 + a61 * u1 + a62 * u2
        acc[7, j] += a70 * u0 + a71 * u1 + a72 * u2


@njit(cache=True, nogil=True, fastmath=_FM)
def _conv_rows8(xf, wf, rel, b, y, row, co0, base, n_row, relu):
    """y[co0 + r, row, j] = b[co0 + r] + Σ_t wf[co0 + r, t] · xf[base + rel[t] + j] for r < 8 and
    j < n_row (one stride-1 output row of n_row = OW*N floats; relu = 1: max(·, 0), NaN kept).

    Output-stationary: per strip [s0, s0 + STRIP) of the row, the 8 channels' sums are kept in a
    scratch block (acc, in L1) while the T terms are added, 4 terms per pass (``madd8x4``) in the
    order of t, and written to y once. Each y float is summed in one fixed order (bit-identical
    across reruns and thread counts; a different rounding from the 4-channel kernel's).
    """
    T = wf.shape[1]
    acc = np.empty((8, STRIP), y.dtype)                        # constant row stride: see above
    for s0 in range(0, n_row, STRIP):
        n = min(STRIP, n_row - s0)
        xb = base + s0
        for r in range(8):                                     # acc = bias
            a = b[co0 + r]
            for j in range(n):
                acc[r, j] = a
        t = 0
        while t + 4 <= T:                                      # 8 channels × 4 terms per pass
            x0, x1 = xf[xb + rel[t]:], xf[xb + rel[t + 1]:]
            x2, x3 = xf[xb + rel[t + 2]:], xf[xb + rel[t + 3]:]
            madd8x4(acc, x0, x1, x2, x3, wf[co0:co0 + 8, t:t + 4], n)
            t += 4
        if T - t == 3:                                         # the last 3 terms in one pass
            madd8x3(acc, xf[xb + rel[t]:], xf[xb + rel[t + 1]:], xf[xb + rel[t + 2]:], wf[co0:co0 + 8, t:t + 3], n)
            t += 3
        while t < T:                                           # the last 1-2 terms
            x0 = xf[xb + rel[t]:]
            for r in range(8):
                a = wf[co0 + r, t]
                for j in range(n):
                    acc[r, j] += a * x0[j]
            t += 1
        for r in range(8):                                     # y = acc (ReLU'd), once
            yr = y[co0 + r, row, s0:]
            for j in range(n):
                v = acc[r, j]
                yr[j] = 0 if relu and v < 0 else v


@njit(cache=True, nogil=True, inline="always")
def _channel_block(q, nq, Og, CB=4):
    """(group, first channel, channels) of block q of up to CB channels (nq blocks per group of Og)."""
    grp = q // nq
    co0 = grp * Og + (q % nq) * CB
    return grp, co0, min(CB, (grp + 1) * Og - co0)


@njit(cache=True, nogil=True, inline="always")
def _forward_setup(x, w, N, OW, SW, DH, DW, G):
    """What the forward kernels derive from x (C, Hp, Wp*N) and w (C_out, Cg, KH, KW):
    Cg, Hp, Wp*N, Og, nq (blocks of 4 output channels per group), the row blocks (nblk, blk)
    (one of OW*N floats when SW == 1, else OW of N) and rel[t]: the offset in x of term
    t = (ci*KH + kh)*KW + kw, (ci*Hp + kh*DH)*WpN + kw*DW*N. x and w flattened (xf, and wf
    (C_out, T)) come from the caller as views (``_flat``): a reshape compiled here added 0.3 s
    to a cold start's first forward.
    """
    Hp, WpN = x.shape[1], x.shape[2]
    C_out, Cg, KH, KW = w.shape
    Og = C_out // G
    rel = np.empty(Cg * KH * KW, np.int64)
    for ci in range(Cg):
        for kh in range(KH):
            for kw in range(KW):
                rel[(ci * KH + kh) * KW + kw] = (ci * Hp + kh * DH) * WpN + kw * DW * N
    nblk, blk = (1, OW * N) if SW == 1 else (OW, N)
    return Cg, Hp, WpN, Og, (Og + 3) // 4, nblk, blk, rel


def _forward_body(x, xf, w, wf, b, y, N, SH, SW, DH, DW, G, relu, CB, lo, hi):
    """y[co, oh, ow, n] = b[co] + Σ_{ci,kh,kw} w[co, ci, kh, kw] x[g*Cg+ci, oh*SH+kh*DH, ow*SW+kw*DW, n].

    Equals ops.conv.Conv2d.forward (on the padded input). x (C, Hp, Wp*N) and w also come flat,
    as xf and wf (C_out, C/G*KH*KW) (``_flat``). One item = the row oh of a block of
    up to CB output channels of one group, taken as blocks of up to 4 channels whose rows are
    streamed by ``_conv_rows`` (any stride; ``_conv_rows4``). relu = 1: y = max(y, 0) on the rows
    while they are still in cache (ops.elementwise.ReLU fused in; a NaN stays NaN, as np.maximum).
    ``_forward8_body`` is the same with full blocks of 8 channels summed output-stationary
    (``_conv_rows8``, stride 1): a body of its own, so a network that never uses it never
    compiles it (cold start, issue 13).
    """
    OH = y.shape[1]
    OW = y.shape[2] // N
    Cg, Hp, WpN, Og, nq, nblk, blk, rel = _forward_setup(x, w, N, OW, SW, DH, DW, G)
    nq = (Og + CB - 1) // CB                                   # blocks of CB channels per group
    for item in prange(lo, hi):
        oh = item % OH
        grp, co0, nco = _channel_block(item // OH, nq, Og, CB)
        _conv_rows4(xf, wf, rel, b, y, oh, co0, nco, (grp * Cg * Hp + oh * SH) * WpN, nblk, blk, SW * N, relu)


def _forward8_body(x, xf, w, wf, b, y, N, SH, SW, DH, DW, G, relu, CB, lo, hi):
    """``_forward_body`` with CB = 8 and stride 1: a full block of 8 output channels is summed
    output-stationary (``_conv_rows8``), a shorter one as up to two blocks of 4."""
    OH = y.shape[1]
    OW = y.shape[2] // N
    Cg, Hp, WpN, Og, nq, nblk, blk, rel = _forward_setup(x, w, N, OW, SW, DH, DW, G)
    nq = (Og + CB - 1) // CB
    for item in prange(lo, hi):                                # row-major: the blocks of a row run
        oh = item // (G * nq)                                  # together and share its input rows in
        grp, co0, nco = _channel_block(item % (G * nq), nq, Og, CB)   # cache; threads split the rows
        base = (grp * Cg * Hp + oh * SH) * WpN
        if nco == 8 and SW == 1:
            _conv_rows8(xf, wf, rel, b, y, oh, co0, base, OW * N, relu)
        else:
            _conv_rows4(xf, wf, rel, b, y, oh, co0, nco, base, nblk, blk, SW * N, relu)


@njit(cache=True, nogil=True, fastmath=_FM)
def _conv_rows4(xf, wf, rel, b, y, oh, co0, nco, base, nblk, blk, SWN, relu):
    """Output row oh of channels co0 ... co0 + nco - 1 as blocks of up to 4 (``_conv_rows``),
    then max(., 0) on them if relu."""
    for c4 in range(co0, co0 + nco, 4):
        n4 = min(4, co0 + nco - c4)
        _conv_rows(xf, wf, rel, b, y, c4, oh, c4, n4, base, nblk, blk, SWN)
        if relu:
            for co in range(c4, c4 + n4):
                yr = y[co, oh]
                for j in range(yr.shape[0]):
                    if yr[j] < 0:
                        yr[j] = 0


@njit(cache=True, nogil=True, inline="always")
def _pool2x2_relu(rows, c, out, ar, PW, N):
    """out[pw*N + i], ar[pw*N + i] = relu of the max of the 2×2 window (rows[c, r, (2pw + s)*N + i]
    for r, s < 2) and its first offset r*2 + s: what ``max_into`` over the 4 offsets in order,
    from -inf, then the ReLU, gives (a tie keeps the earlier offset, the first NaN wins and stays),
    with the running max kept in registers. All loads index one array (rows) and the stores two,
    so LLVM vectorises the loop over i (4 max_into passes over memory ran it scalar: the pool
    took 60% of LeNet's fused conv1 forward). An ar of length 0: the offsets are not written."""
    k1, k2, k3 = ar.dtype.type(1), ar.dtype.type(2), ar.dtype.type(3)
    keep = ar.shape[0] > 0                                     # an empty ar: no offsets wanted
    for pw in range(PW):
        j0, o0 = 2 * pw * N, pw * N
        for i in range(N):
            best, a = rows[c, 0, j0 + i], ar.dtype.type(0)
            v = rows[c, 0, j0 + N + i]
            take = (v > best) | ((v != v) & (best == best))
            best, a = (v, k1) if take else (best, a)
            v = rows[c, 1, j0 + i]
            take = (v > best) | ((v != v) & (best == best))
            best, a = (v, k2) if take else (best, a)
            v = rows[c, 1, j0 + N + i]
            take = (v > best) | ((v != v) & (best == best))
            best, a = (v, k3) if take else (best, a)
            out[o0 + i] = 0 if best < 0 else best              # ReLU after the max (a NaN stays)
            if keep:
                ar[o0 + i] = a


@njit(cache=True, nogil=True, inline="always")
def _pooled_row_convs(x, xf, wf, rel, b, item, PH, PKH, nq, Og, Cg, Hp, WpN, OW, N, SH, SW, nblk, blk):
    """(ph, co0, nco, rows) of work item ``item`` of the fused forwards: pooled row ph of the block
    of nco (≤ 4) output channels from co0, and its PKH conv rows (bias included, before the
    ReLU) computed into rows (4, PKH, OW*N) by ``_conv_rows``. Items are row-major (the blocks
    of one pooled row in turn): the threads' halves then hold the same mix of full and short
    blocks (LeNet's 6 channels: a block of 4 and one of 2, which took 6.7 and 4.1 ms at batch
    1000; block-major halves gave one thread each) and a row's blocks share its input rows."""
    blocks = wf.shape[0] // Og * nq                            # per pooled row, all groups
    ph = item // blocks
    grp, co0, nco = _channel_block(item % blocks, nq, Og)
    rows = np.empty((4, PKH, OW * N), x.dtype)
    for r in range(PKH):
        oh = ph * PKH + r
        _conv_rows(xf, wf, rel, b, rows, 0, r, co0, nco, (grp * Cg * Hp + oh * SH) * WpN, nblk, blk, SW * N)
    return ph, co0, nco, rows


def _forward_pool2_body(x, xf, w, wf, b, yp, arg, N, SH, SW, DH, DW, G, OH, OW, lo, hi):
    """``_forward_pool_body`` for 2×2 windows (LeNet's), a body of its own: each window's max,
    first offset and ReLU in registers (``_pool2x2_relu``, vectorised over the batch; arg rows
    of width 0 when no backward needs the offsets: they are not written). The
    general body's max_into passes ran scalar there (60% of LeNet's conv1 fused forward), and a
    body with both paths took 0.6 s longer to compile on a cold cache."""
    PH = yp.shape[1]
    PW = yp.shape[2] // N
    Cg, Hp, WpN, Og, nq, nblk, blk, rel = _forward_setup(x, w, N, OW, SW, DH, DW, G)
    for item in prange(lo, hi):
        ph, co0, nco, rows = _pooled_row_convs(x, xf, wf, rel, b, item, PH, 2, nq, Og, Cg, Hp, WpN, OW, N, SH, SW, nblk, blk)
        for c in range(nco):
            _pool2x2_relu(rows, c, yp[co0 + c, ph], arg[co0 + c, ph], PW, N)


def _forward_pool_body(x, xf, w, wf, b, yp, arg, N, SH, SW, DH, DW, G, OH, OW, PKH, PKW, lo, hi):
    """yp[co, ph, pw, n] = max_{r<PKH, s<PKW} relu(conv(x)[co, ph*PKH + r, pw*PKW + s, n]).

    Equals ops.pool.MaxPool2d(kernel = stride = (PKH, PKW)) of ops.activation.ReLU of
    ops.conv.Conv2d; arg = the first offset r*PKW + s (row-major) holding the window's max, as
    numba_pool's kernel keeps it. One item = pooled row ph of a block of up to 4 output
    channels: its PKH conv rows are computed into a scratch block (``_conv_rows``) and pooled
    while in cache, so the conv output is never written to memory. The ReLU is applied after
    the max (max(relu(v)) = relu(max(v)), a quarter of the values): where the max is > 0 its
    first offset is the same, and where it is not the pooled value is 0 and backward's ReLU
    mask stops the gradient whatever offset arg holds (a NaN is the max and stays NaN).
    """
    PH = yp.shape[1]
    PW = yp.shape[2] // N
    Cg, Hp, WpN, Og, nq, nblk, blk, rel = _forward_setup(x, w, N, OW, SW, DH, DW, G)
    for item in prange(lo, hi):
        ph, co0, nco, rows = _pooled_row_convs(x, xf, wf, rel, b, item, PH, PKH, nq, Og, Cg, Hp, WpN, OW, N, SH, SW, nblk, blk)
        for c in range(nco):
            out, ar = yp[co0 + c, ph], arg[co0 + c, ph]
            for pw in range(PW):
                o, a = out[pw * N:(pw + 1) * N], ar[pw * N:(pw + 1) * N]
                for i in range(N):
                    o[i], a[i] = -np.inf, 0
                for r in range(PKH):
                    for s in range(PKW):
                        max_into(o, a, rows[c, r, (pw * PKW + s) * N:], r * PKW + s)
                for i in range(N):                             # ReLU after the max: the same
                    if o[i] < 0:                               # value, and the same first max
                        o[i] = 0                               # wherever it is > 0 (a NaN stays)


def _relu_mask_body(go, y, g, gb, lo, hi):
    """g[c, r, j] = go[c, r, j] * [y[c, r, j] > 0] (ops.elementwise.ReLU's backward) and, on the
    way, gb[c] = Σ_{r,j} g[c, r, j] (ops.conv.Conv2d's grad_b) as _grad_b_body sums it: per row
    r in g's dtype (LLVM vectorises it, so float32's last bits can differ from that kernel's),
    the rows' sums added in float64. g, go, y (C, OH, OW*N); one channel per item. Saves the
    separate grad_b pass's read of g (8 MB a layer in ResNet-20's first stage at batch 128)."""
    for c in prange(lo, hi):
        s = 0.0
        for r in range(g.shape[1]):
            gr, gor, yr = g[c, r], go[c, r], y[c, r]
            t = g.dtype.type(0)
            for j in range(gr.shape[0]):
                v = gor[j] * (yr[j] > 0)
                gr[j] = v
                t += v
            s += t
        gb[c] = s


def _unpool_relu_body(gp, yp, arg, g, gb, N, PKH, PKW, lo, hi):
    """g[co, oh, ow, n] = gp[co, ph, pw, n]·[yp[co, ph, pw, n] > 0] at the offset arg keeps, else 0;
    gb[co] = Σ g[co] (the bias gradient, summed in float64 in the order of ph).

    Equals ops.pool.MaxPool2d's backward (each window's gradient to its first maximum) followed
    by ops.activation.ReLU's (grad·[y > 0]): the pooled value yp is the ReLU output at that
    maximum, so one mask per window is the ReLU mask of the one pixel that gets a gradient (a
    NaN or inf gradient times a 0 mask gives NaN, as the reference's product does). Conv rows
    and columns no window covers (the floor of an odd size) get 0. One item = one channel co.
    """
    OH, OWN = g.shape[1], g.shape[2]
    PH, PWN = gp.shape[1], gp.shape[2]
    PW = PWN // N
    zero = g.dtype.type(0)
    for co in prange(lo, hi):
        s = 0.0
        gm = np.empty(PWN, g.dtype)                            # a pooled row's gradient, ReLU-masked
        for ph in range(PH):
            gr, yr, ar = gp[co, ph], yp[co, ph], arg[co, ph]
            t = zero
            for j in range(PWN):
                v = gr[j]
                gm[j] = v if yr[j] > 0 else v * zero           # grad·[y > 0], NaN for inf·0 too
                t += gm[j]
            s += t
            for r in range(PKH):
                out = g[co, ph * PKH + r]
                for pw in range(PW):
                    a, v = ar[pw * N:(pw + 1) * N], gm[pw * N:(pw + 1) * N]
                    for c in range(PKW):
                        k, o = arg.dtype.type(r * PKW + c), out[(pw * PKW + c) * N:]
                        for i in range(N):                     # select: SIMD over the batch
                            o[i] = v[i] if a[i] == k else zero
                for j in range(PW * PKW * N, OWN):             # columns past the last window
                    out[j] = zero
        for oh in range(PH * PKH, OH):                         # rows past the last window
            for j in range(OWN):
                g[co, oh, j] = zero
        gb[co] = s


def _grad_x_body(g, w, gx, N, PH, PW, SH, SW, DH, DW, G, CB, lo, hi):
    """gx[c, ih, iw, n] = Σ_{co,kh,kw: ih+PH = oh*SH+kh*DH, iw+PW = ow*SW+kw*DW} w[co, ci, kh, kw] g[co, oh, ow, n].

    Equals ops.conv.Conv2d's grad_x (col2im of wᵀ g, un-padded) — a transposed convolution,
    written as a gather: one item = input row ih of a block of up to CB input channels of one
    group, which collects every (co, kh, kw) term that reads it, so no two threads ever write
    the same row and no col2im buffer exists. Padding is handled by clipping the ow range, so
    the result is unpadded (C, H, W*N). Blocks of up to 4 channels (``_grad_x_rows4``: per
    (kh, kw), 4 input channels x 4 output channels per pass, 16 FMAs per 8 loads + 4 stores).
    ``_grad_x8_body`` is the same with full blocks of 8 output-stationary: a body of its own, so
    that a network that never uses it (LeNet-5) never compiles it (cold start, issue 13).
    """
    H = gx.shape[1]
    Cg = w.shape[1]
    nq = (Cg + CB - 1) // CB                                   # blocks of CB input channels per group
    for item in prange(lo, hi):                                # row-major, as _pooled_row_convs
        q, ih = item % (G * nq), item // (G * nq)
        grp, ci0 = q // nq, (q % nq) * CB
        end = ci0 + min(CB, Cg - ci0)
        for c4 in range(ci0, end, 4):
            _grad_x_rows4(g, w, gx, N, PH, PW, SH, SW, DH, DW, grp, c4, min(4, end - c4), ih)


def _grad_x8_body(g, w, gx, N, PH, PW, SH, SW, DH, DW, G, CB, lo, hi):
    """``_grad_x_body`` with CB = 8 and stride 1: a full block of 8 input channels is summed
    output-stationary in an L1 scratch (``_grad_x_rows8``); a shorter tail block as blocks of 4."""
    H = gx.shape[1]
    Cg = w.shape[1]
    nq = (Cg + CB - 1) // CB
    for item in prange(lo, hi):                                # row-major, as _forward8_body
        q, ih = item % (G * nq), item // (G * nq)
        grp, ci0 = q // nq, (q % nq) * CB
        nci = min(CB, Cg - ci0)
        if nci == 8 and SH == 1 and SW == 1:
            _grad_x_rows8(g, w, gx, N, PH, PW, DH, DW, grp, ci0, ih)
        else:
            for c4 in range(ci0, ci0 + nci, 4):
                _grad_x_rows4(g, w, gx, N, PH, PW, SH, SW, DH, DW, grp, c4, min(4, ci0 + nci - c4), ih)


@njit(cache=True, nogil=True, fastmath=_FM)
def _grad_x_rows4(g, w, gx, N, PH, PW, SH, SW, DH, DW, grp, ci0, nci, ih):
    """gx row ih of the nci ≤ 4 input channels grp*Cg + ci0 ... of group grp (``_grad_x_body``'s
    formula): per (kh, kw), 4 input x 4 output channels per pass (``madd4x4``), streaming rows."""
    C_out, Cg, KH, KW = w.shape
    W = gx.shape[2] // N
    OH = g.shape[1]
    OW = g.shape[2] // N
    Og = C_out // (gx.shape[0] // Cg)
    c0 = grp * Cg + ci0
    for c in range(c0, c0 + nci):
        gr = gx[c, ih]
        for j in range(W * N):
            gr[j] = 0
    for kh in range(KH):
        t = ih + PH - kh * DH                                  # = oh*SH for the row that reads ih
        if t < 0 or t % SH != 0 or t // SH >= OH:
            continue
        oh = t // SH
        for kw in range(KW):
            s = kw * DW - PW                                   # iw = ow*SW + s
            ow0 = max(0, (SW - 1 - s) // SW)                   # first ow with iw >= 0
            ow1 = min(OW, (W - 1 - s) // SW + 1)               # past the last ow with iw < W
            if ow1 <= ow0:
                continue
            nblk, blk = (1, (ow1 - ow0) * N) if SW == 1 else (ow1 - ow0, N)
            for ob in range(nblk):                             # SW == 1: iw*N + n = ow*N + n + s*N
                xo, go = ((ow0 + ob) * SW + s) * N, (ow0 + ob) * N
                co = grp * Og
                if nci == 4:
                    x0, x1 = gx[c0, ih, xo:], gx[c0 + 1, ih, xo:]
                    x2, x3 = gx[c0 + 2, ih, xo:], gx[c0 + 3, ih, xo:]
                    while co + 4 <= (grp + 1) * Og:            # 4 input x 4 output channels
                        g0, g1 = g[co, oh, go:], g[co + 1, oh, go:]
                        g2, g3 = g[co + 2, oh, go:], g[co + 3, oh, go:]
                        madd4x4(x0, x1, x2, x3, g0, g1, g2, g3, w[co:co + 4, ci0:ci0 + 4, kh, kw].T, blk)
                        co += 4
                    while co < (grp + 1) * Og:                 # the last Og % 4 output channels
                        madd4x1(x0, x1, x2, x3, g[co, oh, go:], w[co, ci0:ci0 + 4, kh, kw], blk)
                        co += 1
                else:                                          # 1-3 input channels: one at a time
                    for ci in range(ci0, ci0 + nci):
                        xs = gx[grp * Cg + ci, ih, xo:]
                        co = grp * Og
                        while co + 4 <= (grp + 1) * Og:
                            g0, g1 = g[co, oh, go:], g[co + 1, oh, go:]
                            g2, g3 = g[co + 2, oh, go:], g[co + 3, oh, go:]
                            madd1x4(xs, g0, g1, g2, g3, w[co:co + 4, ci, kh, kw], blk)
                            co += 4
                        while co < (grp + 1) * Og:
                            g0, a0 = g[co, oh, go:], w[co, ci, kh, kw]
                            for j in range(blk):
                                xs[j] += a0 * g0[j]
                            co += 1


@njit(cache=True, nogil=True, fastmath=_FM)
def _grad_x_rows8(g, w, gx, N, PH, PW, DH, DW, grp, ci0, ih):
    """gx row ih of the 8 input channels grp*Cg + ci0 + r (r < 8) of group grp, stride 1:
    gx[c, ih, j] = Σ_{kh,kw,co} w[co, ci0 + r, kh, kw] g[co, ih + PH − kh*DH, j − (kw*DW − PW)*N]
    over the (kh, kw) whose output row and columns exist (``_grad_x_body``'s formula, SH = SW = 1).

    Output-stationary, as ``_conv_rows8``: per strip [s0, s0 + STRIP) of the row, the 8 channels'
    sums stay in a scratch block (L1) while every (kh, kw, co) term is added, 8 input channels x
    4 output channels per pass (``madd8x4``), in the order (kh, kw, co); written to gx once.
    """
    C_out, Cg, KH, KW = w.shape
    W = gx.shape[2] // N
    OH = g.shape[1]
    OW = g.shape[2] // N
    Og = C_out // (gx.shape[0] // Cg)
    c0 = grp * Cg + ci0
    zero = gx.dtype.type(0)
    acc = np.empty((8, STRIP), gx.dtype)                       # constant row stride: see STRIP
    for s0 in range(0, W * N, STRIP):
        n = min(STRIP, W * N - s0)
        for r in range(8):
            for j in range(n):
                acc[r, j] = zero
        for kh in range(KH):
            oh = ih + PH - kh * DH                             # the output row that reads ih
            if oh < 0 or oh >= OH:
                continue
            for kw in range(KW):
                s = kw * DW - PW                               # iw = ow + s
                ja = max(s0, max(0, -s) * N + s * N)           # gx columns of valid ow (0 <= ow < OW,
                je = min(s0 + n, min(OW, W - s) * N + s * N)   # 0 <= iw < W), within the strip
                if je <= ja:
                    continue
                o, go, m = ja - s0, ja - s * N, je - ja        # acc offset, g offset, length
                co = grp * Og
                while co + 4 <= (grp + 1) * Og:                # 8 input x 4 output channels
                    g0, g1 = g[co, oh, go:], g[co + 1, oh, go:]
                    g2, g3 = g[co + 2, oh, go:], g[co + 3, oh, go:]
                    # acc[:, o:], a view: the offset o added inside the index would keep LLVM
                    # from vectorising (numba's negative-index fix-up of o + j)
                    madd8x4(acc[:, o:], g0, g1, g2, g3, w[co:co + 4, ci0:ci0 + 8, kh, kw].T, m)
                    co += 4
                while co < (grp + 1) * Og:                     # the last Og % 4 output channels
                    gr = g[co, oh, go:]
                    for r in range(8):
                        a = w[co, ci0 + r, kh, kw]
                        for j in range(m):
                            acc[r, o + j] += a * gr[j]
                    co += 1
        for r in range(8):
            xr = gx[c0 + r, ih, s0:]
            for j in range(n):
                xr[j] = acc[r, j]


@njit(cache=True, nogil=True, inline="always")
def _grad_w_setup(g, x, gw, N, SW, DH, DW):
    """(rel, nblk, blk) for ``_grad_w_block4``: rel[kh*KW + kw] = the offset of term (kh, kw) in
    a row of x; an output row is nblk contiguous blocks of blk floats. (x flat, xf, comes from
    the caller: a reshape compiled here cost 0.2 s of a cold start, as ``_forward_setup``'s.)"""
    KH, KW = gw.shape[2], gw.shape[3]
    WpN, OW = x.shape[2], g.shape[2] // N
    rel = np.empty(KH * KW, np.int64)
    for kh in range(KH):
        for kw in range(KW):
            rel[kh * KW + kw] = kh * DH * WpN + kw * DW * N
    nblk, blk = (1, OW * N) if SW == 1 else (OW, N)
    return rel, nblk, blk


@njit(cache=True, nogil=True, inline="always")
def _zeros3(a, b, c):
    """np.zeros((a, b, c), np.float64) as np.empty and a loop: numba's np.zeros took 0.45 s more
    to compile on a cold cache (the first kernel of a process to use it: LeNet-5's grad_w)."""
    z = np.empty((a, b, c), np.float64)
    for i in range(a):
        for j in range(b):
            for k in range(c):
                z[i, j, k] = 0.0
    return z


def _grad_w_body(g, x, xf, gw, N, SH, SW, DH, DW, G, CB, band, lo, hi):
    """gw[co, ci, kh, kw] = Σ_{oh,ow,n} g[co, oh, ow, n] x[g*Cg+ci, oh*SH+kh*DH, ow*SW+kw*DW, n].

    Equals ops.conv.Conv2d's grad_w (Σ g colsᵀ). x (C, Hp, Wp*N) is also passed flat, as xf
    (``conv2d_grad_w`` makes the view). One item = a block of up to CB output channels
    co and one input channel ci, taken as blocks of up to 4 (``_grad_w_block4``: 4 channels × 4
    kernel offsets per pass). ``_grad_w8_body`` is the same with a full block of 8 channels,
    KW = 3 and stride 1 on ``_grad_w_taps8`` (8 channels × the 3 kw offsets of one kh per pass):
    a body of its own, so a network that never uses it (LeNet-5) never compiles it (issue 13).
    Each row's dots are added to float64 sums in the order of oh, in bands of ``band`` output
    rows (every item adds a band's rows before the next band: a block's gradient rows are read
    from memory once per band for all input channels). The dots are SIMD reductions (fastmath
    reassoc: lanes summed in an order fixed at compile time, so still deterministic).
    """
    C_out, Cg, KH, KW = gw.shape
    Og, Hp, WpN, OH = C_out // G, x.shape[1], x.shape[2], g.shape[1]
    nq = (Og + CB - 1) // CB                                   # blocks of CB channels per group
    rel, nblk, blk = _grad_w_setup(g, x, gw, N, SW, DH, DW)
    acc = _zeros3(max(0, hi - lo), CB, KH * KW)
    for oh0 in range(0, OH, band):                             # bands of rows, as _grad_w8_body
        for item in prange(lo, hi):
            q, ci = item // Cg, item % Cg
            grp, co0, nco = _channel_block(q, nq, Og, CB)
            for c4 in range(co0, co0 + nco, 4):
                _grad_w_block4(g, xf, rel, acc[item - lo, c4 - co0:], N, SH, SW, Hp, WpN, nblk, blk, c4,
                               min(4, co0 + nco - c4), grp * Cg + ci, oh0, min(OH, oh0 + band))
    for item in prange(lo, hi):
        q, ci = item // Cg, item % Cg
        grp, co0, nco = _channel_block(q, nq, Og, CB)
        _put_block(acc[item - lo], gw, co0, nco, ci)


def _grad_w8_body(g, x, xf, gw, N, SH, SW, DH, DW, G, CB, band, lo, hi):
    """``_grad_w_body`` with ``_grad_w_taps8`` for full blocks of 8 channels (KW = 3, stride 1:
    each pass takes the 3 kw offsets of one kh), in bands of ``band`` output rows: per
    band every item of [lo, hi) adds its rows' dots, so a block's output-gradient rows are read
    from memory once per band for all input channels, not once per input channel (the item
    order ci-fastest kept them in cache only when a whole block fitted: 4 MB at deck 001's
    32→64 layer). The sums still run over oh in order: the same bits as one pass per item."""
    C_out, Cg, KH, KW = gw.shape
    Og, Hp, WpN, OH = C_out // G, x.shape[1], x.shape[2], g.shape[1]
    nq = (Og + CB - 1) // CB                                   # blocks of CB channels per group
    rel, nblk, blk = _grad_w_setup(g, x, gw, N, SW, DH, DW)
    fast = KW == 3 and SH == 1 and SW == 1
    acc = _zeros3(max(0, hi - lo), CB, KH * KW)
    for oh0 in range(0, OH, band):
        for item in prange(lo, hi):
            q, ci = item // Cg, item % Cg
            grp, co0, nco = _channel_block(q, nq, Og, CB)
            c = grp * Cg + ci
            if nco == 8 and fast:
                _grad_w_taps8(g, xf, rel, acc[item - lo], c * Hp * WpN, WpN, co0, oh0, min(OH, oh0 + band))
                continue
            for c4 in range(co0, co0 + nco, 4):
                _grad_w_block4(g, xf, rel, acc[item - lo, c4 - co0:], N, SH, SW, Hp, WpN, nblk, blk, c4,
                               min(4, co0 + nco - c4), c, oh0, min(OH, oh0 + band))
    for item in prange(lo, hi):
        q, ci = item // Cg, item % Cg
        grp, co0, nco = _channel_block(q, nq, Og, CB)
        _put_block(acc[item - lo], gw, co0, nco, ci)


GRAD_W_BAND_BYTES = 1 << 20     # a band's new input rows (all channels) + one block's gradient rows


def grad_w_band(OH, x_row_floats, g_row_floats, itemsize):
    """Output rows per band of the banded grad_w (``_grad_w8_body``, ``phase_conv``): about
    ``GRAD_W_BAND_BYTES`` of new input rows (x_row_floats per output row, all input channels)
    and 8 channels' gradient rows; at least 1, at most OH. Measured: RESULTS.md, ninth session."""
    per_row = (x_row_floats + 8 * g_row_floats) * itemsize
    return max(1, min(OH, GRAD_W_BAND_BYTES // max(1, per_row)))


@njit(cache=True, nogil=True, inline="always")
def _put_block(acc, gw, co0, nco, ci):
    """gw[co0 + r, ci, t // KW, t % KW] = acc[r, t] for r < nco (the banded grad_w's sums)."""
    KW = gw.shape[3]
    for r in range(nco):
        for t in range(acc.shape[1]):
            gw[co0 + r, ci, t // KW, t % KW] = acc[r, t]


@njit(cache=True, nogil=True, fastmath=_FM)
def _grad_w_block4(g, xf, rel, acc, N, SH, SW, Hp, WpN, nblk, blk, co0, nco, c, oh0, oh1):
    """acc[r, t] += the output rows [oh0, oh1)'s part of gw[co0 + r, ci, t // KW, t % KW] for
    r < nco ≤ 4 (``_grad_w_body``'s formula; acc (≥ 4, T) float64, written out by
    ``_put_block``): for each output row, 4 x 4 dot products of output-gradient rows (4
    channels) with shifted input rows of channel c (4 kernel offsets, rel) in one pass, 16 FMAs
    per 8 loads."""
    T = rel.shape[0]
    zero = xf.dtype.type(0)
    for oh in range(oh0, oh1):
        for ob in range(nblk):
            base = (c * Hp + oh * SH) * WpN + ob * SW * N
            g0 = g[co0, oh, ob * blk:]                      # rows past nco repeat co0 (unused)
            g1 = g[co0 + min(1, nco - 1), oh, ob * blk:]
            g2 = g[co0 + min(2, nco - 1), oh, ob * blk:]
            g3 = g[co0 + min(3, nco - 1), oh, ob * blk:]
            t = 0
            while t + 4 <= T:
                x0, x1 = xf[base + rel[t]:], xf[base + rel[t + 1]:]
                x2, x3 = xf[base + rel[t + 2]:], xf[base + rel[t + 3]:]
                s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
                s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
                for j in range(blk):
                    u0, u1, u2, u3 = x0[j], x1[j], x2[j], x3[j]
                    v0, v1, v2, v3 = g0[j], g1[j], g2[j], g3[j]
                    s00 += v0 * u0
                    s01 += v0 * u1
                    s02 += v0 * u2
                    s03 += v0 * u3
                    s10 += v1 * u0
                    s11 += v1 * u1
                    s12 += v1 * u2
                    s13 += v1 * u3
                    s20 += v2 * u0
                    s21 += v2 * u1
                    s22 += v2 * u2
                    s23 += v2 * u3
                    s30 += v3 * u0
                    s31 += v3 * u1
                    s32 += v3 * u2
                    s33 += v3 * u3
                acc[0, t] += s00
                acc[0, t + 1] += s01
                acc[0, t + 2] += s02
                acc[0, t + 3] += s03
                acc[1, t] += s10
                acc[1, t + 1] += s11
                acc[1, t + 2] += s12
                acc[1, t + 3] += s13
                acc[2, t] += s20
                acc[2, t + 1] += s21
                acc[2, t + 2] += s22
                acc[2, t + 3] += s23
                acc[3, t] += s30
                acc[3, t + 1] += s31
                acc[3, t + 2] += s32
                acc[3, t + 3] += s33
                t += 4
            while t < T:                                   # the last T % 4 offsets
                x0 = xf[base + rel[t]:]
                s00 = s10 = s20 = s30 = zero
                for j in range(blk):
                    u0 = x0[j]
                    s00 += g0[j] * u0
                    s10 += g1[j] * u0
                    s20 += g2[j] * u0
                    s30 += g3[j] * u0
                acc[0, t] += s00
                acc[1, t] += s10
                acc[2, t] += s20
                acc[3, t] += s30
                t += 1


@njit(cache=True, nogil=True, fastmath=_FM)
def _grad_w_taps8(g, xf, rel, acc, base0, row_stride, co0, oh0, oh1):
    """acc[r, t] += Σ_{oh0 ≤ oh < oh1, j} g[co0 + r, oh, j] · xf[base0 + oh·row_stride + rel[t] + j]
    for r < 8 and every tap t (rel: the taps' offsets in one input channel's rows; acc (8, T)
    float64, written out by ``_put_block``).

    Per output row, 8 output-gradient rows × 3 taps' input rows in one pass (24 dot products per
    11 loads: 24 sums + 3 input rows + 1 gradient row fit the 32 vector registers; the 4 × 4
    block took 8 loads per 16 and a ninth offset alone, 4 per 5), the last T mod 3 taps one at
    a time; each dot is added to a float64 sum in the order of oh. Used for 3×3 kernels at
    stride 1 (each pass: the 3 kw offsets of one kh) and by ``phase_conv`` (a strided conv's
    taps, which lie in four phase arrays). At stride 1 with other widths it lost to ``_grad_w_block4`` on deck 001's 7×7 first layer (40.0 against
    35.0 ms, 1 thread, same process; RESULTS.md ninth session), so it is not used there.
    """
    T = rel.shape[0]
    OWN = g.shape[2]
    zero = xf.dtype.type(0)
    for oh in range(oh0, oh1):
        g0, g1, g2, g3 = g[co0, oh], g[co0 + 1, oh], g[co0 + 2, oh], g[co0 + 3, oh]
        g4, g5, g6, g7 = g[co0 + 4, oh], g[co0 + 5, oh], g[co0 + 6, oh], g[co0 + 7, oh]
        base = base0 + oh * row_stride
        t = 0
        while t < T:
            k = min(3, T - t)                                  # taps in this pass (the tail: 1-2)
            x0 = xf[base + rel[t]:]                            # slices: see madd8x4's caller
            x1 = xf[base + rel[t + min(1, k - 1)]:]            # k < 3: repeats tap t (its sums unused)
            x2 = xf[base + rel[t + min(2, k - 1)]:]
            s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = s30 = s31 = s32 = zero
            s40 = s41 = s42 = s50 = s51 = s52 = s60 = s61 = s62 = s70 = s71 = s72 = zero
            for j in range(OWN):
                u0, u1, u2 = x0[j], x1[j], x2[j]
                v = g0[j]
                s00 += v * u0
                s01 += v * u1
                s02 += v * u2
                v = g1[j]
                s10 += v * u0
                s11 += v * u1
                s12 += v * u2
                v = g2[j]
                s20 += v * u0
                s21 += v * u1
                s22 += v * u2
                v = g3[j]
                s30 += v * u0
                s31 += v * u1
                s32 += v * u2
                v = g4[j]
                s40 += v * u0
                s41 += v * u1
                s42 += v * u2
                v = g5[j]
                s50 += v * u0
                s51 += v * u1
                s52 += v * u2
                v = g6[j]
                s60 += v * u0
                s61 += v * u1
                s62 += v * u2
                v = g7[j]
                s70 += v * u0
                s71 += v * u1
                s72 += v * u2
            acc[0, t] += s00
            acc[1, t] += s10
            acc[2, t] += s20
            acc[3, t] += s30
            acc[4, t] += s40
            acc[5, t] += s50
            acc[6, t] += s60
            acc[7, t] += s70
            if k > 1:
                acc[0, t + 1] += s01
                acc[1, t + 1] += s11
                acc[2, t + 1] += s21
                acc[3, t + 1] += s31
                acc[4, t + 1] += s41
                acc[5, t + 1] += s51
                acc[6, t + 1] += s61
                acc[7, t + 1] += s71
            if k > 2:
                acc[0, t + 2] += s02
                acc[1, t + 2] += s12
                acc[2, t + 2] += s22
                acc[3, t + 2] += s32
                acc[4, t + 2] += s42
                acc[5, t + 2] += s52
                acc[6, t + 2] += s62
                acc[7, t + 2] += s72
            t += k


def _grad_b_body(g, gb, lo, hi):
    """gb[co] = Σ_{oh,ow,n} g[co, oh, ow, n]  (ops.conv.Conv2d's grad_b), summed in float64."""
    for co in prange(lo, hi):
        s = 0.0
        for oh in range(g.shape[1]):
            gor = g[co, oh]
            t = g.dtype.type(0)
            for j in range(gor.shape[0]):
                t += gor[j]
            s += t
        gb[co] = s


_forward = kernel_pair(_forward_body, fastmath=_FM)
_forward8 = kernel_pair(_forward8_body, fastmath=_FM)
_grad_x = kernel_pair(_grad_x_body, fastmath=_FM)
_grad_x8 = kernel_pair(_grad_x8_body, fastmath=_FM)
_grad_w = kernel_pair(_grad_w_body, fastmath=_FM)
_grad_w8 = kernel_pair(_grad_w8_body, fastmath=_FM)
_grad_b = kernel_pair(_grad_b_body, fastmath=_FM)
_relu_mask = kernel_pair(_relu_mask_body, fastmath=_FM)
_forward_pool = kernel_pair(_forward_pool_body, fastmath=_FM)
_forward_pool2 = kernel_pair(_forward_pool2_body, fastmath=_FM)
_unpool_relu = kernel_pair(_unpool_relu_body)


# ------------------------------------------------------------------------------- plain arrays


def conv2d_forward(xc, w, b, stride, dilation, groups, relu=False, block=None):
    """y (C_out, OH, OW, N) from padded xc (C, Hp, Wp, N), w (C_out, C/G, KH, KW), b (C_out,) or None.

    relu: return max(y, 0) instead (the fused conv + bias + ReLU). block: output channels per
    work item, 8 (stride 1, the output-stationary ``_conv_rows8``) or 4 (``_conv_rows``, the
    kernel of before); default ``forward_block``. Same dtype as xc (float32 or float64).
    """
    (SH, SW), (DH, DW) = stride, dilation
    C, Hp, Wp, N = xc.shape
    C_out, _, KH, KW = w.shape
    OH, OW = out_size(Hp, KH, SH, 0, DH), out_size(Wp, KW, SW, 0, DW)
    y = buffers.empty((C_out, OH, OW, N), xc.dtype)
    bias = np.zeros(C_out, xc.dtype) if b is None else np.ascontiguousarray(b, xc.dtype)
    CB = forward_block(C_out // groups, SW) if block is None else int(block)
    if CB not in (4, 8):
        raise ValueError(f"conv2d_forward: block must be 4 or 8, got {block!r}")
    blocks = groups * ((C_out // groups + CB - 1) // CB)      # of up to CB output channels
    run(_forward8 if CB == 8 and SW == 1 else _forward, blocks * OH, *_flat(xc, w), bias,
        y.reshape(C_out, OH, OW * N), N, SH, SW, DH, DW, groups, int(relu), CB, work=y.size * w[0].size)
    return y


def _flat(xc, w):
    """(x, xf, w, wf): padded xc (C, Hp, Wp, N) as x (C, Hp, Wp*N) and flat, xf (C*Hp*Wp*N,);
    the weights (C_out, C/G, KH, KW) C-contiguous and as wf (C_out, C/G*KH*KW): the arrays the
    forward bodies index, the flat ones views made here (see ``_forward_setup``)."""
    C, Hp, Wp, N = xc.shape
    x, w = xc.reshape(C, Hp, Wp * N), np.ascontiguousarray(w)
    return x, x.reshape(-1), w, w.reshape(w.shape[0], -1)


def forward_block(Og, SW):
    """Output channels per forward work item: 8 (output-stationary) for stride-1 rows when the
    group has ≥ 8 output channels, else 4. Measured: RESULTS.md 2026-12-01 (conv 8-channel block)."""
    return 8 if SW == 1 and Og >= 8 else 4


def conv2d_grad_x(g, w, H, W, padding, stride, dilation, groups, block=None, out=None):
    """grad_x (C, H, W, N) from g (C_out, OH, OW, N) contiguous and w (C_out, C/G, KH, KW).

    block: input channels per work item, 8 (stride 1: output-stationary ``_grad_x_rows8``) or 4
    (``_grad_x_rows4``, the kernel of before); default ``forward_block(C/G, stride)``. out: a
    C-contiguous (C, H, W, N) array of g's dtype to write grad_x into (returned), else a new one."""
    (PH, PW), (SH, SW), (DH, DW) = padding, stride, dilation
    C_out, OH, OW, N = g.shape
    C = w.shape[1] * groups
    gx = buffers.empty((C, H, W, N), g.dtype) if out is None else out
    CB = forward_block(C // groups, max(SH, SW)) if block is None else int(block)
    if CB not in (4, 8):
        raise ValueError(f"conv2d_grad_x: block must be 4 or 8, got {block!r}")
    blocks = groups * ((C // groups + CB - 1) // CB)          # of up to CB input channels
    kernel = _grad_x8 if CB == 8 and SH == SW == 1 else _grad_x   # LeNet-5 never compiles _grad_x8
    run(kernel, blocks * H, g.reshape(C_out, OH, OW * N), np.ascontiguousarray(w), gx.reshape(C, H, W * N),
        N, PH, PW, SH, SW, DH, DW, groups, CB, work=g.size * w[0].size)
    return gx


def conv2d_grad_w(g, xc, w_shape, stride, dilation, groups, block=None):
    """grad_w (C_out, C/G, KH, KW) from g (C_out, OH, OW, N) and padded xc (C, Hp, Wp, N).

    block: output channels per work item, 8 (KW = 3, stride 1: ``_grad_w_taps8``) or 4
    (``_grad_w_block4``, the kernel of before); default ``forward_block(C_out/G, stride)``."""
    (SH, SW), (DH, DW) = stride, dilation
    C_out, OH, OW, N = g.shape
    C, Hp, Wp, _ = xc.shape
    gw = np.empty(w_shape, g.dtype)
    CB = forward_block(C_out // groups, max(SH, SW)) if block is None else int(block)
    if CB not in (4, 8):
        raise ValueError(f"conv2d_grad_w: block must be 4 or 8, got {block!r}")
    blocks = groups * ((C_out // groups + CB - 1) // CB)      # of up to CB output channels
    band = grad_w_band(OH, w_shape[1] * SH * Wp * N, OW * N, g.itemsize)   # SH new input rows per channel
    kernel = _grad_w8 if CB == 8 and w_shape[3] == 3 and SH == SW == 1 else _grad_w   # LeNet-5: not _grad_w8
    x = xc.reshape(C, Hp, Wp * N)
    run(kernel, blocks * w_shape[1], g.reshape(C_out, OH, OW * N), x, x.reshape(-1), gw,
        N, SH, SW, DH, DW, groups, CB, band, work=g.size * gw[0].size)
    return gw


def relu_mask(grad_out_t, y):
    """(g, grad_b): g = grad_out_t * [y > 0] as a new contiguous array, and grad_b (C,) = Σ g
    over all but the channel axis, summed as ``conv2d_grad_b(g)`` does (same order; float32 may
    differ in the last bits). grad_out_t and y (C, OH, OW, N) alike, y contiguous."""
    C, OH = y.shape[:2]
    g = buffers.empty(y.shape, y.dtype)
    gb = np.empty(C, y.dtype)
    go = chwn(grad_out_t, y.dtype)
    run(_relu_mask, C, go.reshape(C, OH, -1), y.reshape(C, OH, -1), g.reshape(C, OH, -1), gb, work=y.size)
    return g, gb


def conv2d_grad_b(g):
    """grad_b (C_out,) from g (C_out, OH, OW, N)."""
    C_out, OH, OW, N = g.shape
    gb = np.empty(C_out, g.dtype)
    run(_grad_b, C_out, g.reshape(C_out, OH, OW * N), gb, work=g.size)
    return gb


def conv2d_relu_pool_forward(xc, w, b, stride, dilation, groups, pool, offsets=True):
    """(yp (C_out, PH, PW, N), arg uint8 alike, (OH, OW)): max-pool (kernel = stride = pool) of
    relu(conv2d) from padded xc (C, Hp, Wp, N); PH = OH // pool[0], PW = OW // pool[1].
    offsets=False (no backward will run): for 2×2 windows arg is None and the kernel does not
    write the offsets (LeNet's inference at batch 1000: conv1 5%, conv2 1-2% faster)."""
    (SH, SW), (DH, DW), (PKH, PKW) = stride, dilation, pool
    C, Hp, Wp, N = xc.shape
    C_out, _, KH, KW = w.shape
    OH, OW = out_size(Hp, KH, SH, 0, DH), out_size(Wp, KW, SW, 0, DW)
    PH, PW = OH // PKH, OW // PKW
    yp = buffers.empty((C_out, PH, PW, N), xc.dtype)
    skip = not offsets and (PKH, PKW) == (2, 2)               # _pool2x2_relu: an empty arg row
    arg = np.empty((C_out, PH, 0 if skip else PW, N), np.uint8)
    bias = np.zeros(C_out, xc.dtype) if b is None else np.ascontiguousarray(b, xc.dtype)
    blocks = groups * ((C_out // groups + 3) // 4)             # of up to 4 output channels
    args = (*_flat(xc, w), bias, yp.reshape(C_out, PH, PW * N),
            arg.reshape(C_out, PH, arg.shape[2] * N), N, SH, SW, DH, DW, groups, OH, OW)
    work = C_out * PH * PKH * OW * N * w[0].size
    if (PKH, PKW) == (2, 2):                                   # its own body: see _forward_pool2_body
        run(_forward_pool2, blocks * PH, *args, work=work)
    else:
        run(_forward_pool, blocks * PH, *args, PKH, PKW, work=work)
    return yp, None if skip else arg, (OH, OW)


def unpool_relu(grad_out_t, yp, arg, OH, OW, pool):
    """(g (C_out, OH, OW, N), grad_b (C_out,)): the conv output's gradient under a fused ReLU and
    max-pool, from grad_out_t (C_out, PH, PW, N) (any strides) and the forward's yp and arg."""
    C_out, PH, PW, N = yp.shape
    gp = chwn(grad_out_t, yp.dtype)
    g = buffers.empty((C_out, OH, OW, N), yp.dtype)
    gb = np.empty(C_out, yp.dtype)
    run(_unpool_relu, C_out, gp.reshape(C_out, PH, PW * N), yp.reshape(C_out, PH, PW * N),
        arg.reshape(C_out, PH, PW * N), g.reshape(C_out, OH, OW * N), gb, N, pool[0], pool[1], work=g.size)
    return g, gb


def covers(x, w, b=None):
    """Whether the compiled kernels handle these arrays (else the NumPy path runs)."""
    return (AVAILABLE and x.dtype == w.dtype and x.dtype in (np.float32, np.float64)
            and (b is None or b.dtype == x.dtype) and x.size > 0 and w.size > 0)


# ------------------------------------------------------------------------------- the Function

def _conv_grads(ctx, g, xc, w, grad_b=None):
    """(grad_x, grad_w, grad_b) of a conv from g (C_out, OH, OW, N), each only if needed;
    grad_b: already computed (by a fused pass), else summed here. grad_x is an (N, C, H, W) view."""
    (N, C, H, W), need = ctx.x_shape, ctx.needs_input_grad
    stride, padding, dilation, groups = ctx.stride, ctx.padding, ctx.dilation, ctx.groups
    if not (ctx.has_bias and need[2]):
        grad_b = None
    elif grad_b is None:
        grad_b = conv2d_grad_b(g)
    grad_w = conv2d_grad_w(g, xc, w.shape, stride, dilation, groups) if need[1] else None
    grad_x = None
    if need[0]:
        gx = conv2d_grad_x(g, w, H, W, padding, stride, dilation, groups)     # (C, H, W, N)
        grad_x = gx.transpose(3, 0, 1, 2)                      # (N, C, H, W) view
    return grad_x, grad_w, grad_b


def _keep(ctx, x, stride, padding, dilation, groups, b):
    """Record on ctx what the conv gradients need besides the saved arrays."""
    ctx.x_shape, ctx.stride, ctx.padding, ctx.dilation = x.shape, stride, padding, dilation
    ctx.groups, ctx.has_bias = groups, b is not None


class Conv2d(_RefConv2d):
    """Conv2d with compiled direct-convolution kernels; equals ``ember.ops.conv.Conv2d``.

    Same forward signature as the reference op: (x, w, b=None, stride, padding, dilation,
    groups), x (N, C, H, W), w (C_out, C/G, KH, KW) -> y (N, C_out, OH, OW), returned as a view
    of a (C_out, OH, OW, N) array, as the NumPy path does (ReLU and pooling keep that order).
    Any stride, padding, dilation and groups; dtypes other than float32/float64 (or mixed), and
    everything when numba is missing, go to the NumPy path (ember.kernels.conv.Conv2d where it
    exists, else ops.conv.Conv2d). A subclass of the reference op, as ember.kernels' kernels are.
    Backward: grad_b, grad_w (dot products), grad_x (gather axpys), each only if needed.
    """
    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        if not covers(x, w, b):
            ctx.fallback = _FallbackConv2d
            return ctx.fallback.forward(ctx, x, w, b, stride, padding, dilation, groups)
        ctx.fallback = None
        xc = to_chwn(x, *padding)                              # (C, Hp, Wp, N)
        y = conv2d_forward(xc, w, b, stride, dilation, groups)  # (C_out, OH, OW, N)
        ctx.save_for_backward(xc, w)
        _keep(ctx, x, stride, padding, dilation, groups, b)
        return y.transpose(3, 0, 1, 2)                         # (N, C_out, OH, OW) view

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.fallback is not None:
            return ctx.fallback.backward(ctx, grad_out)
        xc, w = ctx.saved_tensors
        g = chwn(grad_out.transpose(1, 2, 3, 0), xc.dtype)    # (C_out, OH, OW, N)
        return _conv_grads(ctx, g, xc, w)


class Conv2dReLU(Function):
    """relu(conv2d(x, w, b)) in one op; equals ``ops.elementwise.ReLU`` applied to ``ops.conv.Conv2d``.

    Same signature as Conv2d. Forward: the ReLU runs on each output row inside the conv kernel,
    while the row is in cache (no separate pass over the activation, no second array).
    Backward: grad_out * [y > 0] is written straight into the channel-major buffer the conv
    gradients read (the copy Conv2d.backward makes anyway), then Conv2d's three gradients.
    A layer pair Conv2d → ReLU can be run as this op (e.g. by a dispatch that fuses the two).
    """
    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        if not covers(x, w, b):                                # reference conv, then ReLU
            ctx.fallback = _FallbackConv2d
            y = np.maximum(_FallbackConv2d.forward(ctx, x, w, b, stride, padding, dilation, groups), 0)
            ctx.relu_out = y
            return y
        ctx.fallback = None
        xc = to_chwn(x, *padding)                              # (C, Hp, Wp, N)
        y = conv2d_forward(xc, w, b, stride, dilation, groups, relu=True)   # (C_out, OH, OW, N)
        ctx.save_for_backward(xc, w, y)
        _keep(ctx, x, stride, padding, dilation, groups, b)
        return y.transpose(3, 0, 1, 2)                         # (N, C_out, OH, OW) view

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.fallback is not None:
            return ctx.fallback.backward(ctx, grad_out * (ctx.relu_out > 0))
        xc, w, y = ctx.saved_tensors
        g, gb = relu_mask(grad_out.transpose(1, 2, 3, 0), y)   # (C_out, OH, OW, N), grad_b
        return _conv_grads(ctx, g, xc, w, grad_b=gb)


class Conv2dReLUMaxPool2d(Function):
    """max_pool2d(relu(conv2d(x, w, b)), pool) in one op; equals ``ops.pool.MaxPool2d`` (kernel =
    stride = pool, no padding) of ``ops.activation.ReLU`` of ``ops.conv.Conv2d``.

    Forward (x, w, b=None, stride, padding, dilation, groups, pool=(PKH, PKW)): x (N, C, H, W),
    w (C_out, C/G, KH, KW), b (C_out,) -> (N, C_out, OH // PKH, OW // PKW), a view of a
    (C_out, PH, PW, N) array (the layout the next conv reads for free). float32/float64.
    Why it is faster than the three ops: the conv rows of each pooled row are computed into a
    scratch block and ReLU'd and pooled while in cache, so the conv output (the largest array
    of LeNet's step) is never written, read back or kept for backward; backward builds the
    conv output's gradient in one pass (``unpool_relu``: the pool's routing and the ReLU's
    mask, with the bias gradient summed on the way), then the conv's grad_w and grad_x. One op
    instead of three: 2 kernel calls instead of 5 (+2 NumPy ReLU passes) per conv layer.
    Saved for backward: the padded input, w, and the pooled output with its argmax offsets
    (uint8), a quarter of the conv output's size (PyTorch keeps the conv output and int64
    indices). Run by ``ember.kernels.fusion`` for an ``nn.Sequential``'s Conv2d → ReLU →
    MaxPool2d; arrays the kernels do not cover run the three ops one after the other.
    Raises: nothing of its own (the callers validate shapes as F.conv2d/F.max_pool2d do).
    """
    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, pool=(2, 2)):
        if not covers(x, w, b):                                # the three ops, chained
            ctx.chain = _chain(ctx.needs_input_grad)
            (conv, c1), (relu, c2), (pool_op, c3) = ctx.chain
            y = conv.forward(c1, x, w, b, stride, padding, dilation, groups)
            return pool_op.forward(c3, relu.forward(c2, y), pool, pool, (0, 0))
        ctx.chain = None
        xc = to_chwn(x, *padding)                              # (C, Hp, Wp, N)
        backward = is_grad_enabled() and any(ctx.needs_input_grad)   # as Function.apply records
        yp, arg, ctx.conv_size = conv2d_relu_pool_forward(xc, w, b, stride, dilation, groups, pool, backward)
        ctx.save_for_backward(xc, w, yp, arg)
        _keep(ctx, x, stride, padding, dilation, groups, b)
        ctx.pool = pool
        return yp.transpose(3, 0, 1, 2)                        # (N, C_out, PH, PW) view

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.chain is not None:
            (conv, c1), (relu, c2), (pool_op, c3) = ctx.chain
            g = _only(pool_op.backward(c3, grad_out))
            return conv.backward(c1, _only(relu.backward(c2, g)))
        xc, w, yp, arg = ctx.saved_tensors
        g, gb = unpool_relu(grad_out.transpose(1, 2, 3, 0), yp, arg, *ctx.conv_size, ctx.pool)
        return _conv_grads(ctx, g, xc, w, grad_b=gb)


def _chain(needs):
    """[(op, its Context)] of conv → ReLU → max-pool, for the arrays the fused kernels do not
    cover: the conv's NumPy fast path, the reference ReLU and max-pool."""
    from ..autograd import Context
    from ..ops.activation import ReLU
    from .numba_pool import _RefMaxPool2d
    return [(_FallbackConv2d, Context(_FallbackConv2d, None, needs)), (ReLU, Context(ReLU, None, (True,))),
            (_RefMaxPool2d, Context(_RefMaxPool2d, None, (True,)))]


def _only(grads):
    """The one input gradient of a one-input op's backward (a 1-tuple or the array itself)."""
    return grads[0] if isinstance(grads, tuple) else grads
