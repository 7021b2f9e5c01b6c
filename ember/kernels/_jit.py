"""numba, if it can be imported, with its on-disk cache in a writable place; else nothing.

``AVAILABLE`` says whether the compiled kernels can run. Without numba (or with a numba that
fails to import, e.g. against a newer NumPy) ``njit`` returns the Python function unchanged and
``prange`` is ``range``, so the kernel modules still import; the Functions then use the NumPy path.

Compiled code is cached on disk (``cache=True``): next to the source when the package folder is
writable (numba's default, ``__pycache__``), else in ``$XDG_CACHE_HOME/ember/numba`` (usually
``~/.cache/ember/numba``). When neither is writable the kernels are compiled in memory, quietly
(numba would refuse ``cache=True`` at import: "no locator available"), so they still work; each
process then pays the compile on its first call of each kernel.

On a cold cache ``ember train`` has the backward kernels compiled by a helper process meanwhile
(``ember.kernels.prewarm``; ``run`` calls its ``BEFORE_FIRST_CALL`` hook, which waits for them).
"""
import os
import threading
import types
import warnings
from concurrent.futures import ThreadPoolExecutor

_HERE = os.path.dirname(os.path.abspath(__file__))


def _cache_dir():
    """A user cache folder for numba when the package folder is not writable (None: keep numba's)."""
    if os.environ.get("NUMBA_CACHE_DIR") or os.access(_HERE, os.W_OK):
        return None
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(root, "ember", "numba")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


try:
    _dir = _cache_dir()
    if _dir is not None:
        os.environ["NUMBA_CACHE_DIR"] = _dir
    import numba
    from numba import prange
    if _dir is not None and numba.config.CACHE_DIR != _dir:   # numba was imported before us
        numba.config.CACHE_DIR = _dir
    warnings.filterwarnings("ignore", category=numba.NumbaWarning, message=".*cach")
    AVAILABLE = True
except Exception:  # not installed, or broken against this NumPy: the NumPy path is used
    numba, prange, AVAILABLE = None, range, False


def wide_vectors(features, setting):
    """The CPU features numba should compile for: ``features`` (LLVM's host string, "+avx2,...")
    with ",-prefer-256-bit" appended when the CPU has AVX-512 and ``setting`` (env
    EMBER_VECTOR_WIDTH) is not "256"; else None (numba's own choice stands).

    LLVM tunes Intel's AVX-512 CPUs (Skylake-SP to Emerald Rapids) to "prefer 256-bit" vectors:
    the loop vectoriser then fills 8 float32 lanes, not 16, even though the FMA units take 16.
    Dropping that preference makes the conv kernels' inner loops (``madd8x4``: 8 output channels
    × 4 terms over a row of the batch) use 512-bit registers: 67-72 → 90-106 GFLOP/s on one core
    for ResNet-20's 3×3 convs, and a ResNet-20 training step at one thread 13% faster (RESULTS.md,
    seventh session). The preference exists because older AVX-512 CPUs lower their clock under
    512-bit code; ``EMBER_VECTOR_WIDTH=256`` keeps LLVM's choice there.
    """
    if setting == "256" or "+avx512f" not in features.split(","):
        return None
    return features + ",-prefer-256-bit"


if AVAILABLE and numba.config.CPU_FEATURES is None and numba.config.CPU_NAME is None:
    # Read when numba builds its CPU target (the first @njit of the process, below or in user code
    # imported earlier: then numba has its features already and this changes nothing). numba's
    # cache keys each entry by these features, so 256- and 512-bit builds never mix.
    try:
        from numba.core.codegen import get_host_cpu_features
        _features = wide_vectors(get_host_cpu_features(), os.environ.get("EMBER_VECTOR_WIDTH", ""))
    except Exception:  # an internal moved in another numba: keep numba's default
        _features = None
    if _features is not None:
        numba.config.CPU_FEATURES = _features


