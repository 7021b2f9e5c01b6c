"""PyTorch's tensor semantics on ember's core: devices, dtypes, in-place methods, Python
protocols and the autograd API (issue 12, groups 1, 2, 3, 8 and 9).

Everything here is a thin layer over ``ember.tensor`` and ``ember.autograd``: in-place methods call
``Tensor._inplace`` (PyTorch's leaf rule, the version counter), conversions call ``Tensor.astype``
(the ``Cast`` op), and the user-facing ``autograd.Function`` runs the user's tensor-level
``forward``/``backward`` inside one array-level graph node. Attached to ``Tensor``, ``ember`` and
``ember.autograd`` by ``attach()`` when ``ember`` is imported.
Source: PyTorch 2.13's documented behaviour (torch.device, torch.Tensor.to, torch.result_type,
"in-place correctness checks" in the autograd notes, torch.autograd.Function, torch.autograd.grad);
the tests compare with torch itself.
"""
from __future__ import annotations

import functools
import math
import sys
import types

import numpy as np

from .. import autograd
from . import nodes
from ..autograd import no_grad
from ..ops import activation as _act
from ..tensor import MaxResult, Tensor

_t = sys.modules["ember.tensor"]     # the module (``ember.tensor`` is also the function)

# ---- dtypes --------------------------------------------------------------------------------
DTYPES = {"float32": _t.float32, "float": _t.float32, "float64": _t.float64, "double": _t.float64,
          "float16": np.dtype(np.float16), "half": np.dtype(np.float16), "int64": _t.int64,
          "long": _t.int64, "int32": np.dtype(np.int32), "int": np.dtype(np.int32),
          "int16": np.dtype(np.int16), "short": np.dtype(np.int16), "int8": np.dtype(np.int8),
          "uint8": np.dtype(np.uint8), "bool": _t.bool_, "complex64": np.dtype(np.complex64),
          "cfloat": np.dtype(np.complex64), "complex128": np.dtype(np.complex128),
          "cdouble": np.dtype(np.complex128)}
_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
               "int64": "LongTensor", "int32": "IntTensor", "int16": "ShortTensor",
               "int8": "CharTensor", "uint8": "ByteTensor", "bool": "BoolTensor"}


def get_default_dtype() -> np.dtype:
    """The dtype of Python floats turned into tensors (float32 unless changed), as torch."""
    return _t._DEFAULT_FLOAT


def set_default_dtype(d) -> None:
    """Set the default floating dtype (``ember.float32`` or ``ember.float64``; float16 too).

    Raises: TypeError for a non-floating dtype (PyTorch's message)."""
    d = np.dtype(d)
    if d.kind != "f":
        raise TypeError("only floating-point types are supported as the default type")
    _t._DEFAULT_FLOAT = d


def is_floating_point(t: Tensor) -> bool:
    """True for a float16/32/64 tensor (torch.is_floating_point)."""
    return t.dtype.kind == "f"


def result_type(tensor, other) -> np.dtype:
    """The dtype ``tensor + other`` gets (torch.result_type): a float tensor with an integer tensor
    stays float; a Python number never widens a tensor of its kind; within a kind a dimensioned
    tensor beats a 0-d one. Args: a Tensor (or number) and a Tensor or number."""
    if not isinstance(tensor, Tensor):
        tensor, other = other, tensor
    if not isinstance(tensor, Tensor):   # two numbers: as 0-d tensors (int64 / the default float)
        tensor = Tensor(_t._as_array(tensor))
    return tensor._pair(other)[0].dtype


def _convert(self: Tensor, dtype) -> Tensor:
    """``self`` as ``dtype``: the Cast op between float dtypes (gradients flow), a plain copy
    outside the graph to a non-float dtype (as PyTorch: integer tensors carry no gradient)."""
    dtype = np.dtype(dtype)
    if dtype == self.dtype:
        return self
    return self.astype(dtype) if dtype.kind == "f" else Tensor(self._data.astype(dtype))


def _type(self: Tensor, dtype=None, non_blocking=False):
    """``t.type()`` -> 'ember.FloatTensor' (PyTorch's type string); ``t.type(dtype)`` converts."""
    if dtype is None:
        return f"ember.{_TYPE_NAMES.get(self.dtype.name, self.dtype.name)}"
    if isinstance(dtype, str) and dtype.split(".")[-1] in _TYPE_NAMES.values():
        dtype = next(k for k, v in _TYPE_NAMES.items() if v == dtype.split(".")[-1])
    return _convert(self, dtype)


