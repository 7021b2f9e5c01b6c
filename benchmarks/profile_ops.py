"""Where an ember LeNet-5 training step spends its CPU time, op by op.

    python benchmarks/profile_ops.py [--batch 64] [--steps 30] [--threads N] [--wall]

Wraps every ``Function.forward``/``backward`` defined in ember.ops and ember.kernels (the numba
kernels included, e.g. ``numba_conv.Conv2d.forward``) with a CPU-time counter (process time, so
other jobs on a shared machine barely disturb it), and the optimizer's ``step`` and
``zero_grad``; trains ``--steps`` steps on random images after one untimed pass, and prints ms
per step for each, plus the rest (module calls, the engine's bookkeeping). Per-op wrapping adds a few µs per call. With ``--threads 2``
the CPU time counts both threads; ``--wall`` counts elapsed time instead, which is what the
ops' threads shorten.
"""
import argparse
import collections
import importlib
import pkgutil
import time

import numpy as np

import ember
from ember import threads
from ember.autograd import Function
from ember.models import lenet5
from ember.nn import functional as F
from ember import kernels
from ember.ops import activation, conv, elementwise, loss, matmul, movement, pool, reduce
from ember.optim import SGD
from ember.tensor import Tensor


def _modules():
    """The modules whose Function subclasses are timed: ember.ops and every kernel module of
    ember.kernels (the numba ones included), found by walking the packages, so a new kernel
    module is named in the profile instead of vanishing into "rest"."""
    mods = [activation, conv, elementwise, loss, matmul, movement, pool, reduce]
    for pkg in (ember.ops, kernels):
        for info in pkgutil.iter_modules(pkg.__path__):
            mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
            if mod not in mods:
                mods.append(mod)
    return mods


_depth = [0]   # > 0 while a timed op runs: nested ops (a kernel calling its fallback) count once


def instrument(counter, clock=time.process_time):
    """Wrap forward/backward of every Function subclass in ember.ops and ember.kernels (numba
    kernels included: ``numba_conv.Conv2d.forward``) to add ``clock`` seconds to counter. Each
    class is keyed by its module and name, and only the methods it defines itself are wrapped."""
    seen = set()
    for mod in _modules():
        for name, cls in vars(mod).items():
            if not (isinstance(cls, type) and issubclass(cls, Function) and cls is not Function):
                continue
            if cls in seen or cls.__module__ != mod.__name__:           # imported, not defined here
                continue
            seen.add(cls)
            name = f"{mod.__name__.rpartition('.')[2]}.{name}"
            for meth in ("forward", "backward"):
                f = cls.__dict__.get(meth)
                if f is None:
                    continue
                f = f.__func__ if isinstance(f, staticmethod) else f

                def timed(*a, _f=f, _key=f"{name}.{meth}", **k):
                    if _depth[0]:                                # inside another timed op
                        return _f(*a, **k)                       # (a kernel's fallback): its time
                    _depth[0] += 1
                    t0 = clock()
                    try:
                        return _f(*a, **k)
                    finally:
                        counter[_key] += clock() - t0
                        _depth[0] -= 1
                setattr(cls, meth, staticmethod(timed))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=None, help="ember's threads (default: its default)")
    p.add_argument("--wall", action="store_true", help="elapsed time instead of CPU time")
    args = p.parse_args(argv)
    clock = time.perf_counter if args.wall else time.process_time
    if args.threads:
        threads.set_num_threads(args.threads)
    args.threads = threads.get_num_threads()
    counter = collections.Counter()
    instrument(counter, clock)
    ember.manual_seed(0)
    model = lenet5()
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((args.steps, args.batch, 1, 28, 28)).astype(np.float32)
    ys = rng.integers(0, 10, (args.steps, args.batch))

    for meth in ("step", "zero_grad"):                         # the optimizer's share, by name
        def timed(*a, _f=getattr(opt, meth), _key=f"SGD.{meth}", **k):
            t0 = clock()
            try:
                return _f(*a, **k)
            finally:
                counter[_key] += clock() - t0
        setattr(opt, meth, timed)

    def run():
        for x, y in zip(xs, ys):
            out = F.cross_entropy(model(Tensor(x)), y)
            opt.zero_grad()
            out.backward()
            opt.step()
    run()
    counter.clear()
    t0 = clock()
    run()
    total = (clock() - t0) / args.steps * 1e3
    kind = "elapsed" if args.wall else "CPU"
    print(f"LeNet-5 training step, batch {args.batch}, {args.threads} thread(s): {total:.2f} ms {kind} per step")
    for key, sec in counter.most_common():
        ms = sec / args.steps * 1e3
        print(f"  {key:36s} {ms:7.3f} ms  {100 * ms / total:4.1f}%")
    rest = total - sum(counter.values()) / args.steps * 1e3
    print(f"  {'rest (modules, engine)':36s} {rest:7.3f} ms  {100 * rest / total:4.1f}%")


if __name__ == "__main__":
    main()
