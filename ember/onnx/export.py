"""``ember.onnx.export``: trace one forward pass of an ember model and write it as an ONNX file.

How the trace works (see docs/onnx.md for why): during one forward pass on ``args``, in
evaluation mode, two hooks are installed and removed again afterwards:

* ``Module.__call__``: a leaf layer of ember's own (``Conv2d``, ``Linear``, ``BatchNorm2d``,
  ...) becomes ONNX nodes read off its attributes (PyTorch's names: ``kernel_size``,
  ``stride``, ``padding``, ``running_mean``, ...); the ops it runs inside are not looked at, so
  a fused or threaded kernel under a layer changes nothing here.
* ``Function.apply``: every op called outside such a layer (a ``flatten`` or a residual ``+``
  in a custom ``forward``, a functional ``F.relu``) becomes ONNX nodes chosen by the op's class
  name (``type(fn).__name__``) and its keyword arguments.

Tensors are followed by identity: the model's inputs, each recorded output, and each
``Parameter``/buffer (an initializer named by its state-dict key, ``0.weight``, as PyTorch's
exporter names them). Anything else that reaches a node is a constant and is stored as one.
"""
from __future__ import annotations

import inspect
import os

import numpy as np

from ..ops import pool as _pool
from .errors import OnnxExportError

MIN_OPSET = 17

# ONNX op -> the ember layers and ops it is exported from; docs/onnx.md's table is checked
# against this dict by tests/test_onnx_docs.py.
EXPORTED_OPS = {
    "Conv": "nn.Conv1d, nn.Conv2d, F.conv1d, F.conv2d (stride, padding, dilation, groups)",
    "ConvTranspose": "nn.ConvTranspose1d, nn.ConvTranspose2d, F.conv_transpose2d (stride, padding, output_padding, "
                     "dilation, groups; output_size=)",
    "MaxPool": "nn.MaxPool2d, F.max_pool2d (dilation; ceil_mode where it adds no window; not return_indices)",
    "AveragePool": "nn.AvgPool2d, F.avg_pool2d (count_include_pad; ceil_mode where it adds no window; not "
                   "divisor_override); nn.AdaptiveAvgPool2d when the sizes divide",
    "GlobalAveragePool": "nn.AdaptiveAvgPool2d(1)",
    "Gemm": "nn.Linear, F.linear on a 2-D input",
    "MatMul": "Tensor @ Tensor; nn.Linear on a >2-D input (with Transpose and Add)",
    "Relu": "nn.ReLU, F.relu, Tensor.relu",
    "LeakyRelu": "nn.LeakyReLU, F.leaky_relu",
    "Sigmoid": "nn.Sigmoid, F.sigmoid",
    "Tanh": "nn.Tanh, F.tanh",
    "Softmax": "nn.Softmax, F.softmax",
    "LogSoftmax": "nn.LogSoftmax, F.log_softmax",
    "BatchNormalization": "nn.BatchNorm1d, nn.BatchNorm2d, F.batch_norm(training=False) (running statistics)",
    "Flatten": "nn.Flatten() (start_dim=1, end_dim=-1)",
    "Reshape": "nn.Flatten with other dims, Tensor.reshape/view/flatten/squeeze/unsqueeze",
    "Transpose": "Tensor.permute/transpose",
    "Add": "+ (residual connections, biases)",
    "Sub": "-",
    "Mul": "*",
    "Div": "/",
    "Neg": "unary -",
    "Exp": "Tensor.exp",
    "Log": "Tensor.log",
    "Concat": "ember.cat, F.cat",
    "ReduceMean": "Tensor.mean (over dims, keepdim)",
    "Slice": "x[a:b:s, ...] (slices and ..., e.g. ResNet option-A shortcuts' x[:, :, ::2, ::2])",
    "Pad": "F.pad (mode 'constant')",
    "Identity": "Tensor.clone; a model that returns its input (nn.Identity and nn.Dropout in evaluation emit no node)",
}


