"""Where the deck-001 and CIFAR-style training steps spend their time: every conv shape, and the rest.

    python benchmarks/conv_layers.py [--threads N] [--repeats 5] [--only deck|cifar] [--no-step]
    python benchmarks/conv_layers.py --memory     # peak memory of one training step, ember and torch
    python benchmarks/conv_layers.py --ab-passes  # per shape and pass: direct vs GEMM, per-round ratio
    python benchmarks/conv_layers.py --ab-steps direct,choose,gemm   # whole steps per path choice, and torch
    python benchmarks/conv_layers.py --ab-block   # 3×3 stride-1 layers: numba_conv block 4 vs 8 per pass, and torch

Part 1, per conv layer shape of the two networks of ``ember bench`` (ember/training/bench.py),
forward, grad_x and grad_w timed separately, in one process, alternating between the paths
within each round (median of ``--repeats`` rounds; wall and CPU ms):
    numba   ember.kernels.numba_conv's direct convolution (the CHWN arrays it works on)
    numpy   ember.kernels.conv.Conv2d (CHWN im2col + GEMM + col2im, cache-sized blocks)
    gemm    ember.kernels.gemm_conv (when it exists: the path chosen by shape)
    phase   ember.kernels.phase_conv (strided layers: stride-1 sums over the input's phases)
    wino    ember.kernels.winograd (3×3 stride-1 layers of ≥ 8 channels; F(2×2, 3×3)), from the
            unpadded CHWN input the layer before hands on (numba's column: the padded copy, made once)
    torch   torch.nn.functional.conv2d, and aten.convolution_backward with one output mask
Part 2 (unless ``--no-step``): one training step of each network with every ember Function's
forward/backward wrapped in a wall-clock counter: ms per step per op, and the rest.
``--threads N`` sets ember's and PyTorch's thread counts; without it both run at their defaults.
"""
from __future__ import annotations

import argparse
import collections
import statistics
import time

import numpy as np
import torch

import ember
from ember import kernels, threads
from ember.autograd import Context, Function
from ember.kernels import conv as np_conv, numba_conv
from ember.training.bench import NETWORKS, build_net

try:
    from ember.kernels import gemm_conv
except ImportError:  # before the GEMM path exists
    gemm_conv = None
try:
    from ember.kernels import phase_conv
except ImportError:  # before the phase path exists
    phase_conv = None
try:
    from ember.kernels import winograd
except ImportError:  # before the Winograd path exists
    winograd = None


def shapes(only=None):
    """Unique (network, N, C, H, W, C_out, K, stride, padding, first) conv shapes of both networks."""
    out = []
    for name, B, (C, H, W), layers in NETWORKS:
        net = "deck" if name.startswith("deck") else "cifar"
        first = True
        for kind, *a in layers:
            if kind == "head":
                continue
            c, o, k, s, p = a
            row = (net, B, c, H, W, o, k, s, p, first)
            if row not in out and (only is None or only == net):
                out.append(row)
            H, W = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
            first = False
    return out


def timed(f):
    w0, c0 = time.perf_counter(), time.process_time()
    f()
    return time.perf_counter() - w0, time.process_time() - c0


COLUMNS = ("numba", "numpy", "gemm", "phase", "wino", "torch")   # part 1's columns, in this order (header and cells)