# ---- devices -------------------------------------------------------------------------------
class device:
    """``ember.device("cpu")`` (also ``"cpu:0"``, ``device("cpu", 0)``, another device): where a
    tensor lives, as torch.device. ember runs on the CPU only: ``device("cuda")`` can be built (as
    in PyTorch, so ``"cuda" if ember.cuda.is_available() else "cpu"`` reads the same) but using it
    raises RuntimeError. Raises: RuntimeError for an unknown device type."""
    KNOWN = ("cpu", "cuda", "mps", "xpu", "meta", "hip", "xla", "ipu", "hpu", "mtia", "privateuseone")

    def __init__(self, type="cpu", index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        elif isinstance(type, int) and not isinstance(type, bool):
            type, index = "cuda", type
        name, _, idx = str(type).partition(":")
        if name not in self.KNOWN:
            raise RuntimeError(f"Expected one of {', '.join(self.KNOWN)} device type at start of device "
                               f"string: {type}")
        self.type, self.index = name, int(idx) if idx else index

    def __repr__(self):
        return f"device(type='{self.type}')" if self.index is None else \
            f"device(type='{self.type}', index={self.index})"

    def __str__(self): return self.type if self.index is None else f"{self.type}:{self.index}"
    def __eq__(self, other): return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)
    def __hash__(self): return hash((self.type, self.index))


CPU = device("cpu")
_Device = device


def check_device(d) -> None:
    """Accept None or a CPU device (``"cpu"``, ``"cpu:0"``, ``device("cpu")``); anything else is
    a RuntimeError naming it (ember has no accelerator)."""
    if d is None:
        return
    dev = device(d)
    if dev.type != "cpu":
        raise RuntimeError(f"ember runs on the CPU only: device '{dev}' is not available "
                           f"(ember.cuda.is_available() is False); use 'cpu'")


def _no_accelerator(*args, **kwargs):
    raise RuntimeError("ember runs on the CPU only: there is no CUDA device "
                       "(ember.cuda.is_available() is False)")


cuda = types.ModuleType("ember.cuda", "torch.cuda's queries, answered for a CPU-only library.")
cuda.is_available = lambda: False
cuda.device_count = lambda: 0
cuda.is_initialized = lambda: False
cuda.manual_seed = cuda.manual_seed_all = cuda.synchronize = cuda.empty_cache = lambda *a, **k: None
cuda.current_device = cuda.get_device_name = _no_accelerator

def importable(module, name: str) -> None:
    """Make ``module`` importable as ``name`` (``import ember.cuda``, ``from ember.cuda.amp import
    GradScaler``): an entry in sys.modules with a spec of that name."""
    import importlib.machinery
    if getattr(module, "__spec__", None) is None:
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    sys.modules[name] = module


accelerator = types.ModuleType("ember.accelerator", "torch.accelerator: ember has none.")
accelerator.is_available = lambda: False
accelerator.device_count = lambda: 0
accelerator.current_accelerator = lambda check_available=False: None
accelerator.synchronize = lambda *a, **k: None


def parse_to(args, dtype=None, device=None, non_blocking=False, copy=False, memory_format=None):
    """``(dtype, device, copy)`` from ``to``'s arguments: ``(device)``, ``(dtype)``, ``(device,
    dtype)``, ``(tensor)`` or keywords, as torch.Tensor.to. Raises RuntimeError for a non-CPU device."""
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, (str, _Device, int)) and not isinstance(a, bool):
            device = a
        else:
            dtype = a
    check_device(device)
    return dtype, device, copy


def _to(self: Tensor, *args, **kwargs):
    """``t.to(device)``, ``t.to(dtype)``, ``t.to(device, dtype)``, ``t.to(other)`` as torch.Tensor.to:
    returns self when nothing changes (a copy with ``copy=True``). Raises RuntimeError for a
    non-CPU device."""
    dtype, _, copy = parse_to(args, **kwargs)
    out = self if dtype is None else _convert(self, dtype)
    return out.clone() if copy and out is self else out


def _with_device(fn):
    """``fn`` accepting PyTorch's ``device=`` keyword (CPU only) on a creation function."""
    @functools.wraps(fn)
    def wrapper(*args, device=None, **kwargs):
        check_device(device)
        return fn(*args, **kwargs)
    return wrapper


def _leaves(data):
    for x in data:
        if isinstance(x, (list, tuple)):
            yield from _leaves(x)
        else:
            yield x


