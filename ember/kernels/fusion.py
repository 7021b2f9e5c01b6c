"""Layer fusion: an ``nn.Sequential``'s Conv2d → ReLU (→ MaxPool2d) and Linear → ReLU run as one op,
and a Sequential made only of such groups, Linear and Flatten as one graph node.

``nn.Sequential.forward`` calls ``sequential_forward(layers, x)`` when kernels are on. It calls
the layers one by one, as the reference does, except that three consecutive layers

    nn.Conv2d  →  nn.ReLU  →  nn.MaxPool2d(k)        (stride = k, no padding, no dilation,
                                                      no return_indices, ceil_mode off)

run as ``numba_conv.Conv2dReLUMaxPool2d`` (one op, two compiled passes forward and backward
fewer, the conv output never stored: see its docstring), and a pair Conv2d → ReLU not followed
by such a pool runs as ``gemm_conv.Conv2dReLU`` (the ReLU applied to each output row inside the
conv kernel, its mask applied in the copy the conv's backward makes anyway: one pass over the
activation forward and one backward fewer; ``numba_conv.Conv2dReLU`` for groups > 1). A pair
Linear → ReLU runs as ``matmul.LinearReLU`` (max(·, 0) in place on the GEMM's output; one graph
node instead of two). Each equals the separate ops (tested against them and against PyTorch in
tests/test_fusion.py).

When every layer of the Sequential falls into such a group, or is a Linear or a Flatten (LeNet-5:
two conv → ReLU → pool groups, Flatten, two Linear → ReLU pairs, a Linear), the whole Sequential
runs as ONE graph node, ``SequentialChain``: the groups' ops called one after the other on
arrays, each with its own Context, and their VJPs in reverse order in its backward, the same
numbers bit for bit. Saved: ``Function.apply``, a Tensor per activation and the engine's visit
of each group's node (LeNet-5 training at batch 32, one thread: 0.15-0.25 ms of ~5 ms a step;
RESULTS.md, twenty-first session). A layer with no stage on its input (a pool with ceil_mode
after a Conv2d → ReLU, a dtype the kernels do not take) sends that Sequential back to the groups
one by one, for that input shape and dtype from then on.
Anything else, or any doubt, takes the layers one by one, so errors are raised by the layers
themselves, with their names:

- the exact classes (a subclass may override ``forward``), no ``forward`` replaced on an
  instance (``nn.summary`` and ``viz.feature_maps`` wrap layers that way to see their outputs),
  no forward hook or pre-hook registered on any of the layers (they must run)
  and ``Module.__call__`` not replaced (``ember.onnx.export`` traces layer by layer);
- a 4-D float32/float64 Tensor with the conv's channel count and dtype, big enough for the
  conv and the pool (the checks F.conv2d and F.max_pool2d would make, so they cannot fail);
  for Linear, a float32/float64 Tensor of the weight's dtype with in_features last (F.linear's);
- numba installed and kernels on (``EMBER_KERNELS=reference`` never fuses), and anomaly mode
  off (``detect_anomaly`` names the layer whose op produced a NaN, so it runs them one by one).

Measured (LeNet-5 training step at batch 64, 2 threads, same process, fused and unfused runs
alternating, 2026-12-01 on the shared 2-core machine at load 5–9, so CPU time is the figure to
trust): two runs of 5 pairs, median CPU per step 6.43 vs 8.08 ms and 4.61 vs 5.74 ms fused vs
unfused (-20% both times); wall time 3.9–14.5 vs 11.6–24.8 ms, noise-dominated at that load.
"""
from __future__ import annotations

import math
import weakref

from ..autograd import Context, Function, is_anomaly_enabled, is_grad_enabled
from ..tensor import Tensor
from . import gemm_conv, matmul, mode, numba_conv

enabled = True   # False: never fuse (to measure the fusion against the layers one by one)
pairs = True     # False: fuse only Conv2d → ReLU → MaxPool2d, no Conv2d → ReLU or Linear → ReLU pair (to measure)
chain = True     # False: each fused group is a graph node of its own, no SequentialChain (to measure)

