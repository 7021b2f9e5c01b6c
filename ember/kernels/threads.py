"""ember.kernels.threads: how many threads NumPy's GEMMs may use, and the kernels' own worker pool.

Why this exists (measured on a loaded 2-core machine, benchmarks/RESULTS.md): OpenBLAS splits any
GEMM above a tiny size threshold across its threads, and its worker threads go to sleep between
calls. Waking a sleeping worker costs a scheduler round trip, which on a busy machine is
milliseconds: LeNet's Linear(400, 120) backward at batch 64 (a 6 MFLOP GEMM, ~70 µs on one
core) took 4–6 ms with 2 threads. So ember runs every GEMM below ``PARALLEL_MIN_FLOPS``
single-threaded and gives bigger ones the configured thread count; ``matmul`` applies the rule.
(LeNet's GEMMs, blocked to stay in cache, are all below it: BLAS runs them on one thread.)

Public API (PyTorch's names where they exist; ``ember.set_num_threads``/``ember.get_num_threads``
and ``ember.threads`` are the same objects):
    set_num_threads(n)     threads for ember's ops: its big GEMMs (and NumPy's BLAS in general)
                           and the ops that split their work (``parallel_for``)
    get_num_threads()      the current setting
    blas_threads(n)        context manager: BLAS limited to n threads inside the block
    matmul(a, b, out=None) np.matmul with the thread rule above
    parallel_for(fn, parts) fn(part) for each part, on up to get_num_threads() threads
    num_parts(work)        how many parts a piece of work is worth (1 below 2·MIN_PART_FLOATS)
    split_range, outer_slices  cut a range / an array's outermost memory axis into parts

Intra-op parallelism (``parallel_for``): since LeNet's GEMMs are too small to split *inside*
BLAS, the heavy ops (Conv2d, ReLU, MaxPool2d) split their own work into ``get_num_threads()``
large independent parts, e.g. halves of the output rows or of the channels, and run them on a
pool of Python threads. NumPy releases the GIL inside its copies, ufunc loops and BLAS calls, which is where
such a part spends its time, so the parts really run at once; only the few Python statements
between those calls take turns. A part is never smaller than ``MIN_PART_FLOATS`` floats of work,
and the split is fixed by the shapes (never by timing), so results do not depend on the
scheduling: they depend only on the thread count (a reduction of per-part sums, added in a
fixed order). Small parts are not worth it here: a sleeping worker takes 50–80 µs to wake, and
two threads that both want the GIL wait for each other (LeNet at batch 64 ran 8% slower split;
at batch 256 the step is 1.25–1.4× faster; benchmarks/RESULTS.md).

Only NumPy's own BLAS is touched (found with threadpoolctl); another library's BLAS or OpenMP
pool, e.g. PyTorch's, is left alone. Without threadpoolctl every call falls back to np.matmul.
The switch is sticky (changing it costs ~7 µs, too much to undo after each of a step's ~100
GEMMs): after a small ember GEMM, NumPy's BLAS stays at 1 thread until a large one runs; code
outside ember that wants all threads can use ``blas_threads(n)``.
"""
from __future__ import annotations

import contextlib
import functools
import os
import queue
import threading

import numpy as np

# Below this many flops (2·M·N·K) a GEMM runs on one thread. Measured here (2 cores shared with
# other jobs): with 2 threads, Linear(400, 120) at batch 64 (6 MFLOP, ~70 µs on one core) took
# 4–6 ms, and LeNet inference at batch 1000 (GEMMs of 5–100 MFLOP) ran 3.5× slower than with 1.
# 500 MFLOP is 5–15 ms of one core, long enough to amortise waking the workers even then.
PARALLEL_MIN_FLOPS = 500_000_000

_libs = None          # threadpoolctl controllers of NumPy's BLAS (list), [] when unavailable
_num_threads = None   # the thread budget for big GEMMs
_current = None       # what the BLAS is set to right now


def _numpy_blas():
    """The threadpoolctl controllers of the BLAS library NumPy itself is linked to."""
    global _libs, _num_threads, _current
    if _libs is None:
        try:
            from threadpoolctl import ThreadpoolController
            blas = [c for c in ThreadpoolController().select(user_api="blas").lib_controllers]
        except Exception:  # threadpoolctl missing or unable to inspect this process
            blas = []
        # wheels keep it in site-packages/numpy.libs (Linux) or numpy/.dylibs (macOS); a system
        # NumPy links the system BLAS: then take the only BLAS loaded, if there is just one
        here = os.path.dirname(np.__file__)
        mine = [c for c in blas if os.path.basename(os.path.dirname(c.filepath)).startswith("numpy")
                or c.filepath.startswith(here)]
        _libs = mine or (blas if len(blas) == 1 else [])
        _current = _libs[0].num_threads if _libs else None
        if _num_threads is None:
            _num_threads = _current or 1
        if any(c.internal_api == "openblas" for c in _libs):
            _wake_openblas()
    return _libs


