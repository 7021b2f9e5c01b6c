"""Where a step of ``ember train`` goes, phase by phase, on every rank (issue 17's profile).

    python benchmarks/mpi_step_profile.py --batch-size 32          # 1 rank, batch 32
    python benchmarks/mpi_step_profile.py --batch-size 64          # 1 rank, batch 64
    mpiexec -n 2 python benchmarks/mpi_step_profile.py             # 2 ranks × 32 (global 64)

Builds what ``ember.training.loop._run`` builds (LeNet-5 on Fashion-MNIST, ``--threads 1``, the
default SGD and cosine schedule, ``Ranks``: the rank's shard of each global batch, DDP) and runs
the loop's step body with a ``time.perf_counter()`` between phases:

    fetch      the DataLoader's next batch (this rank's rows)
    forward    net(x), cross_entropy, loss.item()
    zero_grad  opt.zero_grad()
    backward   loss.backward() without DDP's reduction (the engine's walk)
    pack       copying (and dividing) the gradients into DDP's bucket (on one host: this rank's shared slot)
    allreduce  the bucket's sum over the ranks (DDP's shared-memory sum, or all_reduce with
               EMBER_DIST_SHM=0 / before it existed): mostly waiting for the other rank
    unpack     copying the averages back into the .grad arrays
    step       opt.step() and the schedule
    metrics    argmax/correct count, the loop's sums, rank 0's steps.csv row

It prints, per rank, the median and mean ms of each phase over ``--steps`` steps after
``--warmup`` steps. Not a test; figures go in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PHASES = ("fetch", "forward", "zero_grad", "backward", "pack", "allreduce", "unpack", "step", "metrics")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=64, help="GLOBAL batch (default: %(default)s)")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="time the phases by wall time (perf_counter) or by this process's CPU time "
                        "(process_time: less disturbed by other jobs on a loaded machine)")
    args = p.parse_args(argv)

    from ember.data import DataLoader, TensorDataset
    from ember.distributed.group import _array
    from ember.nn import functional as F
    from ember.random import default_generator, manual_seed
    from ember import distributed as dist
    from ember.training.config import TrainConfig
    from ember.training.data import build_model, load_data
    from ember.training.log import RunLog
    from ember.training.parallel import Ranks
    from ember.training.schedules import Schedule, build_optimizer
    from ember.kernels.threads import set_num_threads
    import tempfile

    cfg = TrainConfig(epochs=1, threads=1, batch_size=args.batch_size, progress=False)
    t = {k: [] for k in PHASES}
    with Ranks(cfg) as ranks:
        manual_seed(cfg.seed)
        x, y = load_data(cfg.dataset, cfg.data_dir, train=True)
        set_num_threads(1)
        model = build_model(cfg)
        net = ranks.wrap(model)
        opt = build_optimizer(model, cfg)
        loader = DataLoader(ranks.dataset(TensorDataset(x, y)), batch_size=cfg.batch_size, shuffle=True,
                            generator=default_generator())
        schedule = Schedule(opt, cfg, len(loader))
        if args.warmup + args.steps > len(loader):   # the loop reads one epoch's batches
            p.error(f"--warmup {args.warmup} + --steps {args.steps} is more than the {len(loader)} steps of an "
                    f"epoch at --batch-size {args.batch_size}")
        run_log = RunLog(tempfile.mkdtemp()) if ranks.main else RunLog.null()
        phase = {}
        if ranks.world > 1:   # time DDP's reduction inside backward, in three parts
            def reduce_timed(ddp=net):
                params = ddp._params
                grads = [None if q.grad is None else _array(q.grad) for q in params]
                for b, shared_sum in zip(ddp._grad_buckets, getattr(ddp, "_sums", [None] * 99)):
                    t0 = clock()   # as DDP._reduce_gradients: packed straight into the shared slot
                    b.pack(grads, ddp.world_size, out=None if shared_sum is None else shared_sum.next_slot())
                    t1, arrive = clock(), time.perf_counter()
                    if shared_sum is not None:
                        shared_sum.sum_into(b.flat)
                    else:
                        dist.all_reduce(b.flat, dist.ReduceOp.SUM)
                    t2, done = clock(), time.perf_counter()
                    for i, v in b.views():
                        grads[i][...] = v
                    t3 = clock()
                    phase["pack"], phase["allreduce"], phase["unpack"] = t1 - t0, t2 - t1, t3 - t2
                    phase["arrive"], phase["done"] = arrive, done
            net._reduce_gradients = reduce_timed
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        it = iter(loader)
        arrivals = []
        seen = correct = 0
        loss_sum = 0.0
        for k in range(args.warmup + args.steps):
            phase.update(pack=0.0, allreduce=0.0, unpack=0.0)
            t0 = clock()
            xb, yb = next(it)
            lr = opt.param_groups[0]["lr"]
            xb, yb, weight = ranks.shard(xb, yb)
            t1 = clock()
            logits = net(xb)
            loss = F.cross_entropy(logits, yb)
            value = loss.item()
            t2 = clock()
            opt.zero_grad()
            t3 = clock()
            loss.backward()
            t4 = clock()
            opt.step()
            schedule.after_step()
            t5 = clock()
            n = len(yb)
            seen += n
            loss_sum += value * n
            run_log.step(k, 1, value, lr, t5 - t0)
            correct += int((logits._data.argmax(1) == yb._data).sum())
            t6 = clock()
            if k >= args.warmup:
                red = phase["pack"] + phase["allreduce"] + phase["unpack"]
                for name, v in (("fetch", t1 - t0), ("forward", t2 - t1), ("zero_grad", t3 - t2),
                                ("backward", t4 - t3 - red), ("pack", phase["pack"]),
                                ("allreduce", phase["allreduce"]), ("unpack", phase["unpack"]),
                                ("step", t5 - t4), ("metrics", t6 - t5)):
                    t[name].append(v * 1e3)
                if ranks.world > 1:
                    arrivals.append((phase["arrive"], phase["done"]))
        rows = [f"rank {ranks.rank}/{ranks.world}, batch {n} per rank ({args.clock} time):"]
        total = 0.0
        for name in PHASES:
            med, mean = statistics.median(t[name]), statistics.fmean(t[name])
            total += mean
            rows.append(f"  {name:10s} median {med:6.3f} ms  mean {mean:6.3f} ms")
        rows.append(f"  {'total':10s}                mean {total:6.3f} ms  ({1000 * n * ranks.world / total:,.0f} img/s "
                    f"global)   load {open('/proc/loadavg').read().split()[0]}")
        if ranks.world > 1:
            from ember.distributed.group import _group as g
            rows.append(f"  waits {g.waits}, spin_miss {g.spin_miss:.2f}, spin {g.spin * 1e3:g} ms")
        if ranks.world > 1:   # perf_counter is CLOCK_MONOTONIC: one clock for the ranks of a host
            a = np.asarray(arrivals, np.float64)
            every = np.empty((ranks.world,) + a.shape)
            dist.all_gather([every[r] for r in range(ranks.world)], a)
            late = every[:, :, 0].max(0)
            after = every[:, :, 1] - late   # each rank's finish after the last arrival
            lag = every[:, :, 0] - late      # how long before the last one this rank arrived
            rows.append(f"  this rank's wait for the last arrival: median {np.median(-lag[ranks.rank]) * 1e3:.3f} ms, "
                        f"mean {np.mean(-lag[ranks.rank]) * 1e3:.3f} ms; it arrived last in "
                        f"{np.mean(lag[ranks.rank] == 0):.0%} of steps")
            rows.append(f"  its allreduce end after the last arrival: median {np.median(after[ranks.rank]) * 1e3:.3f} ms, "
                        f"mean {np.mean(after[ranks.rank]) * 1e3:.3f} ms, p90 {np.percentile(after[ranks.rank], 90) * 1e3:.3f} ms")
        text = "\n".join(rows)
        if ranks.world > 1:
            texts = [None] * ranks.world
            from ember.distributed.group import _allgather_text, _group
            texts = _allgather_text(_group, text, "profile")
            if ranks.main:
                print("\n".join(texts), flush=True)
        else:
            print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
