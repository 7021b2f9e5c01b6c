"""ember's numba kernels against ember's NumPy path and PyTorch at its defaults, in one process.

    python benchmarks/kernels_numba.py                     # per-op and LeNet-5 step, batch 64 and 256
    python benchmarks/kernels_numba.py --batch 64 --runs 9 --steps 20
    python benchmarks/kernels_numba.py --threads 2         # sets ember's AND torch's thread count
    python benchmarks/kernels_numba.py --jit               # cold / warm JIT cache: launch to first step
    python benchmarks/kernels_numba.py --beyond            # also conv2d at the deck-001 and CIFAR shapes
    python benchmarks/kernels_numba.py --tiny              # seconds: CI runs this so it cannot rot

Method:
- PyTorch at its defaults: nothing about its threads or OpenMP is set (no OMP_WAIT_POLICY, no
  torch.set_num_threads) unless ``--threads`` is given; torch.get_num_threads() and every BLAS /
  OpenMP pool threadpoolctl sees are printed.
- The three candidates run on the same batches and the same initial weights: "numpy" = ember as
  on main (ember.ops.conv's blocked CHWN conv and NumPy pooling), "numba" = ember with
  ``ember.ops.conv.Conv2d`` and ``.MaxPool2d`` swapped for ``ember.kernels.numba_conv.Conv2d`` /
  ``numba_pool.MaxPool2d`` (a monkeypatch of the module attribute ``ember.nn.functional`` calls:
  the dispatch ``ember.kernels.dispatch`` does not exist on this branch yet), "torch".
- Alternating runs (numpy, numba, torch, numpy, ...) after an untimed warm-up of each; every
  run is listed; the median and the best run are reported (on a machine shared with other jobs
  the best run is the closest to the code's own speed: a run can only be slowed down by them).
  CPU time on a loaded Linux machine is charged by scheduler ticks (4 ms here), so for calls of
  a few ms it is quantised and biased; it means something only summed over many steps. Wall time and CPU time (process time, all threads,
  spinning included) per step: on a shared machine CPU time says how much work was done.
- LeNet-5: conv(1→6, 5, pad 2) → ReLU → maxpool 2 → conv(6→16, 5) → ReLU → maxpool 2 →
  Linear 400→120→84→10, built from ember.nn / torch.nn layers; a step is forward, cross-entropy,
  zero_grad, backward, SGD(lr 0.01, momentum 0.9) step. Inference: forward at batch 1000 under
  no_grad.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import ember  # noqa: E402
import ember.nn as enn  # noqa: E402
from ember.autograd import Context  # noqa: E402
from ember.kernels import _jit, numba_conv, numba_pool  # noqa: E402
from ember.nn import functional as F  # noqa: E402
from ember.ops import conv as ops_conv  # noqa: E402
from ember.optim import SGD  # noqa: E402
from ember.tensor import Tensor  # noqa: E402

try:  # where things live after the layout change (issue 11), and before it
    from ember.kernels import threads  # noqa: E402
except ImportError:
    from ember import threads  # noqa: E402
try:
    from ember.ops import pool as ops_pool  # noqa: E402
except ImportError:
    ops_pool = ops_conv

# F.conv2d / F.max_pool2d look these module attributes up at every call (through
# ember.kernels.dispatch after the layout change, which maps an unregistered class to itself)
SLOTS = {"Conv2d": ops_conv, "MaxPool2d": ops_pool}
REFERENCE = {"Conv2d": ops_conv.Conv2d, "MaxPool2d": ops_pool.MaxPool2d}
KERNELS = {"Conv2d": numba_conv.Conv2d, "MaxPool2d": numba_pool.MaxPool2d}
try:  # per op, "numpy" is today's NumPy fast path: ember.kernels.conv / .pool after the layout change
    from ember.kernels import conv as _kconv, pool as _kpool  # noqa: E402
    NUMPY = {"Conv2d": _kconv.Conv2d, "MaxPool2d": _kpool.MaxPool2d}
except ImportError:  # before it, the ops themselves
    NUMPY = dict(REFERENCE)


@contextlib.contextmanager
def use(kind):
    """Inside the block, ember.nn's conv2d / max_pool2d run the numba kernels (kind "numba" or
    "numba-<threading mode>": parallel, pool, serial; see ember/kernels/_jit.py)."""
    table = KERNELS if kind.startswith("numba") else REFERENCE
    saved = _jit.THREADING
    if kind.startswith("numba-") and kind != "numba-fused":
        _jit.THREADING = kind[len("numba-"):]
    for name, cls in table.items():
        setattr(SLOTS[name], name, cls)
    try:
        yield
    finally:
        _jit.THREADING = saved
        for name, cls in REFERENCE.items():
            setattr(SLOTS[name], name, cls)


def environment(torch):
    from threadpoolctl import threadpool_info
    pools = ", ".join(f"{p['internal_api']} {p.get('version') or ''} {p['num_threads']} threads "
                      f"({os.path.basename(p['filepath'])})" for p in threadpool_info())
    import numba
    return (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC · {platform.processor() or platform.machine()} "
            f"({os.cpu_count()} cores) · Python {platform.python_version()} · NumPy {np.__version__} · "
            f"numba {numba.__version__} (threading layer {_threading_layer()}, mode {_jit.THREADING}, "
            f"{_jit.num_threads()} threads) · PyTorch {torch.__version__}, torch.get_num_threads() = "
            f"{torch.get_num_threads()} · ember threads {threads.get_num_threads()} · "
            f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')} · load average {os.getloadavg()}\n"
            f"threadpoolctl: {pools}")


def _threading_layer():
    import numba
    try:
        return numba.threading_layer()
    except Exception:
        return "(not started)"


def timed(fn, reps):
    """(wall ms, CPU ms) per call of fn, over reps calls."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps * 1e3, (time.process_time() - c0) / reps * 1e3


