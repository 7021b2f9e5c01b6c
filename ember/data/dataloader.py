"""``DataLoader``: batches of ember Tensors from a map-style dataset, as PyTorch's."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ember.data.dataset import fetch_batch
from ember.random import default_generator
from ember.tensor import Tensor


def _to_tensor(x) -> Tensor:
    a = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    if a.dtype.kind in "biu":
        a = a.astype(np.int64, copy=False)
    elif a.dtype != np.float64:
        a = a.astype(np.float32, copy=False)
    return Tensor(a)


def default_collate(batch):
    """Turn a batch of ndarrays into ember Tensors.

    Args:
        batch: a tuple/list of ndarrays (one per field, first dimension B) or one ndarray.
    Returns:
        A tuple of Tensors (or one Tensor): bool and integer fields become int64, float64
        stays float64, every other dtype (float16, float32, ...) becomes float32.
    """
    if isinstance(batch, (tuple, list)):
        return tuple(_to_tensor(x) for x in batch)
    return _to_tensor(batch)


class DataLoader:
    """Iterate over a dataset in batches, as ``torch.utils.data.DataLoader`` (single process).

    Args:
        dataset: a map-style dataset (``__getitem__``, ``__len__``, optionally
            ``__getitems__``, see ``ember.data.Dataset``).
        batch_size: positive int, samples per batch.
        shuffle: draw a fresh permutation at the start of every epoch (every ``iter()``).
        drop_last: drop the last batch if it has fewer than ``batch_size`` samples.
        generator: ``np.random.Generator`` for shuffling; default
            ``ember.random.default_generator()`` looked up at each ``iter()``, so
            ``ember.manual_seed(s)`` makes the order reproducible.
        collate_fn: if given, called on the list of ``dataset[i]`` samples of a batch and its
            result is yielded as is (no ``__getitems__`` fast path, no Tensor conversion).
    Raises:
        ValueError: ``batch_size`` is not a positive int.

    Yields (default collate): for a dataset of ``(image, label)`` samples, a tuple
    ``(x, y)`` of Tensors, e.g. FashionMNIST gives x float32 (B, 1, 28, 28) and y int64 (B,);
    B is ``batch_size`` except maybe for the last batch. Batches come from one
    ``dataset.__getitems__(indices)`` call (int64 ndarray of indices) when the dataset has
    it, else from ``np.stack`` of the per-sample fields; see ``default_collate`` for dtypes.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 generator: np.random.Generator | None = None, collate_fn: Callable | None = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        self.dataset, self.batch_size, self.shuffle = dataset, int(batch_size), bool(shuffle)
        self.drop_last, self.generator, self.collate_fn = bool(drop_last), generator, collate_fn

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            order = (default_generator() if self.generator is None else self.generator).permutation(n)
        else:
            order = np.arange(n)
        return self._batches(order)

    def _batches(self, order: np.ndarray):
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            idx = order[start:start + self.batch_size]
            if self.collate_fn is not None:
                yield self.collate_fn([self.dataset[int(i)] for i in idx])
            else:
                yield default_collate(fetch_batch(self.dataset, idx))
