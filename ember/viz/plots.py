"""Pictures of what a network computes: curves, filters, feature maps, confusion, graphs.

Everything is drawn with matplotlib's non-interactive Agg backend and written as PNG files
(``ember visualize ...``, and ``curves.png`` after each epoch of ``ember train``). matplotlib and
Pillow are the optional ``viz`` extra: ``pip install 'ember[viz]'``. Without them, the functions
here raise ``MissingDependencyError`` with that one-line hint, and ``maybe_plot_curves`` (the
training hook) silently does nothing.

What each picture shows (the lecture it illustrates):
    plot_curves       loss and accuracy per epoch, train vs test (deck 001 "loss functions are the key")
    plot_filters      the first conv layer's kernels as a grid (deck 000: learned filters replace
                      hand-engineered ones such as ``ember.viz.filters.KERNELS``)
    plot_activations  one image's feature maps after every conv and pool layer (deck 003: "one
                      image becomes a stack of filtered images", "a stack of smaller images")
    plot_confusion    the test-set confusion matrix with class names
    graph_dot/plot_graph  the computation graph ember's autograd records for one forward pass
                      (deck 000 "reverse-mode autodiff"; deck 002 "data path vs model path")
"""
from __future__ import annotations

import os
import sys

import numpy as np

from ..tensor import Tensor

INSTALL_HINT = "pip install 'ember[viz]'"


class MissingDependencyError(ImportError):
    """matplotlib or Pillow is missing; the message is a one-line install hint."""


def _pyplot():
    """Import matplotlib.pyplot on the Agg backend, or raise MissingDependencyError."""
    try:
        import matplotlib
        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError(f"matplotlib is not installed; install the viz extra: {INSTALL_HINT}") from None
    return plt


def _pil_image():
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError(f"Pillow is not installed; install the viz extra: {INSTALL_HINT}") from None
    return Image


def _save(fig, path) -> str:
    plt = _pyplot()
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


# ---- image files ------------------------------------------------------------------------
def load_image(path) -> np.ndarray:
    """Read an image file with Pillow: float32 (H, W) for grey images, (H, W, 3) for colour.

    Pixel values stay in 0..255; an alpha channel is dropped, a palette is expanded to RGB.
    Raises:
        FileNotFoundError: no such file. ValueError: the file is not an image Pillow can read.
        MissingDependencyError: Pillow is not installed.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    Image = _pil_image()
    try:
        with Image.open(path) as im:
            im = im.convert("L") if im.mode in ("L", "1", "I;16", "I", "F", "LA") else im.convert("RGB")
            return np.asarray(im, dtype=np.float32)
    except OSError as e:
        raise ValueError(f"cannot read {path} as an image: {e}") from None


def save_image(pixels: np.ndarray, path) -> str:
    """Write uint8 pixels, (H, W) grey or (H, W, 3) RGB, to an image file (format from the suffix)."""
    Image = _pil_image()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
    return str(path)


# ---- training curves ----------------------------------------------------------------------
def plot_curves(metrics: dict, path) -> str:
    """Loss and accuracy per epoch, train vs test (and validation), side by side (a 1000×400-pixel PNG).

    Args:
        metrics: the dict ``ember train`` writes to metrics.json: ``{"epochs": [{"epoch",
            "train_loss", "train_accuracy", "test_loss", "test_accuracy"}, ...]}``; rows with
            ``val_loss``/``val_accuracy`` (``--val-split``) add a validation curve.
        path: the PNG file to write. Returns: path.
    Raises: MissingDependencyError without matplotlib; ValueError when there are no epochs.
    """
    rows = metrics.get("epochs") or []
    if not rows:
        raise ValueError("plot_curves: metrics has no epochs to plot")
    plt = _pyplot()
    ep = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "loss", "cross-entropy loss"), (axes[1], "accuracy", "accuracy")):
        for split, style in (("train", "o-"), ("val", "^:"), ("test", "s--")):
            if all(f"{split}_{key}" in r for r in rows):      # val only with --val-split
                ax.plot(ep, [r[f"{split}_{key}"] for r in rows], style, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_xticks(ep if len(ep) <= 20 else ep[::max(len(ep) // 10, 1)])
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_title("loss per epoch")
    axes[1].set_title(f"accuracy per epoch (last test: {rows[-1]['test_accuracy']:.4f})")
    fig.tight_layout()
    return _save(fig, path)


def maybe_plot_curves(metrics: dict, out) -> str | None:
    """The ``ember train`` hook: write ``<out>/curves.png`` if matplotlib is installed.

    Never raises (training must not stop for a picture): returns the path written, or None when
    matplotlib is missing or plotting failed (a one-line warning goes to stderr in that case).
    """
    try:
        return plot_curves(metrics, os.path.join(out, "curves.png"))
    except MissingDependencyError:
        return None
    except Exception as e:  # noqa: BLE001 - a failed plot must not end a training run
        print(f"ember: warning: could not draw training curves: {e}", file=sys.stderr)
        return None


# ---- model internals -------------------------------------------------------------------------
def conv_layers(model) -> list:
    """The model's Conv2d modules as (name, module) pairs, in definition order."""
    from ..nn import Conv2d
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Conv2d)]


