"""``ember filter`` and ``ember visualize {filters,activations,confusion,graph}``.

``ember/cli.py`` registers these pairs ``add_filter``/``run_filter`` and ``add_visualize``/``run_visualize``
as its own. Each command writes its pictures and prints one path per line.
Errors a user can fix are ValueError / FileNotFoundError / ``plots.MissingDependencyError``, which
the CLI prints as one line with exit status 1.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor
from . import filters, plots


# ---- ember filter --------------------------------------------------------------------------
def add_filter(sub):
    """Register ``ember filter IMAGE --kernel K [--mode] [--padding] [--out] | --demo`` on ``sub``."""
    p = sub.add_parser(
        "filter", help="apply a classic image kernel (Sobel, blur, sharpen, ...) with ember's conv2d",
        description="Filter an image with a kernel from the lectures, computed by ember's own conv2d. "
                    f"Kernels: {', '.join(filters.kernel_names())}. With --demo, write one sheet with "
                    "every kernel applied to a built-in test image (or to IMAGE if given).")
    p.add_argument("image", nargs="?", metavar="IMAGE", help="grey or RGB image file (PNG, JPEG, ...)")
    p.add_argument("--kernel", help="kernel name (see above)")
    p.add_argument("--mode", default="correlate", help="correlate (what Conv2d computes, default) or "
                   "convolve (kernel flipped, as in signal processing)")
    p.add_argument("--padding", default="same", help="same (output size = input size, default) or valid")
    p.add_argument("--demo", action="store_true", help="write a sheet with every kernel applied")
    p.add_argument("--out", help="output PNG (default: IMAGE-KERNEL.png, or filters-demo.png with --demo)")


def demo_sheet(image: np.ndarray, path, mode: str = "correlate", padding: str = "same") -> str:
    """Write one PNG with ``image`` and every kernel of ``filters.kernel_names()`` applied to it."""
    plt = plots._pyplot()
    names = filters.kernel_names()
    grey = image if image.ndim == 2 else image.mean(axis=2)
    cols = 5
    rows = (len(names) + 1 + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].imshow(np.clip(grey, 0, 255), cmap="gray", vmin=0, vmax=255)
    axes[0, 0].set_title("original", fontsize=9)
    for i, name in enumerate(names, start=1):
        out = filters.to_uint8(filters.apply_named(grey, name, mode=mode, padding=padding), name)
        ax = axes.flat[i]
        ax.imshow(out, cmap="gray", vmin=0, vmax=255)
        ax.set_title(name, fontsize=9)
    fig.suptitle(f"ember filter --demo: every kernel, mode={mode}, padding={padding}")
    fig.tight_layout()
    return plots._save(fig, path)


def run_filter(args) -> None:
    """Body of ``ember filter`` (see ``add_filter``)."""
    filters._check_choice(args.mode, filters.MODES, "--mode")
    filters._check_choice(args.padding, filters.PADDINGS, "--padding")
    if args.demo:
        image = plots.load_image(args.image) if args.image else filters.demo_image(160)
        print(demo_sheet(image, args.out or "filters-demo.png", args.mode, args.padding))
        return
    if not args.image:
        raise ValueError("give an IMAGE file to filter, or --demo for the sheet of every kernel")
    if not args.kernel:
        raise ValueError(f"--kernel is required; valid kernels: {', '.join(filters.kernel_names())}")
    if args.kernel not in filters.kernel_names():
        filters.get_kernel(args.kernel)  # raises the ValueError listing the valid names
    image = plots.load_image(args.image)
    out = filters.apply_named(image, args.kernel, mode=args.mode, padding=args.padding)
    stem = os.path.splitext(os.path.basename(args.image))[0]
    print(plots.save_image(filters.to_uint8(out, args.kernel), args.out or f"{stem}-{args.kernel}.png"))


# ---- ember visualize ------------------------------------------------------------------------
def add_visualize(sub):
    """Register ``ember visualize {filters,activations,confusion,graph}`` and their options on ``sub``."""
    p = sub.add_parser("visualize", help="draw filters, feature maps, confusion matrix or graph of a checkpoint",
                       description="Pictures of a trained model (PNG files; paths are printed).")
    what = p.add_subparsers(dest="what", metavar="WHAT", required=True)

    def common(q, checkpoint_required=True):  # options every WHAT shares
        q.add_argument("--checkpoint", required=checkpoint_required, help="run folder written by ember train")
        q.add_argument("--out", help="folder for the pictures (default: CHECKPOINT/viz)")

    common(what.add_parser("filters", help="first conv layer's kernels as a grid"))
    q = what.add_parser("activations", help="a test image's feature maps after every conv/pool layer")
    common(q)
    q.add_argument("--index", type=int, default=0, help="test-set image index (default: %(default)s)")
    q.add_argument("--data-dir", default=None)
    q = what.add_parser("confusion", help="test-set confusion matrix with class names")
    common(q)
    q.add_argument("--limit", type=int, default=None, help="use only the first N test images")
    q.add_argument("--data-dir", default=None)
    q = what.add_parser("graph", help="computation graph of one forward pass (DOT, PNG, SVG if `dot` exists)")
    common(q, checkpoint_required=False)
    q.add_argument("--model", default="lenet5", help="model name when no --checkpoint (default: %(default)s)")


def _class_names(dataset: str):
    from ..training import DATASETS
    return list(DATASETS[dataset][0].classes)


def run_visualize(args) -> None:
    """Body of ``ember visualize WHAT`` (see ``add_visualize``)."""
    from ..training import load_checkpoint, load_data
    plots._pyplot()  # fail early, with the install hint, when matplotlib is missing
    if args.checkpoint:
        model, cfg = load_checkpoint(args.checkpoint)
    else:
        from ..models import get_model
        model, cfg = get_model(args.model).eval(), None
    out = args.out or (os.path.join(args.checkpoint, "viz") if args.checkpoint else "viz")
    if args.what == "filters":
        print(plots.plot_filters(model, os.path.join(out, "filters.png")))
    elif args.what == "activations":
        x, y = load_data(cfg.dataset, args.data_dir or cfg.data_dir, train=False)
        if not 0 <= args.index < len(x):
            raise ValueError(f"--index {args.index} is out of range: the test set has {len(x)} images")
        names = _class_names(cfg.dataset)
        maps_in = x[args.index:args.index + 1]
        with no_grad():
            pred = int(model(Tensor(maps_in))._data.argmax(1)[0])
        title = (f"{cfg.model}: test image {args.index} ({names[y[args.index]]}, predicted {names[pred]}) "
                 "-> feature maps after each conv/pool layer")
        print(plots.plot_activations(model, maps_in, os.path.join(out, f"activations-{args.index}.png"), title))
    elif args.what == "confusion":
        x, y = load_data(cfg.dataset, args.data_dir or cfg.data_dir, train=False)
        if args.limit is not None:
            if args.limit < 1:
                raise ValueError(f"--limit must be at least 1, got {args.limit}")
            x, y = x[:args.limit], y[:args.limit]
        preds = []
        with no_grad():
            for i in range(0, len(x), 1000):
                preds.append(model(Tensor(x[i:i + 1000]))._data.argmax(1))
        names = _class_names(cfg.dataset)
        cm = plots.confusion_matrix(y, np.concatenate(preds), len(names))
        title = f"{cfg.model} on {cfg.dataset} test set: {cm.sum()} images, accuracy {np.trace(cm) / cm.sum():.4f}"
        print(plots.plot_confusion(cm, names, os.path.join(out, "confusion.png"), title))
    elif args.what == "graph":
        for path in write_graph(model, out, args.checkpoint and cfg.model or args.model):
            print(path)


def write_graph(model, out: str, name: str = "model") -> list:
    """Write graph.dot and graph.png (and graph.svg when Graphviz's ``dot`` is on PATH).

    The graph is one forward pass of a 1×1×28×28 zero image plus the cross-entropy loss, with
    parameters named as in the state dict. Returns the paths written.
    """
    from ..nn import functional as F
    x = Tensor(np.zeros((1, 1, 28, 28), dtype=np.float32))
    loss = F.cross_entropy(model(x), np.zeros(1, dtype=np.int64))
    params = dict(model.named_parameters())
    os.makedirs(out, exist_ok=True)
    dot_path = os.path.join(out, "graph.dot")
    from ..serialization import atomic_write_bytes
    atomic_write_bytes(dot_path, plots.graph_dot(loss, params).encode())
    paths = [dot_path, plots.plot_graph(loss, os.path.join(out, "graph.png"), params,
                                      title=f"{name}: one forward pass and its loss, as autograd records it")]
    dot = shutil.which("dot")
    if dot:
        svg = os.path.join(out, "graph.svg")
        subprocess.run([dot, "-Tsvg", dot_path, "-o", svg], check=True, capture_output=True, timeout=60)
        paths.append(svg)
    return paths
