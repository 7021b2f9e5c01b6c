"""LeNet-5 training and inference speed: ember against PyTorch, in one process, on the same data.

    ember bench [--threads N] [--out report.md] [--json results.json]   # full run (a few minutes)
    ember bench --tiny                          # seconds: what CI runs so the code cannot rot
    python benchmarks/lenet.py [same options]   # the same, as a script (it imports this module)

Method (why the numbers are comparable on a small, noisy machine):
- Same process, same batches (real Fashion-MNIST when installed, else random images), same
  initial weights (ember's LeNet-5 state_dict copied into an identical torch.nn.Sequential),
  the same SGD (lr 0.01, momentum 0.9).
- Both libraries at their defaults: no PyTorch setting is changed (no ``OMP_WAIT_POLICY``, no
  thread count); ``torch.get_num_threads()`` and ember's thread count are reported as they come.
  ``--threads N`` sets both (``torch.set_num_threads`` and ``ember.threads.set_num_threads``).
  (Before issue 13 this module set ``OMP_WAIT_POLICY=PASSIVE``, which slows PyTorch down: the
  figures measured that way do not hold.)
- Alternating runs: ember, torch, ember, torch, ... (``--repeats`` ≥ 3 each), after an untimed
  warm-up of each; every figure is the median, and the ratio is the median of the per-pair
  ratios, so a slow minute hurts both sides of a pair alike.
- CPU seconds (process time, every thread, spinning included) are shown next to wall time: on a
  machine shared with other jobs they say how much work each library did, whatever the waiting.
- Epoch seconds are extrapolated: each run times ``--steps`` training steps (forward, loss,
  zero_grad, backward, SGD step) and scales to 60,000 images (an epoch of Fashion-MNIST).
- Inference: images/s of the forward pass at batch 1000 without a graph (no_grad / eval).
- Peak memory of one training step: the growth of the resident set during one step (after two
  warm-up steps), each library in its own fresh process, measured the same way (see
  ``step_peak_bytes``).
- GFLOP/s counts the multiply-adds of conv and linear layers (forward, weight gradient, and input
  gradient except for the first layer), and is compared with each library's own large float32
  GEMM (1024³) measured in the same run with the same threads.
- Beyond LeNet (``--no-beyond`` skips it): training-step time of the deck-001 network
  (``ember.nn.summary.deck001_example``: Conv2d(3,16,7), ... on 3×256×256, batch 8) and of a
  CIFAR-style network of 3×3 convolutions (ResNet-20's conv layers 16–64 channels at 32×32 as a
  plain Sequential with ReLU, no residuals or batch norm, batch 128), same weights in both.
- Per-op: conv2d forward / input-gradient / weight-gradient, max_pool2d forward / backward and
  cross_entropy forward+backward at LeNet's shapes, each library calling its own kernels.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from .. import __version__, threads
from ..kernels import buffers
from ..autograd import no_grad
from ..models import lenet5
from ..nn import functional as F
from ..optim import SGD
from ..random import manual_seed
from ..tensor import Tensor

EPOCH_IMAGES = 60_000


def parse_args(argv=None):
    """Parse the options of ``add_arguments`` (for ``benchmarks/lenet.py``)."""
    p = argparse.ArgumentParser(description="LeNet-5: ember vs PyTorch, same process, same batches and weights.")
    add_arguments(p)
    return p.parse_args(argv)


def add_arguments(p):
    """Add the benchmark's options to the argparse parser ``p`` (``ember bench`` and the script)."""
    p.add_argument("--threads", type=int, default=None,
                   help="threads for both libraries (default: each library's own default, unchanged)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256], help="default: 64 256")
    p.add_argument("--steps", type=int, default=None,
                   help="timed training steps per run (default: ~6400 images' worth, at least 24)")
    p.add_argument("--repeats", type=int, default=7, help="alternating runs per library, >= 3 (default: 7)")
    p.add_argument("--infer-batch", type=int, default=1000, help="default: 1000")
    p.add_argument("--tiny", action="store_true", help="a few seconds: tiny sizes, to check that it runs")
    p.add_argument("--no-torch", action="store_true", help="ember only (no ratios)")
    p.add_argument("--no-ops", action="store_true", help="skip the per-op table")
    p.add_argument("--no-beyond", action="store_true", help="skip the deck-001 and CIFAR-style networks")
    p.add_argument("--synthetic", action="store_true", help="random images instead of Fashion-MNIST")
    p.add_argument("--out", help="also write the markdown report to this file")
    p.add_argument("--json", help="also write the raw results as JSON to this file")


# ---------------------------------------------------------------------------------------------- setup

def load_images(n, seed=0, synthetic=False):
    """n normalised (n, 1, 28, 28) float32 images and int64 labels (Fashion-MNIST if found)."""
    rng = np.random.default_rng(seed)
    if not synthetic:
        try:
            from .loop import load_data
            x, y = load_data("fashion-mnist", None, train=True)
            idx = rng.permutation(len(x))[:n]
            reps = -(-n // len(idx))
            return np.tile(x[idx], (reps, 1, 1, 1))[:n], np.tile(y[idx], reps)[:n], "Fashion-MNIST"
        except Exception:  # dataset not installed: random images keep the timing meaningful
            pass
    return (rng.standard_normal((n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n),
            "random images (Fashion-MNIST not found)")


def torch_lenet(torch):
    n = torch.nn
    return n.Sequential(n.Conv2d(1, 6, 5, padding=2), n.ReLU(), n.MaxPool2d(2), n.Conv2d(6, 16, 5), n.ReLU(),
                        n.MaxPool2d(2), n.Flatten(), n.Linear(400, 120), n.ReLU(), n.Linear(120, 84), n.ReLU(),
                        n.Linear(84, 10))


def make_pair(torch, seed=0):
    """ember's LeNet-5 and an identical torch model holding the same weights, each with its SGD."""
    manual_seed(seed)
    em = lenet5()
    eo = SGD(em.parameters(), lr=0.01, momentum=0.9)
    if torch is None:
        return (em, eo), None
    tm = torch_lenet(torch)
    tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in em.state_dict().items()})
    to = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
    return (em, eo), (tm, to)


def train_flops_per_image(model):
    """Multiply-adds ×2 of one training image: forward, weight gradient, input gradient (not layer 1)."""
    x = Tensor(np.zeros((1, 1, 28, 28), np.float32))
    total, first = 0, True
    with no_grad():
        for layer in model:
            y = layer(x)
            w = getattr(layer, "weight", None)
            if w is not None:
                macs = int(np.prod(y.shape[1:])) * int(np.prod(w.shape[1:]))  # outputs × fan-in
                total += 2 * macs * (2 if first else 3)
                first = False
            x = y
    return total


# Beyond LeNet: (name, batch, input (C, H, W), layers); each layer ("conv", C_in, C_out, k, stride,
# padding) is followed by a ReLU except the last conv of deck 001's net; ("head", C, classes) is a
# global average pool, flatten and linear layer (deck 001's net gets one too, for a 10-class loss).
_CIFAR = [("conv", 3, 16, 3, 1, 1)] + [("conv", 16, 16, 3, 1, 1)] * 6 + [("conv", 16, 32, 3, 2, 1)] \
    + [("conv", 32, 32, 3, 1, 1)] * 5 + [("conv", 32, 64, 3, 2, 1)] + [("conv", 64, 64, 3, 1, 1)] * 5 + [("head", 64, 10)]
NETWORKS = [("deck-001 network (Conv2d(3,16,7), ... on 3×256×256, + pool/linear head)", 8, (3, 256, 256),
             [("conv", 3, 16, 7, 1, 0), ("conv", 16, 32, 3, 2, 1), ("conv", 32, 64, 3, 1, 1), ("last", 64, 64, 1, 1, 0),
              ("head", 64, 10)]),
            ("CIFAR-style: ResNet-20's 19 3×3 convs (16–64 ch) as a plain net, 3×32×32", 128, (3, 32, 32), _CIFAR)]


def build_net(nn, layers):
    """The Sequential ``layers`` describes, from ``nn`` (ember.nn or torch.nn: same module names)."""
    mods = []
    for kind, *a in layers:
        if kind == "head":
            mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(a[0], a[1])]
        else:
            c, o, k, st, pad = a
            mods += [nn.Conv2d(c, o, k, stride=st, padding=pad)] + ([nn.ReLU()] if kind == "conv" else [])
    return nn.Sequential(*mods)


