"""Helpers for a training loop started by an MPI launcher (``mpiexec -n W ember train ...``).

The design: every rank builds the same DataLoader with the same seed, so every rank sees the
same sequence of GLOBAL batches a single process would see (same shuffling, same augmentation);
each rank then keeps its shard of each global batch (``shard``) and trains on it under
``DistributedDataParallel``. With equal shards the averaged gradient is exactly the gradient of
the global batch; ``shard_weight`` corrects the loss when a last, short batch splits unevenly.
Only rank 0 prints and writes files (``is_main_process``). ``ember train`` goes one step further
and fetches only the shard's rows of each global batch of indices (``ember.training.parallel``);
a data set that does not fit in memory should use ``ember.data.DistributedSampler`` instead.
"""
from __future__ import annotations

import os

from . import group as _g


def is_main_process() -> bool:
    """True on rank 0, and in a plain one-process run (no process group): the rank that prints
    progress and writes metrics, checkpoints and resume files."""
    return not _g.is_initialized() or _g.get_rank() == 0


def _rank_world(rank, world_size):
    if rank is None or world_size is None:
        on = _g.is_initialized()
        rank = (_g.get_rank() if on else 0) if rank is None else rank
        world_size = (_g.get_world_size() if on else 1) if world_size is None else world_size
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    if not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size - 1}], got {rank!r}")
    return rank, world_size


def per_rank_batch_size(global_batch_size: int, world_size: int | None = None) -> int:
    """The batch each rank trains on: ``global_batch_size / world_size`` (64 on 2 ranks -> 32).

    Raises:
        ValueError: the global batch does not split evenly over the ranks (then 2×32 would not be
            the same optimisation as 1×64), or is smaller than the number of ranks.
    """
    _, w = _rank_world(0, world_size)
    if global_batch_size < w or global_batch_size % w:
        raise ValueError(f"the global batch size {global_batch_size} does not split evenly over {w} "
                         f"ranks; use a multiple of {w}")
    return global_batch_size // w


def shard_bounds(n: int, rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(start, stop) of this rank's contiguous part of a global batch of ``n`` samples.

    Rank r gets rows [r·n/W, (r+1)·n/W) with the remainder spread over the first ranks
    (numpy.array_split's rule): 64 on 2 ranks -> (0, 32) and (32, 64); 10 on 3 -> 4, 3, 3.
    Raises ValueError when n < world_size (a rank would get an empty shard).
    """
    rank, w = _rank_world(rank, world_size)
    if n < w:
        raise ValueError(f"a batch of {n} samples cannot be split over {w} ranks (every rank needs one)")
    q, rem = divmod(n, w)
    start = rank * q + min(rank, rem)
    return start, start + q + (rank < rem)


def shard(batch, rank: int | None = None, world_size: int | None = None):
    """This rank's shard of a global batch: a Tensor/ndarray, or a tuple/list of them (x, y), each
    sliced on its first axis with ``shard_bounds``. With one rank it returns the batch itself."""
    items = batch if isinstance(batch, (tuple, list)) else (batch,)
    start, stop = shard_bounds(len(items[0]), rank, world_size)
    if stop - start == len(items[0]):
        return batch
    out = [b[start:stop] for b in items]
    return type(batch)(out) if isinstance(batch, (tuple, list)) else out[0]


def shard_weight(n: int, rank: int | None = None, world_size: int | None = None) -> float:
    """Factor for this rank's mean loss so that DDP's gradient average equals the global mean.

    DDP averages the ranks' gradients with equal weights, which is the global batch's mean only
    when the shards are equal. Multiplying rank r's mean loss by W·n_r/n fixes an uneven last
    batch: 1/W Σ_r (W n_r/n) g_r = 1/n Σ_i g_i. It is 1.0 when n splits evenly.
    """
    rank, w = _rank_world(rank, world_size)
    start, stop = shard_bounds(n, rank, w)
    return w * (stop - start) / n


def local_world_size() -> int:
    """How many ranks of the group run on this host (1 without a process group)."""
    if not _g.is_initialized():
        return 1
    peers = _g._group.peers
    return sum(host == peers[_g.get_rank()][0] for host, _ in peers)


def default_threads(cores: int | None = None) -> int:
    """Per-rank thread count default: this host's cores divided by the ranks on this host (at
    least 1), so W ranks on one machine do not oversubscribe it (``--threads`` overrides)."""
    cores = cores if cores is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                             else os.cpu_count() or 1)
    return max(1, cores // local_world_size())