def sequence_dtype(data):
    """The dtype torch.tensor infers for a list or tuple holding NumPy scalars (None: ember's own
    rule applies): each element's dtype (a Python int counts as int64, a float as the default
    float, a bool as bool), then the widest float if any, else NumPy's promotion of the integers
    (``[np.float64(0.5), 1.0]`` is float64, ``[np.int32(2)]`` int32, ``[np.int32(1), 2.0]`` float32)."""
    if not isinstance(data, (list, tuple)) or not any(isinstance(x, np.generic) for x in _leaves(data)):
        return None
    kinds = [np.dtype(type(x)) if isinstance(x, np.generic) else
             np.dtype(bool) if isinstance(x, bool) else np.dtype(np.int64) if isinstance(x, int) else
             _t._DEFAULT_FLOAT if isinstance(x, float) else None for x in _leaves(data)]
    if any(k is None for k in kinds):
        return None
    floats = [k for k in kinds if k.kind == "f"]
    if floats:
        return max(floats, key=lambda k: k.itemsize)
    ints = [k for k in kinds if k.kind in "iu"]
    return np.result_type(*ints) if ints else np.dtype(bool)


def _tensor_factory(fn):
    """ember.tensor with PyTorch's device= keyword and its dtype inference for NumPy scalars in lists."""
    @functools.wraps(fn)
    def wrapper(data, dtype=None, *args, device=None, **kwargs):
        check_device(device)
        return fn(data, dtype if dtype is not None else sequence_dtype(data), *args, **kwargs)
    return wrapper


# ---- in-place methods (Tensor._inplace: PyTorch's leaf rule and version counter) --------------
def _scaled(other, alpha):
    return other if alpha == 1 else other * alpha


def add_(self, other, *, alpha=1): return self._inplace(lambda s, o: s + _scaled(o, alpha), other)
def sub_(self, other, *, alpha=1): return self._inplace(lambda s, o: s - _scaled(o, alpha), other)
def mul_(self, other): return self._inplace(Tensor.__mul__, other)
def div_(self, other): return self._inplace(Tensor.__truediv__, other)
def pow_(self, exponent): return self._inplace(Tensor.__pow__, exponent)
def clamp_(self, min=None, max=None): return self._inplace(lambda s: s.clamp(min, max))
def zero_(self): return self.fill_(0)


def fill_(self, value):
    """Every element set to ``value`` (a number or a one-element tensor), in place."""
    value = value.item() if isinstance(value, Tensor) else value
    return self._inplace(lambda s: s * 0 + value if s.requires_grad else Tensor(np.full(s.shape, value, s.dtype)))


def copy_(self, src, non_blocking=False):
    """Copy ``src`` (broadcast to self's shape, cast to self's dtype) into self, in place."""
    src = src if isinstance(src, Tensor) else Tensor(_t._as_array(src))
    return self._inplace(lambda s, o: o.astype(s.dtype) + s * 0 if o.shape != s.shape else o.astype(s.dtype), src)


def _sampler(draw):
    def method(self, *args, generator=None):
        from ..random import default_generator
        rng = generator if generator is not None else default_generator()
        return self._inplace(lambda s: Tensor(np.asarray(draw(rng, s.shape, *args), dtype=s.dtype)))
    return method


normal_ = _sampler(lambda rng, shape, mean=0.0, std=1.0: rng.normal(mean, std, shape))
uniform_ = _sampler(lambda rng, shape, a=0.0, b=1.0: rng.uniform(a, b, shape))


# ---- Python protocols ----------------------------------------------------------------------
def item(self):
    """The value of a one-element tensor as a Python number (torch.Tensor.item)."""
    if self._data.size != 1:
        raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
    return self._data.item()


def __bool__(self):
    if self._data.size != 1:
        raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
    return bool(self._data.item())


def __index__(self):
    if self._data.size != 1 or self.dtype.kind not in "iub":
        raise TypeError("only integer tensors of a single element can be converted to an index")
    return int(self._data.item())


def __len__(self):
    if self.ndim == 0:
        raise TypeError("len() of a 0-d tensor")
    return len(self._data)


def __iter__(self):
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d tensor")
    return (self[i] for i in range(len(self)))


def __format__(self, spec):
    """``f"{loss:.4f}"``: a 0-d tensor formats as its number (PyTorch's rule); others as repr."""
    if self.ndim == 0:
        return self._data.item().__format__(spec)
    return object.__format__(self, spec)