# One float32 product of these shapes, run once (values do not matter: zeros).
WAKE_SHAPES = ((16, 300), (300, 16))


def _wake_openblas() -> None:
    """Run one small sgemm of ``WAKE_SHAPES`` (~10 µs), once per process, before ember's own.

    Measured (benchmarks/blas_state.py; RESULTS.md, eighteenth session): with OpenBLAS 0.3.31
    (NumPy 2.4's wheel, "Haswell" kernels, on a Zen 1 EPYC), a fresh process ran LeNet-5's
    Linear(400, 120) product (64, 400) @ (400, 120) at 0.40 ms a call, and 0.19 ms once any
    product of some other shapes (this one, or any 2-thread GEMM) had run, for the rest of the
    process; the results are bit for bit the same either way, and float64 showed no such
    state. A training step's backward ran such a product anyway (so ``ember train`` and
    ``ember bench`` were never in the slow state after step 1), but a process that only runs
    inference never did: LeNet-5 at batch 1000, 2 threads, took 23.9-24.0 ms per 1000 images,
    and 20.6-20.8 ms after this call. Why OpenBLAS behaves so is not known (not the values, page
    faults, huge pages nor a spinning thread: RESULTS.md); elsewhere this costs one tiny GEMM.
    """
    np.dot(np.zeros(WAKE_SHAPES[0], np.float32), np.zeros(WAKE_SHAPES[1], np.float32))


def _set_blas(n: int) -> None:
    # OpenBLAS ignores openblas_set_num_threads from any thread but the main one (measured:
    # a worker's call left it at 2 and its GEMMs ran two-threaded, with other rounding), so
    # only the main thread sets it, and it sets 1 before handing work to ember's workers.
    global _current
    if n != _current and threading.current_thread() is threading.main_thread():
        for c in _numpy_blas():
            c.set_num_threads(n)
        _current = n


def set_num_threads(n: int) -> None:
    """Let ember's large GEMMs (and NumPy's BLAS) use ``n`` threads (as ``torch.set_num_threads``).

    Raises: ValueError if n < 1.
    """
    global _num_threads
    if int(n) < 1:
        raise ValueError(f"set_num_threads: expected a thread count >= 1, got {n}")
    _numpy_blas()
    _num_threads = int(n)
    _set_blas(_num_threads)


def get_num_threads() -> int:
    """The thread budget for large GEMMs (initially NumPy's BLAS setting, usually the core count)."""
    _numpy_blas()
    return _num_threads


@contextlib.contextmanager
def blas_threads(n: int):
    """Limit NumPy's BLAS to ``n`` threads inside the ``with`` block (restored afterwards)."""
    global _num_threads
    _numpy_blas()
    saved = _num_threads
    _num_threads = int(n)
    _set_blas(_num_threads)
    try:
        yield
    finally:
        _num_threads = saved
        _set_blas(saved)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.matmul(a, b, out=out)``, single-threaded below ``PARALLEL_MIN_FLOPS`` (see module doc).

    Shapes and broadcasting as np.matmul (both operands at least 2-D here). The thread count
    changes the speed only: OpenBLAS splits the output between threads, not the sums.
    """
    if _libs is None:
        _numpy_blas()
    if _libs and _num_threads > 1:
        flops = 2 * a.size * (b.shape[-1] if b.ndim > 1 else 1)   # 2·M·K·N (× batch if batched)
        big = flops >= PARALLEL_MIN_FLOPS and not _jobs_running and not getattr(_local, "busy", False)
        _set_blas(_num_threads if big else 1)                  # big, and no ember worker busy
    if out is None and a.ndim == 2 and b.ndim == 2:
        # np.dot, not np.matmul: for a transposed operand with a long inner dimension (Conv2d's
        # grad_w = g @ colsᵀ) np.matmul held the GIL here, so two threads' GEMMs ran in turn
        return np.dot(a, b)
    return np.matmul(a, b, out=out)


# ---------------------------------------------------------------------------------- parallel_for

# The least work (floats read or written) worth a part of its own. Handing a part to a worker
# costs ~20–60 µs here (waking the other core), and every time the two threads want the GIL at
# once another ~50 µs: measured on LeNet-5, splitting conv2d at batch 64 (~1M column floats per
# layer) was slower than one thread, at batch 256 (4–5M) it was 1.3–1.6× faster.
MIN_PART_FLOATS = 1 << 20

_workers = []          # [(thread, job queue)], started on first use
_workers_lock = threading.Lock()
_local = threading.local()  # .busy: this thread runs a part (nested calls run serially)
_jobs_running = 0      # jobs handed to the workers and not finished (BLAS stays at 1 thread)
_jobs_lock = threading.Lock()


def _worker(jobs):
    global _jobs_running
    _local.busy = True
    while True:
        job = jobs.get()
        job()
        job = None                  # keep no arrays alive while idle
        with _jobs_lock:
            _jobs_running -= 1


def _hand_off(i: int, job) -> None:
    """Queue ``job`` for pool thread i, with NumPy's BLAS at one thread while it runs."""
    global _jobs_running
    _set_blas(1)
    with _jobs_lock:
        _jobs_running += 1
    _worker_queue(i).put(job)


