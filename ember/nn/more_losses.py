"""More of PyTorch's losses (torch.nn.functional), compositions of ember's differentiable ops, with
PyTorch's formulas, shapes and ``reduction`` ('mean', 'sum', 'none'):

    margin_ranking_loss     max(0, −y·(x1 − x2) + margin)
    cosine_embedding_loss   1 − cos(x1, x2) where y = 1;  max(0, cos(x1, x2) − margin) where y = −1
    triplet_margin_loss     max(0, margin + d(a, p) − d(a, n)), d the p-norm distance (swap: d(a, n)
                            replaced by min(d(a, n), d(p, n)); Balntas et al. 2016)
    poisson_nll_loss        exp(x) − y·x (log_input) or x − y·log(x + eps); full: + Stirling's
                            y·log y − y + ½·log(2πy) where y > 1
    gaussian_nll_loss       ½·(log v + (x − y)²/v) (+ ½·log 2π if full), v = max(var, eps) with the
                            gradient of var itself (PyTorch clamps without recording)
    soft_margin_loss        log(1 + exp(−y·x))
    multilabel_soft_margin_loss   −mean_c [y log σ(x) + (1 − y) log σ(−x)] (· weight_c) per sample
"""
from __future__ import annotations

import math

import numpy as np

from ..tensor import Tensor
from . import functional as F
from ._validation import _check_reduction, _legacy_reduction


def _t(x, like):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x, like._data.dtype))


def _reduce(loss, reduction):
    _check_reduction(reduction)
    return loss.mean() if reduction == "mean" else (loss.sum() if reduction == "sum" else loss)


def margin_ranking_loss(input1, input2, target, margin: float = 0.0, size_average=None, reduce=None,
                        reduction: str = "mean"):
    """max(0, −y·(x1 − x2) + margin) (torch.nn.functional.margin_ranking_loss); x1, x2, y broadcast."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _reduce((-_t(target, input1) * (input1 - input2) + margin).clamp(min=0.0), reduction)


def cosine_embedding_loss(input1, input2, target, margin: float = 0.0, size_average=None, reduce=None,
                          reduction: str = "mean"):
    """1 − cos where y = 1, max(0, cos − margin) where y = −1 (torch.nn.functional.cosine_embedding_loss);
    inputs (N, D) or (D,), target (N,) or (); cos with PyTorch's 1e-12 added to each squared norm."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    d = input1.ndim - 1
    cos = (input1 * input2).sum(d) / (((input1 * input1).sum(d) + 1e-12) * ((input2 * input2).sum(d) + 1e-12)) ** 0.5
    y = np.asarray(getattr(target, "_data", target))
    pos = Tensor((y == 1).astype(cos._data.dtype))
    neg = Tensor((y == -1).astype(cos._data.dtype))
    return _reduce(pos * (1 - cos) + neg * (cos - margin).clamp(min=0.0), reduction)


def triplet_margin_loss(anchor, positive, negative, margin: float = 1.0, p: float = 2, eps: float = 1e-6,
                        swap: bool = False, size_average=None, reduce=None, reduction: str = "mean"):
    """max(0, margin + d(a, p) − d(a, n)) (torch.nn.functional.triplet_margin_loss); (N, D) or (D,)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    d_ap = F.pairwise_distance(anchor, positive, p, eps)
    d_an = F.pairwise_distance(anchor, negative, p, eps)
    if swap:
        from .. import minimum
        d_an = minimum(d_an, F.pairwise_distance(positive, negative, p, eps))
    return _reduce((d_ap - d_an + margin).clamp(min=0.0), reduction)


def poisson_nll_loss(input, target, log_input: bool = True, full: bool = False, size_average=None,
                     eps: float = 1e-8, reduce=None, reduction: str = "mean"):
    """Poisson negative log-likelihood (torch.nn.functional.poisson_nll_loss); shapes broadcast."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    y = _t(target, input)
    loss = input.exp() - y * input if log_input else input - y * (input + eps).log()
    if full:
        yd = y._data
        safe = np.where(yd > 1, yd, 1.0)
        stirling = np.where(yd > 1, safe * np.log(safe) - safe + 0.5 * np.log(2 * np.pi * safe), 0.0)
        loss = loss + Tensor(stirling.astype(loss._data.dtype))
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
    """Gaussian negative log-likelihood (torch.nn.functional.gaussian_nll_loss): var of input's shape,
    or one dim fewer, or 1 in the last dim (one variance per sample). Raises: ValueError for
    another var shape, a negative var or an unknown reduction (PyTorch's messages)."""
    if not isinstance(var, Tensor):
        var = Tensor(np.full(input.shape, float(var), input._data.dtype))
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = var.unsqueeze(-1)
        elif not (tuple(input.shape[:-1]) == tuple(var.shape[:-1]) and var.shape[-1] == 1):
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    if np.any(var._data < 0):
        raise ValueError("var has negative entry/entries")
    var = var + Tensor(np.maximum(var._data, eps) - var._data)        # clamped value, identity gradient
    loss = 0.5 * (var.log() + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """log(1 + exp(−y·x)) (torch.nn.functional.soft_margin_loss); shapes match."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _reduce((-_t(target, input) * input).exp().log1p(), reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
    """−mean over the C classes of y·log σ(x) + (1 − y)·log σ(−x), times weight (C,) if given
    (torch.nn.functional.multilabel_soft_margin_loss); input, target (N, C) -> per sample, reduced."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    y = _t(target, input)
    loss = -(y * F.logsigmoid(input) + (1 - y) * F.logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss.sum(input.ndim - 1) / input.shape[-1], reduction)


FUNCTIONS = dict(margin_ranking_loss=margin_ranking_loss, cosine_embedding_loss=cosine_embedding_loss,
                 triplet_margin_loss=triplet_margin_loss, poisson_nll_loss=poisson_nll_loss,
                 gaussian_nll_loss=gaussian_nll_loss, soft_margin_loss=soft_margin_loss,
                 multilabel_soft_margin_loss=multilabel_soft_margin_loss)