class _Formatter:
    """How PyTorch prints the entries of one tensor (its print options: precision 4, line width
    80): floats whose non-zero finite values are all integers print as "3." (int mode); values
    spanning more than 1000× or beyond 1e8 (or, for non-integers, below 1e-4) in scientific
    notation "1.2346e+05"; other floats with 4 decimals; every entry right-aligned to the widest."""

    def __init__(self, values: np.ndarray):
        self.kind, self.sci, self.int_mode = values.dtype.kind, False, True
        if self.kind != "f":
            self.width = max((len(self._plain(v)) for v in values.tolist()), default=1)
            return
        nz = values[np.isfinite(values) & (values != 0)].astype(np.float64)
        self.width = 1
        if nz.size == 0:
            return
        lo, hi = np.abs(nz).min(), np.abs(nz).max()
        self.int_mode = bool(np.all(nz == np.ceil(nz)))
        self.sci = hi / lo > 1000 or hi > 1e8 or (not self.int_mode and lo < 1e-4)
        spec = ".4e" if self.sci else (".0f" if self.int_mode else ".4f")
        self.width = max(len(format(v, spec)) for v in nz.tolist()) + (self.int_mode and not self.sci)

    def _plain(self, v):
        return str(bool(v)) if self.kind == "b" else str(v)

    def __call__(self, v) -> str:
        if self.kind != "f":
            text = self._plain(v)
        elif self.sci:
            text = f"{v:.4e}"
        elif self.int_mode:
            text = f"{v:.0f}" + ("" if math.isinf(v) or math.isnan(v) else ".")
        else:
            text = f"{v:.4f}"
        return text.rjust(self.width)


_EDGE, _THRESHOLD, _LINEWIDTH = 3, 1000, 80


def _summarized(a: np.ndarray) -> np.ndarray:
    """The entries PyTorch shows of a tensor of more than 1000: the first and last 3 along each dim."""
    if a.ndim == 0:
        return a
    if a.shape[0] > 2 * _EDGE:
        a = np.concatenate([a[:_EDGE], a[-_EDGE:]])
    return np.stack([_summarized(row) for row in a]) if a.ndim > 1 else a


