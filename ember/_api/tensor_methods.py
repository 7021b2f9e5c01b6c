"""PyTorch's Tensor methods that ember's core does not define itself, made of ember's ops.

Differentiable methods (``pow``, ``mm``, ``expand``, ``repeat``, ``std``, ``norm``, ``prod``,
``sort``/``topk`` values, ``gather``, ``cumsum``, ...) are compositions of the ops in
``ember/ops`` (or one op call), so gradients flow through the usual VJPs; comparisons, ``any``,
``all``, ``argsort`` and indices return tensors outside the graph, as in torch. ``install()``
attaches each function to ``Tensor`` under its PyTorch name unless ``Tensor`` already defines it.
Sources: the PyTorch 2.13 documentation of each method (argument names, defaults, errors).
"""
from __future__ import annotations

import math
import numbers
import operator

import numpy as np

from ..autograd import Function, unbroadcast
from ..nn.functional import cat
from ..ops import elementwise as _ew, reduce as _red
from ..tensor import MaxResult, Tensor, _sizes

builtins_min, builtins_max = min, max


def _np(x):
    """The array of a Tensor (read-only use) or of a number/array-like."""
    return x.numpy() if isinstance(x, Tensor) else np.asarray(x)


def _dim(self, dim) -> int:
    """``dim`` normalised to 0..ndim-1 (a 0-d tensor accepts 0 and -1), or IndexError as torch."""
    n = max(self.ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n


# ---- arithmetic with PyTorch's names --------------------------------------------------------------
def pow(self, exponent):
    """self ** exponent (a number or a tensor, broadcast); differentiable in both."""
    return self ** exponent


def add(self, other, *, alpha=1):
    """self + alpha * other (torch.Tensor.add); differentiable."""
    return self + (other if alpha == 1 else other * alpha)


def sub(self, other, *, alpha=1):
    """self - alpha * other (torch.Tensor.sub); differentiable."""
    return self - (other if alpha == 1 else other * alpha)


def mul(self, other):
    """self * other (broadcast); differentiable."""
    return self * other


def div(self, other, *, rounding_mode=None):
    """self / other (true division, differentiable), or with ``rounding_mode`` 'trunc' / 'floor'
    the rounded quotient (integer dtypes stay integer), outside the graph (torch's gradient there
    is 0 everywhere). Raises RuntimeError for another rounding_mode, ZeroDivisionError for an
    integer division by zero."""
    if rounding_mode is None:
        return self / other
    if rounding_mode not in ("trunc", "floor"):
        raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                         f"'{rounding_mode}'")
    a, b = _np(self), _np(other)
    ints = a.dtype.kind in "biu" and b.dtype.kind in "biu"
    if ints and (b == 0).any():
        raise ZeroDivisionError("ZeroDivisionError: integer division by zero")
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (np.trunc if rounding_mode == "trunc" else np.floor)(np.true_divide(a, b))
    if ints:
        dtype = np.result_type(a.dtype, b.dtype) if isinstance(other, Tensor) else a.dtype
    else:
        dtype = a.dtype if a.dtype.kind == "f" else b.dtype if isinstance(other, Tensor) else np.float32
    return Tensor(q.astype(dtype))


def neg(self):
    """-self; differentiable."""
    return -self


def square(self):
    """self ** 2 (torch.Tensor.square); differentiable."""
    return self ** 2


def sin(self):
    """sin(self) elementwise (``ember.ops.elementwise.Sin``)."""
    return _ew.Sin.apply(self)


def cos(self):
    """cos(self) elementwise (``ember.ops.elementwise.Cos``)."""
    return _ew.Cos.apply(self)


def rsqrt(self):
    """1 / sqrt(self), differentiable."""
    return self ** -0.5


