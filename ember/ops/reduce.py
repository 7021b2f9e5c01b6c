"""Reductions: sum, mean, max over all elements or over ``dim`` (with ``keepdim``).

The adjoint of a reduction is a broadcast: each input element that contributed to an output
receives that output's gradient (scaled by 1/n for a mean; only the maximum for a max).
"""
import numpy as np

from ..autograd import Function


def _expand(grad_out, in_shape, dim, keepdim):
    """Reinsert the reduced axes (size 1) so grad_out broadcasts against the input."""
    if dim is None:
        return grad_out.reshape((1,) * len(in_shape))
    if not keepdim:
        dims = (dim,) if isinstance(dim, int) else dim
        grad_out = np.expand_dims(grad_out, tuple(d % len(in_shape) for d in dims))
    return grad_out


class Sum(Function):
    """y = Σ x over ``dim``;  grad_x = grad_out broadcast back to x's shape."""
    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False):
        ctx.in_shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        return np.asarray(x.sum(axis=dim, keepdims=keepdim))

    @staticmethod
    def backward(ctx, grad_out):
        shape, dim, keepdim = ctx.in_shape, ctx.dim, ctx.keepdim
        return np.broadcast_to(_expand(grad_out, shape, dim, keepdim), shape)


class Mean(Function):
    """y = (1/n) Σ x over ``dim``;  grad_x = grad_out / n broadcast back (n = reduced count)."""
    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False):
        y = np.asarray(x.mean(axis=dim, keepdims=keepdim), dtype=x.dtype)
        ctx.in_shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        ctx.n = x.size // max(y.size, 1) if x.size else 1
        return y

    @staticmethod
    def backward(ctx, grad_out):
        shape, dim, keepdim = ctx.in_shape, ctx.dim, ctx.keepdim
        g = _expand(grad_out, shape, dim, keepdim) / grad_out.dtype.type(ctx.n)
        return np.broadcast_to(g, shape)


class Max(Function):
    """y = max of all elements;  grad_x = grad_out / k at each of the k tied maxima
    (torch.max() without dim splits the gradient evenly among ties)."""
    @staticmethod
    def forward(ctx, x):
        y = np.asarray(x.max())
        ctx.save_for_backward(x == y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (mask,) = ctx.saved_tensors
        return mask * (grad_out / grad_out.dtype.type(mask.sum()))


class MaxDim(Function):
    """y = max of x along ``dim``;  grad_x = grad_out at the first maximum (the index torch
    returns), 0 elsewhere."""
    @staticmethod
    def forward(ctx, x, dim, keepdim=False):
        idx = np.expand_dims(np.argmax(x, axis=dim), dim)
        ctx.save_for_backward(idx)
        ctx.in_shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        y = np.take_along_axis(x, idx, axis=dim)
        return y if keepdim else np.squeeze(y, axis=dim)

    @staticmethod
    def backward(ctx, grad_out):
        (idx,) = ctx.saved_tensors
        shape, dim, keepdim = ctx.in_shape, ctx.dim, ctx.keepdim
        grad_x = np.zeros(shape, dtype=grad_out.dtype)
        g = grad_out if keepdim else np.expand_dims(grad_out, dim)
        np.put_along_axis(grad_x, idx, g, axis=dim)
        return grad_x


class Cumsum(Function):
    """y_i = Σ_{j≤i} x_j along ``dim``;  grad_x_j = Σ_{i≥j} grad_out_i (a cumsum run from the end)."""
    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        return np.cumsum(x, axis=dim, dtype=np.int64 if x.dtype.kind in "biu" else x.dtype)  # ints: int64, as torch

    @staticmethod
    def backward(ctx, grad_out):
        return np.flip(np.cumsum(np.flip(grad_out, ctx.dim), axis=ctx.dim), ctx.dim)
