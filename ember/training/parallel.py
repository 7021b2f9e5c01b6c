"""``ember train`` under an MPI launcher: ``mpiexec -n W ember train ...`` trains data-parallel.

The design (docs/distributed.md): every rank builds the same data loader with the same seed, so
every rank draws the same GLOBAL batches of indices (same order) as one process would; each rank
fetches only its contiguous shard of every global batch (``Ranks.dataset``; with ``--augment``
it fetches and augments the whole batch, so that the random shifts and flips are the ones one
process draws, and then keeps its shard), runs forward and backward on it through
``DistributedDataParallel``, whose allreduce leaves every rank with the gradient of the whole
global batch, and all ranks take the same optimizer step.
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
import time
import traceback

import numpy as np

from .. import distributed as dist
from ..data import fetch_batch
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
    Errors: a rank that never joins (``init_process_group`` times out after ``--timeout``), flags
        that differ between ranks (``check_flags``: MismatchError naming each flag and both
        values), a model that differs (DistributedDataParallel's check) or any error inside the
        ``with`` block on one rank: that rank prints one line on stderr and calls MPI_Abort, so
        the launcher stops every rank and exits non-zero.
    """

    def __init__(self, cfg):
        self.cfg, self.started = cfg, False
        if not dist.is_initialized() and _launched_ranks() > 1:
            try:
                dist.init_process_group("mpi", timeout=cfg.timeout)
            except dist.DistBackendError as e:   # a rank that never joined: stop the whole job now
                from mpi4py import MPI
                _group.say(f"ember train: error on rank {MPI.COMM_WORLD.Get_rank()} of {_launched_ranks()}: {e}")
                _group.abort_job(MPI.COMM_WORLD, 1)
            self.started = True
        on = dist.is_initialized()
        self.rank = dist.get_rank() if on else 0
        self.world = dist.get_world_size() if on else 1
        self.main = self.rank == 0
        self._view, self._weights = None, {}

    def __enter__(self):
        if self.world > 1:
            try:
                if self.cfg.threads is None:   # cores ÷ ranks on this host, so W ranks do not oversubscribe it
                    from ..kernels.threads import set_num_threads
                    set_num_threads(launch.default_threads())
                launch.per_rank_batch_size(self.cfg.batch_size, self.world)   # ValueError if it does not split
                self.check_flags()
                if self.main:
                    _group._group.tell_sentinel("note", f"last checkpoint: the resumed run in {self.cfg.resume}"
                                                if self.cfg.resume else "no checkpoint was written")
            except Exception as e:
                self._abort(e)
        return self

    def saved(self, epoch: int, folder: str) -> None:
        """Rank 0 has saved epoch ``epoch`` in ``folder``: tell the host's sentinel, which names
        the last checkpoint when it reports a rank killed outright (``distributed/sentinel.py``)."""
        if self.world > 1:
            _group._group.tell_sentinel("note", f"last checkpoint: epoch {epoch} in {folder}")

    def check_flags(self) -> None:
        """Stop at start if the ranks were given different flags (``dist.check_same`` of the
        config). Raises MismatchError naming each differing flag and both values, e.g.
        ``rank 1 was started with --lr 0.05 but rank 0 with --lr 0.1``."""
        try:
            dist.check_same(dataclasses.asdict(self.cfg), what="config (ember train's flags)")
        except dist.MismatchError as e:
            raise dist.MismatchError("; ".join(f"rank {r} was started with {_flag_words(k, a)} but rank 0 with "
                                               f"{_flag_words(k, b)}" for r, k, a, b in e.differences)
                                     + "; start every rank with the same flags", e.differences) from None

    def __exit__(self, kind, error, tb):
        if self.world > 1 and error is not None and not isinstance(error, KeyboardInterrupt):
            self._abort(error)
        if self.started:
            dist.destroy_process_group()
        return False

    def _abort(self, error) -> None:
        """Stop every rank now (MPI_Abort), saying on stderr what went wrong here (``report_error``): the
        other ranks would otherwise wait in their next collective until --timeout.

        A mismatch of flags or model is found by every rank alike: rank 0 says it and aborts the
        job; the others wait up to 10 s for that abort to stop them (so the line is printed once),
        then say it themselves and abort."""
        if isinstance(error, dist.MismatchError):
            if not self.main:
                time.sleep(10)
            _group.say(f"ember train: error: {error}")
        else:
            report_error(error, self.rank, self.world)
        _group._group.abort(1)

    def dataset(self, dataset):
        """The data set for the training ``DataLoader``: on several ranks (and without
        ``--augment``), a view whose batches are only this rank's rows of each global batch of
        indices the loader draws (``_RankShard``), so a rank never copies the other ranks' images;
        else ``dataset`` itself (one rank; or ``--augment``, which draws its random numbers for the
        whole global batch: then ``shard`` slices the augmented batch)."""
        if self.world == 1 or self.cfg.augment:
            return dataset
        self._view = _RankShard(dataset, self.rank, self.world)
        return self._view

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
        if self._view is not None:   # already this rank's rows (Ranks.dataset)
            return xb, yb, self._weight(self._view.global_size)
        n = len(yb)
        xs, ys = launch.shard((xb, yb), self.rank, self.world)
        return xs, ys, self._weight(n)

    def _weight(self, n: int) -> float:
        w = self._weights.get(n)
        if w is None:
            w = self._weights[n] = launch.shard_weight(n, self.rank, self.world)
        return w

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


