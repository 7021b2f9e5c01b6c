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
FILTER_FOLDER = os.path.join("runs", "filters")   # default output folder (runs/ is git-ignored)


def add_filter(sub):
    """Register ``ember filter IMAGE --kernel K [--mode] [--padding] [--out] [--values] | --demo`` on ``sub``."""
    p = sub.add_parser(
        "filter", help="apply a classic image kernel (Sobel, blur, sharpen, ...) with ember's conv2d",
        description="Filter an image with a kernel from the lectures, computed by ember's own conv2d, and draw "
                    "the image, the kernel's numbers as applied and the signed response with a colour bar "
                    f"(blue negative, white 0, red positive). Kernels: {', '.join(filters.kernel_names())}. "
                    "With --demo, write one sheet with every kernel applied to a built-in test image (or to "
                    f"IMAGE if given). Pictures go to {FILTER_FOLDER}/ unless --out is given.")
    p.add_argument("image", nargs="?", metavar="IMAGE", help="grey or RGB image file (PNG, JPEG, ...)")
    p.add_argument("--kernel", help="kernel name (see above)")
    p.add_argument("--mode", default="correlate", help="correlate (what Conv2d computes, default) or "
                   "convolve (kernel flipped, as in signal processing)")
    p.add_argument("--padding", default="same", help="same (output size = input size, default) or valid")
    p.add_argument("--demo", action="store_true", help="write a sheet with every kernel applied")
    p.add_argument("--out", help=f"output PNG (default: {FILTER_FOLDER}/IMAGE-KERNEL-MODE.png, or "
                                 f"{FILTER_FOLDER}/demo-MODE.png with --demo)")
    p.add_argument("--values", metavar="FILE.npy", help="also save the response's numbers (float32, (H, W) or "
                                                        "(H, W, C)) as a NumPy .npy file")


def _draw_kernel(ax, name: str, mode: str, fontsize: int = 9) -> None:
    """The kernel's numbers as ``filter2d`` applies them (flipped for convolve), on its colours."""
    ax.set_xticks([])
    ax.set_yticks([])
    if name == filters.SOBEL_MAGNITUDE:
        ax.axis("off")
        ax.text(0.5, 0.5, "√(Gx² + Gy²)\nGx: sobel-x\nGy: sobel-y", ha="center", va="center",
                fontsize=fontsize, transform=ax.transAxes)
        return
    k = filters.get_kernel(name, np.float64)
    if mode == "convolve":
        k = k[::-1, ::-1]
    d, numbers = filters.kernel_fraction(k)
    scale = plots.value_scale(k, signed=True)
    ax.imshow(k, interpolation="nearest", **scale)
    small = fontsize - 2 if k.shape[0] > 5 else fontsize
    for (i, j), v in np.ndenumerate(numbers):
        strong = abs(k[i, j]) > 0.6 * scale["vmax"]
        ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=small, color="white" if strong else "black")
    ax.set_title(("" if d == 1 else f"1/{d} × ") + ("flipped" if mode == "convolve" else "as written"),
                 fontsize=fontsize)


def _draw_response(fig, ax, response: np.ndarray, name: str, fontsize: int = 9) -> None:
    """One filter output: brightness (0..255, grey) for smoothing kernels, else signed with a colour bar."""
    ax.set_xticks([])
    ax.set_yticks([])
    if filters.preserves_brightness(name):
        pixels = np.clip(response, 0, 255)
        if pixels.ndim == 3:                                  # colour picture: its own colours, no bar
            ax.imshow(pixels.astype(np.uint8))
            return
        shown = ax.imshow(pixels, cmap="gray", vmin=0, vmax=255)
        plots._colorbar(fig, shown, ax=ax, fontsize=fontsize - 1)
        return
    signed = response if response.ndim == 2 else response.mean(axis=2)   # colour: the channels' mean
    shown = ax.imshow(signed, interpolation="nearest",
                      **plots.value_scale(signed, signed=name != filters.SOBEL_MAGNITUDE))
    plots._colorbar(fig, shown, ax=ax, fontsize=fontsize - 1)