def _grid(n: int, max_cols: int = 8):
    cols = min(n, max_cols)
    return (n + cols - 1) // cols, cols


def plot_filters(model, path, title: str = "") -> str:
    """The first Conv2d layer's kernels, one panel per (output channel, input channel).

    Each kernel is shown with its own symmetric colour scale (red positive, blue negative, white
    zero), so a learned edge detector reads like ``ember.viz.filters.KERNELS["sobel-x"]``.
    Raises:
        ValueError: the model has no Conv2d layer (the message lists the layer types it has).
    """
    convs = conv_layers(model)
    if not convs:
        kinds = sorted({type(m).__name__ for _, m in model.named_modules() if m is not model})
        raise ValueError(f"model has no Conv2d layer to show filters of (its layers: {', '.join(kinds) or 'none'})")
    name, conv = convs[0]
    w = conv.weight._data.astype(np.float64)                  # (C_out, C_in/G, KH, KW)
    C_out, Cg, KH, KW = w.shape
    kernels = w.reshape(C_out * Cg, KH, KW)
    plt = _pyplot()
    rows, cols = _grid(len(kernels), max_cols=8 if Cg == 1 else Cg)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.6), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(kernels):
            ax.axis("off")
            continue
        k = kernels[i]
        lim = float(np.abs(k).max()) or 1.0
        ax.imshow(k, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(f"{i // Cg}" + (f".{i % Cg}" if Cg > 1 else ""), fontsize=8)
    fig.suptitle(title or f"layer {name} (Conv2d {conv.weight.shape[1]}→{C_out}, {KH}×{KW}) kernels")
    fig.tight_layout()
    return _save(fig, path)


def feature_maps(model, x) -> list:
    """Run one forward pass and keep the output of every Conv2d and pooling layer.

    Args: model: an ember Module; x: Tensor or array (N, C, H, W) (only image 0 is kept).
    Returns: list of (layer name, layer type name, ndarray (C, H, W)) in execution order.
    """
    from ..autograd import no_grad
    from ..nn import AvgPool2d, Conv2d, MaxPool2d
    taken, patched = [], []
    for name, m in model.named_modules():
        if isinstance(m, (Conv2d, MaxPool2d, AvgPool2d)):
            def capture(*args, _m=m, _name=name, _fwd=m.forward, **kw):
                y = _fwd(*args, **kw)
                taken.append((_name, type(_m).__name__, np.array(y._data[0])))
                return y
            object.__setattr__(m, "forward", capture)     # instance attribute shadows the method
            patched.append(m)
    try:
        with no_grad():
            model(x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float32)))
    finally:
        for m in patched:
            del m.__dict__["forward"]
    return taken


def plot_activations(model, image, path, title: str = "", max_channels: int = 16) -> str:
    """The input image and its feature maps after every conv and pool layer, one row per layer.

    Args:
        model: an ember Module with Conv2d/pooling layers.
        image: (C, H, W) or (1, C, H, W) array or Tensor, normalised as the model was trained.
        path: PNG file to write. title: figure title. max_channels: channels shown per layer.
    Raises: ValueError when the model has no conv or pooling layer.
    """
    x = image._data if isinstance(image, Tensor) else np.asarray(image, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    maps = feature_maps(model, x)
    if not maps:
        raise ValueError("model has no Conv2d or pooling layer whose feature maps could be shown")
    plt = _pyplot()
    cols = min(max(m.shape[0] for _, _, m in maps), max_channels) + 1
    rows = len(maps) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.4 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].imshow(x[0].mean(0), cmap="gray")
    axes[0, 0].set_title("input", fontsize=8)
    for r, (name, kind, m) in enumerate(maps, start=1):
        axes[r, 0].text(0.0, 0.5, f"{name}\n{kind}\n{m.shape[0]}×{m.shape[1]}×{m.shape[2]}",
                        fontsize=8, va="center", transform=axes[r, 0].transAxes)
        for c in range(min(m.shape[0], max_channels)):
            axes[r, c + 1].imshow(m[c], cmap="viridis", interpolation="nearest")
            if r == 1 or maps[r - 2][2].shape[0] != m.shape[0]:
                axes[r, c + 1].set_title(f"ch {c}", fontsize=7)
    fig.suptitle(title or "feature maps: one image becomes a stack of filtered images")
    fig.tight_layout()
    return _save(fig, path)


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts C[i, j] = number of samples of true class i predicted as class j (int64, (K, K))."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"confusion_matrix: y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def plot_confusion(cm: np.ndarray, class_names, path, title: str = "") -> str:
    """Draw a confusion matrix with counts in the cells, true classes down, predictions across."""
    plt = _pyplot()
    K = cm.shape[0]
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * K, 0.6 + 0.7 * K))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(K), labels=list(class_names), rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(K), labels=list(class_names), fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    hi = cm.max() if cm.size else 0
    for i in range(K):
        for j in range(K):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > hi / 2 else "black")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(title or f"confusion matrix ({cm.sum()} images, accuracy {acc:.4f})")
    fig.tight_layout()
    return _save(fig, path)