def report_error(error: BaseException, rank: int, world: int, out=None) -> None:
    """Say on ``out`` (stderr) why rank ``rank`` of ``world`` stops, before the job is aborted: one
    line "ember train: error on rank R of W: ..." for an error a user can act on (ember's own
    errors, ValueError, OSError), as ``ember train`` prints it in one process; for anything else
    (a bug) the traceback first, as one process would show it, and the exception's type when it has
    no message (a bare StopIteration would otherwise leave the line empty). All of it in one
    ``say``, so two ranks failing at once do not interleave mid-line."""
    ours = isinstance(error, (ValueError, OSError)) or type(error).__module__.split(".")[0] == "ember"
    trace = "" if ours else "".join(traceback.format_exception(type(error), error, error.__traceback__))
    _group.say(f"{trace}ember train: error on rank {rank} of {world}: {str(error) or type(error).__name__}", out)


class _RankShard:
    """A map-style data set whose batches are one rank's contiguous rows of each batch of indices.

    ``DataLoader`` hands ``__getitems__`` the global batch of indices (the same on every rank: same
    seed); this returns ``dataset.__getitems__`` of rows ``launch.shard_bounds(len(indices))``
    of it and remembers the global size (``global_size``), for the loss weight of a last batch
    that splits unevenly. Single samples (``dataset[i]``) are passed through unchanged.
    """

    def __init__(self, dataset, rank: int, world: int):
        self.dataset, self.rank, self.world, self.global_size = dataset, rank, world, 0
        self._bounds: dict = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]

    def __getitems__(self, indices):
        n = len(indices)
        bounds = self._bounds.get(n)
        if bounds is None:
            bounds = self._bounds[n] = launch.shard_bounds(n, self.rank, self.world)
        self.global_size = n
        return fetch_batch(self.dataset, indices[bounds[0]:bounds[1]])


def _flag_words(key: str, value) -> str:
    """How ``ember train``'s command line says a config value: ``--lr 0.1``, ``--augment`` /
    ``--no-augment``, ``no --threads`` (None), ``no --x`` for a field one rank does not know."""
    flag = "--" + str(key).replace("_", "-")
    if value is True or value is False:
        return flag if value else "--no-" + flag[2:]
    if value is None or value == "<missing>":
        return f"no {flag}"
    return f"{flag} {value}"
