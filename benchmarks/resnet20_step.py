"""One ResNet-20 training step at batch 128 (CIFAR-10's 32x32x3 pictures): ember against PyTorch,
in one process, to estimate the time of a CIFAR-10 epoch (391 steps of 128).

    python benchmarks/resnet20_step.py [--batch-size 128] [--steps 3] [--repeats 3] [--threads N] [--ab-block]

Method as ``ember bench`` (``ember/training/bench.py``, whose helpers it uses): same random batches, same initial
weights (ember's ``resnet20`` state_dict loaded into ``cifar_torch.ResNet20``), the same SGD
(lr 0.1, momentum 0.9, Nesterov, weight decay 5e-4 on every parameter), both libraries at their
defaults (no PyTorch setting changed; ``--threads N`` sets both), one untimed warm-up each, then ``--repeats`` alternating rounds of
``--steps`` steps each; medians, and the median of the per-round ratios. A step is forward,
cross-entropy, zero_grad, backward and the SGD update. ``--ab-block``: a third run per round,
ember with numba_conv's 4-channel blocks (its 3×3 stride-1 kernels of before), so old and new
kernels are compared in the same rounds.
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

import ember
from cifar_torch import ResNet20
from ember import threads
from ember.models import resnet20
from ember.training.bench import _with_cpu, alternate, ember_train, pair_ratio, torch_train

STEPS_PER_EPOCH = 391   # ceil(50,000 / 128)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="training steps per timed run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="threads for both (default: each library's own)")
    p.add_argument("--ab-block", action="store_true", help="also ember with the 4-channel blocks (before)")
    args = p.parse_args(argv)
    if args.threads:
        threads.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    ember.manual_seed(0)
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((args.batch_size, 3, 32, 32)).astype(np.float32),
                rng.integers(0, 10, args.batch_size)) for _ in range(args.steps)]
    em = resnet20()
    tm = ResNet20()
    tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in em.state_dict().items()})
    sgd = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    eopt, topt = ember.optim.SGD(em.parameters(), **sgd), torch.optim.SGD(tm.parameters(), **sgd)
    ebatches = [(x, ember.tensor(y)) for x, y in batches]
    tbatches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
    fns = [_with_cpu(lambda: ember_train(em, eopt, ebatches)),
           _with_cpu(lambda: torch_train(torch, tm, topt, tbatches))]
    if args.ab_block:
        from ember.kernels import numba_conv

        def old_blocks():
            shipped = numba_conv.forward_block
            numba_conv.forward_block = lambda Og, SW: 4
            try:
                return ember_train(em, eopt, ebatches)
            finally:
                numba_conv.forward_block = shipped
        fns.append(_with_cpu(old_blocks))
    e, t, *o = alternate(fns, args.repeats)
    per_step = {name: statistics.median(w for w, _ in runs) / args.steps for name, runs in (("ember", e), ("torch", t))}
    cpu = {name: statistics.median(c for _, c in runs) / args.steps for name, runs in (("ember", e), ("torch", t))}
    ratio = pair_ratio([w for w, _ in e], [w for w, _ in t])
    print(f"ResNet-20, batch {args.batch_size}, threads ember {threads.get_num_threads()} / PyTorch "
          f"{torch.get_num_threads()}, {args.repeats} rounds of {args.steps} steps")
    for name in ("ember", "torch"):
        print(f"  {name:5s}: {per_step[name]:.3f} s/step wall ({cpu[name]:.3f} s CPU), "
              f"~{per_step[name] * STEPS_PER_EPOCH / 60:.1f} min per 50,000-picture epoch")
    print(f"  ratio ember/PyTorch (wall, median of rounds): {ratio:.2f}")
    for name, runs in (("ember", e), ("torch", t)):
        print(f"  {name:5s} every round, s/step wall/CPU: "
              + ", ".join(f"{w / args.steps:.3f}/{c / args.steps:.3f}" for w, c in runs))
    print("  per-round ratios: " + ", ".join(f"{a[0] / b[0]:.2f}" for a, b in zip(e, t)))
    if o:
        print(f"  ember 4-channel blocks (before): {statistics.median(w for w, _ in o[0]) / args.steps:.3f} s/step wall; "
              f"ratio to PyTorch {pair_ratio([w for w, _ in o[0]], [w for w, _ in t]):.2f}; new/before "
              f"{pair_ratio([w for w, _ in e], [w for w, _ in o[0]]):.2f}")
        print("  before every round, s/step wall/CPU: "
              + ", ".join(f"{w / args.steps:.3f}/{c / args.steps:.3f}" for w, c in o[0]))
    with open("/proc/loadavg") as f:
        print("  load average after the runs: " + " ".join(f.read().split()[:3]))
    return dict(per_step=per_step, cpu=cpu, ratio=ratio)


if __name__ == "__main__":
    main()
