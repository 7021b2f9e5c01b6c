"""Softmax family and losses, each fused into one op with its closed-form VJP.

Notation: z logits (N, C), t integer class targets (N,), p = softmax(z), n = N (mean reduction).
Source: deck 001 "softmax and cross-entropy, dL/dz = σ(z) − y"; deck 002 backprop recipes for
softmax and cross-entropy; deck 000 binary logistic loss.
"""
import numpy as np

from ..autograd import Function
from .elementwise import stable_sigmoid


def _log_softmax(z, dim):
    """log p = z − max − log Σ exp(z − max): subtracting the max keeps every exp ≤ 1."""
    m = z.max(axis=dim, keepdims=True)
    shifted = z - m
    return shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))


def _reduce(loss, reduction, n=None):
    if reduction == "mean":
        return np.asarray(loss.sum() / (loss.dtype.type(n) if n is not None else loss.size), dtype=loss.dtype)
    if reduction == "sum":
        return np.asarray(loss.sum(), dtype=loss.dtype)
    return loss


def _unreduce(grad_out, shape, reduction, n=None):
    """dL/d(per-element loss) for each reduction: 1/n (mean), 1 (sum), grad_out itself (none)."""
    if reduction == "mean":
        return np.broadcast_to(grad_out / grad_out.dtype.type(n if n is not None else np.prod(shape)), shape)
    if reduction == "sum":
        return np.broadcast_to(grad_out, shape)
    return grad_out


class Softmax(Function):
    """p = exp(z) / Σ exp(z) along ``dim``;  grad_z = p ⊙ (grad_out − Σ(grad_out ⊙ p))."""
    @staticmethod
    def forward(ctx, z, dim):
        p = np.exp(_log_softmax(z, dim))
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
        y = _log_softmax(z, dim)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out - np.exp(y) * grad_out.sum(axis=ctx.dim, keepdims=True)


class CrossEntropy(Function):
    """L = −(1/n) Σ_i log p[i, t_i], p = softmax(z): log-softmax and NLL fused (stable).

    grad_z = (p − onehot(t)) · grad_out / n   (deck 001: dL/dz = σ(z) − y).
    """
    @staticmethod
    def forward(ctx, z, target, reduction="mean"):
        logp = _log_softmax(z, 1)                               # (N, C)
        rows = np.arange(z.shape[0])
        loss = -logp[rows, target]                              # (N,)
        ctx.save_for_backward(logp, target)
        ctx.reduction = reduction
        return _reduce(loss, reduction)

    @staticmethod
    def backward(ctx, grad_out):
        logp, target = ctx.saved_tensors
        g = _unreduce(grad_out, target.shape, ctx.reduction)    # (N,)
        grad_z = np.exp(logp)                                   # p, (N, C)
        grad_z[np.arange(len(target)), target] -= 1             # p − onehot(t)
        return grad_z * g[:, None], None


class NLLLoss(Function):
    """L = −(1/n) Σ_i x[i, t_i] for log-probabilities x;  grad_x = −onehot(t) · grad_out / n."""
    @staticmethod
    def forward(ctx, x, target, reduction="mean"):
        ctx.save_for_backward(target)
        ctx.args = x.shape, reduction
        return _reduce(-x[np.arange(x.shape[0]), target], reduction)

    @staticmethod
    def backward(ctx, grad_out):
        (target,) = ctx.saved_tensors
        shape, reduction = ctx.args
        grad_x = np.zeros(shape, dtype=grad_out.dtype)
        grad_x[np.arange(shape[0]), target] = -_unreduce(grad_out, target.shape, reduction)
        return grad_x, None


class MSELoss(Function):
    """L = (1/n) Σ (x − y)² (squared loss, deck 003: the mean is its argmin);
    grad_x = 2 (x − y) grad_out / n,  grad_y = −grad_x."""
    @staticmethod
    def forward(ctx, x, y, reduction="mean"):
        d = x - y
        ctx.save_for_backward(d)
        ctx.reduction = reduction
        return _reduce(d * d, reduction)

    @staticmethod
    def backward(ctx, grad_out):
        (d,) = ctx.saved_tensors
        g = 2 * d * _unreduce(grad_out, d.shape, ctx.reduction)
        return g, -g


class BCELoss(Function):
    """L = −(1/n) Σ [y log p + (1 − y) log(1 − p)] for probabilities p (deck 000's logistic loss);
    log terms clamped at −100 as torch;  grad_p = (p − y) / (p (1 − p)) · grad_out / n,
    grad_y = (log(1 − p) − log p) · grad_out / n (the target may require grad, as in torch)."""
    @staticmethod
    def forward(ctx, p, y, reduction="mean"):
        with np.errstate(divide="ignore"):
            logp, log1mp = np.maximum(np.log(p), -100), np.maximum(np.log1p(-p), -100)
        ctx.save_for_backward(p, y)
        ctx.reduction = reduction
        return _reduce(-(y * logp + (1 - y) * log1mp), reduction)

    @staticmethod
    def backward(ctx, grad_out):
        p, y = ctx.saved_tensors
        eps = p.dtype.type(1e-12)  # torch's EPSILON in binary_cross_entropy_backward
        up = _unreduce(grad_out, p.shape, ctx.reduction)
        g = (p - y) / np.maximum((1 - p) * p, eps)
        gy = None
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore"):
                gy = (np.maximum(np.log1p(-p), -100) - np.maximum(np.log(p), -100)) * up
        return g * up, gy


class BCEWithLogitsLoss(Function):
    """L = (1/n) Σ [softplus(z) − y z] = BCE(σ(z), y) without overflow:
    softplus(z) = max(z, 0) + log(1 + e^−|z|);  grad_z = (σ(z) − y) · grad_out / n,
    grad_y = −z · grad_out / n (the target may require grad, as in torch)."""
    @staticmethod
    def forward(ctx, z, y, reduction="mean"):
        loss = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        ctx.save_for_backward(z, y)
        ctx.reduction = reduction
        return _reduce(loss, reduction)

    @staticmethod
    def backward(ctx, grad_out):
        z, y = ctx.saved_tensors
        sig = stable_sigmoid(z)
        up = _unreduce(grad_out, z.shape, ctx.reduction)
        return (sig - y) * up, (-z * up if ctx.needs_input_grad[1] else None)