def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


# (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Linear): set by ember.nn when it defines them (ember.kernels
# does not import ember.nn: the layers sit above the kernels); None until then, and nothing is fused.
LAYERS = None


def _weight_bias(m):
    """(m.weight, m.bias) of a Conv2d or Linear, read from its parameter dict: ``m.weight`` goes
    through ``Module.__getattr__`` after a failed normal lookup, ~2 µs each (a fifth of the
    checks' time on LeNet-5)."""
    d = m.__dict__
    p = d["_parameters"]   # (a plain attribute, e.g. bias = None, is in __dict__, where lookup finds it first)
    return d["weight"] if "weight" in d else p.get("weight"), d["bias"] if "bias" in d else p.get("bias")


def _plain(*modules):
    """Whether the modules run as their classes define them: no ``forward`` replaced on an
    instance, no hook, and ``Module.__call__`` itself (``ember.onnx.export`` replaces it)."""
    return all(type(m).__call__.__qualname__ == "Module.__call__" and "forward" not in m.__dict__
               and not m._has_hooks() for m in modules)


def _linear_relu_fusable(linear, relu, x):
    """Whether linear → relu can run as ``matmul.LinearReLU`` on x: the exact classes, plain
    modules, and the input F.linear would accept (a float Tensor of the weight's dtype whose last
    dimension is in_features; a bias of the weight's dtype and length), so the op cannot fail
    where the layers would have raised."""
    return type(relu) is LAYERS[1] and _plain(relu) and _linear_ok(linear, x)


def _linear_ok(linear, x):
    """Whether ``linear`` can run as ``matmul.Linear`` on x where F.linear would not raise: a plain
    module, a float Tensor of the weight's dtype whose last dimension is in_features, a bias of
    the weight's dtype and length."""
    if not _plain(linear):
        return False
    w, b = _weight_bias(linear)
    return (isinstance(x, Tensor) and isinstance(w, Tensor) and x.ndim >= 1 and w.ndim == 2
            and x.dtype == w.dtype and x.dtype in _FLOATS and x.shape[-1] == w.shape[1]
            and (b is None or (isinstance(b, Tensor) and b.dtype == w.dtype and tuple(b.shape) == (w.shape[0],))))


_FLOATS = ("float32", "float64")


def _conv_relu_fusable(conv, relu, x):
    """Whether conv → relu can run as one fused op on input x: the exact layer classes, no
    hooks or replaced forward, zero padding the same on both sides, and an input the compiled
    kernels take whose conv output is not empty (see module doc). Returns the padding or None."""
    if LAYERS is None or (type(conv), type(relu)) != LAYERS[:2]:
        return None
    if not _plain(conv, relu):
        return None
    if getattr(conv, "padding_mode", "zeros") != "zeros":   # the fused kernels pad with zeros only
        return None
    pairs = conv.padding_pairs()
    if any(before != after for before, after in pairs):    # padding='same' of an even kernel: one more after
        return None
    padding = tuple(before for before, _ in pairs)
    w, b = _weight_bias(conv)
    if not (isinstance(x, Tensor) and x.ndim == 4 and x.shape[1] == conv.in_channels and x.size
            and numba_conv.covers(x._data, w._data, None if b is None else b._data)):
        return None
    if min(numba_conv.out_size(x.shape[2 + i], conv.kernel_size[i], conv.stride[i], padding[i],
                               conv.dilation[i]) for i in (0, 1)) < 1:
        return None
    return padding


def _fusable(conv, relu, pool, x):
    """Whether conv → relu → pool can run as Conv2dReLUMaxPool2d on input x (see module doc)."""
    padding = _conv_relu_fusable(conv, relu, x)
    return padding is not None and _pool_fusable(conv, padding, pool, x)


