"""``Tensor``: an ndarray plus the autograd bookkeeping, with PyTorch's operators and methods.

A Tensor holds ``.data`` (a NumPy array), ``.grad`` (a Tensor or None), ``.requires_grad`` and
``._ctx`` (the graph node that produced it, None for leaves). Every method that computes
something calls an op in ``ember.ops`` (through ``ember.kernels.dispatch`` where a fast kernel
exists, see ``_dispatch``); nothing here defines a gradient. The ops are imported at the bottom of this file: they
subclass ``autograd.Function``, whose ``apply`` returns Tensors (the core's one import circle,
declared at the bottom of ``ember/autograd/__init__.py``).
"""
from __future__ import annotations

import numbers

import numpy as np

from . import autograd

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)
_DEFAULT_FLOAT = float32


def _as_array(data, dtype=None) -> np.ndarray:
    """Convert Python/NumPy data to an ndarray following torch.tensor's dtype rules:
    Python floats -> float32 (the default dtype), Python ints -> int64, ndarrays keep theirs."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=np.dtype(dtype))
    if isinstance(data, np.ndarray):
        return data
    arr = np.asarray(data)
    if arr.dtype.kind == "f" and not isinstance(data, np.generic):
        arr = arr.astype(_DEFAULT_FLOAT)
    elif arr.dtype.kind in "iu":
        arr = arr.astype(int64)
    return arr


class Tensor:
    """An n-dimensional array that records the operations applied to it for backpropagation.

    Args:
        data: array-like (an ndarray is wrapped without a copy and keeps its dtype).
        requires_grad: record operations on this tensor so ``backward`` reaches it.
    Attributes:
        data (np.ndarray), grad (Tensor | None), requires_grad (bool), shape, dtype, ndim.
    """
    __slots__ = ("data", "grad", "requires_grad", "_ctx", "__weakref__")
    __array_priority__ = 1000  # make ndarray + Tensor dispatch to Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False):
        self.data = data if type(data) is np.ndarray else _as_array(data)
        self.grad = None
        self.requires_grad = requires_grad
        self._ctx = None
        if requires_grad and self.data.dtype.kind != "f":
            raise RuntimeError(f"only floating point tensors can require gradients, got dtype {self.data.dtype}")

    # ---- properties -------------------------------------------------------------------
    shape = property(lambda self: self.data.shape, doc="tuple of ints, as ndarray.shape")
    dtype = property(lambda self: self.data.dtype, doc="the NumPy dtype (ember.float32 by default)")
    ndim = property(lambda self: self.data.ndim)
    is_leaf = property(lambda self: self._ctx is None)
    T = property(lambda self: self.transpose(-1, -2) if self.ndim >= 2 else self)

    @property
    def grad_fn(self):
        """The op class that produced this tensor (None for leaves)."""
        return None if self._ctx is None else self._ctx.fn

    def size(self, dim=None): return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int: return self.ndim

    def numel(self) -> int: return self.data.size

    def __len__(self): return len(self.data)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", precision=4, prefix="tensor(")
        extra = ""
        if self.dtype != _DEFAULT_FLOAT and self.dtype.kind == "f":
            extra += f", dtype=ember.{self.dtype}"
        if self._ctx is not None:
            extra += f", grad_fn=<{self._ctx.fn.__name__}Backward>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ---- conversion ---------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """Return the underlying ndarray (shared memory, as torch's .numpy())."""
        return self.data

    def item(self):
        """Return the value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"a Tensor with {self.data.size} elements cannot be converted to Scalar")
        return self.data.item()

    def tolist(self): return self.data.tolist()

    def detach(self) -> "Tensor":
        """Return a tensor sharing data with this one but cut from the graph."""
        return Tensor(self.data)

    def clone(self) -> "Tensor": return _mv.Clone.apply(self)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        self.requires_grad = requires_grad
        return self

    def astype(self, dtype) -> "Tensor":
        dtype = np.dtype(dtype)
        return self if dtype == self.dtype else _ew.Cast.apply(self, dtype=dtype)

    to = astype

    def float(self): return self.astype(float32)
    def double(self): return self.astype(float64)
    def long(self): return Tensor(self.data.astype(int64))

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Backpropagate: accumulate d(self)/d(leaf) into ``.grad`` of every leaf requiring grad.

        Args:
            gradient: upstream gradient of self's shape; optional for a one-element tensor.
            retain_graph: keep the graph so backward can be called again through it.
        """
        autograd.backward(self, gradient, retain_graph)

    def zero_(self) -> "Tensor":
        self.data[...] = 0
        return self

    # ---- operators ----------------------------------------------------------------------
    def _wrap(self, other) -> "Tensor":
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Number) and self.dtype.kind == "f":
            return Tensor(np.asarray(other, dtype=self.dtype))  # keep float32 float32
        return Tensor(_as_array(other))

    def __add__(self, o): return _ew.Add.apply(self, self._wrap(o))
    def __radd__(self, o): return _ew.Add.apply(self._wrap(o), self)
    def __sub__(self, o): return _ew.Sub.apply(self, self._wrap(o))
    def __rsub__(self, o): return _ew.Sub.apply(self._wrap(o), self)
    def __mul__(self, o): return _ew.Mul.apply(self, self._wrap(o))
    def __rmul__(self, o): return _ew.Mul.apply(self._wrap(o), self)
    def __truediv__(self, o): return _ew.Div.apply(self, self._wrap(o))
    def __rtruediv__(self, o): return _ew.Div.apply(self._wrap(o), self)
    def __neg__(self): return _ew.Neg.apply(self)
    def __matmul__(self, o): return _mm.MatMul.apply(self, self._wrap(o))
    def __rmatmul__(self, o): return _mm.MatMul.apply(self._wrap(o), self)
    def __getitem__(self, idx): return _mv.GetItem.apply(self, index=_index(idx))

    def __pow__(self, o):
        if isinstance(o, numbers.Number):
            return _ew.PowScalar.apply(self, exponent=o)
        return _ew.Pow.apply(self, self._wrap(o))

    def __rpow__(self, o): return _ew.Pow.apply(self._wrap(o), self)

    # comparisons return boolean tensors outside the graph, as in torch
    def _cmp(self, o, f): return Tensor(f(self.data, o.data if isinstance(o, Tensor) else o))
    def __eq__(self, o): return self._cmp(o, np.equal)
    def __ne__(self, o): return self._cmp(o, np.not_equal)
    def __lt__(self, o): return self._cmp(o, np.less)
    def __le__(self, o): return self._cmp(o, np.less_equal)
    def __gt__(self, o): return self._cmp(o, np.greater)
    def __ge__(self, o): return self._cmp(o, np.greater_equal)
    __hash__ = object.__hash__

    def __bool__(self): return bool(self.data)
    def __float__(self): return float(self.item())
    def __int__(self): return int(self.item())
    def __iter__(self): return (self[i] for i in range(len(self)))

    # ---- methods (thin wrappers over ember.ops) ----------------------------------------
    def exp(self): return _ew.Exp.apply(self)
    def log(self): return _ew.Log.apply(self)
    def sqrt(self): return self ** 0.5
    def abs(self): return _ew.Abs.apply(self)
    def relu(self): return _dispatch(_act.ReLU).apply(self)
    def sigmoid(self): return _act.Sigmoid.apply(self)
    def tanh(self): return _act.Tanh.apply(self)
    def clamp(self, min=None, max=None): return _ew.Clamp.apply(self, lo=min, hi=max)
    def sum(self, dim=None, keepdim=False): return _red.Sum.apply(self, dim=_dims(dim), keepdim=keepdim)
    def mean(self, dim=None, keepdim=False): return _red.Mean.apply(self, dim=_dims(dim), keepdim=keepdim)

    def max(self, dim=None, keepdim=False):
        """Full max (a scalar; ties share the gradient evenly, as torch.max()), or with ``dim``
        a ``(values, indices)`` pair whose gradient goes to the first maximum, as torch."""
        if dim is None:
            return _red.Max.apply(self)
        return MaxResult(_red.MaxDim.apply(self, dim=dim, keepdim=keepdim), self.argmax(dim, keepdim))

    def min(self, dim=None, keepdim=False):
        r = (-self).max(dim, keepdim)
        return -r if dim is None else MaxResult(-r.values, r.indices)

    def argmax(self, dim=None, keepdim=False):
        return Tensor(np.asarray(np.argmax(self.data, axis=dim, keepdims=keepdim), dtype=int64))

    def reshape(self, *shape):
        return _mv.Reshape.apply(self, shape=_sizes(shape))

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        s = self.shape
        start, end = start_dim % max(self.ndim, 1), end_dim % max(self.ndim, 1)
        return self.reshape(*s[:start], int(np.prod(s[start:end + 1])), *s[end + 1:]) if self.ndim else self.reshape(1)

    def permute(self, *dims):
        return _mv.Permute.apply(self, dims=_sizes(dims))

    def transpose(self, dim0, dim1):
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(*dims)

    def t(self): return self.transpose(0, 1) if self.ndim == 2 else self

    def unsqueeze(self, dim):
        dim = dim % (self.ndim + 1)
        return self.reshape(*self.shape[:dim], 1, *self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(*[n for n in self.shape if n != 1])
        dim = dim % self.ndim
        return self.reshape(*self.shape[:dim], *self.shape[dim + 1:]) if self.shape[dim] == 1 else self

    def softmax(self, dim):
        """exp(x) / Σ_dim exp(x) (``ember.ops.activation.Softmax``)."""
        return _act.Softmax.apply(self, dim=dim)

    def log_softmax(self, dim):
        """log softmax along ``dim`` (``ember.ops.activation.LogSoftmax``)."""
        return _act.LogSoftmax.apply(self, dim=dim)

    def matmul(self, other): return self @ other


class MaxResult(tuple):
    """``(values, indices)`` returned by ``Tensor.max(dim)``, as torch.return_types.max."""
    values = property(lambda self: self[0])
    indices = property(lambda self: self[1])

    def __new__(cls, values, indices): return super().__new__(cls, (values, indices))


def _dispatch(op):
    """The Function to run for op: ``ember.kernels`` (above the core) installs its ``dispatch``
    here when it loads, so Tensor methods take the fast path without tensor.py importing it."""
    return op


def _sizes(args):
    """``f(2, 3)`` and ``f((2, 3))`` both mean (2, 3), as in torch's reshape/permute/zeros."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def _dims(dim):
    return tuple(dim) if isinstance(dim, (list, tuple)) else dim


def _index(idx):
    """Turn Tensors inside an index expression into ndarrays."""
    if isinstance(idx, Tensor):
        return idx.data
    if isinstance(idx, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in idx)
    return idx


def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """Create a tensor from array-like data (always copies, as torch.tensor).

    Args:
        data: nested lists, a number, an ndarray or a Tensor.
        dtype: ``ember.float32`` / ``ember.float64`` / ``ember.int64``...; default: float32 for
            Python floats, int64 for Python ints, the ndarray's own dtype for ndarrays.
        requires_grad: whether backward should compute a gradient for it.
    Returns:
        Tensor with the data's shape.
    """
    arr = np.array(_as_array(data, dtype), copy=True)
    return Tensor(arr, requires_grad=requires_grad)


def _filled(fill, shape, dtype, requires_grad):
    return Tensor(fill(_sizes(shape), dtype=np.dtype(dtype or _DEFAULT_FLOAT)), requires_grad=requires_grad)


def zeros(*shape, dtype=None, requires_grad=False) -> Tensor:
    """Tensor of zeros with the given shape (float32 unless ``dtype``)."""
    return _filled(np.zeros, shape, dtype, requires_grad)


def ones(*shape, dtype=None, requires_grad=False) -> Tensor:
    """Tensor of ones with the given shape (float32 unless ``dtype``)."""
    return _filled(np.ones, shape, dtype, requires_grad)


def randn(*shape, dtype=None, requires_grad=False) -> Tensor:
    """Standard-normal samples from ember's generator (``ember.manual_seed``)."""
    from .random import default_generator
    return _filled(lambda s, dtype: default_generator().standard_normal(s).astype(dtype), shape, dtype, requires_grad)


def rand(*shape, dtype=None, requires_grad=False) -> Tensor:
    """Uniform [0, 1) samples from ember's generator."""
    from .random import default_generator
    return _filled(lambda s, dtype: default_generator().random(s).astype(dtype), shape, dtype, requires_grad)


def arange(*args, dtype=None) -> Tensor:
    return Tensor(_as_array(np.arange(*args), dtype))


def from_numpy(a: np.ndarray) -> Tensor:
    """Wrap an ndarray without copying (as torch.from_numpy)."""
    return Tensor(np.asarray(a))


# The ops (see the module docstring: the core's one import circle, tensor <-> ops <-> autograd).
from .ops import activation as _act, elementwise as _ew, matmul as _mm, movement as _mv  # noqa: E402
from .ops import reduce as _red  # noqa: E402
