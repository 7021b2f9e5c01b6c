"""The ``ember`` command: ``ember train``, ``ember evaluate`` (``ember --help`` lists all).

Each subcommand is a pair of functions ``add_<name>(subparsers)`` / ``run_<name>(args)``;
errors a user can fix are printed as one line on stderr with exit status 1, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .viz.commands import add_filter, add_visualize, run_filter, run_visualize  # noqa: F401 (see COMMANDS)


def add_train(sub):
    from .training.config import add_arguments
    p = sub.add_parser("train", help="train a model (default: LeNet-5 on Fashion-MNIST)",
                       description="Train a model with minibatch SGD (momentum, Nesterov, weight decay, "
                                   "cosine learning-rate decay) or another optimizer and schedule. Every flag "
                                   "combination is checked before the first step. Writes model.safetensors, "
                                   "config.json, metrics.json, resume.safetensors, steps.csv, epochs.csv and "
                                   "curves.png to the run's own folder (--out) after every epoch.")
    add_arguments(p)  # one option per TrainConfig field


def run_train(args):
    from .training import TrainConfig, train
    from .training.safety import sigterm_as_interrupt
    with sigterm_as_interrupt():  # `kill` stops training as Ctrl-C does (issue 14 item 10)
        train(TrainConfig.from_args(args))


class _RunPath(argparse.Action):
    """``ember evaluate RUN``: the positional path and ``--checkpoint RUN`` fill the same field."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values is None:
            return
        if getattr(namespace, "checkpoint", None) not in (None, values):
            parser.error(f"give the run folder once (RUN or --checkpoint), got {namespace.checkpoint} and {values}")
        namespace.checkpoint = values


def add_evaluate(sub):
    p = sub.add_parser("evaluate", help="reload a checkpoint and print its test accuracy",
                       description="Evaluate a run on its data set's test split. RUN is a run folder, or a "
                                   "folder of runs (e.g. runs/lenet5-fashion-mnist): then the newest run "
                                   "in it (the one whose metrics.json was written last).")
    p.add_argument("run", nargs="?", action=_RunPath, metavar="RUN", help="run folder written by ember train")
    p.add_argument("--checkpoint", default=None, metavar="RUN", action=_RunPath, help="the same as RUN")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder holding the data set's files (default: the run's --data-dir, else the usual "
                        "places: $EMBER_DATA/<name>, /usr/share/datasets/<name>, ~/.cache/ember/<name>)")
    p.add_argument("--download", action="store_true", help="fetch the data set if it is not found")


def run_evaluate(args):
    from .training import evaluate, load_checkpoint
    from .training.data import load_run_data
    from .training.runs import find_run
    folder = find_run(args.checkpoint)
    if os.path.isdir(args.checkpoint) and folder != args.checkpoint:   # the newest run below it
        print(f"run: {folder}")
    model, cfg = load_checkpoint(folder)
    x, y = load_run_data(cfg, args.data_dir, subset=cfg.subset, download=args.download, model=model)
    loss, acc = evaluate(model, x, y)
    print(f"{cfg.model} on {cfg.dataset} test set: loss {loss:.4f}, accuracy {acc:.4f} ({len(y)} images)")


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


def add_bench(sub):
    from .training import bench
    p = sub.add_parser("bench", help="time LeNet-5 training and inference against PyTorch (ember.training.bench)",
                       description="Train LeNet-5 in ember and PyTorch in one process on the same batches "
                                   "and weights, alternating runs; print epoch seconds, inference images/s, "
                                   "peak memory, GFLOP/s, per-op times and the ember/PyTorch ratios.")
    bench.add_arguments(p)


def run_bench(args):
    from .training import bench
    bench.run(args)


def add_summary(sub):
    p = sub.add_parser("summary", help="print a model's layers, output shapes and parameter counts",
                       description="Keras-style table of a model: one row per layer (output shape, "
                                   "parameters) and the totals, for a given input shape.")
    p.add_argument("--model", default="lenet5", help="a registered model or deck001-example (default: %(default)s)")
    p.add_argument("--input-shape", default=None, metavar="N,C,H,W",
                   help="input shape, batch first (default: the model's, ember.models.input_shape: 1,1,28,28; "
                        "1,3,32,32 for resnet20; 100,3,256,256 for deck001-example)")


def run_summary(args):
    from .models import MODELS, get_model, input_shape
    from .nn.summary import EXAMPLES, summary
    if args.model in EXAMPLES:
        build, shape = EXAMPLES[args.model]
        model = build()
    elif args.model in MODELS:
        model, shape = get_model(args.model), input_shape(args.model)
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
    from .serialization import CheckpointError
    from .training import TrainingError
    from .autograd.anomaly import AnomalyError
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
    except OSError as e:  # a file or folder that cannot be read or written: one line naming it
        from .training.safety import os_error_message
        print(f"ember {args.command}: error: {os_error_message(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM during `ember train`: the last checkpoint stays
        kept = "; the last saved checkpoint is kept" if args.command == "train" else ""
        print(f"ember {args.command}: {e.args[0] if e.args else 'interrupted'}{kept}", file=sys.stderr)
        return getattr(e, "exit_status", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
