"""Losses, each one op with its closed-form VJP: the cross-entropy/NLL family (class weights,
ignore_index, label smoothing; soft targets), squared, binary cross-entropy, the multiclass SVM
(multi-margin), binary hinge and logistic losses, L1, smooth L1 and Huber.

Notation: z logits (N, C), x input (N, C) or any shape, t integer class targets (N,), y targets
of x's shape (y ∈ {−1, 1} for hinge/logistic), w class weights (C,), p = softmax(z),
g = dL/d(per-sample loss): grad_out/n for 'mean' (n = element count, or Σ of the target weights
where weights apply), grad_out for 'sum', grad_out itself (shape of the loss) for 'none'.
Source: deck 001 "softmax and cross-entropy, dL/dz = σ(z) − y"; deck 002 "Losses we have seen so
far" (squared, hinge, logistic with y ∈ {−1, 1}) and "Backprop Recipes: Multiclass SVM Loss";
deck 000 binary logistic loss; torch's definitions (weights, ignore_index, smoothing, β, δ).
"""
import numpy as np

from ..autograd import Function
from .activation import log_softmax, stable_sigmoid


def _reduce(loss, reduction, n=None):
    if reduction == "mean":
        return np.asarray(loss.sum() / (loss.dtype.type(n) if n is not None else loss.size), dtype=loss.dtype)
    if reduction == "sum":
        return np.asarray(loss.sum(), dtype=loss.dtype)
    return loss


def _unreduce(grad_out, shape, reduction, n=None):
    """dL/d(per-element loss) for each reduction: 1/n (mean), 1 (sum), grad_out itself (none)."""
    if reduction == "mean":
        return np.broadcast_to(grad_out / grad_out.dtype.type(n if n is not None else np.prod(shape)), shape)
    if reduction == "sum":
        return np.broadcast_to(grad_out, shape)
    return grad_out


def _target_weights(target, weight, ignore_index, dtype):
    """(valid mask (N,), targets with ignored entries set to 0 (N,), w[t]·valid (N,))."""
    valid = target != ignore_index
    t = np.where(valid, target, 0)
    wt = (weight[t] if weight is not None else np.ones(t.shape, dtype)) * valid
    return valid, t, wt.astype(dtype, copy=False)


