"""Creation functions with PyTorch's signatures: ``empty``, ``full``, ``eye``, ``linspace``,
``logspace``, ``randint``, ``randperm`` and the ``*_like`` family.

Every function takes PyTorch's keywords ``dtype=``, ``device=`` (only the CPU: see
``_common.check_device``) and ``requires_grad=`` (floating dtypes only, RuntimeError otherwise).
Floating results default to float32 (torch's default dtype). Random ones draw from ember's
generator (``ember.manual_seed``); the stream differs from PyTorch's (docs/pytorch-compat.md).
"""
from __future__ import annotations

import numbers

import numpy as np

from ..random import default_generator
from ..tensor import Tensor, _sizes
from ._common import check_device, finish, float_dtype


def _shape(size) -> tuple:
    shape = tuple(_sizes(size))
    if not all(isinstance(n, (int, np.integer)) for n in shape):
        raise TypeError(f"size must be a tuple of ints, got {shape!r}")
    if any(n < 0 for n in shape):
        raise RuntimeError(f"Trying to create tensor with negative dimension: {shape}")
    return tuple(int(n) for n in shape)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of shape ``size`` (torch.empty). ember fills it with zeros (torch leaves it
    uninitialised, so no program may rely on its values). Raises RuntimeError for a negative size."""
    check_device(device)
    return finish(np.zeros(_shape(size), float_dtype(dtype)), requires_grad)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of shape ``size`` filled with ``fill_value`` (torch.full). The dtype follows the
    value as in torch: bool -> bool, int -> int64, float -> float32, unless ``dtype`` is given."""
    check_device(device)
    if dtype is None:
        dtype = (np.bool_ if isinstance(fill_value, (bool, np.bool_)) else
                 np.int64 if isinstance(fill_value, numbers.Integral) else np.float32)
    return finish(np.full(_shape(size), fill_value, dtype=np.dtype(dtype)), requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """The (n, m) identity matrix (m = n by default), float32 unless ``dtype`` (torch.eye).
    Raises RuntimeError for a negative n or m."""
    check_device(device)
    m = n if m is None else m
    if n < 0 or m < 0:
        raise RuntimeError(f"eye: n and m must be non-negative, got n={n}, m={m}")
    return finish(np.eye(n, m, dtype=float_dtype(dtype)), requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """``steps`` evenly spaced values from start to end inclusive, float32 unless ``dtype``
    (torch.linspace; ``steps`` is required, as in torch ≥ 1.11). Shape (steps,).
    Raises RuntimeError for negative steps."""
    check_device(device)
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise RuntimeError(f"linspace: number of steps must be a non-negative int, got {steps!r}")
    dtype = float_dtype(dtype)
    values = np.linspace(float(start), float(end), int(steps))
    if dtype.kind in "iu":          # torch computes in the integer dtype: truncate toward zero
        values = np.trunc(values)
    return finish(values.astype(dtype), requires_grad)


def logspace(start, end, steps, base=10.0, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """base ** linspace(start, end, steps), float32 unless ``dtype`` (torch.logspace). Shape (steps,)."""
    check_device(device)
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise RuntimeError(f"logspace: number of steps must be a non-negative int, got {steps!r}")
    values = np.power(float(base), np.linspace(float(start), float(end), int(steps)))
    return finish(values.astype(float_dtype(dtype)), requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Integers uniform in [low, high) of shape ``size``, int64 unless ``dtype`` (torch.randint:
    ``randint(high, size)`` or ``randint(low, high, size)``). Raises TypeError without a size,
    RuntimeError when low >= high."""
    check_device(device)
    if size is None:                                   # randint(high, size)
        if high is None:
            raise TypeError("randint() missing required argument 'size'")
        low, high, size = 0, low, high
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    gen = generator if generator is not None else default_generator()
    values = gen.integers(low, high, size=_shape(size))
    return finish(values.astype(np.dtype(dtype or np.int64)), requires_grad)


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A random permutation of 0 .. n-1, int64 unless ``dtype`` (torch.randperm). Shape (n,).
    Raises RuntimeError for negative n."""
    check_device(device)
    if n < 0:
        raise RuntimeError(f"n must be non-negative, got {n}")
    gen = generator if generator is not None else default_generator()
    return finish(gen.permutation(int(n)).astype(np.dtype(dtype or np.int64)), requires_grad)


def _like(input, dtype):
    if not isinstance(input, Tensor):
        raise TypeError(f"argument 'input' must be Tensor, not {type(input).__name__}")
    return input.shape, np.dtype(input.dtype if dtype is None else dtype)


def zeros_like(input, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Zeros with input's shape and dtype (or ``dtype``), as torch.zeros_like."""
    check_device(device)
    shape, dtype = _like(input, dtype)
    return finish(np.zeros(shape, dtype), requires_grad)


def ones_like(input, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Ones with input's shape and dtype (or ``dtype``), as torch.ones_like."""
    check_device(device)
    shape, dtype = _like(input, dtype)
    return finish(np.ones(shape, dtype), requires_grad)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """``fill_value`` with input's shape and dtype (or ``dtype``), as torch.full_like."""
    check_device(device)
    shape, dtype = _like(input, dtype)
    return finish(np.full(shape, fill_value, dtype), requires_grad)


def empty_like(input, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor with input's shape and dtype (torch.empty_like; ember fills it with zeros)."""
    return zeros_like(input, dtype=dtype, device=device, requires_grad=requires_grad)


def _random_like(input, dtype, draw, what):
    shape, dtype = _like(input, dtype)
    if dtype.kind != "f":
        raise RuntimeError(f'"{what}" not implemented for \'{dtype}\' (a floating dtype is required)')
    return draw(default_generator(), shape).astype(dtype)


def rand_like(input, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform [0, 1) samples with input's shape and dtype (torch.rand_like). Raises
    RuntimeError for an integer or bool dtype."""
    check_device(device)
    return finish(_random_like(input, dtype, lambda g, s: g.random(s), "check_uniform_bounds"), requires_grad)


def randn_like(input, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard-normal samples with input's shape and dtype (torch.randn_like). Raises
    RuntimeError for an integer or bool dtype."""
    check_device(device)
    return finish(_random_like(input, dtype, lambda g, s: g.standard_normal(s), "normal_kernel_cpu"), requires_grad)


def randint_like(input, low=0, high=None, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Integers uniform in [low, high) with input's shape and dtype (torch.randint_like:
    ``randint_like(x, high)`` or ``randint_like(x, low, high)``). Raises RuntimeError when low >= high."""
    if high is None:
        low, high = 0, low
    dt = np.dtype(dtype) if dtype is not None else np.asarray(getattr(input, "_data", input)).dtype
    return randint(low, high, tuple(input.shape), dtype=dt, device=device, requires_grad=requires_grad)


__all__ = ["empty", "full", "eye", "linspace", "logspace", "randint", "randperm", "zeros_like", "ones_like",
           "full_like", "empty_like", "rand_like", "randn_like", "randint_like"]
