"""``ember.onnx.load_model``: build ember layers from an ONNX graph.

The file is parsed as protobuf data and checked with ``onnx.checker``; nothing in it is
executed (no Python, no custom op libraries, no external weight files). Each node becomes one
ember module holding real ``Parameter``s (``Conv`` -> ``nn.Conv2d``, ``Gemm`` -> ``nn.Linear``,
``BatchNormalization`` -> ``nn.BatchNorm2d``, ...), so the model can be printed, summarised
and fine-tuned. A graph that is a plain chain becomes an ``nn.Sequential``; any other graph an
``OnnxGraph``, whose forward runs the nodes in the file's (topological) order. Constant-only
subgraphs (``Identity``/``Transpose`` of a weight, ``Constant`` nodes) are folded at load time.
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict

import numpy as np

from .. import nn
from ..nn import Module
from ..tensor import Tensor
from .errors import OnnxImportError

# ONNX op -> the ember module it becomes; docs/onnx.md's table is checked against it.
IMPORTED_OPS = {
    "Conv": "nn.Conv1d / nn.Conv2d (symmetric pads, any stride, dilation, group)",
    "ConvTranspose": "nn.ConvTranspose1d / nn.ConvTranspose2d (symmetric pads, output_padding, any stride, "
                     "dilation, group; not output_shape)",
    "MaxPool": "nn.MaxPool2d (symmetric pads, ceil_mode=0, dilations)",
    "AveragePool": "nn.AvgPool2d (symmetric pads, ceil_mode=0, no dilation, count_include_pad)",
    "GlobalAveragePool": "nn.AdaptiveAvgPool2d(1)",
    "Gemm": "nn.Linear (alpha = beta = 1, transA = 0, a constant B)",
    "MatMul": "nn.Linear when B is a constant matrix (an Add of a constant vector after it becomes its bias); "
              "else a Binary module",
    "Relu": "nn.ReLU", "LeakyRelu": "nn.LeakyReLU", "Sigmoid": "nn.Sigmoid", "Tanh": "nn.Tanh",
    "Softmax": "nn.Softmax", "LogSoftmax": "nn.LogSoftmax",
    "BatchNormalization": "nn.BatchNorm1d / nn.BatchNorm2d (momentum = 1 − ONNX momentum)",
    "Dropout": "nn.Dropout", "Identity": "nn.Identity",
    "Flatten": "nn.Flatten (axis 1), else a Flatten2d module",
    "Reshape": "Reshape module (a constant shape; 0 copies a dim, -1 is inferred)",
    "Transpose": "Transpose module", "Concat": "Concat module",
    "Slice": "Slice module (constant starts, ends, axes, steps)",
    "Pad": "Pad module (mode constant, constant pads ≥ 0 and value)",
    "ReduceMean": "ReduceMean module (constant axes; as torch.onnx writes x.mean(dim) and AdaptiveAvgPool2d(1))",
    "Add": "Binary module", "Sub": "Binary module", "Mul": "Binary module", "Div": "Binary module",
    "Neg": "Unary module", "Exp": "Unary module", "Log": "Unary module",
    "Constant": "folded into the constants at load time",
}


# ---- the small modules for ONNX ops that have no ember layer ----------------------------------
class Reshape(Module):
    """ONNX Reshape with a constant target ``shape``: 0 copies the input's dim, -1 is inferred.
    Shape: x -> x.reshape(shape with 0s replaced)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(int(d) for d in shape)

    def forward(self, x):
        return x.reshape(*[x.shape[i] if d == 0 else d for i, d in enumerate(self.shape)])

    def extra_repr(self):
        return f"shape={self.shape}"


class Flatten2d(Module):
    """ONNX Flatten(axis) for axis ≠ 1: x -> (prod(x.shape[:axis]), prod(x.shape[axis:]))."""

    def __init__(self, axis):
        super().__init__()
        self.axis = int(axis)

    def forward(self, x):
        return x.reshape(int(np.prod(x.shape[:self.axis])), -1)

    def extra_repr(self):
        return f"axis={self.axis}"


