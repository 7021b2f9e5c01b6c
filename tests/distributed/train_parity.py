"""Run by tests/test_distributed.py, as one process or under ``mpiexec -n W``.

Trains a small conv net (conv -> ReLU -> max-pool -> linear, no BatchNorm) for ``--steps`` SGD
steps (momentum, Nesterov, weight decay) on fixed random data with a GLOBAL batch of
``--global-batch``; each rank trains on its shard of every global batch through
DistributedDataParallel. Rank 0 writes the final parameters to ``--out`` (.npz).

Every rank starts from a DIFFERENT random initialisation (seed 100 + rank), so the run also
checks that DDP broadcasts rank 0's weights. ``--accumulate K`` splits each rank's shard into K
micro-batches, the first K-1 under ``no_sync()``. ``--kill-rank R --kill-step S`` makes rank R
SIGKILL (or SIGSTOP with ``--stop``) itself before step S.
"""
import argparse
import contextlib
import os
import signal
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import ember  # noqa: E402
import ember.distributed as dist  # noqa: E402
import ember.nn as nn  # noqa: E402
import ember.nn.functional as F  # noqa: E402
from ember.distributed.launch import shard  # noqa: E402
from ember.nn.parallel import DistributedDataParallel  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--dtype", default="float64")
p.add_argument("--steps", type=int, default=50)
p.add_argument("--global-batch", type=int, default=64)
p.add_argument("--accumulate", type=int, default=1)
p.add_argument("--timeout", type=float, default=20)
p.add_argument("--kill-rank", type=int, default=-1)
p.add_argument("--kill-step", type=int, default=-1)
p.add_argument("--stop", action="store_true")
p.add_argument("--no-ddp", action="store_true", help="negative control: train without DDP")
p.add_argument("--hidden", type=int, default=10, help="model width (differs per rank: mismatch test)")
args = p.parse_args()

dist.init_process_group("mpi", timeout=args.timeout)
rank = dist.get_rank()
dtype = np.dtype(args.dtype)
ember.manual_seed(100 + rank)
hidden = args.hidden + (rank if os.environ.get("MISMATCH") else 0)
model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(4 * 6 * 6, hidden), nn.Tanh(), nn.Linear(hidden, 3)).to(dtype)
ddp = model if args.no_ddp else DistributedDataParallel(model)
opt = ember.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)

data = np.random.default_rng(7)
X = data.standard_normal((args.steps * args.global_batch, 1, 12, 12)).astype(dtype)
Y = data.integers(0, 3, args.steps * args.global_batch)

for step in range(args.steps):
    if rank == args.kill_rank and step == args.kill_step:
        os.kill(os.getpid(), signal.SIGSTOP if args.stop else signal.SIGKILL)
    rows = slice(step * args.global_batch, (step + 1) * args.global_batch)
    x, y = shard((X[rows], Y[rows]))
    opt.zero_grad()
    parts = np.array_split(np.arange(len(x)), args.accumulate)
    for k, idx in enumerate(parts):
        last = k == len(parts) - 1
        with contextlib.nullcontext() if last or args.no_ddp else ddp.no_sync():  # only the last one reduces
            loss = F.cross_entropy(ddp(ember.tensor(x[idx])), ember.tensor(y[idx])) * (len(idx) / len(x))
        loss.backward()
    opt.step()

if rank == 0:
    np.savez(args.out, **{k: v for k, v in ddp.state_dict().items()})
dist.destroy_process_group()
