"""A LeNet-5 training step with and without ``SequentialChain`` (ember/kernels/fusion.py), one process.

    python benchmarks/sequential_chain.py                       # batch 32 and 64, 4 alternating pairs
    python benchmarks/sequential_chain.py --batch-sizes 32 --pairs 6 --steps 500

Builds ``ember train``'s model and optimizer (LeNet-5, SGD with momentum, one thread) and times
forward + cross-entropy + backward + SGD on one fixed random batch, with ``fusion.chain`` on (the
whole Sequential one graph node) and off (each fused group a node of its own), alternating, and
prints every run's ms a step. The two give the same numbers bit for bit (tests/test_fusion.py);
only the Python around the ops differs. Not a test; figures go in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-sizes", default="32,64", help="comma-separated (default: %(default)s)")
    p.add_argument("--pairs", type=int, default=4, help="alternating runs of each (default: %(default)s)")
    p.add_argument("--steps", type=int, default=300, help="steps a run (default: %(default)s)")
    args = p.parse_args(argv)

    import ember
    from ember.kernels import fusion
    from ember.kernels.threads import set_num_threads
    from ember.nn import functional as F
    from ember.training.config import TrainConfig
    from ember.training.data import build_model
    from ember.training.schedules import build_optimizer

    set_num_threads(1)
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        ember.manual_seed(0)
        cfg = TrainConfig()
        model, x, y = build_model(cfg), ember.randn(batch, 1, 28, 28), ember.randint(0, 10, (batch,))
        opt = build_optimizer(model, cfg)

        def step():
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()

        runs = {True: [], False: []}
        for chain in (True, False):          # warm-up: kernels loaded, buffers pooled
            fusion.chain = chain
            for _ in range(30):
                step()
        for _ in range(args.pairs):
            for chain in (True, False):
                fusion.chain = chain
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    step()
                runs[chain].append((time.perf_counter() - t0) / args.steps * 1e3)
        fusion.chain = True
        print(f"batch {batch}: SequentialChain {', '.join(f'{v:.3f}' for v in runs[True])} ms a step; "
              f"groups one node each {', '.join(f'{v:.3f}' for v in runs[False])} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