def njit(*args, **kwargs):
    """``numba.njit`` when numba is there, else a decorator that returns the function itself.

    With ``cache=True`` and no writable cache folder (package folder, ``NUMBA_CACHE_DIR`` and the
    user cache all read-only), the function is compiled without the disk cache instead of failing.
    """
    if not AVAILABLE:
        if args and callable(args[0]):
            return args[0]
        return lambda f: f
    if args and callable(args[0]):
        return njit(**kwargs)(args[0])

    def decorate(f):
        try:
            return _load_without_refresh(numba.njit(*args, **kwargs)(f))
        except RuntimeError as e:   # "cannot cache function ...: no locator available for file ..."
            if not kwargs.get("cache") or "cache" not in str(e):
                raise
            return numba.njit(*args, **dict(kwargs, cache=False))(f)
    return decorate


def _load_without_refresh(dispatcher):
    """``dispatcher`` (an ember kernel), its disk-cache loads made without numba's context refresh.

    numba's ``Cache.load_overload`` (numba/core/caching.py, 0.64–0.68) first calls
    ``target_context.refresh()``: the first time in a process that imports ~30 of numba's modules
    (its NumPy, typed-container and random implementations) and installs their typing and lowering
    registries, which only *compiling* uses. Loading cached machine code needs none of it, only
    numba's runtime (NRT: the allocator the kernels call), which is initialised here instead.
    A compile still refreshes (numba's compiler does it itself), so a kernel that is not cached
    is compiled as before. Measured (LeNet-5, warm cache, one thread, nineteenth session):
    the first forward 0.35–0.38 → 0.13 s; ``ember train``'s warm start to the end of batch 1
    1.12–1.21 → 0.99–1.01 s (benchmarks/RESULTS.md). Any failure of the short path falls back to numba's own load, and a
    numba without the internals named here keeps its own load; only ember's dispatchers are
    changed (a user's own numba functions load as numba does it).
    """
    try:
        from numba.core import caching
        from numba.core.runtime.nrt import rtsys
        cache = dispatcher._cache
        if not (isinstance(cache, caching.Cache) and hasattr(cache, "_load_overload")
                and hasattr(rtsys, "initialize")):
            return dispatcher
    except Exception:   # another numba's internals: its own load stands
        return dispatcher
    numba_load = cache.load_overload

    def load_overload(sig, target_context):
        try:
            rtsys.initialize(target_context)
            return cache._load_overload(sig, target_context)
        except Exception:   # anything unexpected: numba's own load, with its refresh
            return numba_load(sig, target_context)
    cache.load_overload = load_overload
    return dispatcher


# ------------------------------------------------------------------------------------ threads
# Each kernel body loops ``for item in prange(lo, hi)`` over independent items (output rows or
# channels). It is compiled twice: parallel=True, where numba splits the prange over its OpenMP
# threads, and nogil=True, a plain loop over [lo, hi) that ``run`` can split over Python threads
# (the GIL is released inside). ``THREADING`` (env EMBER_NUMBA_THREADING) picks how ``run``
# threads: "pool" (nogil parts on a ThreadPoolExecutor, the default), "parallel" (numba's
# OpenMP threads), "serial". Results do not depend on it: each item is computed whole, by one
# thread, in a fixed order. Why "pool" (measured 2026-12-01 on the shared 2-core machine at load
# ~2, benchmarks/kernels_numba.py, medians of 7 alternating runs): LeNet-5 step at batch 256
# 17.1 ms (pool) vs 22.5 (parallel) vs 22.8 (serial), inference at batch 1000 28 vs 41 vs 42 ms
# (at batch 64 all three 5.1-5.5 ms: the other core was busy); a cold JIT cache costs 8.5 s of
# CPU before the first training step instead of 17.9 s (parallel=True compiles 2x slower); and
# no second OpenMP runtime spins next to PyTorch's.
THREADING = os.environ.get("EMBER_NUMBA_THREADING", "pool")

_pool = None
_pool_lock = threading.Lock()


