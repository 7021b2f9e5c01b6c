"""Conv2d as im2col + GEMM in cache-sized chunks: numba nogil im2col/col2im loops, one BLAS sgemm per chunk.

Notation as ember/ops/conv.py: N batch, C / C_out channels, KH, KW, SH, SW, PH, PW, DH, DW,
OH, OW output size, K = C*KH*KW (the length of a receptive field). Layout "CHWN", the batch
innermost, as ``kernels.conv`` and ``kernels.numba_conv``: the input is held padded as
xc (C, Hp, Wp, N), the output as y (C_out, OH, OW, N); the flattened output pixel q = oh*OW + ow
owns the N columns q*N .. q*N+N-1 of y viewed as (C_out, OH*OW*N).

The output pixels are cut into chunks of Q consecutive pixels, Q fixed by the shapes alone
(the chunk's columns take ~``CHUNK_BYTES``, so the columns, the GEMM's packed panels and the
output chunk stay in the L2 cache). Per chunk [q0, q1):
    cols  = im2col(xc)[:, q0*N:q1*N]      (K, Q*N)     _im2col: a numba loop, copies of OW*N floats
    y     = w (C_out, K) @ cols + b                     one sgemm (np.matmul; BLAS releases the GIL)
    gw   += g (C_out, Q*N) @ colsᵀ                      grad_w: one sgemm per chunk, chunk order
    gcols = wᵀ (K, C_out) @ g (C_out, Q*N)             grad_x: one sgemm, then
    gx   += col2im(gcols)                               _col2im: the adjoint of _im2col (adds)
(1×1 kernels with stride 1 and no padding need no im2col: cols is xc itself.)

Threads (``ember.kernels.threads``): each thread takes a contiguous run of whole chunks and its
own columns buffer; the chunks are the same whatever the thread count and every BLAS call runs
on one thread (``threads.matmul`` keeps OpenBLAS at 1 thread while ember's workers run), so
ember's pool and OpenBLAS's threads are never used at once. Determinism: every output element
is one GEMM's dot product; grad_w sums one partial per fixed *group* of chunks, then the groups
in order; grad_x splits the padded *input rows* between threads: each thread runs the chunks
that touch its rows (a boundary chunk's GEMM twice) and its col2im writes only its own rows,
in chunk order. So results are bit-identical across reruns and thread counts (tested).

Source: the im2col + GEMM formulation of deck 002 ("convolution via matrix multiply: im2col"),
as Caffe runs it (Jia et al. 2014; Chellapilla et al. 2006); here the columns are built one
chunk at a time instead of for the whole batch. The reference is ``ember.ops.conv.Conv2d``.
Which path runs for which shape is ``choose`` (its docstring holds the measured table): this
module's GEMM, numba_conv's direct convolution, ``phase_conv`` (strided convolutions as
stride-1 sums over the input's phases) or ``winograd`` (3×3 stride-1 layers, F(2×2, 3×3)). ``Conv2d`` and ``Conv2dReLU`` (the pair
``ember.kernels.fusion`` runs as one op) are the Functions that dispatch between them.

Compiled lazily: numba compiles ``_im2col``/``_col2im`` (or loads them from its disk cache) on
the first call of this path; LeNet's shapes never take it, so ``ember train`` never compiles it.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..ops import conv as _ref
from ..ops.conv import out_size
from . import buffers, phase_conv, winograd
from ._jit import AVAILABLE, njit
from .conv import chwn
from .threads import matmul, num_parts, parallel_for, split_range

CHUNK_BYTES = 1 << 19       # columns of one chunk (float32: 128k floats); 1 and 2 MiB measured no faster
                            # (CIFAR 16→16 and deck 32→64 forward, 1-2 threads, load ~7: within the noise)
GROUP_CHUNKS = 8            # grad_w: chunks summed into one partial (the unit of work of a thread)


@njit(nogil=True, cache=True)
def _im2col(x, cols, N, OW, KH, KW, SH, SW, DH, DW, q0, q1):
    """cols[(c*KH + kh)*KW + kw, (q - q0)*N + n] = x[c, oh*SH + kh*DH, (ow*SW + kw*DW)*N + n], q = oh*OW + ow.

    x: padded input (C, Hp, Wp*N); cols: (C*KH*KW, >= (q1-q0)*N). With SW == 1 the pixels of
    one output row are one contiguous run of the input row, copied in one loop.
    """
    C = x.shape[0]
    for c in range(C):
        for kh in range(KH):
            for kw in range(KW):
                row = cols[(c * KH + kh) * KW + kw]
                q = q0
                while q < q1:
                    oh, ow = q // OW, q % OW
                    e = min(q1, (oh + 1) * OW)                 # end of this output row in the chunk
                    xr = x[c, oh * SH + kh * DH]
                    d = (q - q0) * N
                    if SW == 1:
                        s = (ow + kw * DW) * N
                        for j in range((e - q) * N):
                            row[d + j] = xr[s + j]
                    else:
                        for p in range(e - q):
                            s = ((ow + p) * SW + kw * DW) * N
                            for n in range(N):
                                row[d + p * N + n] = xr[s + n]
                    q = e


@njit(nogil=True, cache=True)
def _col2im(gcols, gx, N, OW, KH, KW, SH, SW, DH, DW, q0, q1, r0, r1):
    """The adjoint of _im2col, restricted to input rows [r0, r1): gx[c, h, ...] += gcols[...].

    gx: the padded input gradient (C, Hp, Wp*N); rows outside [r0, r1) are not touched, so
    threads that own disjoint row ranges never write the same float. Adds in (c, kh, kw, q)
    order: a fixed order for every element.
    """
    C = gx.shape[0]
    for c in range(C):
        for kh in range(KH):
            for kw in range(KW):
                row = gcols[(c * KH + kh) * KW + kw]
                q = q0
                while q < q1:
                    oh, ow = q // OW, q % OW
                    e = min(q1, (oh + 1) * OW)
                    h = oh * SH + kh * DH
                    if r0 <= h < r1:
                        xr = gx[c, h]
                        d = (q - q0) * N
                        if SW == 1:
                            s = (ow + kw * DW) * N
                            for j in range((e - q) * N):
                                xr[s + j] += row[d + j]
                        else:
                            for p in range(e - q):
                                s = ((ow + p) * SW + kw * DW) * N
                                for n in range(N):
                                    xr[s + n] += row[d + p * N + n]
                    q = e


def _chunks(P, K, N, itemsize):
    """[(q0, q1)]: the output pixels [0, P) in runs whose columns (K × run·N) take ~CHUNK_BYTES."""
    Q = max(1, CHUNK_BYTES // max(1, K * N * itemsize))
    return [(q, min(P, q + Q)) for q in range(0, P, Q)]


def _direct(KH, KW, stride, padding, dilation):
    """1×1, stride 1, no padding: the columns are the input itself (no im2col)."""
    return KH == KW == 1 and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)


def _run(fn, items, work):
    """parallel_for over contiguous runs of ``items`` (one per thread, if the work is worth it)."""
    parts = min(num_parts(work), len(items))
    return parallel_for(fn, [items[a:b] for a, b in split_range(len(items), parts)])


def forward(xc, w, b, stride=(1, 1), dilation=(1, 1)):
    """y (C_out, OH, OW, N) = conv(xc, w) + b, from the padded input xc (C, Hp, Wp, N) (C-contiguous).

    w (C_out, C, KH, KW), b (C_out,) or None; dtypes float32/float64 (all alike). Groups = 1.
    """
    (SH, SW), (DH, DW) = stride, dilation
    C, Hp, Wp, N = xc.shape
    C_out, _, KH, KW = w.shape
    OH, OW = out_size(Hp, KH, SH, 0, DH), out_size(Wp, KW, SW, 0, DW)
    K, P = C * KH * KW, OH * OW
    y = buffers.empty((C_out, OH, OW, N), xc.dtype)
    y2, wm = y.reshape(C_out, P * N), np.ascontiguousarray(w).reshape(C_out, K)
    x3 = xc.reshape(C, Hp, Wp * N)
    direct = _direct(KH, KW, stride, (Hp - OH, Wp - OW), dilation)

    def run(chunks):
        cols = None if direct or not chunks else np.empty((K, (chunks[0][1] - chunks[0][0]) * N), xc.dtype)
        for q0, q1 in chunks:
            cs = slice(q0 * N, q1 * N)
            if direct:
                c = xc.reshape(C, P * N)[:, cs]
            else:
                c = cols[:, :(q1 - q0) * N]
                _im2col(x3, c, N, OW, KH, KW, SH, SW, DH, DW, q0, q1)
            matmul(wm, c, out=y2[:, cs])
            if b is not None:
                y2[:, cs] += b[:, None]
    _run(run, _chunks(P, K, N, xc.itemsize), K * P * N)
    return y


def grad_w(g, xc, w_shape, stride=(1, 1), dilation=(1, 1)):
    """grad_w (C_out, C, KH, KW) = Σ_{oh,ow,n} g ⊗ windows(xc), g (C_out, OH, OW, N) C-contiguous."""
    (SH, SW), (DH, DW) = stride, dilation
    C, Hp, Wp, N = xc.shape
    C_out, OH, OW, _ = g.shape
    _, _, KH, KW = w_shape
    K, P = C * KH * KW, OH * OW
    g2, x3 = g.reshape(C_out, P * N), xc.reshape(C, Hp, Wp * N)
    direct = _direct(KH, KW, stride, (Hp - OH, Wp - OW), dilation)
    chunks = _chunks(P, K, N, xc.itemsize)
    groups = [chunks[i:i + GROUP_CHUNKS] for i in range(0, len(chunks), GROUP_CHUNKS)]

    def run(my_groups):
        cols = None if direct else np.empty((K, (chunks[0][1] - chunks[0][0]) * N), xc.dtype)
        sums = []
        for grp in my_groups:
            acc = np.zeros((C_out, K), g.dtype)
            for q0, q1 in grp:
                cs = slice(q0 * N, q1 * N)
                if direct:
                    c = xc.reshape(C, P * N)[:, cs]
                else:
                    c = cols[:, :(q1 - q0) * N]
                    _im2col(x3, c, N, OW, KH, KW, SH, SW, DH, DW, q0, q1)
                acc += matmul(g2[:, cs], c.T)
            sums.append(acc)
        return sums
    gw = np.zeros((C_out, K), g.dtype)
    for part in _run(run, groups, K * P * N):                  # the groups' partials, in order
        for s in part:
            gw += s
    return gw.reshape(w_shape)


def grad_x(g, w, Hp, Wp, stride=(1, 1), dilation=(1, 1)):
    """The padded input gradient (C, Hp, Wp, N) = col2im(wᵀ g), g (C_out, OH, OW, N) C-contiguous."""
    (SH, SW), (DH, DW) = stride, dilation
    C_out, OH, OW, N = g.shape
    _, C, KH, KW = w.shape
    K, P = C * KH * KW, OH * OW
    g2, wt = g.reshape(C_out, P * N), np.ascontiguousarray(np.ascontiguousarray(w).reshape(C_out, K).T)
    if _direct(KH, KW, stride, (Hp - OH, Wp - OW), dilation):
        gx = buffers.empty((C, Hp, Wp, N), g.dtype)
        gx2 = gx.reshape(C, P * N)

        def run_direct(chunks):
            for q0, q1 in chunks:
                matmul(wt, g2[:, q0 * N:q1 * N], out=gx2[:, q0 * N:q1 * N])
        _run(run_direct, _chunks(P, C_out, N, g.itemsize), K * P * N)
        return gx
    gx = buffers.zeros((C, Hp, Wp, N), g.dtype)
    gx3 = gx.reshape(C, Hp, Wp * N)
    chunks = _chunks(P, K, N, g.itemsize)
    parts = num_parts(K * P * N)

    def run(rows):                                             # the chunks that touch input rows [r0, r1)
        r0, r1 = rows
        gcols = np.empty((K, (chunks[0][1] - chunks[0][0]) * N), g.dtype)
        for q0, q1 in chunks:
            lo, hi = (q0 // OW) * SH, ((q1 - 1) // OW) * SH + (KH - 1) * DH   # input rows it touches
            if hi < r0 or lo >= r1:
                continue
            c = gcols[:, :(q1 - q0) * N]
            matmul(wt, g2[:, q0 * N:q1 * N], out=c)
            _col2im(c, gx3, N, OW, KH, KW, SH, SW, DH, DW, q0, q1, r0, r1)
    parallel_for(run, split_range(Hp, parts))
    return gx


def covers(x, w, b, stride, padding, dilation, groups):
    """Whether this path handles the call: numba present, groups = 1, float32/float64 alike, N > 0."""
    return (AVAILABLE and groups == 1 and x.dtype == w.dtype and x.dtype in (np.float32, np.float64)
            and (b is None or b.dtype == x.dtype) and x.size > 0 and w.size > 0)


def choose(x_shape, w_shape, stride, padding, dilation, which):
    """'gemm' (this module), 'direct' (numba_conv's direct convolution), 'phase'
    (``phase_conv``, strided convolutions) or 'winograd' (``winograd``, 3×3 stride 1) for pass ``which``
    ('forward', 'grad_x' or 'grad_w') of a groups = 1 conv call on x (N, C, H, W), w (C_out, C, KH, KW).

    The direct kernel's innermost loop runs over one contiguous stretch of an output row: OW*N
    floats with stride 1, but only N floats with a larger stride (each output pixel reads its own
    input pixel); and a 1×1 kernel gives it one term per pass instead of blocks of 4. There the
    GEMM wins. Elsewhere the direct kernel wins: OpenBLAS's sgemm with 16-32 output channels runs
    at 16-28 GFLOP/s here (it packs the K×pixels columns for only 16 FMAs each), the direct
    kernel at ~58 GFLOP/s. Measured (benchmarks/conv_layers.py and a per-round A/B of the two
    paths, 1 thread, float32, ember alone in the process, 2-core Xeon (Emerald Rapids) shared with
    other jobs at load 5-7: median ms of 5-7 alternating rounds, and the median per-round ratio):

        layer (N, C→C_out, K, stride, H×W)      pass    direct   gemm   gemm/direct
        deck  8,  3→16, 7×7, s1, 256×256        fwd       60.3   211.4   3.15
                                                grad_w    77.3   238.7   3.22
        deck  8, 16→32, 3×3, s2, 250×250        fwd      396.5   154.0   0.39  gemm
                                                grad_x   615.5   193.1   0.32  gemm
                                                grad_w   480.3   185.7   0.38  gemm
        deck  8, 32→64, 3×3, s1, 125×125        fwd      230.8   259.9   1.10
                                                grad_x   255.2   252.8   1.00
                                                grad_w   296.1   358.5   1.18
        deck  8, 64→64, 1×1, s1, 125×125        fwd      104.7    60.8   0.55  gemm
                                                grad_x    90.0    37.5   0.38  gemm
                                                grad_w   281.2    59.7   0.22  gemm
        cifar 128, 3→16, 3×3, s1, 32×32         fwd        7.7    16.2   2.11
        cifar 128, 16→16, 3×3, s1, 32×32        fwd       17.4    39.5   2.43
                                                grad_x    19.0    48.7   2.62
                                                grad_w    24.6    59.1   2.41
        cifar 128, 16→32, 3×3, s2, 32×32        fwd       15.3    16.4   1.08
                                                grad_x    14.8    17.3   1.15
                                                grad_w    14.0    20.5   1.38
        cifar 128, 32→32, 3×3, s1, 16×16        fwd/gx/gw 10.5/15.1/13.1  18.3/24.9/28.3  1.56/1.58/2.17
        cifar 128, 32→64, 3×3, s2, 16×16        fwd       10.9     9.6   0.86  gemm
                                                grad_x    10.8     8.2   0.76  gemm
                                                grad_w    11.1    10.1   0.86  gemm
        cifar 128, 64→64, 3×3, s1, 8×8          fwd/gx/gw 12.8/13.0/13.3  14.5/15.8/20.5  1.12/1.19/1.56

    In a whole training step (ember bench's networks, ember and PyTorch alternating in one
    process, 2 threads each, 5 rounds, load 8-9): the deck-001 network 1.90 s with this choice vs
    2.99 s with the direct kernel for every layer (0.64×); the CIFAR-style network 2.02 vs 2.55 s
    (the same choice: only its 32→64 stride-2 layer takes the GEMM), and 4.69 s with the GEMM for
    every layer. (PyTorch's step under that load: 1.98 s and 5.95 s; on a quiet machine 0.21 s
    and 0.17 s, so these loaded figures say nothing about the ratio to PyTorch.) With one thread
    each (load 10-12, where PyTorch is not slowed by its threads' waits; medians of 5 rounds,
    ``benchmarks/conv_layers.py --ab-steps direct,choose --threads 1``): deck-001 direct 4.11 s,
    this choice 2.11 s, PyTorch 1.30 s (ratios 2.59 and 1.71); CIFAR-style 2.85 s, 2.86 s and
    1.90 s (1.47 and 1.51): the CIFAR-style network is not helped, its 3×3 stride-1 layers stay
    on the direct kernel.

    2026-12-01: numba_conv's forward and grad_x take 8-channel output-stationary blocks at
    stride 1 (its docstring); per-round ratios new/old direct at the CIFAR 3×3 stride-1 shapes
    (``benchmarks/conv_layers.py --ab-block``, 1 thread, load ~6, 7 rounds): forward 0.79 (16→16),
    0.92 (32→32), 0.85 (64→64), 0.91 (3→16); grad_x 0.65, 0.95, 0.57; grad_w (8 channels × 3 kw
    offsets per pass, a second run) 0.87, 0.97, 0.95. The GEMM lost there before, so the choice
    is unchanged.

    So: 'gemm' for 1×1 kernels, and for strided convolutions when the batch is small (N < 32:
    runs of N floats) or the output has ≥ 64 channels (the GEMM is efficient there); 'direct'
    otherwise, which keeps LeNet's shapes (5×5, stride 1) on numba_conv as before. The same
    answer for all three passes (``which`` is there for a rule that differs per pass).

    2026-12-01 (ninth session): strided convolutions without dilation take 'phase'
    (``ember.kernels.phase_conv``: stride-1 sums over the input's SH·SW phases, so the inner loop
    is a run of OW·N floats again). Per pass, wall ms, 1 thread, the other jobs stopped, medians
    of 5 (phase includes building the phases; gemm / phase / PyTorch):

        deck  8, 16→32, 3×3, s2, 250×250    fwd 68.7 / 35.9+7.2 / 19.0   grad_x 66.6 / 41.7 / 116.3
                                            grad_w 84.6 / 28.0+7.2 / 24.8
        cifar 128, 16→32, 3×3, s2, 32×32    fwd 11.5 / 6.0+0.9 / 4.3     grad_x 14.0 / 8.8 / 12.3
                                            grad_w 14.5 / 6.8+0.9 / 6.0
        cifar 128, 32→64, 3×3, s2, 16×16    fwd 7.4 / 5.2+0.5 / 3.8      grad_x 10.4 / 8.0 / 8.1
                                            grad_w 9.1 / 6.7+0.5 / 5.0

    (the direct kernel at the CIFAR 16→32 shape: 12.2 / 9.7 / 8.6). The rules above for strided
    calls now apply only with dilation > 1.

    2026-12-02 (fifteenth session): 3×3 stride-1 convolutions with ≥ 8 input and output channels
    take 'winograd' (``ember.kernels.winograd``, F(2×2, 3×3): 2.25× fewer multiply-adds). Per
    pass, float32, N = 128, median of 7 alternating calls, new/old ratio (2 threads; AMD EPYC,
    AVX2; the direct forward includes its padded copy, which Winograd does not make):

        cifar 16→16 32×32   fwd 0.61   grad_x 0.68   grad_w 0.39
        cifar 32→32 16×16   fwd 0.58   grad_x 0.64   grad_w 0.40
        cifar 64→64  8×8    fwd 0.59   grad_x 0.71   grad_w 0.45
        cifar  3→16 32×32   fwd 1.10   grad_x 2.03   grad_w 0.79   (so: ≥ 8 channels)
    """
    N = x_shape[0]
    C_out, _, KH, KW = w_shape
    if KH * KW == 1:
        return "gemm"
    if winograd.covers(w_shape, stride, padding, dilation):
        return "winograd"
    if max(stride) > 1 and tuple(dilation) == (1, 1):
        return "phase"
    if max(stride) > 1 and (N < 32 or C_out >= 64):
        return "gemm"
    return "direct"


class Conv2d(_ref.Conv2d):
    """Conv2d that picks, per call and per pass, im2col + GEMM (this module), numba_conv's direct
    convolution, phase_conv's strided one or winograd's F(2×2, 3×3) (``choose``).

    Equals ``ember.ops.conv.Conv2d`` (tested to 1e-10 in float64, 1e-5 in float32, and against
    torch): x (N, C_in, H, W), w (C_out, C_in/G, KH, KW), b (C_out,) or None -> y (N, C_out,
    H_out, W_out), H_out = ⌊(H + 2P − D(K − 1) − 1)/S⌋ + 1, returned as a view of a
    (C_out, H_out, W_out, N) array. The paths work on the same arrays (the input in CHWN order,
    padded or split into phases, the output gradient as (C_out, H_out, W_out, N)), so the
    forward, grad_x and grad_w of one call can each take the faster one (``choose``, from the
    shapes alone). Groups other than 1, other dtypes, N = 0 and a missing numba go to
    numba_conv.Conv2d, which hands them on to the NumPy path. Raises what the reference raises (shape mismatches).
    Memory: it keeps the input as given (usually the previous ReLU's output, which autograd
    keeps anyway), not its padded CHWN copy, and rebuilds that copy in backward for grad_w:
    saving the copy made a CIFAR-style step's peak 2.08× PyTorch's (one 9.5 MB copy per layer).
    """
    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        # saves x and w, not xc: its padded copy is rebuilt in backward (memory)
        return _forward_op(ctx, x, w, b, stride, padding, dilation, groups, relu=False)

    @staticmethod
    def backward(ctx, grad_out):
        return _backward_op(ctx, grad_out)


class Conv2dReLU(Function):
    """relu(conv2d(x, w, b)) in one op, on the path ``choose`` picks; equals ``ops.activation.ReLU``
    of ``ops.conv.Conv2d`` (tested to 1e-10 in float64 and against torch).

    Same signature, shapes and dtypes as ``Conv2d`` (x (N, C_in, H, W) -> (N, C_out, H_out,
    W_out), a view of a (C_out, H_out, W_out, N) array). Forward: the direct and phase kernels
    apply max(·, 0) to each output row while it is in cache (the GEMM path in one pass after
    its GEMMs), so there is no separate ReLU pass and no second activation array. Backward:
    grad_out · [y > 0] is written straight into the channel-major buffer the conv gradients read
    (``numba_conv.relu_mask``: the copy Conv2d.backward makes anyway), then Conv2d's gradients.
    Run by ``ember.kernels.fusion`` for an ``nn.Sequential``'s Conv2d → ReLU. Calls this path
    does not cover (groups > 1, other dtypes, N = 0) run numba_conv.Conv2dReLU. Saves x, w and
    the output y (which the next layer keeps anyway). Raises what the reference conv raises.
    """
    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        return _forward_op(ctx, x, w, b, stride, padding, dilation, groups, relu=True)

    @staticmethod
    def backward(ctx, grad_out):
        return _backward_op(ctx, grad_out)


def _forward_op(ctx, x, w, b, stride, padding, dilation, groups, relu):
    """Conv2d's (relu False) or Conv2dReLU's forward: numba_conv's op of the same name for calls
    this path does not cover (``ctx.other``, whose backward then runs), else the path ``choose``
    picks; saves x, w (and the ReLU'd output y) and what ``_grads_any`` needs. (N, C_out, OH, OW) view."""
    from . import numba_conv as nc
    if not covers(x, w, b, stride, padding, dilation, groups):
        ctx.other = nc.Conv2dReLU if relu else nc.Conv2d
        return ctx.other.forward(ctx, x, w, b, stride, padding, dilation, groups)
    ctx.other = None
    y = _forward_any(x, w, b, stride, padding, dilation, relu=relu)
    ctx.save_for_backward(*((x, w, y) if relu else (x, w)))
    ctx.x_shape, ctx.stride, ctx.padding, ctx.dilation = x.shape, stride, padding, dilation
    ctx.has_bias = b is not None
    return y.transpose(3, 0, 1, 2)                             # (N, C_out, OH, OW) view


def _backward_op(ctx, grad_out):
    """Conv2d's or Conv2dReLU's backward (which: whether a ReLU'd output y was saved): the
    covering op's backward for calls ``_forward_op`` handed on, else g (C_out, OH, OW, N) =
    grad_out in channel-major order (times [y > 0] for the ReLU, ``numba_conv.relu_mask``) and
    ``_grads_any``."""
    if ctx.other is not None:
        return ctx.other.backward(ctx, grad_out)
    from . import numba_conv as nc
    x, w, *y = ctx.saved_tensors
    if y:                                                      # the mask pass sums grad_b too
        g, gb = nc.relu_mask(grad_out.transpose(1, 2, 3, 0), y[0])
        return _grads_any(ctx, g, x, w, grad_b=gb)
    g = chwn(grad_out.transpose(1, 2, 3, 0), x.dtype)
    return _grads_any(ctx, g, x, w)


def _forward_any(x, w, b, stride, padding, dilation, relu):
    """y (C_out, OH, OW, N) of a covered call on the path ``choose`` picks (ReLU'd if relu)."""
    from . import numba_conv as nc
    from .conv import _to_chwn
    path = choose(x.shape, w.shape, stride, padding, dilation, "forward")
    if path == "winograd":
        return winograd.forward(x, w, b, padding, relu=relu)
    if path == "phase":
        out_hw = [out_size(x.shape[2 + i], w.shape[2 + i], stride[i], padding[i]) for i in (0, 1)]
        return phase_conv.forward(phase_conv.phases(x, padding, stride), w, b, stride, out_hw, relu=relu)
    if path == "direct":
        return nc.conv2d_forward(_to_chwn(x, *padding), w, b, stride, dilation, 1, relu=relu)
    y = forward(_to_chwn(x, *padding), w, b, stride, dilation)
    if relu:
        np.maximum(y, 0, out=y)
    return y


def _grads_any(ctx, g, x, w, grad_b=None):
    """(grad_x (N, C, H, W) view, grad_w, grad_b), each only if needed, from g (C_out, OH, OW, N)
    C-contiguous, on the paths ``choose`` picks per pass; grad_b: already summed (by the ReLU
    mask's pass), else summed here."""
    from . import numba_conv as nc
    from .conv import _to_chwn
    stride, padding, dilation, need = ctx.stride, ctx.padding, ctx.dilation, ctx.needs_input_grad
    (PH, PW), (H, W) = padding, ctx.x_shape[2:]
    if not (ctx.has_bias and need[2]):
        grad_b = None
    elif grad_b is None:
        grad_b = nc.conv2d_grad_b(g)
    grad_w_ = None
    if need[1]:
        path = choose(ctx.x_shape, w.shape, stride, padding, dilation, "grad_w")
        if path == "winograd":
            grad_w_ = winograd.grad_w(g, x, padding)
        elif path == "phase":
            xs = phase_conv.phases(x, padding, stride)         # rebuilt, as xc below (memory)
            grad_w_ = phase_conv.grad_w(g, xs, w.shape, stride)
            del xs
        else:
            xc = _to_chwn(x, PH, PW)                           # (C, Hp, Wp, N): free if unpadded CHWN
            if path == "gemm":
                grad_w_ = grad_w(g, xc, w.shape, stride, dilation)
            else:
                grad_w_ = nc.conv2d_grad_w(g, xc, w.shape, stride, dilation, 1)
            del xc                                             # before grad_x's buffer exists
    grad_x_ = None
    if need[0]:
        path = choose(ctx.x_shape, w.shape, stride, padding, dilation, "grad_x")
        if path == "winograd":
            gx = winograd.grad_x(g, w, padding)                              # (C, H, W, N)
        elif path == "phase":
            gx = phase_conv.grad_x(g, w, (H, W), padding, stride)            # (C, H, W, N)
        elif path == "gemm":
            gx = grad_x(g, w, H + 2 * PH, W + 2 * PW, stride, dilation)      # (C, Hp, Wp, N)
            gx = gx[:, PH:PH + H, PW:PW + W]
        else:
            gx = nc.conv2d_grad_x(g, w, H, W, padding, stride, dilation, 1)  # (C, H, W, N)
        grad_x_ = gx.transpose(3, 0, 1, 2)                     # (N, C, H, W) view
    return grad_x_, grad_w_, grad_b
