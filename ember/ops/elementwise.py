"""Elementwise ops: y = f(x) (or f(x, y)) applied entry by entry, with broadcasting.

Notation: ``grad_out`` is dL/dy, shaped like y; each backward returns dL/dx = grad_out * f'(x),
summed back to x's shape by ``unbroadcast`` when x was broadcast.
Source: deck 000 (sigmoid g'(z) = g(z)(1 - g(z))), deck 002 (ReLU backward), deck 003
(sigmoid σ(1 − σ), ReLU derivative 0/1).
"""
import numpy as np

from ..autograd import Function, unbroadcast
from ..threads import num_parts, outer_slices, parallel_for


class Add(Function):
    """y = a + b;  grad_a = grad_out,  grad_b = grad_out."""
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx, grad_out):
        sa, sb = ctx.shapes
        return unbroadcast(grad_out, sa), unbroadcast(grad_out, sb)


class Sub(Function):
    """y = a - b;  grad_a = grad_out,  grad_b = -grad_out."""
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a - b

    @staticmethod
    def backward(ctx, grad_out):
        sa, sb = ctx.shapes
        return unbroadcast(grad_out, sa), unbroadcast(-grad_out, sb)


class Mul(Function):
    """y = a * b;  grad_a = grad_out * b,  grad_b = grad_out * a."""
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_tensors
        ga = unbroadcast(grad_out * b, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(grad_out * a, b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b;  grad_a = grad_out / b,  grad_b = -grad_out * a / b²."""
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_tensors
        ga = unbroadcast(grad_out / b, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(-grad_out * a / (b * b), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """y = -x;  grad_x = -grad_out."""
    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad_out):
        return -grad_out


class PowScalar(Function):
    """y = x^p for a constant p;  grad_x = grad_out * p * x^(p-1).

    As torch, at x = 0 the gradient is p·0^(p−1): 0 for p > 1, p for p = 1, inf for 0 < p < 1.
    """
    @staticmethod
    def forward(ctx, x, exponent):
        ctx.save_for_backward(x)
        ctx.p = exponent
        return np.power(x, exponent, dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        (x,), p = ctx.saved_tensors, ctx.p
        if p == 0:
            return np.zeros_like(x)
        if p == 2:
            return grad_out * 2 * x
        d = p * np.power(x, p - 1, dtype=x.dtype)
        return grad_out * d


class Pow(Function):
    """y = a^b (both tensors);  grad_a = grad_out * b * a^(b-1),  grad_b = grad_out * y * ln a."""
    @staticmethod
    def forward(ctx, a, b):
        y = np.power(a, b)
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        a, b, y = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:  # b = 0: y = 1 is constant, gradient 0 even at a = 0 (as torch)
            with np.errstate(divide="ignore", invalid="ignore"):
                ga = np.where(b == 0, 0, grad_out * b * np.power(a, b - 1)).astype(y.dtype, copy=False)
            ga = unbroadcast(ga, a.shape)
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):  # ln(0) * 0 -> 0, as torch
                ln_a = np.where(a > 0, np.log(np.where(a > 0, a, 1)), np.where(a == 0, -np.inf, np.nan))
                gb = np.where((a == 0) & (b >= 0), 0, grad_out * y * ln_a).astype(y.dtype)
            gb = unbroadcast(gb, b.shape)
        return ga, gb


class Exp(Function):
    """y = e^x;  grad_x = grad_out * y."""
    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out * y


class Log(Function):
    """y = ln x;  grad_x = grad_out / x."""
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out / x


class Abs(Function):
    """y = |x|;  grad_x = grad_out * sign(x) (0 at 0, as torch)."""
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * np.sign(x)


class Clamp(Function):
    """y = min(max(x, lo), hi);  grad_x = grad_out where lo <= x <= hi, else 0 (as torch)."""
    @staticmethod
    def forward(ctx, x, lo=None, hi=None):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return np.clip(x, lo, hi).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        keep = np.ones(x.shape, dtype=bool)
        if ctx.lo is not None:
            keep &= x >= ctx.lo
        if ctx.hi is not None:
            keep &= x <= ctx.hi
        return grad_out * keep


class Cast(Function):
    """y = x converted to ``dtype``;  grad_x = grad_out converted back."""
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out.astype(ctx.dtype)


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


class ReLU(Function):
    """y = max(x, 0);  grad_x = grad_out * [x > 0]  (deck 002's ReLU recipe; 0 at x = 0).

    Large arrays are cut into one contiguous piece per thread (ember.threads.outer_slices).
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
        g = np.empty_like(y, dtype=np.result_type(grad_out, y))

        def mask_times_grad(p):    # [y > 0] written as 0/1 floats, then * grad_out: no bool array
            np.greater(y[p], 0, out=g[p], casting="unsafe")
            g[p] *= grad_out[p]
        parallel_for(mask_times_grad, outer_slices(g, num_parts(2 * y.size)))
        return g


class LeakyReLU(Function):
    """y = x if x > 0 else slope * x;  grad_x = grad_out * (1 if x > 0 else slope)."""
    @staticmethod
    def forward(ctx, x, negative_slope=0.01):
        ctx.save_for_backward(x)
        ctx.slope = negative_slope
        return np.where(x > 0, x, x * x.dtype.type(negative_slope))

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return np.where(x > 0, grad_out, grad_out * grad_out.dtype.type(ctx.slope))


def stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) without overflow, x's dtype: e^−|x| ≤ 1 is the only exponential taken
    (1/(1 + e^−x) for x ≥ 0, e^x/(1 + e^x) for x < 0). Shared by Sigmoid and the logistic losses."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class Sigmoid(Function):
    """y = σ(x) = 1 / (1 + e^-x);  grad_x = grad_out * y (1 - y)  (deck 000: g'(z) = g(z)(1 - g(z))).

    Computed as e^x / (1 + e^x) for x < 0 so that no exp overflows for large |x|.
    """
    @staticmethod
    def forward(ctx, x):
        y = stable_sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out * y * (1 - y)


class Tanh(Function):
    """y = tanh(x);  grad_x = grad_out * (1 - y²)."""
    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out * (1 - y * y)
