"""``ember.optim``: optimizers with PyTorch's exact update rules."""
from .optimizer import Optimizer
from .sgd import SGD
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .rmsprop import RMSprop
from . import lr_scheduler
