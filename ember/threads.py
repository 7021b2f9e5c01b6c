"""BLAS thread control: how many threads NumPy's GEMMs may use, and when they use them.

Why this exists (measured on a loaded 2-core machine, benchmarks/RESULTS.md): OpenBLAS splits any
GEMM above a tiny size threshold across its threads, and its worker threads go to sleep between
calls. Waking a sleeping worker costs a scheduler round trip, which on a busy machine is
milliseconds: LeNet's Linear(400, 120) backward at batch 64 (a 6 MFLOP GEMM, ~70 µs on one
core) took 4–6 ms with 2 threads. So ember runs every GEMM below ``PARALLEL_MIN_FLOPS``
single-threaded and gives bigger ones the configured thread count; ``matmul`` applies the rule.
(LeNet's GEMMs, blocked to stay in cache, are all below it: its training is single-threaded.)

Public API (PyTorch's names where they exist):
    set_num_threads(n)     threads for ember's big GEMMs (and NumPy's BLAS in general)
    get_num_threads()      the current setting
    blas_threads(n)        context manager: BLAS limited to n threads inside the block
    matmul(a, b, out=None) np.matmul with the thread rule above

Only NumPy's own BLAS is touched (found with threadpoolctl); another library's BLAS or OpenMP
pool, e.g. PyTorch's, is left alone. Without threadpoolctl every call falls back to np.matmul.
The switch is sticky (changing it costs ~7 µs, too much to undo after each of a step's ~100
GEMMs): after a small ember GEMM, NumPy's BLAS stays at 1 thread until a large one runs; code
outside ember that wants all threads can use ``blas_threads(n)``.
"""
from __future__ import annotations

import contextlib
import os

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
    return _libs


def _set_blas(n: int) -> None:
    global _current
    if n != _current:
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
        _set_blas(_num_threads if flops >= PARALLEL_MIN_FLOPS else 1)
    return np.matmul(a, b, out=out)
