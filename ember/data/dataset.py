"""Datasets: the map-style ``Dataset`` protocol, ``TensorDataset``, ``Subset``, ``ConcatDataset``,
``StackDataset``, ``random_split``, and the iterable-style ``IterableDataset`` and ``ChainDataset``."""
from __future__ import annotations

import bisect

import math
from typing import Sequence

import numpy as np

from ember.random import default_generator
from ember.tensor import Tensor


class Dataset:
    """Base class of map-style datasets, as ``torch.utils.data.Dataset``.

    Subclasses define ``__getitem__(i)`` returning one sample (a Tensor, an ndarray, a number,
    or a tuple/list/dict of those) and ``__len__()``. They may also define ``__getitems__(indices)``:
    given an int64 ndarray of indices it returns the whole batch already collated, a tuple
    of ndarrays whose first dimension is ``len(indices)``; ``DataLoader`` then fetches each
    batch with that one call instead of one ``__getitem__`` per sample.
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


def _as_array(x) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


class TensorDataset(Dataset):
    """Samples are rows of several arrays of equal length, e.g. ``(images, labels)``.

    Args:
        *tensors: ember Tensors or array-likes, all of shape (N, ...); stored without copying.
    Raises:
        ValueError: no arrays given, or their first dimensions differ.

    ``ds[i]`` is a tuple of Tensors ``(t[i] for t in tensors)`` (their dtypes kept, no grad),
    as torch's; ``ds.__getitems__(idx)`` is ember's batched fast path, the tuple of ndarrays
    ``(t[idx] for t in tensors)``, shapes (len(idx), ...), used by ``DataLoader``.
    ``.tensors`` keeps the objects passed in.
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        self.tensors = tensors
        self._arrays = [_as_array(t) for t in tensors]
        sizes = [a.shape[0] if a.ndim else None for a in self._arrays]
        if None in sizes or len(set(sizes)) != 1:
            shapes = ", ".join(str(a.shape) for a in self._arrays)
            raise ValueError(f"Size mismatch between tensors: TensorDataset needs the same first "
                             f"dimension in every tensor, got shapes {shapes}")

    def __getitem__(self, index):
        return tuple(Tensor(np.asarray(a[index])) for a in self._arrays)

    def __getitems__(self, indices):
        return tuple(a[indices] for a in self._arrays)

    def __len__(self) -> int:
        return self._arrays[0].shape[0]


def fetch_batch(dataset, indices) -> tuple | np.ndarray | list:
    """Fetch ``dataset``'s samples ``indices`` as one collated batch of ndarrays.

    Uses ``dataset.__getitems__`` when it exists, else stacks ``dataset[i]`` per field.

    Args:
        dataset: any map-style dataset.
        indices: 1-D int array-like.
    Returns:
        What ``__getitems__`` returns, or ``collate_arrays`` of the samples.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if hasattr(dataset, "__getitems__"):
        return dataset.__getitems__(indices)
    return collate_arrays([dataset[int(i)] for i in indices])


def collate_arrays(samples: list):
    """Stack a list of samples field by field with ``np.stack``.

    Args:
        samples: non-empty list of samples, each a tuple/list of the same length or a single
            array/number/Tensor.
    Returns:
        A tuple of ndarrays of shape (len(samples), ...) for tuple samples, else one ndarray.
    """
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return tuple(np.stack([_as_array(s[k]) for s in samples]) for k in range(len(first)))
    return np.stack([_as_array(s) for s in samples])


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    Args:
        dataset: a map-style dataset.
        indices: sequence of ints; kept as ``.indices``, an int64 ndarray.
    """

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def __getitems__(self, indices):
        return fetch_batch(self.dataset, self.indices[np.asarray(indices, dtype=np.int64)])

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several map-style datasets one after the other (torch.utils.data.ConcatDataset): index i
    falls in the first dataset whose cumulative length exceeds it; negative indices count from
    the end. Attributes: ``datasets``, ``cumulative_sizes``.
    Raises: ValueError for no datasets; IndexError (from the part) out of range."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        if index < 0:
            if -index > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            index += len(self)
        part = bisect.bisect_right(self.cumulative_sizes, index)
        return self.datasets[part][index - (self.cumulative_sizes[part - 1] if part else 0)]


class StackDataset(Dataset):
    """Samples of several equally long datasets side by side (torch.utils.data.StackDataset):
    ``StackDataset(a, b)[i] == (a[i], b[i])``, ``StackDataset(x=a, y=b)[i] == {"x": a[i], "y": b[i]}``.
    Raises: ValueError for both positional and keyword datasets, none, or different lengths
    (PyTorch's messages)."""

    def __init__(self, *args, **kwargs):
        if args and kwargs:
            raise ValueError("Supported either ``tuple``- (via ``args``) or``dict``- (via ``kwargs``) like input/output, "
                             "but both types are given.")
        parts = list(args) or list(kwargs.values())
        if not parts:
            raise ValueError("At least one dataset should be passed")
        self._length = len(parts[0])
        if any(len(d) != self._length for d in parts):
            raise ValueError("Size mismatch between datasets")
        self.datasets = tuple(args) if args else dict(kwargs)

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __len__(self) -> int:
        return self._length


class IterableDataset(Dataset):
    """Base class of iterable-style datasets (torch.utils.data.IterableDataset): subclasses define
    ``__iter__`` yielding samples (a stream: files, generators); ``DataLoader`` batches them in
    order (no sampler, no shuffle). ``a + b`` chains two of them (``ChainDataset``). With
    ``num_workers`` > 0 each worker iterates its own copy, as PyTorch's: split the stream with
    ``get_worker_info()`` or every sample comes once per worker."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def __getitem__(self, index):
        raise TypeError(f"{type(self).__name__} is an IterableDataset: iterate over it, it has no __getitem__")

    def __add__(self, other):
        return ChainDataset([self, other])


class ChainDataset(IterableDataset):
    """Several iterable datasets one after the other (torch.utils.data.ChainDataset); its len is
    the sum of theirs (TypeError if one has none).
    Raises: AssertionError (PyTorch's) when a part is not an IterableDataset, on iteration."""

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise AssertionError("ChainDataset only supports IterableDataset")
            yield from d

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)


def random_split(dataset, lengths: Sequence[float], generator: np.random.Generator | None = None):
    """Split ``dataset`` at random into non-overlapping ``Subset``s, as ``torch.utils.data.random_split``.

    Args:
        dataset: a map-style dataset of length N.
        lengths: ints summing to N, or fractions summing to 1 (each split gets
            ``floor(N * f)`` samples and the remainder is dealt one by one, round-robin).
        generator: ``np.random.Generator`` for the permutation; default
            ``ember.random.default_generator()``.
    Returns:
        A list of ``Subset``, one per length.
    Raises:
        ValueError: a fraction outside [0, 1], or lengths not summing to N.
    """
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        if any(x < 0 or x > 1 for x in lengths):
            raise ValueError(f"fractions in random_split must lie in [0, 1], got {list(lengths)}")
        sizes = [math.floor(n * f) for f in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
    else:
        sizes = [int(x) for x in lengths]
    if any(s < 0 for s in sizes) or sum(sizes) != n:
        raise ValueError(f"Sum of input lengths {sizes} does not equal the length of the input dataset ({n})!")
    perm = (default_generator() if generator is None else generator).permutation(n)
    bounds = np.cumsum([0] + sizes)
    return [Subset(dataset, perm[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