def network_step_ratio(torch, name, B, shape, layers, repeats, tiny=False):
    """ember and PyTorch training steps of one network, alternating; the row for the report."""
    from .. import nn as enn
    if tiny:
        B, shape = 2, (shape[0], 16, 16)
    manual_seed(0)
    em = build_net(enn, layers)
    eo = SGD(em.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B,) + shape).astype(np.float32)
    with no_grad():
        out = em(Tensor(x))
    y = rng.integers(0, out.shape[1], B)
    fns = [lambda: ember_train(em, eo, [(x, y)])]
    if torch is not None:
        tm = build_net(torch.nn, layers)
        tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in em.state_dict().items()})
        to = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
        tb = [(torch.from_numpy(x), torch.from_numpy(y))]
        fns.append(lambda: torch_train(torch, tm, to, tb))
    times = alternate(fns, repeats)
    row = {"network": name, "batch": B, "ember_ms": statistics.median(times[0]) * 1e3,
           "ember_runs_ms": [t * 1e3 for t in times[0]]}
    if torch is not None:
        row.update(torch_ms=statistics.median(times[1]) * 1e3, torch_runs_ms=[t * 1e3 for t in times[1]],
                   ratio=pair_ratio(times[0], times[1]), run_ratios=[a / b for a, b in zip(*times)])
    return row