class ReduceMean(Module):
    """ONNX ReduceMean over constant ``axes`` (all axes when empty): x.mean(axes, keepdim)."""

    def __init__(self, axes, keepdims):
        super().__init__()
        self.axes, self.keepdims = tuple(int(a) for a in axes), bool(keepdims)

    def forward(self, x):
        return x.mean(self.axes or None, keepdim=self.keepdims)

    def extra_repr(self):
        return f"axes={self.axes}, keepdims={self.keepdims}"


class Slice(Module):
    """ONNX Slice with constant arguments: x[start:end:step] on each of ``axes`` (as numpy
    slicing: starts/ends clamp to the axis; INT64_MAX/MIN mean "to the end")."""

    def __init__(self, starts, ends, axes, steps):
        super().__init__()
        self.starts, self.ends, self.axes, self.steps = (tuple(int(v) for v in t) for t in (starts, ends, axes, steps))

    def forward(self, x):
        index = [slice(None)] * x.ndim
        big = np.iinfo(np.int64).max
        for s, e, a, st in zip(self.starts, self.ends, self.axes, self.steps):
            index[a] = slice(s, None if abs(e) >= big else e, st)
        return x[tuple(index)]

    def extra_repr(self):
        return f"starts={self.starts}, ends={self.ends}, axes={self.axes}, steps={self.steps}"


class Pad(Module):
    """ONNX Pad (mode constant): ``pads`` = [begin of each axis..., end of each axis...], as
    F.pad with (left, right) pairs from the last axis."""

    def __init__(self, pads, value=0.0):
        super().__init__()
        self.pads, self.value = tuple(int(p) for p in pads), float(value)

    def forward(self, x):
        r = len(self.pads) // 2
        pairs = [v for i in reversed(range(r)) for v in (self.pads[i], self.pads[r + i])]
        return nn.functional.pad(x, tuple(pairs), value=self.value)

    def extra_repr(self):
        return f"pads={self.pads}, value={self.value}"


class Transpose(Module):
    """ONNX Transpose: x.permute(perm) (reversed dims when perm is empty)."""

    def __init__(self, perm):
        super().__init__()
        self.perm = tuple(int(p) for p in perm)

    def forward(self, x):
        return x.permute(*(self.perm or range(x.ndim - 1, -1, -1)))

    def extra_repr(self):
        return f"perm={self.perm}"


class Concat(Module):
    """ONNX Concat: ember.cat of the inputs along ``axis``."""

    def __init__(self, axis):
        super().__init__()
        self.axis = int(axis)

    def forward(self, *xs):
        return nn.functional.cat(list(xs), self.axis)

    def extra_repr(self):
        return f"axis={self.axis}"


class Binary(Module):
    """ONNX Add/Sub/Mul/Div/MatMul of two inputs (NumPy broadcasting, as ONNX's)."""
    _FNS = {"Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
            "Div": lambda a, b: a / b, "MatMul": lambda a, b: a @ b}

    def __init__(self, op):
        super().__init__()
        self.op = op

    def forward(self, a, b):
        return self._FNS[self.op](a, b)

    def extra_repr(self):
        return self.op


class Unary(Module):
    """ONNX Neg/Exp/Log."""
    _FNS = {"Neg": lambda x: -x, "Exp": lambda x: x.exp(), "Log": lambda x: x.log()}

    def __init__(self, op):
        super().__init__()
        self.op = op

    def forward(self, x):
        return self._FNS[self.op](x)

    def extra_repr(self):
        return self.op


