"""Compile a training run's backward kernels in a helper process while this one compiles the forward.

Issue 13: on a cold numba cache (a fresh install) the first ``ember train`` step compiles its
kernels one after the other — numba holds a process-wide compiler lock (and mostly the GIL), so
one process never compiles two kernels at once, and a 2-core machine keeps one core idle.
LeNet-5's first step compiled for 7.6 s of CPU (quiet machine): the fused conv + ReLU + max-pool
forward 3.6 s, then its backward: unpool 0.7 s, grad_w 1.4 s, grad_x 1.8 s.

``start(model)`` launches ``python -c _BOOT ...`` running ``main`` here (the "helper"): it compiles the
backward kernels that the model's first step will call, for the model's dtype, into the same
on-disk numba cache, while the training process compiles the forward on the other core (and,
for LeNet-5's all-fused convolutions, grad_w after it: ``kept_here`` shares the work evenly). Before
its first call of each of these kernels the training process waits for the helper to report it
(``_jit.run`` calls the hook; at most ``WAIT_S`` seconds after the launch), and numba's
dispatcher then loads it from the cache (milliseconds) instead of compiling it. The machine
code is the same either way (same source, options and CPU): results are bit-identical.
``start(model, direct)`` also has the helper compile, first, the kernels ``ember train``'s step
calls directly rather than through ``_jit.run`` (``DIRECT``: the cross-entropy's two passes and
SGD's update, 0.3 + 0.14 s). The training process does not wait for those: by their first call,
after its forward, the helper has usually cached them, else it compiles them itself. Cold start
on the thirteenth session's Intel machine: 3.68–3.94 s without this, 3.38–3.54 s with it
(benchmarks/RESULTS.md).

Only when it can help, otherwise nothing is launched and everything is as before:
- kernels on (not ``EMBER_KERNELS=reference``), numba importable, ``EMBER_PREWARM`` not "0";
- a core likely free for it (``free_core``: 2 or more cores, and at most their number minus two
  other tasks runnable now; ``EMBER_PREWARM=1`` skips this check);
- the kernels cached on disk (not the in-memory fallback of ``_jit.njit`` when no cache folder
  is writable: the helper's work could not reach this process);
- ``_jit.THREADING`` not "parallel" (the helper compiles the nogil variants that "pool" and
  "serial" call);
- at least one needed kernel without a cache entry for this source and numba version (its
  index file missing, stale or empty). A warm start costs a few file reads (< 1 ms).

Failures fall back to compiling in this process, as before: the helper crashing, being killed,
running past ``WAIT_S``, or seeing another cache folder than this process (it then compiles
nothing). It only ever adds cache entries.

Cache writes (numba 0.68, ``numba/core/caching.py``): each entry is an index file per function
(signature -> data file name) and a data file, each written to a temporary name and renamed
(atomic), the index first. A process killed between the two renames leaves an index naming a
data file that is missing (numba then compiles; harmless) or left over from an older source. So
the helper writes the data file first, then the index (``_data_before_index``): killed at any
moment, it leaves the entry whole or absent (at worst a ``*.tmp.<hex>`` file). Two processes
saving entries of one function at once can lose one index entry (the last rename wins; it is
compiled again next time): the helper and this process compile different kernels, and their
shared non-inlined callees (same signature, same key) hold the same code.

No orphans: ``close()`` (after the first step, and in ``ember train``'s ``finally``: errors,
Ctrl-C, SIGTERM) kills a helper still running and reaps it; the helper asks Linux to kill it
when its parent dies (``PR_SET_PDEATHSIG``, for a SIGKILLed parent), exits at once if its parent
is already gone, and ignores SIGINT (Ctrl-C reaches the whole foreground process group; the
parent's ``close`` ends it without a traceback).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

WAIT_S = 60.0   # the longest the training process waits for the helper (from its launch)

# kernel name -> attribute of ember.kernels.numba_conv holding its kernel pair ("module.attribute"
# for another module of ember.kernels)
KERNELS = {"unpool_relu": "_unpool_relu", "grad_b": "_grad_b", "grad_w": "_grad_w", "grad_x": "_grad_x",
           "winograd_grad_w": "winograd._grad_w"}
# kernels the training step calls directly, not through ``_jit.run``: name -> (module, dispatcher).
# The helper compiles them first (the step needs them after its forward); the training process
# does not wait for them: it loads what the helper has cached by its first call, else compiles.
DIRECT = {"cross_entropy": ("numba_loss", "_forward"), "cross_entropy_backward": ("numba_loss", "_backward"),
          "sgd": ("numba_optim", "_sgd_body")}


def _dispatcher(name):
    """The numba dispatcher of kernel ``name`` (for a ``_jit.run`` kernel, its nogil variant)."""
    import importlib
    if name in DIRECT:
        module, attr = DIRECT[name]
        return getattr(importlib.import_module(f"{__package__}.{module}"), attr)
    return _pair(name)["serial"]


def needed(model):
    """(names, dtype) of the backward kernels ``model``'s first training step calls; ([], None) if none.

    A Conv2d followed by ReLU and MaxPool2d (kernel = stride, no padding) in a Sequential runs
    fused (``ember.kernels.fusion``): unpool_relu, grad_w, grad_x; a 3×3 stride-1 Conv2d that
    ``winograd.covers``: grad_b (with a bias), winograd_grad_w; any other Conv2d: grad_b (with
    a bias), grad_w, grad_x. dtype: the first conv weight's ("float32"/"float64"; another dtype
    runs the NumPy path: nothing). Other kernels (pooling, batch norm) compile in the training
    process as before.
    """
    from .. import nn
    from . import winograd
    names, dtype = [], None
    fused = _fused_convs(model)
    for m in model.modules():
        if not isinstance(m, nn.Conv2d):
            continue
        dtype = dtype or str(m.weight._data.dtype)
        if id(m) in fused:
            want = ["unpool_relu", "grad_w", "grad_x"]
        elif m.groups == 1 and winograd.covers(m.weight.shape, m.stride, [max(q) for q in m.padding_pairs()],
                                               m.dilation):                 # padding may be 'same'/'valid'
            # grad_x runs winograd's forward kernel, which the forward compiles first
            want = (["grad_b"] if m.bias is not None else []) + ["winograd_grad_w"]
        else:
            want = (["grad_b"] if m.bias is not None else []) + ["grad_w", "grad_x"]
        names += [n for n in want if n not in names]
    if dtype not in ("float32", "float64"):
        return [], None
    return names, dtype


def _fused_convs(model):
    """ids of the Conv2d layers that run fused with the ReLU and MaxPool2d after them (kernel =
    stride, no padding) in a Sequential (``ember.kernels.fusion``)."""
    from .. import nn
    fused = set()
    for s in (m for m in model.modules() if isinstance(m, nn.Sequential)):
        layers = list(s.children())
        for i in range(len(layers) - 2):
            conv, relu, pool = layers[i:i + 3]
            if (type(conv), type(relu), type(pool)) == (nn.Conv2d, nn.ReLU, nn.MaxPool2d):
                k = pool.kernel_size if isinstance(pool.kernel_size, tuple) else (pool.kernel_size,) * 2
                st = pool.stride if isinstance(pool.stride, tuple) else (pool.stride,) * 2
                pd = pool.padding if isinstance(pool.padding, tuple) else (pool.padding,) * 2
                if k == st and pd == (0, 0):
                    fused.add(id(conv))
    return fused


def kept_here(model):
    """The backward kernels the training process compiles itself, to share the compiling evenly.

    When every Conv2d of ``model`` runs fused with its ReLU and max-pool (LeNet-5), the training
    process compiles only the fused forward before its first backward (3.3 s of CPU here), while
    a helper alone would compile unpool_relu, grad_w and grad_x after its own start-up (1.0 +
    2.4–2.8 + 2.9–3.1 s, + ~1.3 s): the first step waited for it. The backward calls unpool_relu,
    grad_w, grad_x in that order, so the training process compiles grad_w itself when its
    forward is done, by which time the helper has cached unpool_relu, and the helper's grad_x is
    ready when grad_w is (measured in benchmarks/RESULTS.md, twelfth session). Otherwise (other
    models compile more in the training process: plain convolutions, batch norm) nothing.
    """
    from .. import nn
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    fused = _fused_convs(model)
    return {"grad_w"} if convs and all(id(m) in fused for m in convs) else set()


def _index(d):
    """numba's index file object of dispatcher ``d`` (None: not cached on disk)."""
    return getattr(getattr(d, "_cache", None), "_cache_file", None)