def _matrix_check(name, a, b, nd):
    for label, t in (("self" if name != "bmm" else "batch1", a), ("mat2" if name != "bmm" else "batch2", b)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}(): argument '{label}' must be Tensor, not {type(t).__name__}")
        if t.ndim != nd:
            raise RuntimeError(f"{label} must be a {'matrix' if nd == 2 else '3D tensor'}, got {t.ndim}-D")
    if a.shape[-1] != b.shape[-2] or (nd == 3 and a.shape[0] != b.shape[0]):
        shape = lambda t: "x".join(map(str, t.shape))  # noqa: E731
        raise RuntimeError(f"{name}: shapes cannot be multiplied ({shape(a)} and {shape(b)})")


def mm(self, mat2):
    """Matrix product of two 2-D tensors (n, m) @ (m, p) -> (n, p) (torch.mm, no broadcasting);
    differentiable. Raises RuntimeError for other ranks or mismatched inner sizes."""
    _matrix_check("mm", self, mat2, 2)
    return self @ mat2


def bmm(self, mat2):
    """Batched matrix product (b, n, m) @ (b, m, p) -> (b, n, p) (torch.bmm, no broadcasting);
    differentiable. Raises RuntimeError for other ranks or mismatched sizes."""
    _matrix_check("bmm", self, mat2, 3)
    from .nodes import named
    return named(self @ mat2, "BmmBackward0")


# ---- comparisons and logic (boolean results, outside the graph) ----------------------------------
def _compare(symbol, fn):
    def method(self, other):
        return fn(self, other)
    method.__doc__ = f"self {symbol} other elementwise -> bool tensor (outside the graph, as torch)."
    return method


eq, ne = _compare("==", operator.eq), _compare("!=", operator.ne)
gt, lt = _compare(">", operator.gt), _compare("<", operator.lt)
ge, le = _compare(">=", operator.ge), _compare("<=", operator.le)


def _logical(fn):
    def method(self, dim=None, keepdim=False):
        return Tensor(np.asarray(fn(_np(self).astype(bool), axis=dim, keepdims=keepdim)))
    return method


any = _logical(np.any)
any.__doc__ = "True where any element (along ``dim``) is non-zero -> bool tensor (torch.Tensor.any)."
all = _logical(np.all)
all.__doc__ = "True where every element (along ``dim``) is non-zero -> bool tensor (torch.Tensor.all)."


# ---- shape ---------------------------------------------------------------------------------------
def view_as(self, other):
    """self reshaped to other's shape (torch.Tensor.view_as); differentiable."""
    return self.reshape(*other.shape)


reshape_as = view_as


class Contiguous(Function):
    """y = x copied into row-major (C) order, the same values;  grad_x = grad_out.

    An (N, C, H, W) array stored in CHWN order (a compiled conv's output seen as NCHW) is the
    transpose of a C-contiguous (C·H·W, N) matrix: it is copied as one, ``TILE`` rows at a time,
    so that each tile's reads and writes stay in cache. NumPy's one-pass copy wrote one value per
    image per step: (128, 32, 32, 32) float32 took 22.7 ms against 5.2 ms in tiles, (128, 64, 8,
    8) 0.85 against 0.48 ms (RESULTS.md, seventeenth session). Other arrays: NumPy's copy.
    """
    TILE = 256

    @staticmethod
    def forward(ctx, x):
        out = np.empty(x.shape, x.dtype)
        if x.ndim != 4 or x.size < 1 << 16 or not x.transpose(1, 2, 3, 0).flags.c_contiguous:
            out[...] = x
            return out
        src, dst = x.transpose(1, 2, 3, 0).reshape(-1, x.shape[0]), out.reshape(x.shape[0], -1)
        for p0 in range(0, src.shape[0], Contiguous.TILE):
            dst[:, p0:p0 + Contiguous.TILE] = src[p0:p0 + Contiguous.TILE].T
        return out

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out


def contiguous(self, memory_format=None):
    """self if its storage is in row-major order, else a copy that is (torch.Tensor.contiguous: so
    an in-place write to the result never reaches a tensor that ``self`` is a view of; the copy
    is made by ``Contiguous``, differentiable). ``clone()`` keeps the memory order instead, as
    torch's does (preserve_format)."""
    return self if self._data.flags.c_contiguous else Contiguous.apply(self)