def alternate(cands, runs, reps):
    """{name: [(wall, cpu), ...]}: runs rounds of every candidate in turn, after a warm-up."""
    for fn in cands.values():
        fn()
        fn()
    out = {k: [] for k in cands}
    for _ in range(runs):
        for k, fn in cands.items():
            out[k].append(timed(fn, reps))
    return out


def summary(res, base="torch"):
    lines = []
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v), min(w for w, _ in v))
           for k, v in res.items()}
    for k, v in res.items():
        ratios = ""
        if base in res and k != base:
            r = [a[0] / b[0] for a, b in zip(v, res[base])]
            ratios = f" | {k}/{base} per run: " + " ".join(f"{x:.2f}" for x in r) + f" (median {statistics.median(r):.2f})"
        lines.append(f"  {k:14s} median {med[k][0]:8.3f} ms wall, {med[k][1]:8.3f} ms CPU, best {med[k][2]:8.3f} ms wall | runs (wall): "
                     + " ".join(f"{w:.2f}" for w, _ in v) + " | CPU: " + " ".join(f"{c:.2f}" for _, c in v) + ratios)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ per op

def per_op(torch, batch, runs, reps, rng):
    tF = torch.nn.functional
    report = []
    cases = [("conv1 1→6 k5 p2", (batch, 1, 28, 28), (6, 1, 5, 5), 2, False),
             ("conv2 6→16 k5", (batch, 6, 14, 14), (16, 6, 5, 5), 0, True)]
    for name, xs, ws, pad, need_x in cases:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        b = rng.standard_normal(ws[0]).astype(np.float32)
        kw = dict(stride=(1, 1), padding=(pad, pad), dilation=(1, 1), groups=1)
        OH = xs[2] + 2 * pad - 4
        go = np.ascontiguousarray(rng.standard_normal((ws[0], OH, OH, batch)).astype(np.float32)).transpose(3, 0, 1, 2)
        tx, tw, tb = torch.tensor(x, requires_grad=need_x), torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
        tgo = torch.tensor(np.ascontiguousarray(go))

        def ember_fb(F_):
            ctx = Context(F_, None, (need_x, True, True))
            F_.forward(ctx, x, w, b, **kw)
            F_.backward(ctx, go)

        def ember_f(F_):
            F_.forward(Context(F_, None, (False, False, False)), x, w, b, **kw)

        def torch_fb():
            tw.grad = tb.grad = tx.grad = None
            tF.conv2d(tx, tw, tb, padding=pad).backward(tgo)

        def torch_f():
            with torch.no_grad():
                tF.conv2d(tx, tw, tb, padding=pad)
        for what, cands in (("forward", {"numpy": lambda: ember_f(NUMPY["Conv2d"]),
                                         "numba": lambda: ember_f(KERNELS["Conv2d"]), "torch": torch_f}),
                            ("forward+backward", {"numpy": lambda: ember_fb(NUMPY["Conv2d"]),
                                                  "numba": lambda: ember_fb(KERNELS["Conv2d"]), "torch": torch_fb})):
            report.append(f"{name}, batch {batch}, {what}:\n" + summary(alternate(cands, runs, reps)))
    # max-pool 2x2 of a conv1 output (CHWN memory order in ember, as in the network)
    xc = np.maximum(rng.standard_normal((6, 28, 28, batch)).astype(np.float32), 0)
    x = xc.transpose(3, 0, 1, 2)
    go = np.ascontiguousarray(rng.standard_normal((6, 14, 14, batch)).astype(np.float32)).transpose(3, 0, 1, 2)
    tx = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    tgo = torch.tensor(np.ascontiguousarray(go))
    kw = dict(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))

    def ember_pool(F_):
        ctx = Context(F_, None, (True,))
        F_.forward(ctx, x, **kw)
        F_.backward(ctx, go)

    def torch_pool():
        tx.grad = None
        tF.max_pool2d(tx, 2).backward(tgo)
    cands = {"numpy": lambda: ember_pool(NUMPY["MaxPool2d"]), "numba": lambda: ember_pool(KERNELS["MaxPool2d"]),
             "torch": torch_pool}
    report.append(f"max_pool2d 2x2 (N, 6, 28, 28), batch {batch}, forward+backward:\n" + summary(alternate(cands, runs, reps)))
    return report


