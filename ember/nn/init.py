"""Parameter initialisation (``nn.init``), drawing from ember's generator (``ember.manual_seed``).

Source: He et al. 2015 (kaiming), Glorot & Bengio 2010 (xavier); PyTorch's layer defaults.
"""
import math
import warnings

import numpy as np

from ..random import default_generator


def _fans(t):
    shape = t.shape
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out can not be computed for a tensor with fewer than 2 dimensions, got {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for an activation, as ``torch.nn.init.calculate_gain``.

    linear/conv*/conv_transpose*/sigmoid: 1;  tanh: 5/3;  relu: √2;
    leaky_relu: √(2 / (1 + slope²)) with slope = ``param`` (default 0.01);  selu: 3/4.

    Args:
        nonlinearity: the activation's ``nn.functional`` name (str).
        param: leaky_relu's negative slope (int or float, not bool); ignored otherwise.
    Returns: a Python number (the int 1 for the linear family, as torch).
    Raises:
        ValueError: "negative_slope {param} not a valid number" for a bad slope,
            "Unsupported nonlinearity {nonlinearity}" for an unknown name (torch's messages).
    Source: PyTorch's table (tanh 5/3 from LeCun's efficient backprop; relu from He et al. 2015).
    """
    if nonlinearity in _LINEAR:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float, np.integer, np.floating)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _write(t, values, writes: int = 1):
    """Store ``values`` in t's storage (cast to its dtype) and count the in-place writes torch's
    initialiser makes on its version counter (``t._version``), so a backward that saved t
    before it was re-initialised raises instead of using the new values."""
    t._data[...] = values
    t._vc[0] += writes
    return t


def _gain(nonlinearity, a=0.0):
    return calculate_gain(nonlinearity, a)


def uniform_(t, a: float = 0.0, b: float = 1.0):
    """Fill t in place with U(a, b)."""
    return _write(t, default_generator().uniform(a, b, t.shape))


def normal_(t, mean: float = 0.0, std: float = 1.0):
    """Fill t in place with N(mean, std²)."""
    return _write(t, default_generator().normal(mean, std, t.shape))


def constant_(t, val: float):
    """Fill t in place with the value ``val`` (dtype kept)."""
    return _write(t, val)


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


def _rng(generator):
    return default_generator() if generator is None else generator


def _normal_cdf(x: float) -> float:
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0


def trunc_normal_(t, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None):
    """Fill t in place with N(mean, std²) truncated to [a, b], as ``torch.nn.init.trunc_normal_``.

    Args:
        t: a Tensor/Parameter of any shape (float dtype kept).
        mean, std: of the untruncated normal (std > 0).  a, b: the bounds (absolute values,
            not in units of std, as torch), a ≤ b.
        generator: ``np.random.Generator``; default ember's (``ember.manual_seed``).
    Returns: t.
    Raises: ValueError for std ≤ 0 or a > b. Warns (UserWarning, torch's text) when the mean
        lies more than 2 std outside [a, b].
    Method: rejection sampling, as torch: when [a, b] holds > 30% of the normal's mass,
        redraw the samples that fall outside; else draw uniformly on [a, b] and accept with
        probability pdf(x)/pdf(mode). Same distribution as torch, not the same stream.
    """
    if not std > 0:
        raise ValueError(f"trunc_normal_ expects std > 0, got std={std}")
    if a > b:
        raise ValueError(f"trunc_normal_ expects a <= b, got a={a}, b={b}")
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
                      "The distribution of values may be incorrect.", stacklevel=2)
    rng, n = _rng(generator), int(np.prod(t.shape))
    if _normal_cdf((b - mean) / std) - _normal_cdf((a - mean) / std) > 0.3:
        out = rng.normal(mean, std, n)
        bad = np.flatnonzero((out < a) | (out > b))
        redrawn = bad.size > 0
        while bad.size:
            out[bad] = rng.normal(mean, std, bad.size)
            bad = bad[(out[bad] < a) | (out[bad] > b)]
    else:
        log_peak = -0.5 * ((max(a, min(mean, b)) - mean) / std) ** 2
        out = np.empty(n)
        pending, rounds = np.arange(n), 0
        while pending.size:
            rounds += 1
            x = rng.uniform(a, b, pending.size)
            accept = np.log(rng.uniform(size=pending.size)) <= -0.5 * ((x - mean) / std) ** 2 - log_peak
            out[pending[accept]] = x[accept]
            pending = pending[~accept]
        redrawn = rounds > 1
    return _write(t, out.reshape(t.shape), writes=2 if redrawn else 1)   # torch: normal_/uniform_, copy_ after redraws


def orthogonal_(t, gain: float = 1, generator=None):
    """Fill t in place with a (semi-)orthogonal matrix times ``gain``, as ``torch.nn.init.orthogonal_``.

    t is viewed as a matrix (rows = t.shape[0], cols = the rest flattened). Its rows are
    orthonormal if rows ≤ cols, else its columns; the matrix is Haar-distributed: the Q of the
    QR factorisation of a Gaussian matrix, with each column's sign fixed by R's diagonal
    (Mezzadri 2007, https://arxiv.org/abs/math-ph/0609050). Source: Saxe et al. 2014,
    "Exact solutions to the nonlinear dynamics of learning in deep linear neural networks".

    Args:
        t: a Tensor/Parameter with ≥ 2 dimensions (empty: left unchanged).
        gain: multiplier (default 1).  generator: ``np.random.Generator``; default ember's.
    Returns: t.
    Raises: ValueError "Only tensors with 2 or more dimensions are supported" (torch's text).
    """
    if len(t.shape) < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    rows = t.shape[0]
    if rows == 0 or int(np.prod(t.shape)) == 0:
        return t
    cols = int(np.prod(t.shape)) // rows
    flat = _rng(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)                       # (max, min), (min, min)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _write(t, (gain * q).reshape(t.shape), writes=2)   # torch: copy_, mul_


def eye_(t):
    """Fill the 2-D t in place with the identity matrix (ones on the diagonal; torch.nn.init.eye_),
    which keeps a Linear layer's input as it is. Raises: ValueError for another rank (torch's text)."""
    if len(t.shape) != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _write(t, np.eye(*t.shape))


def dirac_(t, groups: int = 1):
    """Fill the 3-, 4- or 5-D conv weight t in place with the Dirac delta (torch.nn.init.dirac_):
    zeros but 1 at the kernel's centre for out channel g·(C_out/groups) + d and in channel d,
    d < min(C_out/groups, C_in), so the convolution keeps as many input channels as it can.
    Raises: ValueError for another rank or C_out not divisible by groups (torch's messages)."""
    if len(t.shape) not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    if t.shape[0] % groups:
        raise ValueError("dim 0 must be divisible by groups")
    per_group = t.shape[0] // groups
    values = np.zeros(t.shape)
    centre = tuple(k // 2 for k in t.shape[2:])
    for g in range(groups):
        for d in range(min(per_group, t.shape[1])):
            values[(g * per_group + d, d) + centre] = 1
    return _write(t, values)


def sparse_(t, sparsity: float, std: float = 0.01, generator=None):
    """Fill the 2-D t in place with N(0, std²) values, then zero ⌈sparsity·rows⌉ random entries in
    each column (Martens 2010, "Deep learning via Hessian-free optimization"; torch.nn.init.sparse_).
    Raises: ValueError for another rank (torch's text)."""
    if len(t.shape) != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    rows, cols = t.shape
    rng = _rng(generator)
    values = rng.normal(0.0, std, (rows, cols))
    zeros = int(math.ceil(sparsity * rows))
    for col in range(cols):
        values[rng.permutation(rows)[:zeros], col] = 0
    return _write(t, values)
