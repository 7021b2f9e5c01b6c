"""More of PyTorch's activations (torch.nn.modules.activation), each a composition of ember's
differentiable ops, so each gradient is the engine's walk through the formula below:

    hardswish(x)   = x · relu6(x + 3) / 6                 (Howard et al. 2019, MobileNetV3)
    hardsigmoid(x) = relu6(x + 3) / 6
    softsign(x)    = x / (1 + |x|)
    tanhshrink(x)  = x − tanh(x)
    threshold(x)   = x if x > threshold else value
    celu(x)        = max(0, x) + min(0, α(exp(x/α) − 1))   (Barron 2017)
    selu(x)        = scale · (max(0, x) + min(0, α(exp(x) − 1)))   (Klambauer et al. 2017)
    hardshrink(x)  = x if |x| > λ else 0
    softshrink(x)  = x − λ if x > λ, x + λ if x < −λ, else 0
    rrelu(x)       = x if x ≥ 0 else a·x, a ~ U(lower, upper) per element in training, (lower + upper)/2
                     in evaluation (Xu et al. 2015)

Where a formula has a kink (x = ±3, ±λ, the threshold) the gradient there is the one-sided value
the composition picks, which may differ from PyTorch's at that single point. Any shape; the
modules take PyTorch's arguments (``inplace=True`` writes into the input, as ``F``'s activations).
"""
from __future__ import annotations

from ..tensor import Tensor
from . import functional as F
from .module import Module

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _maybe_in_place(fn, x, inplace, *args):
    return F._in_place(x, fn, *args) if inplace else fn(x, *args)


def hardswish(x: Tensor, inplace: bool = False) -> Tensor:
    """x · relu6(x + 3) / 6 (torch.nn.functional.hardswish)."""
    return _maybe_in_place(lambda t: t * F.relu6(t + 3) / 6, x, inplace)