class Expand(Function):
    """y = x broadcast to ``shape`` (a read-only NumPy view, no copy: torch.Tensor.expand);
    grad_x = grad_out summed over the broadcast dims (``unbroadcast``). The one op defined here
    rather than in ``ember/ops``: it exists for PyTorch's ``expand`` alone."""
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad_out):
        return unbroadcast(grad_out, ctx.in_shape)


def expand(self, *sizes):
    """self broadcast to ``sizes`` (torch.Tensor.expand): -1 keeps a size, new leading dims may be
    added, only size-1 dims may grow. A view sharing self's storage (read-only: an in-place write
    to it raises PyTorch's error), differentiable (the gradient sums over the copies).
    Raises RuntimeError for an impossible size."""
    sizes = tuple(_sizes(sizes))
    lead = len(sizes) - self.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal to "
                           f"the number of dimensions in the tensor ({self.ndim})")
    shape = []
    for i, n in enumerate(sizes):
        old = self.shape[i - lead] if i >= lead else None
        if n == -1:
            if old is None:
                raise RuntimeError(f"expand: -1 is not allowed in a leading, non-existing dimension {i}")
            n = old
        if old is not None and old != n and old != 1:
            raise RuntimeError(f"The expanded size of the tensor ({n}) must match the existing size ({old}) at "
                               f"non-singleton dimension {i}.  Target sizes: {list(sizes)}.  "
                               f"Tensor sizes: {list(self.shape)}")
        shape.append(n)
    shape = tuple(shape)
    return self._view(Expand.apply(self, shape=shape), lambda a: np.broadcast_to(a, shape))


def expand_as(self, other):
    """self expanded to other's shape (torch.Tensor.expand_as)."""
    return expand(self, *other.shape)


def repeat(self, *sizes):
    """self tiled ``sizes[i]`` times along each dim (torch.Tensor.repeat; extra leading sizes add
    dims). Differentiable. Raises RuntimeError when fewer sizes than dims are given."""
    sizes = tuple(_sizes(sizes))
    if len(sizes) < self.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions "
                           "of tensor")
    shape = (1,) * (len(sizes) - self.ndim) + tuple(self.shape)
    interleaved = [v for n in shape for v in (1, n)]               # (1, s0, 1, s1, ...)
    target = [v for r, n in zip(sizes, shape) for v in (r, n)]     # (r0, s0, r1, s1, ...)
    out = expand(self.reshape(*interleaved), *target)
    return out.reshape(*[r * n for r, n in zip(sizes, shape)])


def chunk(self, chunks, dim=0):
    """Split into ``chunks`` pieces of ceil(n / chunks) along ``dim`` (the last may be smaller;
    torch.Tensor.chunk); views through GetItem, so differentiable."""
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    n = self.shape[_dim(self, dim)]
    return split(self, max(math.ceil(n / chunks), 1), dim)


def split(self, split_size_or_sections, dim=0):
    """Pieces along ``dim``: of size ``split_size`` (an int; the last may be smaller) or of the
    listed sizes (which must sum to the dim's size), as torch.Tensor.split. Differentiable."""
    d = _dim(self, dim)
    n = self.shape[d]
    if isinstance(split_size_or_sections, numbers.Integral):
        step = int(split_size_or_sections)
        if step <= 0 and n:
            raise RuntimeError(f"split expects split_size be non-negative, but got split_size={step}")
        sizes = [min(step, n - i) for i in range(0, n, step)] if n else [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size "
                               f"at dimension {d}), but got split_sizes={sizes}")
    starts = np.cumsum([0] + sizes)
    return tuple(self[(slice(None),) * d + (slice(int(a), int(a) + s),)] for a, s in zip(starts, sizes))


def unbind(self, dim=0):
    """The slices along ``dim``, that dim removed: a tuple of size(dim) tensors (torch.Tensor.unbind);
    views through GetItem, so differentiable."""
    d = _dim(self, dim)
    return tuple(self[(slice(None),) * d + (i,)] for i in range(self.shape[d]))


