"""Softmax cross-entropy compiled with numba: forward and backward of ``ops.loss.CrossEntropy``.

The reference computes log_softmax, the targets' mask and weights, the gather and the reduction
as about fifteen NumPy calls forward and ten backward, each a few µs whatever the batch: on
LeNet-5's (32, 10) logits 37 µs forward and 27 µs backward, a step's batch-independent cost that
weighs most in a small per-rank batch (issue 17: 2 ranks × 32 against 1 × 64). Here each
direction is one pass over the logits, row by row, with the same formulas:

    forward   m_i = max_c z[i, c];  logp[i, c] = (z[i, c] − m_i) − log Σ_c exp(z[i, c] − m_i)
              L_i = −logp[i, t_i] for t_i ≠ ignore_index, else 0;  'mean': Σ_i L_i / n_valid
    backward  grad_z[i, c] = g_i·(exp(logp[i, c]) − [c = t_i])·v_i   (v_i = [t_i ≠ ignore_index])

(deck 001: dL/dz = σ(z) − y). A NaN logit makes its row's loss NaN, as the reference's max does;
sums run in index order (the reference's NumPy sums are pairwise), so results equal the
reference to rounding (tested in the op table: float64 1e-10, float32 1e-5 relative), not bit
for bit. Class weights and label smoothing (rarer) run the reference, as do arrays numba does not
take. Measured in benchmarks/RESULTS.md (thirteenth session).
"""
from __future__ import annotations

import numpy as np

from ..ops import loss as _ref
from ._jit import AVAILABLE, njit


@njit(cache=True, nogil=True)
def _forward(z, t, ignore_index, logp, loss):
    """Fill logp (N, C) and loss (N,) as the module docstring says; return (Σ_i L_i, n_valid)."""
    N, C = z.shape
    total = z.dtype.type(0)
    n = 0
    for i in range(N):
        m = z[i, 0]
        for c in range(1, C):
            v = z[i, c]
            if v > m or v != v:                                # NaN wins and stays, as np.max
                m = v if m == m else m
        s = z.dtype.type(0)
        for c in range(C):
            logp[i, c] = z[i, c] - m
            s += np.exp(logp[i, c])
        ls = np.log(s)
        for c in range(C):
            logp[i, c] -= ls
        if t[i] != ignore_index:
            loss[i] = -logp[i, t[i]]
            n += 1
        else:
            loss[i] = 0
        total += loss[i]
    return total, n


@njit(cache=True, nogil=True)
def _backward(logp, t, ignore_index, g, grad_z):
    """grad_z (N, C) from logp, the targets and g = dL/dL_i, as the module docstring says: g of
    length N ('none'), or of length 1, the same for every i ('mean', 'sum')."""
    N, C = logp.shape
    zero = logp.dtype.type(0)
    for i in range(N):
        gi = g[i] if g.shape[0] == N else g[0]
        valid = t[i] != ignore_index
        v = logp.dtype.type(1) if valid else zero
        for c in range(C):
            grad_z[i, c] = np.exp(logp[i, c]) * v * gi
        if valid:
            grad_z[i, t[i]] -= gi


def covers(z, target, weight, label_smoothing):
    """Whether the compiled passes take these: numba there, 2-D float32/float64 logits with at
    least one class, integer targets, no class weights and no label smoothing."""
    return (AVAILABLE and z.ndim == 2 and z.shape[1] > 0 and z.dtype in (np.float32, np.float64)
            and weight is None and not label_smoothing and getattr(target, "dtype", None) is not None
            and target.dtype.kind in "iu")


class CrossEntropy(_ref.CrossEntropy):
    """Fast ``ops.loss.CrossEntropy``: same arguments, same result to rounding (tested), one
    compiled pass each way (``_forward``, ``_backward``) where ``covers`` holds, else the reference.

    Shapes: z (N, C) logits, target (N,) integer classes -> scalar ('mean', 'sum') or (N,) ('none').
    """
    @staticmethod
    def forward(ctx, z, target, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        ctx.fast = covers(z, target, weight, label_smoothing)
        if not ctx.fast:
            return _ref.CrossEntropy.forward(ctx, z, target, weight, ignore_index, label_smoothing, reduction)
        z = np.ascontiguousarray(z)
        t = np.ascontiguousarray(target, dtype=np.intp)
        logp, loss = np.empty_like(z), np.empty(z.shape[0], z.dtype)
        total, n = _forward(z, t, int(ignore_index), logp, loss)
        ctx.save_for_backward(logp, t)
        ctx.ignore_index, ctx.reduction, ctx.denom = int(ignore_index), reduction, n
        if reduction == "mean":
            return np.asarray(total / z.dtype.type(n), dtype=z.dtype)
        if reduction == "sum":
            return np.asarray(total, dtype=z.dtype)
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        if not ctx.fast:
            return _ref.CrossEntropy.backward(ctx, grad_out)
        logp, t = ctx.saved_tensors
        g = grad_out / logp.dtype.type(ctx.denom) if ctx.reduction == "mean" else grad_out
        g = np.ascontiguousarray(g, dtype=logp.dtype).reshape(-1)      # (1,) or (N,)
        grad_z = np.empty_like(logp)
        _backward(logp, t, ctx.ignore_index, g, grad_z)
        return grad_z, None
