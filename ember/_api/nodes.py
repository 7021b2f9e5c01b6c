"""``grad_fn`` as PyTorch's graph nodes (``torch.autograd.graph.Node``), and hooks on them.

ember's graph is made of ``Context`` objects (``ember/autograd``), one per op call, whose
``fn`` is the op class (``ember.ops.elementwise.Mul``) and whose ``parents`` are the inputs (leaves
themselves, non-leaves as data-less stand-ins). ``Tensor.grad_fn`` wraps that Context in a
``Node`` whose class is named as PyTorch's node for the same operation (``MulBackward0``; the
table ``NAMES``), with ``name()``, ``next_functions`` (one ``(node, output_nr)`` per input: an
``AccumulateGrad`` node holding ``.variable`` for a leaf that requires grad, ``(None, 0)`` for an
input that does not), ``metadata``, ``register_hook`` and ``register_prehook``. One Node per graph
node (``y.grad_fn is y.grad_fn``, and two uses of a leaf share its ``AccumulateGrad``).

Hooks cost the engine nothing until used: a hooked node gets a subclass of its op whose
``backward`` calls the hooks around the op's own (only that node's ``ctx.fn`` changes).
``Tensor.register_hook`` is a pre-hook on the tensor's node (or on the leaf's gradient
accumulation), ``Tensor.retain_grad`` one such hook that stores ``.grad``.

Differences from PyTorch (listed in docs/pytorch-compat.md): after ``backward()`` without
``retain_graph`` a node's ``next_functions`` is empty (ember frees the links to the inputs, see
``autograd.backward``); nodes whose PyTorch twin takes other inputs (``F.linear``'s ``AddmmBackward0``
sees the transposed weight through a ``TBackward0``, ember's ``Linear`` node sees ``(x, W, b)``) list
ember's inputs in ember's order. Source: PyTorch 2.13 (``torch.autograd.graph.Node``, the node names
printed by ``tensor.grad_fn``).
"""
from __future__ import annotations

import weakref

import numpy as np

from .. import autograd
from ..tensor import Tensor

# ember op (class name) -> PyTorch's node name for the same call; a function of the Context where
# PyTorch's node depends on the arguments. Ops not listed are named "<Op>Backward0".
NAMES = {
    "Add": "AddBackward0", "Sub": "SubBackward0", "Mul": "MulBackward0", "Div": "DivBackward0",
    "Neg": "NegBackward0", "Exp": "ExpBackward0", "Log": "LogBackward0", "Sin": "SinBackward0",
    "Cos": "CosBackward0", "Abs": "AbsBackward0", "PowScalar": "PowBackward0", "Pow": "PowBackward1",
    "Clamp": "ClampBackward1", "Where": "WhereBackward0", "Cast": "ToCopyBackward0", "Clone": "CloneBackward0",
    "Contiguous": "CloneBackward0",
    "ReLU": "ReluBackward0", "Conv2dReLU": "ReluBackward0", "LeakyReLU": "LeakyReluBackward0",
    "Sigmoid": "SigmoidBackward0", "Tanh": "TanhBackward0", "GELU": "GeluBackward0", "SiLU": "SiluBackward0",
    "Softplus": "SoftplusBackward0", "Softmax": "SoftmaxBackward0", "LogSoftmax": "LogSoftmaxBackward0",
    "Sum": lambda ctx: "SumBackward0" if ctx.dim is None else "SumBackward1",
    "Mean": lambda ctx: "MeanBackward0" if ctx.dim is None else "MeanBackward1",
    "Max": "MaxBackward1", "MaxDim": "MaxBackward0", "Cumsum": "CumsumBackward0",
    "Reshape": "ViewBackward0", "Permute": "PermuteBackward0", "SetItem": "CopySlices", "ViewScatter": "CopySlices",
    "ViewOf": "AsStridedBackward0",
    "GetItem": lambda ctx: _index_node(ctx.index), "Pad": "ConstantPadNdBackward0", "Cat": "CatBackward0",
    "MatMul": lambda ctx: _matmul_node(ctx), "Linear": "AddmmBackward0", "Conv2d": "ConvolutionBackward0",
    "MaxPool2d": "MaxPool2DWithIndicesBackward0", "AvgPool2d": "AvgPool2DBackward0",
    "AdaptiveAvgPool2d": "AdaptiveAvgPool2DBackward0", "BatchNorm": "NativeBatchNormBackward0",
    "LayerNorm": "NativeLayerNormBackward0", "Dropout": "MulBackward0",
    "CrossEntropy": "NllLossBackward0", "NLLLoss": "NllLossBackward0", "MSELoss": "MseLossBackward0",
    "SmoothL1Loss": "SmoothL1LossBackward0", "HuberLoss": "HuberLossBackward0",
    "BCELoss": "BinaryCrossEntropyBackward0", "BCEWithLogitsLoss": "BinaryCrossEntropyWithLogitsBackward0",
    "MultiMarginLoss": "MultiMarginLossBackward0", "Expand": "ExpandBackward0",
    "SequentialChain": lambda ctx: _chain_name(ctx),
}


