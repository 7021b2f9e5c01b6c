"""PyTorch's pooling beyond the lecture decks, next to the reference ops of ``ember.ops.pool``:
max pooling's ``return_indices`` and its windows lying wholly outside the input, avg pooling's
``count_include_pad=False`` and ``divisor_override`` (subclasses of the reference ops), and
MaxUnpool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d. ``ember.nn.functional`` calls these ops when
those options are asked for; the reference ops stay the decks' formula plus padding, dilation
and ceil_mode (issue 11's core budget). Imports nothing but numpy, the engine and ``ops.pool``.
"""
import numpy as np

from ..autograd import Function
from ..ops import pool


class MaxPool2d(pool.MaxPool2d):
    """``ops.pool.MaxPool2d`` (same formula, shapes and gradient) with PyTorch's extras.

    ``indices``: a list that, when given, receives the int64 (N, C, OH, OW) array of each
    maximum's flat position ih*W + iw in its input plane (torch's ``return_indices=True``).
    A window with no cell inside x at all (dilation stepping over it) follows PyTorch's index,
    and its gradient goes to the cell that index names (``_stray_windows``).
    """
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False, indices=None):
        y = pool.MaxPool2d.forward(ctx, x, kernel_size, stride, padding, dilation, ceil_mode)
        (k,), (OH, OW), W = ctx.saved_tensors, y.shape[2:], x.shape[3]
        ctx.stray = _stray_windows(ctx.inside, W, (OH, OW), stride, padding, dilation)
        if indices is not None:
            (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
            kh, kw = np.divmod(k[:, :, 0], kernel_size[1])     # k -> (ih, iw) -> ih*W + iw
            flat = (np.arange(OH)[:, None] * SH - PH + kh * DH) * W + np.arange(OW) * SW - PW + kw * DW
            if ctx.stray is not None:                          # PyTorch's index of a window outside x
                flat[:, :, ctx.stray[0], ctx.stray[1]] = ctx.stray[2]
            indices.append(flat.astype(np.int64))
        return y

    @staticmethod
    def backward(ctx, grad_out):
        gx = pool.MaxPool2d.backward(ctx, grad_out)
        if ctx.stray is not None:                              # as PyTorch: to the cell its index names
            N, C = grad_out.shape[:2]
            gx = np.ascontiguousarray(gx)
            for i, j, f in zip(*ctx.stray):
                if f < gx.shape[2] * gx.shape[3]:
                    gx.reshape(N, C, gx.shape[2] * gx.shape[3])[:, :, f] += grad_out[:, :, i, j]
        return gx


def _stray_windows(inside, W, out, stride, padding, dilation):
    """Windows with no cell inside x (possible with dilation or ceil_mode): their max is −inf and
    PyTorch's index is ih0*W + iw0, ih0 the first window row ≥ 0 (which may lie past x, or name a
    cell outside the window; PyTorch's backward sends the gradient there). (rows, cols, index), or None."""
    rows, cols = np.nonzero(~inside.any(axis=0))
    if not rows.size:
        return None
    first = [np.arange(o) * s - p for o, s, p in zip(out, stride, padding)]
    first = [f + np.maximum((d - 1 - f) // d, 0) * d for f, d in zip(first, dilation)]   # skip cells < 0
    return rows, cols, first[0][rows] * W + first[1][cols]


def avg_pool_cells_inside(n, k, s, p, out):
    """Per output position along one axis: the window's cells inside [0, n), PyTorch's divisor
    with count_include_pad=False."""
    start = np.arange(out) * s - p
    return np.minimum(start + k, n) - np.maximum(start, 0)


class AvgPool2d(pool.AvgPool2d):
    """``ops.pool.AvgPool2d`` (same sum, shapes and gradient) with PyTorch's other divisors:
    ``divisor_override`` if given, else with count_include_pad=False the window's cells inside x
    (``avg_pool_cells_inside``), else the reference op's default (cells inside [−P, H + P))."""
    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding=(0, 0), ceil_mode=False, count_include_pad=True,
                divisor_override=None):
        sizes = list(zip(x.shape[2:], kernel_size, stride, padding))
        out = [pool.pool_out_size(n, k, s, p, 1, ceil_mode) for n, k, s, p in sizes]
        divisor = None
        if divisor_override is not None:
            divisor = np.full(out, divisor_override)
        elif not count_include_pad:
            divisor = np.outer(*(avg_pool_cells_inside(*a, o) for a, o in zip(sizes, out)))
        return pool.AvgPool2d.forward(ctx, x, kernel_size, stride, padding, ceil_mode, divisor)


class MaxUnpool2d(Function):
    """The partial inverse of MaxPool2d (torch.nn.functional.max_unpool2d): a zero plane of
    (OH, OW) per (n, c) with y[n, c].flat[indices[n, c, i, j]] = x[n, c, i, j].

    Shapes: x and indices (N, C, H, W) -> (N, C, OH, OW); indices are flat positions in an
    OH×OW plane (MaxPool2d's ``return_indices``), checked by the caller to lie in [0, OH*OW).
    A repeated index keeps the last value written (row-major); PyTorch leaves which unspecified.
    Backward: a gather, grad_x[n, c, i, j] = grad_out[n, c].flat[indices[n, c, i, j]].
    """
    @staticmethod
    def forward(ctx, x, indices, output_size):
        N, C = x.shape[:2]
        idx = indices.reshape(N, C, x.shape[2] * x.shape[3])   # (no -1: N may be 0)
        y = np.zeros((N, C, output_size[0] * output_size[1]), x.dtype)
        np.put_along_axis(y, idx, x.reshape(N, C, x.shape[2] * x.shape[3]), axis=2)
        ctx.save_for_backward(idx)
        ctx.x_shape = x.shape
        return y.reshape(N, C, *output_size)

    @staticmethod
    def backward(ctx, grad_out):
        (idx,) = ctx.saved_tensors
        N, C = grad_out.shape[:2]
        g = np.take_along_axis(grad_out.reshape(N, C, grad_out.shape[2] * grad_out.shape[3]), idx, axis=2)
        return g.reshape(ctx.x_shape), None


def adaptive_bins(n_in: int, n_out: int):
    """PyTorch's adaptive pooling bins: bin i covers [⌊i·n_in/n_out⌋, ⌈(i+1)·n_in/n_out⌉)."""
    return [(i * n_in // n_out, -(-(i + 1) * n_in // n_out)) for i in range(n_out)]


class AdaptiveAvgPool2d(Function):
    """y[n, c, i, j] = mean of x[n, c] over row bin i × column bin j (``adaptive_bins``).

    Shapes: (N, C, H, W) -> (N, C, OH, OW). Bins may overlap when OH does not divide H.
    Backward: every input of bin (i, j) receives grad_out[i, j]/|bin|, summed over the bins it is in.
    grad_x has x's memory order (a conv output's (C, H, W, N) order stays, so the conv's backward
    before it reads it without a transposing copy: 32 MB a step in the deck-001 network); global
    pooling (1×1 output) writes it in one pass.

    Global pooling of an input whose H and W are adjacent in memory (NCHW, or a conv output's
    CHWN) runs in memory order as (P, H·W, Q) blocks (P, Q: the axes before and after H, W):
    when Q > 1 (H, W not innermost) the sums are one batched matrix-vector product with a
    vector of ones, and the gradient is written as rows of W·Q floats. NumPy's
    ``mean(axis=(2, 3))`` and broadcast copy over a CHWN view loop over N floats at a time: in the
    deck-001 network (64 × 125 × 125 × 8) 20-30 ms against 1.7 ms forward and 7.5 against 1.6 ms
    backward (RESULTS.md, tenth session).
    """
    @staticmethod
    def forward(ctx, x, output_size):
        OH, OW = output_size
        rows, cols = adaptive_bins(x.shape[2], OH), adaptive_bins(x.shape[3], OW)
        ctx.in_shape, ctx.rows, ctx.cols = x.shape, rows, cols
        ctx.order = sorted(range(x.ndim), key=lambda a: -abs(x.strides[a]))   # axes, outermost first
        ctx.blocks = _hw_blocks(x.shape, ctx.order) if len(rows) == len(cols) == 1 and x.size else None
        xt = x.transpose(ctx.order)                            # x in its memory order
        if ctx.blocks is not None and ctx.blocks[3] > 1 and xt.flags.c_contiguous:
            pre, post, P, Q = ctx.blocks
            H, W = x.shape[2:]
            xt = xt.reshape(P, H * W, Q)
            sums = np.matmul(np.ones(H * W, x.dtype), xt)      # (P, Q): Σ over h, w
            sums = sums.reshape([x.shape[a] for a in pre + post]).transpose(np.argsort(pre + post))
            return (sums / x.dtype.type(H * W)).reshape(x.shape[:2] + (1, 1))
        y = np.empty(x.shape[:2] + (OH, OW), dtype=x.dtype)
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
        return y

    @staticmethod
    def backward(ctx, grad_out):
        shape, rows, cols, order = ctx.in_shape, ctx.rows, ctx.cols, ctx.order
        base = np.empty([shape[a] for a in order], grad_out.dtype)   # x's memory order
        gx = base.transpose(np.argsort(order))                 # (N, C, H, W) view of it
        if len(rows) == len(cols) == 1:                        # global pooling: every input gets g/(H·W),
            g = grad_out / grad_out.dtype.type(shape[2] * shape[3])
            if ctx.blocks is None:
                base[...] = g.transpose(order)                 # in memory order
                return gx
            pre, post, P, Q = ctx.blocks                       # rows of W·Q floats: (P, 1, W·Q) broadcast
            g = g.reshape(shape[:2]).transpose(pre + post).reshape(P, 1, 1, Q)
            base.reshape(P, shape[2], shape[3] * Q)[...] = np.broadcast_to(g, (P, 1, shape[3], Q)).reshape(P, 1, -1)
            return gx
        base[...] = 0
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                area = grad_out.dtype.type((h1 - h0) * (w1 - w0))
                gx[:, :, h0:h1, w0:w1] += (grad_out[:, :, i, j] / area)[:, :, None, None]
        return gx


def _hw_blocks(shape, order):
    """(pre, post, P, Q) when axes 2, 3 (H, W) are adjacent in the memory order ``order``
    (outermost first): the N/C axes before and after them and their sizes' products; else None."""
    i = order.index(2)
    if i + 1 >= len(order) or order[i + 1] != 3:
        return None
    pre, post = list(order[:i]), list(order[i + 2:])
    return pre, post, int(np.prod([shape[a] for a in pre])), int(np.prod([shape[a] for a in post]))


class AdaptiveMaxPool2d(Function):
    """y[n, c, i, j] = max of x[n, c] over row bin i × column bin j (``adaptive_bins``),
    torch.nn.functional.adaptive_max_pool2d.

    Shapes: (N, C, H, W) -> (N, C, OH, OW). ``indices``: a list that, when given, receives the
    int64 (N, C, OH, OW) flat positions ih*W + iw of the maxima (``return_indices=True``).
    Backward: each bin's gradient goes to its first maximum (row-major), as PyTorch; bins may
    overlap, so a pixel sums the gradients of the bins whose maximum it is:
        k* = argmax over the bin,   grad_x[bin cell k*] += grad_out[i, j]
    """
    @staticmethod
    def forward(ctx, x, output_size, indices=None):
        (N, C, H, W), (OH, OW) = x.shape, output_size
        rows, cols = adaptive_bins(H, OH), adaptive_bins(W, OW)
        y = np.empty((N, C, OH, OW), dtype=x.dtype)
        flat = np.empty((N, C, OH, OW), dtype=np.int64)
        first = {}
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                cells = x[:, :, h0:h1, w0:w1].reshape(N, C, (h1 - h0) * (w1 - w0))
                k = cells.argmax(axis=2)[:, :, None]                        # first maximum
                y[:, :, i, j] = np.take_along_axis(cells, k, axis=2)[:, :, 0]
                kh, kw = np.divmod(k[:, :, 0], w1 - w0)
                flat[:, :, i, j] = (h0 + kh) * W + w0 + kw
                first[i, j] = k
        if indices is not None:
            indices.append(flat)
        ctx.in_shape, ctx.rows, ctx.cols, ctx.first = x.shape, rows, cols, first
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (N, C, H, W), rows, cols = ctx.in_shape, ctx.rows, ctx.cols
        gx = np.zeros((N, C, H, W), dtype=grad_out.dtype)
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                g = np.zeros((N, C, (h1 - h0) * (w1 - w0)), dtype=grad_out.dtype)
                np.put_along_axis(g, ctx.first[i, j], grad_out[:, :, i, j, None], axis=2)
                gx[:, :, h0:h1, w0:w1] += g.reshape(N, C, h1 - h0, w1 - w0)
        return gx
