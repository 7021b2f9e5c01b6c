"""Parameter initialisation (``nn.init``), drawing from ember's generator (``ember.manual_seed``).

Source: He et al. 2015 (kaiming), Glorot & Bengio 2010 (xavier); PyTorch's layer defaults.
"""
import math

import numpy as np

from ..random import default_generator


def _fans(t):
    shape = t.shape
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out can not be computed for a tensor with fewer than 2 dimensions, got {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _gain(nonlinearity, a=0.0):
    if nonlinearity in ("linear", "sigmoid", "conv2d", "conv1d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + a * a))
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def uniform_(t, a: float = 0.0, b: float = 1.0):
    """Fill t in place with U(a, b)."""
    t.data[...] = default_generator().uniform(a, b, t.shape)
    return t


def normal_(t, mean: float = 0.0, std: float = 1.0):
    """Fill t in place with N(mean, std²)."""
    t.data[...] = default_generator().normal(mean, std, t.shape)
    return t


def constant_(t, val: float):
    """Fill t in place with the value ``val`` (dtype kept)."""
    t.data[...] = val
    return t


def zeros_(t):
    """Fill t in place with 0 (e.g. biases)."""
    return constant_(t, 0.0)


def ones_(t):
    """Fill t in place with 1 (e.g. BatchNorm's weight)."""
    return constant_(t, 1.0)


def kaiming_uniform_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """U(−bound, bound), bound = gain·sqrt(3/fan). With a = √5 this is PyTorch's Linear/Conv
    default, bound = 1/sqrt(fan_in)."""
    fan_in, fan_out = _fans(t)
    bound = _gain(nonlinearity, a) * math.sqrt(3.0 / (fan_in if mode == "fan_in" else fan_out))
    return uniform_(t, -bound, bound)


def kaiming_normal_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """N(0, std²), std = gain/sqrt(fan)."""
    fan_in, fan_out = _fans(t)
    return normal_(t, 0.0, _gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out))


def xavier_uniform_(t, gain: float = 1.0):
    """U(−b, b), b = gain·sqrt(6/(fan_in + fan_out))."""
    fan_in, fan_out = _fans(t)
    b = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -b, b)


def xavier_normal_(t, gain: float = 1.0):
    """N(0, std²), std = gain·sqrt(2/(fan_in + fan_out))."""
    fan_in, fan_out = _fans(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def default_layer_init_(weight, bias):
    """PyTorch's Linear/Conv default: kaiming_uniform_(a=√5) for W, U(±1/sqrt(fan_in)) for b."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = _fans(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)