def _chain_name(ctx):
    """A ``SequentialChain`` node (an nn.Sequential run as one node, ember/kernels/fusion.py) is
    named after its last op, as PyTorch's node for the Sequential's output is (LeNet-5:
    AddmmBackward0)."""
    stages = [st for st in ctx.__dict__.get("stages", ()) if st[0] is not None and st[1] is not None]
    if not stages:
        return "SequentialChainBackward0"
    return _node_name(*stages[-1][:2])


def _node_name(op, ctx) -> str:
    """PyTorch's name for the node of op class ``op`` with Context ``ctx`` (``renamed``'s, else
    ``NAMES``, else "<Op>Backward0")."""
    name = getattr(op, "_torch_name", None) or NAMES.get(op.__name__, f"{op.__name__}Backward0")
    return name if isinstance(name, str) else name(ctx)


def _index_node(index) -> str:
    """PyTorch's node for ``x[index]``: SelectBackward0 (one int), SliceBackward0 (one slice),
    UnsqueezeBackward0 (None), IndexBackward0 (an array or mask); AsStridedBackward0 otherwise."""
    parts = index if isinstance(index, tuple) else (index,)
    if any(isinstance(p, (np.ndarray, list)) for p in parts):
        return "IndexBackward0"
    kinds = {type(p) for p in parts if p is not Ellipsis and p != slice(None)}
    return {int: "SelectBackward0", slice: "SliceBackward0", type(None): "UnsqueezeBackward0"}.get(
        kinds.pop() if len(kinds) == 1 else None, "AliasBackward0" if not kinds else "AsStridedBackward0")


def _matmul_node(ctx) -> str:
    """PyTorch's node for ``a @ b``: MmBackward0 (2-D @ 2-D), DotBackward0 (1-D @ 1-D), MvBackward0
    (2-D @ 1-D); UnsafeViewBackward0 (the reshape after a batched product) otherwise."""
    ranks = tuple(p.ndim for p in ctx.parents or () if isinstance(p, Tensor))
    return {(2, 2): "MmBackward0", (1, 1): "DotBackward0", (2, 1): "MvBackward0"}.get(ranks, "UnsafeViewBackward0")


_CLASSES: dict = {}


def _node_class(name: str) -> type:
    """The Node subclass called ``name`` (one per name, so ``type(y.grad_fn).__name__`` reads as torch's)."""
    cls = _CLASSES.get(name)
    if cls is None:
        cls = _CLASSES[name] = type(name, (Node,), {"__slots__": (), "__module__": __name__})
    return cls


class Node:
    """One node of the backward graph, as ``torch.autograd.graph.Node``.

    ``name()`` -> str (PyTorch's name, e.g. 'MulBackward0'); ``next_functions`` -> tuple of
    ``(Node | None, int)``, one per floating-point input of the op (as torch: integer and bool
    inputs such as class labels or a ``where`` condition have no entry); ``metadata`` -> dict;
    ``register_hook(fn)``: ``fn(grad_inputs, grad_outputs)`` runs after the node's backward and may return replacement
    grad_inputs; ``register_prehook(fn)``: ``fn(grad_outputs)`` runs before it and may return
    replacement grad_outputs. Both return a handle with ``remove()``. Raises RuntimeError for a hook
    registered on a node whose graph was already freed by ``backward()``.
    """
    __slots__ = ("_ctx", "__weakref__")

    def __init__(self, ctx): self._ctx = ctx

    def name(self) -> str:
        n = type(self).__name__
        return "torch::autograd::CopySlices" if n == "CopySlices" else n

    def __repr__(self): return f"<{type(self).__name__} object at {id(self):#x}>"

    def __call__(self, *grads):
        """Run the node's backward on Tensors (``grad_fn(grad_output)``), as torch's Node.__call__."""
        out = self._ctx.fn.backward(self._ctx, *[g._data if isinstance(g, Tensor) else g for g in grads])
        out = out if isinstance(out, tuple) else (out,)
        return tuple(None if g is None else Tensor(g) for g in out)

    @property
    def next_functions(self) -> tuple:
        ctx = self._ctx
        return tuple(edge(p) for p in (ctx.parents or ()) if isinstance(p, (Tensor, np.ndarray)) and p.dtype.kind in "fc")

    @property
    def metadata(self) -> dict: return self._ctx.__dict__.setdefault("metadata", {})

    def register_hook(self, fn): return _add_hook(self._ctx, "post", fn)

    def register_prehook(self, fn): return _add_hook(self._ctx, "pre", fn)


