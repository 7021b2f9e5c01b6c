"""Movement ops: they move or select elements without arithmetic, so each backward routes
gradients back to where the elements came from (reshape back, inverse permutation, scatter-add
for indexing, crop for padding)."""
import numpy as np

from ..autograd import Function, unbroadcast


class Reshape(Function):
    """y = x.reshape(shape);  grad_x = grad_out.reshape(x.shape)."""
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"shape {tuple(shape)} is invalid for input of size {x.size} "
                             f"(shape {x.shape})") from None

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out.reshape(ctx.in_shape)


class Permute(Function):
    """y = x.transpose(dims);  grad_x = grad_out.transpose(argsort(dims)) (the inverse permutation)."""
    @staticmethod
    def forward(ctx, x, dims):
        if sorted(d % x.ndim for d in dims) != list(range(x.ndim)):
            raise ValueError(f"permute: dims {tuple(dims)} is not a permutation of {x.ndim} dims")
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out.transpose(np.argsort([d % grad_out.ndim for d in ctx.dims]))


class Clone(Function):
    """y = copy of x in x's memory order (torch's preserve_format);  grad_x = grad_out."""
    @staticmethod
    def forward(ctx, x):
        return x.copy(order="K")

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out


class GetItem(Function):
    """y = x[index] (basic or advanced indexing);  grad_x = zeros with grad_out scattered-added
    at ``index`` (``np.add.at``, so an element selected twice gets both gradients)."""
    @staticmethod
    def forward(ctx, x, index):
        ctx.in_shape, ctx.index = x.shape, index
        try:
            return np.asarray(x[index])
        except IndexError as e:
            raise IndexError(f"index {index!r} is invalid for a tensor of shape {x.shape}: {e}") from None

    @staticmethod
    def backward(ctx, grad_out):
        shape, index = ctx.in_shape, ctx.index
        grad_x = np.zeros(shape, dtype=grad_out.dtype)
        np.add.at(grad_x, index, grad_out)
        return grad_x


class SetItem(Function):
    """y = x with y[index] = v (``x[index] = v`` out of place);  grad_x = grad_out with zeros at
    ``index``,  grad_v = grad_out[index] summed back to v's shape."""
    @staticmethod
    def forward(ctx, x, v, index):
        ctx.index, ctx.v_shape = index, np.shape(v)
        y = x.copy()
        y[index] = v
        return y

    @staticmethod
    def backward(ctx, grad_out):
        grad_x = grad_out.copy()
        grad_x[ctx.index] = 0
        return grad_x, unbroadcast(np.asarray(grad_out[ctx.index]), ctx.v_shape)


class ViewOf(Function):
    """y = view(x), ``view`` a function returning a NumPy view (a PyTorch view taken again from its
    base after an in-place write through it);  grad_x = zeros of x's layout, grad_out written into
    the view."""
    @staticmethod
    def forward(ctx, x, fn):
        ctx.view, ctx.like = fn, x
        return fn(x)

    @staticmethod
    def backward(ctx, grad_out):
        grad_x = np.zeros_like(ctx.like)
        ctx.view(grad_x)[...] = grad_out
        return grad_x


class ViewScatter(Function):
    """y = x with ``view(x)`` overwritten by v, written into x's storage (an in-place op through a
    view of x, PyTorch's CopySlices);  grad_x = grad_out with zeros in the view, grad_v = the view of
    grad_out."""
    @staticmethod
    def forward(ctx, x, v, fn):
        ctx.view, ctx.like = fn, x
        fn(x)[...] = v
        return x

    @staticmethod
    def backward(ctx, grad_out):
        g = np.zeros_like(ctx.like)
        g[...] = grad_out
        grad_v = ctx.view(g).copy()
        ctx.view(g)[...] = 0
        return g, grad_v


class Pad(Function):
    """y = x padded with ``value``; ``pad`` lists (before, after) pairs starting from the LAST
    axis, as torch.nn.functional.pad;  grad_x = grad_out cropped back to x's region."""
    @staticmethod
    def forward(ctx, x, pad, value=0.0):
        widths = [(0, 0)] * x.ndim
        for i in range(len(pad) // 2):
            widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
        ctx.crop = tuple(slice(a, a + n) for (a, _), n in zip(widths, x.shape))
        return np.pad(x, widths, constant_values=value)

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out[ctx.crop]


class Cat(Function):
    """y = concatenation of the inputs along ``dim``;  grad_i = the slice of grad_out from input i."""
    @staticmethod
    def forward(ctx, *xs, dim=0):
        ctx.sizes, ctx.dim = [x.shape[dim] for x in xs], dim
        return np.concatenate(xs, axis=dim)

    @staticmethod
    def backward(ctx, grad_out):
        return tuple(np.split(grad_out, np.cumsum(ctx.sizes)[:-1], axis=ctx.dim))
