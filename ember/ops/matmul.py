"""Matrix products: MatMul (the @ operator) and Linear (the affine layer y = x Wᵀ + b).

Notation: x (N, in), W (out, in), b (out,), y (N, out).
Source: deck 002 "affine layer" backprop recipe; deck 000 forward propagation a(l+1) = g(Θ(l) a(l)).
This file is the reference; ``ember.kernels.matmul`` holds the fast Linear.
"""
import numpy as np

from ..autograd import Function, unbroadcast


class MatMul(Function):
    """y = a @ b (2-D or batched, with batch broadcasting; 1-D operands as in np.matmul);
    grad_a = grad_out @ bᵀ,  grad_b = aᵀ @ grad_out."""
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        try:
            return np.matmul(a, b)
        except ValueError:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied "
                             f"({a.shape[-1]} != {b.shape[-2] if b.ndim > 1 else b.shape[0]})") from None

    @staticmethod
    def backward(ctx, grad_out):
        a, b = ctx.saved_tensors
        if a.ndim == 1 and b.ndim == 1:                # dot product: grad_out is 0-d
            return (grad_out * b if ctx.needs_input_grad[0] else None,
                    grad_out * a if ctx.needs_input_grad[1] else None)
        a2 = a[None, :] if a.ndim == 1 else a          # promote vectors as matmul does
        b2 = b[:, None] if b.ndim == 1 else b
        g = grad_out
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        if b.ndim == 1:
            g = np.expand_dims(g, -1)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = unbroadcast(g @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = unbroadcast(np.swapaxes(a2, -1, -2) @ g, b2.shape).reshape(b.shape)
        return ga, gb


class Linear(Function):
    """y = x Wᵀ + b for x (..., in), W (out, in), b (out,) -> y (..., out).

    grad_x = grad_out W,  grad_W = grad_outᵀ x (summed over the batch),  grad_b = Σ_batch grad_out.
    """
    @staticmethod
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        y = x @ weight.T                                   # (..., out)
        return y + bias if bias is not None else y

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        need = ctx.needs_input_grad
        g2 = grad_out.reshape(-1, grad_out.shape[-1])      # (N, out)
        grad_x = grad_out @ weight if need[0] else None    # (..., in)
        grad_w = g2.T @ x.reshape(-1, x.shape[-1]) if need[1] else None   # (out, in)
        grad_b = g2.sum(axis=0) if ctx.has_bias and need[2] else None     # (out,)
        return grad_x, grad_w, grad_b