def demo_sheet(image: np.ndarray, path, mode: str = "correlate", padding: str = "same") -> str:
    """Write one PNG with ``image`` and every kernel of ``filters.kernel_names()`` applied to it.

    Each kernel gets two panels: its numbers as applied (flipped for ``mode="convolve"``) and the
    signed response with its colour bar (brightness 0..255 for kernels that sum to 1).
    """
    plt = plots._pyplot()
    names = filters.kernel_names()
    grey = image if image.ndim == 2 else image.mean(axis=2)
    per_row = 4
    rows = (len(names) + 1 + per_row - 1) // per_row
    fig, axes = plt.subplots(rows, 2 * per_row, figsize=(4.6 * per_row, 2.9 * rows), squeeze=False,
                             layout="constrained", width_ratios=[0.75, 1.25] * per_row)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 1].axis("on")
    _draw_response(fig, axes[0, 1], grey, "identity")
    axes[0, 1].set_title("original", fontsize=10)
    for i, name in enumerate(names, start=1):
        r, c = divmod(i, per_row)
        kernel_ax, response_ax = axes[r, 2 * c], axes[r, 2 * c + 1]
        kernel_ax.axis("on")
        response_ax.axis("on")
        _draw_kernel(kernel_ax, name, mode)
        _draw_response(fig, response_ax, filters.apply_named(grey, name, mode=mode, padding=padding), name)
        response_ax.set_title(name, fontsize=10)
    fig.suptitle(f"ember filter --demo: every kernel, mode={mode}, padding={padding} "
                 "(signed responses: blue < 0 < red)", fontsize=13)
    return plots._save(fig, path)


def filter_figure(image: np.ndarray, response: np.ndarray, name: str, mode: str, path) -> str:
    """Write the image, the kernel's numbers as applied and the (signed) response side by side."""
    plt = plots._pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2), layout="constrained", width_ratios=[1, 0.7, 1.2])
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    axes[0].imshow(np.clip(image, 0, 255).astype(np.uint8), cmap="gray", vmin=0, vmax=255)  # cmap: grey only
    axes[0].set_title("input", fontsize=11)
    _draw_kernel(axes[1], name, mode, fontsize=11)
    _draw_response(fig, axes[2], response, name, fontsize=11)
    axes[2].set_title("response" + ("" if filters.preserves_brightness(name) else
                                    " (channel mean)" if response.ndim == 3 else ""), fontsize=11)
    fig.suptitle(f"{name}, mode={mode}: " + ("out(i, j) = Σ I(i + m, j + n) K(m, n)" if mode == "correlate"
                                            else "out(i, j) = Σ I(i − m, j − n) K(m, n), the kernel flipped"),
                 fontsize=12)
    return plots._save(fig, path)


