"""Adam and AdamW: bias-corrected moment estimates, with PyTorch's exact eps placement."""
from __future__ import annotations

import math

import numpy as np

from .optimizer import Optimizer


class Adam(Optimizer):
    """Adam, exactly as ``torch.optim.Adam`` (single-tensor path).

    Algorithm (per parameter θ with gradient g, step t = 1, 2, ...):
        if λ ≠ 0:  θ ← θ(1 − lr·λ)  if decoupled_weight_decay (AdamW)  else  g ← g + λθ
        m ← β1·m + (1 − β1)·g                   (first moment, m₀ = 0)
        v ← β2·v + (1 − β2)·g²                  (second moment, v₀ = 0)
        v̂max ← max(v̂max, v)  and use it for v   if amsgrad
        θ ← θ − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)

    Paper: Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization"
        (https://arxiv.org/abs/1412.6980); amsgrad: Reddi et al. 2018.
    Note: as torch, ε is added to √v̂ *after* the bias correction √(1 − β2ᵗ), not to the raw √v
        of the paper's "efficient" form (α_t = lr·√(1 − β2ᵗ)/(1 − β1ᵗ), ε on √v); the two differ
        exactly when gradients are tiny (|g| ≲ ε), which the tests exercise.

    Args:
        params: iterable of Parameters or of param-group dicts.
        lr: learning rate (≥ 0), default 1e-3.
        betas: (β1, β2), each in [0, 1), default (0.9, 0.999).
        eps: added to the denominator (≥ 0), default 1e-8.
        weight_decay: λ (≥ 0), default 0 (L2 penalty added to the gradient).
        amsgrad: use the running maximum of v (default False).
        decoupled_weight_decay: AdamW's decay θ ← θ(1 − lr·λ) instead of the L2 gradient term.
        maximize: g ← −g first (ascent); foreach, capturable, differentiable, fused: PyTorch's
        implementation switches (``Optimizer._switches``); all keyword only.
    State per parameter: ``step`` (int), ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (amsgrad).
    Raises: ValueError naming the invalid argument (torch's messages).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, foreach=None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False, fused=None,
                 decoupled_weight_decay: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=decoupled_weight_decay,
                                      **self._switches(differentiable, foreach=foreach, capturable=capturable,
                                                       fused=fused)))

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place; returns closure's loss if given."""
        loss = self._run_closure(closure)
        for group, p, g, state in self._params_with_grad():
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            wd, amsgrad = group["weight_decay"], group["amsgrad"]
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(p._data)
                state["exp_avg_sq"] = np.zeros_like(p._data)
                if amsgrad:
                    state["max_exp_avg_sq"] = np.zeros_like(p._data)
            state["step"] += 1
            t = state["step"]
            if wd != 0:
                if group["decoupled_weight_decay"]:
                    p._data *= 1 - lr * wd
                else:
                    g = g + wd * p._data
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m += (1 - beta1) * (g - m)                       # lerp(m, g, 1 − β1), as torch
            v *= beta2
            v += (1 - beta2) * (g * g)
            if amsgrad:
                np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                v = state["max_exp_avg_sq"]
            step_size = lr / (1 - beta1 ** t)                # Python floats: no float64 promotion
            denom = np.sqrt(v) / math.sqrt(1 - beta2 ** t) + eps
            p._data -= step_size * (m / denom)
        return loss


class AdamW(Adam):
    """AdamW, exactly as ``torch.optim.AdamW``: Adam with decoupled weight decay.

    Algorithm: θ ← θ(1 − lr·λ) first, then Adam's update with the raw gradient (see ``Adam``).
    Paper: Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"
        (https://arxiv.org/abs/1711.05101).
    Args: as Adam, but weight_decay defaults to 1e-2 (torch's default).
    Raises: ValueError naming the invalid argument.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False, foreach=None,
                 capturable: bool = False, differentiable: bool = False, fused=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         foreach=foreach, maximize=maximize, capturable=capturable, differentiable=differentiable,
                         fused=fused, decoupled_weight_decay=True)