# --------------------------------------------------------------------------------------------- timing

def ember_train(model, opt, batches):
    t0 = time.perf_counter()
    for x, y in batches:
        loss = F.cross_entropy(model(Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss.item()
    return time.perf_counter() - t0


def torch_train(torch, model, opt, batches):
    t0 = time.perf_counter()
    for x, y in batches:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss.item()
    return time.perf_counter() - t0


def ember_infer(model, batches):
    model.eval()
    t0 = time.perf_counter()
    with no_grad():
        for x in batches:
            model(Tensor(x))._data.argmax(1)
    dt = time.perf_counter() - t0
    model.train()
    return dt


def torch_infer(torch, model, batches):
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        for x in batches:
            model(x).argmax(1)
    dt = time.perf_counter() - t0
    model.train()
    return dt


def alternate(fns, repeats):
    """Run each fn once untimed, then ``repeats`` rounds of all fns in turn; lists of seconds."""
    for f in fns:
        f()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for f, ts in zip(fns, times):
            ts.append(f())
    return times


def _with_cpu(f):
    """f, returning (wall seconds, CPU seconds of this process: all threads, spinning included)."""
    def g():
        c0 = time.process_time()
        wall = f()
        return wall, time.process_time() - c0
    return g


def pair_ratio(a, b):
    """Median of the per-round ratios a[i]/b[i] (each round ran both back to back)."""
    return statistics.median(x / y for x, y in zip(a, b))


def gemm_gflops(matmul, make, n, repeats=5):
    a, b = make(n), make(n)
    matmul(a, b)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        matmul(a, b)
        ts.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(ts) / 1e9


def _rss_kib(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field + ":"))


def _memory_child(lib, B, threads_n):
    """In a fresh process: peak RSS growth of one training step after two warm-up steps, in bytes."""
    x, y, _ = load_images(B, synthetic=True)
    if lib == "torch":
        import torch
        if threads_n:
            torch.set_num_threads(threads_n)
        _, (model, opt) = make_pair(torch)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        step = lambda: torch_train(torch, model, opt, [(x, y)])  # noqa: E731
    else:
        if threads_n:
            threads.set_num_threads(threads_n)
        (model, opt), _ = make_pair(None)
        step = lambda: ember_train(model, opt, [(x, y)])  # noqa: E731
    return peak_step_growth(step)


def peak_step_growth(step) -> int:
    """Peak resident-set growth, in bytes, of one call of ``step()`` after two warm-up calls: VmHWM
    (reset through /proc/self/clear_refs first) minus VmRSS before. Linux only; run it in a fresh
    process started by ``fresh_process_int`` (benchmarks/conv_layers.py --memory uses it too).
    ember's kernel buffer pool (``ember.kernels.buffers``) is emptied first: the step's own
    buffers count, not ones the warm-up steps left mapped."""
    step()
    step()
    buffers.empty_cache()
    base = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                           # reset the peak-RSS mark (VmHWM)
    step()
    return (_rss_kib("VmHWM") - base) * 1024


def fresh_process_int(code: str, timeout: float = 300) -> int:
    """Run ``python -c code`` in a fresh process with MALLOC_MMAP_THRESHOLD_=65536 (glibc maps
    every large buffer fresh and unmaps it when freed, so the resident set follows what a step
    allocates) and return the int its last line of output prints. Raises subprocess errors,
    ValueError or IndexError when the child fails or prints no int."""
    import subprocess
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=timeout, check=True).stdout
    return int(out.strip().splitlines()[-1])


