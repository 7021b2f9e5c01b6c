"""Loss modules: thin wrappers over ``F``'s losses with PyTorch's names and ``reduction``."""
from __future__ import annotations

from . import functional as F
from .module import Module


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        F._check_reduction(reduction)
        self.reduction = reduction


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy from logits: (N, C) logits, (N,) int targets -> scalar. See F.cross_entropy."""

    def forward(self, input, target):
        return F.cross_entropy(input, target, reduction=self.reduction)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities: (N, C), (N,) -> scalar. See F.nll_loss."""

    def forward(self, input, target):
        return F.nll_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error; input and target of the same shape -> scalar. See F.mse_loss."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities in [0, 1]; same shapes -> scalar."""

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits (sigmoid fused, stable); same shapes -> scalar."""

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, reduction=self.reduction)