def layer_table(repeats, only):
    rng = np.random.default_rng(0)
    header = [n for n in COLUMNS if (n != "gemm" or gemm_conv) and (n != "phase" or phase_conv)
              and (n != "wino" or winograd)]
    print("| layer | pass | " + " | ".join(header) + " | (wall ms / CPU ms, median of rounds; phase: strided "
          "layers, its time includes building the phases) |")
    for net, N, C, H, W, O, K, S, P, first in shapes(only):
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = (rng.standard_normal((O, C, K, K)) / np.sqrt(C * K * K)).astype(np.float32)
        b = rng.standard_normal(O).astype(np.float32)
        st, pd, dl = (S, S), (P, P), (1, 1)
        OH = (H + 2 * P - K) // S + 1
        g = rng.standard_normal((N, O, OH, OH)).astype(np.float32)
        xc = np_conv._to_chwn(x, P, P)
        gc = np.ascontiguousarray(g.transpose(1, 2, 3, 0))
        tx, tw, tb, tg = (torch.from_numpy(a) for a in (x, w, b, g))

        def np_pass(need):
            def f():
                ctx = Context(np_conv.Conv2d, (), (True, True, True))
                np_conv.Conv2d.forward(ctx, x, w, b, st, pd, dl, 1)
                if need is None:
                    return
                ctx.needs_input_grad = need
                np_conv.Conv2d.backward(ctx, g)
            return f

        def torch_bw(mask):
            return lambda: torch.ops.aten.convolution_backward(tg, tx, tw, [O], [S, S], [P, P], [1, 1],
                                                                False, [0, 0], 1, mask)
        paths = {
            "forward": {"numba": lambda: numba_conv.conv2d_forward(xc, w, b, st, dl, 1),
                        "numpy": np_pass(None),
                        "torch": lambda: torch.nn.functional.conv2d(tx, tw, tb, S, P)},
            "grad_x": {"numba": lambda: numba_conv.conv2d_grad_x(gc, w, H, W, pd, st, dl, 1),
                       "numpy": np_pass((True, False, False)),     # includes a forward
                       "torch": torch_bw([True, False, False])},
            "grad_w": {"numba": lambda: numba_conv.conv2d_grad_w(gc, xc, w.shape, st, dl, 1),
                       "numpy": np_pass((False, True, False)),     # includes a forward
                       "torch": torch_bw([False, True, False])},
        }
        if gemm_conv is not None:
            paths["forward"]["gemm"] = lambda: gemm_conv.forward(xc, w, b, st)
            paths["grad_x"]["gemm"] = lambda: gemm_conv.grad_x(gc, w, H + 2 * P, W + 2 * P, st)
            paths["grad_w"]["gemm"] = lambda: gemm_conv.grad_w(gc, xc, w.shape, st)
        if phase_conv is not None and S > 1:
            paths["forward"]["phase"] = lambda: phase_conv.forward(phase_conv.phases(x, pd, st), w, b, st, (OH, OH))
            paths["grad_x"]["phase"] = lambda: phase_conv.grad_x(gc, w, (H, W), pd, st)
            paths["grad_w"]["phase"] = lambda: phase_conv.grad_w(gc, phase_conv.phases(x, pd, st), w.shape, st)
        if winograd is not None and winograd.covers(w.shape, st, pd, dl):
            xv = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)   # as a layer gets it
            paths["forward"]["wino"] = lambda: winograd.forward(xv, w, b, pd)   # reads it unpadded
            paths["grad_x"]["wino"] = lambda: winograd.grad_x(gc, w, pd)
            paths["grad_w"]["wino"] = lambda: winograd.grad_w(gc, xv, pd)
        for pas, fns in paths.items():
            if pas == "grad_x" and first:
                continue                                       # the first layer needs no grad_x
            names = [n for n in COLUMNS if n in fns]           # the header's order (gemm was added last)
            for f in fns.values():
                f()                                            # warm-up (and JIT)
            runs = {n: [] for n in names}
            for _ in range(repeats):
                for n in names:
                    runs[n].append(timed(fns[n]))
            cells = []
            for n in header:
                if n not in runs:
                    cells.append("–")
                    continue
                wall = statistics.median(r[0] for r in runs[n]) * 1e3
                cpu = statistics.median(r[1] for r in runs[n]) * 1e3
                cells.append(f"{wall:.1f} / {cpu:.1f}")
            flops = 2 * N * O * OH * OH * C * K * K
            tmed = statistics.median(r[0] for r in runs["torch"])
            print(f"| {net} {C}→{O} k{K} s{S} p{P} {H}×{W} N{N} | {pas} | " + " | ".join(cells)
                  + f" | torch {flops / tmed / 1e9:.0f} GFLOP/s |", flush=True)


def ember_networks(only):
    """(name, batch, layers, ember model, its SGD, x, y) for each network of ``ember bench`` (seed 0)."""
    for name, B, shape, layers in NETWORKS:
        if only and only != ("deck" if name.startswith("deck") else "cifar"):
            continue
        ember.manual_seed(0)
        model = build_net(ember.nn, layers)
        opt = ember.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        rng = np.random.default_rng(0)
        yield name, B, layers, model, opt, rng.standard_normal((B,) + shape).astype(np.float32), rng.integers(0, 10, B)