class OnnxGraph(Module):
    """A model loaded from an ONNX graph that is not a plain chain (residual adds, several inputs).

    ``forward(*inputs)`` runs the steps in the file's order; each step is a registered
    sub-module named after its node. Constants the steps read are buffers ``_const_0``, ....
    Attributes: input_names, output_names, steps (list of (module name, input names, output name)).
    """

    def __init__(self, input_names, output_names, steps, constants):
        super().__init__()
        self.input_names, self.output_names = list(input_names), list(output_names)
        self.steps, self.const_buffers = [], {}
        for name, module, ins, out in steps:
            setattr(self, name, module)
            self.steps.append((name, list(ins), out))
        for i, (vname, arr) in enumerate(constants.items()):
            bname = f"_const_{i}"
            self.register_buffer(bname, Tensor(np.array(arr)))
            self.const_buffers[vname] = bname

    def forward(self, *inputs):
        if len(inputs) != len(self.input_names):
            raise TypeError(f"OnnxGraph expects {len(self.input_names)} inputs ({', '.join(self.input_names)}), "
                            f"got {len(inputs)}")
        env = {v: self._buffers[b] for v, b in self.const_buffers.items()}
        env.update(zip(self.input_names, inputs))
        for name, ins, out in self.steps:
            env[out] = self._modules[name](*[env[i] for i in ins])
        res = [env[o] for o in self.output_names]
        return res[0] if len(res) == 1 else tuple(res)


# ---- reading --------------------------------------------------------------------------------
def _read(f):
    from .export import _onnx
    onnx = _onnx()
    what = os.fspath(f) if isinstance(f, (str, os.PathLike)) else "ONNX data"
    if isinstance(f, (bytes, bytearray)):
        data = bytes(f)
    elif isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            data = fh.read()
    elif hasattr(f, "read"):
        data = f.read()
    else:
        raise TypeError(f"load_model: expected a path, bytes or a binary file object, got {type(f).__name__}")
    if not data:
        raise OnnxImportError(f"{what}: the file is empty")
    try:
        proto = onnx.ModelProto()
        proto.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError (and friends): not protobuf, or cut short
        raise OnnxImportError(f"{what}: not an ONNX model, or a truncated one (protobuf parse failed: {e})") from None
    if not proto.graph.node or not proto.graph.output:
        raise OnnxImportError(f"{what}: not an ONNX model, or a truncated one (no graph nodes or outputs found)")
    for init in proto.graph.initializer:   # before the checker, which would open the file
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise OnnxImportError(f"{what}: initializer {init.name!r} is stored in an external file; "
                                  "ember loads self-contained ONNX files only")
    try:
        onnx.checker.check_model(proto)
    except Exception as e:  # onnx.checker.ValidationError
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnnxImportError(f"{what}: not a valid ONNX model, or a truncated one ({first})") from None
    return onnx, proto, what


def _f64(v) -> float:
    """An ONNX float attribute (float32) as the float it was written from: 1e-05, not 9.99999974e-06."""
    return float(str(np.float32(v)))


