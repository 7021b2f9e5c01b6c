"""Where an ember ResNet-20 training step spends its time, per op class, with `ember train`'s
data pipeline and optimizer (issue 16: the step apart from the convolutions).

    python benchmarks/resnet20_profile.py [--batch-size 128] [--steps 6] [--warmup 2] [--threads N]

Method: every ``Function`` subclass's ``forward`` and ``backward`` is wrapped by a timer that
counts only the outermost call (a kernel calling its reference op's code is counted once, under
the class dispatch chose), measuring wall time (``perf_counter``) and this process's CPU time
(``process_time``: all threads). A step is what ``ember train`` runs per batch: the DataLoader's
batch (a gather of 128 normalised float32 pictures), ``--augment`` (``RandomCrop(32, padding=4)``
+ ``RandomHorizontalFlip`` on the float32 batch), forward, cross-entropy, ``zero_grad``, backward
and SGD (Nesterov momentum 0.9, weight decay 5e-4 on the weights only, as ``build_optimizer``).
Random pictures stand in for CIFAR-10 (the op times do not depend on the values). What no op
accounts for (the autograd engine's bookkeeping, module calls, Tensor wrapping) is "other".
Prints one table: op class, its share of the step, ms per step (wall and CPU).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import ember  # noqa: E402
from ember.autograd import Function  # noqa: E402
from ember.data import DataLoader, TensorDataset  # noqa: E402
from ember.nn import functional as F  # noqa: E402
from ember.training.config import TrainConfig  # noqa: E402
from ember.training.data import augmentation  # noqa: E402
from ember.training.schedules import build_optimizer  # noqa: E402
from ember.models.cifar import BasicBlock  # noqa: E402

WALL, CPU = defaultdict(float), defaultdict(float)


def _plain_shortcut(self, x):
    """ResNet-20's option-A shortcut as main had it before issue 16's step work (the result is
    always NCHW, so ``out + shortcut(x)`` mixes layouts after the first downsampling block)."""
    if self.stride != 1:
        x = x[:, :, ::self.stride, ::self.stride]
    if self.extra:
        x = F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
    return x


SHORTCUTS = {"plain": _plain_shortcut, "layout": BasicBlock.shortcut}
VARIANTS = {"before": ("reference", "plain"), "bn": ("kernel", "plain"), "after": ("kernel", "layout")}
_depth = [0]


def _all_functions(cls=Function):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_functions(sub)


def _timed(fn, key):
    def wrapper(*args, **kwargs):
        if _depth[0]:
            return fn(*args, **kwargs)
        _depth[0] += 1
        w, c = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            WALL[key] += time.perf_counter() - w
            CPU[key] += time.process_time() - c
            _depth[0] -= 1
    return staticmethod(wrapper)


def instrument() -> None:
    """Wrap forward/backward of every Function subclass (``cls.__dict__`` only, so each body once)."""
    for cls in set(_all_functions()):
        for name in ("forward", "backward"):
            if name in cls.__dict__:
                setattr(cls, name, _timed(cls.__dict__[name].__func__, f"{_op_name(cls)} {name}"))


def _op_name(cls) -> str:
    """The reference op a class is (a kernel subclass counts as its reference op)."""
    for c in cls.__mro__:
        if c.__module__.startswith("ember.ops") or c.__module__.startswith("ember.autograd"):
            return c.__name__
    return cls.__name__


def timed(key, fn, *args):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    WALL[key] += time.perf_counter() - w
    CPU[key] += time.process_time() - c
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--variant", choices=[*VARIANTS, "compare"], default="after",
                   help="before: BatchNorm's reference op and the plain option-A shortcut (main before issue "
                        "16's step work); bn: the numba BatchNorm kernel; after: the kernel and the shortcut "
                        "that keeps the CHWN layout (this branch); compare: the three in alternating rounds "
                        "of --steps steps, --rounds times (default: after)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    if args.threads:
        ember.kernels.set_num_threads(args.threads)
    instrument()
    ember.manual_seed(0)
    n = args.batch_size * max(args.steps, args.warmup)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, n)
    cfg = TrainConfig(model="resnet20", dataset="cifar10", lr=0.1, batch_size=args.batch_size)
    from ember.models import resnet20
    model = resnet20()
    opt = build_optimizer(model, cfg)
    augment = augmentation("cifar10")
    loader = DataLoader(TensorDataset(x, y), batch_size=args.batch_size, shuffle=True,
                        generator=ember.random.default_generator())
    model.train()
    from ember.kernels import _KERNELS
    from ember.ops.norm import BatchNorm
    kernel = _KERNELS.get(BatchNorm)

    def steps(count, variant):
        """Run ``count`` steps of ``variant`` (a VARIANTS key); (wall, CPU) seconds in all."""
        bn, shortcut = VARIANTS[variant]
        if bn == "kernel" and kernel is not None:
            _KERNELS[BatchNorm] = kernel
        else:
            _KERNELS.pop(BatchNorm, None)
        BasicBlock.shortcut = SHORTCUTS[shortcut]
        it = iter(loader)
        w, c = time.perf_counter(), time.process_time()
        for _ in range(count):
            xb, yb = timed("data: DataLoader batch (gather)", next, it)
            xb = timed("data: augmentation (crop + flip)", augment, xb)
            loss = F.cross_entropy(model(xb), yb)
            loss.item()
            timed("optimizer: zero_grad", opt.zero_grad)
            loss.backward()
            timed("optimizer: SGD step", opt.step)
        return time.perf_counter() - w, time.process_time() - c

    if args.variant == "compare":               # alternating rounds, same process, same batches
        for v in VARIANTS:
            steps(args.warmup, v)
        per = {v: [] for v in VARIANTS}
        loads = [open("/proc/loadavg").read().split()[0]]
        for _ in range(args.rounds):
            for v in VARIANTS:
                w, c = steps(args.steps, v)
                per[v].append((w / args.steps, c / args.steps))
            loads.append(open("/proc/loadavg").read().split()[0])
        print(f"ResNet-20 step, batch {args.batch_size}, {args.rounds} alternating rounds of {args.steps} steps "
              f"per variant; 1-min load average before/after each round: {', '.join(loads)}")
        for v, runs in per.items():
            cpu = sorted(c for _, c in runs)
            print(f"  {v:6s}: CPU s/step {', '.join(f'{c:.3f}' for _, c in runs)} (median {cpu[len(cpu) // 2]:.3f}); "
                  f"wall s/step {', '.join(f'{w:.3f}' for w, _ in runs)}")
        return per
    steps(args.warmup, args.variant)
    WALL.clear(), CPU.clear()
    total_w, total_c = steps(args.steps, args.variant)
    ops_w = sum(WALL.values())
    WALL["other (autograd engine, modules, Tensor wrapping)"] = total_w - ops_w
    CPU["other (autograd engine, modules, Tensor wrapping)"] = total_c - sum(CPU.values())
    print(f"ResNet-20 step ({args.variant}), batch {args.batch_size}, {args.steps} steps after {args.warmup} warm-up: "
          f"{total_w / args.steps:.3f} s wall, {total_c / args.steps:.3f} s CPU per step; "
          f"threads {ember.kernels.get_num_threads()}; load {open('/proc/loadavg').read().split()[:3]}")
    print(f"{'op':58s} {'CPU share':>9s} {'CPU ms':>8s} {'wall ms':>8s}")
    for key in sorted(CPU, key=lambda k: -CPU[k]):
        print(f"{key:58s} {100 * CPU[key] / total_c:8.1f}% {1000 * CPU[key] / args.steps:8.1f} "
              f"{1000 * WALL[key] / args.steps:8.1f}")
    return {k: CPU[k] / args.steps for k in CPU}


if __name__ == "__main__":
    main()