# ---- reductions ----------------------------------------------------------------------------------
def _float_only(self, name):
    if self.dtype.kind != "f":
        raise RuntimeError(f"{name}(): input dtype should be floating point, got {self.dtype}")


def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance Σ(x − mean)² / (n − correction) over ``dim`` (all elements by default), as
    torch.Tensor.var: ``correction=1`` (Bessel) unless ``unbiased=False`` or another correction.
    Differentiable. Raises RuntimeError for integer tensors."""
    _float_only(self, "var")
    if isinstance(dim, bool):                    # the legacy overload var(unbiased)
        dim, unbiased = None, dim
    if correction is None:
        correction = 0 if unbiased is False else 1
    dims = tuple(dim) if isinstance(dim, (list, tuple)) else dim
    centred = self - self.mean(dims, keepdim=True)
    axes = range(self.ndim) if dims is None else (dims if isinstance(dims, tuple) else (dims,))
    n = math.prod(self.shape[d] for d in axes)
    return (centred * centred).sum(dims, keepdim=keepdim) / max(n - correction, 0)


def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation sqrt(var) with ``var``'s arguments (torch.Tensor.std); differentiable."""
    _float_only(self, "std")
    return var(self, dim, unbiased, keepdim, correction=correction) ** 0.5


def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
    """The p-norm over ``dim`` (all elements by default): p = 2 / 'fro' sqrt(Σ x²), 1 Σ|x|,
    inf max|x|, -inf min|x| (with ``dim``: one int), 0 the count of non-zeros, other p (Σ|x|^p)^(1/p) (torch.Tensor.norm).
    Differentiable; the gradient of the 2-norm at 0 is 0, as torch. Raises RuntimeError for
    integer tensors and ValueError for an unknown p."""
    _float_only(self, "norm")
    x = self if dtype is None else self.astype(dtype)
    dims = tuple(dim) if isinstance(dim, (list, tuple)) else dim
    if p in ("fro", 2, 2.0):
        s = (x * x).sum(dims, keepdim=keepdim)
        positive = s > 0
        from .functions import where
        return where(positive, where(positive, s, 1.0) ** 0.5, 0.0)   # no inf * 0 at s = 0
    if p == "nuc" or isinstance(p, str):
        raise ValueError(f"norm: p={p!r} is not supported (use 'fro', or a number)")
    a = x.abs()
    if p in (math.inf, -math.inf):          # ties: the full reduction shares the gradient, a dim sends it to the first
        a = a if p == math.inf else -a
        m = a.max() if dims is None else a.max(dims, keepdim=keepdim).values
        return m if p == math.inf else -m
    if p == 0:
        return Tensor(np.asarray((_np(a) != 0).sum(axis=dims, keepdims=keepdim), dtype=a.dtype))
    if p == 1:
        return a.sum(dims, keepdim=keepdim)
    return (a ** p).sum(dims, keepdim=keepdim) ** (1.0 / p)


def prod(self, dim=None, keepdim=False, *, dtype=None):
    """Product of the elements over ``dim`` (all by default), as torch.Tensor.prod; integer and
    bool tensors give int64. Differentiable, exactly also where some elements are 0: computed as
    a tree of pairwise products (log2 n multiplications), each with Mul's VJP."""
    x = self.astype(dtype) if dtype is not None else self.long() if self.dtype.kind in "biu" else self
    if dim is None:
        out = _prod_last(x.reshape(-1))
        return out.reshape(*([1] * self.ndim)) if keepdim else out
    d = _dim(self, dim)
    order = [i for i in range(x.ndim) if i != d] + [d]
    out = _prod_last(x.permute(*order))
    return out.unsqueeze(d) if keepdim else out


def _prod_last(x):
    """Π over the last axis by pairwise products (exact gradients at zeros, unlike y / x)."""
    if x.shape[-1] == 0:
        return Tensor(np.ones(x.shape[:-1], x.dtype))
    while x.shape[-1] > 1:
        n = x.shape[-1]
        even = x[..., 0:n - n % 2:2] * x[..., 1:n - n % 2:2]
        x = cat([even, x[..., n - 1:]], dim=-1) if n % 2 else even
    return x.squeeze(-1)