def _attrs(onnx, node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


_RESERVED = {"input_names", "output_names", "steps", "const_buffers", "training"}


def _module_name(node, origin, index, taken):
    """torch.onnx names nodes "/features/0/Conv" and weights "features.0.weight": use that
    path (dots as underscores) so the loaded modules read like the original; else op_index."""
    name = ""
    for i in node.input[1:]:
        if i in origin and "." in origin[i]:
            name = origin[i].rsplit(".", 1)[0]
            break
    if not name:
        parts = [p for p in node.name.split("/") if p][:-1]
        name = ".".join(parts)
    name = re.sub(r"[^0-9A-Za-z_]", "_", name.replace(".", "_")) or f"{node.op_type.lower()}_{index}"
    if hasattr(OnnxGraph, name) or name in _RESERVED or name.startswith("_const_"):   # never shadow forward, ...
        name = f"node_{name}"
    base, k = name, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _with(module, **params):
    """Give ``module``'s parameters/buffers the loaded arrays (copied, in the file's dtype)."""
    for key, arr in params.items():
        t = getattr(module, key)
        if t is not None and arr is not None:
            t._data = np.array(arr, dtype=arr.dtype, copy=True)
    return module


def _sym_pads(node, a, k):
    pads = list(a.get("pads", [0] * 2 * k))
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise OnnxImportError(f"node {node.name or node.op_type}: auto_pad={a['auto_pad']!r} is not supported "
                              "(re-export with explicit pads)")
    if pads[:k] != pads[k:]:
        raise OnnxImportError(f"node {node.name or node.op_type}: asymmetric pads {pads} are not supported")
    return tuple(pads[:k])


def _conv(node, a, ins, c, rank):
    """Conv -> nn.Conv1d/2d; ConvTranspose -> nn.ConvTranspose1d/2d (its weight is (C_in, C_out/group, ...))."""
    w = c[ins[1]]
    b = c.get(ins[2]) if len(ins) > 2 and ins[2] else None
    k, op = w.ndim - 2, node.op_type
    if k not in (1, 2):
        raise OnnxImportError(f"node {node.name}: {k}-D {op} is not supported (1-D and 2-D are)")
    if "output_shape" in a:
        raise OnnxImportError(f"node {node.name}: ConvTranspose with output_shape is not supported (re-export with "
                              "pads and output_padding)")
    g = int(a.get("group", 1))
    one = (lambda v: v[0]) if k == 1 else tuple
    kw = dict(stride=one(a.get("strides", [1] * k)), padding=one(_sym_pads(node, a, k)), groups=g,
              bias=b is not None, dilation=one(a.get("dilations", [1] * k)), dtype=w.dtype)
    if op == "Conv":
        m = (nn.Conv1d if k == 1 else nn.Conv2d)(w.shape[1] * g, w.shape[0], one(w.shape[2:]), **kw)
    else:
        m = (nn.ConvTranspose1d if k == 1 else nn.ConvTranspose2d)(
            w.shape[0], w.shape[1] * g, one(w.shape[2:]), output_padding=one(a.get("output_padding", [0] * k)), **kw)
    return _with(m, weight=w, bias=b), ins[:1]


def _pool(node, a, ins, c, rank):
    k = list(a["kernel_shape"])
    if len(k) != 2:
        raise OnnxImportError(f"node {node.name}: {len(k)}-D {node.op_type} is not supported (2-D is)")
    dil = tuple(a.get("dilations", [1, 1]))
    if a.get("ceil_mode", 0) or (node.op_type == "AveragePool" and dil != (1, 1)):
        raise OnnxImportError(f"node {node.name}: {node.op_type} with ceil_mode or dilations is not supported")
    pads, s = _sym_pads(node, a, 2), tuple(a.get("strides", [1, 1]))
    if node.op_type == "MaxPool":
        return nn.MaxPool2d(tuple(k), s, pads, dilation=dil), ins[:1]
    return nn.AvgPool2d(tuple(k), s, pads, count_include_pad=bool(a.get("count_include_pad", 0))), ins[:1]


def _gemm(node, a, ins, c, rank):
    if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
        raise OnnxImportError(f"node {node.name}: Gemm with alpha/beta ≠ 1 or transA is not supported")
    if ins[1] not in c:
        raise OnnxImportError(f"node {node.name}: Gemm with a computed (non-constant) B is not supported")
    w = c[ins[1]] if a.get("transB", 0) else c[ins[1]].T
    b = c.get(ins[2]) if len(ins) > 2 and ins[2] else None
    if b is not None:
        if b.size != w.shape[0]:
            raise OnnxImportError(f"node {node.name}: Gemm bias of shape {b.shape} is not per output feature")
        b = b.reshape(-1)
    m = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, dtype=w.dtype)
    return _with(m, weight=w, bias=b), ins[:1]


def _matmul(node, a, ins, c, rank):
    if ins[1] in c and c[ins[1]].ndim == 2 and ins[0] not in c:
        w = c[ins[1]].T
        return _with(nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=w.dtype), weight=w), ins[:1]
    return Binary("MatMul"), ins