class CrossEntropy(Function):
    """Cross-entropy from logits: log-softmax and NLL fused (stable), with torch's class weights w,
    ignore_index and label smoothing ε (the defaults w = 1, ε = 0 give the plain loss).

    logp = log_softmax(z) (N, C); per sample i with target t_i ≠ ignore_index (L_i = 0 otherwise):
        L_i = (1 − ε)·(−w[t_i] logp[i, t_i]) + (ε/C)·(−Σ_c w[c] logp[i, c])
    'mean' divides Σ_i L_i by Σ_i w[t_i] over non-ignored i (N for the plain loss), as torch.
        grad_z[i] = g_i·((1 − ε)·w[t_i]·(p_i − onehot(t_i)) + (ε/C)·((Σ_c w[c])·p_i − w))
    (deck 001: dL/dz = σ(z) − y for w = 1, ε = 0; from d logp_c/dz = onehot(c) − p).
    """
    @staticmethod
    def forward(ctx, z, target, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        N, C = z.shape
        logp = log_softmax(z, 1)                                      # (N, C)
        valid, t, wt = _target_weights(target, weight, ignore_index, z.dtype)
        eps = z.dtype.type(label_smoothing)
        loss = -wt * logp[np.arange(N), t]                            # (N,) NLL part
        if label_smoothing:
            w = weight if weight is not None else np.ones(C, z.dtype)  # (C,)
            loss = (1 - eps) * loss - (eps / C) * (logp @ w) * valid  # (N,) + smoothing part
        ctx.save_for_backward(logp, t, valid, wt)
        ctx.weight, ctx.eps, ctx.reduction, ctx.denom = weight, eps, reduction, wt.sum()
        return _reduce(loss, reduction, ctx.denom)

    @staticmethod
    def backward(ctx, grad_out):
        logp, t, valid, wt = ctx.saved_tensors
        N, C = logp.shape
        eps = ctx.eps
        g = _unreduce(grad_out, t.shape, ctx.reduction, ctx.denom)   # (N,)
        grad_z = np.exp(logp) * ((1 - eps) * wt)[:, None]             # p·(1 − ε)w[t], (N, C)
        grad_z[np.arange(N), t] -= (1 - eps) * wt                     # − onehot(t)·(1 − ε)w[t]
        if eps:
            w = ctx.weight if ctx.weight is not None else np.ones(C, logp.dtype)
            grad_z += (eps / C) * (w.sum() * np.exp(logp) - w) * valid[:, None]
        return grad_z * g[:, None], None


class NLLLoss(Function):
    """NLL of log-probabilities x (N, C) with torch's class weights and ignore_index:
    L_i = −w[t_i]·x[i, t_i] (0 if t_i = ignore_index); 'mean' divides by Σ_i w[t_i] (non-ignored).
    grad_x[i, t_i] = −w[t_i]·g_i, every other entry 0.
    """
    @staticmethod
    def forward(ctx, x, target, weight=None, ignore_index=-100, reduction="mean"):
        valid, t, wt = _target_weights(target, weight, ignore_index, x.dtype)
        ctx.save_for_backward(t, wt)
        ctx.in_shape, ctx.reduction, ctx.denom = x.shape, reduction, wt.sum()
        return _reduce(-wt * x[np.arange(x.shape[0]), t], reduction, ctx.denom)

    @staticmethod
    def backward(ctx, grad_out):
        t, wt = ctx.saved_tensors
        grad_x = np.zeros(ctx.in_shape, dtype=grad_out.dtype)        # (N, C)
        grad_x[np.arange(len(t)), t] = -wt * _unreduce(grad_out, t.shape, ctx.reduction, ctx.denom)
        return grad_x, None


class CrossEntropySoft(Function):
    """Cross-entropy against class *probabilities* y (N, C) (torch's float-target form), with class
    weights w and label smoothing ε: ỹ = (1 − ε)·y + ε/C,  L_i = −Σ_c w[c]·ỹ[i, c]·logp[i, c].
    'mean' divides by N (not by the weights, unlike class-index targets), as torch.
    grad_z[i] = g_i·((Σ_c w[c] ỹ[i, c])·p_i − w ⊙ ỹ_i),   grad_y[i] = −g_i·(1 − ε)·w ⊙ logp_i.
    """
    @staticmethod
    def forward(ctx, z, y, weight=None, label_smoothing=0.0, reduction="mean"):
        N, C = z.shape
        logp = log_softmax(z, 1)                                     # (N, C)
        eps = z.dtype.type(label_smoothing)
        ys = (1 - eps) * y + eps / C if label_smoothing else y       # (N, C)
        wy = ys * weight if weight is not None else ys                # (N, C)
        ctx.save_for_backward(logp, wy, weight)
        ctx.eps, ctx.reduction = eps, reduction
        return _reduce(-(wy * logp).sum(1), reduction)

    @staticmethod
    def backward(ctx, grad_out):
        logp, wy, weight = ctx.saved_tensors
        eps, reduction = ctx.eps, ctx.reduction
        g = _unreduce(grad_out, logp.shape[:1], reduction)[:, None]  # (N, 1)
        grad_z = (wy.sum(1, keepdims=True) * np.exp(logp) - wy) * g  # (N, C)
        wlogp = logp * weight if weight is not None else logp
        return grad_z, -(1 - eps) * wlogp * g, None


class BCELoss(Function):
    """L = −(1/n) Σ [y log p + (1 − y) log(1 − p)] for probabilities p (deck 000's logistic loss);
    log terms clamped at −100 as torch;  grad_p = (p − y) / (p (1 − p)) · grad_out / n,
    grad_y = (log(1 − p) − log p) · grad_out / n (the target may require grad, as in torch)."""
    @staticmethod
    def forward(ctx, p, y, reduction="mean"):
        with np.errstate(divide="ignore"):
            logp, log1mp = np.maximum(np.log(p), -100), np.maximum(np.log1p(-p), -100)
        ctx.save_for_backward(p, y)
        ctx.reduction = reduction
        return _reduce(-(y * logp + (1 - y) * log1mp), reduction)

    @staticmethod
    def backward(ctx, grad_out):
        p, y = ctx.saved_tensors
        eps = p.dtype.type(1e-12)  # torch's EPSILON in binary_cross_entropy_backward
        up = _unreduce(grad_out, p.shape, ctx.reduction)
        g = (p - y) / np.maximum((1 - p) * p, eps)
        gy = None
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore"):
                gy = (np.maximum(np.log1p(-p), -100) - np.maximum(np.log(p), -100)) * up
        return g * up, gy


class BCEWithLogitsLoss(Function):
    """L = (1/n) Σ [softplus(z) − y z] = BCE(σ(z), y) without overflow:
    softplus(z) = max(z, 0) + log(1 + e^−|z|);  grad_z = (σ(z) − y) · grad_out / n,
    grad_y = −z · grad_out / n (the target may require grad, as in torch)."""
    @staticmethod
    def forward(ctx, z, y, reduction="mean"):
        loss = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        ctx.save_for_backward(z, y)
        ctx.reduction = reduction
        return _reduce(loss, reduction)

    @staticmethod
    def backward(ctx, grad_out):
        z, y = ctx.saved_tensors
        sig = stable_sigmoid(z)
        up = _unreduce(grad_out, z.shape, ctx.reduction)
        return (sig - y) * up, (-z * up if ctx.needs_input_grad[1] else None)


class MultiMarginLoss(Function):
    """Multiclass SVM loss (deck 002), torch's MultiMarginLoss: for x (N, C), target t,
        z_ij = margin − x[i, t_i] + x[i, j],   L_i = (1/C) Σ_{j ≠ t_i} w[t_i]·max(0, z_ij)^p,  p ∈ {1, 2}.
    (Deck 002 writes Σ_j max(0, 1 − x_y + x_j) without the 1/C; torch divides by C.)
    With d_ij = w[t_i]·(1 if p = 1 else 2 z_ij)·[z_ij > 0]/C for j ≠ t_i (deck 002: J = 1 if x_y − x_j < 1):
        grad_x[i, j] = g_i d_ij (j ≠ t_i),   grad_x[i, t_i] = −g_i Σ_j d_ij.
    """
    @staticmethod
    def forward(ctx, x, target, p=1, margin=1.0, weight=None, reduction="mean"):
        N, C = x.shape
        rows = np.arange(N)
        z = x - x[rows, target][:, None] + x.dtype.type(margin)      # (N, C)
        active = z > 0
        active[rows, target] = False                                  # j ≠ t_i
        h = np.where(active, z if p == 1 else z * z, 0)               # (N, C)
        scale = (weight[target] if weight is not None else np.ones(N, x.dtype)) / x.dtype.type(C)  # (N,)
        ctx.save_for_backward(z, active, target, scale)
        ctx.p, ctx.reduction = p, reduction
        return _reduce(h.sum(1) * scale, reduction)

    @staticmethod
    def backward(ctx, grad_out):
        z, active, target, scale = ctx.saved_tensors
        p, reduction = ctx.p, ctx.reduction
        g = _unreduce(grad_out, target.shape, reduction) * scale     # (N,)
        d = np.where(active, 1 if p == 1 else 2 * z, 0) * g[:, None]  # (N, C)
        d[np.arange(len(target)), target] = -d.sum(1)
        return d.astype(z.dtype, copy=False), None


class HingeLoss(Function):
    """Binary hinge loss (deck 002), y ∈ {−1, 1}, any shape:  L = max(0, 1 − y·f);
    grad_f = −y·[1 − y f > 0]·g,  grad_y = −f·[1 − y f > 0]·g  (0 at the kink, like ReLU)."""
    @staticmethod
    def forward(ctx, f, y, reduction="mean"):
        m = 1 - y * f
        ctx.save_for_backward(f, y, m > 0)
        ctx.reduction = reduction
        return _reduce(np.maximum(m, 0), reduction)

    @staticmethod
    def backward(ctx, grad_out):
        f, y, active = ctx.saved_tensors
        g = _unreduce(grad_out, f.shape, ctx.reduction) * active
        return -y * g, -f * g


class LogisticLoss(Function):
    """Binary logistic loss (deck 002's "cross-entropy loss on logistic function"), y ∈ {−1, 1}:
        L = log(1 + exp(−y f)) = softplus(−y f) = max(−y f, 0) + log(1 + e^{−|y f|})   (no overflow);
    grad_f = −y·σ(−y f)·g,  grad_y = −f·σ(−y f)·g."""
    @staticmethod
    def forward(ctx, f, y, reduction="mean"):
        u = -y * f
        ctx.save_for_backward(f, y, u)
        ctx.reduction = reduction
        return _reduce(np.maximum(u, 0) + np.log1p(np.exp(-np.abs(u))), reduction)

    @staticmethod
    def backward(ctx, grad_out):
        f, y, u = ctx.saved_tensors
        s = stable_sigmoid(u) * _unreduce(grad_out, f.shape, ctx.reduction)
        return -y * s, -f * s


class _DifferenceLoss(Function):
    """A loss of the difference d = x − y, elementwise: L = Σ loss(d) (reduced), and
    grad_x = loss'(d)·g,  grad_y = −grad_x. Subclasses give ``loss(d, c)`` and ``slope(d, c)``
    (loss'), where c is the op's constant (β, δ) in d's dtype."""
    @staticmethod
    def forward(ctx, x, y, reduction="mean", c=1.0):
        d = x - y
        ctx.save_for_backward(d)
        ctx.reduction, ctx.c = reduction, d.dtype.type(c)
        return _reduce(ctx.fn.loss(d, ctx.c), reduction)

    @staticmethod
    def backward(ctx, grad_out):
        (d,) = ctx.saved_tensors
        g = ctx.fn.slope(d, ctx.c) * _unreduce(grad_out, d.shape, ctx.reduction)
        return g, -g


class MSELoss(_DifferenceLoss):
    """L = (1/n) Σ (x − y)² (squared loss, deck 003: the mean is its argmin);
    grad_x = 2 (x − y) grad_out / n,  grad_y = −grad_x."""
    loss = staticmethod(lambda d, c: d * d)
    slope = staticmethod(lambda d, c: 2 * d)


class L1Loss(_DifferenceLoss):
    """L = |x − y|;  grad_x = sign(x − y)·g (0 where x = y, as torch),  grad_y = −grad_x."""
    loss = staticmethod(lambda d, c: np.abs(d))
    slope = staticmethod(lambda d, c: np.sign(d))


class SmoothL1Loss(_DifferenceLoss):
    """d = x − y, c = β:  L = 0.5 d²/β if |d| < β else |d| − 0.5β  (β = 0: L1);
    grad_x = (d/β if |d| < β else sign(d))·g,  grad_y = −grad_x."""
    loss = staticmethod(lambda d, c: np.where(np.abs(d) < c, 0.5 * d * d / (c or 1), np.abs(d) - c / 2))
    slope = staticmethod(lambda d, c: np.where(np.abs(d) < c, d / (c or 1), np.sign(d)))


class HuberLoss(_DifferenceLoss):
    """d = x − y, c = δ:  L = 0.5 d² if |d| < δ else δ(|d| − 0.5δ)  (= δ · SmoothL1 with β = δ);
    grad_x = clip(d, −δ, δ)·g,  grad_y = −grad_x."""
    loss = staticmethod(lambda d, c: np.where(np.abs(d) < c, 0.5 * d * d, c * (np.abs(d) - c / 2)))
    slope = staticmethod(lambda d, c: np.clip(d, -c, c))
