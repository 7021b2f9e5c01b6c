"""ember: a deep-learning framework written from the backpropagation equations up, on NumPy,
with PyTorch's public API."""
__version__ = "0.1.0"

from . import autograd
from .autograd import enable_grad, is_grad_enabled, no_grad
from .random import Generator, initial_seed, manual_seed, seed, set_rng_state
from .tensor import (Tensor, arange, bool_, float32, float64, from_numpy, int64, ones, rand, randn,
                     tensor, zeros)
from . import kernels
from .kernels import get_num_threads, set_num_threads, threads  # noqa: F401  (ember.threads, as before)
from . import nn, optim  # noqa: E402  (nn needs Tensor)
from .nn.functional import cat, stack
from .nn.summary import summary  # noqa: E402
from . import _api  # noqa: E402  (PyTorch's surface: devices, dtypes, in-place methods, protocols)
_api.semantics.attach(__import__("sys").modules[__name__])
from ._api.creation import (empty, empty_like, eye, full, full_like, linspace, logspace, ones_like,  # noqa: E402
                            rand_like, randint, randint_like, randn_like, randperm, zeros_like)
from ._api.functions import (abs, add, all, allclose, any, argmax, argmin, argsort, bmm, chunk, clamp,  # noqa: E402
                             clip, concat, cos, cumsum, div, dot, einsum, eq, equal, exp, flatten, gather, ge,
                             gt, index_select, is_tensor, isclose, isfinite, isinf, isnan, le, log, log_softmax,
                             logsumexp, lt, masked_select, matmul, max, maximum, mean, min, minimum, mm, mul, ne,
                             neg, norm, numel, outer, permute, pow, prod, relu, reshape, rsqrt, sigmoid, sin,
                             softmax, sort, split, sqrt, square, squeeze, std, sub, sum, t, tanh, topk, transpose,
                             unsqueeze, var, where, trace, diag, tril, triu, flip, tan, floor, ceil, sign, round,
                             lerp, roll, repeat_interleave, nonzero, unique, as_tensor, broadcast_tensors, meshgrid,
                             hstack, vstack, bincount, remainder, fmod, floor_divide, logical_and, logical_or,
                             logical_xor, logical_not, amax, amin, unbind)
from .serialization import load, save  # noqa: E402
from . import utils  # noqa: E402  (torch.utils.data.DataLoader works after "import torch" alone, as in torch)
from . import amp, backends, distributions  # noqa: E402  (torch.amp, torch.backends.cudnn.benchmark = True, ...)
from .amp import autocast  # noqa: E402
cuda.amp = amp  # noqa: F821  (torch.cuda.amp.GradScaler / autocast, the older spelling; cuda is attached by _api)
_api.semantics.importable(cuda, "ember.cuda")   # noqa: F821  ("from torch.cuda.amp import GradScaler" imports)
_api.semantics.importable(amp, "ember.cuda.amp")


from ._api.runtime import Size, compile, get_rng_state  # noqa: E402,A001  (torch.Size, torch.compile)
from ._api import linalg  # noqa: E402  (torch.linalg's norms)
from ._api.linalg import cdist  # noqa: E402
from ._api import math_ops as _math_ops  # noqa: E402
_math_ops.install(__import__("sys").modules[__name__])   # log1p, erf, atan2, scatter, index_add, ...
from ._api import shape_ops as _shape_ops  # noqa: E402
_shape_ops.install(__import__("sys").modules[__name__])  # movedim, narrow, select, diff, isin, ...
_api.semantics.importable(linalg, "ember.linalg")