class AccumulateGrad(Node):
    """The node that adds a leaf's gradient into its ``.grad`` (torch's AccumulateGrad): ``.variable``
    is the leaf, ``next_functions`` is empty, ``name()`` is PyTorch's 'torch::autograd::AccumulateGrad'."""
    __slots__ = ("variable",)

    def __init__(self, variable): self._ctx, self.variable = None, variable
    def name(self) -> str: return "torch::autograd::AccumulateGrad"
    next_functions = property(lambda self: ())
    metadata = property(lambda self: {})

    def register_hook(self, fn):
        raise NotImplementedError("ember: hooks on AccumulateGrad nodes are not supported; use "
                                  "Tensor.register_hook on the leaf")

    register_prehook = register_hook


_ACCUMULATORS: "weakref.WeakValueDictionary[int, AccumulateGrad]" = weakref.WeakValueDictionary()


def node_of(ctx) -> Node:
    """The Node of Context ``ctx`` (the same object while anyone holds it)."""
    owner = ctx.__dict__.get("owner")                   # one output of a multi-output user Function
    if owner is not None:
        return node_of(owner)
    ref = ctx.__dict__.get("node")
    node = ref() if ref is not None else None
    if node is None:
        node = _node_class(_node_name(ctx.fn, ctx))(ctx)
        ctx.__dict__["node"] = weakref.ref(node)
    return node


_RENAMED: dict = {}


def renamed(op: type, name: str) -> type:
    """A subclass of ``op`` (same ``__name__`` and behaviour) whose nodes are called ``name``: set as
    a Context's ``fn``, the name outlives ``backward()`` (which clears the Context's attributes)."""
    cls = _RENAMED.get((op, name))
    if cls is None:
        cls = _RENAMED[op, name] = type(op.__name__, (op,), {"_torch_name": name, "__module__": op.__module__,
                                                              "__doc__": op.__doc__})
    return cls


def named(t: Tensor, name: str) -> Tensor:
    """``t`` whose node will be called ``name`` (PyTorch's name for the method that made it, where
    ember composes it of another op: ``transpose`` is a Permute, torch's TransposeBackward0)."""
    if t._ctx is not None:
        t._ctx.fn = renamed(t._ctx.fn, name)
    return t


def edge(p) -> tuple:
    """``(node, output_nr)`` for graph input ``p``: its producer's Node (for an output of a
    multi-output Function, the Function's node and the output's index), the leaf's
    AccumulateGrad, or ``(None, 0)`` for an input that needs no gradient."""
    if not isinstance(p, Tensor) or not p.requires_grad:
        return None, 0
    if p._ctx is None:
        acc = _ACCUMULATORS.get(id(p))
        if acc is None:
            acc = _ACCUMULATORS[id(p)] = AccumulateGrad(p)
        return acc, 0
    return node_of(p._ctx), getattr(p._ctx, "output_nr", 0)


def grad_fn(self: Tensor):
    """``tensor.grad_fn``: the Node that produced this tensor (None for a leaf), as torch."""
    return None if self._ctx is None else node_of(self._ctx)


# ---- hooks ---------------------------------------------------------------------------------------
class _Handle:
    """What ``register_hook`` returns: ``remove()`` unregisters the hook (torch's RemovableHandle)."""

    def __init__(self, hooks, fn): self.hooks, self.fn = hooks, fn

    def remove(self):
        if self.fn in self.hooks:
            self.hooks.remove(self.fn)