def cumsum(self, dim, *, dtype=None):
    """Cumulative sum along ``dim`` (``ember.ops.reduce.Cumsum``); integer/bool give int64, as torch."""
    x = self.astype(dtype) if dtype is not None else self
    return _red.Cumsum.apply(x, dim=_dim(self, dim))


def argmin(self, dim=None, keepdim=False):
    """Index of the (first) minimum, over the flattened tensor or along ``dim`` -> int64."""
    return Tensor(np.asarray(np.argmin(_np(self), axis=dim, keepdims=keepdim), dtype=np.int64))


def _gather_along(self, d, idx):
    """self's values at ``idx`` (an int array shaped like self except along d) along dim d,
    through GetItem so the gradient scatters back (np.take_along_axis, differentiable)."""
    grid = list(np.indices(idx.shape, sparse=True))
    grid[d] = idx
    return self[tuple(grid)]


def sort(self, dim=-1, descending=False, stable=False):
    """(values, indices) sorted along ``dim`` (torch.Tensor.sort; ties keep their order, NaN
    counts as the largest). Values are differentiable (the gradient goes back to each element's
    place); indices are int64."""
    d = _dim(self, dim)
    a = _np(self)
    if a.ndim == 0:
        return MaxResult(self * 1, Tensor(np.zeros((), np.int64)))
    if descending:   # a stable ascending sort of the reversed axis, reversed: ties stay in index order
        idx = a.shape[d] - 1 - np.flip(np.argsort(np.flip(a, d), axis=d, kind="stable"), d)
    else:
        idx = np.argsort(a, axis=d, kind="stable")
    return MaxResult(_gather_along(self, d, idx), Tensor(idx.astype(np.int64)))


def argsort(self, dim=-1, descending=False, stable=False):
    """The int64 indices that sort ``self`` along ``dim`` (torch.Tensor.argsort)."""
    return sort(self, dim, descending, stable)[1]


def topk(self, k, dim=-1, largest=True, sorted=True):
    """(values, indices) of the k largest (``largest=False``: smallest) entries along ``dim``,
    in order (torch.Tensor.topk). Values are differentiable. Raises RuntimeError when k is out
    of range."""
    d = _dim(self, dim)
    n = self.shape[d] if self.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError(f"selected index k out of range (k={k}, size {n} along dim {d})")
    values, idx = sort(self, d, descending=largest)
    keep = (slice(None),) * d + (slice(0, k),)
    return MaxResult(values[keep], idx[keep])


def gather(self, dim, index):
    """out[i][j] = self[index[i][j]][j] for dim 0 (and so on; torch.gather): index has self's
    rank and sizes no larger than self's outside ``dim``. Differentiable in self."""
    d = _dim(self, dim)
    idx = _np(index)
    if idx.dtype.kind not in "iu" or idx.ndim != self.ndim:
        raise RuntimeError(f"gather(): index must be an int64 tensor with the input's rank ({self.ndim}), "
                           f"got {idx.dtype} with {idx.ndim} dims")
    return _gather_along(self, d, idx)


def index_select(self, dim, index):
    """The entries at the 1-D integer ``index`` along ``dim`` (torch.index_select); differentiable."""
    idx = _np(index)
    if idx.ndim > 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise RuntimeError("index_select(): index must be a 1-D integer tensor")
    return self[(slice(None),) * _dim(self, dim) + (idx.reshape(-1).astype(np.int64),)]


def masked_fill(self, mask, value):
    """self with ``value`` where the bool ``mask`` (broadcast) is True (torch.Tensor.masked_fill);
    differentiable in self. Raises RuntimeError for a non-bool mask."""
    from .functions import where
    if _np(mask).dtype != np.bool_:
        raise RuntimeError(f"masked_fill only supports boolean masks, but got mask with dtype {_np(mask).dtype}")
    return where(mask, value, self)