def cold(names):
    """The kernels of ``names`` that have no cache entry for this source and numba version.

    Reads each kernel's index file (numba's own reader: a missing, stale or other-version index
    is empty). A kernel not cached on disk, or an index that cannot be read, counts as not cold
    (no helper for it: the training process does what it did before).
    """
    out = []
    for n in names:
        f = _index(_dispatcher(n))
        if f is None:
            continue
        try:
            if not f._load_index():
                out.append(n)
        except Exception:  # a damaged index: numba's own load handles it in this process
            continue
    return out


class Helper:
    """A running helper process compiling ``names`` for ``dtype``; ``wait_for`` and ``close``."""

    def __init__(self, names, dtype, cache_path):
        from . import _jit
        self.names, self.t0 = list(names), time.monotonic()
        self.done, self.ended = set(), False
        self._cond = threading.Condition()
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, EMBER_PREWARM="0")
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, "--parent", str(os.getpid()), "--cache", cache_path, dtype, *self.names],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self._hooks = {}
        try:
            threading.Thread(target=self._read, name="ember-prewarm", daemon=True).start()
            for n in self.names:
                if n in KERNELS:   # the DIRECT ones are not called through _jit.run: no hook
                    self._hooks[id(_pair(n))] = lambda n=n: self.wait_for(n)
            _jit.BEFORE_FIRST_CALL.update(self._hooks)
        except BaseException:   # no helper left behind by a half-made Helper
            self.close()
            raise

    def _read(self):
        try:
            for line in self.proc.stdout:
                word = line.decode("ascii", "replace").split()
                if len(word) == 2 and word[0] == "done":
                    with self._cond:
                        self.done.add(word[1])
                        self._cond.notify_all()
        except (OSError, ValueError):  # the pipe closed under us
            pass
        try:
            self.proc.stdout.close()
        except OSError:
            pass
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    def wait_for(self, name):
        """Wait until the helper has cached ``name``, has ended, or WAIT_S after its launch (then
        it is killed). Returns whether ``name`` is cached by it."""
        with self._cond:
            self._cond.wait_for(lambda: name in self.done or self.ended,
                                timeout=max(0.0, self.t0 + WAIT_S - time.monotonic()))
            ok = name in self.done
        if not ok and not self.ended:   # too slow or stuck: compile here instead
            self.close()
        return ok

    def close(self):
        """Kill the helper if it still runs, reap it, and remove its hooks. Idempotent."""
        from . import _jit
        for key in self._hooks:
            _jit.BEFORE_FIRST_CALL.pop(key, None)
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL not delivered
            pass


