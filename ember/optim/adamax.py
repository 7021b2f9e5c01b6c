"""Adamax: Adam with the infinity norm in place of the second moment."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class Adamax(Optimizer):
    """Adamax, exactly as ``torch.optim.Adamax`` (single-tensor path).

    Algorithm (per parameter θ with gradient g, step t = 1, 2, ...):
        g ← −g if maximize;  g ← g + λθ                  (weight_decay λ)
        m ← β1·m + (1 − β1)·g                            (exp_avg, m₀ = 0)
        u ← max(β2·u, |g| + ε)                           (exp_inf, u₀ = 0)
        θ ← θ − lr / (1 − β1ᵗ) · m / u

    Paper: Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization", section 7.1
        (https://arxiv.org/abs/1412.6980).
    Note: as torch, ε is added to |g| inside the maximum (the paper has no ε).

    Args:
        params: iterable of Parameters or of param-group dicts.
        lr: ≥ 0, default 2e-3.  betas: (β1, β2) each in [0, 1), default (0.9, 0.999).
        eps: ≥ 0, default 1e-8.  weight_decay: λ ≥ 0, default 0.
        maximize: ascend instead of descend (keyword only); foreach, capturable, differentiable:
        PyTorch's implementation switches (``Optimizer._switches``).
    State per parameter: ``step`` (int), ``exp_avg``, ``exp_inf``.
    Raises: ValueError naming the invalid argument (torch's messages).
    """

    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, foreach=None, *, maximize: bool = False, differentiable: bool = False,
                 capturable: bool = False):
        self._check_args(lr=lr, eps=eps, betas=betas, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      maximize=maximize,
                                      **self._switches(differentiable, foreach=foreach, capturable=capturable)))

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place; returns closure's loss if given."""
        loss = self._run_closure(closure)
        for group, p, g, state in self._params_with_grad():
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            t = self._begin_step(state, p, "exp_avg", "exp_inf")
            g = self._decayed_grad(group, p, g)
            m, u = state["exp_avg"], state["exp_inf"]
            m += (1 - beta1) * (g - m)                       # lerp(m, g, 1 − β1), as torch
            u *= beta2
            np.maximum(u, np.abs(g) + eps, out=u)
            p._data -= lr / (1 - beta1 ** t) * (m / u)
        return loss
