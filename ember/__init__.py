"""ember: a deep-learning framework written from the backpropagation equations up, on NumPy,
with PyTorch's public API."""
__version__ = "0.1.0"

from . import autograd
from .autograd import enable_grad, is_grad_enabled, no_grad
from .random import manual_seed
from .tensor import (Tensor, arange, bool_, float32, float64, from_numpy, int64, ones, rand, randn,
                     tensor, zeros)
from . import kernels
from .kernels import get_num_threads, set_num_threads, threads  # noqa: F401  (ember.threads, as before)
from . import nn, optim  # noqa: E402  (nn needs Tensor)
from .nn.functional import cat, stack
from .nn.summary import summary  # noqa: E402
from . import _api  # noqa: E402  (PyTorch's surface: devices, dtypes, in-place methods, protocols)
_api.semantics.attach(__import__("sys").modules[__name__])
