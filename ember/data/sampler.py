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
