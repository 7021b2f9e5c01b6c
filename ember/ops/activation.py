"""Activations: ReLU, leaky ReLU, sigmoid, tanh, GELU, SiLU, softplus, softmax and log-softmax.

Notation: ``grad_out`` is dL/dy, shaped like y; each backward returns dL/dx = grad_out * f'(x)
(softmax's Jacobian is not diagonal: its VJP mixes the entries along ``dim``).
Source: deck 000 (sigmoid g'(z) = g(z)(1 - g(z)), "ReLU leakiness"), deck 002 (ReLU backward),
deck 003 (sigmoid σ(1 − σ), ReLU derivative 0/1), deck 001 (softmax). This file is the
reference; ``ember.kernels.activation`` holds the fast ReLU.
"""
import math

import numpy as np

from ..autograd import Function
from .elementwise import _Pointwise


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


class LeakyReLU(_Pointwise):
    """y = x if x > 0 else slope * x;  grad_x = grad_out * (1 if x > 0 else slope)."""
    f = staticmethod(lambda x, negative_slope=0.01: np.where(x > 0, x, x * x.dtype.type(negative_slope)))
    df = staticmethod(lambda x, y, negative_slope=0.01: np.where(x > 0, 1, x.dtype.type(negative_slope)))


def stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) without overflow, x's dtype: e^−|x| ≤ 1 is the only exponential taken
    (1/(1 + e^−x) for x ≥ 0, e^x/(1 + e^x) for x < 0). Shared by Sigmoid and the logistic losses."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class Sigmoid(_Pointwise):
    """y = σ(x) = 1 / (1 + e^-x);  grad_x = grad_out * y (1 - y)  (deck 000: g'(z) = g(z)(1 - g(z))).

    Computed as e^x / (1 + e^x) for x < 0 so that no exp overflows for large |x|.
    """
    f, df = staticmethod(stable_sigmoid), staticmethod(lambda x, y: y * (1 - y))


class Tanh(_Pointwise):
    """y = tanh(x);  grad_x = grad_out * (1 - y²)."""
    f, df = staticmethod(np.tanh), staticmethod(lambda x, y: 1 - y * y)


# Cephes ndtr.c's rational approximations (polynomial coefficients, highest power first).
_ERF_T = (9.604973739870516, 90.02601972038427, 2232.005345946843, 7003.325141128051, 55592.30130103949)
_ERF_U = (1.0, 33.56171416475031, 521.3579497801527, 4594.323829709801, 22629.000061389095, 49267.39426086359)
_ERFC_P = (2.461969814735305e-10, 0.5641895648310689, 7.463210564422699, 48.63719709856814, 196.5208329560771, 526.4451949954773, 934.5285271719576, 1027.5518868951572, 557.5353353693994)
_ERFC_Q = (1.0, 13.228195115474499, 86.70721408859897, 354.9377788878199, 975.7085017432055, 1823.9091668790973, 2246.3376081871097, 1656.6630919416134, 557.5353408177277)


def erf(x: np.ndarray) -> np.ndarray:
    """erf(x) elementwise, in float64 for float64 x (within 3e-16 of ``math.erf``; NumPy has no erf),
    else in float32: for |x| < 1, x T(x²)/U(x²); else ±(1 − erfc |x|) with erfc(a) = e^{−a²} P(a)/Q(a),
    |x| capped at 8 where erfc < 1e-28 no longer changes 1 − erfc. Source: Cephes' ndtr.c (S. Moshier)."""
    c = np.minimum(np.abs(x), 8.0, dtype=np.float64 if x.dtype == np.float64 else np.float32)
    out, small = np.empty_like(c), c < 1
    s, b = c[small], c[~small]
    out[small] = s * np.polyval(_ERF_T, s * s) / np.polyval(_ERF_U, s * s)
    out[~small] = 1 - np.exp(-b * b) * np.polyval(_ERFC_P, b) / np.polyval(_ERFC_Q, b)
    return np.copysign(out, x)


def _gelu_cdf(x, approximate):
    """Φ(x) and Φ'(x) (the standard normal CDF and density), or with approximate='tanh' the
    approximation Φ(x) ≈ (1 + tanh(√(2/π)(x + 0.044715 x³)))/2 and its exact derivative."""
    if approximate == "tanh":
        k, t = math.sqrt(2 / math.pi), np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))
        return (1 + t) / 2, (1 - t * t) * k * (1 + 3 * 0.044715 * x * x) / 2
    return ((1 + erf(x * math.sqrt(0.5))) / 2).astype(x.dtype), np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


class GELU(_Pointwise):
    """y = x Φ(x);  grad_x = grad_out * (Φ(x) + x Φ'(x)), Φ the standard normal CDF (or its tanh
    approximation with approximate='tanh', as torch.nn.GELU). Paper: Hendrycks & Gimpel 2016."""
    f = staticmethod(lambda x, approximate="none": x * _gelu_cdf(x, approximate)[0])
    df = staticmethod(lambda x, y, approximate="none": (lambda c, d: c + x * d)(*_gelu_cdf(x, approximate)))


class SiLU(_Pointwise):
    """y = x σ(x) (swish);  grad_x = grad_out * σ(x) (1 + x (1 − σ(x)))."""
    f = staticmethod(lambda x: x * stable_sigmoid(x))
    df = staticmethod(lambda x, y: (lambda s: s * (1 + x * (1 - s)))(stable_sigmoid(x)))


class Softplus(_Pointwise):
    """y = log(1 + e^(βx)) / β, or x where βx > threshold;  grad_x = grad_out * σ(βx), or
    grad_out where βx > threshold (torch.nn.Softplus, defaults β = 1, threshold = 20)."""
    f = staticmethod(lambda x, beta=1.0, threshold=20.0: np.where(
        x * beta > threshold, x, np.logaddexp(0, x * beta) / beta).astype(x.dtype, copy=False))
    df = staticmethod(lambda x, y, beta=1.0, threshold=20.0: np.where(
        x * beta > threshold, 1, stable_sigmoid(x * beta)).astype(x.dtype, copy=False))


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
