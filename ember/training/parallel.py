"""``ember train`` under an MPI launcher: ``mpiexec -n W ember train ...`` trains data-parallel.

The design (docs/distributed.md): every rank builds the same data loader with the same seed, so
every rank draws the same GLOBAL batches (same order, same augmentation) as one process would;
each rank keeps its contiguous shard of every global batch (``ember.distributed.launch.shard``),
runs forward and backward on it through ``DistributedDataParallel``, whose allreduce leaves every
rank with the gradient of the whole global batch, and all ranks take the same optimizer step.
Without BatchNorm, W ranks therefore train the weights one process would (up to float32
rounding of the average); BatchNorm normalises each shard with its own statistics.

Only rank 0 prints and writes the run folder; the training metrics are summed over the ranks and
the test set is split between them. Every rank reads the same ``resume.safetensors`` (RNG, data
position), so ``--resume`` continues a run with the same number of ranks; another count is refused.
Started without a launcher, ``Ranks`` is one rank and every method is the identity, so the
single-process run is exactly what it was before.
"""
from __future__ import annotations

import dataclasses
import sys

import numpy as np

from .. import distributed as dist
from ..distributed import group as _group, launch
from ..distributed.group import _array, _launched_ranks


class Ranks:
    """The processes of one ``ember train`` run: this rank, the world size, and the collective
    steps the loop needs. Use as a context manager around the whole run.

    Args:
        cfg: the run's ``TrainConfig`` (``timeout``: seconds any collective waits for the others).
    Attributes:
        rank, world: this process's rank and the number of ranks (0 and 1 without a launcher).
        main: True on rank 0, the rank that prints and writes files.
    Raises (at ``__enter__``): RuntimeError naming the differing ranks when the ranks were started
        with different flags (``check_config``) or models (DistributedDataParallel).
    """

    def __init__(self, cfg):
        self.cfg, self.started = cfg, False
        if not dist.is_initialized() and _launched_ranks() > 1:
            dist.init_process_group("mpi", timeout=cfg.timeout)
            self.started = True
        on = dist.is_initialized()
        self.rank = dist.get_rank() if on else 0
        self.world = dist.get_world_size() if on else 1
        self.main = self.rank == 0

    def __enter__(self):
        if self.world > 1:
            try:
                if self.cfg.threads is None:   # cores ÷ ranks on this host, so W ranks do not oversubscribe it
                    from ..kernels.threads import set_num_threads
                    set_num_threads(launch.default_threads())
                launch.per_rank_batch_size(self.cfg.batch_size, self.world)   # ValueError if it does not split
                dist.check_same(dataclasses.asdict(self.cfg), what="config (ember train's flags)")
            except Exception as e:
                self._abort(e)
        return self

    def __exit__(self, kind, error, tb):
        if self.world > 1 and error is not None and not isinstance(error, KeyboardInterrupt):
            self._abort(error)
        if self.started:
            dist.destroy_process_group()
        return False

    def _abort(self, error) -> None:
        """Stop every rank now (MPI_Abort), saying on stderr, in one line, what went wrong here: the
        other ranks would otherwise wait in their next collective until --timeout."""
        print(f"ember train: error on rank {self.rank} of {self.world}: {error}", file=sys.stderr, flush=True)
        group = _group._group
        group.broken = True
        group.comm.Abort(1)

    def wrap(self, model):
        """``DistributedDataParallel(model)`` on several ranks (rank 0's weights broadcast to all,
        the model checked identical on every rank), else ``model`` itself."""
        if self.world == 1:
            return model
        from ..nn.parallel import DistributedDataParallel
        return DistributedDataParallel(model)

    def shard(self, xb, yb):
        """(x, y, weight): this rank's rows of the global batch and the factor for its mean loss
        (1.0 unless a last, short batch splits unevenly; ``launch.shard_weight``)."""
        if self.world == 1:
            return xb, yb, 1.0
        n = len(yb)
        xs, ys = launch.shard((xb, yb))
        return xs, ys, launch.shard_weight(n)

    def sum(self, *values: float) -> list[float]:
        """The sums over the ranks of a few numbers (float64 allreduce), e.g. loss sum, correct, seen."""
        a = np.asarray(values, dtype=np.float64)
        if self.world > 1:
            dist.all_reduce(a, dist.ReduceOp.SUM)
        return a.tolist()

    def evaluate(self, evaluate, model, x, y):
        """(mean loss, accuracy) of ``evaluate(model, x, y)`` over the whole of x, y, each rank
        evaluating its contiguous part of it with rank 0's BatchNorm running statistics."""
        if self.world == 1:
            return evaluate(model, x, y)
        buffers = [_array(b) for _, b in model.named_buffers()]
        for b in buffers:   # the saved model is rank 0's: evaluate exactly it
            dist.broadcast(b, 0)
        start, stop = launch.shard_bounds(len(x), self.rank, self.world)
        loss, acc = evaluate(model, x[start:stop], y[start:stop])
        n = stop - start
        loss_sum, correct = self.sum(loss * n, round(acc * n))
        return loss_sum / len(x), correct / len(x)

    def check_resume(self, saved: dict, folder: str) -> None:
        """Refuse to resume a run saved by another number of ranks (its data shards and
        BatchNorm statistics depend on the count). Raises ValueError saying how to start it."""
        was = saved.get("world_size", 1)
        if was != self.world:
            how = f"mpiexec -n {was} ember train ..." if was > 1 else "ember train ... without mpiexec"
            raise ValueError(f"--resume {folder}: that run was trained on {was} rank(s), this one has "
                             f"{self.world}; resume it with the same number: {how}")