def _forget_pool():  # a forked child (DataLoader workers) has none of the parent's threads
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _shutdown_pool():
    """Wake the pool's idle workers so that they exit (interpreter exit joins them).

    A ThreadPoolExecutor's exit hook wakes only the workers it registered; a SIGTERM or Ctrl-C
    landing in ``submit`` between a worker's start and its registration left that worker
    waiting for work forever, and exit waited for it: ``ember train`` hung after printing that
    it was terminated. ``shutdown`` wakes every worker of the pool through its own queue."""
    if _pool is not None:
        _pool.shutdown(wait=False)


# threading's exit hooks run before it joins the non-daemon threads (the executor's own hook is
# registered the same way); a Python without the private hook keeps the old behaviour
getattr(threading, "_register_atexit", lambda f: None)(_shutdown_pool)


def kernel_pair(body, **options):
    """{"parallel": njit(parallel=True), "serial": njit(nogil=True)} of one kernel body.

    Both are lazy: numba compiles (or loads from its cache) only the one ``run`` calls. Each is
    compiled from a copy of ``body`` named ``<name>_parallel`` / ``<name>_nogil``: numba's disk
    cache is keyed by file, function name, line and argument types, not by options, so two
    dispatchers of one function share one cache entry and the second one called would load the
    first one's machine code (the plain loop as the "parallel" kernel, or the GIL-holding prange
    code as the nogil one; checked with numba 0.68 in tests/test_startup.py). New names for both
    also leave any such mixed entry of an older ember unused.
    """
    return {"parallel": njit(cache=True, parallel=True, **options)(_renamed(body, "_parallel")),
            "serial": njit(cache=True, nogil=True, **options)(_renamed(body, "_nogil"))}


def _renamed(f, suffix):
    """A copy of function ``f`` whose __qualname__ (numba's cache file name) ends in ``suffix``."""
    g = types.FunctionType(f.__code__, f.__globals__, f.__name__ + suffix, f.__defaults__, f.__closure__)
    g.__qualname__, g.__module__, g.__doc__ = f.__qualname__ + suffix, f.__module__, f.__doc__
    return g


_threads = None   # ember.kernels.threads, imported at the first call (it imports this module's package)


def num_threads():
    """Threads the kernels use: ember's setting (ember.kernels.threads) when there is one, else the cores."""
    global _threads
    try:
        if _threads is None:
            from . import threads as _threads
        return max(1, _threads.get_num_threads())
    except Exception:  # not importable: every core
        return os.cpu_count() or 1


# Below this much work (multiply-adds or elements touched) a call runs on one thread: waking a
# second one costs tens of µs, and on a loaded machine a barrier waits for a descheduled thread.
MIN_PARALLEL_WORK = 1 << 18


# id(kernel pair) -> a function called (once) before that pair's next run: ember.kernels.prewarm
# waits there for a helper process compiling the kernel into the disk cache. Empty: one check.
BEFORE_FIRST_CALL = {}


def run(pair, total, *args, work=None):
    """Run a kernel pair's body over items [0, total) with ``THREADING`` and ``num_threads()``.

    ``work`` (the call's multiply-adds or elements) below ``MIN_PARALLEL_WORK`` runs serially.
    """
    if BEFORE_FIRST_CALL:
        hook = BEFORE_FIRST_CALL.pop(id(pair), None)
        if hook is not None:
            hook()
    nt = num_threads()
    small = work is not None and work < MIN_PARALLEL_WORK
    mode = THREADING if nt > 1 and total > 1 and not small else "serial"
    if mode == "parallel":
        nt = min(nt, numba.config.NUMBA_NUM_THREADS)
        if numba.get_num_threads() != nt:
            numba.set_num_threads(nt)
        return pair["parallel"](*args, 0, total)
    parts = min(nt, total) if mode == "pool" else 1
    if parts <= 1:
        return pair["serial"](*args, 0, total)
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < parts - 1:
            _pool = ThreadPoolExecutor(max_workers=parts - 1, thread_name_prefix="ember-numba")
    cuts = [total * i // parts for i in range(parts + 1)]
    futures = [_pool.submit(pair["serial"], *args, cuts[i], cuts[i + 1]) for i in range(1, parts)]
    pair["serial"](*args, cuts[0], cuts[1])
    for f in futures:
        f.result()
