"""3×3 stride-1 convolution by Winograd's minimal filtering F(2×2, 3×3): forward, grad_x and grad_w.

Source: Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016), §4: each
2×2 tile of output pixels of a 3×3 correlation is

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A          d: the tile's 4×4 input patch, g: the 3×3 filter

    Bᵀ = [1  0 −1  0]      G = [ 1    0    0 ]      Aᵀ = [1  1  1  0]
         [0  1  1  0]          [1/2  1/2  1/2]           [0  1 −1 −1]
         [0 −1  1  0]          [1/2 −1/2  1/2]
         [0  1  0 −1]          [ 0    0    1 ]

so with U = G g Gᵀ and V = Bᵀ d B (4×4 each), the sum over input channels c becomes 16
independent products of matrices, one per position p = (i, j) of the 4×4 tile:

    M[p] (C_out × tiles·N) = U[p] (C_out × C) @ V[p] (C × tiles·N)        16 GEMMs
    y tile = Aᵀ M A + b                                                   (ReLU'd when fused)

16 multiplies per output tile and channel pair instead of 36: 2.25× fewer multiply-adds than the
direct convolution, paid for with the transforms (additions only). The backward passes are the
same algebra read backwards (the chain rule through linear maps):

    grad_x  = the same forward with the filter rotated 180° and C, C_out swapped, padding 2 − P
              (a stride-1 correlation's input gradient is the "full" correlation of grad_y);
    grad_w:   dM = A dY Aᵀ (4×4 from each 2×2 tile of grad_y),  dU[p] = Σ_tiles,N dM[p] V[p]ᵀ,
              grad_w = Gᵀ dU G (3×3 from 4×4), per (C_out, C) pair.

Layout "CHWN" as ``numba_conv``: x (C, H, W, N) *unpadded* (the padding is read as zeros by the
input transform, so no padded copy is made), y (C_out, OH, OW, N), OH = H + 2PH − 2. Odd OH/OW
are covered: the last tile reads zeros beyond the input and writes only the pixels that exist.
The batch is innermost, so every transform is a loop over a contiguous run of N floats.

Work: items are rows of tiles (two output rows each), split over threads by ``_jit.run``;
each item is computed whole, in a fixed order, so results are bit-identical across reruns and
thread counts (grad_w sums one partial per tile row, in row order, after the kernel).
Per item the tiles are taken ``TB`` at a time with ``NB`` images (J = TB·NB ≈ ``J_TARGET``
columns), so that V[p], M[p] (a few tens of KiB) stay in L1/L2 while their GEMM runs.

Numerics: the same sums in another order, through transforms with factors ±1, ±1/2. Measured
against the reference op and PyTorch: max |Δ| / max |y| ≈ 2e-7 to 1.3e-6 in float32 (the op
table's 1e-5 holds), ~1e-15 in float64 (tests/test_kernels_winograd.py). A NaN in the input
reaches exactly the outputs whose 3×3 window holds it (Bᵀ's and Aᵀ's zeros keep a patch's first
and last rows and columns out of the tile outputs they do not touch); an inf may give NaN where
the reference gives ±inf (inf − inf in a transform).
Which layers take it: ``gemm_conv.choose`` (3×3, stride 1, no dilation, ≥ ``MIN_CHANNELS`` channels).
"""
from __future__ import annotations

import numpy as np

from . import buffers
from .conv import chwn
from ._jit import kernel_pair, njit, run
from .numba_conv import madd8x4

_FM = {"reassoc", "contract"}    # as numba_conv: vectorised sums, in a fixed order
J_TARGET = 256                   # columns (tiles × images) of one pass over the 16 GEMMs
MIN_CHANNELS = 8                 # fewer input or output channels: the direct kernel (transforms dominate)

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def covers(w_shape, stride, padding, dilation):
    """Whether this path takes a conv with filters w_shape (C_out, C, KH, KW): 3×3, stride 1,
    no dilation, padding ≤ 2 (grad_x reads with padding 2 − P) and ≥ MIN_CHANNELS channels each way."""
    C_out, C, KH, KW = w_shape
    return ((KH, KW) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and max(padding) <= 2 and min(C, C_out) >= MIN_CHANNELS)


def _pad_to(n, m):
    return (n + m - 1) // m * m