def _body(a: np.ndarray, fmt: _Formatter, indent: int, summarize: bool) -> str:
    """PyTorch's nested-bracket layout: rows wrapped at 80 columns, "..." where summarised."""
    if a.ndim == 0:
        return fmt(a.item())
    cut = summarize and a.shape[0] > 2 * _EDGE
    items = list(range(_EDGE)) + [None] + list(range(a.shape[0] - _EDGE, a.shape[0])) if cut else range(a.shape[0])
    if a.ndim == 1:
        texts = [" ..." if i is None else fmt(a[i].item()) for i in items]
        per_line = max(1, (_LINEWIDTH - indent) // (fmt.width + 2))
        lines = [", ".join(texts[i:i + per_line]) for i in range(0, len(texts), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    rows = ["..." if i is None else _body(a[i], fmt, indent + 1, summarize) for i in items]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(rows) + "]"


def __repr__(self):
    """As PyTorch prints a tensor (``tensor([0.3000, 1.0000])``, int mode ``tensor([1., 2.])``,
    scientific notation, wrapping at 80 columns, more than 1000 entries summarised with "..."),
    then ``dtype=ember.<dtype>`` for a dtype other than float32, int64 and bool, and the
    ``grad_fn=<...>`` or ``requires_grad=True`` of PyTorch's repr."""
    a, indent = self._data, len("tensor(")
    summarize = a.size > _THRESHOLD
    if a.size == 0:
        body = "[]" + (f", size={tuple(a.shape)}" if a.shape != (0,) else "")
    else:
        body = _body(a, _Formatter((_summarized(a) if summarize else a).reshape(-1)), indent, summarize)
    suffixes = []
    if self.dtype not in (_t._DEFAULT_FLOAT, np.dtype(np.int64), np.dtype(bool)):
        suffixes.append(f"dtype=ember.{self.dtype}")
    if self._ctx is not None:
        suffixes.append(f"grad_fn=<{self.grad_fn.name()}>")
    elif self.requires_grad:
        suffixes.append("requires_grad=True")
    text, last = "tensor(" + body, len(body) - body.rfind("\n") + 1 if "\n" in body else indent + len(body)
    for suffix in suffixes:                                    # a suffix that would pass column 80 wraps
        if last + len(suffix) + 2 > _LINEWIDTH:
            text, last = text + ",\n" + " " * indent + suffix, indent + len(suffix)
        else:
            text, last = text + ", " + suffix, last + len(suffix) + 2
    return text + ")"


def __getstate__(self):
    """Pickle state without the view record (whose ``fn`` is a closure): an unpickled view is a
    tensor of its own, as ``copy.deepcopy`` of a view is (DataLoader workers send batches this way)."""
    return None, {"_data": self._data, "grad": self.grad, "requires_grad": self.requires_grad, "_ctx": self._ctx,
                  "_vc": self._vc, "_viewed": None}


# ---- shape methods and the like (thin wrappers over the core's ops) ---------------------------
def requires_grad_(self, requires_grad: bool = True):
    """Set ``requires_grad`` in place (torch.Tensor.requires_grad_); returns self."""
    self.requires_grad = requires_grad
    return self


def flatten(self, start_dim=0, end_dim=-1):
    """self with dims start_dim..end_dim merged into one (torch.Tensor.flatten): a view where the
    layout allows, as ``reshape``; a 0-d tensor becomes shape (1,). (N, C, H, W).flatten(1) ->
    (N, C·H·W). The merged size by ``math.prod`` (NumPy's prod of a shape tuple took ~10 µs, a
    third of LeNet-5's Flatten)."""
    s = self.shape
    start, end = start_dim % max(self.ndim, 1), end_dim % max(self.ndim, 1)
    return self.reshape(*s[:start], math.prod(s[start:end + 1]), *s[end + 1:]) if self.ndim else self.reshape(1)


def transpose(self, dim0, dim1):
    """self with dims dim0 and dim1 swapped: a view (node TransposeBackward0, as torch)."""
    dims = list(range(self.ndim))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return nodes.named(self.permute(*dims), "TransposeBackward0")


def t(self):
    """The transpose of a 2-D tensor (self for fewer dims): a view (node TBackward0, as torch).
    Raises RuntimeError for more than 2 dims (PyTorch's message)."""
    if self.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
    return nodes.named(self.permute(1, 0), "TBackward0") if self.ndim == 2 else self


def unsqueeze(self, dim):
    """self with a size-1 dim inserted at ``dim``: a view (node UnsqueezeBackward0)."""
    dim = dim % (self.ndim + 1)
    return nodes.named(self.reshape(*self.shape[:dim], 1, *self.shape[dim:]), "UnsqueezeBackward0")


def squeeze(self, dim=None):
    """self without its size-1 dims (or only ``dim``, if it has size 1): a view (node
    SqueezeBackward0, SqueezeBackward1 with ``dim``, as torch)."""
    if dim is None:
        return nodes.named(self.reshape(*[n for n in self.shape if n != 1]), "SqueezeBackward0")
    if isinstance(dim, (tuple, list)):                         # torch ≥ 2.0: several dims at once
        drop = {d % self.ndim for d in dim if self.shape[d % self.ndim] == 1}
        out = self.reshape(*[n for i, n in enumerate(self.shape) if i not in drop]) if drop else self
        return nodes.named(out, "SqueezeBackward2") if out is not self else self
    dim = dim % self.ndim
    out = self.reshape(*self.shape[:dim], *self.shape[dim + 1:]) if self.shape[dim] == 1 else self
    return nodes.named(out, "SqueezeBackward1") if out is not self else self


def view(self, *shape):
    """self with another shape, sharing its storage (torch.Tensor.view); differentiable.
    Raises RuntimeError where no view is possible (PyTorch's message: use reshape)."""
    out = self.reshape(*shape)
    if out._viewed is None and self._data.size > 1:
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at least one dimension "
                           "spans across two contiguous subspaces). Use .reshape(...) instead.")
    return out


def stride(self, dim=None):
    """The step in elements between neighbours along each dim (torch.Tensor.stride): a tuple, or
    one int for ``dim`` (negative counts from the end). A compiled conv's output, stored
    batch-innermost, has (1, H·W·N, W·N, N) where PyTorch's has (C·H·W, H·W, W, 1).
    Raises IndexError for a dim out of range, as PyTorch."""
    steps = tuple(s // self._data.itemsize for s in self._data.strides)
    if dim is None:
        return steps
    if self.ndim == 0:
        raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
    if not -self.ndim <= dim < self.ndim:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-self.ndim}, {self.ndim - 1}], "
                         f"but got {dim})")
    return steps[dim]


def _min(self, dim=None, keepdim=False):
    r = (-self).max(dim, keepdim)
    return -r if dim is None else MaxResult(-r.values, r.indices)


def _float_only(op, what):
    """``op`` (Softmax/LogSoftmax) refusing integer and bool inputs with PyTorch's error."""
    def method(self, dim, dtype=None):
        x = self if dtype is None else _convert(self, dtype)
        if x.dtype.kind != "f":
            raise RuntimeError(f'"{what}_lastdim_kernel_impl" not implemented for '
                               f"'{_TYPE_NAMES.get(x.dtype.name, x.dtype.name).replace('Tensor', '')}'")
        return op.apply(x, dim=dim)
    method.__doc__ = f"{op.__name__} along ``dim`` (``ember.ops.activation.{op.__name__}``); float inputs only."
    return method