def _forget_workers():  # a forked child has none of the parent's threads
    global _jobs_running
    _workers.clear()
    _jobs_running = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def _worker_queue(i: int) -> queue.SimpleQueue:
    """The job queue of pool thread i (0-based), starting threads up to it if needed."""
    if len(_workers) <= i:
        with _workers_lock:
            while len(_workers) <= i:
                jobs = queue.SimpleQueue()
                t = threading.Thread(target=_worker, args=(jobs,), daemon=True,
                                     name=f"ember-worker-{len(_workers) + 1}")
                t.start()
                _workers.append((t, jobs))
    return _workers[i][1]


def num_parts(work_floats: int) -> int:
    """How many parts to split an op's work into: ≤ get_num_threads(), each ≥ MIN_PART_FLOATS floats."""
    if work_floats < 2 * MIN_PART_FLOATS or getattr(_local, "busy", False):
        return 1
    return max(1, min(get_num_threads(), int(work_floats) // MIN_PART_FLOATS))


def parallel_for(fn, parts) -> list:
    """``[fn(p) for p in parts]``, with the parts run at the same time on a pool of threads.

    The calling thread runs ``parts[0]``, the pool's workers the others; it returns when all are
    done. ``fn`` must write only to memory that no other part writes (or return its result).
    Raises: the first part's exception (in part order), after every part has finished.
    A call from inside a part runs its parts one after the other (no nested parallelism).
    """
    parts = list(parts)
    if len(parts) <= 1 or getattr(_local, "busy", False):
        return [fn(p) for p in parts]
    done = queue.SimpleQueue()
    errstate = np.geterr()  # NumPy's error settings are per thread: the workers take the caller's

    def job(i, p):
        try:
            with np.errstate(**errstate):
                done.put((i, fn(p), None))
        except BaseException as e:  # handed to the caller, which re-raises it
            done.put((i, None, e))
    for i, p in enumerate(parts[1:], 1):
        _hand_off(i - 1, functools.partial(job, i, p))
    results, errors = [None] * len(parts), [None] * len(parts)
    _local.busy = True
    try:
        results[0] = fn(parts[0])
    except BaseException as e:
        errors[0] = e
    finally:
        _local.busy = False
        for _ in parts[1:]:
            i, r, e = done.get()
            results[i], errors[i] = r, e
    for e in errors:
        if e is not None:
            raise e
    return results


def split_range(n: int, parts: int) -> list:
    """[0, n) cut into ``parts`` near-equal contiguous ranges (a, b), none empty."""
    parts = max(1, min(parts, n))
    return [(n * i // parts, n * (i + 1) // parts) for i in range(parts)]


def outer_slices(a: np.ndarray, parts: int, axes=None) -> list:
    """Index tuples that cut ``a`` into ≤ parts pieces along its outermost memory axis.

    The axis is the one (among ``axes``, default all) with the largest stride, so each piece is
    one contiguous stretch of memory: C for a CHWN conv activation, N for a C-contiguous batch.
    Elementwise ops apply the same index to their inputs and output (all of a's shape).
    With one part (or a 0-d array) it is ``[...]``, the whole array.
    """
    if parts <= 1 or a.ndim == 0:
        return [...]                                           # one piece: the whole array
    axes = range(a.ndim) if axes is None else axes
    ax = max(axes, key=lambda i: abs(a.strides[i]) if a.shape[i] > 1 else -1)
    return [(slice(None),) * ax + (slice(lo, hi),) for lo, hi in split_range(a.shape[ax], parts)]
