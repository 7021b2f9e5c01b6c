"""Activations: ReLU, leaky ReLU, sigmoid, tanh, softmax and log-softmax.

Notation: ``grad_out`` is dL/dy, shaped like y; each backward returns dL/dx = grad_out * f'(x)
(softmax's Jacobian is not diagonal: its VJP mixes the entries along ``dim``).
Source: deck 000 (sigmoid g'(z) = g(z)(1 - g(z)), "ReLU leakiness"), deck 002 (ReLU backward),
deck 003 (sigmoid σ(1 − σ), ReLU derivative 0/1), deck 001 (softmax). This file is the
reference; ``ember.kernels.activation`` holds the fast ReLU.
"""
import numpy as np

from ..autograd import Function


class ReLU(Function):
    """y = max(x, 0);  grad_x = grad_out * [x > 0]  (deck 002's ReLU recipe; 0 at x = 0)."""
    @staticmethod
    def forward(ctx, x):
        y = np.maximum(x, 0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out * (y > 0)


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


def log_softmax(z, dim):
    """log p = z − max − log Σ exp(z − max): subtracting the max keeps every exp ≤ 1."""
    m = z.max(axis=dim, keepdims=True)
    shifted = z - m
    return shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))


class Softmax(Function):
    """p = exp(z) / Σ exp(z) along ``dim``;  grad_z = p ⊙ (grad_out − Σ(grad_out ⊙ p))."""
    @staticmethod
    def forward(ctx, z, dim):
        p = np.exp(log_softmax(z, dim))
        ctx.save_for_backward(p)
        ctx.dim = dim
        return p

    @staticmethod
    def backward(ctx, grad_out):
        (p,) = ctx.saved_tensors
        return p * (grad_out - (grad_out * p).sum(axis=ctx.dim, keepdims=True))


class LogSoftmax(Function):
    """y = log softmax(z) along ``dim``;  grad_z = grad_out − p Σ grad_out."""
    @staticmethod
    def forward(ctx, z, dim):
        y = log_softmax(z, dim)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out - np.exp(y) * grad_out.sum(axis=ctx.dim, keepdims=True)
