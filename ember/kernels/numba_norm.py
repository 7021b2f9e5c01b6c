"""Batch normalisation in training mode compiled with numba: forward and backward of ``ops.norm.BatchNorm``.

The reference op (ember/ops/norm.py) makes about ten NumPy passes over x per call (mean, x − μ,
its square, its mean, x̂, γ·x̂ + β; backward: γ·g, two sums, the three-term gradient, g·x̂ and Σg),
each allocating a temporary the size of x, on whatever strides x has (a conv output in ember's
CHWN order is a transposed view, which NumPy reduces slowly). Here x is seen in its own memory
order as (A, C, B) — (1, C, H·W·N) for CHWN, (N, C, H·W) for NCHW — and each channel is two
passes forward (Σx, then Σ(x − μ)² and y) and two backward (Σg and Σg·x̂, then grad_x), with
float64 sums. x̂ is not stored: backward recomputes it from x, μ and r = 1/sqrt(σ² + ε).

Formulas (Ioffe & Szegedy 2015, Algorithm 1 and its backward pass; M = N·H·W per channel):
    μ = Σx / M,  σ² = Σ(x − μ)² / M,  r = 1/sqrt(σ² + ε),  x̂ = (x − μ)·r,  y = γ·x̂ + β
    grad_β = Σg,  grad_γ = Σ g·x̂,  grad_x = γ·r·(g − grad_β/M − x̂·grad_γ/M)
Threads: items are channels, each computed whole by one thread in a fixed order, so results are
bit-identical for every thread count and rerun (the sums are SIMD reductions, fastmath reassoc as
in numba_conv: their lane order is fixed when numba compiles them). Evaluation mode (running
statistics given): one compiled pass ``_eval``. Inputs of another rank or dtype, a missing γ or β
in training mode, or no numba: the reference op's code.
Measured: benchmarks/RESULTS.md, issue 16 (ResNet-20 step).
"""
import numpy as np

from ..ops.norm import BatchNorm as _RefBatchNorm
from ._jit import AVAILABLE, kernel_pair, prange, run
from .conv import chwn


def _forward_body(x, w, b, eps, y, mean, variance, rstd, lo, hi):
    """For channels c in [lo, hi) of x (A, C, B): μ_c, r_c and y = γ_c·(x − μ_c)·r_c + β_c.

    Equals ops.norm.BatchNorm.forward in training mode (sums in float64)."""
    A, B = x.shape[0], x.shape[2]
    m = A * B
    for c in prange(lo, hi):
        s = 0.0
        for a in range(A):
            for i in range(B):
                s += x[a, c, i]
        mu = s / m
        v = 0.0
        for a in range(A):
            for i in range(B):
                d = x[a, c, i] - mu
                v += d * d
        var = v / m
        r = 1.0 / np.sqrt(var + eps)
        mean[c], variance[c], rstd[c] = mu, var, r
        scale, shift = w[c] * r, b[c] - w[c] * r * mu
        for a in range(A):
            for i in range(B):
                y[a, c, i] = x[a, c, i] * scale + shift


def _backward_body(g, x, w, mean, rstd, gx, gw, gb, lo, hi):
    """For channels c in [lo, hi): grad_β_c = Σg, grad_γ_c = Σ g·x̂ and
    grad_x = γ_c·r_c·(g − grad_β_c/M − x̂·grad_γ_c/M) with x̂ = (x − μ_c)·r_c.

    Equals ops.norm.BatchNorm.backward in training mode (sums in float64)."""
    A, B = x.shape[0], x.shape[2]
    m = A * B
    for c in prange(lo, hi):
        mu, r = mean[c], rstd[c]
        s1 = 0.0
        s2 = 0.0
        for a in range(A):
            for i in range(B):
                gi = g[a, c, i]
                s1 += gi
                s2 += gi * ((x[a, c, i] - mu) * r)
        gb[c], gw[c] = s1, s2
        k = w[c] * r
        m1, m2 = s1 / m, s2 / m
        for a in range(A):
            for i in range(B):
                gx[a, c, i] = k * (g[a, c, i] - m1 - (x[a, c, i] - mu) * r * m2)


def _eval_body(x, mean, scale, shift, y, lo, hi):
    """For channels c in [lo, hi) of x (A, C, B): y = (x − μ_c)·s_c + t_c with the running
    statistics, s = γ·r and t = β (evaluation mode: one pass, in x's dtype)."""
    A, B = x.shape[0], x.shape[2]
    for c in prange(lo, hi):
        mu, sc, sh = mean[c], scale[c], shift[c]
        for a in range(A):
            xr, yr = x[a, c], y[a, c]
            for i in range(B):
                yr[i] = (xr[i] - mu) * sc + sh


_FM = {"reassoc", "contract"}   # lets LLVM vectorise the sums (lanes in an order fixed at compile time)
_forward = kernel_pair(_forward_body, fastmath=_FM)
_backward = kernel_pair(_backward_body, fastmath=_FM)
_eval = kernel_pair(_eval_body, fastmath=_FM)


def _acb(x):
    """x (N, C, *) as a C-contiguous (A, C, B) view in its own memory order, and the function that
    puts an (A, C, B) array back into x's shape and order: CHWN (the batch innermost, as ember's conv
    kernels write) -> (1, C, H·W·N); anything else (copied to C order if needed) -> (N, C, H·W)."""
    if x.ndim == 4 and x.transpose(1, 2, 3, 0).flags.c_contiguous:
        N, C, H, W = x.shape
        return x.transpose(1, 2, 3, 0).reshape(1, C, H * W * N), \
            lambda a: a.reshape(C, H, W, N).transpose(3, 0, 1, 2)
    x = np.ascontiguousarray(x)
    shape = x.shape
    return x.reshape(shape[0], shape[1], -1), lambda a: a.reshape(shape)


