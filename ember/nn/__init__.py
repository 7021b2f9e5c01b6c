"""``ember.nn``: modules, layers, losses, ``functional`` and ``init``, with PyTorch's names."""
from . import functional, init
from ._validation import ShapeError
from .layers import (AvgPool2d, Flatten, LeakyReLU, Linear, LogSoftmax, MaxPool2d, ReLU,
                     Sigmoid, Softmax, Tanh)
from .losses import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HingeLoss, HuberLoss, L1Loss,
                     LogisticLoss, MSELoss, MultiMarginLoss, NLLLoss, SmoothL1Loss)
from . import utils
from .module import Module, ModuleError, Parameter, Sequential
from .container import Identity, ModuleDict, ModuleList
from .conv import AdaptiveAvgPool2d, Conv1d, Conv2d, LocallyConnected2d
from .norm import BatchNorm1d, BatchNorm2d, Dropout, LayerNorm
from . import parallel  # noqa: E402  (DistributedDataParallel; imports the layers above)