def run_filter(args) -> None:
    """Body of ``ember filter`` (see ``add_filter``)."""
    filters._check_choice(args.mode, filters.MODES, "--mode")
    filters._check_choice(args.padding, filters.PADDINGS, "--padding")
    from ..training.safety import check_out_file
    if args.out:
        check_out_file(args.out)  # issue 14 item 6: not a folder, not under a file
    if args.values and not args.values.endswith(".npy"):
        raise ValueError(f"--values must name a .npy file, got {args.values!r}")
    if args.demo:
        if args.values:
            raise ValueError("--values saves one kernel's response; it cannot be combined with --demo")
        image = plots.load_image(args.image) if args.image else filters.demo_image(160)
        out = args.out or os.path.join(FILTER_FOLDER, f"demo-{args.mode}.png")
        print(demo_sheet(image, out, args.mode, args.padding))
        return
    if not args.image:
        raise ValueError("give an IMAGE file to filter, or --demo for the sheet of every kernel")
    if not args.kernel:
        raise ValueError(f"--kernel is required; valid kernels: {', '.join(filters.kernel_names())}")
    if args.kernel not in filters.kernel_names():
        filters.get_kernel(args.kernel)  # raises the ValueError listing the valid names
    image = plots.load_image(args.image)
    response = filters.apply_named(image, args.kernel, mode=args.mode, padding=args.padding)
    stem = os.path.splitext(os.path.basename(args.image))[0]
    out = args.out or os.path.join(FILTER_FOLDER, f"{stem}-{args.kernel}-{args.mode}.png")
    print(filter_figure(image, response, args.kernel, args.mode, out))
    if args.values:
        os.makedirs(os.path.dirname(os.path.abspath(args.values)), exist_ok=True)
        np.save(args.values, response.astype(np.float32))
        print(args.values)


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
    q.add_argument("--shared-scale", action="store_true",
                   help="one colour scale per layer instead of one per channel, so dead (all-zero) and "
                        "constant channels look different")
    q.add_argument("--data-dir", default=None)
    q = what.add_parser("confusion", help="test-set confusion matrix with class names")
    common(q)
    q.add_argument("--limit", type=int, default=None, help="use only the first N test images")
    q.add_argument("--data-dir", default=None)
    q = what.add_parser("graph", help="computation graph of one forward pass (DOT, PNG, SVG if `dot` exists)")
    common(q, checkpoint_required=False)
    q.add_argument("--model", default="lenet5", help="model name when no --checkpoint (default: %(default)s)")


def run_visualize(args) -> None:
    """Body of ``ember visualize WHAT`` (see ``add_visualize``)."""
    from ..training import load_checkpoint
    from ..training.data import class_names, load_run_data
    plots._pyplot()  # fail early, with the install hint, when matplotlib is missing
    if args.checkpoint:
        from ..training.runs import find_run
        args.checkpoint = find_run(args.checkpoint)  # a folder of runs: its newest run (pictures go there)
        model, cfg = load_checkpoint(args.checkpoint)
    else:
        from ..models import get_model
        model, cfg = get_model(args.model).eval(), None
    run_dir = args.checkpoint
    if run_dir and os.path.isfile(run_dir):
        run_dir = os.path.dirname(run_dir)
    out = args.out or (os.path.join(run_dir, "viz") if run_dir else "viz")  # (--checkpoint may be the model file)
    from ..training.safety import prepare_out
    prepare_out(out)  # issue 14 item 6: a file, a path under a file or a read-only folder: one line
    if args.what == "filters":
        print(plots.plot_filters(model, os.path.join(out, "filters.png")))
    elif args.what == "activations":
        x, y = load_run_data(cfg, args.data_dir, model=model)
        if not 0 <= args.index < len(x):
            raise ValueError(f"--index {args.index} is out of range: the test set has {len(x)} images")
        names = class_names(cfg, args.data_dir)
        maps_in = x[args.index:args.index + 1]
        with no_grad():
            pred = int(model(Tensor(maps_in))._data.argmax(1)[0])
        title = (f"{cfg.model}: test image {args.index} ({names[y[args.index]]}, predicted {names[pred]}) "
                 "-> feature maps after each conv/pool layer")
        print(plots.plot_activations(model, maps_in, os.path.join(out, f"activations-{args.index}.png"), title,
                                     shared_scale=args.shared_scale))
    elif args.what == "confusion":
        x, y = load_run_data(cfg, args.data_dir, model=model)
        if args.limit is not None:
            if args.limit < 1:
                raise ValueError(f"--limit must be at least 1, got {args.limit}")
            x, y = x[:args.limit], y[:args.limit]
        preds = []
        with no_grad():
            for i in range(0, len(x), 1000):
                preds.append(model(Tensor(x[i:i + 1000]))._data.argmax(1))
        names = class_names(cfg, args.data_dir)
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
    from .. import kernels
    from ..nn import functional as F
    x = Tensor(np.zeros((1, 1, 28, 28), dtype=np.float32))
    with kernels.use("reference"):      # one node per layer: no fused Conv2d → ReLU → MaxPool2d
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