class BatchNorm(_RefBatchNorm):
    """Batch normalisation with compiled training-mode kernels; equals ``ember.ops.norm.BatchNorm``.

    Same signature: forward(ctx, x, weight=None, bias=None, mean=None, var=None, eps=1e-5,
    stats=None); x (N, C, *) float32/float64, weight/bias (C,) -> y like x, in x's memory order
    (CHWN stays CHWN). A ``stats`` dict receives the batch mean and biased variance (C,), in x's
    dtype. Evaluation mode (running ``mean`` and ``var`` given) runs ``_eval``: one pass
    y = (x − μ)·(γ·r) + β in x's memory order, r = 1/sqrt(var + ε) in x's dtype as the reference
    (NumPy's four broadcast passes over a CHWN view took 92 ms for a (1000, 16, 32, 32) float32
    batch: RESULTS.md, tenth session); its backward is the reference formula on x̂ recomputed.
    No γ/β in training mode, another dtype, an empty x or no numba: the reference code.
    """
    @staticmethod
    def forward(ctx, x, weight=None, bias=None, mean=None, var=None, eps=1e-5, stats=None):
        usable = (AVAILABLE and x.ndim >= 3 and x.dtype in (np.float32, np.float64) and x.size
                  and all(a is None or a.dtype == x.dtype for a in (weight, bias)))
        if usable and mean is not None and var is not None:
            return _eval_forward(ctx, x, weight, bias, mean, var, eps)
        if not (usable and mean is None and weight is not None and bias is not None):
            ctx.compiled = False
            return _RefBatchNorm.forward(ctx, x, weight, bias, mean, var, eps, stats)
        ctx.compiled = True
        xa, back = _acb(x)
        C = xa.shape[1]
        y = np.empty_like(xa)
        mu, var, r = np.empty(C, np.float64), np.empty(C, np.float64), np.empty(C, np.float64)
        run(_forward, C, xa, weight, bias, float(eps), y, mu, var, r, work=2 * xa.size)
        ctx.save_for_backward(xa, weight)
        ctx.mu, ctx.r, ctx.back, ctx.x_shape = mu, r, back, x.shape
        if stats is not None:                         # for the running statistics, as the reference
            stats["mean"], stats["var"] = mu.astype(x.dtype), var.astype(x.dtype)
        return back(y)

    @staticmethod
    def backward(ctx, grad_out):
        if not ctx.compiled:
            return _RefBatchNorm.backward(ctx, grad_out)
        xa, w = ctx.saved_tensors
        ga, _ = _acb(grad_out)
        if ga.shape != xa.shape:                      # grad_out in another memory order than x
            ga = _like(grad_out, xa.shape)
        if ctx.compiled == "eval":
            return _eval_backward(ctx, ga, xa, w)
        C = xa.shape[1]
        gx = np.empty_like(xa)
        gw, gb = np.empty(C, np.float64), np.empty(C, np.float64)
        run(_backward, C, ga, xa, w, ctx.mu, ctx.r, gx, gw, gb, work=2 * xa.size)
        need = ctx.needs_input_grad
        return (ctx.back(gx) if need[0] else None,
                gw.astype(w.dtype) if len(need) > 1 and need[1] else None,
                gb.astype(w.dtype) if len(need) > 2 and need[2] else None, None, None)


def _eval_forward(ctx, x, weight, bias, mean, var, eps):
    """BatchNorm.forward in evaluation mode (see its docstring); y in x's memory order."""
    ctx.compiled = "eval"
    xa, back = _acb(x)
    dt = x.dtype.type
    mu = np.ascontiguousarray(mean, x.dtype)
    r = 1 / np.sqrt(np.asarray(var, x.dtype) + dt(eps))        # as the reference, in x's dtype
    scale = r * weight if weight is not None else r
    shift = np.ascontiguousarray(bias) if bias is not None else np.zeros_like(r)
    y = np.empty_like(xa)
    run(_eval, xa.shape[1], xa, mu, np.ascontiguousarray(scale), shift, y, work=xa.size)
    ctx.save_for_backward(xa, weight)
    ctx.mu, ctx.r, ctx.back, ctx.x_shape = mu, r, back, x.shape
    return back(y)


def _eval_backward(ctx, ga, xa, w):
    """Evaluation-mode VJP on the (A, C, B) views (the statistics are constants):
    grad_x = γ·r·g,  grad_γ = Σ g·x̂,  grad_β = Σ g  (ops.norm.BatchNorm.backward's formula)."""
    need = ctx.needs_input_grad
    r = ctx.r[None, :, None]
    gx = ga * (r * w[None, :, None]) if w is not None else ga * r
    gw = (ga * ((xa - ctx.mu[None, :, None]) * r)).sum(axis=(0, 2)) if w is not None and need[1] else None
    gb = ga.sum(axis=(0, 2)) if len(need) > 2 and need[2] else None
    return (ctx.back(gx) if need[0] else None, gw, gb, None, None)


def _like(g, acb_shape):
    """grad_out (N, C, H, W) copied into the (A, C, B) order of x's view (A = 1: CHWN, else NCHW)."""
    if acb_shape[0] == 1 and g.ndim == 4:
        N, C, H, W = g.shape
        return chwn(g.transpose(1, 2, 3, 0)).reshape(1, C, H * W * N)
    return np.ascontiguousarray(g).reshape(acb_shape)
