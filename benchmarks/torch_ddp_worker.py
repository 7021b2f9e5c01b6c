"""The peer of ``ember train --epochs 1 --threads 1``: PyTorch's DistributedDataParallel on gloo.

    python benchmarks/torch_ddp_worker.py                       # 1 process (world 1, no DDP)
    python benchmarks/torch_ddp_worker.py --world 2             # 2 processes on this host, gloo

Used by ``benchmarks/mpi_throughput.py --peer torch`` (issue 17): it answers "would PyTorch, the
framework users know, reach the criterion's 1.5 on this machine?" with the same job as
``ember train`` at its defaults:

- Fashion-MNIST as ember loads it (``ember.training.data.load_data``: float32, normalised);
- LeNet-5 as ``ember train`` builds it (conv 1→6 5×5 pad 2, ReLU, max-pool 2, conv 6→16 5×5,
  ReLU, max-pool 2, Linear 400→120→84→10 with ReLUs), PyTorch's default initialisation;
- SGD lr 0.05, Nesterov momentum 0.9, weight decay 5e-4 on weights only, cosine per step;
- one epoch at global batch ``--batch-size`` (default 64), each process taking its
  ``batch / world`` rows of every global batch (a seeded shuffle shared by the ranks, the
  last short batch included), ``torch.set_num_threads(1)`` in each process;
- with ``--world 2``: the parent starts ``--world`` copies of itself (``RANK``, ``WORLD_SIZE``,
  ``MASTER_ADDR=127.0.0.1``, a free ``MASTER_PORT``), each ``init_process_group("gloo")`` and
  wraps the model in ``DistributedDataParallel`` (its defaults: 25 MiB buckets, so one bucket).

Rank 0 prints one line in ``ember train``'s epoch-line format, which mpi_throughput.py parses:
``epoch 1/1  train loss L acc A  test loss L acc A  S s  N img/s``, where img/s is the global
training images over rank 0's wall time of the training loop (after a barrier at each end),
as ``ember train`` counts it. Not a test; figures go in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import math
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world: int, argv: list[str]) -> int:
    """Start ``world`` ranks of this script on this host; return the first non-zero exit or 0."""
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE=str(world))
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv, "--rank", str(r)],
                              env=dict(env, RANK=str(r))) for r in range(world)]
    codes = [p.wait() for p in procs]
    return next((c for c in codes if c), 0)


def lenet5():
    from torch import nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def train(args) -> int:
    import numpy as np
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from ember.training.data import load_data

    torch.set_num_threads(1)
    world, rank = args.world, args.rank
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    x, y = load_data("fashion-mnist", args.data_dir, train=True, subset=args.subset)
    xt, yt = load_data("fashion-mnist", args.data_dir, train=False)
    x, y, xt, yt = (torch.from_numpy(np.ascontiguousarray(a)) for a in (x, y, xt, yt))
    torch.manual_seed(args.seed)
    model = lenet5()
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    decay = [p for n, p in model.named_parameters() if not n.endswith("bias")]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias")]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=0.05, momentum=0.9, nesterov=True)
    steps = math.ceil(len(y) / args.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps)))
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(args.seed))
    loss_sum = correct = seen = 0.0
    if world > 1:
        dist.barrier()
    t0 = time.perf_counter()
    for k in range(steps):
        idx = order[k * args.batch_size:(k + 1) * args.batch_size]
        share = -(-len(idx) // world)
        idx = idx[rank * share:(rank + 1) * share]
        xb, yb = x[idx], y[idx]
        logits = net(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += loss.item() * len(yb)
        correct += int((logits.argmax(1) == yb).sum())
        seen += len(yb)
    if world > 1:
        totals = torch.tensor([loss_sum, correct, seen], dtype=torch.float64)
        dist.all_reduce(totals)
        loss_sum, correct, seen = totals.tolist()
    train_s = time.perf_counter() - t0
    if rank == 0:
        with torch.no_grad():
            out = model(xt)
            test_loss, test_acc = F.cross_entropy(out, yt).item(), float((out.argmax(1) == yt).float().mean())
        print(f"epoch 1/1  train loss {loss_sum / seen:.4f} acc {correct / seen:.4f}  test loss {test_loss:.4f} "
              f"acc {test_acc:.4f}  {time.perf_counter() - t0:.1f}s  {seen / train_s:,.0f} img/s", flush=True)
    if world > 1:
        dist.destroy_process_group()
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--world", type=int, default=1, help="processes (default: %(default)s)")
    p.add_argument("--rank", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=64, help="global batch (default: %(default)s)")
    p.add_argument("--subset", type=int, default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.world > 1 and args.rank is None:
        return launch(args.world, argv)
    args.rank = args.rank or 0
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
