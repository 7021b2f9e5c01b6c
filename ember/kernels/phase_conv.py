"""Strided convolution as stride-1 convolutions over the input's phases (polyphase decomposition).

Notation as ember/ops/conv.py and numba_conv: x (N, C, H, W), w (C_out, C, KH, KW), stride
(SH, SW), padding (PH, PW), dilation 1, groups 1; Hp = H + 2PH, Wp = W + 2PW; OH, OW the output
size. Layout "CHWN" (the batch innermost), as numba_conv.

Why: numba_conv's direct kernel streams one output row of OW*N contiguous floats per term when the
stride is 1, but with stride SW > 1 neighbouring output pixels read input pixels SW apart, so its
inner loop shrinks to N floats (8 at deck 001's batch) and the GEMM path, whose sgemm has only
16-64 rows here, wins at 17-30 GFLOP/s. Split the padded input into its SH·SW *phases*

    xs[p, c, i, j, n] = xpad[c, i·SH + a, j·SW + b, n],   p = a·SW + b,  a < SH, b < SW,

each (Hs, Ws) = (⌈Hp/SH⌉, ⌈Wp/SW⌉) (zeros past the padded edge). Kernel tap (kh, kw) of output
pixel (oh, ow) reads xpad[c, oh·SH + kh, ow·SW + kw] = xs[p(kh mod SH, kw mod SW), c, oh + kh//SH,
ow + kw//SW]: for a fixed tap, consecutive output pixels read consecutive phase pixels. So:

    forward  y[co, oh, ·] = b[co] + Σ_t w[co, t] · xs_row(t, oh)[·]      a stride-1 sum over the
             C·KH·KW taps t, each a run of OW·N floats: numba_conv's output-stationary row kernel
             (``_conv_rows8``) with the taps' offsets into xs (``_rel``) instead of into xpad;
    grad_w   gw[co, c, kh, kw] = Σ_{oh} g[co, oh, ·] · xs_row(t, oh)[·]   the same offsets, the
             dot products of numba_conv's ``_grad_w_taps8`` (8 channels × 3 taps a pass);
    grad_x   per phase p = (a, b): gxs[p] = the stride-1 input gradient of the sub-kernel
             w[:, :, a::SH, b::SW] (numba_conv.conv2d_grad_x, no padding), then the phases are
             interleaved back: gxpad[c, i·SH + a, j·SW + b] = gxs[p, c, i, j], gx its interior.

Every product of the strided convolution appears exactly once (no zero taps are added), so the
result equals the reference op up to the order of the sums (float64 1e-10, tested); each output
float is summed in one fixed order (bit-identical across reruns and thread counts). Source: the
polyphase decomposition of a decimating filter (Vaidyanathan, "Multirate Systems and Filter
Banks", 1993, ch. 4); for CNNs, "space-to-depth" (TensorFlow's op of that name). The reference is
``ember.ops.conv.Conv2d``; ``gemm_conv.choose`` says which shapes take this path.
"""
from __future__ import annotations

import numpy as np

from . import buffers
from .conv import chwn
from ._jit import kernel_pair, prange, run
from .numba_conv import _FM, _conv_rows4, _conv_rows8, _grad_w_block4, _grad_w_taps8, _put_block, conv2d_grad_x, grad_w_band


def _phases_body(xt, xs, PH, PW, SH, SW, lo, hi):
    """xs[a·SW + b, c, i, j, n] = xt[c, i·SH + a − PH, j·SW + b − PW, n], or 0 outside xt (the
    zero padding and the phases' last rows and columns). xt (C, H, W, N) C-contiguous. One item =
    phase row (c, a, i) for every b: each xs float is written once, from a run of N floats."""
    C, H, W, N = xt.shape
    Hs, Ws = xs.shape[2], xs.shape[3]
    zero = xs.dtype.type(0)
    for item in prange(lo, hi):
        c, r = item // (SH * Hs), item % (SH * Hs)
        a, i = r // Hs, r % Hs
        h = i * SH + a - PH
        for b in range(SW):
            out = xs[a * SW + b, c, i]
            if h < 0 or h >= H:
                for j in range(Ws):
                    for n in range(N):
                        out[j, n] = zero
                continue
            src = xt[c, h]
            for j in range(Ws):
                w = j * SW + b - PW
                if 0 <= w < W:
                    for n in range(N):
                        out[j, n] = src[w, n]
                else:
                    for n in range(N):
                        out[j, n] = zero


