"""``ember.nn``: modules, layers, losses, ``functional`` and ``init``, with PyTorch's names."""
from . import functional, init
from ._validation import ShapeError
from .layers import (ELU, GELU, GLU, AvgPool1d, AvgPool2d, Bilinear, Embedding, Flatten, Hardtanh, LeakyReLU, Linear,
                     LogSoftmax, MaxPool1d, MaxPool2d, MaxUnpool2d, Mish, PReLU, ReLU, ReLU6, SiLU, Sigmoid, Softmax,
                     Softplus, Tanh, Unflatten, Upsample, ZeroPad2d)
from .losses import (BCELoss, BCEWithLogitsLoss, CosineEmbeddingLoss, CrossEntropyLoss, GaussianNLLLoss, HingeLoss,
                     HuberLoss, KLDivLoss, L1Loss, LogisticLoss, MarginRankingLoss, MSELoss, MultiLabelSoftMarginLoss,
                     MultiMarginLoss, NLLLoss, PoissonNLLLoss, SmoothL1Loss, SoftMarginLoss, TripletMarginLoss)
from . import utils
from .module import Module, ModuleError, Parameter, Sequential
from .container import Identity, ModuleDict, ModuleList, ParameterDict, ParameterList
from .conv import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d, AdaptiveMaxPool2d, Conv1d, Conv2d,
                   ConvTranspose1d, ConvTranspose2d, LocallyConnected2d)
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from .transformer import (MultiheadAttention, Transformer, TransformerDecoder, TransformerDecoderLayer,
                          TransformerEncoder, TransformerEncoderLayer)
from .norm import (BatchNorm1d, BatchNorm2d, Dropout, Dropout1d, Dropout2d, GroupNorm, InstanceNorm1d, InstanceNorm2d,
                   LayerNorm)
from .activation import (CELU, RReLU, SELU, Hardshrink, Hardsigmoid, Hardswish, LogSigmoid, Softmax2d, Softmin,
                         Softshrink, Softsign, Tanhshrink, Threshold)
from .shape import (CircularPad1d, CircularPad2d, ConstantPad1d, ConstantPad2d, CosineSimilarity, Fold,
                    PairwiseDistance, PixelShuffle, PixelUnshuffle, ReflectionPad1d, ReflectionPad2d, ReplicationPad1d,
                    ReplicationPad2d, Unfold, ZeroPad1d)
from . import activation as _activation, more_losses as _more_losses, norm as _norm, shape as _shape  # noqa: E402
for _name, _fn in {**_activation.FUNCTIONS, **_more_losses.FUNCTIONS, "instance_norm": _norm.instance_norm,
                   "pixel_shuffle": _shape.pixel_shuffle, "pixel_unshuffle": _shape.pixel_unshuffle}.items():
    setattr(functional, _name, _fn)   # F.hardswish, F.triplet_margin_loss, ...: defined next to their modules
from . import parallel  # noqa: E402  (DistributedDataParallel; imports the layers above)
from ..kernels import fusion as _fusion  # noqa: E402
_fusion.LAYERS = (Conv2d, ReLU, MaxPool2d, Linear, Flatten)   # the layers Sequential may fuse or chain (kernels/fusion.py)