def step_profile(repeats, only):
    counter = collections.Counter()
    wrapped = set()

    def wrap(cls):
        for meth in ("forward", "backward"):
            f = cls.__dict__.get(meth)
            if f is None or (cls, meth) in wrapped:
                continue
            wrapped.add((cls, meth))
            f = f.__func__ if isinstance(f, staticmethod) else f

            def t(*a, _f=f, _key=f"{cls.__module__.split('.')[-1]}.{cls.__name__}.{meth}", **k):
                t0 = time.perf_counter()
                out = _f(*a, **k)
                counter[_key] += time.perf_counter() - t0
                return out
            setattr(cls, meth, staticmethod(t))

    def all_subclasses(c):
        for s in c.__subclasses__():
            yield s
            yield from all_subclasses(s)
    for cls in set(all_subclasses(Function)):
        if cls.__module__.startswith("ember."):
            wrap(cls)
    for name, B, layers, model, opt, x, y in ember_networks(only):

        def step():
            loss = ember.nn.functional.cross_entropy(model(ember.Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()
        step()
        counter.clear()
        totals = []
        for _ in range(repeats):
            totals.append(timed(step))
        total = statistics.median(t[0] for t in totals) * 1e3
        print(f"\n{name}, batch {B}: step {total:.1f} ms wall (runs "
              + ", ".join(f"{t[0] * 1e3:.0f}/{t[1] * 1e3:.0f}" for t in totals) + " wall/CPU ms)")
        for key, sec in counter.most_common():
            ms = sec / repeats * 1e3
            print(f"  {key:40s} {ms:8.2f} ms  {100 * ms / total:5.1f}%")
        rest = total - sum(counter.values()) / repeats * 1e3
        print(f"  {'rest (modules, engine, SGD)':40s} {rest:8.2f} ms")


def _memory_child(lib, net, threads_n):
    """In this fresh process: peak RSS growth (bytes) of one training step after two warm-up steps."""
    from ember.training.bench import peak_step_growth
    name, B, shape, layers = next(n for n in NETWORKS if n[0].lower().startswith(net))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((B,) + shape).astype(np.float32), rng.integers(0, 10, B)
    if threads_n:
        threads.set_num_threads(threads_n)
        torch.set_num_threads(threads_n)
    if lib == "torch":
        model = build_net(torch.nn, layers)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            loss = torch.nn.functional.cross_entropy(model(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        model = build_net(ember.nn, layers)
        opt = ember.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            loss = ember.nn.functional.cross_entropy(model(ember.Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return peak_step_growth(step)


def memory(threads_n):
    """Peak memory of one training step of each network, ember and torch, each in a fresh process
    (the method of ``ember.training.bench.step_peak_bytes``: glibc maps every large buffer fresh)."""
    from ember.training.bench import fresh_process_int
    for net in ("deck", "cifar"):
        row = []
        for lib in ("ember", "torch"):
            code = ("import sys; sys.path.insert(0, 'benchmarks'); import conv_layers; "
                    f"print(conv_layers._memory_child({lib!r}, {net!r}, {threads_n}))")
            row.append(fresh_process_int(code))
        print(f"{net}: peak step memory ember {row[0] / 2**20:.1f} MiB, torch {row[1] / 2**20:.1f} MiB "
              f"(ember/torch {row[0] / row[1]:.2f})", flush=True)


def ab_passes(repeats, only):
    """Per conv shape and pass: numba_conv's direct kernel vs gemm_conv, ember alone, alternating;
    min and median ms of each, and the median of the per-round ratios gemm/direct."""
    rng = np.random.default_rng(0)
    for net, N, C, H, W, O, K, S, P, first in shapes(only):
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = rng.standard_normal((O, C, K, K)).astype(np.float32)
        b = rng.standard_normal(O).astype(np.float32)
        st, pd, OH = (S, S), (P, P), (H + 2 * P - K) // S + 1
        xc = np_conv._to_chwn(x, P, P)
        g = np.ascontiguousarray(rng.standard_normal((O, OH, OH, N)).astype(np.float32))
        passes = {"forward": (lambda: numba_conv.conv2d_forward(xc, w, b, st, (1, 1), 1),
                              lambda: gemm_conv.forward(xc, w, b, st)),
                  "grad_x": (lambda: numba_conv.conv2d_grad_x(g, w, H, W, pd, st, (1, 1), 1),
                             lambda: gemm_conv.grad_x(g, w, H + 2 * P, W + 2 * P, st)),
                  "grad_w": (lambda: numba_conv.conv2d_grad_w(g, xc, w.shape, st, (1, 1), 1),
                             lambda: gemm_conv.grad_w(g, xc, w.shape, st))}
        for pas, (fd, fg) in passes.items():
            if pas == "grad_x" and first:
                continue
            fd(), fg()
            td, tg = [], []
            for _ in range(repeats):
                td.append(timed(fd)[0])
                tg.append(timed(fg)[0])
            ratio = statistics.median(b_ / a_ for a_, b_ in zip(td, tg))
            print(f"{net} N{N} {C}→{O} k{K} s{S} {H}×{W} {pas}: direct min {min(td) * 1e3:.1f} med "
                  f"{statistics.median(td) * 1e3:.1f} ms | gemm min {min(tg) * 1e3:.1f} med "
                  f"{statistics.median(tg) * 1e3:.1f} ms | gemm/direct {ratio:.2f}", flush=True)


def ab_steps(repeats, only, policies):
    """Training steps of each network with gemm_conv.choose replaced by each policy ('direct',
    'gemm' or 'choose', the shipped rule; 'block4': the shipped rule with numba_conv's 4-channel
    blocks, its kernels before the 8-channel ones; 'nowino': the shipped rule with the direct
    kernel where it picks Winograd, the rule before it), and PyTorch's step, alternating; per-round ratios."""
    from ember.training.bench import ember_train, torch_train
    shipped, shipped_block = gemm_conv.choose, numba_conv.forward_block
    rules = {"direct": lambda *a: "direct", "gemm": lambda *a: "gemm", "choose": shipped, "block4": shipped,
             "nowino": lambda *a: "direct" if shipped(*a) == "winograd" else shipped(*a)}
    try:
        for name, B, layers, em, eo, x, y in ember_networks(only):
            tm = build_net(torch.nn, layers)
            tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in em.state_dict().items()})
            to = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
            tb = [(torch.from_numpy(x), torch.from_numpy(y))]

            def ember_step(rule):
                gemm_conv.choose = rules[rule]
                numba_conv.forward_block = (lambda Og, SW: 4) if rule == "block4" else shipped_block
                return timed(lambda: ember_train(em, eo, [(x, y)]))
            fns = [(r, lambda r=r: ember_step(r)) for r in policies]
            fns.append(("torch", lambda: timed(lambda: torch_train(torch, tm, to, tb))))
            for _, f in fns:
                f()
            runs = {n: [] for n, _ in fns}
            for _ in range(repeats):
                for n, f in fns:
                    runs[n].append(f())
            print(f"{name}, batch {B}:")
            for n, r in runs.items():
                ratio = statistics.median(a[0] / t[0] for a, t in zip(r, runs["torch"]))
                print(f"  {n:7s} median {statistics.median(a for a, _ in r) * 1e3:7.1f} ms wall, "
                      f"{statistics.median(c for _, c in r) * 1e3:7.1f} ms CPU, ratio to torch {ratio:.2f}; runs "
                      + ", ".join(f"{a * 1e3:.0f}/{c * 1e3:.0f}" for a, c in r), flush=True)
    finally:
        gemm_conv.choose, numba_conv.forward_block = shipped, shipped_block


def ab_block(repeats, only):
    """Per 3×3 stride-1 conv shape: numba_conv's forward, grad_x and grad_w with blocks of 4 channels (the
    streaming kernels of before) vs 8 (the output-stationary ones), and PyTorch's pass on the same
    arrays; the three alternate in each round (the order rotates). Every round's wall ms, the
    CPU-ms medians and the median of the per-round ratios new/old and new/torch (wall)."""
    rng = np.random.default_rng(0)
    for net, N, C, H, W, O, K, S, P, first in shapes(only):
        if K != 3 or S != 1:
            continue
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = (rng.standard_normal((O, C, K, K)) / np.sqrt(C * K * K)).astype(np.float32)
        b = rng.standard_normal(O).astype(np.float32)
        xc = np_conv._to_chwn(x, P, P)
        g4 = rng.standard_normal((N, O, H, W)).astype(np.float32)
        g = np.ascontiguousarray(g4.transpose(1, 2, 3, 0))
        tx, tw, tb, tg = (torch.from_numpy(a) for a in (x, w, b, g4))
        passes = {"forward": {"old": lambda: numba_conv.conv2d_forward(xc, w, b, (1, 1), (1, 1), 1, block=4),
                              "new": lambda: numba_conv.conv2d_forward(xc, w, b, (1, 1), (1, 1), 1, block=8),
                              "torch": lambda: torch.nn.functional.conv2d(tx, tw, tb, padding=P)},
                  "grad_x": {"old": lambda: numba_conv.conv2d_grad_x(g, w, H, W, (P, P), (1, 1), (1, 1), 1, block=4),
                             "new": lambda: numba_conv.conv2d_grad_x(g, w, H, W, (P, P), (1, 1), (1, 1), 1, block=8),
                             "torch": lambda: torch.ops.aten.convolution_backward(
                                 tg, tx, tw, [O], [1, 1], [P, P], [1, 1], False, [0, 0], 1, [True, False, False])},
                  "grad_w": {"old": lambda: numba_conv.conv2d_grad_w(g, xc, w.shape, (1, 1), (1, 1), 1, block=4),
                             "new": lambda: numba_conv.conv2d_grad_w(g, xc, w.shape, (1, 1), (1, 1), 1, block=8),
                             "torch": lambda: torch.ops.aten.convolution_backward(
                                 tg, tx, tw, [O], [1, 1], [P, P], [1, 1], False, [0, 0], 1, [False, True, False])}}
        for pas, fs in passes.items():
            if pas == "grad_x" and first:
                continue
            names = list(fs)
            for f in fs.values():
                f()
            t = {k: [] for k in names}
            for r in range(repeats):
                for k in names[r % 3:] + names[:r % 3]:
                    t[k].append(timed(fs[k]))
            med = {k: statistics.median(a for a, _ in v) * 1e3 for k, v in t.items()}
            cpu = {k: statistics.median(c for _, c in v) * 1e3 for k, v in t.items()}
            r_old = statistics.median(a[0] / b_[0] for a, b_ in zip(t["new"], t["old"]))
            r_torch = statistics.median(a[0] / b_[0] for a, b_ in zip(t["new"], t["torch"]))
            print(f"{net} N{N} {C}→{O} {H}×{W} {pas}: wall med old {med['old']:.1f} new {med['new']:.1f} "
                  f"torch {med['torch']:.1f} ms (CPU med {cpu['old']:.1f}/{cpu['new']:.1f}/{cpu['torch']:.1f}); "
                  f"new/old {r_old:.2f}, new/torch {r_torch:.2f}", flush=True)
            for k in names:
                print(f"    {k:5s} every round, wall ms: " + ", ".join(f"{a * 1e3:.1f}" for a, _ in t[k]), flush=True)
    with open("/proc/loadavg") as f:
        print("load average after: " + " ".join(f.read().split()[:3]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--only", choices=["deck", "cifar"])
    p.add_argument("--no-step", action="store_true")
    p.add_argument("--no-layers", action="store_true")
    p.add_argument("--memory", action="store_true", help="only the peak memory of a training step")
    p.add_argument("--ab-passes", action="store_true", help="only the direct-vs-GEMM A/B per shape and pass")
    p.add_argument("--ab-block", action="store_true",
                   help="only numba_conv's 4- vs 8-channel blocks (forward, grad_x, grad_w) per 3×3 stride-1 shape, and torch")
    p.add_argument("--ab-steps", help="only whole steps per path choice, e.g. direct,choose,gemm,block4")
    args = p.parse_args(argv)
    if args.memory:
        return memory(args.threads)
    if args.threads:
        threads.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"threads: ember {threads.get_num_threads()}, torch {torch.get_num_threads()}; "
          f"kernels {kernels.mode()}; load {' '.join(load)}")
    if args.ab_block:
        return ab_block(args.repeats, args.only)
    if args.ab_passes or args.ab_steps:
        if args.ab_passes:
            ab_passes(args.repeats, args.only)
        if args.ab_steps:
            ab_steps(args.repeats, args.only, args.ab_steps.split(","))
        return
    if not args.no_layers:
        layer_table(args.repeats, args.only)
    if not args.no_step:
        step_profile(args.repeats, args.only)


if __name__ == "__main__":
    main()