def step_peak_bytes(lib, B, threads_n):
    """Peak memory of one training step of ``lib`` ("ember" or "torch") at batch B, or None.

    Same method for both libraries, each in its own fresh process: the growth of the resident set
    (VmHWM after resetting it, minus VmRSS before) during one step that follows two warm-up steps.
    MALLOC_MMAP_THRESHOLD_=65536 makes glibc map every large buffer fresh and unmap it when freed,
    so the resident set follows what the step allocates instead of glibc's recycled arenas.
    """
    import subprocess
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    code = f"from ember.training import bench; print(bench._memory_child({lib!r}, {B}, {threads_n}))"
    try:
        return fresh_process_int(code)
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return None


# -------------------------------------------------------------------------------------------- per-op

def per_op(torch, B, repeats, rng):
    """Median ms of each LeNet op in both libraries, called directly (no autograd graph)."""
    from ..autograd import Context           # imported here: the op classes are not needed to parse options
    from .. import kernels
    from ..ops import conv as ref_conv, pool as ref_pool
    ConvK, PoolK = kernels.dispatch(ref_conv.Conv2d), kernels.dispatch(ref_pool.MaxPool2d)   # what models run
    from ..ops import loss as ember_loss
    x1 = np.maximum(rng.standard_normal((B, 6, 14, 14)), 0).astype(np.float32)  # conv2's input
    w = (rng.standard_normal((16, 6, 5, 5)) * 0.1).astype(np.float32)
    b = np.zeros(16, np.float32)
    g = rng.standard_normal((B, 16, 10, 10)).astype(np.float32)
    p_in = np.maximum(rng.standard_normal((B, 6, 28, 28)), 0).astype(np.float32)  # pool1's input
    gp = rng.standard_normal((B, 6, 14, 14)).astype(np.float32)
    z = rng.standard_normal((B, 10)).astype(np.float32)
    t = rng.integers(0, 10, B)

    def e_conv(need):
        def f():
            ctx = Context(ConvK, None, need)
            ConvK.forward(ctx, x1, w, b)
            if any(need):
                ConvK.backward(ctx, g)
        return f

    def e_pool(back):
        def f():
            ctx = Context(PoolK, None, (True,))
            PoolK.forward(ctx, p_in, (2, 2), (2, 2))
            if back:
                PoolK.backward(ctx, gp)
        return f

    def e_xent():
        ctx = Context(ember_loss.CrossEntropy, None, (True, False))
        ember_loss.CrossEntropy.forward(ctx, z, t)
        ember_loss.CrossEntropy.backward(ctx, np.asarray(1, np.float32))

    rows = [("conv2d 6→16 k5 forward", e_conv((False, False, False))),
            ("conv2d forward + input-grad", e_conv((True, False, False))),
            ("conv2d forward + weight/bias-grad", e_conv((False, True, True))),
            ("max_pool2d 2×2 forward", e_pool(False)),
            ("max_pool2d forward + backward", e_pool(True)),
            ("cross_entropy forward + backward", e_xent)]
    if torch is not None:
        tx1, tw, tb, tg = map(torch.from_numpy, (x1, w, b, g))
        tp, tgp, tz, tt = torch.from_numpy(p_in), torch.from_numpy(gp), torch.from_numpy(z), torch.from_numpy(t)
        A = torch.ops.aten

        def t_conv(mask):
            def f():
                y = A.convolution(tx1, tw, tb, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
                if any(mask):
                    A.convolution_backward(tg, tx1, tw, [16], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, mask)
                return y
            return f

        def t_pool(back):
            def f():
                y, idx = A.max_pool2d_with_indices(tp, [2, 2], [2, 2])
                if back:
                    A.max_pool2d_with_indices_backward(tgp, tp, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)
            return f

        def t_xent():
            zz = tz.detach().requires_grad_()
            torch.nn.functional.cross_entropy(zz, tt).backward()

        trows = [t_conv([False] * 3), t_conv([True, False, False]), t_conv([False, True, True]),
                 t_pool(False), t_pool(True), t_xent]
    out = []
    for i, (name, ef) in enumerate(rows):
        fns = [lambda ef=ef: _time_n(ef, 10)] + ([lambda tf=trows[i]: _time_n(tf, 10)] if torch else [])
        times = alternate(fns, repeats)
        e_ms = statistics.median(times[0]) * 1e3
        t_ms = statistics.median(times[1]) * 1e3 if torch else None
        out.append({"op": name, "ember_ms": e_ms, "torch_ms": t_ms,
                    "ratio": pair_ratio(times[0], times[1]) if torch else None})
    return out


def _time_n(f, n):
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t0) / n