def filter_transform(w, dtype):
    """U (16, ⌈C_out/8⌉·8, ⌈C/4⌉·4) = G w[o, c] Gᵀ per channel pair, position p = 4i + j; the
    padding rows/columns are zeros. w (C_out, C, 3, 3); computed in float64, then ``dtype``.
    Written out with G's rows (a stack of 4096 tiny matmuls or an einsum took 2-4 ms at 64×64)."""
    O, C = w.shape[:2]
    w = np.ascontiguousarray(np.transpose(w, (2, 3, 0, 1)), np.float64)    # (3, 3, O, C)
    U = np.zeros((16, _pad_to(O, 8), _pad_to(C, 4)), dtype)
    for i, r in enumerate(_g_rows(w[0], w[1], w[2])):                        # G w: rows, (3, O, C)
        for j, e in enumerate(_g_rows(r[0], r[1], r[2])):                    # (G w) Gᵀ: columns
            U[4 * i + j, :O, :C] = e
    return U


def _g_rows(a, b, c):
    """G (a, b, c): the 4 rows of G times a 3-vector (a, b, c) of arrays."""
    return a, 0.5 * (a + b + c), 0.5 * (a - b + c), c


def _gt_rows(d0, d1, d2, d3):
    """Gᵀ (d0, d1, d2, d3): the 3 rows of Gᵀ times a 4-vector of arrays."""
    return d0 + 0.5 * (d1 + d2), 0.5 * (d1 - d2), 0.5 * (d1 + d2) + d3


@njit(cache=True, nogil=True, fastmath=_FM, inline="always")
def _input_tiles(xf, V, T, zr, c, r0, t0, tb, n0, nb, N, H, W, PH, PW):
    """V[p, c, t·nb + j] = (Bᵀ d B)[p] for the tiles t0 .. t0+tb−1 of tile row r0/2 and images
    n0 .. n0+nb−1, d read from xf (C, H, W·N) at padded rows r0..r0+3 (zeros outside the input)."""
    for t in range(tb):
        for k in range(4):                                     # column k of the 4×4 patch
            q = 2 * (t0 + t) + k - PW
            off = q * N + n0
            r = r0 - PH
            x0 = xf[c, r, off:] if 0 <= r < H and 0 <= q < W else zr
            x1 = xf[c, r + 1, off:] if 0 <= r + 1 < H and 0 <= q < W else zr
            x2 = xf[c, r + 2, off:] if 0 <= r + 2 < H and 0 <= q < W else zr
            x3 = xf[c, r + 3, off:] if 0 <= r + 3 < H and 0 <= q < W else zr
            u0, u1, u2, u3 = T[k, t * nb:], T[4 + k, t * nb:], T[8 + k, t * nb:], T[12 + k, t * nb:]
            for j in range(nb):                                # Bᵀ d: rows
                u0[j] = x0[j] - x2[j]
                u1[j] = x1[j] + x2[j]
                u2[j] = x2[j] - x1[j]
                u3[j] = x1[j] - x3[j]
    jn = tb * nb
    for i in range(4):                                         # (Bᵀ d) B: columns
        for j in range(jn):
            V[4 * i, c, j] = T[4 * i, j] - T[4 * i + 2, j]
            V[4 * i + 1, c, j] = T[4 * i + 1, j] + T[4 * i + 2, j]
            V[4 * i + 2, c, j] = T[4 * i + 2, j] - T[4 * i + 1, j]
            V[4 * i + 3, c, j] = T[4 * i + 1, j] - T[4 * i + 3, j]


@njit(cache=True, nogil=True, fastmath=_FM, inline="always")
def _products(U, V, M, jn):
    """M[p, o, j] = Σ_c U[p, o, c] V[p, c, j] for the 16 positions p (8 output channels × 4
    input channels per pass over the columns, in the order of c)."""
    O8, C4 = U.shape[1], U.shape[2]
    for p in range(16):
        for o0 in range(0, O8, 8):
            acc = M[p, o0:o0 + 8]
            for r in range(8):
                for j in range(jn):
                    acc[r, j] = 0
            Vp = V[p]
            for c in range(0, C4, 4):
                madd8x4(acc, Vp[c], Vp[c + 1], Vp[c + 2], Vp[c + 3], U[p, o0:o0 + 8, c:c + 4], jn)


