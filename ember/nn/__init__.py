"""``ember.nn``: modules, layers, losses, ``functional`` and ``init``, with PyTorch's names."""
from . import functional, init
from ._validation import ShapeError
from .layers import (ELU, GELU, GLU, AvgPool1d, AvgPool2d, Embedding, Flatten, Hardtanh, LeakyReLU, Linear, LogSoftmax,
                     MaxPool1d, MaxPool2d, MaxUnpool2d, Mish, PReLU, ReLU, ReLU6, SiLU, Sigmoid, Softmax, Softplus, Tanh,
                     Unflatten, Upsample, ZeroPad2d)
from .losses import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HingeLoss, HuberLoss, KLDivLoss, L1Loss,
                     LogisticLoss, MSELoss, MultiMarginLoss, NLLLoss, SmoothL1Loss)
from . import utils
from .module import Module, ModuleError, Parameter, Sequential
from .container import Identity, ModuleDict, ModuleList, ParameterDict, ParameterList
from .conv import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d,
                   LocallyConnected2d)
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from .transformer import (MultiheadAttention, Transformer, TransformerDecoder, TransformerDecoderLayer,
                          TransformerEncoder, TransformerEncoderLayer)
from .norm import BatchNorm1d, BatchNorm2d, Dropout, Dropout1d, Dropout2d, GroupNorm, LayerNorm
from . import parallel  # noqa: E402  (DistributedDataParallel; imports the layers above)
from ..kernels import fusion as _fusion  # noqa: E402
_fusion.LAYERS = (Conv2d, ReLU, MaxPool2d)   # the layers Sequential may fuse (ember/kernels/fusion.py)
