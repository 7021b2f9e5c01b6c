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

Every picture of numbers carries a colour bar; ``value_scale`` picks the map: diverging and centred
on 0 for signed values (weights, conv outputs), sequential from 0 for non-negative ones.
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


# ---- colour scales --------------------------------------------------------------------------
DIVERGING = "RdBu_r"      # signed values: blue negative, white zero, red positive
SEQUENTIAL = "viridis"    # non-negative values: dark zero, yellow largest


def value_scale(values, signed: bool | None = None) -> dict:
    """The colour map and limits that make a picture of ``values`` readable, as ``imshow`` keywords.

    Signed data (any value below 0, or ``signed=True``) get the diverging map centred on 0
    (``vmin = -m``, ``vmax = m``, m the largest magnitude), so white always means 0 and red vs
    blue tells positive from negative. Non-negative data get the sequential map from 0 to its
    maximum, so an all-zero (dead) channel is dark and a constant positive one is not.
    An all-zero input gets the limits ±1 (or 0..1), never an empty range.
    """
    v = np.asarray(values, dtype=np.float64)
    m = float(np.abs(v).max()) if v.size else 0.0
    m = m if np.isfinite(m) and m > 0 else 1.0
    if signed is None:
        signed = bool(v.size and v.min() < 0)
    if signed:
        return {"cmap": DIVERGING, "vmin": -m, "vmax": m}
    return {"cmap": SEQUENTIAL, "vmin": 0.0, "vmax": m}