def _add_hook(ctx, kind, fn):
    """Register ``fn`` on ``ctx``: the first hook gives the node a subclass of its op whose backward
    runs the hooks (so an unhooked graph pays nothing)."""
    if ctx.saved_tensors is None:
        raise RuntimeError("ember: cannot register a hook on a node whose graph was freed by backward()")
    hooks = ctx.__dict__.setdefault("hooks", {"pre": [], "post": [], "retain": []})
    if not getattr(ctx.fn, "_hooked", False):
        ctx.fn = _hooked_class(ctx.fn)
    hooks[kind].append(fn)
    return _Handle(hooks[kind], fn)


def _as_tensors(arrays): return tuple(None if a is None else Tensor(a) for a in arrays)
def _as_arrays(tensors): return tuple(None if t is None else t._data if isinstance(t, Tensor) else t for t in tensors)


def _hooked_class(op):
    """A subclass of op (same name) whose backward runs ``ctx.hooks``: pre-hooks on (grad_out,),
    then ``retain_grad``'s, the op's backward, then post-hooks on (grad_inputs, grad_outputs)."""
    def backward(ctx, grad_out):
        hooks = ctx.__dict__.get("hooks") or {"pre": [], "post": [], "retain": []}
        for fn in hooks["pre"] + hooks["retain"]:       # retain_grad's last, as torch: it keeps the hooked gradient
            new = fn(_as_tensors((grad_out,)))
            if new is not None:
                grad_out = _as_arrays(new if isinstance(new, (tuple, list)) else (new,))[0]
        grads = op.backward(ctx, grad_out)
        grads = grads if isinstance(grads, tuple) else (grads,)
        for fn in hooks["post"]:
            new = fn(_as_tensors(grads), _as_tensors((grad_out,)))
            if new is not None:
                grads = _as_arrays(new if isinstance(new, (tuple, list)) else (new,))
        return grads
    return type(op.__name__, (op,), {"backward": staticmethod(backward), "_hooked": True,
                                     "__module__": op.__module__, "__doc__": op.__doc__})


_LEAF_HOOKS: dict = {}        # id(leaf) -> (weak ref to the leaf, [hooks]); the engine's _accumulate is wrapped once any exist


def _accumulate_with_hooks(leaf, g, _plain=autograd._accumulate):
    entry = _LEAF_HOOKS.get(id(leaf))
    if entry is not None and entry[0]() is leaf:
        for fn in entry[1]:
            new = fn(Tensor(g))
            if new is not None:
                g = new._data if isinstance(new, Tensor) else np.asarray(new)
    _plain(leaf, g)


def register_hook(self: Tensor, hook):
    """``t.register_hook(hook)``: ``hook(grad)`` runs when t's gradient has been computed, before it
    is used (a leaf: before it is added into ``.grad``), and may return a replacement gradient
    (torch.Tensor.register_hook). Returns a handle with ``remove()``.
    Raises: RuntimeError for a tensor that does not require grad (PyTorch's message)."""
    if not self.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    if self._ctx is not None:     # this tensor's own node (for an output of a multi-output Function, its _Output)
        return _add_hook(self._ctx, "pre", lambda grads: (lambda new: None if new is None else (new,))(hook(grads[0])))
    entry = _LEAF_HOOKS.get(id(self))
    if entry is None or entry[0]() is not self:
        entry = _LEAF_HOOKS[id(self)] = (weakref.ref(self, lambda _, k=id(self): _LEAF_HOOKS.pop(k, None)), [])
    autograd._accumulate = _accumulate_with_hooks
    entry[1].append(hook)
    return _Handle(entry[1], hook)


def retain_grad(self: Tensor) -> None:
    """Keep the gradient of a non-leaf tensor in its ``.grad`` after backward (torch.Tensor.retain_grad);
    a no-op for a leaf. Raises RuntimeError for a tensor that does not require grad."""
    if not self.requires_grad:
        raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
    if self._ctx is None or getattr(self._ctx.fn, "_retains", False):
        return
    ref = weakref.ref(self)

    def store(grads):
        t = ref()
        if t is not None:
            t.grad = Tensor(grads[0]._data.copy()) if t.grad is None else Tensor(t.grad._data + grads[0]._data)
    _add_hook(self._ctx, "retain", store)
    self._ctx.fn._retains = True            # the node's own hooked class (see _add_hook)


def retains_grad(self: Tensor) -> bool:
    """True after ``retain_grad()`` on a non-leaf (torch.Tensor.retains_grad)."""
    return self._ctx is not None and getattr(self._ctx.fn, "_retains", False)
