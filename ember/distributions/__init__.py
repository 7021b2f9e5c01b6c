"""``ember.distributions``: the probability distributions scripts use most (torch.distributions):
Normal, Categorical, Bernoulli, Uniform and kl_divergence, with PyTorch's names, shapes and
formulas, composed of ember's differentiable ops, so log_prob, entropy, rsample and
kl_divergence carry gradients to the parameters (the reparameterisation trick of VAEs, the
log-probabilities of policy gradients).

    Normal(μ, σ):      log p(x) = −(x − μ)²/(2σ²) − log σ − ½ log 2π;  H = ½ + ½ log 2π + log σ
                       rsample = μ + σ·ε, ε ~ N(0, 1)
    Categorical(p):    logits normalised to log p (logits − logsumexp); log p(k) = logits[k];
                       H = −Σ p·log p
    Bernoulli(p):      log p(x) = x log p + (1 − x) log(1 − p) (from the logits, as BCE with logits)
    Uniform(a, b):     log p(x) = −log(b − a) inside [a, b), −inf outside;  rsample = a + (b − a)·u
    KL(N(μ₁, σ₁) ‖ N(μ₂, σ₂)) = ½ (σ₁²/σ₂² + (μ₁ − μ₂)²/σ₂² − 1 − log(σ₁²/σ₂²))
    KL(Cat(p) ‖ Cat(q)) = Σ p (log p − log q)

Samples come from ``ember.random.default_generator()`` (seeded by ``ember.manual_seed``): the
same seed gives other numbers than PyTorch's generator, with the same distribution.
Not here (a clear AttributeError): other families, constraints, transforms, validate_args checks.
"""
from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor

__all__ = ["Distribution", "Normal", "Categorical", "Bernoulli", "Uniform", "kl_divergence"]


def _tensor(x, dtype=None):
    if isinstance(x, Tensor):
        return x
    return Tensor(np.asarray(x, dtype=dtype or np.float32))


def _rng():
    from ..random import default_generator
    return default_generator()


def _given(probs, logits):
    """Which of probs, logits was given. Raises: ValueError unless exactly one was (PyTorch's message)."""
    if (probs is None) == (logits is None):
        raise ValueError("Either `probs` or `logits` must be specified, but not both.")
    return "probs" if probs is not None else "logits"


def _shape(sample_shape):
    return tuple(int(n) for n in sample_shape)


class Distribution:
    """Base of the distributions: ``batch_shape``, ``event_shape``, ``sample`` (no gradient),
    ``rsample`` where the family has one, ``log_prob``, ``entropy``, ``mean``, ``variance``,
    ``stddev`` (torch.distributions.Distribution)."""
    has_rsample = False
    event_shape: tuple = ()

    def __init__(self, batch_shape=(), validate_args=None):
        self.batch_shape = tuple(batch_shape)

    def sample(self, sample_shape=()):
        """A sample of shape sample_shape + batch_shape + event_shape, outside the graph."""
        from ..autograd import no_grad
        with no_grad():
            return self.rsample(sample_shape).detach() if self.has_rsample else self._sample(_shape(sample_shape))

    def rsample(self, sample_shape=()):
        """A sample differentiable in the parameters (the reparameterisation trick); families without one raise."""
        raise NotImplementedError(f"{type(self).__name__} has no rsample (no reparameterised sampling)")

    @property
    def stddev(self):
        return self.variance.sqrt()

    def _extended(self, sample_shape):
        return _shape(sample_shape) + self.batch_shape + self.event_shape

    def __repr__(self):
        parts = [f"{name}: {self._show(getattr(self, name))}" for name in self._params if name in self.__dict__]
        return f"{type(self).__name__}({', '.join(parts)})"

    @staticmethod
    def _show(t):
        return repr(t) if t.ndim == 0 or t.numel() == 1 else f"torch.Size({list(t.shape)})"


class _Located(Distribution):
    """A family of two parameters (``_params``) that broadcast against each other: the batch shape."""
    has_rsample = True

    def __init__(self, a, b, validate_args=None):
        from .. import broadcast_tensors
        a, b = broadcast_tensors(_tensor(a), _tensor(b))
        setattr(self, self._params[0], a)
        setattr(self, self._params[1], b)
        super().__init__(a.shape)


