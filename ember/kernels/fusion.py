"""Layer fusion: an ``nn.Sequential``'s Conv2d → ReLU (→ MaxPool2d) and Linear → ReLU run as one op.

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

from ..autograd import is_anomaly_enabled
from ..tensor import Tensor
from . import gemm_conv, matmul, mode, numba_conv

enabled = True   # False: never fuse (to measure the fusion against the layers one by one)
pairs = True     # False: fuse only Conv2d → ReLU → MaxPool2d, no Conv2d → ReLU or Linear → ReLU pair (to measure)

def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


# (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Linear): set by ember.nn when it defines them (ember.kernels
# does not import ember.nn: the layers sit above the kernels); None until then, and nothing is fused.
LAYERS = None


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
    if type(relu) is not LAYERS[1] or not _plain(linear, relu):
        return False
    w, b = linear.weight, linear.bias
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
    w, b = conv.weight, conv.bias
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


def sequential_forward(layers, x):
    """``for layer in layers: x = layer(x)``, with each fusable Conv2d → ReLU → MaxPool2d,
    Conv2d → ReLU and Linear → ReLU run as one op. layers: the Sequential's modules in order; x:
    its input. Returns the output."""
    layers = list(layers)
    if mode() != "fast" or not numba_conv.AVAILABLE or not enabled or is_anomaly_enabled():
        for layer in layers:
            x = layer(x)
        return x
    conv_type, linear_type = (LAYERS[0], LAYERS[3]) if LAYERS is not None else (None, None)
    i = 0
    while i < len(layers):
        conv = layers[i]                                       # a Conv2d, or the layer to run alone
        padding = None                                         # only a Conv2d starts a fused run
        if type(conv) is linear_type and pairs and i + 1 < len(layers) and _linear_relu_fusable(conv, layers[i + 1], x):
            x = matmul.LinearReLU.apply(x, conv.weight, conv.bias)   # a Linear → ReLU pair
            i += 2
            continue
        if type(conv) is conv_type and i + 1 < len(layers):
            padding = _conv_relu_fusable(conv, layers[i + 1], x)
        if padding is not None and i + 2 < len(layers) and _pool_fusable(conv, padding, layers[i + 2], x):
            x = numba_conv.Conv2dReLUMaxPool2d.apply(x, conv.weight, conv.bias, stride=conv.stride,
                                                      padding=padding, dilation=conv.dilation,
                                                      groups=conv.groups, pool=_pair(layers[i + 2].kernel_size))
            i += 3
        elif padding is not None and pairs:
            op = gemm_conv.Conv2dReLU if conv.groups == 1 else numba_conv.Conv2dReLU
            x = op.apply(x, conv.weight, conv.bias, stride=conv.stride, padding=padding,
                         dilation=conv.dilation, groups=conv.groups)
            i += 2
        else:
            x = conv(x)
            i += 1
    return x
