"""LeNet-5 (LeCun et al. 1998, "Gradient-based learning applied to document recognition"),
in the modern form the decks show: ReLU and max pooling, padding 2 on 28×28 inputs."""
from ..nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential


def lenet5(num_classes: int = 10, in_channels: int = 1) -> Sequential:
    """LeNet-5 for 28×28 images: 61,706 parameters with 1 input channel and 10 classes.

    Shape: (N, in_channels, 28, 28) -> (N, num_classes) logits.
    State-dict keys match ``torch.nn.Sequential`` with the same layers (0.weight, 0.bias, 3.weight, ...).
    """
    return Sequential(
        Conv2d(in_channels, 6, 5, padding=2),  # (N, 6, 28, 28)   C1
        ReLU(),
        MaxPool2d(2),                          # (N, 6, 14, 14)   S2
        Conv2d(6, 16, 5),                      # (N, 16, 10, 10)  C3
        ReLU(),
        MaxPool2d(2),                          # (N, 16, 5, 5)    S4
        Flatten(),                             # (N, 400)
        Linear(400, 120),                      # (N, 120)         C5
        ReLU(),
        Linear(120, 84),                       # (N, 84)          F6
        ReLU(),
        Linear(84, num_classes),               # (N, 10)          logits
    )