def clip(self, min=None, max=None):
    """Alias of clamp (torch.Tensor.clip)."""
    return self.clamp(min, max)


def _matrix(self, name):
    if self.ndim != 2:
        raise RuntimeError(f"{name}: expected a matrix (2-D tensor), but got a {self.ndim}-D tensor")


def trace(self):
    """Σ_i self[i, i] of a 2-D tensor (torch.Tensor.trace); differentiable. RuntimeError otherwise."""
    _matrix(self, "trace")
    i = np.arange(builtins_min(self.shape))
    return self[i, i].sum()


def diag(self, diagonal=0):
    """A 1-D tensor -> the square matrix with it on the ``diagonal``-th diagonal; a 2-D tensor ->
    its ``diagonal``-th diagonal (torch.diag). Differentiable."""
    if self.ndim == 1:
        n = self.shape[0] + abs(diagonal)
        rows = np.arange(self.shape[0]) + builtins_max(-diagonal, 0)
        cols = np.arange(self.shape[0]) + builtins_max(diagonal, 0)
        onto = np.zeros((n, n), dtype=np.int64)          # where each entry of self lands, +1
        onto[rows, cols] = np.arange(1, self.shape[0] + 1)
        from .functions import where
        return where(Tensor(onto > 0), self[np.maximum(onto - 1, 0)], 0)
    _matrix(self, "diag")
    rows = np.arange(builtins_max(-diagonal, 0), self.shape[0])
    cols = rows + diagonal
    keep = (cols >= 0) & (cols < self.shape[1])
    return self[rows[keep], cols[keep]]


def _triangle(self, diagonal, lower):
    if self.ndim < 2:
        raise RuntimeError(f"{'tril' if lower else 'triu'}: input tensor must have at least 2 dimensions")
    n, m = self.shape[-2:]
    mask = (np.tri(n, m, diagonal, dtype=bool) if lower else ~np.tri(n, m, diagonal - 1, dtype=bool))
    from .functions import where
    return where(Tensor(mask), self, 0)


def tril(self, diagonal=0):
    """The lower triangle (j <= i + diagonal) of the last two dims, zeros above (torch.tril); differentiable."""
    return _triangle(self, diagonal, True)


def triu(self, diagonal=0):
    """The upper triangle (j >= i + diagonal) of the last two dims, zeros below (torch.triu); differentiable."""
    return _triangle(self, diagonal, False)


def flip(self, *args, dims=None):
    """A copy of self reversed along each of ``dims`` (torch.flip: not a view; ``flip(0, 1)``,
    ``flip((0, 1))`` or ``flip(dims=[0, 1])``); differentiable."""
    dims = {_dim(self, d) for d in _sizes(args if dims is None else dims)}
    from .nodes import named
    return named(self[tuple(slice(None, None, -1) if i in dims else slice(None) for i in range(self.ndim))].clone(),
                 "FlipBackward0")


def tan(self):
    """tan(self) = sin/cos elementwise; differentiable (grad 1/cos²)."""
    return self.sin() / self.cos()


def _stepwise(fn, doc):
    """A piecewise-constant function (round, floor, ...): its values, and, as torch, a gradient
    of 0 (the output stays in the graph through a Where that never picks self)."""
    def method(self):
        values = Tensor(np.asarray(fn(_np(self))).astype(self.dtype, copy=False))
        if not self.requires_grad:
            return values
        from .functions import where
        return where(Tensor(np.zeros(self.shape, bool)), self, values)
    method.__doc__ = doc
    return method


floor = _stepwise(np.floor, "⌊self⌋ elementwise (torch.Tensor.floor); gradient 0, as torch.")
ceil = _stepwise(np.ceil, "⌈self⌉ elementwise (torch.Tensor.ceil); gradient 0, as torch.")
sign = _stepwise(np.sign, "−1, 0 or 1 by the sign of each entry (torch.Tensor.sign); gradient 0.")
_round = _stepwise(np.round, "")