_phases = kernel_pair(_phases_body)


def phases(x, padding, stride):
    """xs (SH·SW, C, Hs, Ws, N) from x (N, C, H, W): the zero-padded input's phases (module doc).

    Hs = ⌈(H + 2PH)/SH⌉, Ws = ⌈(W + 2PW)/SW⌉; float dtype as x. One compiled pass writing each
    xs float once (free of a transpose when x is the (N, C, H, W) view of a CHWN array, as the
    kernels' outputs are).
    """
    (PH, PW), (SH, SW) = padding, stride
    N, C, H, W = x.shape
    Hs, Ws = -(-(H + 2 * PH) // SH), -(-(W + 2 * PW) // SW)
    xs = buffers.empty((SH * SW, C, Hs, Ws, N), x.dtype)
    xt = chwn(x.transpose(1, 2, 3, 0))                         # (C, H, W, N)
    run(_phases, C * SH * Hs, xt, xs, PH, PW, SH, SW, work=xs.size)
    return xs


def _rel(C, KH, KW, SH, SW, Hs, Ws, N):
    """rel[(c·KH + kh)·KW + kw]: where tap (c, kh, kw) of output pixel (0, 0) reads the flattened xs."""
    kh, kw = np.meshgrid(np.arange(KH), np.arange(KW), indexing="ij")
    p = (kh % SH) * SW + kw % SW
    c = np.arange(C)[:, None, None]
    return (((p * C + c) * Hs + kh // SH) * Ws * N + (kw // SW) * N).reshape(-1).astype(np.int64)


def _forward_body(xf, wf, rel, b, y, row_stride, relu, lo, hi):
    """y[co, oh, j] = b[co] + Σ_t wf[co, t] · xf[oh·row_stride + rel[t] + j], j < OW·N (the module's
    forward). One item = output row oh of a block of 8 output channels (``_conv_rows8``,
    output-stationary), or of the last < 8 as blocks of up to 4 (``_conv_rows4``). relu = 1:
    max(·, 0) on the row while in cache (NaN kept)."""
    C_out, OH, OWN = y.shape
    for item in prange(lo, hi):
        nq = -(-C_out // 8)                                    # row-major: a row's blocks share its input
        oh, co0 = item // nq, (item % nq) * 8
        nco = min(8, C_out - co0)
        if nco == 8:
            _conv_rows8(xf, wf, rel, b, y, oh, co0, oh * row_stride, OWN, relu)
        else:
            _conv_rows4(xf, wf, rel, b, y, oh, co0, nco, oh * row_stride, 1, OWN, 0, relu)


def _grad_w_body(g, xf, rel, gw, row_stride, band, lo, hi):
    """gw[co, c, kh, kw] = Σ_{oh, j} g[co, oh, j] · xf[oh·row_stride + rel[(c·KH + kh)·KW + kw] + j]
    (the module's grad_w; band: output rows per band). One item = a block of 8 output channels and
    one input channel c: 8 channels × 3 taps of dot products per pass (``_grad_w_taps8``), in
    bands of output rows as numba_conv's ``_grad_w8_body``; the last < 8 channels as blocks of up
    to 4 × 4 taps (``_grad_w_block4``). float64 sums in the order of oh."""
    C_out, C, KH, KW = gw.shape
    T = KH * KW
    OH = g.shape[1]
    acc = np.zeros((max(0, hi - lo), 8, T), np.float64)
    for oh0 in range(0, OH, band):
        for item in prange(lo, hi):
            q, c = item // C, item % C
            co0, rc, oh1 = q * 8, rel[c * T:(c + 1) * T], min(OH, oh0 + band)
            if co0 + 8 <= C_out:
                _grad_w_taps8(g, xf, rc, acc[item - lo], 0, row_stride, co0, oh0, oh1)
            else:
                for c4 in range(co0, C_out, 4):
                    _grad_w_block4(g, xf, rc, acc[item - lo, c4 - co0:], 0, 1, 0, 0, row_stride, 1, g.shape[2],
                                   c4, min(4, C_out - c4), 0, oh0, oh1)
    for item in prange(lo, hi):
        q, c = item // C, item % C
        _put_block(acc[item - lo], gw, q * 8, min(8, C_out - q * 8), c)


_forward = kernel_pair(_forward_body, fastmath=_FM)
_grad_w = kernel_pair(_grad_w_body, fastmath=_FM)


def forward(xs, w, b, stride, out_hw, relu=False):
    """y (C_out, OH, OW, N) = conv(x, w, stride) + b (ReLU'd if relu) from the phases xs
    (SH·SW, C, Hs, Ws, N) (``phases``); w (C_out, C, KH, KW), b (C_out,) or None; out_hw = (OH, OW)."""
    (SH, SW), (OH, OW) = stride, out_hw
    P, C, Hs, Ws, N = xs.shape
    C_out, _, KH, KW = w.shape
    y = buffers.empty((C_out, OH, OW, N), xs.dtype)
    bias = np.zeros(C_out, xs.dtype) if b is None else np.ascontiguousarray(b, xs.dtype)
    rel = _rel(C, KH, KW, SH, SW, Hs, Ws, N)
    run(_forward, -(-C_out // 8) * OH, xs.reshape(-1), np.ascontiguousarray(w).reshape(C_out, -1), rel, bias,
        y.reshape(C_out, OH, OW * N), Ws * N, int(relu), work=y.size * w[0].size)
    return y


def grad_w(g, xs, w_shape, stride):
    """grad_w (C_out, C, KH, KW) from g (C_out, OH, OW, N) C-contiguous and the phases xs."""
    SH, SW = stride
    P, C, Hs, Ws, N = xs.shape
    C_out, OH, OW, _ = g.shape
    gw = np.empty(w_shape, g.dtype)
    rel = _rel(C, w_shape[2], w_shape[3], SH, SW, Hs, Ws, N)
    band = grad_w_band(OH, P * C * Ws * N, OW * N, g.itemsize)    # a new input row per phase and channel
    run(_grad_w, -(-C_out // 8) * C, g.reshape(C_out, OH, OW * N), xs.reshape(-1), rel, gw, Ws * N, band,
        work=g.size * gw[0].size)
    return gw


def _unphases_body(gxs, gx, PH, PW, SH, SW, lo, hi):
    """gx[c, h, w, n] = gxs[p, c, (h + PH) // SH, (w + PW) // SW, n], p = ((h + PH) % SH)·SW +
    (w + PW) % SW: the phases interleaved back, the padding left out (each pixel of the padded
    input lies in exactly one phase). gx (C, H, W, N) C-contiguous. One item = row (c, h)."""
    C, H, W, N = gx.shape
    for item in prange(lo, hi):
        c, h = item // H, item % H
        a, i = (h + PH) % SH, (h + PH) // SH
        out = gx[c, h]
        for w in range(W):
            src = gxs[a * SW + (w + PW) % SW, c, i, (w + PW) // SW]
            for n in range(N):
                out[w, n] = src[n]


_unphases = kernel_pair(_unphases_body)


def grad_x(g, w, x_hw, padding, stride):
    """grad_x (C, H, W, N) C-contiguous from g (C_out, OH, OW, N) C-contiguous: per phase the
    stride-1 input gradient of its sub-kernel (into gxs (SH·SW, C, Hs, Ws, N)), interleaved back
    without the padding in one compiled pass (``_unphases``; module doc)."""
    (H, W), (PH, PW), (SH, SW) = x_hw, padding, stride
    C_out, OH, OW, N = g.shape
    C = w.shape[1]
    Hs, Ws = -(-(H + 2 * PH) // SH), -(-(W + 2 * PW) // SW)
    gxs = buffers.empty((SH * SW, C, Hs, Ws, N), g.dtype)
    for a in range(SH):
        for b in range(SW):
            sub = np.ascontiguousarray(w[:, :, a::SH, b::SW])
            if sub.size == 0:                                  # a kernel smaller than the stride
                gxs[a * SW + b] = 0
            else:
                conv2d_grad_x(g, sub, Hs, Ws, (0, 0), (1, 1), (1, 1), 1, out=gxs[a * SW + b])
    gx = buffers.empty((C, H, W, N), g.dtype)
    run(_unphases, C * H, gxs, gx, PH, PW, SH, SW, work=gx.size)
    return gx