# --------------------------------------------------------------------------------- LeNet step

class ConvReLU(enn.Module):
    """nn.Conv2d followed by ReLU, run as the fused numba_conv.Conv2dReLU (candidate "numba-fused":
    what a dispatch fusing Conv2d → ReLU would run; the same parameters as the pair)."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        c = self.conv
        pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)   # noqa: E731
        return numba_conv.Conv2dReLU.apply(x, c.weight, c.bias, stride=pair(c.stride), padding=pair(c.padding),
                                           dilation=pair(c.dilation), groups=c.groups)


def fused(model):
    """The same layers, with each Conv2d → ReLU pair as one ConvReLU (shares the parameters)."""
    layers, mods, i = [], list(model), 0
    while i < len(mods):
        if isinstance(mods[i], enn.Conv2d) and i + 1 < len(mods) and isinstance(mods[i + 1], enn.ReLU):
            layers.append(ConvReLU(mods[i]))
            i += 2
        else:
            layers.append(mods[i])
            i += 1
    return enn.Sequential(*layers)


def lenet_pair(torch):
    ember.manual_seed(0)
    em = enn.Sequential(enn.Conv2d(1, 6, 5, padding=2), enn.ReLU(), enn.MaxPool2d(2),
                        enn.Conv2d(6, 16, 5), enn.ReLU(), enn.MaxPool2d(2), enn.Flatten(),
                        enn.Linear(400, 120), enn.ReLU(), enn.Linear(120, 84), enn.ReLU(), enn.Linear(84, 10))
    tn = torch.nn
    tm = tn.Sequential(tn.Conv2d(1, 6, 5, padding=2), tn.ReLU(), tn.MaxPool2d(2), tn.Conv2d(6, 16, 5),
                       tn.ReLU(), tn.MaxPool2d(2), tn.Flatten(), tn.Linear(400, 120), tn.ReLU(),
                       tn.Linear(120, 84), tn.ReLU(), tn.Linear(84, 10))
    with torch.no_grad():
        for k, v in tm.state_dict().items():
            v.copy_(torch.tensor(np.asarray(em.state_dict()[k])))
    return em, tm


def lenet_step(torch, batch, runs, steps, rng, modes=("numba",)):
    em_np, tm = lenet_pair(torch)
    em_nb_modes = {m: lenet_pair(torch)[0] for m in modes}
    for m in modes:
        if m == "numba-fused":
            em_nb_modes[m] = fused(em_nb_modes[m])
    xs = rng.standard_normal((steps, batch, 1, 28, 28)).astype(np.float32)
    ys = rng.integers(0, 10, (steps, batch))
    txs, tys = torch.tensor(xs), torch.tensor(ys)
    opt_np = SGD(em_np.parameters(), lr=0.01, momentum=0.9)
    opt_nb = {m: SGD(em_nb_modes[m].parameters(), lr=0.01, momentum=0.9) for m in modes}
    opt_t = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)

    def ember_epoch(model, opt, kind):
        with use(kind):
            for x, y in zip(xs, ys):
                loss = F.cross_entropy(model(Tensor(x)), y)
                opt.zero_grad()
                loss.backward()
                opt.step()

    def torch_epoch():
        for x, y in zip(txs, tys):
            loss = torch.nn.functional.cross_entropy(tm(x), y)
            opt_t.zero_grad()
            loss.backward()
            opt_t.step()
    cands = {"numpy": lambda: ember_epoch(em_np, opt_np, "numpy")}
    for m in modes:
        cands[m] = lambda m=m: ember_epoch(em_nb_modes[m], opt_nb[m], m)
    cands["torch"] = torch_epoch
    res = alternate(cands, runs, 1)
    res = {k: [(w / steps, c / steps) for w, c in v] for k, v in res.items()}     # per step
    out = [f"LeNet-5 training step, batch {batch} ({steps} steps per run, ms per step):\n" + summary(res)]
    # inference at batch 1000
    xi = rng.standard_normal((1000, 1, 28, 28)).astype(np.float32)
    txi = torch.tensor(xi)

    def ember_inf(kind):
        with use(kind), ember.no_grad():
            (em_nb_modes[kind] if kind in em_nb_modes else em_np)(Tensor(xi))

    def torch_inf():
        with torch.no_grad():
            tm(txi)
    cands = {"numpy": lambda: ember_inf("numpy")}
    for m in modes:
        cands[m] = lambda m=m: ember_inf(m)
    cands["torch"] = torch_inf
    res = alternate(cands, runs, 1)
    out.append("LeNet-5 inference, batch 1000 (ms per batch; throughput ratio = 1 / time ratio):\n" + summary(res))
    return out


# ---------------------------------------------------------------------------- beyond LeNet

BEYOND = {  # name: (N, C_in, H = W, C_out, K, padding)
    "deck-001 Conv2d(3, 16, 7) on 3x256x256, batch 8": (8, 3, 256, 16, 7, 0),
    "CIFAR 3x3 16->16 pad 1 at 32x32, batch 128 (ResNet-20 stage 1)": (128, 16, 32, 16, 3, 1),
    "CIFAR 3x3 32->32 pad 1 at 16x16, batch 128 (stage 2)": (128, 32, 16, 32, 3, 1),
    "CIFAR 3x3 64->64 pad 1 at 8x8, batch 128 (stage 3)": (128, 64, 8, 64, 3, 1),
}


def beyond(torch, runs, rng, tiny=False):
    """conv2d forward + backward (all three gradients) at the deck-001 and CIFAR-style shapes."""
    report = []
    for name, (N, C, H, Co, K, p) in BEYOND.items():
        if tiny:
            N, H = 2, min(H, 16)
        x = rng.standard_normal((N, C, H, H)).astype(np.float32)
        w = rng.standard_normal((Co, C, K, K)).astype(np.float32)
        b = np.zeros(Co, np.float32)
        kw = dict(stride=(1, 1), padding=(p, p), dilation=(1, 1), groups=1)
        OH = H + 2 * p - K + 1
        go = np.ascontiguousarray(rng.standard_normal((Co, OH, OH, N)).astype(np.float32)).transpose(3, 0, 1, 2)
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        tgo = torch.tensor(np.ascontiguousarray(go))

        def ember_fb(F_):
            ctx = Context(F_, None, (True, True, True))
            F_.forward(ctx, x, w, b, **kw)
            F_.backward(ctx, go)

        def torch_fb():
            tx.grad = tw.grad = tb.grad = None
            torch.nn.functional.conv2d(tx, tw, tb, padding=p).backward(tgo)
        cands = {"numpy": lambda: ember_fb(NUMPY["Conv2d"]), "numba": lambda: ember_fb(KERNELS["Conv2d"]),
                 "torch": torch_fb}
        report.append(f"{name}, conv2d forward+backward:\n" + summary(alternate(cands, runs, 1)))
    return report


# ------------------------------------------------------------------------------------ JIT cost

_FIRST_STEP = r"""
import time, sys
t0 = float(sys.argv[1])
import numpy as np, ember, ember.nn as nn
from ember.nn import functional as F
from ember.ops import conv as ops_conv
try:
    from ember.ops import pool as ops_pool