def _forward_body(xf, U, b, y, N, H, W, PH, PW, TB, NB, relu, lo, hi):
    """Tile rows [lo, hi) of y (O, OH, OW·N) = Winograd conv of xf (C, H, W·N) (zero-padded by
    PH, PW as it is read) with the transformed filters U, + b, ReLU'd if relu."""
    C, O, OH = xf.shape[0], y.shape[0], y.shape[1]
    OW = y.shape[2] // N
    C4, O8, TW = U.shape[2], U.shape[1], (OW + 1) // 2
    J = TB * NB
    V = np.zeros((16, C4, J), y.dtype)                         # rows c >= C stay 0
    M = np.empty((16, O8, J), y.dtype)
    T = np.empty((16, J), y.dtype)
    S = np.empty((8, J), y.dtype)
    zr = np.zeros(NB, y.dtype)
    zero = zr[0]                                               # 0 in y's dtype (an int 0 would make v float64)
    for th in range(lo, hi):
        r0 = 2 * th
        for t0 in range(0, TW, TB):
            tb = min(TB, TW - t0)
            for n0 in range(0, N, NB):
                nb = min(NB, N - n0)
                jn = tb * nb
                for c in range(C):
                    _input_tiles(xf, V, T, zr, c, r0, t0, tb, n0, nb, N, H, W, PH, PW)
                _products(U, V, M, jn)
                for o in range(O):                             # y = Aᵀ M A + b
                    bo = b[o]
                    for k in range(4):                         # Aᵀ M: rows
                        for j in range(jn):
                            S[k, j] = M[k, o, j] + M[4 + k, o, j] + M[8 + k, o, j]
                            S[4 + k, j] = M[4 + k, o, j] - M[8 + k, o, j] - M[12 + k, o, j]
                    for i in range(2):                         # (Aᵀ M) A: columns, written
                        if r0 + i >= OH:
                            break
                        for t in range(tb):
                            off = 2 * (t0 + t) * N + n0
                            s0, s1 = S[4 * i, t * nb:], S[4 * i + 1, t * nb:]
                            s2, s3 = S[4 * i + 2, t * nb:], S[4 * i + 3, t * nb:]
                            ya = y[o, r0 + i, off:]
                            for j in range(nb):
                                v = bo + (s0[j] + s1[j] + s2[j])
                                ya[j] = zero if relu and v < 0 else v
                            if 2 * (t0 + t) + 1 < OW:
                                yb = y[o, r0 + i, off + N:]
                                for j in range(nb):
                                    v = bo + (s1[j] - s2[j] - s3[j])
                                    yb[j] = zero if relu and v < 0 else v


def _grad_w_body(g, xf, dU, N, H, W, PH, PW, TB, NB, lo, hi):
    """dU[th] (16, O4, C4) = Σ over tile row th's tiles and images of dM[p] V[p]ᵀ, for th in
    [lo, hi): dM = A dY Aᵀ of g (O, OH, OW·N) (zeros beyond OH, OW), V = Bᵀ d B of xf."""
    C, O, OH = xf.shape[0], g.shape[0], g.shape[1]
    OW = g.shape[2] // N
    O4, C4, TW = dU.shape[2], dU.shape[3], (OW + 1) // 2
    J = TB * NB
    V = np.zeros((16, C4, J), g.dtype)
    D = np.zeros((16, O4, J), g.dtype)                         # dM; rows o >= O stay 0
    T = np.empty((16, J), g.dtype)
    R = np.empty((4, 2, J), g.dtype)
    zr = np.zeros(NB, g.dtype)
    for th in range(lo, hi):
        r0 = 2 * th
        acc = dU[th]
        acc[:] = 0
        for t0 in range(0, TW, TB):
            tb = min(TB, TW - t0)
            for n0 in range(0, N, NB):
                nb = min(NB, N - n0)
                jn = tb * nb
                for c in range(C):
                    _input_tiles(xf, V, T, zr, c, r0, t0, tb, n0, nb, N, H, W, PH, PW)
                for o in range(O):                             # dM = A dY Aᵀ
                    for t in range(tb):
                        for bcol in range(2):                  # A dY: rows, per tile column b
                            q = 2 * (t0 + t) + bcol
                            off = q * N + n0
                            g0 = g[o, r0, off:] if q < OW else zr
                            g1 = g[o, r0 + 1, off:] if q < OW and r0 + 1 < OH else zr
                            e0, e1, e2, e3 = R[0, bcol, t * nb:], R[1, bcol, t * nb:], R[2, bcol, t * nb:], R[3, bcol, t * nb:]
                            for j in range(nb):
                                e0[j] = g0[j]
                                e1[j] = g0[j] + g1[j]
                                e2[j] = g0[j] - g1[j]
                                e3[j] = -g1[j]
                    for i in range(4):                         # (A dY) Aᵀ: columns
                        for j in range(jn):
                            D[4 * i, o, j] = R[i, 0, j]
                            D[4 * i + 1, o, j] = R[i, 0, j] + R[i, 1, j]
                            D[4 * i + 2, o, j] = R[i, 0, j] - R[i, 1, j]
                            D[4 * i + 3, o, j] = -R[i, 1, j]
                for p in range(16):                            # dU[p] += dM[p] V[p]ᵀ
                    for o0 in range(0, O4, 4):
                        d0, d1, d2, d3 = D[p, o0], D[p, o0 + 1], D[p, o0 + 2], D[p, o0 + 3]
                        for c0 in range(0, C4, 2):
                            v0, v1 = V[p, c0], V[p, c0 + 1]
                            s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = zr[0]   # 0 in g's dtype
                            for j in range(jn):
                                a0, a1 = v0[j], v1[j]
                                s00 += d0[j] * a0
                                s01 += d0[j] * a1
                                s10 += d1[j] * a0
                                s11 += d1[j] * a1
                                s20 += d2[j] * a0
                                s21 += d2[j] * a1
                                s30 += d3[j] * a0
                                s31 += d3[j] * a1
                            acc[p, o0, c0] += s00
                            acc[p, o0, c0 + 1] += s01
                            acc[p, o0 + 1, c0] += s10
                            acc[p, o0 + 1, c0 + 1] += s11
                            acc[p, o0 + 2, c0] += s20
                            acc[p, o0 + 2, c0 + 1] += s21
                            acc[p, o0 + 3, c0] += s30
                            acc[p, o0 + 3, c0 + 1] += s31


