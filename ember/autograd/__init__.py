"""``ember.autograd`` (mirrors ``torch.autograd``): the ``Function`` recipe and the backward engine.

Every differentiable op is a ``Function`` subclass with two static methods on raw ndarrays:

    forward(ctx, *arrays, **options) -> ndarray          computes y = f(x1, ..., xk)
    backward(ctx, grad_out) -> tuple of ndarray | None   computes the VJPs  grad_out · ∂y/∂xi

``Function.apply`` wraps the result in a ``Tensor`` and, when a gradient is needed, records a
graph node (the ``Context``) that links the output to its parents. ``backward`` (the engine,
deck 000 "reverse-mode autodiff", deck 002 "why backprop goes output -> input") sorts the graph
topologically with an explicit stack (no recursion: a 10,000-op chain works), runs each node's
VJP once in reverse order, and *adds* the gradients of a tensor used more than once (the
multivariate chain rule: a fan-out in the forward pass is a sum in the backward pass). Before a
node runs, the versions of the tensors whose arrays it saved are compared with those recorded at
forward time (``Context.versions``), so an in-place write in between raises instead of giving a
silently wrong gradient.

The package: this module (``Function``, ``Context``, the engine, ``no_grad``/``enable_grad``,
``unbroadcast``) and ``anomaly`` (``detect_anomaly``). The one import circle of ember's core is
declared at the bottom of this file: ``Function.apply`` wraps arrays in ``Tensor``, tensor.py's
operators call ``ember.ops``, and the ops subclass ``Function``.
"""
from __future__ import annotations

import functools
import threading
import weakref

import numpy as np

_state = threading.local()


def is_grad_enabled() -> bool:
    """Return True unless inside ``no_grad()``."""
    return getattr(_state, "grad_enabled", True)


def _decorate(make, fn):
    """``fn`` run inside the context manager ``make()``: torch's no_grad/detect_anomaly as decorators."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with make():
            return fn(*args, **kwargs)
    return wrapper


class _GradMode:
    enabled = True

    def __enter__(self):
        self.prev = is_grad_enabled()
        _state.grad_enabled = self.enabled

    def __exit__(self, *exc):
        _state.grad_enabled = self.prev
        return False

    def __call__(self, fn):  # also usable as a decorator, as torch.no_grad is
        return _decorate(type(self), fn)


class no_grad(_GradMode):
    """Context manager (or decorator) that records no graph: ops inside return tensors with
    ``requires_grad=False`` and save nothing for backward (evaluation, optimizer steps)."""
    enabled = False


class enable_grad(_GradMode):
    """Context manager (or decorator) that re-enables graph recording inside ``no_grad``
    (``enabled`` is _GradMode's True)."""


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(mode)``: records a graph iff ``mode`` from the call on, as
    torch.set_grad_enabled: a plain call (``torch.set_grad_enabled(False)`` at the top of a
    script) sets the mode at once; as a context manager the mode from before the call comes
    back at the exit; as a decorator the function runs with the mode (and the call itself
    leaves the mode as it was)."""
    def __init__(self, mode: bool): self.prev, self.enabled = is_grad_enabled(), bool(mode); _state.grad_enabled = self.enabled

    def __enter__(self): pass   # the mode is already set, and self.prev is what __exit__ restores

    def __call__(self, fn): _state.grad_enabled = self.prev; return _decorate(lambda: set_grad_enabled(self.enabled), fn)


class inference_mode(_GradMode):
    """``inference_mode(mode=True)``: ``no_grad`` (torch.inference_mode; ember has no separate
    inference tensors); ``mode=False`` changes nothing. A context manager or decorator."""
    def __init__(self, mode: bool = True): self.enabled = not mode

    def __call__(self, fn): return _decorate(lambda: inference_mode(not self.enabled), fn)


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: the adjoint of NumPy broadcasting is summation.

    Broadcasting copies x along new leading axes and along axes where x has size 1, so each
    copy's gradient flows back into the same element: sum the extra leading axes, then every
    axis where the target has size 1 (keeping it). ``(N, C) -> (C,)``, ``(N, C) -> (N, 1)``,
    ``(A, B, C) -> ()`` are all covered.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class Context:
    """One node of the graph: the op, its parent tensors and what forward saved for backward.

    Attributes:
        fn: the ``Function`` subclass that produced the output.
        parents: the input Tensors (``None`` for non-tensor inputs).
        needs_input_grad: per input, whether backward must produce its gradient.
        saved_tensors: the arrays given to ``save_for_backward`` (freed after backward).
    """
    __slots__ = ("fn", "parents", "needs_input_grad", "saved_tensors", "versions", "__dict__")

    def __init__(self, fn, parents, needs_input_grad):
        self.fn, self.parents, self.needs_input_grad = fn, parents, needs_input_grad
        self.saved_tensors, self.versions = (), ()

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays


class Function:
    """Base class of every op: subclass it and write ``forward`` and ``backward`` side by side.

    Inputs that are Tensors arrive in ``forward`` as ndarrays; anything else (ints, tuples,
    ndarrays of class labels) is passed through unchanged. ``backward`` returns one gradient
    per positional input (``None`` where no gradient is needed), already unbroadcast to the
    input's shape.
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_out):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        arrays = [a._data if isinstance(a, Tensor) else a for a in args]
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        record = any(needs) and is_grad_enabled()
        ctx = Context(cls, None, needs)
        out = Tensor(cls.forward(ctx, *arrays, **kwargs))
        if record:
            ctx.parents = tuple(_graph_parent(a, ctx) if isinstance(a, Tensor) else a for a in args)
            out.requires_grad = True
            out._ctx = ctx
            if ctx.saved_tensors:
                ctx.versions = _saved_versions(ctx.saved_tensors, (*args, out))
        if _anomaly_hook is not None:
            _anomaly_hook.check_forward(cls, args, out)
        return out


