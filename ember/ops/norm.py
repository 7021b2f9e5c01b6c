"""Normalisation and dropout ops: batch norm, layer norm, dropout masks.

Notation: x is normalised over a set of ``axes`` (batch norm: every axis but the channel
axis 1; layer norm: the trailing ``normalized_shape`` axes); M is the number of elements
averaged per statistic,  μ = mean(x),  σ² = mean((x − μ)²) (biased),  r = 1/sqrt(σ² + ε),
x̂ = (x − μ)·r,  y = γ·x̂ + β.
Source: Ioffe & Szegedy 2015 (batch norm, Algorithm 1 and its backward pass);
Ba, Kiros & Hinton 2016 (layer norm); Srivastava et al. 2014 (dropout).
"""
import numpy as np

from ..autograd import Function


def _normalize_backward(gxh, xh, r, axes, m):
    """VJP of x̂ = (x − μ)·r with μ, r computed from x over ``axes`` (M = m elements each):
    grad_x = r/M · (M·g − Σ g − x̂ Σ(g·x̂)),  g = dL/dx̂."""
    s1 = gxh.sum(axis=axes, keepdims=True)                 # Σ g       (stat shape)
    s2 = (gxh * xh).sum(axis=axes, keepdims=True)          # Σ g·x̂     (stat shape)
    return (r / xh.dtype.type(m)) * (m * gxh - s1 - xh * s2)


class BatchNorm(Function):
    """y = γ·(x − μ)/sqrt(σ² + ε) + β per channel (axis 1) of x (N, C, *).

    Training (``mean``/``var`` None): μ, σ² are the batch statistics over all axes but 1, and
    backward is the full batch-norm VJP (the statistics depend on x):
        grad_x = γ·r/M · (M·g − Σg − x̂·Σ(g·x̂)),   grad_γ = Σ g·x̂,   grad_β = Σ g
    Evaluation (``mean``/``var`` given: the running statistics, constants):
        grad_x = γ·r·g,   grad_γ = Σ g·x̂,   grad_β = Σ g
    Shapes: x (N, C, *), weight/bias (C,) or None, mean/var (C,) -> y like x. A ``stats`` dict,
    if given to a training call, receives the batch 'mean' and (biased) 'var', each (C,).
    """
    @staticmethod
    def forward(ctx, x, weight=None, bias=None, mean=None, var=None, eps=1e-5, stats=None):
        axes = (0,) + tuple(range(2, x.ndim))
        bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)        # broadcast (C,) over (N, C, *)
        training = mean is None
        if training:
            mu = x.mean(axis=axes, keepdims=True)             # (1, C, 1, ...)
            xc = x - mu
            v = (xc * xc).mean(axis=axes, keepdims=True)      # biased variance
        else:
            mu, v = mean.reshape(bshape).astype(x.dtype), var.reshape(bshape).astype(x.dtype)
            xc = x - mu
        r = 1 / np.sqrt(v + x.dtype.type(eps))                 # (1, C, 1, ...)
        xh = xc * r
        y = xh * weight.reshape(bshape) if weight is not None else xh.copy()
        if bias is not None:
            y += bias.reshape(bshape)
        ctx.save_for_backward(xh, r, weight)
        ctx.axes, ctx.bshape, ctx.training, ctx.m = axes, bshape, training, x.size // x.shape[1]
        if training and stats is not None:                    # for the running-statistics update
            stats["mean"], stats["var"] = mu.reshape(-1), v.reshape(-1)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        xh, r, w = ctx.saved_tensors
        axes, bshape, training, m = ctx.axes, ctx.bshape, ctx.training, ctx.m
        need = ctx.needs_input_grad
        gxh = grad_out * w.reshape(bshape) if w is not None else grad_out   # dL/dx̂
        grad_x = None
        if need[0]:
            grad_x = _normalize_backward(gxh, xh, r, axes, m) if training else gxh * r
        grad_w = (grad_out * xh).sum(axis=axes) if w is not None and need[1] else None
        grad_b = grad_out.sum(axis=axes) if len(need) > 2 and need[2] else None
        return grad_x, grad_w, grad_b, None, None


class LayerNorm(Function):
    """y = γ·(x − μ)/sqrt(σ² + ε) + β, statistics over the last ``ndim`` axes of each sample.

    Shapes: x (*, *normalized_shape), weight/bias normalized_shape or None -> y like x.
    Backward:
        grad_x = r/M · (M·g − Σg − x̂·Σ(g·x̂)) with g = γ·grad_out (sums over the normalised axes)
        grad_γ = Σ_{leading axes} grad_out·x̂,   grad_β = Σ_{leading axes} grad_out
    """
    @staticmethod
    def forward(ctx, x, weight=None, bias=None, ndim=1, eps=1e-5):
        axes = tuple(range(x.ndim - ndim, x.ndim))
        mu = x.mean(axis=axes, keepdims=True)                  # (*, 1, ..., 1)
        xc = x - mu
        r = 1 / np.sqrt((xc * xc).mean(axis=axes, keepdims=True) + x.dtype.type(eps))
        xh = xc * r
        y = xh * weight if weight is not None else xh.copy()
        if bias is not None:
            y += bias
        ctx.save_for_backward(xh, r, weight)
        ctx.axes, ctx.m = axes, int(np.prod([x.shape[a] for a in axes]))
        return y

    @staticmethod
    def backward(ctx, grad_out):
        xh, r, w = ctx.saved_tensors
        axes, m = ctx.axes, ctx.m
        need = ctx.needs_input_grad
        lead = tuple(range(grad_out.ndim - len(axes)))
        gxh = grad_out * w if w is not None else grad_out
        grad_x = _normalize_backward(gxh, xh, r, axes, m) if need[0] else None
        grad_w = (grad_out * xh).sum(axis=lead) if w is not None and need[1] else None
        grad_b = grad_out.sum(axis=lead) if len(need) > 2 and need[2] else None
        return grad_x, grad_w, grad_b


class Dropout(Function):
    """y = x·mask/(1 − p) with mask ~ Bernoulli(1 − p) drawn by the caller (inverted dropout).

    Shapes: x any, mask like x (bool). Backward: grad_x = grad_out·mask/(1 − p).
    """
    @staticmethod
    def forward(ctx, x, mask, p=0.5):
        scale = x.dtype.type(1.0 / (1.0 - p))
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return np.where(mask, x * scale, x.dtype.type(0))

    @staticmethod
    def backward(ctx, grad_out):
        (mask,) = ctx.saved_tensors
        return np.where(mask, grad_out * ctx.scale, grad_out.dtype.type(0)), None