softmax = _float_only(_act.Softmax, "softmax")
log_softmax = _float_only(_act.LogSoftmax, "log_softmax")


# ---- autograd API --------------------------------------------------------------------------
class FunctionCtx:
    """The ``ctx`` a user-defined ``autograd.Function`` sees: ``save_for_backward(*tensors)`` /
    ``saved_tensors``, ``needs_input_grad``, ``mark_non_differentiable(*outputs)``,
    ``set_materialize_grads(value)``, and any attribute the user sets (as torch's FunctionCtx)."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad, self.saved, self.non_differentiable = needs_input_grad, (), ()
        self.materialize_grads = True

    def save_for_backward(self, *tensors): self.saved = tensors
    def mark_non_differentiable(self, *outputs): self.non_differentiable = outputs

    def set_materialize_grads(self, value: bool):
        """With False, ``backward`` receives None (not zeros) for an output that got no gradient."""
        self.materialize_grads = bool(value)

    @property
    def saved_tensors(self):
        if self.saved is None:
            raise RuntimeError("Trying to backward through the graph a second time; "
                               "pass retain_graph=True to the first backward() call")
        return self.saved


class _UserNode(autograd.Function):
    """The array-level graph node that runs a user's tensor-level Function: forward hands it the
    input Tensors (detached, sharing their storage and version counters) under no_grad; backward
    hands it one gradient Tensor per output and takes back Tensors (or None).

    One Tensor output: this node's output is it. Several outputs (a tuple): this node's output is
    a 0-d placeholder, and each differentiable output is an ``_Output`` node on it, whose backward
    files its gradient here (``ctx.grads``) and sends 0 to the placeholder; this node then calls the
    user's backward with every output's gradient, zeros (or None after
    ``ctx.set_materialize_grads(False)``) where one got none, None for non-tensor outputs (torch)."""
    @staticmethod
    def forward(ctx, *arrays, user, inputs, box):
        ctx.user, ctx.uctx = user, FunctionCtx(ctx.needs_input_grad)
        ctx.fn = nodes.renamed(_UserNode, f"{user.__name__}Backward")
        with no_grad():
            out = user.forward(ctx.uctx, *[a.detach() if isinstance(a, Tensor) else a for a in inputs])
        if not isinstance(out, (Tensor, tuple, list)):
            raise TypeError(f"{user.__name__}.forward returned {type(out).__name__}: an autograd.Function returns "
                            f"a Tensor or a tuple of Tensors (and other values)")
        ctx.save_for_backward(*[t._data for t in ctx.uctx.saved if isinstance(t, Tensor)])  # versions checked
        ctx.non_differentiable = [any(o is t for t in ctx.uctx.non_differentiable) for o in
                                  (out if isinstance(out, (tuple, list)) else (out,))]
        box.append(out)
        if isinstance(out, Tensor):
            return out._data
        ctx.outputs = [(o.shape, o.dtype) if isinstance(o, Tensor) else None for o in out]
        return np.zeros((), np.float64)

    @staticmethod
    def backward(ctx, grad_out):
        if not hasattr(ctx, "outputs"):
            grads = (Tensor(grad_out),)
        else:
            filed, zeros = ctx.__dict__.pop("grads", {}), ctx.uctx.materialize_grads
            grads = tuple(Tensor(filed[i]) if i in filed else Tensor(np.zeros(*meta)) if meta and zeros else None
                          for i, meta in enumerate(ctx.outputs))
        with no_grad():
            grads = ctx.user.backward(ctx.uctx, *grads)
        grads = grads if isinstance(grads, tuple) else (grads,)
        if len(grads) != len(ctx.needs_input_grad):
            raise RuntimeError(f"function {ctx.user.__name__}Backward returned an incorrect number of gradients "
                               f"(expected {len(ctx.needs_input_grad)}, got {len(grads)})")
        return tuple(g._data if isinstance(g, Tensor) else g for g in grads)


class _Output(autograd.Function):
    """Output ``index`` of a multi-output user Function, hung on its node's 0-d placeholder:
    forward returns the output's values; backward files grad_out with the Function's node and
    returns 0 for the placeholder (see ``_UserNode``)."""
    _output_of = True

    @staticmethod
    def forward(ctx, placeholder, values, index):
        ctx.output_nr = index
        return values

    @staticmethod
    def backward(ctx, grad_out):
        ctx.owner.__dict__.setdefault("grads", {})[ctx.output_nr] = grad_out
        return np.zeros((), np.float64)


def _user_apply(cls, *args, **kwargs):
    """``MyFn.apply(*args)`` for a user-defined Function (torch.autograd.Function.apply): runs its
    tensor-level forward inside one graph node whose backward calls its tensor-level backward.
    Returns what forward returned: a Tensor, or a tuple whose floating-point Tensors (unless marked
    non-differentiable) are outputs of the node. Raises TypeError for keyword arguments."""
    if kwargs:
        raise TypeError(f"{cls.__name__}.apply() takes positional arguments only, as torch")
    box = []
    node = _UserNode.apply(*args, user=cls, inputs=args, box=box)
    out, ctx = box[0], node._ctx
    if ctx is None:
        return out
    if isinstance(out, Tensor):
        if ctx.non_differentiable[0]:
            node._ctx, node.requires_grad = None, False
        return node
    outs = []
    for i, (o, nondiff) in enumerate(zip(out, ctx.non_differentiable)):
        if isinstance(o, Tensor) and o.dtype.kind == "f" and not nondiff:
            o = _Output.apply(node, o._data, index=i)
            o._ctx.owner, o._ctx.fn = ctx, nodes.renamed(_Output, ctx.fn._torch_name)
        outs.append(o)
    return type(out)(outs) if isinstance(out, tuple) else outs


def _init_subclass(cls, **kwargs):
    """Give a ``Function`` subclass defined outside the ``ember`` package PyTorch's tensor-level
    ``apply``: users' ``forward(ctx, *tensors)``/``backward(ctx, *grads)`` see Tensors, while
    ember's own ops (``ember.ops``, ``ember.kernels``, ...) keep forward/backward on ndarrays."""
    if not cls.__module__.startswith("ember.") and "apply" not in cls.__dict__:
        cls.apply = classmethod(_user_apply)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=None,
         is_grads_batched=False, materialize_grads=False):
    """d(outputs)/d(inputs), returned rather than accumulated (torch.autograd.grad).

    Args:
        outputs: a Tensor or sequence of Tensors; inputs: a Tensor or sequence of Tensors (leaves,
            or non-leaves of the graph: their gradient is caught as it reaches their node).
        grad_outputs: upstream gradients (default 1 for scalar outputs).
        retain_graph: keep the graph for another backward (default: False, as torch).
        allow_unused: None for an input the outputs do not depend on (else RuntimeError, PyTorch's
            message); materialize_grads: zeros instead of None there (implies allow_unused).
    Returns: a tuple of Tensors, one per input. Leaves' ``.grad`` are left untouched.
    Raises: NotImplementedError for create_graph=True (ember's backward functions run on NumPy
        arrays, so a gradient cannot itself be differentiated: no double backward) and for
        is_grads_batched=True.
    """
    if create_graph:
        raise NotImplementedError("ember.autograd.grad: create_graph=True (higher-order gradients, double backward) is "
                                  "not supported: ember's backward functions compute on NumPy arrays and record no graph")
    if is_grads_batched:
        raise NotImplementedError("ember.autograd.grad: is_grads_batched=True is not supported; loop over the grad_outputs")
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    grad_outputs = [None] * len(outputs) if grad_outputs is None else \
        [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs)
    leaves = {id(t): t for o in outputs for n in autograd._topological_order(o)
              for t in n._ctx.parents if isinstance(t, Tensor) and t._ctx is None}
    leaves.update({id(t): t for t in [*inputs, *outputs] if t._ctx is None})
    kept = {k: t.grad for k, t in leaves.items()}
    caught, handles = {}, []
    for i, t in enumerate(inputs):      # a non-leaf input: catch the gradient arriving at its node
        if t._ctx is not None:
            handles.append(nodes._add_hook(t._ctx, "pre", lambda g, i=i: caught.__setitem__(
                i, g[0] if i not in caught else caught[i] + g[0])))
    try:
        for t in leaves.values():
            t.grad = None
        for k, (o, g) in enumerate(zip(outputs, grad_outputs)):   # one pass per output; the graph kept till the last
            autograd.backward(o, g, retain_graph=bool(retain_graph) or k < len(outputs) - 1)
        result = tuple(caught.get(i) if t._ctx is not None else t.grad for i, t in enumerate(inputs))
    finally:
        for k, t in leaves.items():
            t.grad = kept[k]
        for h in handles:
            h.remove()
    if materialize_grads:
        return tuple(Tensor(np.zeros_like(t._data)) if g is None else g for g, t in zip(result, inputs))
    unused = [i for i, g in enumerate(result) if g is None]
    if unused and not allow_unused:
        raise RuntimeError(f"The differentiated Tensor at index {unused[0]} appears to not have been used in the "
                           f"graph. Set allow_unused=True if this is the desired behavior.")
    return result