except ImportError:
    ops_pool = ops_conv
from ember.kernels import numba_conv, numba_pool
ops_conv.Conv2d, ops_pool.MaxPool2d = numba_conv.Conv2d, numba_pool.MaxPool2d
from ember.models import lenet5
from ember.optim import SGD
t_import = time.time() - t0
model = lenet5()
opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
x = np.random.default_rng(0).standard_normal((64, 1, 28, 28)).astype(np.float32)
loss = F.cross_entropy(model(ember.Tensor(x)), np.zeros(64, dtype=np.int64))
opt.zero_grad(); loss.backward(); opt.step()
print(f"{t_import:.2f} {time.time() - t0:.2f}")
"""


def jit_cost(runs=2):
    """Launch-to-first-training-step seconds of a fresh process, cold and warm numba cache."""
    lines = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=ROOT)
        for label in ["cold (empty NUMBA_CACHE_DIR)"] + ["warm"] * runs:
            out = subprocess.run([sys.executable, "-c", _FIRST_STEP, repr(time.time())], env=env,
                                 capture_output=True, text=True, check=True).stdout.split()
            lines.append(f"  {label:30s} import {out[0]} s, first LeNet-5 step (batch 64) done at {out[1]} s after launch")
    return "JIT cost (a fresh Python process: launch → imports → first training step):\n" + "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    p.add_argument("--runs", type=int, default=7, help="alternating runs of each candidate")
    p.add_argument("--steps", type=int, default=20, help="LeNet steps per run")
    p.add_argument("--reps", type=int, default=10, help="calls per run of a per-op timing")
    p.add_argument("--threads", type=int, default=None, help="set ember's and torch's threads (default: leave both)")
    p.add_argument("--modes", default="numba,numba-fused", help="numba candidates, comma-separated: numba "
                   "(the default threading), numba-parallel, numba-pool, numba-serial, numba-fused (Conv2d → "
                   "ReLU pairs as the fused Conv2dReLU, default threading)")
    p.add_argument("--jit", action="store_true", help="only measure cold/warm JIT cost")
    p.add_argument("--no-ops", action="store_true", help="skip the per-op tables")
    p.add_argument("--beyond", action="store_true", help="also time conv2d at the deck-001 and CIFAR shapes")
    p.add_argument("--tiny", action="store_true", help="CI: batch 8, 1 run, 2 steps")
    args = p.parse_args(argv)
    if args.jit:
        print(jit_cost())
        return
    import torch
    if args.tiny:
        args.batch, args.runs, args.steps, args.reps = [8], 1, 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
        threads.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    report = []
    for batch in args.batch:
        if not args.no_ops:
            report += per_op(torch, batch, args.runs, args.reps, rng)
        report += lenet_step(torch, batch, args.runs, args.steps, rng, tuple(args.modes.split(",")))
    if args.beyond or args.tiny:
        report += beyond(torch, args.runs, rng, tiny=args.tiny)
    print(environment(torch))
    print("\n".join(report))


if __name__ == "__main__":
    main()
