"""More of PyTorch's elementwise math and the scatter family, each an op with its derivative.

Unary ops (``UNARY``): y = f(x) elementwise, VJP  grad_x = grad_y · f'(x), with f' from the table
(written with x and y = f(x)); the same formulas as PyTorch's derivatives.yaml. Integer inputs are
promoted to float32 first, as PyTorch's floating ops do. Binary ops (``BINARY``) broadcast their
two inputs and sum each gradient back to its input's shape (``autograd.unbroadcast``).

Scatter family (PyTorch 2.13's semantics; idx = the full coordinates of every entry of ``index``,
with ``index`` itself along ``dim``):
    scatter(input, dim, index, src)      out = input; out[idx] = src[:index's shape]
        grad_input = grad with the written places zeroed;  grad_src = grad[idx] (zero elsewhere)
    scatter(input, dim, index, value)    as above with a number (no src gradient)
    scatter_add(input, dim, index, src)  out = input; out[idx] += src (repeated places add up)
        grad_input = grad;  grad_src = grad[idx]
    index_add(input, dim, index, source, alpha=1)  out.select(dim, index[i]) += alpha·source.select(dim, i)
        grad_input = grad;  grad_source = alpha · grad.index_select(dim, index)
The in-place forms (``scatter_``, ``scatter_add_``, ``index_add_``) write the result into the
tensor with PyTorch's in-place rules (``Tensor._inplace``). Which value wins when ``scatter``
writes one place twice is unspecified in PyTorch; here the last one does.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, unbroadcast
from ..tensor import Tensor

_erf = np.vectorize(math.erf, otypes=[np.float64])
_erfc = np.vectorize(math.erfc, otypes=[np.float64])
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _cast(f):
    """f computed as NumPy does, returned in the input's dtype (math.erf works in float64)."""
    return lambda x: np.asarray(f(x)).astype(x.dtype, copy=False)


# name -> (forward f(x), derivative f'(x, y), PyTorch's node name)
UNARY = {
    "log1p": (np.log1p, lambda x, y: 1 / (1 + x), "Log1PBackward0"),
    "expm1": (np.expm1, lambda x, y: y + 1, "Expm1Backward0"),
    "sinh": (np.sinh, lambda x, y: np.cosh(x), "SinhBackward0"),
    "cosh": (np.cosh, lambda x, y: np.sinh(x), "CoshBackward0"),
    "asin": (np.arcsin, lambda x, y: 1 / np.sqrt(1 - x * x), "AsinBackward0"),
    "acos": (np.arccos, lambda x, y: -1 / np.sqrt(1 - x * x), "AcosBackward0"),
    "atan": (np.arctan, lambda x, y: 1 / (1 + x * x), "AtanBackward0"),
    "asinh": (np.arcsinh, lambda x, y: 1 / np.sqrt(x * x + 1), "AsinhBackward0"),
    "acosh": (np.arccosh, lambda x, y: 1 / np.sqrt(x * x - 1), "AcoshBackward0"),
    "atanh": (np.arctanh, lambda x, y: 1 / (1 - x * x), "AtanhBackward0"),
    "log2": (np.log2, lambda x, y: 1 / (x * math.log(2.0)), "Log2Backward0"),
    "log10": (np.log10, lambda x, y: 1 / (x * math.log(10.0)), "Log10Backward0"),
    "exp2": (np.exp2, lambda x, y: y * math.log(2.0), "Exp2Backward0"),
    "reciprocal": (lambda x: 1 / x, lambda x, y: -(y * y), "ReciprocalBackward0"),
    "erf": (_cast(_erf), lambda x, y: _TWO_OVER_SQRT_PI * np.exp(-(x * x)), "ErfBackward0"),
    "erfc": (_cast(_erfc), lambda x, y: -_TWO_OVER_SQRT_PI * np.exp(-(x * x)), "ErfcBackward0"),
}

# name -> (forward f(a, b), (∂f/∂a, ∂f/∂b) as functions of (a, b, y), PyTorch's node name)
BINARY = {
    "atan2": (np.arctan2, (lambda a, b, y: b / (a * a + b * b), lambda a, b, y: -a / (a * a + b * b)), "Atan2Backward0"),
    "hypot": (np.hypot, (lambda a, b, y: a / y, lambda a, b, y: b / y), "HypotBackward0"),
    "logaddexp": (np.logaddexp, (lambda a, b, y: np.exp(a - y), lambda a, b, y: np.exp(b - y)), "LogaddexpBackward0"),
}


def _floating(x):
    return x if x.dtype.kind == "f" else x.astype(np.float32)


