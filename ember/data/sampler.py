"""``DistributedSampler``: each rank's share of a data set's indices (PyTorch's, same rules).

With W replicas and a data set of n samples every rank gets ``num_samples`` indices:

    drop_last=False:  num_samples = ceil(n / W); the index list is padded by repeating its start
                      until it has W·num_samples entries, so some samples appear twice per epoch
    drop_last=True:   num_samples = ceil((n - W) / W) when n % W != 0 (else n / W); the tail
                      is dropped so every rank gets the same count
    rank r takes      indices[r :: W]                       (a stride, not a contiguous block)

Without shuffling the sequence equals torch.utils.data.DistributedSampler's exactly. With
``shuffle=True`` the epoch's permutation is NumPy's ``default_rng(seed + epoch).permutation(n)``,
where PyTorch uses ``torch.randperm`` with a generator seeded ``seed + epoch``: the same rules and
properties (every rank uses the same permutation, so the shards partition it; ``set_epoch``
reshuffles), but not PyTorch's numbers for a given seed (docs/pytorch-compat.md).
"""
from __future__ import annotations

import math

import numpy as np


class DistributedSampler:
    """Iterate over this rank's indices of ``dataset``, a different order every epoch.

    Args:
        dataset: anything with ``len()``.
        num_replicas: number of ranks (default: ``ember.distributed.get_world_size()``).
        rank: this rank (default: ``ember.distributed.get_rank()``).
        shuffle: permute the indices each epoch (seeded by ``seed + epoch``). Default True.
        seed: the base seed; must be the same on every rank. Default 0.
        drop_last: drop the tail instead of padding so the ranks get equal counts. Default False.
    Raises:
        ValueError: num_replicas/rank not given and no process group initialised (PyTorch's
            message), num_replicas < 1, or rank outside [0, num_replicas - 1] (PyTorch's message).
    Example:
        >>> sampler = DistributedSampler(train_set, num_replicas=2, rank=1, shuffle=False)
        >>> list(sampler)[:3]        # [1, 3, 5]
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if num_replicas is None or rank is None:
            from .. import distributed as dist
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
            raise ValueError(f"num_replicas must be a positive integer, got {num_replicas!r}")
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, seed, drop_last, 0
        n = len(dataset)
        if drop_last and n % self.num_replicas:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            indices = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            indices = np.arange(n)
        if self.drop_last:
            indices = indices[:self.total_size]
        elif self.total_size > n:   # pad by repeating from the start (several times if n is tiny)
            indices = np.resize(indices, self.total_size)
        return iter(indices[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s permutation (call it at the start of every epoch, on every rank;
        otherwise each epoch repeats the same order, as in PyTorch)."""
        self.epoch = epoch


class Sampler:
    """Base of the index samplers a DataLoader takes as ``sampler=`` (torch.utils.data.Sampler):
    iterate to get indices; ``len`` how many."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):  # pragma: no cover - abstract
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) − 1 (torch.utils.data.SequentialSampler)."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


def _rng(generator):
    from ..random import default_generator
    return default_generator() if generator is None else generator


class RandomSampler(Sampler):
    """A random permutation of the indices, or ``num_samples`` draws with replacement
    (torch.utils.data.RandomSampler); from ``generator`` or ember's generator, fresh each epoch.
    Raises: ValueError for a non-positive num_samples."""

    def __init__(self, data_source, replacement: bool = False, num_samples=None, generator=None):
        self.data_source, self.replacement, self._num_samples, self.generator = data_source, replacement, num_samples, generator
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n, rng = len(self.data_source), _rng(self.generator)
        if self.replacement:
            return iter(rng.integers(0, n, self.num_samples).tolist())
        reps = [rng.permutation(n) for _ in range(-(-self.num_samples // n))] if n else [np.arange(0)]
        return iter(np.concatenate(reps)[:self.num_samples].tolist())

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order, drawn anew each epoch (torch.utils.data.SubsetRandomSampler)."""

    def __init__(self, indices, generator=None):
        self.indices, self.generator = list(indices), generator

    def __iter__(self):
        return iter([self.indices[i] for i in _rng(self.generator).permutation(len(self.indices))])

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn with probability ∝ weights (with replacement by default),
    torch.utils.data.WeightedRandomSampler: the usual cure for an imbalanced data set.
    Raises: ValueError for a non-positive num_samples, non-1-D weights, or replacement=False
    with num_samples > len(weights)."""

    def __init__(self, weights, num_samples: int, replacement: bool = True, generator=None):
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")
        w = np.asarray(getattr(weights, "_data", weights), dtype=np.float64)
        if w.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape {tuple(w.shape)}")
        if not replacement and num_samples > len(w):
            raise ValueError("cannot draw more samples than weights without replacement")
        self.weights, self.num_samples, self.replacement, self.generator = w, num_samples, replacement, generator

    def __iter__(self):
        p = self.weights / self.weights.sum()
        return iter(_rng(self.generator).choice(len(p), self.num_samples, replace=self.replacement, p=p).tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of ``batch_size`` indices from ``sampler`` (the last shorter unless ``drop_last``),
    torch.utils.data.BatchSampler; a DataLoader's ``batch_sampler=``."""

    def __init__(self, sampler, batch_size: int, drop_last: bool):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self):
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
