"""``ember.optim``: optimizers with PyTorch's exact update rules."""
from .optimizer import Optimizer
from .sgd import SGD