# ---- computation graph --------------------------------------------------------------------
def _graph(output: Tensor, param_names: dict | None):
    """Nodes of the recorded graph, inputs first: list of (tensor, label, kind, parent tensors)."""
    names = {id(p): n for n, p in (param_names or {}).items()}
    order, seen, stack = [], set(), [(output, False)]
    while stack:                                  # iterative DFS post-order (no recursion limit)
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._ctx is not None:
            for p in reversed(t._ctx.parents):
                if isinstance(p, Tensor) and id(p) not in seen:
                    stack.append((p, False))
    nodes = []
    for t in order:
        shape = "×".join(map(str, t.shape)) or "scalar"
        if t._ctx is None:
            kind = "param" if id(t) in names else "input"
            label = f"{names.get(id(t), 'input')}\n{shape}"
            parents = []
        else:
            kind, label = "op", f"{t._ctx.fn.__name__}\n{shape}"
            parents = [p for p in t._ctx.parents if isinstance(p, Tensor)]
        nodes.append((t, label, kind, parents))
    return nodes


def graph_dot(output: Tensor, param_names: dict | None = None) -> str:
    """The computation graph that produced ``output``, as Graphviz DOT text.

    Op nodes (boxes) are the ``Function`` classes autograd recorded, labelled with their output
    shape; parameters (named from ``param_names``, e.g. ``dict(model.named_parameters())``) are
    green ellipses, other leaf inputs grey. Edges point along the forward pass (data path);
    ``backward`` walks them in reverse.
    Raises: ValueError when ``output`` has no recorded graph (made under no_grad, or a leaf).
    """
    if output._ctx is None:
        raise ValueError("graph_dot: the tensor has no recorded graph (was it computed under "
                         "no_grad, or from tensors that do not require grad?)")
    nodes = _graph(output, param_names)
    ids = {id(t): f"n{i}" for i, (t, *_rest) in enumerate(nodes)}
    style = {"op": 'shape=box, style="rounded,filled", fillcolor="#dde8f7"',
             "param": 'shape=ellipse, style=filled, fillcolor="#d9f2d9"',
             "input": 'shape=ellipse, style=filled, fillcolor="#eeeeee"'}
    lines = ["digraph ember {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];']
    for t, label, kind, parents in nodes:
        text = label.replace("\n", "\\n").replace('"', '\\"')
        lines.append(f'  {ids[id(t)]} [label="{text}", {style[kind]}];')
    for t, _label, _kind, parents in nodes:
        for p in parents:
            lines.append(f"  {ids[id(p)]} -> {ids[id(t)]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def plot_graph(output: Tensor, path, param_names: dict | None = None, title: str = "") -> str:
    """Draw the computation graph with matplotlib (no Graphviz needed), a PNG.

    Op nodes go down the middle column in execution order; each parameter sits to the right of
    the op that consumes it; arrows follow the forward pass.
    """
    if output._ctx is None:
        raise ValueError("plot_graph: the tensor has no recorded graph")
    plt = _pyplot()
    nodes = _graph(output, param_names)
    kinds = {id(t): kind for t, _label, kind, _parents in nodes}
    pos, row = {}, 0
    for t, _label, kind, parents in nodes:
        if kind != "op":
            continue
        pos[id(t)] = (0.0, -row)
        leaves = [p for p in parents if p._ctx is None and id(p) not in pos]
        params = [p for p in leaves if kinds[id(p)] == "param"]
        for j, p in enumerate(params):                    # weight above bias, right of the op
            pos[id(p)] = (1.7, -row + 0.3 * ((len(params) - 1) / 2 - j))
        for p in leaves:
            pos.setdefault(id(p), (-1.7, -row))            # data inputs: left of the op
        row += 1
    fig, ax = plt.subplots(figsize=(7.5, 0.75 * row + 1.4))
    colours = {"op": "#dde8f7", "param": "#d9f2d9", "input": "#eeeeee"}
    for t, label, kind, parents in nodes:
        for p in parents:
            ax.annotate("", xy=pos[id(t)], xytext=pos[id(p)],
                        arrowprops=dict(arrowstyle="->", color="#777777", shrinkA=14, shrinkB=14))
    for t, label, kind, parents in nodes:
        x, y = pos[id(t)]
        ax.text(x, y, label.replace("\n", "  "), ha="center", va="center", fontsize=7 if kind != "op" else 8,
                bbox=dict(boxstyle="round,pad=0.3", fc=colours[kind], ec="#555555"))
    ax.set_xlim(-3, 3)
    ax.set_ylim(-row + 0.4, 0.8)
    ax.axis("off")
    ax.set_title(title or f"computation graph of one forward pass ({row} ops)")
    fig.tight_layout()
    return _save(fig, path)