def _colorbar(fig, image, cax=None, ax=None, label: str = "", fontsize: int = 9):
    """A colour bar for ``image`` in ``cax`` (or beside ``ax``), ticks and label at ``fontsize``."""
    bar = fig.colorbar(image, cax=cax, ax=ax, fraction=0.046 if cax is None else 0.15, pad=0.04)
    bar.ax.set_label("<colorbar>")        # as matplotlib names the axes it makes itself
    bar.ax.tick_params(labelsize=fontsize)
    if label:
        bar.set_label(label, fontsize=fontsize)
    return bar


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
def plot_curves(metrics: dict, path, steps=None) -> str:
    """The training curves of a run (a PNG): loss, accuracy and, with ``steps``, the learning rate.

    Without ``steps``: loss and accuracy per epoch, train vs test (and validation), side by side.
    With ``steps`` (``ember train``'s per-step log): the loss panel shows every batch's loss (thin),
    the epoch means on top (the x axis counts epochs, so one epoch is a curve, not two dots), and a
    third panel the learning rate of every step.

    Args:
        metrics: the dict ``ember train`` writes to metrics.json: ``{"epochs": [{"epoch",
            "train_loss", "train_accuracy", "test_loss", "test_accuracy"}, ...]}``; rows with
            ``val_loss``/``val_accuracy`` (``--val-split``) add a validation curve.
        path: the PNG file to write.
        steps: optional list of (epoch, loss, lr), one per optimizer step, in order.
    Returns: path.
    Raises: MissingDependencyError without matplotlib; ValueError when there are no epochs.
    """
    rows = metrics.get("epochs") or []
    if not rows:
        raise ValueError("plot_curves: metrics has no epochs to plot")
    plt = _pyplot()
    ep = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 3 if steps else 2, figsize=(15 if steps else 10, 4))
    if steps:
        x = _step_positions([e for e, _, _ in steps])
        axes[0].plot(x, [loss for _, loss, _ in steps], "-", color="tab:blue", alpha=0.3, lw=0.8,
                     label="train (each step)")
        axes[2].plot(x, [lr for _, _, lr in steps], "-", color="tab:purple")
        axes[2].set_xlabel("epoch")
        axes[2].set_ylabel("learning rate")
        axes[2].set_title("learning rate per step")
        axes[2].grid(alpha=0.3)
    for ax, key, label in ((axes[0], "loss", "cross-entropy loss"), (axes[1], "accuracy", "accuracy")):
        for split, style in (("train", "o-"), ("val", "^:"), ("test", "s--")):
            if all(f"{split}_{key}" in r for r in rows):      # val only with --val-split
                name = "train (epoch mean)" if split == "train" and steps and key == "loss" else split
                ax.plot(ep, [r[f"{split}_{key}"] for r in rows], style, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_xticks(ep if len(ep) <= 20 else ep[::max(len(ep) // 10, 1)])
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_title("loss (epoch means at each epoch's end)" if steps else "loss per epoch")
    axes[1].set_title(f"accuracy per epoch (last test: {rows[-1]['test_accuracy']:.4f})")
    if steps:
        axes[0].set_xlim(left=0)
        axes[2].set_xlim(axes[0].get_xlim())
    fig.tight_layout()
    return _save(fig, path)


def _step_positions(epochs: list) -> list:
    """Each step's position in epochs: step i of n in epoch e sits at e - 1 + i/n."""
    counts: dict = {}
    for e in epochs:
        counts[e] = counts.get(e, 0) + 1
    seen: dict = {}
    out = []
    for e in epochs:
        seen[e] = seen.get(e, 0) + 1
        out.append(e - 1 + seen[e] / counts[e])
    return out


def maybe_plot_curves(metrics: dict, out, steps=None) -> str | None:
    """The ``ember train`` hook: write ``<out>/curves.png`` (``plot_curves``, with the per-step
    log ``steps`` when given) if matplotlib is installed.

    Never raises (training must not stop for a picture): returns the path written, or None when
    matplotlib is missing or plotting failed (a one-line warning goes to stderr in that case).
    """
    try:
        return plot_curves(metrics, os.path.join(out, "curves.png"), steps=steps)
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
    """The first Conv2d layer's kernels, one panel per (output channel, input channel), with a colour bar.

    All kernels share one colour scale centred on 0 (``value_scale``: red positive, blue
    negative, white zero), shown by the colour bar on the right, so a learned edge detector reads
    like ``ember.viz.filters.KERNELS["sobel-x"]`` and a strong kernel stands out from a weak one.
    A layer on RGB input (3 input channels per group) shows each kernel as one colour picture
    instead (one scale for all: mid-grey 0, each channel's weight as that colour's intensity).
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
    if Cg == 3:   # an RGB first layer: one colour picture per kernel, mid-grey = 0, one scale for all
        lim = float(np.abs(w).max()) or 1.0
        kernels, Cg, scale = (0.5 + w / (2 * lim)).transpose(0, 2, 3, 1), 1, None   # (C_out, KH, KW, 3)
    else:
        kernels = w.reshape(C_out * Cg, KH, KW)
        scale = value_scale(kernels, signed=True)
    plt = _pyplot()
    rows, cols = _grid(len(kernels), max_cols=8 if Cg == 1 else Cg)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols + 1.2, 1.6 * rows + 0.7), squeeze=False,
                             layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(kernels):
            ax.axis("off")
            continue
        shown = ax.imshow(kernels[i], interpolation="nearest", **(scale or {}))
        ax.set_title(f"{i // Cg}" + (f".{i % Cg}" if Cg > 1 else ""), fontsize=10)
    if scale is not None:
        _colorbar(fig, shown, ax=axes.ravel().tolist(), label="weight", fontsize=10)
    fig.suptitle(title or f"layer {name} (Conv2d {conv.weight.shape[1]}→{C_out}, {KH}×{KW}) kernels")
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
                out = y[0] if isinstance(y, tuple) else y       # MaxPool2d(return_indices=True)
                taken.append((_name, type(_m).__name__, np.array(out._data[0])))
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


def plot_activations(model, image, path, title: str = "", max_channels: int = 16,
                     shared_scale: bool = False) -> str:
    """The input image and its feature maps after every conv and pool layer, one row per layer.

    Each layer's row ends in a colour bar. Rows holding negative values (conv outputs before the
    ReLU) use the diverging map centred on 0, non-negative rows (after ReLU and pooling) the
    sequential map from 0 (``value_scale``).

    Args:
        model: an ember Module with Conv2d/pooling layers.
        image: (C, H, W) or (1, C, H, W) array or Tensor, normalised as the model was trained.
        path: PNG file to write. title: figure title. max_channels: channels shown per layer.
        shared_scale: False (default): each panel is stretched to its own largest magnitude m,
            printed above it (an all-zero "dead" channel says m=0), and the colour bar reads in
            units of m. True: all channels of a layer share one scale, read off the colour bar in
            the layer's own units, so dead, weak and constant channels look different.
    Raises: ValueError when the model has no conv or pooling layer.
    """
    x = image._data if isinstance(image, Tensor) else np.asarray(image, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    maps = feature_maps(model, x)
    if not maps:
        raise ValueError("model has no Conv2d or pooling layer whose feature maps could be shown")
    plt = _pyplot()
    n = min(max(m.shape[0] for _, _, m in maps), max_channels)
    rows = len(maps) + 1
    fig = plt.figure(figsize=(1.25 * n + 3.2, 1.55 * rows + 0.6), layout="constrained")
    grid = fig.add_gridspec(rows, n + 2, width_ratios=[1.7] + [1.0] * n + [0.14])
    ax = fig.add_subplot(grid[0, 1])
    if x.shape[1] == 3:   # an RGB input, stretched to [0, 1] (it is normalised)
        rgb = x[0].transpose(1, 2, 0).astype(np.float64)
        ax.imshow((rgb - rgb.min()) / ((rgb.max() - rgb.min()) or 1.0))
    else:
        ax.imshow(x[0].mean(0), cmap="gray")
    ax.set_title("input", fontsize=10)
    ax.axis("off")
    for r, (name, kind, m) in enumerate(maps, start=1):
        shown = m[:n].astype(np.float64)
        label = fig.add_subplot(grid[r, 0])
        label.axis("off")
        label.text(0.0, 0.5, f"{name}\n{kind}\n{m.shape[0]}×{m.shape[1]}×{m.shape[2]}",
                   fontsize=11, va="center", transform=label.transAxes)
        row_scale = value_scale(shown)
        signed = row_scale["cmap"] == DIVERGING
        for c in range(shown.shape[0]):
            ax = fig.add_subplot(grid[r, c + 1])
            ax.axis("off")
            if shared_scale:
                im = ax.imshow(shown[c], interpolation="nearest", **row_scale)
                ax.set_title(f"ch {c}", fontsize=9)
            else:
                peak = float(np.abs(shown[c]).max())
                unit = peak if peak > 0 else 1.0
                im = ax.imshow(shown[c] / unit, interpolation="nearest", **value_scale([1.0], signed=signed))
                ax.set_title(f"ch {c}  m={peak:.2g}", fontsize=9)
        _colorbar(fig, im, cax=fig.add_subplot(grid[r, n + 1]), fontsize=9,
                  label="value" if shared_scale else "× m")
    fig.suptitle((title or "feature maps: one image becomes a stack of filtered images")
                 + ("\n(one colour scale per layer)" if shared_scale
                    else "\n(each panel scaled to its largest magnitude m; --shared-scale: one scale per layer)"),
                 fontsize=12)
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
