"""How ember's training-step time grows with the batch, the image size and the thread count.

    python benchmarks/scaling.py             # a few minutes; markdown tables on stdout
    python benchmarks/scaling.py --tiny      # seconds (CI)

Tables (ember and PyTorch timed alternately in one process, all rows of a table round-robin,
medians of ``--repeats`` rounds, as in ember/training/bench.py; see its docstring for the method):
1. LeNet-5 training step as the batch doubles, 16 → 512.
2. The deck-001 network Conv2d(3,16,7) → ReLU → Conv2d(16,32,3,p1,s2) → ReLU → Conv2d(32,64,3,p1)
   → ReLU → Conv2d(64,64,1), loss = mean of squares, at a fixed batch, as the input grows
   28 → 64 → 128 → 256 (3 channels).
each for 1 and 2 threads. "× prev" is the step time over the previous row's; "work ×" is the
FLOP ratio; a cliff (an im2col buffer that spills the cache, a copy that scales with the square of
something) shows as "× prev" well above "work ×". The CPU columns (process time, all threads) are
the load-independent view: on a shared machine a wall-clock row can jump 2× with a neighbour's job.
"""
from __future__ import annotations


# (no OMP_WAIT_POLICY: PyTorch runs at its defaults, issue 13)

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import ember  # noqa: E402
from ember import nn, threads  # noqa: E402
from ember.training import bench  # noqa: E402
from ember.optim import SGD  # noqa: E402
from ember.tensor import Tensor  # noqa: E402

DECK001 = [(3, 16, 7, 1, 0), (16, 32, 3, 2, 1), (32, 64, 3, 1, 1), (64, 64, 1, 1, 0)]  # C_in, C_out, k, s, p


def deck001_ember():
    layers = []
    for i, (ci, co, k, s, p) in enumerate(DECK001):
        layers += [nn.Conv2d(ci, co, k, stride=s, padding=p)] + ([nn.ReLU()] if i < len(DECK001) - 1 else [])
    return nn.Sequential(*layers)


def deck001_torch(torch, em):
    layers = []
    for i, (ci, co, k, s, p) in enumerate(DECK001):
        layers += [torch.nn.Conv2d(ci, co, k, stride=s, padding=p)] + ([torch.nn.ReLU()] if i < len(DECK001) - 1 else [])
    tm = torch.nn.Sequential(*layers)
    tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in em.state_dict().items()})
    return tm


def deck001_flops(side):
    """Training FLOPs per image (forward + weight grad + input grad except the first layer)."""
    total, h = 0, side
    for i, (ci, co, k, s, p) in enumerate(DECK001):
        h = (h + 2 * p - k) // s + 1
        total += 2 * co * h * h * ci * k * k * (2 if i == 0 else 3)
    return total


def _steps(step, n):
    """(wall seconds, CPU seconds of this process) per step, over n steps."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def timed_pair(torch, ember_step, torch_step, n, repeats):
    """The runs of one table row: a list of zero-argument timers, ember's first."""
    return [lambda: _steps(ember_step, n)] + ([lambda: _steps(torch_step, n)] if torch else [])


def run_rows(rows, repeats):
    """Time all rows' runs round-robin (``repeats`` rounds), so that every row sees the same
    minutes of a noisy machine; per row the medians (ember wall, PyTorch wall or None, ember CPU)."""
    fns = [f for _, row in rows for f in row]
    times = bench.alternate(fns, repeats)
    out, i = [], 0
    for key, row in rows:
        e, t = times[i], (times[i + 1] if len(row) > 1 else None)
        out.append((key, (statistics.median(w for w, _ in e), t and statistics.median(w for w, _ in t),
                          statistics.median(c for _, c in e))))
        i += len(row)
    return out


def lenet_row(torch, B, n, repeats):
    x, y, _ = bench.load_images(B, synthetic=True)
    (em, eo), tp = bench.make_pair(torch)
    e = lambda: bench.ember_train(em, eo, [(x, y)])  # noqa: E731
    t = None
    if tp:
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        t = lambda: bench.torch_train(torch, tp[0], tp[1], [(tx, ty)])  # noqa: E731
    return timed_pair(torch, e, t, n, repeats)


def deck_row(torch, B, side, n, repeats):
    x = np.random.default_rng(0).standard_normal((B, 3, side, side)).astype(np.float32)
    ember.manual_seed(0)
    em = deck001_ember()
    eo = SGD(em.parameters(), lr=1e-3)

    def e():
        out = em(Tensor(x))
        loss = (out * out).mean()
        eo.zero_grad()
        loss.backward()
        eo.step()
    t = None
    if torch is not None:
        tm, tx = deck001_torch(torch, em), torch.from_numpy(x)
        to = torch.optim.SGD(tm.parameters(), lr=1e-3)

        def t():
            out = tm(tx)
            loss = (out * out).mean()
            to.zero_grad()
            loss.backward()
            to.step()
    return timed_pair(torch, e, t, n, repeats)


def table(title, key, rows, work, torch_on):
    L = [f"#### {title}", "",
         "| " + key + " | threads | ember ms/step | × prev | ember CPU ms/step | CPU × prev | work × "
         "| PyTorch ms/step | ember/PyTorch |",
         "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    prev = {}
    for (k, T), (e, t, c) in rows:
        grow = f"{e / prev[T][0]:.2f}" if T in prev else "–"
        cgrow = f"{c / prev[T][2]:.2f}" if T in prev else "–"
        wgrow = f"{work(k) / work(prev[T][1]):.2f}" if T in prev else "–"
        tt = f"{t * 1e3:.2f}" if torch_on else "–"
        r = f"{e / t:.2f}" if torch_on else "–"
        L.append(f"| {k} | {T} | {e * 1e3:.2f} | {grow} | {c * 1e3:.2f} | {cgrow} | {wgrow} | {tt} | {r} |")
        prev[T] = (e, k, c)
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--deck-batch", type=int, default=8, help="batch of the input-size table (default: 8)")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--out", help="also write the markdown to this file")
    args = p.parse_args(argv)
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            pass
    batches = [16, 32] if args.tiny else [16, 32, 64, 128, 256, 512]
    sides = [28, 40] if args.tiny else [28, 64, 128, 256]
    lrows, drows = [], []
    for T in args.threads:
        threads.set_num_threads(T)
        if torch is not None:
            torch.set_num_threads(T)
        rows = [((B, T), lenet_row(torch, B, 2 if args.tiny else max(4, 2048 // B), args.repeats))
                for B in batches]
        lrows += run_rows(rows, args.repeats)
        rows = [((side, T), deck_row(torch, 2 if args.tiny else args.deck_batch, side,
                                     1 if args.tiny or side >= 128 else 3, args.repeats)) for side in sides]
        drows += run_rows(rows, args.repeats)
    out = (table("LeNet-5 training step vs batch size", "batch", lrows, lambda b: b, torch is not None) + "\n"
           + table(f"deck-001 network training step vs input size (batch {args.deck_batch}, 3 channels)",
                   "input", drows, deck001_flops, torch is not None))
    print(out)
    if args.out:
        with open(args.out, "w") as f:
            f.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