def _saved_versions(saved, tensors):
    """``(version box, version now, what)`` for each Tensor whose own array backward will read:
    the engine compares them before running the node (PyTorch's saved-variable check)."""
    return tuple((t._vc, t._vc[0], (t.dtype, t.shape, t._ctx and t._ctx.fn.__name__))
                 for t in tensors if isinstance(t, Tensor) and any(a is t._data for a in saved))


def _graph_parent(t, ctx):
    """What graph node ``ctx`` keeps of its input Tensor ``t`` (one entry of ``ctx.parents``).

    What: a leaf is kept itself (backward accumulates into its ``.grad``). A non-leaf is
    replaced by a *stand-in*: a Tensor of the same class, shape, dtype and ``_ctx`` whose
    ``data`` is a zero-stride view of 16 zero bytes (``_zeros_view``), so it holds no memory.
    Why: the engine only needs a parent's ``_ctx`` to go on backwards, and its shape for error
    messages; keeping the parent itself would keep its array alive until backward. With the
    stand-in an op's output array is freed as soon as the user drops it, unless some backward
    saved it (as in PyTorch, whose graph holds functions rather than tensors). There is one
    stand-in per producing node (``_ctx.__dict__["stand_in"]``, a weak reference), so a tensor
    used twice still sums its gradients under one ``id`` in the engine.
    ``ctx.saved_inputs``: when forward saved the input's own array (``save_for_backward(x)``),
    the real Tensor is also kept on the node, so that whoever walks the graph (a debugger, a
    graph picture) still finds the Tensor whose values backward reads. The engine never reads
    it, and it costs no memory: the saved array is alive anyway.
    Measured saving (commit 0230628): the peak memory of a LeNet-5 training step at batch 256
    fell from 25 MB to 16 MB, at batch 64 from 6.1 to 3.9 MiB (both conv outputs, the ReLUs'
    inputs, had been kept until backward; benchmarks/RESULTS.md).
    """
    if t._viewed is not None and t._viewed[2] is not t._viewed[0]._ctx:   # a view whose base was written in place since
        t._rebase()
    if t._ctx is None:
        return t
    if any(a is t._data for a in ctx.saved_tensors):
        ctx.__dict__.setdefault("saved_inputs", []).append(t)
    ref = t._ctx.__dict__.get("stand_in")
    s = ref() if ref is not None else None
    if s is None:
        s = type(t).__new__(type(t))
        s._data = _zeros_view(t._data)
        s.grad, s.requires_grad, s._ctx, s._vc, s._viewed = None, True, t._ctx, t._vc, None
        t._ctx.__dict__["stand_in"] = weakref.ref(s)
    return s


_ZERO = bytes(16)   # one zero of any dtype up to complex128: what every stand-in's view reads


def _zeros_view(a):
    """A read-only all-zero array shaped like ``a`` that takes no memory (all strides 0)."""
    return np.ndarray(a.shape, a.dtype, buffer=_ZERO, strides=(0,) * a.ndim)


# Set by ember.autograd.anomaly.detect_anomaly; None keeps the hot path to one comparison.
_anomaly_hook = None


