"""The ``ember`` command: ``ember train``, ``ember evaluate`` (``ember --help`` lists all).

Each subcommand is a pair of functions ``add_<name>(subparsers)`` / ``run_<name>(args)``;
errors a user can fix are printed as one line on stderr with exit status 1, never a traceback.
"""
from __future__ import annotations

import argparse
import sys

from . import __version__


def add_train(sub):
    from .train import TrainConfig
    d = TrainConfig()
    p = sub.add_parser("train", help="train a model (default: LeNet-5 on Fashion-MNIST)",
                       description="Train a model with minibatch SGD (momentum, Nesterov, weight decay, "
                                   "cosine learning-rate decay); writes model.safetensors, "
                                   "config.json and metrics.json to --out after every epoch.")
    p.add_argument("--model", default=d.model, help="model name (default: %(default)s)")
    p.add_argument("--dataset", default=d.dataset, help="fashion-mnist or mnist (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files (default: $EMBER_DATA, "
                   "/usr/share/datasets/<name>, ~/.cache/ember/<name>)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="default: %(default)s")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="default: %(default)s")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default: %(default)s)")
    p.add_argument("--momentum", type=float, default=d.momentum, help="default: %(default)s")
    p.add_argument("--no-nesterov", dest="nesterov", action="store_false", help="plain momentum")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="L2 penalty on weights, not biases (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="default: %(default)s")
    p.add_argument("--out", default=d.out, help="run folder (default: %(default)s)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--optimizer", default=d.optimizer, help="sgd, adam, adamw, rmsprop or adagrad "
                   "(default: %(default)s; try --lr 1e-3 for the adaptive ones)")
    p.add_argument("--nesterov", dest="nesterov", action="store_true", default=d.nesterov,
                   help="Nesterov momentum for sgd (the default)")
    p.add_argument("--schedule", default=d.schedule, help="learning-rate schedule: none, step, cosine "
                   "(per step), onecycle or plateau (default: %(default)s)")
    p.add_argument("--warmup", type=float, default=d.warmup, help="epochs of linear lr warm-up (default: 0)")
    p.add_argument("--augment", action="store_true", help="random 2-pixel shifts and horizontal flips")
    p.add_argument("--val-split", type=float, default=d.val_split,
                   help="fraction of the training set held out for validation (default: 0)")
    p.add_argument("--patience", type=int, default=d.patience,
                   help="stop after this many epochs without a better validation loss (0: never; needs --val-split)")
    p.add_argument("--resume", metavar="DIR", default=None, help="continue the run saved in DIR, bit for bit "
                   "(same flags as the interrupted run)")
    p.add_argument("--threads", type=int, default=None, help="BLAS threads (default: NumPy's setting)")
    p.add_argument("--detect-anomaly", action="store_true", help="stop at the first op whose output or "
                   "gradient is NaN/inf, naming it and its call site (slow; for debugging)")


def run_train(args):
    from .train import TrainConfig, train
    cfg = TrainConfig(model=args.model, dataset=args.dataset, data_dir=args.data_dir, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
                      nesterov=args.nesterov, weight_decay=args.weight_decay, seed=args.seed,
                      out=args.out, progress=args.progress)
    cfg.detect_anomaly = getattr(args, "detect_anomaly", False)
    for name in ("optimizer", "schedule", "warmup", "augment", "val_split", "patience", "resume", "threads"):
        setattr(cfg, name, getattr(args, name))
    train(cfg)


def add_evaluate(sub):
    p = sub.add_parser("evaluate", help="reload a checkpoint and print its test accuracy")
    p.add_argument("--checkpoint", required=True, help="run folder written by ember train")
    p.add_argument("--data-dir", default=None)


def run_evaluate(args):
    from .train import evaluate, load_checkpoint, load_data
    model, cfg = load_checkpoint(args.checkpoint)
    x, y = load_data(cfg.dataset, args.data_dir or cfg.data_dir, train=False)
    loss, acc = evaluate(model, x, y)
    print(f"{cfg.model} on {cfg.dataset} test set: loss {loss:.4f}, accuracy {acc:.4f} ({len(y)} images)")


def add_filter(sub):
    from .viz_commands import add_filter_parser
    add_filter_parser(sub)


def run_filter(args):
    from .viz_commands import run_filter as run
    run(args)


def add_visualize(sub):
    from .viz_commands import add_visualize_parser
    add_visualize_parser(sub)