def _batch_norm(node, a, ins, c, rank):
    r = rank.get(ins[0])
    if r not in (2, 3, 4):
        raise OnnxImportError(f"node {node.name}: BatchNormalization on an input of rank {r} is not supported "
                              "(rank 2 or 3 -> BatchNorm1d, 4 -> BatchNorm2d)")
    scale, bias, mean, var = (c[i] for i in ins[1:5])
    cls = nn.BatchNorm2d if r == 4 else nn.BatchNorm1d
    m = cls(scale.shape[0], eps=_f64(a.get("epsilon", 1e-5)), momentum=_f64(1.0 - _f64(a.get("momentum", 0.9))),
            dtype=scale.dtype)
    return _with(m, weight=scale, bias=bias, running_mean=mean, running_var=var), ins[:1]


def _softmax(node, a, ins, c, rank):
    axis = int(a.get("axis", -1))
    cls = nn.Softmax if node.op_type == "Softmax" else nn.LogSoftmax
    return cls(axis), ins[:1]


def _flatten(node, a, ins, c, rank):
    axis = int(a.get("axis", 1))
    if axis == 1:
        return nn.Flatten(), ins[:1]
    if axis < 0 and rank.get(ins[0]) is None:
        raise OnnxImportError(f"node {node.name}: Flatten(axis={axis}) on an input of unknown rank is not supported")
    return Flatten2d(axis % rank[ins[0]] if axis < 0 else axis), ins[:1]


def _reshape(node, a, ins, c, rank):
    if ins[1] not in c:
        raise OnnxImportError(f"node {node.name}: Reshape with a computed (non-constant) shape is not supported")
    shape = c[ins[1]].tolist()
    if a.get("allowzero", 0) and 0 in shape:   # allowzero=1 means a 0 is a real zero-size dim
        raise OnnxImportError(f"node {node.name}: Reshape with allowzero=1 and a 0 in the shape is not supported")
    return Reshape(shape), ins[:1]


def _slice(node, a, ins, c, rank):
    missing = [i for i in ins[1:] if i and i not in c]
    if missing:
        raise OnnxImportError(f"node {node.name}: Slice with computed (non-constant) {missing[0]!r} is not supported")
    starts, ends = c[ins[1]].tolist(), c[ins[2]].tolist()
    axes = c[ins[3]].tolist() if len(ins) > 3 and ins[3] else list(range(len(starts)))
    steps = c[ins[4]].tolist() if len(ins) > 4 and ins[4] else [1] * len(starts)
    r = rank.get(ins[0])
    if any(ax < 0 for ax in axes):
        if r is None:
            raise OnnxImportError(f"node {node.name}: Slice with negative axes on an input of unknown rank")
        axes = [ax % r for ax in axes]
    return Slice(starts, ends, axes, steps), ins[:1]


def _pad(node, a, ins, c, rank):
    mode = a.get("mode", b"constant")
    if mode not in (b"constant", "constant"):
        raise OnnxImportError(f"node {node.name}: Pad mode {mode!r} is not supported (constant is)")
    if any(i and i not in c for i in ins[1:]):
        raise OnnxImportError(f"node {node.name}: Pad with computed (non-constant) pads or value is not supported")
    pads = c[ins[1]].tolist()
    value = float(c[ins[2]]) if len(ins) > 2 and ins[2] else 0.0
    if len(ins) > 3 and ins[3] or min(pads, default=0) < 0:
        raise OnnxImportError(f"node {node.name}: Pad with axes or negative pads is not supported")
    return Pad(pads, value), ins[:1]


def _reduce_mean(node, a, ins, c, rank):
    if len(ins) > 1 and ins[1] and ins[1] not in c:
        raise OnnxImportError(f"node {node.name}: ReduceMean with computed (non-constant) axes is not supported")
    axes = c[ins[1]].tolist() if len(ins) > 1 and ins[1] else list(a.get("axes", []))
    if not axes and a.get("noop_with_empty_axes", 0):
        return nn.Identity(), ins[:1]
    return ReduceMean(axes, a.get("keepdims", 1)), ins[:1]


def _dropout(node, a, ins, c, rank):
    p = float(c[ins[1]]) if len(ins) > 1 and ins[1] in c else float(a.get("ratio", 0.5))
    return nn.Dropout(p), ins[:1]