class Normal(_Located):
    """The normal distribution N(loc, scale²), loc and scale broadcast (torch.distributions.Normal)."""
    _params = ("loc", "scale")

    @property
    def mean(self):
        return self.loc

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        return self.scale ** 2

    @property
    def stddev(self):
        return self.scale

    def rsample(self, sample_shape=()):
        """loc + scale·ε with ε ~ N(0, 1): differentiable in loc and scale."""
        eps = _rng().standard_normal(self._extended(sample_shape)).astype(self.loc._data.dtype)
        return self.loc + self.scale * Tensor(eps)

    def log_prob(self, value):
        """log N(value; μ, σ²) = −(value − μ)²/(2σ²) − log σ − ½ log 2π, broadcast; differentiable."""
        value = _tensor(value, self.loc._data.dtype)
        return -((value - self.loc) ** 2) / (2 * self.variance) - self.scale.log() - math.log(math.sqrt(2 * math.pi))

    def entropy(self):
        """½ + ½ log 2π + log σ per batch entry."""
        return 0.5 + 0.5 * math.log(2 * math.pi) + self.scale.log()

    def cdf(self, value):
        """P(X ≤ value) = ½ (1 + erf((value − μ)/(σ√2)))."""
        value = _tensor(value, self.loc._data.dtype)
        return 0.5 * (1 + ((value - self.loc) * (1 / math.sqrt(2)) / self.scale).erf())


class Categorical(Distribution):
    """A distribution over {0, ..., K−1} from ``probs`` (normalised) or ``logits`` (unnormalised
    log-probabilities), the last dim indexing the categories (torch.distributions.Categorical).
    Raises: ValueError unless exactly one of probs, logits is given."""
    _params = ("probs", "logits")

    def __init__(self, probs=None, logits=None, validate_args=None):
        if _given(probs, logits) == "probs":
            p = _tensor(probs)
            self.probs = p / p.sum(-1, keepdim=True)
            self._param = self.probs
        else:
            lg = _tensor(logits)
            self.logits = lg - lg.logsumexp(-1, keepdim=True)
            self._param = self.logits
        self._num_events = self._param.shape[-1]
        super().__init__(self._param.shape[:-1])

    def __getattr__(self, name):          # the other parameterisation, computed when first read
        if name == "logits":
            eps = np.finfo(self.probs._data.dtype).eps
            self.logits = self.probs.clamp(eps, 1 - eps).log()
            return self.logits
        if name == "probs":
            self.probs = self.logits.softmax(-1)
            return self.probs
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    @property
    def param_shape(self):
        return tuple(self._param.shape)

    @property
    def mean(self):
        return Tensor(np.full(self.batch_shape, np.nan, self._param._data.dtype))

    @property
    def mode(self):
        return Tensor(self._param._data.argmax(-1))

    def _sample(self, sample_shape):
        p = self.probs._data.astype(np.float64)
        flat = p.reshape(-1, self._num_events)
        n = int(np.prod(sample_shape)) if sample_shape else 1
        cum = np.cumsum(flat, axis=-1)
        u = _rng().random((n, flat.shape[0], 1)) * cum[:, -1:]
        idx = (u > cum[None]).sum(-1)                         # inverse CDF per row
        return Tensor(idx.reshape(sample_shape + self.batch_shape).astype(np.int64))

    def log_prob(self, value):
        """logits[value] (value: int64 indices of shape broadcastable with batch_shape)."""
        from .. import broadcast_tensors
        v = _tensor(value, np.int64).long().unsqueeze(-1)
        v, lp = broadcast_tensors(v, self.logits)
        return lp.gather(-1, v[..., :1]).squeeze(-1)

    def entropy(self):
        """−Σ p log p over the categories (log p clamped to the dtype's finite minimum, as PyTorch)."""
        lg = self.logits.clamp(min=float(np.finfo(self.logits._data.dtype).min))
        return -(lg * self.probs).sum(-1)

    def __repr__(self):
        name = "probs" if "probs" in self.__dict__ and self._param is self.probs else "logits"
        shown = ["probs", "logits"] if "probs" in self.__dict__ and "logits" in self.__dict__ else [name]
        return f"{type(self).__name__}({', '.join(f'{n}: torch.Size({list(self._param.shape)})' for n in shown)})"


