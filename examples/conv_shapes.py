"""Deck 001 "Example": the shape table of a torch.nn.Sequential convnet, run in ember; deck 002's
output size ⌊(N + 2P − F)/S⌋ + 1.

The deck's network is written once with ember.nn (the same names and arguments as torch.nn) and
its output shape computed layer by layer with the formula, then checked by running the layers on a
real input (one image instead of the deck's batch of 100: the batch dimension just rides along).

Run: python examples/conv_shapes.py
"""
import numpy as np

import ember
from ember import nn


def out_size(n, f, p, s):
    """Deck 002: output size ⌊(N + 2P − F)/S⌋ + 1."""
    return (n + 2 * p - f) // s + 1


def main():
    ember.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 7),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 64, 1),
    )
    shape = (100, 3, 256, 256)
    x = ember.tensor(np.random.default_rng(0).normal(size=(1,) + shape[1:]).astype(np.float32))
    print(f"{'Input Shape':24s} {'Layer Shape':32s} Output Shape")
    with ember.no_grad():
        for layer in net:
            if not isinstance(layer, nn.Conv2d):
                x = layer(x)
                continue
            (f, _), (s, _), (p, _) = layer.kernel_size, layer.stride, layer.padding
            n = out_size(shape[2], f, p, s)
            new = (shape[0], layer.out_channels, n, n)
            x = layer(x)
            assert tuple(x.shape) == (1,) + new[1:], (x.shape, new)     # the formula agrees with the layer
            w = layer.weight.shape
            print(f"({' x '.join(map(str, shape))})".ljust(25)
                  + f"({w[1]} x {w[0]} x {w[2]} x {w[3]}) Pad {p} Stride {s}".ljust(33)
                  + f"({' x '.join(map(str, new))})")
            shape = new
    params = sum(p.numel() for p in net.parameters())
    print(f"parameters: {params:,} (weights shared across all positions)")


if __name__ == "__main__":
    main()
