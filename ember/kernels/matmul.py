"""Fast Linear: the same GEMMs as the reference, under ember's BLAS thread rule.

It must equal ``ember.ops.matmul.Linear``; ``tests/test_ops.py`` compares them row by row.
"""
import numpy as np

from ..autograd import Function
from ..ops import matmul as _reference
from .activation import relu_grad
from .threads import matmul


class Linear(_reference.Linear):
    """Fast ``ember.ops.matmul.Linear``: y = x Wᵀ + b, same arguments and result (tested).

    Why it is faster than the reference: every GEMM goes through ``threads.matmul``, which runs
    GEMMs below 500 MFLOP on one BLAS thread (LeNet's Linear(400, 120) backward at batch 64 took
    4–6 ms with two sleeping OpenBLAS threads to wake, ~70 µs on one core), and grad_b is a GEMV
    with a ones vector instead of ``.sum(0)`` (a reduction over the slow axis).

    grad_x = grad_out W,  grad_W = grad_outᵀ x (summed over the batch),  grad_b = Σ_batch grad_out.
    """
    @staticmethod
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        y = matmul(x, weight.T)                            # (..., out)
        if bias is not None:
            y += bias
        return y

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        return _grads(ctx, x, weight, grad_out)


def _grads(ctx, x, weight, grad_out):
    """(grad_x, grad_w, grad_b) of y = x Wᵀ + b from grad_out (..., out), each only if needed."""
    need = ctx.needs_input_grad
    g2 = grad_out.reshape(-1, grad_out.shape[-1])      # (N, out)
    x2 = x.reshape(-1, x.shape[-1])                    # (N, in)
    grad_x = matmul(grad_out, weight) if need[0] else None   # (..., in)
    grad_w = matmul(g2.T, x2) if need[1] else None           # (out, in)
    # Σ over the batch as a product with a ones vector: a GEMV, much faster than .sum(0)
    grad_b = matmul(np.ones((1, g2.shape[0]), g2.dtype), g2)[0] if ctx.has_bias and need[2] else None
    return grad_x, grad_w, grad_b


class LinearReLU(Function):
    """relu(x Wᵀ + b) in one op: ``ops.activation.ReLU`` of ``ops.matmul.Linear``, the same
    numbers as this module's Linear followed by ``activation.ReLU`` (bit for bit, tested) and as
    the reference ops (1e-10 in float64, and PyTorch).

    Shapes as Linear: x (*, in_features), weight (out_features, in_features), bias
    (out_features,) or None -> (*, out_features). Forward: max(·, 0) in place on the GEMM's
    output, so no second activation array; backward: grad_out · [y > 0] (``activation.relu_grad``,
    the ReLU kernel's own VJP), then Linear's gradients. One graph node instead of two: the module call,
    ``Function.apply`` and the engine's step of the ReLU are saved (~10 µs a pair, a small
    batch's fixed cost: issue 17). Run by ``ember.kernels.fusion`` for an ``nn.Sequential``'s
    Linear → ReLU when the checks F.linear makes hold (so it raises nothing of its own).
    """
    @staticmethod
    def forward(ctx, x, weight, bias=None):
        y = Linear.forward(ctx, x, weight, bias)
        np.maximum(y, 0, out=y)                            # a NaN stays NaN, as np.maximum in ReLU
        ctx.save_for_backward(x, weight, y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, y = ctx.saved_tensors
        return _grads(ctx, x, weight, relu_grad(y, grad_out))   # activation.ReLU's own VJP
