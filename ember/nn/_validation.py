"""Argument validation for ``ember.nn`` and ``ember.nn.functional``: ``ShapeError`` and the one
family of checks, each raising a message that names the function, the argument and the value.

Modules check their constructor arguments (``what`` omitted: "stride must be a positive integer
(or pair), got 0"); functions check their call (``what`` given: "conv2d: stride must be
positive, got (0, 0)"). Source of the wording: PyTorch's own errors where it has one.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor


class ShapeError(ValueError):
    """An input whose shape does not fit the layer or function; modules prefix their path."""


def _pair(v, name):
    pair = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(pair) != 2 or not all(isinstance(i, (int, np.integer)) for i in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return tuple(int(i) for i in pair)


def _check_4d(x, what):
    if not isinstance(x, Tensor):
        raise TypeError(f"{what}: expected a Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ShapeError(f"{what}: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")


def _check_float(x, what):
    if x.dtype.kind != "f":
        raise TypeError(f"{what}: expected a floating-point input, got dtype {x.dtype}; "
                        "convert it with .float()")


def _check_range(value, name, low, what=None):
    """An int or tuple of ints, each ≥ ``low`` (1: sizes, strides, dilations; 0: paddings).

    Raises: ValueError "<what>: <name> must be positive, got <value>" (a call's argument), or
        "<name> must be a positive integer (or pair), got <value>" without ``what`` (a module's
        constructor argument, also rejecting bools and non-integers); "non-negative" for low = 0.
    """
    vals = value if isinstance(value, tuple) else (value,)
    kind = "positive" if low else "non-negative"
    if what is not None:
        if min(vals) < low:
            raise ValueError(f"{what}: {name} must be {kind}, got {value}")
    elif not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= low for v in vals):
        raise ValueError(f"{name} must be a {kind} integer (or pair), got {value!r}")


def _single(v, name):
    """An int, or a 1-tuple of one (Conv1d's arguments)."""
    if isinstance(v, (tuple, list)) and len(v) == 1:
        v = v[0]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {v!r}")
    return int(v)


def _check_params(x, weight, bias, ndim, what):
    """weight rank, bias shape, and one float dtype for input and weight (no silent promotion)."""
    if weight.ndim != ndim:
        raise ShapeError(f"{what}: expected a {ndim}-D weight, got shape {tuple(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ShapeError(f"{what}: expected a bias of shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    _check_float(x, what)
    if x.dtype != weight.dtype:
        raise TypeError(f"{what}: input dtype {x.dtype} and weight dtype {weight.dtype} differ; convert the "
                        f"input (.float()/.double()) or the module (.to(dtype))")


_REDUCTIONS = ("mean", "sum", "none")


def _targets(target, n_classes, n, what, ignore_index=None):
    t = target._data if isinstance(target, Tensor) else np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{what}: class targets must be integers, got dtype {t.dtype}")
    if t.shape != (n,):
        raise ShapeError(f"{what}: expected targets of shape ({n},), got {t.shape}")
    # one comparison when every target is a class: seen as unsigned, a negative one is past C
    if t.size and not (t.dtype.isnative and (t.view(_UNSIGNED[t.itemsize]) < n_classes).all()):
        out = (t < 0) | (t >= n_classes)
        if ignore_index is not None:
            out &= t != ignore_index  # targets equal to ignore_index are skipped, not errors
        if out.any():
            bad = t[out][0]
            raise IndexError(f"{what}: target {bad} is out of bounds for {n_classes} classes (valid: 0..{n_classes - 1})")
    return t.astype(np.intp, copy=False)


_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _legacy_reduction(size_average, reduce, reduction):
    """torch's deprecated size_average/reduce pair -> reduction (either given overrides reduction)."""
    if size_average is None and reduce is None:
        _check_reduction(reduction)
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return "none" if not reduce else "mean" if size_average else "sum"


def _class_weight(weight, x, what):
    """weight (C,) as an ndarray of x's dtype (no gradient flows to it), or None."""
    if weight is None:
        return None
    w = weight._data if isinstance(weight, Tensor) else np.asarray(weight)
    C = x.shape[1] if x.ndim == 2 else x.shape[0]
    if w.shape != (C,):
        raise ShapeError(f"{what}: weight tensor should be defined either for all {C} classes or no classes "
                         f"but got weight tensor of shape: {list(w.shape)}")
    return w.astype(x.dtype, copy=False)


def _same_shape(a, b, what):
    b = b if isinstance(b, Tensor) else Tensor(np.asarray(b, dtype=a.dtype))
    if a.shape != b.shape:
        raise ShapeError(f"{what}: input shape {tuple(a.shape)} and target shape {tuple(b.shape)} differ")
    return b


def _pm_one(input, target, what):
    y = _same_shape(input, target, what)
    if y._data.size and not np.isin(y._data, (-1, 1)).all():
        raise ValueError(f"{what}: targets must be -1 or 1, got {float(y._data[~np.isin(y._data, (-1, 1))][0])}")
    if y.dtype != input.dtype:  # labels: cast, so float32 scores give a float32 loss
        y = Tensor(y._data.astype(input.dtype))
    return y
