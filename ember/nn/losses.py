"""Loss modules: thin wrappers over ``F``'s losses with PyTorch's names and ``reduction``."""
from __future__ import annotations

from . import functional as F
from . import more_losses as _more
from ._validation import _legacy_reduction
from .module import Module


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = _legacy_reduction(size_average, reduce, reduction)

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class _WeightedLoss(_Loss):
    """A loss with an optional per-class ``weight`` (C,), kept as a buffer (in state_dict, as torch)."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy from logits, with torch's weight, ignore_index and label_smoothing.

    Shape: (N, C) logits, (N,) int targets -> scalar ('mean'/'sum') or (N,) ('none').
    Example: nn.CrossEntropyLoss(label_smoothing=0.1)(logits, y). See F.cross_entropy.
    """

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(weight, size_average, reduce, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities, with weight and ignore_index:
    (N, C), (N,) -> scalar or (N,). See F.nll_loss."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MultiMarginLoss(_WeightedLoss):
    """Multiclass SVM loss of deck 002 (torch's MultiMarginLoss): (N, C) scores, (N,) int targets.
    L_i = (1/C) Σ_{j ≠ t_i} w[t_i]·max(0, margin − x[t_i] + x[j])^p. See F.multi_margin_loss."""

    def __init__(self, p: int = 1, margin: float = 1.0, weight=None, size_average=None, reduce=None,
                 reduction: str = "mean"):
        super().__init__(weight, size_average, reduce, reduction)
        if p not in (1, 2):
            raise ValueError(f"MultiMarginLoss: only p == 1 and p == 2 supported, got p={p!r}")
        self.p, self.margin = p, margin

    def forward(self, input, target):
        return F.multi_margin_loss(input, target, p=self.p, margin=self.margin, weight=self.weight,
                                   reduction=self.reduction)


class HingeLoss(_Loss):
    """Binary hinge loss of deck 002, max(0, 1 − y·f) with y ∈ {−1, 1}; any matching shapes.
    No torch twin. See F.hinge_loss."""

    def __init__(self, reduction: str = "mean"):
        super().__init__(reduction=reduction)

    def forward(self, input, target):
        return F.hinge_loss(input, target, reduction=self.reduction)


class LogisticLoss(_Loss):
    """Binary logistic loss of deck 002, log(1 + exp(−y·f)) with y ∈ {−1, 1}, overflow-free;
    any matching shapes. No torch twin. See F.logistic_loss."""

    def __init__(self, reduction: str = "mean"):
        super().__init__(reduction=reduction)

    def forward(self, input, target):
        return F.logistic_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error; input and target of the same shape. See F.l1_loss."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """0.5 d²/β for |d| < β else |d| − 0.5β; same shapes. See F.smooth_l1_loss."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
        super().__init__(size_average, reduce, reduction)
        if beta < 0:
            raise ValueError(f"smooth_l1_loss does not support negative values for beta, got beta={beta}")
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """0.5 d² for |d| < δ else δ(|d| − 0.5δ); same shapes. See F.huber_loss."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction=reduction)
        if delta <= 0:
            raise ValueError(f"huber_loss does not support non-positive values for delta, got delta={delta}")
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class MSELoss(_Loss):
    """Mean squared error; input and target of the same shape -> scalar. See F.mse_loss."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities in [0, 1]; same shapes -> scalar. ``weight``
    (optional) rescales each element's loss (broadcast), kept as a buffer as torch's."""

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits (sigmoid fused, stable); same shapes -> scalar. ``weight``
    rescales each element's loss, ``pos_weight`` (per class) the positive term; both buffers,
    as torch's (see F.binary_cross_entropy_with_logits)."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class KLDivLoss(_Loss):
    """Kullback–Leibler divergence of log-probabilities ``input`` from ``target``
    (torch.nn.KLDivLoss): reduction 'mean' (torch's default, every element), 'batchmean' (the
    KL definition), 'sum' or 'none'; ``log_target`` when the target is log-probabilities too.
    See F.kl_div."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
        super().__init__()
        self.reduction = reduction if size_average is None and reduce is None else \
            _legacy_reduction(size_average, reduce, "mean")
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class MarginRankingLoss(_Loss):
    """max(0, −y·(x1 − x2) + margin) (torch.nn.MarginRankingLoss); forward(input1, input2, target)."""

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return _more.margin_ranking_loss(input1, input2, target, self.margin, reduction=self.reduction)


class CosineEmbeddingLoss(MarginRankingLoss):
    """1 − cos(x1, x2) for y = 1, max(0, cos − margin) for y = −1 (torch.nn.CosineEmbeddingLoss)."""

    def forward(self, input1, input2, target):
        return _more.cosine_embedding_loss(input1, input2, target, self.margin, reduction=self.reduction)


class TripletMarginLoss(_Loss):
    """max(0, margin + d(a, p) − d(a, n)) (torch.nn.TripletMarginLoss); args margin=1.0, p=2.0,
    eps=1e-6, swap=False; forward(anchor, positive, negative)."""

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6, swap: bool = False,
                 size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap

    def forward(self, anchor, positive, negative):
        return _more.triplet_margin_loss(anchor, positive, negative, self.margin, self.p, self.eps, self.swap,
                                         reduction=self.reduction)


class PoissonNLLLoss(_Loss):
    """Poisson negative log-likelihood (torch.nn.PoissonNLLLoss); args log_input=True, full=False, eps=1e-8."""

    def __init__(self, log_input: bool = True, full: bool = False, size_average=None, eps: float = 1e-8,
                 reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.log_input, self.full, self.eps = log_input, full, eps

    def forward(self, log_input, target):
        return _more.poisson_nll_loss(log_input, target, self.log_input, self.full, eps=self.eps,
                                      reduction=self.reduction)


class GaussianNLLLoss(_Loss):
    """Gaussian negative log-likelihood (torch.nn.GaussianNLLLoss); keyword args full=False, eps=1e-6;
    forward(input, target, var)."""

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
        super().__init__(reduction=reduction)
        self.full, self.eps = full, eps

    def forward(self, input, target, var):
        return _more.gaussian_nll_loss(input, target, var, self.full, self.eps, self.reduction)


class SoftMarginLoss(_Loss):
    """log(1 + exp(−y·x)) (torch.nn.SoftMarginLoss)."""

    def forward(self, input, target):
        return _more.soft_margin_loss(input, target, reduction=self.reduction)


class MultiLabelSoftMarginLoss(_WeightedLoss):
    """Per-class logistic loss averaged over the classes (torch.nn.MultiLabelSoftMarginLoss); args weight=None."""

    def forward(self, input, target):
        return _more.multilabel_soft_margin_loss(input, target, self.weight, reduction=self.reduction)
