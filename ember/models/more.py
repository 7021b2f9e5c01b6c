"""More registered models: deck 000's sigmoid MLP, the 1998 LeNet-5 (tanh, average pooling) and
``convnet-bn``, a small modern CNN (conv–BN–ReLU blocks, dropout) for 28×28 images."""
from ..nn import (AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU,
                  Sequential, Sigmoid, Tanh)


def mlp(num_classes: int = 10, in_features: int = 784, hidden: int = 100) -> Sequential:
    """Deck 000's multilayer perceptron: a(l+1) = g(Θ(l) a(l)) with g the sigmoid 1/(1 + e^−z).

    Shape: (N, 1, 28, 28) (or any (N, *) with in_features values) -> (N, num_classes) logits.
    Parameters: 784·100 + 100 + 100·10 + 10 = 79,510 with the defaults.
    """
    return Sequential(Flatten(), Linear(in_features, hidden), Sigmoid(), Linear(hidden, num_classes))


def lenet5_classic(num_classes: int = 10, in_channels: int = 1) -> Sequential:
    """LeNet-5 as in 1998 (LeCun et al.): tanh activations and 2×2 average ("subsampling") pooling.

    Shape: (N, in_channels, 28, 28) -> (N, num_classes); 61,706 parameters, the same layer
    shapes and state-dict keys as ``lenet5``.
    """
    return Sequential(
        Conv2d(in_channels, 6, 5, padding=2), Tanh(), AvgPool2d(2),   # (N, 6, 14, 14)
        Conv2d(6, 16, 5), Tanh(), AvgPool2d(2),                       # (N, 16, 5, 5)
        Flatten(), Linear(400, 120), Tanh(), Linear(120, 84), Tanh(), Linear(84, num_classes))


def convnet_bn(num_classes: int = 10, in_channels: int = 1, widths=(16, 32, 64), hidden: int = 128,
               dropout: float = 0.3) -> Sequential:
    """A small modern CNN: three conv–BN–ReLU–max-pool stages, dropout, and a BN-ed hidden FC
    layer (Ioffe & Szegedy 2015; Srivastava et al. 2014), sized to train on a 2-core CPU.

    Shape: (N, in_channels, 28, 28) -> (N, num_classes) logits; 28 -> 14 -> 7 -> 3 pixels.
    Convolutions and the hidden layer have no bias (the following BatchNorm's β replaces it).
    """
    layers, cin = [], in_channels
    for w in widths:                     # (N, w, 14, 14), (N, 2w, 7, 7), (N, 4w, 3, 3)
        layers += [Conv2d(cin, w, 3, padding=1, bias=False), BatchNorm2d(w), ReLU(), MaxPool2d(2)]
        cin = w
    return Sequential(
        *layers, Flatten(), Dropout(dropout),
        Linear(cin * 9, hidden, bias=False), BatchNorm1d(hidden), ReLU(), Dropout(dropout),
        Linear(hidden, num_classes))