def hardsigmoid(x: Tensor, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6 (torch.nn.functional.hardsigmoid)."""
    return _maybe_in_place(lambda t: F.relu6(t + 3) / 6, x, inplace)


def softsign(x: Tensor) -> Tensor:
    """x / (1 + |x|) (torch.nn.functional.softsign)."""
    return x / (x.abs() + 1)


def tanhshrink(x: Tensor) -> Tensor:
    """x − tanh(x) (torch.nn.functional.tanhshrink)."""
    return x - x.tanh()


def threshold(x: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """x where x > threshold, else value (torch.nn.functional.threshold)."""
    return _maybe_in_place(lambda t: F._where(t > threshold, t, t * 0 + value), x, inplace)


def celu(x: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """max(0, x) + min(0, α(exp(x/α) − 1)) (torch.nn.functional.celu); the exponential sees
    min(x, 0) only, so no inf meets a zero gradient."""
    return _maybe_in_place(lambda t: F._where(t > 0, t, ((t.clamp(max=0.0) / alpha).exp() - 1) * alpha), x, inplace)


def selu(x: Tensor, inplace: bool = False) -> Tensor:
    """scale · elu(x, α) with PyTorch's α ≈ 1.6733 and scale ≈ 1.0507 (torch.nn.functional.selu)."""
    return _maybe_in_place(lambda t: F.elu(t, _SELU_ALPHA) * _SELU_SCALE, x, inplace)


def hardshrink(x: Tensor, lambd: float = 0.5) -> Tensor:
    """x where |x| > λ, else 0 (torch.nn.functional.hardshrink)."""
    return F._where(x.abs() > lambd, x, x * 0)


def softshrink(x: Tensor, lambd: float = 0.5) -> Tensor:
    """x − λ above λ, x + λ below −λ, 0 between (torch.nn.functional.softshrink)."""
    return F._where(x > lambd, x - lambd, F._where(x < -lambd, x + lambd, x * 0))


def rrelu(x: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          inplace: bool = False) -> Tensor:
    """Randomized leaky ReLU (torch.nn.functional.rrelu): slope a ~ U(lower, upper) drawn per
    element from ``ember.random.default_generator()`` in training, (lower + upper)/2 otherwise."""
    def f(t):
        if not training:
            return F.leaky_relu(t, (lower + upper) / 2)
        from ..random import default_generator
        a = default_generator().uniform(lower, upper, t.shape).astype(t._data.dtype)
        return F._where(t >= 0, t, t * Tensor(a))
    return _maybe_in_place(f, x, inplace)


class _Activation(Module):
    """A module applying ``self._fn(x, *self._args())`` (PyTorch's activation modules)."""

    def forward(self, x):
        return type(self)._fn(x, *self._args())

    def _args(self):
        return ()


class Hardswish(_Activation):
    """x · relu6(x + 3) / 6 (torch.nn.Hardswish); args: inplace=False. Any shape."""
    _fn = staticmethod(hardswish)

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def _args(self):
        return (self.inplace,)


class Hardsigmoid(Hardswish):
    """relu6(x + 3) / 6 (torch.nn.Hardsigmoid); args: inplace=False. Any shape."""
    _fn = staticmethod(hardsigmoid)


class Softsign(_Activation):
    """x / (1 + |x|) (torch.nn.Softsign). Any shape."""
    _fn = staticmethod(softsign)


class Tanhshrink(_Activation):
    """x − tanh(x) (torch.nn.Tanhshrink). Any shape."""
    _fn = staticmethod(tanhshrink)


class Threshold(_Activation):
    """x where x > threshold, else value (torch.nn.Threshold); args: threshold, value, inplace=False."""
    _fn = staticmethod(threshold)

    def __init__(self, threshold: float, value: float, inplace: bool = False):
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, inplace

    def _args(self):
        return self.threshold, self.value, self.inplace

    def extra_repr(self):
        return f"threshold={self.threshold}, value={self.value}" + (", inplace=True" if self.inplace else "")


class CELU(_Activation):
    """Continuously differentiable ELU (torch.nn.CELU); args: alpha=1.0, inplace=False."""
    _fn = staticmethod(celu)

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def _args(self):
        return self.alpha, self.inplace

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class SELU(_Activation):
    """Scaled ELU (torch.nn.SELU); args: inplace=False."""
    _fn = staticmethod(selu)

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def _args(self):
        return (self.inplace,)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Hardshrink(_Activation):
    """x where |x| > λ, else 0 (torch.nn.Hardshrink); args: lambd=0.5."""
    _fn = staticmethod(hardshrink)

    def __init__(self, lambd: float = 0.5):
        super().__init__()
        self.lambd = lambd

    def _args(self):
        return (self.lambd,)

    def extra_repr(self):
        return f"{self.lambd}"


class Softshrink(Hardshrink):
    """x − λ above λ, x + λ below −λ, else 0 (torch.nn.Softshrink); args: lambd=0.5."""
    _fn = staticmethod(softshrink)


class RReLU(_Activation):
    """Randomized leaky ReLU (torch.nn.RReLU); args: lower=1/8, upper=1/3, inplace=False; random
    slopes in training mode, their mean in evaluation."""
    _fn = staticmethod(rrelu)

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, inplace: bool = False):
        super().__init__()
        self.lower, self.upper, self.inplace = lower, upper, inplace

    def _args(self):
        return self.lower, self.upper, self.training, self.inplace

    def extra_repr(self):
        return f"lower={self.lower}, upper={self.upper}" + (", inplace=True" if self.inplace else "")


class LogSigmoid(_Activation):
    """log σ(x) (torch.nn.LogSigmoid). Any shape."""
    _fn = staticmethod(F.logsigmoid)


class Softmin(_Activation):
    """softmax(−x) along ``dim`` (torch.nn.Softmin); args: dim=None (PyTorch's legacy choice of
    dim then: 0 for 0-, 1- and 3-D inputs, else 1)."""
    _fn = staticmethod(F.softmin)

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmin(x, self.dim if self.dim is not None else (0 if x.ndim in (0, 1, 3) else 1))

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax2d(_Activation):
    """softmax over the channels of a (N, C, H, W) or (C, H, W) input (torch.nn.Softmax2d).
    Raises: ValueError for another rank (PyTorch's message)."""

    def forward(self, x):
        if x.ndim not in (3, 4):
            raise ValueError(f"Softmax2d: expected input to be 3D or 4D, got {x.ndim}D instead")
        return F.softmax(x, -3)


FUNCTIONS = dict(hardswish=hardswish, hardsigmoid=hardsigmoid, softsign=softsign, tanhshrink=tanhshrink,
                 threshold=threshold, celu=celu, selu=selu, hardshrink=hardshrink, softshrink=softshrink, rrelu=rrelu)