def _pair(name):
    """The kernel pair (``_jit.kernel_pair``) of ``KERNELS`` entry ``name``."""
    import importlib
    module, _, attr = KERNELS[name].rpartition(".")
    return getattr(importlib.import_module(f"{__package__}.{module or 'numba_conv'}"), attr)


def runnable_others(reads: int = 3, pause: float = 0.002):
    """Runnable tasks on the machine besides this process, now: the fewest of ``reads`` reads of
    /proc/loadavg's fourth field ("running/total", running counting this process), ``pause`` s
    apart (a task that runs for a moment is missed by one read; a busy one shows in every read).
    None where there is no /proc/loadavg."""
    counts = []
    for i in range(reads):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):
            return None
        if i + 1 < reads:
            time.sleep(pause)
    return max(0, min(counts))


def free_core():
    """Whether a core is likely free for the helper: at least 2 cores usable by this process and,
    besides this process, at most (cores - 2) tasks runnable now (``runnable_others``); without
    /proc, a 1-minute load average below (cores - 1) (``os.getloadavg``; unknown: assume so).

    With every core busy a helper gets no core of its own: Linux shares the CPU between sessions
    (autogroups, on by default), and the helper is in ``ember train``'s session, so it only adds
    its own start-up and numba set-up (~2 s of CPU at load 6–8) to the run's share. Measured on the
    shared 2-core machine at load 5.7–8.5 (benchmarks/RESULTS.md, two batches of alternating runs):
    cold start with the helper 33.9 and 35.0 s median (9 and 6 runs), without it 29.7 and 27.8 s
    (main) and 28.9 s (EMBER_PREWARM=0); at load 3–5 forced on took 17.0 s median against 12.9 s.
    With both cores free (eighth session) it took 8.3-8.6 s against 10.0-14.4 s without it. The
    count of tasks runnable now, not the 1-minute load average (which still shows a job for a
    minute after it ended, and a paused or finished one keeps the helper off needlessly).
    EMBER_PREWARM=1 launches it whatever the load.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    if n < 2:
        return False
    others = runnable_others()
    if others is not None:
        return others <= n - 2
    try:
        return os.getloadavg()[0] < n - 1
    except (AttributeError, OSError):
        return True


def start(model, direct=()):
    """Launch a helper for ``model``'s cold backward kernels, and the ``direct`` ones (``DIRECT``
    names: what ``ember train``'s loss and optimizer call) compiled first; the Helper, or None
    when not useful (see the module doc). Never raises: any failure to launch returns None
    (compiling here)."""
    try:
        from . import _jit, mode
        setting = os.environ.get("EMBER_PREWARM", "auto")
        if (setting == "0" or mode() != "fast" or not _jit.AVAILABLE or _jit.THREADING == "parallel"
                or not sys.executable or (setting != "1" and not free_core())):
            return None
        names, dtype = needed(model)
        here = kept_here(model)
        names = [n for n in cold(names) if n not in here]
        if not names:   # nothing of the convolutions to compile: not worth a helper for the rest
            return None
        names = cold([d for d in direct if d in DIRECT]) + names
        return Helper(names, dtype, _index(_dispatcher(names[0]))._cache_path)
    except Exception:
        return None


# ------------------------------------------------------------------------------ the helper side

def _data_before_index():
    """Make numba's IndexDataCacheFile.save write the data file before the index (see module doc).
    False (numba's own order kept) if numba's internals are not the ones expected."""
    from numba.core import caching
    cls = caching.IndexDataCacheFile
    if not all(hasattr(cls, a) for a in ("_load_index", "_save_index", "_save_data", "_data_name")):
        return False

    def save(self, key, data):
        overloads = self._load_index()
        name = overloads.get(key)
        if name is None:
            used, i = set(overloads.values()), 1
            while self._data_name(i) in used:
                i += 1
            name = self._data_name(i)
        self._save_data(name, data)
        overloads[key] = name
        self._save_index(overloads)
    cls.save = save
    return True


# The helper's command: tie its life to the parent's (as _die_with_parent) before importing
# ember and numba (~1 s), then main().
_BOOT = ("import ctypes, os, signal, sys\n"
         "try:\n    ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))\nexcept Exception:\n    pass\n"
         "if os.getppid() != int(sys.argv[2]):\n    os._exit(0)\n"
         "from ember.kernels.prewarm import main\nsys.exit(main(sys.argv[1:]))\n")


def _die_with_parent(parent):
    """Ask Linux to SIGKILL this process when its parent dies; exit now if it already has."""
    try:
        import ctypes
        import signal
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))   # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the parent's close() still ends it
        pass
    if os.getppid() != parent:
        os._exit(0)


def _compile(name, dtype):
    """Call kernel ``name`` once on tiny arrays of ``dtype``, through the wrapper training calls,
    so that numba compiles (and caches) the signature training uses."""
    import numpy as np
    from . import numba_conv as nc
    t = np.dtype(dtype)
    one = np.ones((1, 1, 1, 1), t)
    if name == "unpool_relu":
        nc.unpool_relu(one, one, np.zeros((1, 1, 1, 1), np.uint8), 2, 2, (2, 2))
    elif name == "grad_w":
        nc.conv2d_grad_w(one, one, (1, 1, 1, 1), (1, 1), (1, 1), 1)
    elif name == "grad_x":
        nc.conv2d_grad_x(one, one, 1, 1, (0, 0), (1, 1), (1, 1), 1)
    elif name == "grad_b":
        nc.conv2d_grad_b(one)
    elif name == "winograd_grad_w":
        from . import winograd
        winograd.grad_w(np.ones((1, 2, 2, 1), t), np.ones((1, 1, 2, 2), t), (1, 1))
    elif name in ("cross_entropy", "cross_entropy_backward"):
        from . import numba_loss
        z, target = np.ones((1, 2), t), np.zeros(1, np.intp)       # as numba_loss.CrossEntropy calls them
        if name == "cross_entropy":
            numba_loss._forward(z, target, -100, np.empty_like(z), np.empty(1, t))
        else:
            numba_loss._backward(z, target, -100, np.ones(1, t), np.empty_like(z))
    elif name == "sgd":
        from . import numba_optim
        p = np.ones(2, t)
        numba_optim.sgd_update(p, np.ones(2, t), None, 0.1, 0.0, 0.9, 0.0, True, False)


def main(argv=None):
    """The helper: ``python -m ember.kernels.prewarm --parent PID --cache PATH DTYPE NAME...``.

    Prints ``done NAME`` (flushed) after each kernel is compiled and cached; exits 0, or 3 when
    its cache folder is not PATH (then it compiles nothing)."""
    import argparse
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    p = argparse.ArgumentParser(prog="python -m ember.kernels.prewarm")
    p.add_argument("--parent", type=int, required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("dtype", choices=("float32", "float64"))
    p.add_argument("names", nargs="+", choices=sorted(KERNELS) + sorted(DIRECT))
    a = p.parse_args(argv)
    _die_with_parent(a.parent)
    if _index(_dispatcher(a.names[0])) is None or _index(_dispatcher(a.names[0]))._cache_path != a.cache:
        return 3
    _data_before_index()
    for n in a.names:
        try:
            _compile(n, a.dtype)
        except Exception:  # the training process compiles it itself
            continue
        print("done", n, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