def _unary_op(name, f, df, node):
    def forward(ctx, x):
        x = _floating(x)
        y = f(x)
        ctx.save_for_backward(x, y)
        return y

    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return grad * df(x, y).astype(grad.dtype, copy=False)

    return type(name.capitalize(), (Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward),
                                                  "_torch_name": node, "__module__": __name__,
                                                  "__doc__": f"y = {name}(x) elementwise; VJP grad·{name}'(x)."})


def _binary_op(name, f, dfs, node):
    def forward(ctx, a, b):
        a, b = _floating(a), _floating(b)
        y = f(a, b)
        ctx.save_for_backward(a, b, y)
        return y

    def backward(ctx, grad):
        a, b, y = ctx.saved_tensors
        need = ctx.needs_input_grad
        return tuple(unbroadcast(grad * d(a, b, y), s.shape) if n else None for d, s, n in zip(dfs, (a, b), need))

    return type(name.capitalize(), (Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward),
                                                  "_torch_name": node, "__module__": __name__,
                                                  "__doc__": f"y = {name}(a, b), broadcast; VJPs from its partials."})


OPS = {name: _unary_op(name, *spec) for name, spec in UNARY.items()}
OPS.update({name: _binary_op(name, *spec) for name, spec in BINARY.items()})


def _tensor(x, like):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=like.dtype if like.dtype.kind == "f" else None))


def _unary_method(name):
    op = OPS[name]

    def method(self):
        return op.apply(self)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"torch.{name}(input) elementwise, any shape; differentiable (PyTorch's {UNARY[name][2]})."
    return method


def _binary_method(name):
    op = OPS[name]

    def method(self, other):
        return op.apply(self, _tensor(other, self._data))
    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"torch.{name}(input, other), broadcast; differentiable in both (PyTorch's {BINARY[name][2]})."
    return method


