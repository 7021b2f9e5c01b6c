"""``Tensor``: an ndarray plus the autograd bookkeeping, with PyTorch's operators and methods.

A Tensor holds ``._data`` (its NumPy array, the storage ember's own ops read; ``.numpy()`` is
the public way), ``.grad`` (a Tensor or None), ``.requires_grad``, ``._ctx`` (the graph node that
produced it, None for leaves) and ``._vc`` (its version counter, a one-item list shared with
``detach()`` and with the views of the tensor, bumped by every in-place write: PyTorch's
``_version``) and ``._viewed`` (for a view: the tensor it views and how, see ``_view``). ``.data`` is a
Tensor sharing the storage with ``requires_grad=False`` and its own counter, as in PyTorch. Every method that computes
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
_KIND = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3, bool: 0, int: 1, float: 2, complex: 3}  # promotion order


def _as_array(data, dtype=None) -> np.ndarray:
    """Convert Python/NumPy data to an ndarray following torch.tensor's dtype rules:
    Python floats -> float32 (the default dtype), Python ints -> int64, ndarrays keep theirs."""
    if isinstance(data, Tensor):
        data = data._data
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
        data (Tensor sharing the storage, untracked), grad (Tensor | None), requires_grad (bool),
        shape, dtype, ndim, _version (int: in-place writes so far, shared with views and ``detach()``).
    """
    __slots__ = ("_data", "grad", "requires_grad", "_ctx", "_vc", "_viewed", "__weakref__")
    __array_priority__ = 1000  # make ndarray + Tensor dispatch to Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False):
        self._data = data if type(data) is np.ndarray else _as_array(data)
        self.grad, self.requires_grad, self._ctx, self._vc, self._viewed = None, requires_grad, None, [0], None
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError(f"only floating point tensors can require gradients, got dtype {self._data.dtype}")

    @property
    def data(self) -> "Tensor":
        """A Tensor sharing this one's storage, outside the graph and the version counter (as
        PyTorch's ``.data``); assigning a Tensor (or ndarray) replaces the storage."""
        return Tensor(self._data)

    @data.setter
    def data(self, value): self._data = value._data if isinstance(value, Tensor) else np.asarray(value)

    _version = property(lambda self: self._vc[0], doc="in-place writes so far (PyTorch's _version)")

    # ---- properties -------------------------------------------------------------------
    shape = property(lambda self: self._data.shape, doc="tuple of ints, as ndarray.shape")
    dtype = property(lambda self: self._data.dtype, doc="the NumPy dtype (ember.float32 by default)")
    ndim = property(lambda self: self._data.ndim)
    is_leaf = property(lambda self: self._ctx is None)

    # ---- conversion ---------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """Return the underlying ndarray (shared memory, as torch's .numpy())."""
        return self._data

    def __array__(self, dtype=None, copy=None):   # np.asarray(t), np.array(t) (a copy), as torch
        a = self._data if dtype is None else self._data.astype(dtype, copy=False)
        return a.copy() if copy else a

    def detach(self) -> "Tensor":
        """Return a tensor sharing storage and version counter with this one, cut from the graph."""
        t = Tensor(self._data)
        t._vc = self._vc
        return t

    def clone(self) -> "Tensor": return _mv.Clone.apply(self)

    def astype(self, dtype) -> "Tensor":
        dtype = np.dtype(dtype)
        return self if dtype == self.dtype else _ew.Cast.apply(self, dtype=dtype)


    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Backpropagate: accumulate d(self)/d(leaf) into ``.grad`` of every leaf requiring grad.

        Args:
            gradient: upstream gradient of self's shape; optional for a one-element tensor.
            retain_graph: keep the graph so backward can be called again through it.
        """
        autograd.backward(self, gradient, retain_graph)

    def _view(self, out, fn) -> "Tensor":
        """``out``, made from self by a view op (indexing, reshape, permute): when NumPy gave a view of
        self's storage it becomes a PyTorch view, sharing self's version counter and recording in
        ``_viewed`` (base, fn, the base's node then): the first tensor up the chain that is no view,
        and ``fn`` taking this view from the base's array (for writes through it, see ``_inplace``)."""
        if np.may_share_memory(out._data, self._data):
            base, f = self._viewed[:2] if self._viewed else (self, None)
            out._vc, out._viewed = self._vc, (base, fn if f is None else lambda a: fn(f(a)), base._ctx)
        return out

    def _inplace(self, compute, *args) -> "Tensor":
        """Write ``compute(self, *args)`` (an out-of-place result) into self's storage, which its views
        and ``detach()`` share, and bump the version counter (PyTorch's in-place rules), so a backward
        that saved the old values raises instead of using them. Tracked (grad mode and something
        requires grad): compute reads a copy of self with self's graph node, and the result's node
        becomes self's; through a view, the base's node becomes ``ViewScatter`` (PyTorch's
        CopySlices) and the view's a ``ViewOf`` the new base.
        Raises: RuntimeError for a leaf that requires grad (or a view of one) outside no_grad, an
            expanded tensor, a result that does not fit self's shape or cannot be cast to its dtype
            (PyTorch's messages).
        """
        track = autograd.is_grad_enabled() and (self.requires_grad or any(getattr(a, "requires_grad", False) for a in args))
        base = self._viewed and self._viewed[0]
        if track and any(t is not None and t.requires_grad and t._ctx is None for t in (self, base)):
            raise RuntimeError(f"a {'view of a ' if base is not None else ''}leaf Variable that requires grad is being used in an in-place operation.")
        self._writable()
        self._vc[0] += 1
        old = self
        if track:
            old = Tensor(self._data.copy(), self.requires_grad)
            old._ctx = self._ctx
        with autograd.set_grad_enabled(track):
            r = compute(old, *args)
        if not np.can_cast(r.dtype, self.dtype, "same_kind"):
            raise RuntimeError(f"result type {r.dtype} can't be cast to the desired output type {self.dtype}")
        if r.shape != self.shape:
            raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the broadcast shape {list(r.shape)}")
        self._data[...] = r._data
        if track and base is not None:
            base._ctx, base.requires_grad = _mv.ViewScatter.apply(base, r.astype(self.dtype), fn=self._viewed[1])._ctx, True
            self.requires_grad = True
            self._rebase()
        elif track:
            self._ctx, self.requires_grad = r.astype(self.dtype)._ctx, True
        return self

    def _rebase(self):
        """Take this view's graph node anew from its base (``ViewOf``), whose node changed since the
        view was taken (an in-place write through another view, or to the base itself): PyTorch
        regenerates a view's grad_fn the same way. Called by the engine's ``_graph_parent``."""
        base, fn, _ = self._viewed
        self._ctx, self._viewed = _mv.ViewOf.apply(base, fn=fn)._ctx, (base, fn, base._ctx)

    def _writable(self):
        if not self._data.flags.writeable:
            raise RuntimeError("unsupported operation: more than one element of the written-to tensor refers to a single "
                               "memory location. Please clone() the tensor before performing the operation.")

    def __setitem__(self, idx, value):
        """``x[idx] = value`` in place (tracked as ``SetItem`` when a gradient flows through)."""
        if autograd.is_grad_enabled() and (self.requires_grad or getattr(value, "requires_grad", False)):
            self._inplace(lambda s, v: _mv.SetItem.apply(s, s._wrap(v), index=_index(idx)), value)
        else:
            self._writable()
            self._data[_index(idx)] = value._data if isinstance(value, Tensor) else value
            self._vc[0] += 1

    # ---- operators ----------------------------------------------------------------------
    def _wrap(self, other) -> "Tensor":
        """``other`` as a Tensor; a Python number takes self's dtype when its kind (bool < int <
        float) is not higher, else the default of its kind: Python scalars do not promote."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Number) and _kind(other) <= _KIND[self.dtype.kind]:
            return Tensor(np.asarray(other, dtype=self.dtype))
        return Tensor(_as_array(other))

    def _pair(self, o, true_div=False):
        """(self, other) cast to PyTorch's result type (torch.result_type): a higher kind wins; within
        a kind a dimensioned tensor beats a 0-d one; ``/`` of integers gives the default float."""
        o, dt = self._wrap(o), self.dtype
        if o.dtype != dt:
            a, b = (_KIND[dt.kind], self.ndim > 0), (_KIND[o.dtype.kind], o.ndim > 0)
            dt = np.promote_types(dt, o.dtype) if a == b else dt if a > b else o.dtype
        if true_div and dt.kind != "f":
            dt = _DEFAULT_FLOAT
        return (self, o) if o.dtype == dt == self.dtype else (self.astype(dt), o.astype(dt))

    def __add__(self, o): return _ew.Add.apply(*self._pair(o))
    def __radd__(self, o): return _ew.Add.apply(*self._pair(o)[::-1])
    def __sub__(self, o): return _ew.Sub.apply(*self._pair(o))
    def __rsub__(self, o): return _ew.Sub.apply(*self._pair(o)[::-1])
    def __mul__(self, o): return _ew.Mul.apply(*self._pair(o))
    def __rmul__(self, o): return _ew.Mul.apply(*self._pair(o)[::-1])
    def __truediv__(self, o): return _ew.Div.apply(*self._pair(o, True))
    def __rtruediv__(self, o): return _ew.Div.apply(*self._pair(o, True)[::-1])
    def __neg__(self): return _ew.Neg.apply(self)
    def __matmul__(self, o): return _mm.MatMul.apply(self, self._wrap(o))
    def __rmatmul__(self, o): return _mm.MatMul.apply(self._wrap(o), self)
    def __getitem__(self, idx): return self._view(_mv.GetItem.apply(self, index=(i := _index(idx))), lambda a: a[i])

    def __pow__(self, o):
        if isinstance(o, numbers.Number) and _kind(o) <= _KIND[self.dtype.kind]:
            return _ew.PowScalar.apply(self, exponent=o)
        return _ew.Pow.apply(*self._pair(o))

    def __rpow__(self, o): return _ew.Pow.apply(*self._pair(o)[::-1])

    # comparisons return boolean tensors outside the graph, as in torch
    def _cmp(self, o, f): return Tensor(f(self._data, o._data if isinstance(o, Tensor) else o))
    def __eq__(self, o): return self._cmp(o, np.equal)
    def __ne__(self, o): return self._cmp(o, np.not_equal)
    def __lt__(self, o): return self._cmp(o, np.less)
    def __le__(self, o): return self._cmp(o, np.less_equal)
    def __gt__(self, o): return self._cmp(o, np.greater)
    def __ge__(self, o): return self._cmp(o, np.greater_equal)
    __hash__ = object.__hash__

    # ---- methods (thin wrappers over ember.ops) ----------------------------------------
    def exp(self): return _ew.Exp.apply(self)
    def log(self): return _ew.Log.apply(self)
    def abs(self): return _ew.Abs.apply(self)
    def relu(self): return _dispatch(_act.ReLU).apply(self)
    def sigmoid(self): return _act.Sigmoid.apply(self)
    def tanh(self): return _act.Tanh.apply(self)
    def clamp(self, min=None, max=None): return _ew.Clamp.apply(self, lo=min, hi=max)
    def sum(self, dim=None, keepdim=False, dtype=None): return _red.Sum.apply(self if dtype is None else self.to(dtype), dim=_dims(dim), keepdim=keepdim)
    def mean(self, dim=None, keepdim=False, dtype=None): return _red.Mean.apply(self if dtype is None else self.to(dtype), dim=_dims(dim), keepdim=keepdim)

    def max(self, dim=None, keepdim=False):
        """Full max (a scalar; ties share the gradient evenly, as torch.max()), or with ``dim``
        a ``(values, indices)`` pair whose gradient goes to the first maximum, as torch."""
        if dim is None:
            return _red.Max.apply(self)
        return MaxResult(_red.MaxDim.apply(self, dim=dim, keepdim=keepdim), self.argmax(dim, keepdim))

    def argmax(self, dim=None, keepdim=False):
        return Tensor(np.asarray(np.argmax(self._data, axis=dim, keepdims=keepdim), dtype=int64))

    def reshape(self, *shape):
        return self._view(_mv.Reshape.apply(self, shape=_sizes(shape)), lambda a, s=_sizes(shape): a.reshape(s))

    view = reshape

    def permute(self, *args, dims=None):   # permute(0, 2, 1), permute((0, 2, 1)) or permute(dims=...), as torch
        return self._view(_mv.Permute.apply(self, dims=_sizes(dims or args)), lambda a, d=_sizes(dims or args): a.transpose(d))

class MaxResult(tuple):
    """``(values, indices)`` returned by ``Tensor.max(dim)``, as torch.return_types.max."""
    values = property(lambda self: self[0])
    indices = property(lambda self: self[1])

    def __new__(cls, values, indices): return super().__new__(cls, (values, indices))


def _dispatch(op):
    """The Function to run for op: ``ember.kernels`` (above the core) installs its ``dispatch``
    here when it loads, so Tensor methods take the fast path without tensor.py importing it."""
    return op


def _kind(number) -> int:
    """The promotion kind of a Python or NumPy number: bool 0, int 1, float 2, complex 3."""
    return _KIND[type(number)] if type(number) in _KIND else _KIND[np.asarray(number).dtype.kind]


def _sizes(args):
    """``f(2, 3)`` and ``f((2, 3))`` both mean (2, 3), as in torch's reshape/permute/zeros."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def _dims(dim):
    return tuple(dim) if isinstance(dim, (list, tuple)) else dim


def _index(idx):
    """The index as a tuple of NumPy indices (Tensors turned into ndarrays) ending in ``...``: the
    same selection, but an index of integers gives a 0-d view, as torch's select, not NumPy's copy."""
    idx = [i._data if isinstance(i, Tensor) else i for i in (idx if type(idx) is tuple else (idx,))]
    return tuple(idx) if type(...) in map(type, idx) else (*idx, ...)


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


def arange(*args, dtype=None, requires_grad=False) -> Tensor:
    """Values from start to end (excluded) by step, as torch.arange: int64 for integer arguments,
    the default float dtype (float32) when any is a float."""
    a = np.arange(*args)
    return Tensor(a.astype(dtype or (_DEFAULT_FLOAT if a.dtype.kind == "f" else int64)), requires_grad=requires_grad)


def from_numpy(a: np.ndarray) -> Tensor:
    """Wrap an ndarray without copying (as torch.from_numpy)."""
    return Tensor(np.asarray(a))


# The ops (see the module docstring: the core's one import circle, tensor <-> ops <-> autograd).
from .ops import activation as _act, elementwise as _ew, matmul as _mm, movement as _mv  # noqa: E402
from .ops import reduce as _red  # noqa: E402