_BUILDERS = {
    "Conv": _conv, "ConvTranspose": _conv, "MaxPool": _pool, "AveragePool": _pool, "Gemm": _gemm, "MatMul": _matmul,
    "GlobalAveragePool": lambda n, a, ins, c, r: (nn.AdaptiveAvgPool2d(1), ins[:1]),
    "BatchNormalization": _batch_norm, "Softmax": _softmax, "LogSoftmax": _softmax,
    "Relu": lambda n, a, ins, c, r: (nn.ReLU(), ins[:1]),
    "LeakyRelu": lambda n, a, ins, c, r: (nn.LeakyReLU(_f64(a.get("alpha", 0.01))), ins[:1]),
    "Sigmoid": lambda n, a, ins, c, r: (nn.Sigmoid(), ins[:1]),
    "Tanh": lambda n, a, ins, c, r: (nn.Tanh(), ins[:1]),
    "Dropout": _dropout, "Identity": lambda n, a, ins, c, r: (nn.Identity(), ins[:1]),
    "Flatten": _flatten, "Reshape": _reshape, "ReduceMean": _reduce_mean,
    "Slice": _slice, "Pad": _pad,
    "Transpose": lambda n, a, ins, c, r: (Transpose(a.get("perm", [])), ins[:1]),
    "Concat": lambda n, a, ins, c, r: (Concat(a["axis"]), ins),
    **{op: (lambda n, a, ins, c, r: (Binary(n.op_type), ins)) for op in ("Add", "Sub", "Mul", "Div")},
    **{op: (lambda n, a, ins, c, r: (Unary(n.op_type), ins[:1])) for op in ("Neg", "Exp", "Log")},
}


def _fold(onnx, node, a, ins, consts):
    """Value of a node whose inputs are all constants (a weight's Identity/Transpose, Constant)."""
    vals = [consts[i] for i in ins]
    op = node.op_type
    if op == "Constant":
        if "value" not in a:
            raise OnnxImportError(f"node {node.name}: only Constant nodes with a 'value' tensor are supported")
        return onnx.numpy_helper.to_array(a["value"])
    if op == "Identity":
        return vals[0]
    if op == "Transpose":
        return np.transpose(vals[0], a.get("perm") or None)
    if op == "Reshape":
        shape = [vals[0].shape[i] if d == 0 else d for i, d in enumerate(vals[1].tolist())]
        return vals[0].reshape(shape)
    return None


def _shape_ranks(onnx, proto):
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # shape inference is a help, not a requirement
        inferred = proto
    g = inferred.graph
    return {v.name: len(v.type.tensor_type.shape.dim) for v in [*g.input, *g.value_info, *g.output]
            if v.type.tensor_type.HasField("shape")}