class Cumprod(Function):
    """y[..., i] = Π_{j≤i} x[..., j] along ``dim``; VJP, exact with zeros:
    grad_x[k] = P[k]·R[k],  P[k] = Π_{j<k} x[j] (= y[k−1]),  R[k] = g[k] + x[k+1]·R[k+1] (R[n−1] = g[n−1]),
    from ∂y[i]/∂x[k] = Π_{j≤i, j≠k} x[j] for i ≥ k (PyTorch's cumprod_backward gives the same)."""
    _torch_name = "CumprodBackward0"

    @staticmethod
    def forward(ctx, x, dim=0):
        y = np.cumprod(x, axis=dim)
        ctx.save_for_backward(x, y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y = (np.moveaxis(a, ctx.dim, -1) for a in ctx.saved_tensors)
        g = np.moveaxis(grad, ctx.dim, -1)
        prefix = np.concatenate([np.ones_like(y[..., :1]), y[..., :-1]], -1)
        r = np.empty_like(g)
        r[..., -1] = g[..., -1]
        for k in range(g.shape[-1] - 2, -1, -1):
            r[..., k] = g[..., k] + x[..., k + 1] * r[..., k + 1]
        return np.moveaxis(prefix * r, -1, ctx.dim)


def cumprod(self, dim, *, dtype=None):
    """torch.cumprod: the running product along ``dim``; differentiable (also through zeros)."""
    x = self if dtype is None else self.to(dtype)
    return Cumprod.apply(x, dim=dim % max(x.ndim, 1))


class LogitOp(Function):
    """y = log(z / (1 − z)) with z = clamp(x, eps, 1 − eps) when eps is given; VJP grad / (x(1 − x))
    inside [eps, 1 − eps] and 0 outside (PyTorch's logit_backward)."""
    _torch_name = "LogitBackward0"

    @staticmethod
    def forward(ctx, x, eps=None):
        x = _floating(x)
        z = x if eps is None else np.clip(x, eps, 1 - eps)
        ctx.save_for_backward(x)
        ctx.eps = eps
        return np.log(z / (1 - z))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        g = grad / (x * (1 - x))
        if ctx.eps is not None:
            g = np.where((x < ctx.eps) | (x > 1 - ctx.eps), 0, g).astype(grad.dtype, copy=False)
        return g


class NanToNum(Function):
    """NaN, +inf, −inf replaced by nan, posinf, neginf (the dtype's largest/smallest by default);
    VJP grad where x is finite, 0 elsewhere (PyTorch's derivative)."""
    _torch_name = "NanToNumBackward0"

    @staticmethod
    def forward(ctx, x, nan=0.0, posinf=None, neginf=None):
        ctx.finite = np.isfinite(x)
        return np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.finite


def logit(self, eps=None):
    """torch.logit: log(x / (1 − x)), x clamped to [eps, 1 − eps] if eps is given; differentiable."""
    return LogitOp.apply(self, eps=eps)


def nan_to_num(self, nan=0.0, posinf=None, neginf=None):
    """torch.nan_to_num: NaN -> nan, ±inf -> posinf/neginf (the dtype's extremes by default);
    the gradient passes where the input is finite."""
    return NanToNum.apply(self, nan=nan, posinf=posinf, neginf=neginf)


# ---- the scatter family ----------------------------------------------------------------------
def _coords(index, dim):
    """The full coordinates of every entry of ``index`` with ``index`` itself along ``dim``."""
    grid = list(np.indices(index.shape, sparse=True))
    grid[dim] = index
    return tuple(grid)


def _check_index(name, x, dim, index, src=None):
    if index.dtype.kind not in "iu":
        raise RuntimeError(f"{name}(): Expected dtype int64 for index")
    if index.ndim != x.ndim or (src is not None and src.ndim != x.ndim):
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    for d in range(x.ndim):
        if index.shape[d] > (src.shape[d] if src is not None else index.shape[d]) or \
                (d != dim and index.shape[d] > x.shape[d]):
            raise RuntimeError(f"Expected index {list(index.shape)} to be smaller than self {list(x.shape)} apart "
                               f"from dimension {dim}" + ("" if src is None else f" and to be smaller size than src "
                                                                               f"{list(src.shape)}"))
    if index.size and (index.min() < -x.shape[dim] or index.max() >= x.shape[dim]):
        raise RuntimeError(f"index {int(index.max())} is out of bounds for dimension {dim} with size {x.shape[dim]}")


class Scatter(Function):
    """out = input with src (or a number) written at ``index`` along ``dim``; add=True adds instead."""

    @staticmethod
    def forward(ctx, x, src=None, dim=0, index=None, value=None, add=False):
        where = _coords(index, dim)
        out = x.copy()
        part = np.full(index.shape, value, x.dtype) if src is None else src[tuple(slice(0, n) for n in index.shape)]
        if add:
            np.add.at(out, where, part)
        else:
            out[where] = part
        ctx.where, ctx.add, ctx.src_shape = where, add, None if src is None else src.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        need = ctx.needs_input_grad
        gx = gs = None
        if need[0]:
            gx = grad
            if not ctx.add:
                gx = grad.copy()
                gx[ctx.where] = 0
        if ctx.src_shape is not None and need[1]:
            gs = np.zeros(ctx.src_shape, grad.dtype)
            part = grad[ctx.where]
            gs[tuple(slice(0, n) for n in part.shape)] = part
        return gx, gs


class IndexAdd(Function):
    """out = input; out.select(dim, index[i]) += alpha · source.select(dim, i)."""
    _torch_name = "IndexAddBackward0"

    @staticmethod
    def forward(ctx, x, source, dim=0, index=None, alpha=1):
        out = x.copy()
        where = (slice(None),) * dim + (index,)
        np.add.at(out, where, source * alpha if alpha != 1 else source)
        ctx.dim, ctx.index, ctx.alpha = dim, index, alpha
        return out

    @staticmethod
    def backward(ctx, grad):
        gs = np.take(grad, ctx.index, axis=ctx.dim)
        return grad, (gs * ctx.alpha if ctx.alpha != 1 else gs)


def _dim_of(x, dim):
    if not -max(x.ndim, 1) <= dim < max(x.ndim, 1):
        raise IndexError(f"Dimension out of range (expected to be in range of [{-max(x.ndim, 1)}, "
                         f"{max(x.ndim, 1) - 1}], but got {dim})")
    return dim % max(x.ndim, 1)


def scatter(self, dim, index, src=None, value=None, *, reduce=None):
    """torch.scatter(input, dim, index, src) / (input, dim, index, value): a new tensor with src's
    entries (or the number) written at ``index`` along ``dim``; differentiable in input and src.
    Raises: NotImplementedError for reduce= (deprecated in PyTorch: use scatter_add / scatter_reduce),
    RuntimeError with PyTorch's messages for a bad index."""
    if reduce is not None:
        raise NotImplementedError("scatter(..., reduce=) is not supported by ember; use scatter_add")
    if src is not None and not isinstance(src, Tensor):
        src, value = None, src                              # scatter(dim, index, 1.5): the value form
    d, idx = _dim_of(self, dim), np.asarray(getattr(index, "_data", index))
    _check_index("scatter", self._data, d, idx, None if src is None else src._data)
    op = _named(Scatter, "ScatterBackward0" if src is not None else "ScatterBackward1")
    if src is None:
        return op.apply(self, None, dim=d, index=idx, value=value)
    return op.apply(self, src, dim=d, index=idx)


def scatter_add(self, dim, index, src):
    """torch.scatter_add: a new tensor, input + src's entries added at ``index`` along ``dim``
    (repeated places accumulate); differentiable in input and src."""
    d, idx = _dim_of(self, dim), np.asarray(getattr(index, "_data", index))
    _check_index("scatter_add", self._data, d, idx, src._data)
    return _named(Scatter, "ScatterAddBackward0").apply(self, src, dim=d, index=idx, add=True)


def index_add(self, dim, index, source, *, alpha=1):
    """torch.index_add: a new tensor, input with alpha·source.select(dim, i) added to slice
    index[i] along ``dim``; differentiable in input and source.
    Raises: IndexError/RuntimeError naming the bad dim, index or shapes."""
    d, idx = _dim_of(self, dim), np.asarray(getattr(index, "_data", index)).reshape(-1)
    if idx.dtype.kind not in "iu":
        raise RuntimeError("index_add_(): Expected dtype int32/int64 for index")
    if source.shape[d] != idx.size:
        raise RuntimeError(f"index_add_(): Number of indices ({idx.size}) should be equal to source.size(dim) "
                           f"({source.shape[d]})")
    return IndexAdd.apply(self, source, dim=d, index=idx, alpha=alpha)


def _named(op, name):
    from .nodes import renamed
    return renamed(op, name)


METHODS = {name: _unary_method(name) for name in UNARY}
METHODS.update({name: _binary_method(name) for name in BINARY})
def logsumexp(self, dim, keepdim=False):
    """Tensor.logsumexp: log Σ exp over ``dim`` (ember.logsumexp)."""
    from .functions import logsumexp as f
    return f(self, dim, keepdim)


def promote_types(type1, type2):
    """torch.promote_types: the dtype PyTorch's promotion gives two tensors of these dtypes
    (int64 with float32 is float32, not NumPy's float64)."""
    from .semantics import result_type
    return result_type(Tensor(np.zeros(1, type1)), Tensor(np.zeros(1, type2)))


METHODS.update(logit=logit, nan_to_num=nan_to_num, scatter=scatter, scatter_add=scatter_add, index_add=index_add,
               cumprod=cumprod)
TENSOR_ONLY = dict(logsumexp=logsumexp)
INPLACE = {
    "scatter_": lambda self, dim, index, src=None, value=None, *, reduce=None: self._inplace(
        lambda s: scatter(s, dim, index, src, value, reduce=reduce)),
    "scatter_add_": lambda self, dim, index, src: self._inplace(lambda s: scatter_add(s, dim, index, src)),
    "index_add_": lambda self, dim, index, source, *, alpha=1: self._inplace(
        lambda s: index_add(s, dim, index, source, alpha=alpha)),
}
INPLACE.update({f"{name}_": (lambda n: lambda self: self._inplace(lambda s: METHODS[n](s)))(name) for name in UNARY})


_INT_NAMES = {"i8": "Long", "i4": "Int", "i2": "Short", "i1": "Char", "u1": "Byte", "b1": "Bool"}


def _float_mean(mean):
    """Tensor.mean refusing integer and bool tensors without a dtype, as PyTorch's (the mean of
    [1, 2] is not an integer; ember's NumPy mean would have returned the truncated int64)."""
    def checked(self, dim=None, keepdim=False, dtype=None):
        if dtype is None and self._data.dtype.kind not in "fc":
            raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a floating point "
                               f"or complex dtype. Got: {_INT_NAMES.get(self._data.dtype.str[1:], self._data.dtype)}")
        return mean(self, dim, keepdim, dtype)
    checked.__name__, checked.__doc__ = "mean", mean.__doc__
    return checked


def install(ember) -> None:
    """Attach the methods to Tensor (keeping any Tensor defines itself) and the functions to ``ember``."""
    if not getattr(Tensor.mean, "_checks_dtype", False):   # once, even if ember is imported again
        Tensor.mean = _float_mean(Tensor.mean)
        Tensor.mean._checks_dtype = True
    for name, fn in {**METHODS, **INPLACE, **TENSOR_ONLY}.items():
        if name not in vars(Tensor):
            setattr(Tensor, name, fn)
    ember.promote_types, ember.dtype = promote_types, np.dtype   # isinstance(x.dtype, torch.dtype) holds
    for name, fn in METHODS.items():
        if not hasattr(ember, name):
            setattr(ember, name, (lambda f: lambda input, *a, **k: f(input, *a, **k))(fn))
            getattr(ember, name).__name__ = name
            getattr(ember, name).__doc__ = fn.__doc__