# ---------------------------------------------------------------------------------------------- main

def cpu_ticks():
    """(steal, total) clock ticks of all CPUs since boot from /proc/stat's ``cpu`` line, or None.

    Steal is the time the hypervisor ran other guests while this machine's virtual CPUs wanted
    to run: on a shared virtual machine it slows any timing, ember's and PyTorch's alike."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_percent(start, end):
    """Percent of the CPU time between two ``cpu_ticks()`` readings that was stolen (None if unknown)."""
    if start is None or end is None or end[1] <= start[1]:
        return None
    return 100.0 * (end[0] - start[0]) / (end[1] - start[1])


def machine_info(torch):
    info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__ if torch else None, "ember": __version__,
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        from threadpoolctl import threadpool_info
        blas = [d for d in threadpool_info() if d.get("user_api") == "blas"]
        info["blas"] = "; ".join(f"{d['internal_api']} {d.get('version')} ({d.get('architecture')}, "
                                 f"{os.path.basename(d['filepath'])})" for d in blas)
    except ImportError:
        info["blas"] = "unknown (threadpoolctl missing)"
    try:
        info["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass
    return info


def run(args) -> dict:
    """Run the benchmark described by ``args``; return the results dict (also printed)."""
    if args.repeats < 3 and not args.tiny:
        raise ValueError(f"--repeats must be at least 3 (medians), got {args.repeats}")
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch not installed: timing ember only", file=sys.stderr)
    if args.tiny:
        args.batch_sizes, args.steps, args.infer_batch = [16], 2, 32
        args.repeats = max(3, min(args.repeats, 3))
    T = args.threads
    if T:
        threads.set_num_threads(T)
        if torch is not None:
            torch.set_num_threads(T)
    rng = np.random.default_rng(0)
    ticks0 = cpu_ticks()
    res = {"machine": machine_info(torch), "threads": T, "configs": [], "ops": [],
           "ember_threads": threads.get_num_threads(),
           "torch_threads": torch.get_num_threads() if torch is not None else None,
           "kernels": _kernel_names()}
    flops_img = train_flops_per_image(lenet5())
    res["train_flops_per_image"] = flops_img
    n_gemm = 256 if args.tiny else 1024
    res["gemm_gflops"] = {"numpy": gemm_gflops(threads.matmul, lambda n: rng.standard_normal((n, n)).astype(np.float32), n_gemm)}
    if torch is not None:
        res["gemm_gflops"]["torch"] = gemm_gflops(torch.mm, lambda n: torch.randn(n, n), n_gemm)
    max_steps = max(args.steps or max(24, 6400 // B) for B in args.batch_sizes)
    x_all, y_all, res["data"] = load_images(max(max_steps * max(args.batch_sizes), args.infer_batch * 3),
                                            synthetic=args.synthetic)
    for B in args.batch_sizes:
        steps = args.steps or max(24, 6400 // B)
        batches = [(x_all[i * B:(i + 1) * B], y_all[i * B:(i + 1) * B]) for i in range(steps)]
        (em, eo), tpair = make_pair(torch)
        fns = [lambda: ember_train(em, eo, batches)]
        if tpair:
            tm, to = tpair
            tb = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
            fns.append(lambda: torch_train(torch, tm, to, tb))
        both = alternate([_with_cpu(f) for f in fns], args.repeats)
        times = [[w for w, _ in ts] for ts in both]
        cpu = [[c for _, c in ts] for ts in both]
        scale = EPOCH_IMAGES / (steps * B)
        row = {"batch": B, "steps_timed": steps, "ember_epoch_s": statistics.median(times[0]) * scale,
               "ember_runs_s": [t * scale for t in times[0]]}
        row["ember_cpu_epoch_s"] = statistics.median(cpu[0]) * scale
        row["ember_gflops"] = flops_img * steps * B / statistics.median(times[0]) / 1e9
        row["ember_peak_bytes"] = step_peak_bytes("ember", B, T)
        if tpair:
            row["torch_epoch_s"] = statistics.median(times[1]) * scale
            row["torch_runs_s"] = [t * scale for t in times[1]]
            row["ratio"] = pair_ratio(times[0], times[1])
            row["run_ratios"] = [a / b for a, b in zip(times[0], times[1])]
            row["torch_cpu_epoch_s"] = statistics.median(cpu[1]) * scale
            row["cpu_ratio"] = pair_ratio(cpu[0], cpu[1])
            row["torch_gflops"] = flops_img * steps * B / statistics.median(times[1]) / 1e9
            # --tiny skips PyTorch's memory probe: importing torch in a fresh process is most of its time
            row["torch_peak_bytes"] = None if args.tiny else step_peak_bytes("torch", B, T)
        res["configs"].append(row)
    # inference at --infer-batch
    IB = args.infer_batch
    ibatches = [x_all[i * IB:(i + 1) * IB] for i in range(3)]
    (em, _), tpair = make_pair(torch)
    fns = [lambda: ember_infer(em, ibatches)]
    if tpair:
        tib = [torch.from_numpy(x) for x in ibatches]
        fns.append(lambda: torch_infer(torch, tpair[0], tib))
    times = alternate(fns, args.repeats)
    inf = {"batch": IB, "ember_img_s": 3 * IB / statistics.median(times[0])}
    if tpair:
        inf["torch_img_s"] = 3 * IB / statistics.median(times[1])
        inf["ratio"] = pair_ratio(times[1], times[0])  # throughput ratio ember/torch = time_torch/time_ember
        inf["run_ratios"] = [b / a for a, b in zip(times[0], times[1])]
    res["inference"] = inf
    res["networks"] = [] if args.no_beyond else [network_step_ratio(torch, *net, args.repeats, args.tiny)
                                                 for net in NETWORKS]
    if not args.no_ops:
        res["ops"] = per_op(torch, args.batch_sizes[0], args.repeats, rng)
    res["machine"]["steal_percent"] = steal_percent(ticks0, cpu_ticks())
    report = markdown(res)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return res


def _percent(v):
    return "unknown" if v is None else f"{v:.1f}%"


def markdown(res) -> str:
    m, lim = res["machine"], res["gemm_gflops"]
    torch_on = "torch_gflops" in (res["configs"][0] if res["configs"] else {})
    L = [f"### LeNet-5, {res['data']}",
         "",
         f"{m['date']} · {m['cpu']} ({m['cores']} cores) · Python {m['python']} · NumPy {m['numpy']} · "
         f"BLAS {m.get('blas')} · PyTorch {m['torch']} · OMP_WAIT_POLICY={m['OMP_WAIT_POLICY']} · "
         f"threads: ember {res.get('ember_threads')}, PyTorch {res.get('torch_threads')} "
         f"({'--threads ' + str(res['threads']) if res['threads'] else 'defaults'}) · "
         f"kernels {res.get('kernels')} · "
         f"load average at start {tuple(round(x, 1) for x in m.get('load_average_at_start', ()))} · "
         f"CPU steal during the run {_percent(m.get('steal_percent'))}",
         "",
         f"Large float32 GEMM limit (1024³, same threads): NumPy {lim['numpy']:.0f} GFLOP/s"
         + (f", PyTorch {lim['torch']:.0f} GFLOP/s" if "torch" in lim else "")
         + f". Training cost: {res['train_flops_per_image'] / 1e6:.2f} MFLOP per image.",
         ""]
    if torch_on:
        L += ["| batch | ember epoch s | PyTorch epoch s | ratio ember/PyTorch | CPU s ember / PyTorch (ratio) "
              "| ember GFLOP/s (% of limit) | PyTorch GFLOP/s (% of limit) | peak step memory ember / PyTorch |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in res["configs"]:
            L.append(f"| {r['batch']} | {r['ember_epoch_s']:.2f} | {r['torch_epoch_s']:.2f} | **{r['ratio']:.2f}** "
                     f"| {r['ember_cpu_epoch_s']:.2f} / {r['torch_cpu_epoch_s']:.2f} ({r['cpu_ratio']:.2f}) "
                     f"| {r['ember_gflops']:.1f} ({100 * r['ember_gflops'] / lim['numpy']:.0f}%) "
                     f"| {r['torch_gflops']:.1f} ({100 * r['torch_gflops'] / lim['torch']:.0f}%) "
                     f"| {_mib(r['ember_peak_bytes'])} / {_mib(r['torch_peak_bytes'])} |")
        i = res["inference"]
        L += ["", "Every run (ember/PyTorch time of each alternating pair): "
              + "; ".join(f"batch {r['batch']}: " + ", ".join(f"{x:.2f}" for x in r["run_ratios"])
                          for r in res["configs"]),
              "", f"Inference at batch {i['batch']}: ember {i['ember_img_s']:,.0f} img/s, PyTorch "
              f"{i['torch_img_s']:,.0f} img/s, throughput ratio ember/PyTorch **{i['ratio']:.2f}** "
              f"(runs: {', '.join(f'{x:.2f}' for x in i['run_ratios'])})."]
    else:
        L += ["| batch | ember epoch s | ember GFLOP/s | peak step memory |", "|---:|---:|---:|---:|"]
        for r in res["configs"]:
            L.append(f"| {r['batch']} | {r['ember_epoch_s']:.2f} | {r['ember_gflops']:.1f} "
                     f"| {_mib(r['ember_peak_bytes'])} |")
        L += ["", f"Inference at batch {res['inference']['batch']}: ember {res['inference']['ember_img_s']:,.0f} img/s."]
    L += ["", f"Epoch seconds extrapolated from {', '.join(str(r['steps_timed']) for r in res['configs'])} timed "
          "steps per run; medians of the alternating runs; ratio = median of per-pair ratios."]
    if res.get("networks"):
        L += ["", "Training step beyond LeNet (ms; every run, then the median; ratio = median of per-pair ratios):", "",
              "| network | batch | ember ms (runs) | PyTorch ms (runs) | ratio ember/PyTorch (runs) |",
              "|---|---:|---:|---:|---:|"]
        for r in res["networks"]:
            runs = lambda xs: ", ".join(f"{x:.0f}" for x in xs)  # noqa: E731
            if "ratio" in r:
                L.append(f"| {r['network']} | {r['batch']} | {r['ember_ms']:.0f} ({runs(r['ember_runs_ms'])}) "
                         f"| {r['torch_ms']:.0f} ({runs(r['torch_runs_ms'])}) | **{r['ratio']:.2f}** "
                         f"({', '.join(f'{x:.2f}' for x in r['run_ratios'])}) |")
            else:
                L.append(f"| {r['network']} | {r['batch']} | {r['ember_ms']:.0f} ({runs(r['ember_runs_ms'])}) | – | – |")
    if res["ops"]:
        L += ["", f"Per-op, batch {res['configs'][0]['batch'] if res['configs'] else '?'} (LeNet's conv2 and pool1 "
              "shapes; ms per call, median):", "",
              "| op | ember ms | PyTorch ms | ratio |", "|---|---:|---:|---:|"]
        for o in res["ops"]:
            t = f"{o['torch_ms']:.3f}" if o["torch_ms"] is not None else "–"
            r = f"{o['ratio']:.2f}" if o["ratio"] is not None else "–"
            L.append(f"| {o['op']} | {o['ember_ms']:.3f} | {t} | {r} |")
    return "\n".join(L) + "\n"


def _kernel_names():
    """Which kernels dispatch picks for conv2d and max-pool now, e.g. 'numba_conv.Conv2d, numba_pool.MaxPool2d'."""
    from .. import kernels
    from ..ops import conv, pool
    return ", ".join(f"{k.__module__.rpartition('.')[2]}.{k.__name__}"
                     for k in (kernels.dispatch(conv.Conv2d), kernels.dispatch(pool.MaxPool2d)))


def _mib(b):
    return "n/a" if b is None else f"{b / 2**20:.2f} MiB"


def main(argv=None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