_forward = kernel_pair(_forward_body, fastmath=_FM)
_grad_w = kernel_pair(_grad_w_body, fastmath=_FM)


def _blocking(N):
    """(TB tiles, NB images) per pass: J = TB·NB ≈ J_TARGET columns."""
    NB = min(N, J_TARGET)
    return max(1, J_TARGET // NB), NB


def _chwn(x):
    """(N, C, H, W) -> C-contiguous (C, H, W, N) (free when x is a view of such an array)."""
    return chwn(x.transpose(1, 2, 3, 0))


def conv_forward(xc, U, b, padding, relu=False):
    """y (O, OH, OW, N), OH = H + 2PH − 2, from xc (C, H, W, N) C-contiguous (unpadded), U =
    ``filter_transform(w)`` with O = the filters' C_out, b (O,) in xc's dtype; ReLU'd if relu."""
    C, H, W, N = xc.shape
    (PH, PW), O = padding, len(b)
    OH, OW = H + 2 * PH - 2, W + 2 * PW - 2
    y = buffers.empty((O, OH, OW, N), xc.dtype)
    TB, NB = _blocking(N)
    run(_forward, (OH + 1) // 2, xc.reshape(C, H, W * N), U, b, y.reshape(O, OH, OW * N), N, H, W, PH, PW,
        TB, NB, int(relu), work=y.size * C * 4)
    return y


def forward(x, w, b, padding, relu=False):
    """relu?(conv2d(x, w, b, stride 1, padding)) as (C_out, OH, OW, N) from x (N, C, H, W) (any
    strides; a view of a CHWN array costs no copy), w (C_out, C, 3, 3), b (C_out,) or None."""
    bias = np.zeros(w.shape[0], x.dtype) if b is None else np.ascontiguousarray(b, x.dtype)
    return conv_forward(_chwn(x), filter_transform(w, x.dtype), bias, padding, relu)


def grad_x(g, w, padding):
    """grad_x (C, H, W, N) from g (C_out, OH, OW, N) C-contiguous, w (C_out, C, 3, 3): the
    forward with the filters rotated 180° and transposed, padding 2 − P (H = OH − 2 + 2P)."""
    wr = np.asarray(w)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    PH, PW = padding
    return conv_forward(g, filter_transform(wr, g.dtype), np.zeros(w.shape[1], g.dtype), (2 - PH, 2 - PW))


def grad_w(g, x, padding):
    """grad_w (C_out, C, 3, 3) from g (C_out, OH, OW, N) C-contiguous and x (N, C, H, W):
    Gᵀ (Σ_tile rows dU) G, the tile rows' partials added in row order (float64 for the last
    two steps, then g's dtype)."""
    xc = _chwn(x)
    C, H, W, N = xc.shape
    O, OH, OW, _ = g.shape
    TH = (OH + 1) // 2
    dU = np.empty((TH, 16, _pad_to(O, 4), _pad_to(C, 2)), g.dtype)
    TB, NB = _blocking(N)
    run(_grad_w, TH, g.reshape(O, OH, OW * N), xc.reshape(C, H, W * N), dU, N, H, W, padding[0], padding[1],
        TB, NB, work=g.size * C * 4)
    total = dU[0].astype(np.float64)
    for th in range(1, TH):
        total += dU[th]
    d = total[:, :O, :C].reshape(4, 4, O, C)
    gw = np.empty((O, C, 3, 3), g.dtype)
    for k, r in enumerate(_gt_rows(d[0], d[1], d[2], d[3])):                    # Gᵀ dU: rows (4, O, C)
        for m, e in enumerate(_gt_rows(r[0], r[1], r[2], r[3])):                # (Gᵀ dU) G: columns
            gw[:, :, k, m] = e
    return gw