def _topological_order(root):
    """Return the graph's non-leaf tensors, outputs before inputs (iterative DFS post-order)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        t, processed = stack.pop()
        if processed:
            order.append(t)
            continue
        if id(t) in visited or t._ctx is None:
            continue
        visited.add(id(t))
        stack.append((t, True))
        for p in t._ctx.parents:
            if p is not None and getattr(p, "_ctx", None) is not None and id(p) not in visited:
                stack.append((p, False))
    order.reverse()
    return order


# Callables to run once when the current backward pass has finished, every ``.grad`` final
# (torch's ``Variable._execution_engine.queue_callback``): ember.nn.parallel.engine_hook queues
# DDP's gradient allreduce here. Kept in autograd so that autograd imports nothing from nn.
_post_backward_callbacks: list = []


def backward(root, gradient=None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into ``leaf.grad`` for every leaf that requires a gradient.

    Then, as its last step (also for a leaf root), run and clear ``_post_backward_callbacks`` in
    the order queued (one queued by a callback runs too); if the walk raises they are discarded,
    so no half-computed gradient is ever reduced.

    Args:
        root: the Tensor to differentiate (usually a scalar loss).
        gradient: the upstream gradient, same shape as root; defaults to 1 for a scalar.
        retain_graph: keep saved arrays so backward can run through this graph again.
    Raises:
        RuntimeError: root does not require grad, is not a scalar and no gradient was given,
            or the graph was already freed by an earlier backward, or an array a node saved for
            backward was modified in place since (its tensor's version counter moved on:
            PyTorch's "modified by an inplace operation" error, naming the tensor and the op).
    """
    try:
        _walk(root, gradient, retain_graph)
    except BaseException:
        _post_backward_callbacks.clear()
        raise
    while _post_backward_callbacks:
        _post_backward_callbacks.pop(0)()


def _walk(root, gradient, retain_graph) -> None:
    """The engine proper (``backward`` without the callbacks): seed, sort, run each VJP once."""
    if not root.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    if gradient is None:
        if root._data.size != 1:
            raise RuntimeError(f"grad can be implicitly created only for scalar outputs, "
                               f"got a tensor of shape {root.shape}; pass backward(gradient=...)")
        grad = np.ones_like(root._data)
    else:
        grad = gradient._data if isinstance(gradient, Tensor) else np.asarray(gradient, dtype=root.dtype)
        if grad.shape != root.shape:
            raise RuntimeError(f"backward: gradient has shape {grad.shape} but the tensor has shape {root.shape}")
    if root._ctx is None:  # a leaf: d(root)/d(root) = gradient
        _accumulate(root, grad)
        return
    grads = {id(root): grad}
    for t in _topological_order(root):
        ctx = t._ctx
        g = grads.pop(id(t), None)
        if g is None:
            continue
        if ctx.saved_tensors is None:
            raise RuntimeError("Trying to backward through the graph a second time; "
                               "pass retain_graph=True to the first backward() call")
        for box, version, (dtype, shape, made_by) in ctx.versions:
            if box[0] != version:
                raise RuntimeError(f"one of the variables needed for gradient computation has been modified by an inplace "
                                   f"operation: [{dtype} {list(shape)}], which is {f'output 0 of {made_by}Backward' if made_by else 'a leaf'}"
                                   f", is at version {box[0]}; expected version {version} instead (needed by {ctx.fn.__name__}Backward)")
        in_grads = ctx.fn.backward(ctx, g)
        in_grads = in_grads if isinstance(in_grads, tuple) else (in_grads,)
        if _anomaly_hook is not None:
            _anomaly_hook.check_backward(ctx, in_grads)
        for p, need, pg in zip(ctx.parents, ctx.needs_input_grad, in_grads):
            if not need or pg is None:
                continue
            if p._ctx is None:
                _accumulate(p, pg)
            elif id(p) in grads:
                grads[id(p)] = grads[id(p)] + pg
            else:
                grads[id(p)] = pg
        if not retain_graph:  # free the graph: saved arrays and the links to the inputs
            ctx.saved_tensors, ctx.parents, ctx.versions = None, (), ()
            ctx.__dict__.clear()


def _accumulate(leaf, g: np.ndarray) -> None:
    if g.dtype != leaf._data.dtype:
        g = g.astype(leaf._data.dtype)
    if leaf.grad is None:
        # copy: g may alias an array another node still reads, and .grad is mutated in place
        leaf.grad = Tensor(np.array(g, copy=True))
    else:
        leaf.grad._data += g


# The one import circle of the core, declared here once: ember.tensor imports this module (and,
# at its bottom, ember.ops, whose ops subclass Function); Function.apply and backward need Tensor.
from ..tensor import Tensor  # noqa: E402
# Anomaly mode (ember/autograd/anomaly.py) installs ``_anomaly_hook``; torch.autograd's names.
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly  # noqa: E402