def round(self, decimals=0):
    """self rounded half to even (to ``decimals`` places) elementwise (torch.Tensor.round);
    gradient 0, as torch."""
    if decimals == 0:
        return _round(self)
    scale = 10.0 ** decimals
    return _round(self * scale) / scale


def lerp(self, end, weight):
    """self + weight · (end − self) (torch.Tensor.lerp; weight a number or a tensor); differentiable."""
    return self + weight * (end - self)


def roll(self, shifts, dims=None):
    """Entries shifted cyclically by ``shifts`` along ``dims`` (the flattened tensor when dims is
    None), as torch.roll; differentiable (a gather)."""
    if dims is None:
        return roll(self.reshape(-1), shifts, 0).reshape(*self.shape)
    shifts = (shifts,) if isinstance(shifts, numbers.Integral) else tuple(shifts)
    dims = (dims,) if isinstance(dims, numbers.Integral) else tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    out = self
    for shift, d in zip(shifts, dims):
        d = _dim(self, d)
        n = self.shape[d]
        out = out[(slice(None),) * d + ((np.arange(n) - shift) % builtins_max(n, 1),)]
    return out


def repeat_interleave(self, repeats, dim=None):
    """Each entry repeated ``repeats`` times (an int or one count per entry) along ``dim`` (the
    flattened tensor when None), as torch.repeat_interleave; differentiable (a gather)."""
    x, d = (self.reshape(-1), 0) if dim is None else (self, _dim(self, dim))
    counts = _np(repeats)
    if (counts < 0).any():
        raise RuntimeError("repeats can not be negative")
    index = np.repeat(np.arange(x.shape[d]), counts)
    return x[(slice(None),) * d + (index,)]


def nonzero(self, *, as_tuple=False):
    """The int64 indices of the non-zero entries: (n, ndim), or with ``as_tuple`` one 1-D tensor
    per dim (torch.nonzero)."""
    a = _np(self)
    if as_tuple:
        return tuple(Tensor(i.astype(np.int64)) for i in np.nonzero(np.atleast_1d(a)))
    return Tensor(np.argwhere(a).astype(np.int64))