class Bernoulli(Distribution):
    """A {0, 1} variable with P(1) = ``probs``, or σ(``logits``) (torch.distributions.Bernoulli).
    Raises: ValueError unless exactly one of probs, logits is given."""
    _params = ("probs", "logits")

    def __init__(self, probs=None, logits=None, validate_args=None):
        if _given(probs, logits) == "probs":
            self.probs = _tensor(probs)
            eps = np.finfo(self.probs._data.dtype).eps
            self.logits = self.probs.clamp(eps, 1 - eps).logit()
            self._shown = "probs"
        else:
            self.logits = _tensor(logits)
            self.probs = self.logits.sigmoid()
            self._shown = "logits"
        super().__init__(self.probs.shape)

    @property
    def mean(self):
        return self.probs

    @property
    def variance(self):
        return self.probs * (1 - self.probs)

    def _sample(self, sample_shape):
        p = self.probs._data
        return Tensor((_rng().random(sample_shape + p.shape) < p).astype(p.dtype))

    def log_prob(self, value):
        """value·log p + (1 − value)·log(1 − p), computed from the logits; broadcast."""
        from .. import broadcast_tensors
        from ..nn import functional as F
        logits, v = broadcast_tensors(self.logits, _tensor(value, self.logits._data.dtype))
        return -F.binary_cross_entropy_with_logits(logits, v, reduction="none")

    def entropy(self):
        """−p log p − (1 − p) log(1 − p), from the logits."""
        from ..nn import functional as F
        return F.binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none")

    def __repr__(self):
        t = getattr(self, self._shown)
        return f"Bernoulli({self._shown}: {t!r})" if t.numel() <= 6 else \
            f"Bernoulli({self._shown}: torch.Size({list(t.shape)}))"


class Uniform(_Located):
    """The uniform distribution on [low, high), low and high broadcast (torch.distributions.Uniform)."""
    _params = ("low", "high")

    @property
    def mean(self):
        return (self.high + self.low) / 2

    @property
    def variance(self):
        return (self.high - self.low) ** 2 / 12

    def rsample(self, sample_shape=()):
        """low + (high − low)·u with u ~ U[0, 1): differentiable in low and high."""
        u = _rng().random(self._extended(sample_shape)).astype(self.low._data.dtype)
        return self.low + (self.high - self.low) * Tensor(u)

    def log_prob(self, value):
        """−log(high − low) inside [low, high), −inf outside."""
        v = _tensor(value, self.low._data.dtype)
        inside = ((self.low._data <= v._data) & (v._data < self.high._data)).astype(v._data.dtype)
        return Tensor(np.log(inside)) - (self.high - self.low).log()

    def entropy(self):
        """log(high − low)."""
        return (self.high - self.low).log()

    def __repr__(self):
        return f"Uniform(low: {self._show(self.low)}, high: {self._show(self.high)})"


def kl_divergence(p, q):
    """KL(p ‖ q) for two Normals or two Categoricals (torch.distributions.kl_divergence), batch-wise;
    differentiable in both. Raises: NotImplementedError for other pairs (PyTorch's message)."""
    if isinstance(p, Normal) and isinstance(q, Normal):
        var_ratio = (p.scale / q.scale) ** 2
        t1 = ((p.loc - q.loc) / q.scale) ** 2
        return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())
    if isinstance(p, Categorical) and isinstance(q, Categorical):
        t = p.probs * (p.logits - q.logits)
        inf = np.broadcast_to(q.probs._data == 0, t.shape)
        zero = np.broadcast_to(p.probs._data == 0, t.shape)
        t = t.masked_fill(Tensor(inf), float("inf")).masked_fill(Tensor(zero), 0.0)
        return t.sum(-1)
    raise NotImplementedError(f"No KL(p || q) is implemented for p type {type(p).__name__} and q type "
                              f"{type(q).__name__}")