# ---- attach ---------------------------------------------------------------------------------
_TENSOR_METHODS = dict(
    add_=add_, sub_=sub_, mul_=mul_, div_=div_, pow_=pow_, clamp_=clamp_, zero_=zero_, fill_=fill_,
    copy_=copy_, normal_=normal_, uniform_=uniform_,
    __iadd__=add_, __isub__=sub_, __imul__=mul_, __itruediv__=div_,
    item=item, tolist=lambda self: self._data.tolist(), __bool__=__bool__, __index__=__index__,
    __len__=__len__, __iter__=__iter__, __format__=__format__, __repr__=__repr__, __getstate__=__getstate__,
    __float__=lambda self: float(self.item()), __int__=lambda self: int(self.item()),
    to=_to, type=_type, cpu=lambda self, memory_format=None: self, cuda=_no_accelerator,
    float=lambda self, memory_format=None: _convert(self, _t.float32),
    double=lambda self, memory_format=None: _convert(self, _t.float64),
    half=lambda self, memory_format=None: _convert(self, np.float16),
    long=lambda self, memory_format=None: _convert(self, _t.int64),
    int=lambda self, memory_format=None: _convert(self, np.int32),
    short=lambda self, memory_format=None: _convert(self, np.int16),
    char=lambda self, memory_format=None: _convert(self, np.int8),
    byte=lambda self, memory_format=None: _convert(self, np.uint8),
    bool=lambda self, memory_format=None: _convert(self, _t.bool_),
    is_floating_point=is_floating_point, requires_grad_=requires_grad_,
    size=lambda self, dim=None: self.shape if dim is None else self.shape[dim],
    dim=lambda self: self.ndim, numel=lambda self: self._data.size,
    sqrt=lambda self: nodes.named(self ** 0.5, "SqrtBackward0"), min=_min, flatten=flatten, transpose=transpose,
    t=t, view=view,
    unsqueeze=unsqueeze, squeeze=squeeze, softmax=softmax, log_softmax=log_softmax,
    matmul=lambda self, other: self @ other, __abs__=lambda self: self.abs(),
    register_hook=nodes.register_hook, retain_grad=nodes.retain_grad, _is_view=lambda self: self._viewed is not None,
    is_contiguous=lambda self, memory_format=None: self._data.flags.c_contiguous, stride=stride,
)
for _name in ("abs", "sqrt", "exp", "log", "relu", "sigmoid", "tanh"):
    _TENSOR_METHODS[_name + "_"] = (lambda n: lambda self: self._inplace(lambda s: getattr(s, n)()))(_name)
