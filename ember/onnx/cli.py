"""The ONNX side of the ``ember`` command, kept here so ``ember/cli.py`` needs only a hook:

    ember export --checkpoint RUN [--format onnx] [--out RUN/model.onnx] [--opset 17]
    ember evaluate --onnx MODEL.onnx [--onnxruntime] [--dataset fashion-mnist] [--data-dir DIR]
    ember summary --onnx MODEL.onnx [--input-shape N,C,H,W]
    ember visualize graph --onnx MODEL.onnx [--out DIR]

``add_commands(subparsers)`` registers ``export`` and adds ``--onnx`` to the existing
``evaluate``, ``summary`` and ``visualize graph`` parsers; ``runner(args)`` returns the function to run for these
(None otherwise, so the caller runs its own). Errors are ``ValueError``s (one line on stderr).
"""
from __future__ import annotations

import argparse
import os

import numpy as np


def _training():
    """The training package (load_checkpoint, load_data, evaluate), imported when a command runs."""
    from .. import training
    return training


def add_commands(sub) -> None:
    """Register ``ember export`` on ``sub`` and add ``--onnx`` to its evaluate/summary parsers."""
    p = sub.add_parser("export", help="write a trained run as an ONNX file (runs in ONNX Runtime)",
                       description="Export the model of a run folder to ONNX (dynamic batch axis), then, "
                                   "when onnxruntime is installed, check its logits against ember's on "
                                   "1,000 test images.")
    p.add_argument("--checkpoint", required=True, metavar="RUN", help="run folder written by ember train")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="only onnx (default)")
    p.add_argument("--out", default=None, help="output file (default: RUN/model.onnx)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="dataset folder for the check (default: the run's)")
    ev = sub.choices.get("evaluate")
    if ev is not None:
        for action in ev._actions:           # --checkpoint OR --onnx
            if action.dest == "checkpoint":
                action.required = False
        ev.add_argument("--onnx", metavar="MODEL.onnx", default=None,
                        help="evaluate an ONNX file (loaded as ember layers) instead of a run folder")
        ev.add_argument("--onnxruntime", action="store_true", help="with --onnx: run it in ONNX Runtime instead")
        if not any(a.dest == "dataset" for a in ev._actions):
            ev.add_argument("--dataset", default="fashion-mnist", help="with --onnx (default: %(default)s)")
    vz = sub.choices.get("visualize")
    graph = next((a.choices.get("graph") for a in (vz._actions if vz else [])
                  if isinstance(a, argparse._SubParsersAction)), None)
    if graph is not None:
        graph.add_argument("--onnx", metavar="MODEL.onnx", default=None,
                           help="draw the graph of an ONNX file as loaded into ember layers")
    sm = sub.choices.get("summary")
    if sm is not None:
        sm.add_argument("--onnx", metavar="MODEL.onnx", default=None,
                        help="summarise an ONNX file as the ember layers it loads as")


def runner(args):
    """The function that runs ``args`` if it is an ONNX command, else None.

    Raises: ValueError for ``evaluate`` with neither --checkpoint nor --onnx. The function
    returned raises ValueError (not ImportError) when the onnx packages are missing.
    """
    fn = None
    if args.command == "export":
        fn = run_export
    elif args.command == "evaluate" and getattr(args, "onnx", None):
        fn = run_evaluate
    elif args.command == "evaluate" and not getattr(args, "checkpoint", None):
        raise ValueError("give a run folder (RUN or --checkpoint RUN) or --onnx MODEL.onnx")
    elif args.command == "summary" and getattr(args, "onnx", None):
        fn = run_summary
    elif args.command == "visualize" and getattr(args, "what", None) == "graph" and getattr(args, "onnx", None):
        fn = run_graph
    if fn is None:
        return None

    def run(a):
        try:
            return fn(a)
        except ImportError as e:
            raise ValueError(f"{e.msg if hasattr(e, 'msg') else e} (pip install 'ember[onnx]')") from None
    return run


def _logits(model, x, batch=1000):
    from ..autograd import no_grad
    from ..tensor import Tensor
    model.eval()
    with no_grad():
        return np.concatenate([model(Tensor(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])


def run_export(args) -> None:
    """``ember export``: RUN -> ONNX file, then an ONNX Runtime check when it is installed."""
    from ..data import DatasetNotFoundError
    from ..tensor import Tensor
    from .export import export
    train = _training()
    model, cfg = train.load_checkpoint(args.checkpoint)
    out = args.out or os.path.join(args.checkpoint, "model.onnx")
    try:
        x, _ = train.load_data(cfg.dataset, args.data_dir or cfg.data_dir, train=False)
        x = x[:1000]
    except DatasetNotFoundError:
        x = None
    example = Tensor(x[:1] if x is not None else np.zeros((1, 1, 28, 28), np.float32))
    export(model, example, out, input_names=["image"], output_names=["logits"],
           dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=args.opset)
    print(f"wrote {out} ({os.path.getsize(out):,} bytes, opset {args.opset}, dynamic batch axis)")
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed: skipped the check (pip install 'ember[onnx]')")
        return
    if x is None:
        print(f"{cfg.dataset} not found: skipped the onnxruntime check")
        return
    got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(["logits"], {"image": x})[0]
    want = _logits(model, x)
    same = int((got.argmax(1) == want.argmax(1)).sum())
    print(f"onnxruntime vs ember on {len(x)} {cfg.dataset} test images: max |Δ logit| "
          f"{np.abs(got - want).max():.2e} (logit scale {np.abs(want).max():.2f}), same class for {same}/{len(x)}")


def run_evaluate(args) -> None:
    """``ember evaluate --onnx``: test loss and accuracy of an ONNX file, in ember or ONNX Runtime."""
    from ..nn import functional as F
    from ..tensor import Tensor
    from .load import load_model
    x, y = _training().load_data(args.dataset, args.data_dir, train=False)
    if args.onnxruntime:
        import onnxruntime as ort
        sess = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        logits = np.concatenate([sess.run(None, {name: x[i:i + 1000]})[0] for i in range(0, len(x), 1000)])
        how = "onnxruntime"
    else:
        logits, how = _logits(load_model(args.onnx), x), "ember"
    loss = F.cross_entropy(Tensor(logits), y).item()
    acc = float((logits.argmax(1) == y).mean())
    print(f"{os.path.basename(args.onnx)} ({how}) on {args.dataset} test set: loss {loss:.4f}, "
          f"accuracy {acc:.4f} ({len(y)} images)")


def run_summary(args) -> None:
    """``ember summary --onnx``: the layer table of an ONNX file as ember loads it."""
    from ..nn.summary import summary
    from .export import _onnx
    from .load import load_model
    model = load_model(args.onnx)
    if args.input_shape:
        try:
            shape = tuple(int(v) for v in args.input_shape.split(","))
        except ValueError:
            raise ValueError(f"--input-shape must be comma-separated ints like 1,1,28,28, "
                             f"got {args.input_shape!r}") from None
    else:
        g = _onnx().load(args.onnx, load_external_data=False).graph
        inits = {i.name for i in g.initializer}
        dims = [i for i in g.input if i.name not in inits][0].type.tensor_type.shape.dim
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in dims)
    print(os.path.basename(args.onnx))
    print(summary(model, shape))


def run_graph(args) -> None:
    """``ember visualize graph --onnx``: the autograd graph of the loaded model (DOT, PNG, SVG)."""
    from ..viz.commands import write_graph
    from .load import load_model
    model = load_model(args.onnx).eval()
    for path in write_graph(model, args.out or "viz", os.path.basename(args.onnx)):
        print(path)