def unique(self, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """The distinct values in ascending order (torch.unique), optionally with the inverse indices
    (shaped like self) and the counts (int64). Not differentiable; ``dim`` is not supported
    (NotImplementedError)."""
    if dim is not None:
        raise NotImplementedError("unique(dim=...) is not supported by ember; use dim=None")
    values, inverse, counts = np.unique(_np(self), return_inverse=True, return_counts=True)
    out = [Tensor(values)]
    if return_inverse:
        out.append(Tensor(inverse.reshape(self.shape).astype(np.int64)))
    if return_counts:
        out.append(Tensor(counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


# ---- new_* : a new tensor with self's dtype ---------------------------------------------------------
def _new(fill):
    def method(self, *size, dtype=None, device=None, requires_grad=False):
        from ._common import check_device
        check_device(device)
        return Tensor(fill(tuple(_sizes(size)), np.dtype(dtype or self.dtype)), requires_grad=requires_grad)
    return method


new_zeros = _new(np.zeros)
new_zeros.__doc__ = "Zeros of the given size with self's dtype (torch.Tensor.new_zeros)."
new_ones = _new(np.ones)
new_ones.__doc__ = "Ones of the given size with self's dtype (torch.Tensor.new_ones)."


def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
    """``fill_value`` in the given size, with self's dtype (torch.Tensor.new_full)."""
    return _new(lambda s, dt: np.full(s, fill_value, dt))(self, size, dtype=dtype, device=device,
                                                              requires_grad=requires_grad)


def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
    """A copy of ``data`` as a tensor with self's dtype unless ``dtype`` (torch.Tensor.new_tensor)."""
    from ._common import check_device
    check_device(device)
    return Tensor(np.array(_np(data), dtype=np.dtype(dtype or self.dtype)), requires_grad=requires_grad)


def __abs__(self):
    """abs(t): |t| elementwise."""
    return self.abs()


def type_as(self, other):
    """self cast to other's dtype (torch.Tensor.type_as); differentiable for float dtypes."""
    return self.to(other.dtype)


def remainder(self, other):
    """self − other·⌊self/other⌋, the sign of the divisor's (torch.remainder, Python's %): the
    quotient is a constant of the graph, so grad_self = 1, grad_other = −⌊self/other⌋, as torch."""
    return self - other * self.div(other, rounding_mode="floor")


def fmod(self, other):
    """self − other·trunc(self/other), the sign of the dividend's (torch.fmod, C's fmod)."""
    return self - other * self.div(other, rounding_mode="trunc")


def __floordiv__(self, other):
    """self // other: torch.floor_divide (⌊self/other⌋, outside the graph as torch's)."""
    return self.div(other, rounding_mode="floor")


def __rfloordiv__(self, other):
    return Tensor(np.asarray(other, self.dtype)).div(self, rounding_mode="floor")


def __mod__(self, other):
    """self % other: torch.remainder."""
    return remainder(self, other)


def __rmod__(self, other):
    return remainder(Tensor(np.asarray(other, self.dtype)), self)


def _logical(fn):
    def op(self, other=None):
        a = self._data.astype(bool)
        return Tensor(fn(a) if other is None else fn(a, np.asarray(getattr(other, "_data", other)).astype(bool)))
    return op


logical_and, logical_or, logical_xor = _logical(np.logical_and), _logical(np.logical_or), _logical(np.logical_xor)
logical_not = _logical(np.logical_not)
for _f, _n in ((logical_and, "logical_and"), (logical_or, "logical_or"), (logical_xor, "logical_xor"),
               (logical_not, "logical_not")):
    _f.__name__ = _f.__qualname__ = _n
    _f.__doc__ = f"torch.{_n}: elementwise on the truth of the values (nonzero = True); a bool tensor, outside the graph."


def _extreme(fn):
    def op(self, dim=None, keepdim=False):
        axes = tuple(range(self.ndim)) if dim is None or dim == () else (dim if isinstance(dim, (tuple, list)) else (dim,))
        axes = tuple(d % self.ndim for d in axes) if self.ndim else ()
        m = fn(self._data, axis=axes, keepdims=True) if self.ndim else self._data
        mask = Tensor((self._data == m).astype(self.dtype))
        count = mask.sum(dim=axes, keepdim=True)
        out = Tensor(m) + ((self - Tensor(m)) * mask).sum(dim=axes, keepdim=True) / count   # value m; grad mask/count
        return out if keepdim or not self.ndim else out.squeeze(axes)
    return op


amax, amin = _extreme(np.max), _extreme(np.min)
amax.__name__, amin.__name__ = "amax", "amin"
amax.__doc__ = ("torch.amax(dim=None, keepdim=False): the maximum over ``dim`` (an int or a tuple; all dims by "
                "default); ties share the gradient evenly, as torch's amax.")
amin.__doc__ = "torch.amin: as amax, the minimum."


METHODS = ["pow", "add", "sub", "mul", "div", "neg", "square", "sin", "cos", "rsqrt", "mm", "bmm", "eq", "ne",
           "gt", "lt", "ge", "le", "any", "all", "view_as", "reshape_as", "contiguous", "expand", "expand_as",
           "repeat", "chunk", "split", "unbind", "var", "std", "norm", "prod", "cumsum", "argmin", "sort",
           "argsort", "topk", "gather", "index_select", "masked_fill", "clip", "new_zeros", "new_ones", "new_full",
           "new_tensor", "__abs__", "trace", "diag", "tril", "triu", "flip",
           "tan", "floor", "ceil", "sign", "round", "lerp", "roll", "repeat_interleave", "nonzero", "unique",
           "type_as", "remainder", "fmod", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "logical_and",
           "logical_or", "logical_xor", "logical_not", "amax", "amin"]


def install() -> None:
    """Attach every function of METHODS to Tensor, keeping any method Tensor defines itself."""
    for name in METHODS:
        if name not in vars(Tensor):
            setattr(Tensor, name, globals()[name])