_TENSOR_METHODS["neg_"] = lambda self: self._inplace(Tensor.__neg__)
_TENSOR_METHODS["masked_fill_"] = lambda self, mask, value: self._inplace(lambda s: s.masked_fill(mask, value))
_TENSOR_PROPERTIES = dict(
    device=property(lambda self: CPU, doc="Always ember.device('cpu')."),
    is_cuda=property(lambda self: False), is_cpu=property(lambda self: True),
    T=property(lambda self: self.transpose(-1, -2) if self.ndim >= 2 else self),
    grad_fn=property(nodes.grad_fn, doc=nodes.grad_fn.__doc__),
    _base=property(lambda self: self._viewed and self._viewed[0], doc="The tensor this view views (None if no view)."),
    retains_grad=property(nodes.retains_grad, doc=nodes.retains_grad.__doc__),
)


def attach(ember) -> None:
    """Install the names above on ``Tensor``, ``ember`` and ``ember.autograd`` (idempotent)."""
    for name, fn in {**_TENSOR_METHODS, **_TENSOR_PROPERTIES}.items():
        setattr(Tensor, name, fn)
    for name, d in DTYPES.items():
        setattr(ember, name, d)
    ember.tensor = _tensor_factory(_t.tensor)
    for fn in ("zeros", "ones", "rand", "randn", "arange"):
        setattr(ember, fn, _with_device(getattr(_t, fn)))
    for name in ("device", "cuda", "accelerator", "get_default_dtype", "set_default_dtype", "result_type",
                 "is_floating_point"):
        setattr(ember, name, globals()[name])
    ember.set_grad_enabled, ember.inference_mode = autograd.set_grad_enabled, autograd.inference_mode
    autograd.Function.__init_subclass__ = classmethod(_init_subclass)
    autograd.FunctionCtx, autograd.grad = FunctionCtx, grad
    from .gradcheck import GradcheckError, gradcheck
    autograd.gradcheck, autograd.GradcheckError = gradcheck, GradcheckError
