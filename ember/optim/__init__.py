"""``ember.optim``: optimizers with PyTorch's exact update rules."""
from .optimizer import Optimizer
from .sgd import SGD
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .nadam import NAdam
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import ASGD, Rprop
from .lbfgs import LBFGS
from . import lr_scheduler