def _onnx():
    try:
        import onnx
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("ember.onnx needs the onnx package: pip install 'ember[onnx]'") from None
    return onnx


def _f32(v) -> float:
    """A float attribute as ONNX stores it (float32), written shortest: 1e-05, not 9.99999974e-06."""
    return float(str(np.float32(v)))


def _contiguous(arr):
    """C-ordered copy-if-needed that keeps a 0-d array 0-d (np.ascontiguousarray makes it 1-d)."""
    arr = np.asarray(arr)
    return np.ascontiguousarray(arr).reshape(arr.shape)


def _pairs(v, n):
    return list(v) if isinstance(v, (tuple, list)) else [int(v)] * n


class _Tracer:
    """The state of one trace: value names by tensor identity, the nodes and initializers."""

    def __init__(self, model, opset=MIN_OPSET):
        self.onnx, self.opset = _onnx(), opset
        self.names, self.keep = {}, []          # id(tensor) -> ONNX value name; keep ids unique
        self.nodes, self.inits = [], []
        self.params = {id(t): n for n, t in [*model.named_parameters(), *model.named_buffers()]}
        self.paths = {id(m): n for n, m in model.named_modules()}
        self.inside = 0                          # > 0 while a layer converted as a whole runs
        self.counter, self.scope, self.used = 0, "", set()

    # ---- values ------------------------------------------------------------------------
    def fresh(self, hint):
        self.counter += 1
        return f"/{hint}_{self.counter}"

    def bind(self, tensor, name):
        self.names[id(tensor)] = name
        self.keep.append(tensor)
        return name

    def value(self, t):
        """The ONNX name of ``t``: traced value, parameter/buffer initializer or a new constant."""
        from ..tensor import Tensor
        if isinstance(t, Tensor) and id(t) in self.names:
            return self.names[id(t)]
        arr = np.asarray(t._data if isinstance(t, Tensor) else t)
        name = self.params.get(id(t)) if isinstance(t, Tensor) else None
        name = name or self.fresh("const")
        self.inits.append(self.onnx.numpy_helper.from_array(_contiguous(arr), name))
        if isinstance(t, Tensor):
            self.bind(t, name)
        return name

    def const(self, arr, hint="const"):
        name = self.fresh(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(_contiguous(arr), name))
        return name

    def node(self, op, inputs, out=None, **attrs):
        """Add one node named as PyTorch's exporter does ("/features/0/Conv" for the layer
        ``features.0``); return its output name (bound to tensor ``out`` when given)."""
        name = f"/{self.scope.replace('.', '/')}/{op}" if self.scope else f"/{op}"
        self.counter += 1
        name = name if name not in self.used else f"{name}_{self.counter}"
        self.used.add(name)
        y = name + "_output_0"
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [y], name=name, **attrs))
        return self.bind(out, y) if out is not None else y

    # ---- emitters shared by the layer and the op level ------------------------------------
    def conv(self, x, w, b, stride, padding, dilation, groups, out):
        k = w.ndim - 2
        ins = [x, self.value(w)] + ([self.value(b)] if b is not None else [])
        return self.node("Conv", ins, out, kernel_shape=list(w.shape[2:]), strides=_pairs(stride, k),
                         pads=_pairs(padding, k) * 2, dilations=_pairs(dilation, k), group=int(groups))

    def conv_transpose(self, x, w, b, stride, padding, output_padding, dilation, groups, out):
        k = w.ndim - 2
        ins = [x, self.value(w)] + ([self.value(b)] if b is not None else [])
        return self.node("ConvTranspose", ins, out, kernel_shape=list(w.shape[2:]), strides=_pairs(stride, k),
                         pads=_pairs(padding, k) * 2, output_padding=_pairs(output_padding, k),
                         dilations=_pairs(dilation, k), group=int(groups))

    def pool(self, op, x, kernel_size, stride, padding, out, xt=None, dilation=1, ceil_mode=False,
             count_include_pad=True, divisor_override=None, return_indices=False):
        """MaxPool / AveragePool with PyTorch's options; raises OnnxExportError for what ONNX
        would compute differently: the indices output (ONNX's are flat over N·C·H·W, torch's per
        plane), divisor_override, an unbatched (C, H, W) input (ONNX would pool it as 1-D), and a
        ceil_mode that adds windows (ONNX's rounding rule for them is not PyTorch's)."""
        k = _pairs(kernel_size, 2)
        s = k if stride is None else _pairs(stride, 2)
        p, d = _pairs(padding, 2), _pairs(dilation, 2)
        layer = f"{'nn.MaxPool2d' if op == 'MaxPool' else 'nn.AvgPool2d'} in {self.where or 'the model'}"
        if return_indices:
            raise OnnxExportError(f"{layer}: return_indices=True has no ONNX form here (ONNX MaxPool's indices "
                                  "are flat over the whole N·C·H·W tensor, PyTorch's per H×W plane)")
        if divisor_override is not None:
            raise OnnxExportError(f"{layer}: divisor_override has no ONNX AveragePool form")
        if xt is not None and xt.ndim != 4:
            raise OnnxExportError(f"{layer}: ONNX pools need an (N, C, H, W) input, got shape {tuple(xt.shape)} "
                                  "(add the batch dimension before exporting)")
        if ceil_mode and xt is not None and any(
                _pool.pool_out_size(n, *a, True) != _pool.pool_out_size(n, *a, False)
                for n, a in zip(xt.shape[2:], zip(k, s, p, d))):
            raise OnnxExportError(f"{layer}: ceil_mode=True adds a window at input size {tuple(xt.shape[2:])}, and "
                                  "ONNX runtimes size and divide such windows differently from PyTorch")
        extra = {"count_include_pad": int(bool(count_include_pad))} if op == "AveragePool" else {}
        if op == "MaxPool" and d != [1, 1]:
            extra["dilations"] = d
        return self.node(op, [x], out, kernel_shape=k, strides=s, pads=p * 2, **extra)

    def adaptive_avg(self, x, xt, out):
        if xt.ndim != 4:
            raise OnnxExportError(f"nn.AdaptiveAvgPool2d in {self.where or 'the model'}: ONNX pools need an "
                                  f"(N, C, H, W) input, got shape {tuple(xt.shape)} (add the batch dimension "
                                  "before exporting)")
        (H, W), (OH, OW) = xt.shape[2:], out.shape[2:]
        if (OH, OW) == (1, 1):
            return self.node("GlobalAveragePool", [x], out)
        if H % OH or W % OW:
            raise OnnxExportError(f"AdaptiveAvgPool2d from {H}x{W} to {OH}x{OW} has no ONNX form (ONNX pools "
                                  "need a fixed window; the sizes must divide)")
        return self.pool("AveragePool", x, (H // OH, W // OW), (H // OH, W // OW), 0, out)

    def linear(self, x, xt, w, b, out):
        if xt.ndim == 2:
            ins = [x, self.value(w)] + ([self.value(b)] if b is not None else [])
            return self.node("Gemm", ins, out, transB=1)
        wt = self.node("Transpose", [self.value(w)], perm=[1, 0])
        if b is None:
            return self.node("MatMul", [x, wt], out)
        return self.node("Add", [self.node("MatMul", [x, wt]), self.value(b)], out)

    def batch_norm(self, x, weight, bias, mean, var, eps, momentum, out):
        """BatchNormalization (inference form); weight/bias None -> ones/zeros (affine=False)."""
        C, dt = mean.shape[0], mean.dtype
        scale = self.value(weight) if weight is not None else self.const(np.ones(C, dt), "bn_scale")
        shift = self.value(bias) if bias is not None else self.const(np.zeros(C, dt), "bn_bias")
        return self.node("BatchNormalization", [x, scale, shift, self.value(mean), self.value(var)], out,
                         epsilon=_f32(eps), momentum=_f32(momentum))

    def reduce_mean(self, x, xt, dim, keepdim, out):
        dims = range(xt.ndim) if dim is None else dim if isinstance(dim, tuple) else (dim,)
        axes = [d % xt.ndim for d in dims]
        if self.opset >= 18:                 # opset 18 moved axes from an attribute to an input
            return self.node("ReduceMean", [x, self.const(np.array(axes, np.int64), "axes")], out,
                             keepdims=int(keepdim))
        return self.node("ReduceMean", [x], out, axes=axes, keepdims=int(keepdim))

    def slice(self, x, xt, index, out):
        """Basic slicing -> Slice over the axes whose slice is not the whole axis."""
        index = index if isinstance(index, tuple) else (index,)
        if any(i is Ellipsis for i in index):
            k = index.index(Ellipsis)
            index = index[:k] + (slice(None),) * (xt.ndim - len(index) + 1) + index[k + 1:]
        if not all(isinstance(i, slice) for i in index):
            raise OnnxExportError(f"indexing with {index!r} (in {self.where or 'the model'}) has no ONNX form in "
                                  "ember's exporter: only slices (a:b:s) and ... are exported")
        big = np.iinfo(np.int64).max
        starts, ends, axes, steps = [], [], [], []
        for axis, s in enumerate(index):
            if s == slice(None):
                continue
            step = 1 if s.step is None else s.step
            starts.append(s.start if s.start is not None else (0 if step > 0 else -1))
            ends.append(s.stop if s.stop is not None else (big if step > 0 else -big))
            axes.append(axis)
            steps.append(step)
        if not axes:
            return self.node("Identity", [x], out)
        ins = [np.array(v, np.int64) for v in (starts, ends, axes, steps)]
        return self.node("Slice", [x] + [self.const(v, h) for v, h in zip(ins, ("starts", "ends", "axes", "steps"))],
                         out)

    def pad(self, x, xt, pad, value, out):
        """F.pad's (left, right) pairs from the last dim -> ONNX Pad's [begins..., ends...]."""
        begins, ends = [0] * xt.ndim, [0] * xt.ndim
        for i in range(len(pad) // 2):
            begins[xt.ndim - 1 - i], ends[xt.ndim - 1 - i] = pad[2 * i], pad[2 * i + 1]
        pads = self.const(np.array(begins + ends, np.int64), "pads")
        return self.node("Pad", [x, pads, self.const(np.array(value, xt.dtype), "pad_value")], out, mode="constant")

    def reshape(self, x, xt, out):
        shape = list(out.shape)
        if xt.ndim and shape and xt.shape[0] == shape[0]:
            shape[0] = 0                     # ONNX: 0 copies the input's dim, so the batch stays dynamic
        return self.node("Reshape", [x, self.const(np.array(shape, np.int64), "shape")], out)

    # ---- the layer level ---------------------------------------------------------------
    def layer(self, m, args, out):
        """Emit the nodes of ember layer ``m`` called on ``args``; False if it is not one."""
        kind = type(m).__name__
        if not type(m).__module__.startswith("ember.") or kind not in _LAYERS or len(args) != 1:
            return False
        xt = args[0]
        x = self.value(xt)
        if out is xt:                        # Dropout in evaluation, Identity: nothing to emit
            return True
        self.scope = self.paths.get(id(m), "")
        try:
            _LAYERS[kind](self, m, x, xt, out)
        finally:
            self.scope = ""
        return True

    # ---- the op level --------------------------------------------------------------------
    def op(self, fn, args, kwargs, out):
        kind = fn.__name__
        conv = _OPS.get(kind)
        if conv is None:
            where = self.where or "the model's own forward()"
            raise OnnxExportError(f"op {kind} (in {where}) has no ONNX form in ember's exporter; "
                                  f"ONNX export supports: {', '.join(sorted(EXPORTED_OPS))}")
        from ..tensor import Tensor
        names = [self.value(a) if isinstance(a, Tensor) else None for a in args]
        conv(self, names, args, kwargs, out)

    where = ""


def _act(op, **attrs):
    return lambda tr, m, x, xt, out: tr.node(op, [x], out, **attrs)


def _softmax(op):
    return lambda tr, m, x, xt, out: tr.node(op, [x], out, axis=int(m.dim))


def _batch_norm(tr, m, x, xt, out):
    if m.running_mean is None:
        raise OnnxExportError(f"{type(m).__name__} with track_running_stats=False normalises with the batch's "
                              "own statistics even in evaluation; ONNX BatchNormalization needs running statistics")
    momentum = 0.9 if m.momentum is None else 1.0 - float(m.momentum)
    tr.batch_norm(x, m.weight, m.bias, m.running_mean, m.running_var, m.eps, momentum, out)


def _batch_norm_op(tr, n, a, kw, out):
    if kw.get("mean") is None:
        raise OnnxExportError(f"op BatchNorm (in {tr.where or 'the model'}) normalises with batch statistics "
                              "(training=True); ONNX BatchNormalization needs running statistics")
    w, b = (a[i] if len(a) > i else kw.get(k) for i, k in ((1, "weight"), (2, "bias")))
    tr.batch_norm(n[0], w, b, kw["mean"], kw["var"], kw.get("eps", 1e-5), 0.9, out)


def _flatten(tr, m, x, xt, out):
    if m.start_dim == 1 and m.end_dim in (-1, xt.ndim - 1):
        tr.node("Flatten", [x], out, axis=1)
    else:
        tr.reshape(x, xt, out)


def _conv_layer(tr, m, x, xt, out):
    if getattr(m, "padding_mode", "zeros") != "zeros":
        raise OnnxExportError(f"{type(m).__name__} in {tr.where or 'the model'}: padding_mode="
                              f"'{m.padding_mode}' is not exported (only 'zeros', ONNX Conv's pads)")
    pairs = m.padding_pairs()
    if any(before != after for before, after in pairs):
        raise OnnxExportError(f"{type(m).__name__} in {tr.where or 'the model'}: padding='same' with an even "
                              f"kernel pads one side more ({pairs}), which is not exported")
    tr.conv(x, m.weight, m.bias, m.stride, tuple(p for p, _ in pairs), m.dilation, m.groups, out)


def _conv_transpose_layer(tr, m, x, xt, out):
    """The layer's output_padding, or the one its forward's output_size chose, read off the output."""
    k = len(m.kernel_size)
    smallest = [(n - 1) * s - 2 * p + d * (kk - 1) + 1 for n, s, p, d, kk in
                zip(xt.shape[-k:], m.stride, m.padding, m.dilation, m.kernel_size)]
    output_padding = [o - n for o, n in zip(out.shape[-k:], smallest)]
    tr.conv_transpose(x, m.weight, m.bias, m.stride, m.padding, output_padding, m.dilation, m.groups, out)


_LAYERS = {
    "Conv2d": _conv_layer,
    "ConvTranspose2d": _conv_transpose_layer,
    "ConvTranspose1d": _conv_transpose_layer,
    "Conv1d": _conv_layer,
    "Linear": lambda tr, m, x, xt, out: tr.linear(x, xt, m.weight, m.bias, out),
    "MaxPool2d": lambda tr, m, x, xt, out: tr.pool("MaxPool", x, m.kernel_size, m.stride, m.padding, out, xt,
                                                   m.dilation, m.ceil_mode, return_indices=m.return_indices),
    "AvgPool2d": lambda tr, m, x, xt, out: tr.pool("AveragePool", x, m.kernel_size, m.stride, m.padding, out, xt,
                                                   1, m.ceil_mode, m.count_include_pad, m.divisor_override),
    "AdaptiveAvgPool2d": lambda tr, m, x, xt, out: tr.adaptive_avg(x, xt, out),
    "ReLU": _act("Relu"),
    "LeakyReLU": lambda tr, m, x, xt, out: tr.node("LeakyRelu", [x], out, alpha=_f32(m.negative_slope)),
    "Sigmoid": _act("Sigmoid"),
    "Tanh": _act("Tanh"),
    "Softmax": _softmax("Softmax"),
    "LogSoftmax": _softmax("LogSoftmax"),
    "BatchNorm1d": _batch_norm,
    "BatchNorm2d": _batch_norm,
    "Flatten": _flatten,
    "Dropout": _act("Identity"),
    "Identity": _act("Identity"),
}


def _binary(op):
    return lambda tr, n, a, kw, out: tr.node(op, n[:2], out)


def _unary(op):
    return lambda tr, n, a, kw, out: tr.node(op, n[:1], out)


_OPS = {
    "Add": _binary("Add"), "Sub": _binary("Sub"), "Mul": _binary("Mul"), "Div": _binary("Div"),
    "MatMul": _binary("MatMul"), "Neg": _unary("Neg"), "Exp": _unary("Exp"), "Log": _unary("Log"),
    "ReLU": _unary("Relu"), "Sigmoid": _unary("Sigmoid"), "Tanh": _unary("Tanh"), "Clone": _unary("Identity"),
    "LeakyReLU": lambda tr, n, a, kw, out: tr.node("LeakyRelu", n[:1], out, alpha=_f32(kw.get("negative_slope", 0.01))),
    "Softmax": lambda tr, n, a, kw, out: tr.node("Softmax", n[:1], out, axis=int(kw["dim"])),
    "LogSoftmax": lambda tr, n, a, kw, out: tr.node("LogSoftmax", n[:1], out, axis=int(kw["dim"])),
    "Reshape": lambda tr, n, a, kw, out: tr.reshape(n[0], a[0], out),
    "Permute": lambda tr, n, a, kw, out: tr.node("Transpose", n[:1], out, perm=[d % a[0].ndim for d in kw["dims"]]),
    "Mean": lambda tr, n, a, kw, out: tr.reduce_mean(n[0], a[0], kw.get("dim"), kw.get("keepdim", False), out),
    "Cat": lambda tr, n, a, kw, out: tr.node("Concat", n, out, axis=int(kw.get("dim", 0))),
    "Linear": lambda tr, n, a, kw, out: tr.linear(n[0], a[0], a[1], a[2] if len(a) > 2 else kw.get("bias"), out),
    "Conv2d": lambda tr, n, a, kw, out: tr.conv(n[0], a[1], a[2] if len(a) > 2 else kw.get("b"), kw.get("stride", 1),
                                                kw.get("padding", 0), kw.get("dilation", 1), kw.get("groups", 1), out),
    "ConvTranspose2d": lambda tr, n, a, kw, out: tr.conv_transpose(
        n[0], a[1], a[2] if len(a) > 2 else kw.get("b"), kw["stride"], kw["padding"], kw["output_padding"],
        kw["dilation"], kw["groups"], out),
    "MaxPool2d": lambda tr, n, a, kw, out: tr.pool("MaxPool", n[0], kw["kernel_size"], kw["stride"],
                                                   kw.get("padding", 0), out, a[0], kw.get("dilation", 1),
                                                   kw.get("ceil_mode", False),
                                                   return_indices=kw.get("indices") is not None),
    "AvgPool2d": lambda tr, n, a, kw, out: tr.pool("AveragePool", n[0], kw["kernel_size"], kw["stride"],
                                                   kw.get("padding", 0), out, a[0], 1, kw.get("ceil_mode", False),
                                                   kw.get("count_include_pad", True), kw.get("divisor_override")),
    "AdaptiveAvgPool2d": lambda tr, n, a, kw, out: tr.adaptive_avg(n[0], a[0], out),
    "BatchNorm": _batch_norm_op,
    "GetItem": lambda tr, n, a, kw, out: tr.slice(n[0], a[0], kw["index"], out),
    "Pad": lambda tr, n, a, kw, out: tr.pad(n[0], a[0], kw["pad"], kw.get("value", 0.0), out),
}


def _as_inputs(args):
    from ..tensor import Tensor
    if isinstance(args, Tensor):
        return (args,)
    if isinstance(args, (tuple, list)) and args and all(isinstance(a, Tensor) for a in args):
        return tuple(args)
    raise TypeError(f"export: args must be a Tensor or a tuple of Tensors (the forward's inputs), "
                    f"got {type(args).__name__}")


def _axes_spec(dynamic_axes, names):
    """PyTorch's dynamic_axes ({name: {axis: label}} or {name: [axis, ...]}) -> {name: {axis: label}}."""
    spec = {}
    for name, axes in (dynamic_axes or {}).items():
        if name not in names:
            raise ValueError(f"export: dynamic_axes names {name!r}, which is not an input or output name "
                             f"({', '.join(names)})")
        if isinstance(axes, dict):
            spec[name] = {int(a): str(label) for a, label in axes.items()}
        elif isinstance(axes, (list, tuple)):
            spec[name] = {int(a): f"{name}_dynamic_axes_{i + 1}" for i, a in enumerate(axes)}
        else:
            raise TypeError(f"export: dynamic_axes[{name!r}] must be a dict axis -> name or a list of axes")
    return spec


def _value_info(onnx, name, t, dyn):
    dims = [dyn.get(i, d) for i, d in enumerate(t.shape)]
    elem = onnx.helper.np_dtype_to_tensor_dtype(t.dtype)
    return onnx.helper.make_tensor_value_info(name, elem, dims)


def trace(model, args, input_names=None, output_names=None, dynamic_axes=None, opset_version=MIN_OPSET):
    """Trace ``model(*args)`` and return the ONNX ``ModelProto`` (what ``export`` writes).

    Same arguments and errors as ``export``, without the file.
    """
    from ..autograd import Function, no_grad
    from ..nn import Module
    onnx = _onnx()
    if not isinstance(model, Module):
        raise TypeError(f"export: model must be an ember.nn.Module, got {type(model).__name__}")
    inputs = _as_inputs(args)
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset_version, int) or not MIN_OPSET <= opset_version <= newest:
        raise ValueError(f"export: opset_version must be an int from {MIN_OPSET} to {newest} "
                         f"(the onnx package's newest), got {opset_version!r}")
    tr = _Tracer(model, opset_version)
    in_names = list(input_names or [f"input_{i}" if len(inputs) > 1 else "input" for i in range(len(inputs))])
    if len(in_names) != len(inputs):
        raise ValueError(f"export: {len(in_names)} input_names for {len(inputs)} inputs")
    for t, n in zip(inputs, in_names):
        tr.bind(t, n)

    orig_call, orig_apply = Module.__call__, inspect.getattr_static(Function, "apply")
    own_apply = "apply" in Function.__dict__

    def call(m, *a, **kw):
        path = tr.paths.get(id(m), "?")
        if tr.inside or not (type(m).__module__.startswith("ember.") and type(m).__name__ in _LAYERS):
            outer = tr.where
            tr.where = f"module {path!r} ({type(m).__name__})" if path else f"{type(m).__name__}.forward"
            try:
                return orig_call(m, *a, **kw)
            finally:
                tr.where = outer
        tr.inside += 1
        try:
            out = orig_call(m, *a, **kw)
        finally:
            tr.inside -= 1
        if not tr.layer(m, a, out):
            raise OnnxExportError(f"module {path!r} ({type(m).__name__}) was called with {len(a)} inputs; "
                                  "ONNX export expects one")
        return out

    def apply(cls, *a, **kw):
        out = orig_apply.__func__(cls, *a, **kw)
        if not tr.inside:
            tr.op(cls, a, kw, out)
        return out

    modes = [(m, m.training) for m in model.modules()]
    Module.__call__, Function.apply = call, classmethod(apply)
    try:
        model.eval()
        with no_grad():
            result = model(*inputs)
    finally:
        Module.__call__ = orig_call
        if own_apply:
            Function.apply = orig_apply
        else:                                # it came from a base class: uncover it again
            del Function.apply
        for m, mode in modes:
            object.__setattr__(m, "training", mode)

    try:
        outputs = _as_inputs(result)
    except TypeError:
        raise OnnxExportError(f"export: the model must return a Tensor or a tuple of Tensors, "
                              f"got {type(result).__name__}") from None
    out_names = list(output_names or [f"output_{i}" if len(outputs) > 1 else "output" for i in range(len(outputs))])
    if len(out_names) != len(outputs):
        raise ValueError(f"export: {len(out_names)} output_names for {len(outputs)} outputs")
    spec = _axes_spec(dynamic_axes, in_names + out_names)
    for t, n in zip(outputs, out_names):      # rename the last node's output to the output's name
        src = tr.value(t)
        tr.nodes.append(onnx.helper.make_node("Identity", [src], [n], name=f"/output/{n}"))
    _rename_identity_outputs(tr.nodes)
    graph = onnx.helper.make_graph(
        tr.nodes, "ember", [_value_info(onnx, n, t, spec.get(n, {})) for t, n in zip(inputs, in_names)],
        [_value_info(onnx, n, t, spec.get(n, {})) for t, n in zip(outputs, out_names)], initializer=tr.inits)
    proto = onnx.helper.make_model(graph, producer_name="ember",
                                   opset_imports=[onnx.helper.make_opsetid("", opset_version)])
    onnx.checker.check_model(proto)
    return proto


def _rename_identity_outputs(nodes):
    """Fold each output Identity into the node that made its input, when that node's output
    is used nowhere else (so a graph ends in Gemm -> "output", as PyTorch's exporter writes it)."""
    producers = {o: n for n in nodes for o in n.output}
    uses = {}
    for n in nodes:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    for ident in [n for n in nodes if n.name.startswith("/output/")]:
        src = ident.input[0]
        p = producers.get(src)
        if p is None or uses[src] != 1 or p.name.startswith("/output/"):
            continue
        p.output[list(p.output).index(src)] = ident.output[0]
        nodes.remove(ident)


def export(model, args, f, input_names=None, output_names=None, dynamic_axes=None,
           opset_version: int = MIN_OPSET) -> None:
    """Export an ember model to an ONNX file, as ``torch.onnx.export`` (its TorchScript form).

    The model runs once on ``args`` in evaluation mode (dropout off, batch norm on running
    statistics), as PyTorch's default ``training=TrainingMode.EVAL``; each module's training
    flag is restored afterwards. Parameters and buffers become initializers named by their
    state-dict keys.

    Args:
        model: an ``ember.nn.Module``.
        args: a Tensor or a tuple of Tensors, the inputs of ``model.forward`` (e.g. (N, 1, 28, 28)).
        f: a path or a binary file object to write the model to.
        input_names, output_names: graph input/output names (default "input"/"output", or
            "input_0", ... for several).
        dynamic_axes: PyTorch's form, e.g. {"input": {0: "batch"}, "output": {0: "batch"}} or
            {"input": [0]}: those dims are symbolic, so any batch size runs.
        opset_version: 17 (the default) up to the installed onnx package's newest opset.
    Raises:
        OnnxExportError: a layer or op has no ONNX form (e.g. LocallyConnected2d), naming it and
            the module it was called from.
        TypeError / ValueError: model not a Module, args not Tensors, names or dynamic_axes that
            do not fit, opset_version out of range.
    """
    proto = trace(model, args, input_names, output_names, dynamic_axes, opset_version)
    data = proto.SerializeToString()
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            fh.write(data)
    else:
        f.write(data)
