"""Elementwise ops: y = f(x) (or f(x, y)) applied entry by entry, with broadcasting.

Notation: ``grad_out`` is dL/dy, shaped like y; each backward returns dL/dx = grad_out * f'(x),
summed back to x's shape by ``unbroadcast`` when x was broadcast.
Source: deck 000 (gradient descent on f(x) = x² and friends), deck 002 ("patterns in backward
flow": add distributes, mul swaps). Activations live in ``activation.py``.
"""
import numpy as np

from ..autograd import Function, unbroadcast


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


class _Pointwise(Function):
    """y = f(x) entry by entry;  grad_x = grad_out * df(x, y).  A subclass names f and its
    derivative df (the formula of its docstring) in two lines; options (``beta=``) reach both."""
    @classmethod
    def forward(cls, ctx, x, **options):
        y = np.asarray(cls.f(x, **options))
        ctx.save_for_backward(x, y)
        ctx.options = options
        return y

    @classmethod
    def backward(cls, ctx, grad_out):
        x, y = ctx.saved_tensors
        return grad_out * cls.df(x, y, **ctx.options)


class Neg(_Pointwise):
    """y = -x;  grad_x = -grad_out."""
    f, df = staticmethod(np.negative), staticmethod(lambda x, y: -1)


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
        if p == 0:                                         # y = 1: no gradient, even at x = 0
            return np.zeros_like(x)
        return grad_out * (p * np.power(x, p - 1, dtype=x.dtype))


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


class Exp(_Pointwise):
    """y = e^x;  grad_x = grad_out * y."""
    f, df = staticmethod(np.exp), staticmethod(lambda x, y: y)


class Log(_Pointwise):
    """y = ln x;  grad_x = grad_out / x."""
    f, df = staticmethod(np.log), staticmethod(lambda x, y: 1 / x)


class Sin(_Pointwise):
    """y = sin x;  grad_x = grad_out * cos x."""
    f, df = staticmethod(np.sin), staticmethod(lambda x, y: np.cos(x))


class Cos(_Pointwise):
    """y = cos x;  grad_x = -grad_out * sin x."""
    f, df = staticmethod(np.cos), staticmethod(lambda x, y: -np.sin(x))


class Abs(_Pointwise):
    """y = |x|;  grad_x = grad_out * sign(x) (0 at 0, as torch)."""
    f, df = staticmethod(np.abs), staticmethod(lambda x, y: np.sign(x))


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
        lo, hi = -np.inf if ctx.lo is None else ctx.lo, np.inf if ctx.hi is None else ctx.hi
        return grad_out * ((x >= lo) & (x <= hi))


class Where(Function):
    """y = a where cond else b (cond a bool array; all three broadcast);
    grad_a = grad_out where cond else 0,  grad_b = grad_out where not cond else 0."""
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond, ctx.shapes = cond, (a.shape, b.shape)
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, grad_out):
        (sa, sb), c, zero = ctx.shapes, ctx.cond, np.zeros((), grad_out.dtype)
        return None, unbroadcast(np.where(c, grad_out, zero), sa), unbroadcast(np.where(c, zero, grad_out), sb)


class Cast(Function):
    """y = x converted to ``dtype``;  grad_x = grad_out converted back."""
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out.astype(ctx.dtype)
