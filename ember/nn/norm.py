"""Normalisation and regularisation layers: ``BatchNorm1d``, ``BatchNorm2d``, ``LayerNorm``, ``Dropout``.

Sources: Ioffe & Szegedy 2015 (batch norm), Ba, Kiros & Hinton 2016 (layer norm),
Srivastava et al. 2014 (dropout). Names, arguments, defaults and state-dict keys as PyTorch's.
"""
from __future__ import annotations

import numpy as np

from . import functional as F
from ._validation import ShapeError
from .module import Module, Parameter
from ..tensor import Tensor


class _NormBase(Module):
    """What batch and instance norm share (torch's _NormBase): num_features C, eps, momentum, the
    affine weight = 1 and bias = 0 (C,), and, with track_running_stats, the buffers running_mean
    = 0, running_var = 1 (C,) and num_batches_tracked () int64.
    Raises: ValueError for a num_features that is not a positive int."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype=None):
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"num_features must be a positive integer, got {num_features!r}")
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dt = np.dtype(dtype or np.float32)
        self.weight = Parameter(np.ones(num_features, dt)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dt)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dt)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dt)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None


class _BatchNorm(_NormBase):
    _dims: tuple = ()

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            self.running_mean._data[...] = 0
            self.running_var._data[...] = 1
            self.num_batches_tracked._data[...] = 0

    def forward(self, x):
        if x.ndim not in self._dims:
            raise ShapeError(f"expected {' or '.join(f'{d}-D' for d in self._dims)} input, got shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ShapeError(f"expected input with {self.num_features} channels, got {x.shape[1]} "
                               f"channels (input shape {tuple(x.shape)})")
        use_batch = self.training or not self.track_running_stats
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked._data += 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / int(self.num_batches_tracked._data)
        update = self.training and self.track_running_stats
        return F.batch_norm(x, self.running_mean if update or not use_batch else None,
                            self.running_var if update or not use_batch else None,
                            self.weight, self.bias, use_batch, momentum, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) inputs, per feature/channel C.

    Training: y = γ·(x − μ_B)/sqrt(σ²_B + ε) + β with the batch mean and biased variance; the
    running statistics become (1 − momentum)·running + momentum·batch (unbiased variance);
    momentum=None uses the cumulative average. Evaluation: the running statistics replace the
    batch ones. Args: num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True.
    Parameters: weight γ (C,) = 1, bias β (C,) = 0. Buffers: running_mean (C,) = 0,
        running_var (C,) = 1, num_batches_tracked () int64.
    Raises: ShapeError (via ModuleError) for a wrong rank or channel count.
    """
    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images per channel, statistics over N, H and W.

    Same arguments, parameters, buffers and train/eval behaviour as ``BatchNorm1d``.
    Example: BatchNorm2d(32)(x) with x (64, 32, 28, 28) -> (64, 32, 28, 28).
    """
    _dims = (4,)


class GroupNorm(Module):
    """Group normalisation (Wu & He 2018; torch.nn.GroupNorm): see F.group_norm. Same in train and
    eval mode (no running statistics).
    Args: num_groups, num_channels, eps=1e-5, affine=True, dtype, bias=True (keyword). Shape:
    (N, C, *) -> same. Parameters: weight = 1, bias = 0, (C,). Raises: ValueError when
    num_channels is not divisible by num_groups (torch's message)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, dtype=None, *,
                 bias: bool = True):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError("num_channels must be divisible by num_groups")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        dt = np.dtype(dtype or np.float32)
        self.weight = Parameter(np.ones(num_channels, dt)) if affine else None
        self.bias = Parameter(np.zeros(num_channels, dt)) if affine and bias else None

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class LayerNorm(Module):
    """Layer normalisation over the trailing ``normalized_shape`` dims of each sample (same in
    train and eval mode).

    Args: normalized_shape (int or tuple), eps=1e-5, elementwise_affine=True, bias=True.
    Shape: (*, *normalized_shape) -> same. Parameters: weight = 1, bias = 0, shaped normalized_shape.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype=None):
        super().__init__()
        ns = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        if not ns or not all(isinstance(n, (int, np.integer)) and n > 0 for n in ns):
            raise ValueError(f"normalized_shape must be positive ints, got {normalized_shape!r}")
        self.normalized_shape, self.eps, self.elementwise_affine = tuple(int(n) for n in ns), eps, elementwise_affine
        dt = np.dtype(dtype or np.float32)
        self.weight = Parameter(np.ones(ns, dt)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(ns, dt)) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class _DropoutNd(Module):
    """What the dropout modules share (torch's _DropoutNd): p and inplace, checked, and the repr.
    Dropout1d/Dropout2d are not Dropouts (``isinstance`` as in torch)."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Inverted dropout: in training, zero each element with probability p and scale the others
    by 1/(1 − p); in evaluation, the identity. Masks come from ember's generator.

    Args: p=0.5 (0 ≤ p ≤ 1); inplace=False (True: into the input, as torch.nn.Dropout's).
    Shape: any -> same.
    Raises: ValueError for p outside [0, 1].
    """

    def forward(self, x):
        return F.dropout(x, self.p, self.training, self.inplace)


class Dropout1d(_DropoutNd):
    """Channel dropout for (N, C, L) or (C, L) inputs (torch.nn.Dropout1d): see F.dropout1d.
    Args: p=0.5, inplace=False. Raises: ValueError for p outside [0, 1]."""

    def forward(self, x):
        return F.dropout1d(x, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Channel dropout for (N, C, H, W) inputs (torch.nn.Dropout2d; Tompson et al. 2015): each
    feature map zeroed with probability p in training, the others scaled by 1/(1 − p); see
    F.dropout2d. Args: p=0.5, inplace=False. Raises: ValueError for p outside [0, 1]."""

    def forward(self, x):
        return F.dropout2d(x, self.p, self.training, self.inplace)



def instance_norm(x: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Instance normalisation (Ulyanov et al. 2016; torch.nn.functional.instance_norm): each
    channel of each sample normalised by its own mean and biased variance (group_norm with one
    group per channel), then weight·x̂ + bias per channel. With use_input_stats and running
    buffers, those are updated in place with the batch's mean of the instance means and of the
    unbiased instance variances (momentum); use_input_stats=False normalises by the buffers.
    Shape: x (N, C, *) -> like x; running_mean/var, weight, bias (C,)."""
    if not use_input_stats:
        return F.batch_norm(x, running_mean, running_var, weight, bias, False, momentum, eps)
    if running_mean is not None:
        N, C = x.shape[:2]
        flat = x._data.reshape(N, C, -1)
        n = flat.shape[2]
        mean, var = flat.mean(axis=2).mean(axis=0), (flat.var(axis=2) * n / max(n - 1, 1)).mean(axis=0)
        running_mean._data *= 1 - momentum
        running_mean._data += momentum * mean.astype(running_mean._data.dtype)
        running_var._data *= 1 - momentum
        running_var._data += momentum * var.astype(running_var._data.dtype)
    return F.group_norm(x, x.shape[1], weight, bias, eps)


class _InstanceNorm(_NormBase):
    """InstanceNorm1d/2d (torch.nn.InstanceNormNd): args num_features C, eps=1e-5, momentum=0.1,
    affine=False (weight = 1, bias = 0 parameters), track_running_stats=False (running_mean/var
    buffers, used in evaluation). Shape: (N, C, *spatial) or unbatched (C, *spatial) -> the same.
    Raises: ValueError for an input of the wrong rank (naming the expected dims)."""
    _ndim = 2

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)

    def forward(self, x):
        if x.ndim not in (self._ndim + 1, self._ndim + 2):
            raise ValueError(f"expected {self._ndim + 1}D or {self._ndim + 2}D input (got {x.ndim}D input)")
        unbatched = x.ndim == self._ndim + 1
        if unbatched:
            x = x.unsqueeze(0)
        stats = self.training or not self.track_running_stats   # num_batches_tracked stays 0, as PyTorch's
        y = instance_norm(x, self.running_mean if self.track_running_stats else None,
                          self.running_var if self.track_running_stats else None, self.weight, self.bias, stats,
                          self.momentum, self.eps)
        return y.squeeze(0) if unbatched else y

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation of (N, C, L) or (C, L) inputs (torch.nn.InstanceNorm1d); see _InstanceNorm."""
    _ndim = 1


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation of (N, C, H, W) or (C, H, W) inputs (torch.nn.InstanceNorm2d), the
    normalisation of style-transfer networks; see _InstanceNorm."""
    _ndim = 2
