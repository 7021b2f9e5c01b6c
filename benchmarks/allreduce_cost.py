"""Fit the allreduce cost model t(n) = α + β·n on this machine (docs/distributed.md).

    mpiexec -n 2 python benchmarks/allreduce_cost.py [--repeats 200]

Times ``ember.distributed.all_reduce`` (SUM, in place, float32) of n elements for n from 1 to
4 M, taking the median of ``--repeats`` calls after a barrier, and fits α (latency, s) and
β (s per float32 element) by least squares on the medians' relative error. ``--raw`` times
mpi4py's blocking ``Allreduce`` instead, to show what ember's polling (the timeout) costs. Rank 0 prints one line per size and
the fit; ``--json PATH`` also writes them.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import ember  # noqa: E402
import ember.distributed as dist  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--repeats", type=int, default=200)
p.add_argument("--json")
p.add_argument("--raw", action="store_true", help="time mpi4py's blocking Allreduce instead (no polling)")
args = p.parse_args()
dist.init_process_group("mpi")
rank, world = dist.get_rank(), dist.get_world_size()
if args.raw:
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
sizes = [1, 1000, 10_000, 61_706, 100_000, 270_000, 1_000_000, 4_000_000]
rows = []
for n in sizes:
    t = ember.Tensor(np.ones(n, np.float32))
    reps = max(10, args.repeats * 10_000 // max(n, 10_000))
    times = []
    for _ in range(reps):
        dist.barrier()
        start = time.perf_counter()
        if args.raw:
            comm.Allreduce(MPI.IN_PLACE, t.numpy())
        else:
            dist.all_reduce(t)
        times.append(time.perf_counter() - start)
    rows.append((n, float(np.median(times))))
    if rank == 0:
        print(f"n={n:>9,d} float32 ({4 * n / 1024:9.1f} KiB): median {rows[-1][1] * 1e3:8.3f} ms over {reps}")
n, t = np.array(rows).T
beta, alpha = np.polyfit(n, t, 1, w=1 / t)   # weights 1/t: fit relative error, small n count
if rank == 0:
    print(f"{world} ranks: alpha = {alpha * 1e6:.1f} us, beta = {beta * 1e9:.3f} ns per float32 "
          f"({4 / beta / 1e9:.2f} GB/s effective)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"world": world, "alpha_s": alpha, "beta_s_per_elem": beta, "rows": rows}, f, indent=1)
dist.destroy_process_group()