def _pool_fusable(conv, padding, pool, x):
    """Whether ``pool`` after a fusable conv → relu (zero ``padding`` per side) can be fused in:
    a plain MaxPool2d whose window equals its stride, unpadded, with at least one output."""
    if type(pool) is not LAYERS[2] or "forward" in pool.__dict__ or pool._has_hooks():
        return False
    k, s, p = _pair(pool.kernel_size), _pair(pool.stride), _pair(pool.padding)
    if k != s or p != (0, 0) or min(k) < 1:
        return False
    # the fused kernel pools floor-mode windows only: any other option takes the layers one by one
    # (a ceil_mode that adds a partial window, a dilated window, the indices output)
    if _pair(pool.dilation) != (1, 1) or pool.return_indices or pool.ceil_mode:
        return False
    size = [numba_conv.out_size(x.shape[2 + i], conv.kernel_size[i], conv.stride[i], padding[i],
                                conv.dilation[i]) // k[i] for i in (0, 1)]
    return min(size) >= 1


def _group(layers, i, x):
    """The fused op that starts at ``layers[i]`` on input x: (op, layer holding its weight and bias,
    its keyword arguments, layers it covers), or (None, None, None, 1) when layers[i] runs alone."""
    conv = layers[i]                                           # a Conv2d or a Linear, or the layer to run alone
    if type(conv) is LAYERS[3] and pairs and i + 1 < len(layers) and _linear_relu_fusable(conv, layers[i + 1], x):
        return matmul.LinearReLU, conv, {}, 2                  # a Linear → ReLU pair
    padding = None                                             # only a Conv2d starts a fused run
    if type(conv) is LAYERS[0] and i + 1 < len(layers):
        padding = _conv_relu_fusable(conv, layers[i + 1], x)
    if padding is None:
        return None, None, None, 1
    kw = dict(stride=conv.stride, padding=padding, dilation=conv.dilation, groups=conv.groups)
    if i + 2 < len(layers) and _pool_fusable(conv, padding, layers[i + 2], x):
        return numba_conv.Conv2dReLUMaxPool2d, conv, dict(kw, pool=_pair(layers[i + 2].kernel_size)), 3
    if pairs:
        return (gemm_conv.Conv2dReLU if conv.groups == 1 else numba_conv.Conv2dReLU), conv, kw, 2
    return None, None, None, 1


def sequential_forward(layers, x):
    """``for layer in layers: x = layer(x)``, with each fusable Conv2d → ReLU → MaxPool2d,
    Conv2d → ReLU and Linear → ReLU run as one op, and a Sequential made only of such groups,
    Linear and Flatten run as one graph node (``SequentialChain``). layers: the Sequential's
    modules in order; x: its input. Returns the output."""
    layers = list(layers)
    if mode() != "fast" or not numba_conv.AVAILABLE or not enabled or is_anomaly_enabled() or LAYERS is None:
        for layer in layers:
            x = layer(x)
        return x
    if (chain and layers and isinstance(x, Tensor) and all(type(m) in LAYERS for m in layers)
            and (x.shape, x.dtype) not in _UNCHAINED.get(layers[0], ())):
        params = [t for m in layers if type(m) in LAYERS[::3] for t in _weight_bias(m)]
        try:
            return SequentialChain.apply(x, *params, layers=layers)
        except _Unchainable:   # a layer cannot run as a stage on this input: the groups one by one,
            if _plain(*layers):   # and so from now on (not for a hook or a wrapper, which may go again)
                _UNCHAINED.setdefault(layers[0], set()).add((x.shape, x.dtype))
    i = 0
    while i < len(layers):
        op, owner, kw, n = _group(layers, i, x)
        x = layers[i](x) if op is None else op.apply(x, *_weight_bias(owner), **kw)
        i += n
    return x


class _Unchainable(Exception):
    """A layer of a Sequential cannot run as a stage of ``SequentialChain`` on its input."""


# first layer of a Sequential -> the (input shape, dtype) on which its chain failed, every layer
# plain: those run the groups one by one without trying again (a layer the chain has no stage
# for, e.g. a pool with ceil_mode after Conv2d → ReLU, would otherwise cost a wasted forward
# each call). A failure under a hook or a wrapped forward (nn.summary, onnx.export) is not kept.
_UNCHAINED = weakref.WeakKeyDictionary()


class SequentialChain(Function):
    """An ``nn.Sequential`` of fusable groups (see the module doc), Linear layers and Flatten, run
    as ONE graph node: forward runs each group's op (``Conv2dReLUMaxPool2d``, ``LinearReLU``,
    ``matmul.Linear``, ...) on arrays with a Context of its own, backward runs their VJPs in
    reverse order (the chain rule along the chain), returning the gradients of the input and of
    every weight and bias (None where not needed or absent). The same ops in the same order as
    the groups one by one, so the same numbers bit for bit (tests/test_fusion.py); what is saved
    is the per-op Python around them: ``Function.apply``, a Tensor per activation and the
    engine's visit of every node (LeNet-5: 1 node instead of 5, 0.15-0.35 ms of a ~5 ms training
    step at batch 32, one thread: benchmarks/RESULTS.md, twenty-first session).

    Forward (x, *params, layers): x (N, ...) the Sequential's input; params the layers' weights
    and biases in order (a None for a missing bias); layers the modules. The node is named after
    its last op, as PyTorch's output node is (LeNet-5: ``AddmmBackward0``).
    Raises ``_Unchainable`` (caught by ``sequential_forward``, which then runs the groups one by
    one, so errors come from the layers themselves) where a group's checks fail on its input.
    """
    @staticmethod
    def forward(ctx, x, *params, layers):
        record = is_grad_enabled() and any(ctx.needs_input_grad)
        needs, k = ctx.needs_input_grad, 1                    # k: the next layer's weight in params
        stages, h, i, upstream = [], x, 0, needs[0]
        while i < len(layers):
            m = layers[i]
            if type(m) is LAYERS[4]:                           # Flatten: a reshape (no view semantics inside)
                if not (_plain(m) and h.ndim and -h.ndim <= m.start_dim < h.ndim and -h.ndim <= m.end_dim < h.ndim
                        and m.start_dim % h.ndim <= m.end_dim % h.ndim):
                    raise _Unchainable
                start, end = m.start_dim % h.ndim, m.end_dim % h.ndim
                stages.append((None, h.shape, None))             # (no op: the shape to go back to)
                h, i = h.reshape(*h.shape[:start], math.prod(h.shape[start:end + 1]), *h.shape[end + 1:]), i + 1
                continue
            op, owner, kw, n = _group(layers, i, Tensor(h))
            if op is None and type(m) is LAYERS[3] and _linear_ok(m, Tensor(h)):
                op, owner, kw, n = matmul.Linear, m, {}, 1
            if op is None:
                raise _Unchainable
            w, b = params[k - 1], params[k]
            sctx = Context(op, None, (upstream, needs[k], needs[k + 1]))
            h = op.forward(sctx, h, w, b, **kw)
            stages.append((op, sctx if record else None, k))
            upstream, k, i = upstream or needs[k] or needs[k + 1], k + 2, i + n
        ctx.stages = stages
        saved = [a for op, sctx, _ in stages if op is not None and sctx is not None for a in sctx.saved_tensors]
        ids = {id(a) for a in saved}
        # the inputs a stage saved, or saved a view of (x flattened first): the engine checks their
        # versions, so an in-place write to one between forward and backward raises, as it did
        # for the groups (a Flatten's output shares its input's version counter)
        keep = [a for a in params if a is not None and id(a) in ids]
        base = x if x.base is None else x.base         # (NumPy points a view's base at the memory's owner)
        if id(x) in ids or any(getattr(a, "base", None) is base for a in saved):
            keep.insert(0, x)
        ctx.save_for_backward(*keep)
        return h

    @staticmethod
    def backward(ctx, grad_out):
        grads = [None] * (1 + 2 * sum(1 for op, *_ in ctx.stages if op is not None))
        g = grad_out
        for op, sctx, k in reversed(ctx.stages):
            if g is None:                                      # nothing before this stage needs a gradient
                break
            if op is None:                                     # Flatten: back to the input's shape
                g = g.reshape(sctx)
                continue
            g, grads[k], grads[k + 1] = op.backward(sctx, g)
        grads[0] = g if ctx.needs_input_grad[0] else None
        return tuple(grads)
