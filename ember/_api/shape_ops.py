"""PyTorch's shape and selection helpers that are compositions of ember's differentiable ops
(permute, reshape, indexing, gather, clamp), so they need no backward of their own.

    movedim / moveaxis(x, source, destination)   a permute
    swapaxes / swapdims(x, a, b)                 transpose
    narrow(x, dim, start, length)                x[..., start:start + length, ...] (a view)
    select(x, dim, i)                            x[..., i, ...] (a view, dim removed)
    unflatten(x, dim, sizes)                     a reshape of one dim into sizes
    ravel(x)                                     reshape(-1)
    take_along_dim(x, indices, dim)              gather with broadcast indices
    diff(x, n=1, dim=-1, prepend, append)        x[1:] − x[:-1], n times
    clamp_min / clamp_max(x, v)                  clamp(min=v) / clamp(max=v)
    masked_fill(x, mask, value)                  the function form of Tensor.masked_fill
and, outside the graph (integer or bool results, as PyTorch's): argwhere, count_nonzero, isin,
tril_indices, triu_indices. Source: PyTorch 2.13's documentation of each.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor


def _d(x, dim):
    n = max(x.ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n


def movedim(self, source, destination):
    """Move dims ``source`` to positions ``destination`` (ints or sequences), the others keeping their order."""
    src = [_d(self, s) for s in (source if isinstance(source, (tuple, list)) else [source])]
    dst = [_d(self, s) for s in (destination if isinstance(destination, (tuple, list)) else [destination])]
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(src)} dims) should contain "
                           f"the same number of dims as destination ({list(dst)} dims)")
    perm = [None] * self.ndim
    for s, d in zip(src, dst):
        perm[d] = s
    rest = iter(i for i in range(self.ndim) if i not in src)
    return self.permute(*[p if p is not None else next(rest) for p in perm])


def swapaxes(self, axis0, axis1):
    """transpose(axis0, axis1) (torch.swapaxes / swapdims)."""
    return self.transpose(axis0, axis1)


def narrow(self, dim, start, length):
    """The view self[..., start:start + length, ...] along ``dim`` (start may be negative)."""
    d = _d(self, dim)
    n = self.shape[d]
    start = int(getattr(start, "item", lambda: start)())
    start = start + n if start < 0 else start
    if not (0 <= start <= n and 0 <= length and start + length <= n):
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    return self[(slice(None),) * d + (slice(start, start + length),)]


def select(self, dim, index):
    """The view self[..., index, ...] along ``dim``, that dim removed."""
    d = _d(self, dim)
    return self[(slice(None),) * d + (int(index),)]


def unflatten(self, dim, sizes):
    """Dim ``dim`` reshaped into ``sizes`` (one may be -1)."""
    d = _d(self, dim)
    return self.reshape(*self.shape[:d], *sizes, *self.shape[d + 1:])


def ravel(self):
    """reshape(-1): the entries in row-major order."""
    return self.reshape(-1)


def take_along_dim(self, indices, dim=None):
    """gather along ``dim`` with ``indices`` broadcast against self (dim None: over the flattened tensor)."""
    idx = np.asarray(getattr(indices, "_data", indices))
    if dim is None:
        return self.reshape(-1).gather(0, Tensor(idx.reshape(-1)))
    d = _d(self, dim)
    shape = [max(a, b) if i != d else b for i, (a, b) in enumerate(zip(self.shape, idx.shape))]
    src = self.expand(*[s if i != d else self.shape[d] for i, s in enumerate(shape)])
    return src.gather(d, Tensor(np.broadcast_to(idx, shape).copy()))


def diff(self, n=1, dim=-1, prepend=None, append=None):
    """The n-th forward difference along ``dim``: out[i] = x[i + 1] − x[i], n times; prepend /
    append are concatenated first. Differentiable."""
    from .. import cat
    d = _d(self, dim)
    x = cat([t for t in (prepend, self, append) if t is not None], d) if prepend is not None or append is not None \
        else self
    for _ in range(n):
        lo = (slice(None),) * d + (slice(None, -1),)
        hi = (slice(None),) * d + (slice(1, None),)
        x = x[hi] - x[lo]
    return x


def clamp_min(self, min):
    """clamp(min=min)."""
    return self.clamp(min=min)


def clamp_max(self, max):
    """clamp(max=max)."""
    return self.clamp(max=max)


def argwhere(self):
    """(K, ndim) int64 coordinates of the non-zero entries (torch.argwhere)."""
    return Tensor(np.argwhere(self._data).astype(np.int64))


def count_nonzero(self, dim=None):
    """The number of non-zero entries (over ``dim``: an int or a tuple), int64."""
    axis = None if dim is None else (tuple(_d(self, a) for a in dim) if isinstance(dim, (tuple, list)) else _d(self, dim))
    return Tensor(np.asarray(np.count_nonzero(self._data, axis=axis), dtype=np.int64))


def isin(elements, test_elements, *, assume_unique=False, invert=False):
    """Whether each element is among ``test_elements`` (a tensor or a number): a bool tensor."""
    a = np.asarray(getattr(elements, "_data", elements))
    b = np.asarray(getattr(test_elements, "_data", test_elements))
    return Tensor(np.isin(a, b, assume_unique=assume_unique, invert=invert))


def _triangle_indices(fn):
    def indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
        r, c = fn(row, offset, col)
        return Tensor(np.stack([r, c]).astype(np.int64))
    return indices


tril_indices = _triangle_indices(np.tril_indices)
tril_indices.__name__, tril_indices.__doc__ = "tril_indices", "(2, K) int64 row and column indices of the lower triangle."
triu_indices = _triangle_indices(np.triu_indices)
triu_indices.__name__, triu_indices.__doc__ = "triu_indices", "(2, K) int64 row and column indices of the upper triangle."


def masked_fill(input, mask, value):
    """torch.masked_fill: input with ``value`` where ``mask`` is True (Tensor.masked_fill)."""
    return input.masked_fill(mask, value)


METHODS = dict(movedim=movedim, moveaxis=movedim, swapaxes=swapaxes, swapdims=swapaxes, narrow=narrow,
               select=select, unflatten=unflatten, ravel=ravel, take_along_dim=take_along_dim, diff=diff,
               clamp_min=clamp_min, clamp_max=clamp_max, argwhere=argwhere, count_nonzero=count_nonzero)
FUNCTIONS = dict(METHODS, isin=isin, tril_indices=tril_indices, triu_indices=triu_indices, masked_fill=masked_fill)


def install(ember) -> None:
    """Attach METHODS to Tensor and FUNCTIONS to ``ember`` where neither has the name yet."""
    for name, fn in METHODS.items():
        if name not in vars(Tensor):
            setattr(Tensor, name, fn)
    for name, fn in FUNCTIONS.items():
        if not hasattr(ember, name):
            setattr(ember, name, fn)