def run_visualize(args):
    from .viz_commands import run_visualize as run
    run(args)


def add_playground(sub):
    p = sub.add_parser("playground", help="serve the interactive playground (a local TensorFlow Playground)",
                       description="Serve ember's playground page: train small networks on 2-D data in the "
                                   "browser with ember itself; loopback only unless --host says otherwise.")
    p.add_argument("--port", type=int, default=8000, help="TCP port, 0 = any free one (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--no-browser", dest="browser", action="store_false", help="do not open a browser")
    p.add_argument("--verbose", action="store_true", help="log every request")


def run_playground(args):
    from .playground import serve
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    try:
        serve(args.host, args.port, open_browser=args.browser, verbose=args.verbose)
    except OSError as e:
        raise ValueError(f"cannot serve on {args.host}:{args.port}: {e.strerror or e}") from None


_BENCH = []


def _bench_module():
    """benchmarks/lenet.py of this source checkout (it is not part of the installed package)."""
    import importlib.util
    import os
    if _BENCH:
        return _BENCH[0]
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "lenet.py")
    if not os.path.exists(path):
        return None
    spec = importlib.util.spec_from_file_location("ember_benchmarks_lenet", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _BENCH.append(mod)
    return mod


def add_bench(sub):
    p = sub.add_parser("bench", help="time LeNet-5 training and inference against PyTorch (benchmarks/lenet.py)",
                       description="Train LeNet-5 in ember and PyTorch in one process on the same batches "
                                   "and weights, alternating runs; print epoch seconds, inference images/s, "
                                   "peak memory, GFLOP/s, per-op times and the ember/PyTorch ratios.")
    mod = _bench_module()
    if mod is not None:
        mod.add_arguments(p)


def run_bench(args):
    mod = _bench_module()
    if mod is None:
        raise ValueError("ember bench needs a source checkout: benchmarks/lenet.py was not found next to "
                         "the ember package (git clone the repository and pip install -e .)")
    mod.run(args)


def add_summary(sub):
    p = sub.add_parser("summary", help="print a model's layers, output shapes and parameter counts",
                       description="Keras-style table of a model: one row per layer (output shape, "
                                   "parameters) and the totals, for a given input shape.")
    p.add_argument("--model", default="lenet5", help="a registered model or deck001-example (default: %(default)s)")
    p.add_argument("--input-shape", default=None, metavar="N,C,H,W",
                   help="input shape, batch first (default: 1,1,28,28; 100,3,256,256 for deck001-example)")


def run_summary(args):
    from .models import MODELS, get_model
    from .summary import EXAMPLES, summary
    if args.model in EXAMPLES:
        build, shape = EXAMPLES[args.model]
        model = build()
    elif args.model in MODELS:
        model, shape = get_model(args.model), (1, 1, 28, 28)
    else:
        raise ValueError(f"unknown model {args.model!r}; valid models: {', '.join(sorted([*MODELS, *EXAMPLES]))}")
    if args.input_shape:
        try:
            shape = tuple(int(v) for v in args.input_shape.split(","))
        except ValueError:
            raise ValueError(f"--input-shape must be comma-separated ints like 1,1,28,28, got {args.input_shape!r}") from None
    print(args.model)
    print(summary(model, shape))


COMMANDS = ["train", "evaluate", "filter", "visualize", "playground", "bench", "summary"]


def main(argv=None) -> int:
    """Entry point of the ``ember`` console script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="ember", description="ember: deep learning from the "
                                     "backpropagation equations up, on NumPy.")
    parser.add_argument("--version", action="version", version=f"ember {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    mod = sys.modules[__name__]
    for name in COMMANDS:
        getattr(mod, f"add_{name.replace('-', '_')}")(sub)
    from .onnx.cli import add_commands, runner  # ember export; --onnx on evaluate and summary
    add_commands(sub)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from .data import DatasetNotFoundError
    from .io import CheckpointError
    from .train import TrainingError
    from .anomaly import AnomalyError
    from .viz import MissingDependencyError
    import numpy as np
    try:
        # ember reports non-finite losses itself; NumPy's overflow warnings would only be noise
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            (runner(args) or getattr(mod, f"run_{args.command.replace('-', '_')}"))(args)
    except (DatasetNotFoundError, CheckpointError, TrainingError, ValueError, FileNotFoundError,
            MissingDependencyError, AnomalyError) as e:
        print(f"ember {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ember {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