def load_model(f) -> Module:
    """Build an ember model from an ONNX file (e.g. one written by ``torch.onnx.export``).

    Args: f: a path, the file's bytes, or a binary file object.
    Returns: an ``nn.Sequential`` (a chain of nodes) or an ``OnnxGraph``, in training mode as
        a freshly built PyTorch module is; call ``.eval()`` for inference. Parameters keep the
        file's dtype (float32 from PyTorch). Module names come from PyTorch's node and weight
        names ("/features/0/Conv", "features.0.weight" -> "features_0").
    Raises:
        OnnxImportError: an empty, non-ONNX, truncated or invalid file; external weight files;
            ops ember cannot build, all listed at once with their node counts; attributes
            ember's layers lack (asymmetric pads, ceil_mode, ...), naming the node.
        FileNotFoundError: no such file.
    """
    onnx, proto, what = _read(f)
    g = proto.graph
    opset = max([o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] or [0])
    bad = OrderedDict()
    for n in g.node:
        key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
        if key not in _BUILDERS and key != "Constant":
            bad.setdefault(key, []).append(n.name or "?")
    if bad:
        listed = "; ".join(f"{op} ({len(v)} node{'s' * (len(v) > 1)}: {', '.join(v[:3])}{', ...' * (len(v) > 3)})"
                           for op, v in bad.items())
        raise OnnxImportError(f"{what}: ember cannot build {len(bad)} op type{'s' * (len(bad) > 1)} of this "
                              f"model: {listed}. Supported ops: {', '.join(sorted(IMPORTED_OPS))}")
    if opset < 13 and any(n.op_type in ("Softmax", "LogSoftmax") for n in g.node):
        raise OnnxImportError(f"{what}: Softmax/LogSoftmax before opset 13 flatten their input first; "
                              f"re-export with opset_version >= 13 (this file has opset {opset})")
    consts, origin = {}, {}
    for init in g.initializer:
        consts[init.name] = onnx.numpy_helper.to_array(init)
        origin[init.name] = init.name
    rank = _shape_ranks(onnx, proto)
    inputs = [v.name for v in g.input if v.name not in consts]
    steps, taken = [], set()
    for i, node in enumerate(g.node):
        a, ins = _attrs(onnx, node), list(node.input)
        live_outs = [o for o in node.output if o]
        if all(x in consts for x in ins if x):
            value = _fold(onnx, node, a, [x for x in ins if x], consts)
            if value is not None:
                consts[live_outs[0]] = value
                origin[live_outs[0]] = origin.get(ins[0], live_outs[0]) if ins else live_outs[0]
                continue
        used_extra = [o for o in live_outs[1:] if any(o in n.input for n in g.node) or o in [v.name for v in g.output]]
        if used_extra:
            raise OnnxImportError(f"node {node.name}: {node.op_type}'s extra output {used_extra[0]!r} is used; "
                                  "ember's layer has one output")
        try:
            module, dyn = _BUILDERS[node.op_type](node, a, ins, consts, rank)
        except KeyError as e:
            raise OnnxImportError(f"node {node.name}: {node.op_type} needs a constant input {e}") from None
        except OnnxImportError:
            raise
        except (ValueError, TypeError) as e:  # an ember layer refusing the node's sizes (groups, ...)
            raise OnnxImportError(f"node {node.name}: {node.op_type} does not fit an ember layer: {e}") from None
        steps.append([_module_name(node, origin, i, taken), module, [x for x in dyn if x], live_outs[0]])
    steps = _fuse_bias(steps, consts, [v.name for v in g.output])
    outputs = [v.name for v in g.output]
    used_consts = OrderedDict((x, consts[x]) for s in steps for x in s[2] if x in consts)
    if (len(inputs) == 1 and len(outputs) == 1 and not used_consts and steps and steps[-1][3] == outputs[0]
            and all(s[2] == [steps[k - 1][3] if k else inputs[0]] for k, s in enumerate(steps))
            and _used_once(steps)):
        return nn.Sequential(OrderedDict((s[0], s[1]) for s in steps))
    return OnnxGraph(inputs, outputs, steps, used_consts)


def _used_once(steps):
    seen = [x for s in steps for x in s[2]]
    return len(seen) == len(set(seen))


def _fuse_bias(steps, consts, outputs):
    """MatMul(x, W) then Add(·, b) with b a constant vector -> one Linear with a bias (how
    torch.onnx writes a bias-free-looking nn.Linear on 3-D input, and other exporters any one)."""
    out = []
    for s in steps:
        prev = out[-1] if out else None
        if (prev is not None and isinstance(s[1], Binary) and s[1].op == "Add" and isinstance(prev[1], nn.Linear)
                and prev[1].bias is None and prev[3] in s[2] and prev[3] not in outputs
                and sum(prev[3] in t[2] for t in steps) == 1):
            other = [x for x in s[2] if x != prev[3]]
            b = consts.get(other[0]) if len(other) == 1 else None
            if b is not None and b.size == prev[1].out_features and b.ndim <= 1:
                w = prev[1].weight._data
                prev[1] = _with(nn.Linear(w.shape[1], w.shape[0], dtype=w.dtype), weight=w,
                                bias=b.reshape(-1).astype(w.dtype))
                prev[3] = s[3]
                continue
        out.append(s)
    return out
