"""PyTorch's module-level functions (``torch.sin(x)``, ``torch.max(x, 1)``, ``torch.where``,
``torch.einsum``, ``torch.allclose``, ...), each a thin wrapper over a Tensor method or over
ember's ops, with torch's argument names and overloads. Differentiable where torch's are, through
the VJPs of ``ember/ops``; predicates (``isnan``, ``allclose``, ...) return values outside the graph.
Source: the PyTorch 2.13 documentation of each function.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from ..nn import functional as F
from ..ops import elementwise as _ew
from ..tensor import Tensor
from . import tensor_methods as _tm
from ._common import as_tensor_arg


def _method(name, doc):
    def fn(input, *args, **kwargs):
        if name == "pow" and not isinstance(input, Tensor) and args and isinstance(args[0], Tensor):
            return args[0].__rpow__(input)                      # pow(2, t): a scalar base, as torch
        return getattr(as_tensor_arg(input, name), name)(*args, **kwargs)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


_UNARY = {
    "sin": "sin(x) elementwise; differentiable.", "cos": "cos(x) elementwise; differentiable.",
    "exp": "e^x elementwise; differentiable.", "log": "ln x elementwise; differentiable.",
    "sqrt": "sqrt(x) elementwise; differentiable.", "rsqrt": "1/sqrt(x) elementwise; differentiable.",
    "abs": "|x| elementwise; differentiable (0 at 0).", "tanh": "tanh(x) elementwise; differentiable.",
    "sigmoid": "σ(x) = 1/(1 + e^−x) elementwise; differentiable.", "relu": "max(x, 0); differentiable.",
    "neg": "−x; differentiable.", "square": "x²; differentiable.",
    "pow": "pow(input, exponent): input ** exponent; differentiable.",
    "add": "add(input, other, *, alpha=1): input + alpha·other; differentiable.",
    "sub": "sub(input, other, *, alpha=1): input − alpha·other; differentiable.",
    "mul": "mul(input, other): input · other (broadcast); differentiable.",
    "div": "div(input, other, *, rounding_mode=None): input / other (see Tensor.div).",
    "matmul": "matmul(input, other): input @ other with NumPy/torch broadcasting; differentiable.",
    "mm": "mm(input, mat2): (n, m) @ (m, p) -> (n, p), 2-D only; differentiable.",
    "bmm": "bmm(input, mat2): (b, n, m) @ (b, m, p) -> (b, n, p); differentiable.",
    "sum": "sum(input, dim=None, keepdim=False): Σ over dim (all by default); differentiable.",
    "mean": "mean(input, dim=None, keepdim=False): average over dim; differentiable.",
    "std": "std(input, dim=None, *, correction=1, keepdim=False); differentiable.",
    "var": "var(input, dim=None, *, correction=1, keepdim=False); differentiable.",
    "prod": "prod(input, dim=None, keepdim=False): Π over dim; differentiable (exact at zeros).",
    "cumsum": "cumsum(input, dim): running sum along dim; differentiable.",
    "argmax": "argmax(input, dim=None, keepdim=False) -> int64 index of the first maximum.",
    "argmin": "argmin(input, dim=None, keepdim=False) -> int64 index of the first minimum.",
    "sort": "sort(input, dim=-1, descending=False, stable=False) -> (values, indices).",
    "argsort": "argsort(input, dim=-1, descending=False, stable=False) -> int64 indices.",
    "topk": "topk(input, k, dim=-1, largest=True, sorted=True) -> (values, indices).",
    "norm": "norm(input, p='fro', dim=None, keepdim=False): the p-norm; differentiable.",
    "flatten": "flatten(input, start_dim=0, end_dim=-1): merge the dims start..end; differentiable.",
    "reshape": "reshape(input, shape); differentiable.", "squeeze": "squeeze(input, dim=None); differentiable.",
    "unsqueeze": "unsqueeze(input, dim); differentiable.", "permute": "permute(input, dims); differentiable.",
    "transpose": "transpose(input, dim0, dim1); differentiable.", "t": "t(input): 2-D transpose; differentiable.",
    "clamp": "clamp(input, min=None, max=None): entries clipped to [min, max]; differentiable.",
    "clip": "clip(input, min=None, max=None): alias of clamp.",
    "eq": "eq(input, other) -> bool tensor.", "ne": "ne(input, other) -> bool tensor.",
    "gt": "gt(input, other) -> bool tensor.", "lt": "lt(input, other) -> bool tensor.",
    "ge": "ge(input, other) -> bool tensor.", "le": "le(input, other) -> bool tensor.",
    "any": "any(input, dim=None, keepdim=False) -> bool tensor.",
    "all": "all(input, dim=None, keepdim=False) -> bool tensor.",
    "split": "split(tensor, split_size_or_sections, dim=0) -> tuple of tensors; differentiable.",
    "chunk": "chunk(input, chunks, dim=0) -> tuple of tensors; differentiable.",
    "unbind": "unbind(input, dim=0) -> tuple of the slices along dim (that dim removed); differentiable.",
    "gather": "gather(input, dim, index): values at index along dim; differentiable in input.",
    "index_select": "index_select(input, dim, index): entries at the 1-D index along dim; differentiable.",
    "softmax": "softmax(input, dim): exp(x) / Σ_dim exp(x); differentiable.",
    "log_softmax": "log_softmax(input, dim); differentiable.",
    "numel": "numel(input) -> int: the number of elements.",
    "trace": "trace(input): Σ_i input[i, i] of a matrix; differentiable.",
    "diag": "diag(input, diagonal=0): vector -> diagonal matrix, matrix -> its diagonal; differentiable.",
    "tril": "tril(input, diagonal=0): lower triangle, zeros above; differentiable.",
    "triu": "triu(input, diagonal=0): upper triangle, zeros below; differentiable.",
    "flip": "flip(input, dims): reversed along dims; differentiable.",
    "tan": "tan(x) elementwise; differentiable.", "floor": "floor(x); gradient 0.", "ceil": "ceil(x); gradient 0.",
    "sign": "sign(x); gradient 0.", "round": "round(input, decimals=0), half to even; gradient 0.",
    "lerp": "lerp(input, end, weight): input + weight·(end − input); differentiable.",
    "roll": "roll(input, shifts, dims=None): cyclic shift; differentiable.",
    "repeat_interleave": "repeat_interleave(input, repeats, dim=None); differentiable.",
    "nonzero": "nonzero(input, *, as_tuple=False) -> int64 indices of the non-zero entries.",
    "unique": "unique(input, sorted=True, return_inverse=False, return_counts=False) -> distinct values.",
    "remainder": "remainder(input, other): input − other·⌊input/other⌋ (Python's %); differentiable.",
    "fmod": "fmod(input, other): input − other·trunc(input/other); differentiable.",
    "logical_and": "logical_and(input, other) -> bool tensor.", "logical_or": "logical_or(input, other) -> bool tensor.",
    "logical_xor": "logical_xor(input, other) -> bool tensor.", "logical_not": "logical_not(input) -> bool tensor.",
    "amax": "amax(input, dim=(), keepdim=False): the maximum over dim (all by default); ties share the gradient.",
    "amin": "amin(input, dim=(), keepdim=False): the minimum over dim; ties share the gradient.",
}
globals().update({name: _method(name, doc) for name, doc in _UNARY.items()})


def floor_divide(input, other):
    """⌊input/other⌋ elementwise (torch.floor_divide, Python's //), outside the graph as torch's."""
    return as_tensor_arg(input, "floor_divide").div(other, rounding_mode="floor")


def _pair_op(name, doc, pick_first):
    def fn(input, dim=None, keepdim=False):
        input = as_tensor_arg(input, name)
        if isinstance(dim, Tensor):                    # max(a, b): the elementwise maximum
            return (maximum if pick_first else minimum)(input, dim)
        return getattr(input, name)() if dim is None else getattr(input, name)(dim, keepdim)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


def maximum(input, other):
    """The elementwise maximum of two tensors (broadcast), as torch.maximum: NaN propagates; at
    ties each input gets half the gradient. Differentiable."""
    return _extreme(input, other, lambda a, b: a > b)


def minimum(input, other):
    """The elementwise minimum of two tensors (broadcast), as torch.minimum (see ``maximum``)."""
    return _extreme(input, other, lambda a, b: a < b)


def _extreme(a, b, first_wins):
    if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
        raise TypeError("maximum/minimum: both arguments must be Tensors")
    rest = where(isnan(a), a, b)                          # NaN in a or b -> NaN, as torch
    return where(first_wins(a, b), a, where(a == b, a * 0.5 + b * 0.5, rest))


max = _pair_op("max", "max(input) -> the maximum; max(input, dim, keepdim=False) -> (values, indices); "
               "max(input, other) -> the elementwise maximum (torch.max). Differentiable.", True)
min = _pair_op("min", "min(input) -> the minimum; min(input, dim, keepdim=False) -> (values, indices); "
               "min(input, other) -> the elementwise minimum (torch.min). Differentiable.", False)


def where(condition, input=None, other=None):
    """input where ``condition`` (a bool tensor) is True, else other, all broadcast (torch.where).
    ``input``/``other`` may be Python numbers (they take the other tensor's dtype, float32 if
    both are numbers). Differentiable in input and other (``ember.ops.elementwise.Where``).
    ``where(condition)`` alone returns ``condition.nonzero(as_tuple=True)``.
    Raises RuntimeError for a non-bool condition."""
    cond = condition.numpy() if isinstance(condition, Tensor) else np.asarray(condition)
    if input is None and other is None:
        return tuple(Tensor(i.astype(np.int64)) for i in np.nonzero(cond))
    if cond.dtype != np.bool_:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype {cond.dtype}")
    ref = input if isinstance(input, Tensor) else other if isinstance(other, Tensor) else None
    dtype = ref.dtype if ref is not None else np.float32

    def as_tensor(v):
        return v if isinstance(v, Tensor) else Tensor(np.asarray(v, dtype=dtype))
    return _ew.Where.apply(cond, as_tensor(input), as_tensor(other))


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation (torch.einsum): ``einsum("ij,jk->ik", a, b)``, implicit output (the
    indices that appear once, sorted), ``...`` for broadcast dims, operands also as one list.
    Computed by contracting pairs of operands with one batched matmul each (after summing out
    indices no one else needs), so it is differentiable through MatMul/Permute/Reshape/Sum and
    never builds the full outer product. An index repeated within one operand takes that
    operand's diagonal first ('ii->i', 'ii' the trace, 'bii->bi'), as torch, through GetItem.
    Raises ValueError for a malformed equation, RuntimeError for a repeated index whose sizes
    differ (torch's message)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    subs = lhs.split(",")
    if len(subs) != len(operands):
        raise ValueError(f"einsum(): {len(subs)} operands in the equation, but {len(operands)} were given")
    ell = builtins.max([o.ndim - len(s.replace("...", "")) for o, s in zip(operands, subs) if "..." in s], default=0)
    pool = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in eq)[:ell]
    letters = []
    for o, s in zip(operands, subs):
        if "..." in s:
            s = s.replace("...", pool[len(pool) - (o.ndim - len(s.replace("...", ""))):])
        if not s.isalpha() and s or len(s) != o.ndim:
            raise ValueError(f"einsum(): the subscripts {s!r} do not match an operand with {o.ndim} dims")
        letters.append(s)
    if arrow:
        out = rhs.replace("...", pool)
    else:
        counts = "".join(letters)
        out = pool + "".join(sorted(c for c in set(counts) if counts.count(c) == 1 and c not in pool))
    if not set(out) <= set("".join(letters)):
        raise ValueError(f"einsum(): output index not found in the inputs: {equation!r}")
    operands, letters = zip(*[_diagonal(o, s, k) for k, (o, s) in enumerate(zip(operands, letters))])
    t, s = operands[0], letters[0]
    for i in range(1, len(operands)):
        later = set(out).union(*letters[i + 1:])
        t, s = _contract(t, s, operands[i], letters[i], later)
    t, s = _sum_out(t, s, set(out))
    return t.permute(*[s.index(c) for c in out]) if s != out else t


def _diagonal(t, s, k):
    """Operand k, ``t`` with letters ``s``, reduced to its diagonal over each letter that ``s``
    repeats (``t[..., r, r]`` after moving those axes last, r = 0..n-1: a GetItem, so the gradient
    lands on the diagonal); returns (tensor, letters), the repeated letter once and last.
    Raises RuntimeError when the repeated axes differ in size (torch's message)."""
    for c in sorted({c for c in s if s.count(c) > 1}):
        pos = [i for i, d in enumerate(s) if d == c]
        sizes = [t.shape[i] for i in pos]
        if builtins.any(n != sizes[0] for n in sizes):
            raise RuntimeError(f"einsum(): subscript {c} is repeated for operand {k} but the sizes don't match, "
                               f"{next(n for n in sizes if n != sizes[0])} != {sizes[0]}")
        rest = [i for i in range(len(s)) if i not in pos]
        t = t.permute(*rest, *pos)[(Ellipsis,) + (np.arange(sizes[0]),) * len(pos)]
        s = "".join(s[i] for i in rest) + c
    return t, s


def _sum_out(t, s, needed):
    """Sum the axes of ``t`` whose letters are not needed; returns (tensor, its letters)."""
    axes = tuple(i for i, c in enumerate(s) if c not in needed)
    if not axes:
        return t, s
    return t.sum(axes), "".join(c for c in s if c in needed)


def _contract(a, sa, b, sb, later):
    """a (letters sa) times b (letters sb), summed over shared letters not in ``later``, as one
    batched matmul (batch, left, shared) @ (batch, shared, right)."""
    a, sa = _sum_out(a, sa, later | set(sb))
    b, sb = _sum_out(b, sb, later | set(sa))
    batch = [c for c in sa if c in sb and c in later]
    shared = [c for c in sa if c in sb and c not in later]
    left, right = [c for c in sa if c not in sb], [c for c in sb if c not in sa]
    size = {c: builtins.max(dict(zip(sa, a.shape)).get(c, 1), dict(zip(sb, b.shape)).get(c, 1)) for c in sa + sb}
    if builtins.any(dict(zip(sa, a.shape))[c] != size[c] for c in batch):          # broadcast '...' dims of size 1
        a = _tm.expand(a, *[size[c] if c in batch else n for c, n in zip(sa, a.shape)])
    if builtins.any(dict(zip(sb, b.shape))[c] != size[c] for c in batch):
        b = _tm.expand(b, *[size[c] if c in batch else n for c, n in zip(sb, b.shape)])
    prod = lambda cs: math.prod(size[c] for c in cs)  # noqa: E731
    am = a.permute(*[sa.index(c) for c in batch + left + shared]).reshape(prod(batch), prod(left), prod(shared))
    bm = b.permute(*[sb.index(c) for c in batch + shared + right]).reshape(prod(batch), prod(shared), prod(right))
    y = (am @ bm).reshape(*[size[c] for c in batch + left + right])
    return y, "".join(batch + left + right)


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    """True if |input − other| ≤ atol + rtol·|other| everywhere (torch.allclose). Raises
    RuntimeError when the dtypes differ (as torch: "Float did not match Double")."""
    return bool(isclose(input, other, rtol, atol, equal_nan).numpy().all())


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> Tensor:
    """Elementwise |input − other| ≤ atol + rtol·|other| -> bool tensor (torch.isclose).
    Raises RuntimeError when the dtypes differ."""
    a, b = as_tensor_arg(input, "isclose"), as_tensor_arg(other, "isclose")
    if a.dtype != b.dtype:
        raise RuntimeError(f"{a.dtype} did not match {b.dtype}")
    return Tensor(np.isclose(a.numpy(), b.numpy(), rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(input, other) -> bool:
    """True if both tensors have the same shape and elements (torch.equal)."""
    a, b = as_tensor_arg(input, "equal"), as_tensor_arg(other, "equal")
    return a.shape == b.shape and bool(np.array_equal(a.numpy(), b.numpy()))


def _predicate(fn, doc):
    def pred(input):
        return Tensor(np.asarray(fn(as_tensor_arg(input, fn.__name__).numpy())))
    pred.__doc__ = doc
    return pred


isnan = _predicate(np.isnan, "True where input is NaN -> bool tensor (torch.isnan).")
isinf = _predicate(np.isinf, "True where input is ±inf -> bool tensor (torch.isinf).")
isfinite = _predicate(np.isfinite, "True where input is neither NaN nor ±inf -> bool tensor (torch.isfinite).")


def is_tensor(obj) -> bool:
    """True if obj is an ember Tensor (torch.is_tensor)."""
    return isinstance(obj, Tensor)


def dot(input, other):
    """Dot product of two 1-D tensors of the same size (torch.dot); differentiable.
    Raises RuntimeError for other ranks or sizes."""
    if input.ndim != 1 or other.ndim != 1 or input.shape != other.shape:
        raise RuntimeError(f"dot: expected two 1-D tensors of the same size, got {tuple(input.shape)} "
                           f"and {tuple(other.shape)}")
    return input @ other


def outer(input, vec2):
    """Outer product of two 1-D tensors: (n,), (m,) -> (n, m) (torch.outer); differentiable."""
    if input.ndim != 1 or vec2.ndim != 1:
        raise RuntimeError("outer: expected two 1-D tensors")
    return input.reshape(-1, 1) * vec2.reshape(1, -1)


def logsumexp(input, dim, keepdim=False):
    """log Σ_dim exp(input), computed as m + log Σ exp(x − m) with m the (constant) max, so no
    exp overflows (torch.logsumexp); differentiable (the gradient is softmax(input))."""
    m = np.max(input.numpy(), axis=dim, keepdims=True)
    m = Tensor(np.where(np.isfinite(m), m, 0).astype(input.dtype))
    out = (input - m).exp().sum(dim, keepdim=True).log() + m
    return out if keepdim else out.squeeze(dim) if isinstance(dim, int) else out.reshape(
        *[n for i, n in enumerate(out.shape) if i not in {d % input.ndim for d in dim}])


def masked_select(input, mask):
    """The 1-D tensor of input's entries where the bool mask (same shape) is True; differentiable."""
    return input[mask]


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """``data`` as a tensor, sharing memory with an ndarray (or returning a Tensor itself) when no
    dtype conversion is needed (torch.as_tensor); lists copy, with torch.tensor's dtype rules."""
    from ._common import check_device
    from ..tensor import tensor
    check_device(device)
    if isinstance(data, Tensor):
        return data if dtype is None or np.dtype(dtype) == data.dtype else data.astype(dtype)
    if isinstance(data, np.ndarray):
        return Tensor(data if dtype is None else data.astype(dtype, copy=False))
    return tensor(data, dtype=dtype)


def broadcast_tensors(*tensors):
    """The tensors expanded to their common broadcast shape (torch.broadcast_tensors); differentiable.
    Raises RuntimeError when the shapes do not broadcast."""
    try:
        shape = np.broadcast_shapes(*(t.shape for t in tensors))
    except ValueError:
        raise RuntimeError(f"shapes {[tuple(t.shape) for t in tensors]} cannot be broadcast together") from None
    return tuple(_tm.expand(t, *shape) for t in tensors)


def meshgrid(*tensors, indexing="ij"):
    """Coordinate grids from 1-D tensors (torch.meshgrid): with indexing 'ij' output k varies
    along dim k; with 'xy' the first two dims are swapped. Differentiable."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    sizes = [t.numel() for t in tensors]
    axes = list(range(len(tensors)))
    if indexing == "xy" and len(tensors) >= 2:
        axes[0], axes[1] = 1, 0
    shape = [sizes[axes.index(i)] for i in range(len(tensors))]
    return tuple(_tm.expand(t.reshape(*[-1 if i == a else 1 for i in range(len(tensors))]), *shape)
                 for t, a in zip(tensors, axes))


def hstack(tensors):
    """Concatenate along dim 1 (dim 0 for 1-D tensors), as torch.hstack; differentiable."""
    return F.cat(list(tensors), 0 if tensors[0].ndim == 1 else 1)


def vstack(tensors):
    """Concatenate along dim 0 after making 1-D tensors rows (1, n), as torch.vstack; differentiable."""
    return F.cat([t.reshape(1, -1) if t.ndim == 1 else t for t in tensors], 0)


def bincount(input, weights=None, minlength=0):
    """Occurrences of each value 0..max in a 1-D non-negative int tensor (torch.bincount): int64,
    or summed ``weights`` (float64 as torch). Not differentiable. Raises RuntimeError for other input."""
    a = as_tensor_arg(input, "bincount").numpy()
    if a.ndim != 1 or a.dtype.kind not in "iu" or (a.size and a.min() < 0):
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    w = None if weights is None else weights.numpy()
    counts = np.bincount(a, w, minlength)
    return Tensor(counts.astype(np.int64 if w is None else np.float64 if w.dtype.kind != "f" or
                                w.dtype == np.float64 else w.dtype))


def concat(tensors, dim=0):
    """Alias of cat (torch.concat)."""
    return F.cat(tensors, dim)


__all__ = [*_UNARY, "max", "min", "maximum", "minimum", "where", "einsum", "allclose", "isclose", "equal", "isnan",
           "isinf", "isfinite", "is_tensor", "dot", "outer", "logsumexp", "masked_select", "concat", "as_tensor",
           "broadcast_tensors", "meshgrid", "hstack", "vstack", "bincount"]
