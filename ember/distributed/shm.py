"""A SUM allreduce through shared memory, for ranks that all run on one host (DDP's gradients).

Why: MPICH's allreduce of a 241 KiB bucket between two processes is a few shared-memory
hand-shakes, and each needs BOTH ranks inside an MPI call (MPICH has no progress thread). A rank
that waits for its slower peer polls with pauses, so when the peer arrives it waits for the
sleeper's next poll, often more than once: measured on the loaded 2-core machine, the reduction
ended 1.6-2.8 ms (median) after the last rank had arrived, for ~0.1 ms of copying
(benchmarks/RESULTS.md, issue 17). Here every rank writes its array into its own slot of one
shared window (``MPI_Win_allocate_shared``) and then raises its counter; a rank sums the slots
as soon as every counter has reached this call's number. The LAST rank to arrive therefore
finishes without waiting for anyone, and a waiting rank that sleeps delays only itself.

    slot layout, per rank r: [counter: int64, 64 bytes] [parity 0: n values] [parity 1: n values]
    call k on rank r:  slot_r[k % 2] <- x_r;  barrier;  counter_r <- k
                       wait until counter_q >= k for every rank q (``group._wait``: spin, then
                       sleep; the group's timeout and fault reporting)
                       x_r <- ((slot_0[k % 2] + slot_1[k % 2]) + slot_2[k % 2]) + ...   (rank order)

Every rank adds the same slots in the same order, so all ranks get bit-identical sums, the same
on every rerun; for two ranks a + b is also bit for bit what MPICH's SUM gives (IEEE addition is
commutative). Two parities make a slot safe to reuse: rank r writes parity k % 2 at call k only
after call k - 1 has seen every counter at k - 1, i.e. after every rank has finished call k - 2,
the last call that read that parity.

Used by ``DistributedDataParallel`` when every rank is on one host (by the host names the ranks
exchanged at ``init_process_group``), the windows take at most ``LIMIT_BYTES`` (64 MiB) on the
host and ``EMBER_DIST_SHM`` is not ``0``; otherwise DDP uses ``all_reduce`` (MPI's ``Iallreduce``).
"""
from __future__ import annotations

import os

import numpy as np

from . import group as _g

_HEADER = 64   # bytes before the slots: the counter, alone on its cache line


class _Arrived:
    """A request-like object for ``group._wait``: ``Test()`` is True once every rank's counter
    has reached ``k``."""

    __slots__ = ("counters", "k")

    def __init__(self, counters, k):
        self.counters, self.k = counters, k

    def Test(self) -> bool:
        k = self.k
        for c in self.counters:
            if c[0] < k:
                return False
        return True


class SharedSum:
    """In-place SUM over the ranks of one fixed-size array, through a shared-memory window.

    Build it on every rank of the default group at the same point (the allocation is collective);
    then ``shared(x)`` on every rank, in the same order, replaces ``x`` by the sum of every
    rank's ``x``: the same values on every rank, added in rank order.

    Args:
        size: number of elements of the arrays it will sum (int ≥ 0).
        dtype: their NumPy dtype (any numeric dtype; DDP's buckets are float32 or float64).
    Raises (construction): ValueError before ``init_process_group``; ``mpi4py.MPI.Exception`` if
        MPI cannot allocate a shared window (ranks on different hosts).
    Raises (call): ValueError for an array of another size or dtype, or not C-contiguous;
        DistBackendError (``ember.distributed``) when a rank does not arrive within the group's
        timeout, or mpiexec reports a failed rank, naming the lost ranks as ``all_reduce`` does.
    """

    def __init__(self, size: int, dtype):
        g = _g._require("SharedSum")
        MPI = _g._mpi()
        self.group, self.size, self.dtype = g, int(size), np.dtype(dtype)
        self.nbytes = -(-self.size * self.dtype.itemsize // _HEADER) * _HEADER   # rounded up to 64
        self.win = MPI.Win.Allocate_shared(_HEADER + 2 * self.nbytes, 1, comm=g.comm)
        self.win.Lock_all(MPI.MODE_NOCHECK)   # an epoch for Win_sync (a memory barrier), never ended
        self.counters, self.slots = [], []
        for r in range(g.size):
            buf, _ = self.win.Shared_query(r)
            raw = np.frombuffer(buf, np.uint8, count=_HEADER + 2 * self.nbytes)
            self.counters.append(raw[:8].view(np.int64))
            self.slots.append([raw[_HEADER + p * self.nbytes:][:self.size * self.dtype.itemsize].view(self.dtype)
                               for p in (0, 1)])
        self.counters[g.rank][0] = 0
        self.calls = 0
        self.win.Sync()
        _g._wait(g, g.comm.Ibarrier(), "all_reduce")   # every rank's counter is 0 before any call

    def _check(self, x: np.ndarray) -> None:
        if x.dtype != self.dtype or x.size != self.size or not x.flags.c_contiguous:
            raise ValueError(f"SharedSum: expected a C-contiguous array of {self.size} {self.dtype} values, "
                             f"got {x.size} {x.dtype} values{'' if x.flags.c_contiguous else ' (not contiguous)'}")

    def next_slot(self) -> np.ndarray:
        """This rank's slot that the next call sums (1-D, ``size`` values): write into it, then
        call ``sum_into``. DDP packs its gradients straight into it, saving ``__call__``'s copy."""
        return self.slots[self.group.rank][(self.calls + 1) % 2]

    def __call__(self, x: np.ndarray) -> None:
        self._check(x)
        self.next_slot()[...] = x.reshape(-1)
        self.sum_into(x)

    def sum_into(self, x: np.ndarray) -> None:
        """x <- the sum over the ranks of what each wrote into its ``next_slot()`` (rank order)."""
        self._check(x)
        g = self.group
        self.calls += 1
        k, p = self.calls, self.calls % 2
        self.win.Sync()                        # the slot is written before the counter says so
        self.counters[g.rank][0] = k
        _g._wait(g, _Arrived(self.counters, k), "all_reduce")
        self.win.Sync()                        # and read after the other counters were seen
        slots = [s[p] for s in self.slots]
        flat = x.reshape(-1)
        np.add(slots[0], slots[1], out=flat)
        for s in slots[2:]:
            flat += s

    def free(self) -> None:
        """Release the window (collective: every rank, after its last call)."""
        if self.win is not None:
            self.win.Unlock_all()
            self.win.Free()
            self.win = None


# The most shared memory the windows may take on a host, all ranks together (2 slots per rank
# per byte summed): a container's /dev/shm is often small (Docker: 64 MiB), and a model whose
# gradients do not fit takes MPI's allreduce instead. LeNet-5: 1 MB on 2 ranks; ResNet-20: 4.3 MB.
LIMIT_BYTES = 64 * 2 ** 20


def enabled(nbytes: int = 0) -> bool:
    """Whether DDP should sum ``nbytes`` bytes of gradients (all buckets) through shared memory:
    several ranks, all on this host (by the host names exchanged at ``init_process_group``),
    2 · nbytes · world size ≤ ``LIMIT_BYTES``, and ``EMBER_DIST_SHM`` not ``0``. The same
    answer on every rank (the environment is the launcher's, the host list is shared)."""
    g = _g._group
    if g is None or g.size == 1 or g.comm is None or os.environ.get("EMBER_DIST_SHM", "1") == "0":
        return False
    return len({host for host, _ in g.peers}) == 1 and 2 * nbytes * g.size <= LIMIT_BYTES
