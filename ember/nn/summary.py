"""``ember.summary(model, input_shape)`` (also ``ember.nn.summary.summary``): a Keras-style table
of a model's layers.

One row per leaf layer, in the order the forward pass calls them: its name (the state-dict
prefix), type, output shape and parameter count; then the totals: parameters, trainable
parameters, and the memory the activations (input and every layer's output) take for the
given batch. Shapes are found by running ONE sample (batch size 1) through the model in
evaluation mode, without a graph, and scaling the batch dimension back to N.
Example (deck 001's ``torch.nn.Sequential``): ``summary(net, (100, 3, 256, 256))`` lists
100×16×250×250, 100×32×125×125, 100×64×125×125, 100×64×125×125 (with the ReLUs between).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor


@dataclasses.dataclass
class LayerRow:
    """One row: name (dotted path), type (class name), output_shape (with batch N), params."""
    name: str
    type: str
    output_shape: tuple
    params: int


@dataclasses.dataclass
class Summary:
    """The result of ``summary``; ``str()`` gives the table.

    Attributes: input_shape, rows (list of LayerRow), total_params, trainable_params,
        activation_bytes (input + every row's output, at the input's dtype).
    """
    input_shape: tuple
    rows: list
    total_params: int
    trainable_params: int
    activation_bytes: int

    def __str__(self):
        fmt_shape = lambda s: "×".join(str(d) for d in s)  # noqa: E731
        table = [("Layer", "Type", "Output shape", "Params"), ("input", "", fmt_shape(self.input_shape), "")]
        table += [(r.name, r.type, fmt_shape(r.output_shape), f"{r.params:,}") for r in self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        line = "-" * (sum(widths) + 6)
        out = [line]
        for k, row in enumerate(table):
            out.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
            if k == 0:
                out.append(line)
        out += [line, f"Total params: {self.total_params:,}", f"Trainable params: {self.trainable_params:,}",
                f"Non-trainable params: {self.total_params - self.trainable_params:,}",
                f"Activation memory: {self.activation_bytes / 2**20:,.2f} MiB "
                f"(input and layer outputs, batch {self.input_shape[0]})"]
        return "\n".join(out)

    __repr__ = __str__


def summary(model, input_shape, dtype=np.float32) -> Summary:
    """Describe ``model`` for inputs of ``input_shape`` (batch first, e.g. (N, C, H, W)).

    Args: model: an ember Module; input_shape: tuple of positive ints; dtype: of the input.
    Returns: a Summary (print it for the table).
    Raises: ValueError for a bad input_shape; the model's own ShapeError (naming the layer) if
        the input does not fit it.
    """
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
        raise ValueError(f"input_shape must be positive ints, batch first, e.g. (1, 1, 28, 28); got {input_shape!r}")
    N = shape[0]
    rows, patched = [], []
    itemsize = np.dtype(dtype).itemsize
    for name, m in model.named_modules():
        if next(m.children(), None) is not None:
            continue                                   # containers: their leaves get the rows

        def wrapped(*args, _m=m, _name=name, _forward=m.forward, **kwargs):
            y = _forward(*args, **kwargs)
            out = tuple(y.shape)
            if out and out[0] == 1:
                out = (N,) + out[1:]
            params = sum(p.numel() for p in _m._parameters.values() if p is not None)
            rows.append(LayerRow(_name or type(_m).__name__, type(_m).__name__, out, params))
            return y
        object.__setattr__(m, "forward", wrapped)
        patched.append(m)
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with no_grad():
            model(Tensor(np.zeros((1,) + shape[1:], dtype=dtype)))
    finally:
        for m in patched:
            del m.__dict__["forward"]
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    act = (int(np.prod(shape)) + sum(int(np.prod(r.output_shape)) for r in rows)) * itemsize
    return Summary(shape, rows, total, trainable, act)


def deck001_example():
    """Deck 001's strided-convolution example, as ``torch.nn.Sequential`` there (input 3×256×256)."""
    from . import Conv2d, ReLU, Sequential
    return Sequential(Conv2d(3, 16, 7), ReLU(), Conv2d(16, 32, 3, padding=1, stride=2), ReLU(),
                      Conv2d(32, 64, 3, padding=1), ReLU(), Conv2d(64, 64, 1))


# Extra models ``ember summary --model`` knows besides the training registry.
EXAMPLES = {"deck001-example": (deck001_example, (100, 3, 256, 256))}
