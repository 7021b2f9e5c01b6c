"""RAdam: Adam whose adaptive step is switched on once its variance is tractable."""
from __future__ import annotations

import math

import numpy as np

from .optimizer import Optimizer


class RAdam(Optimizer):
    """RAdam, exactly as ``torch.optim.RAdam`` (single-tensor path).

    Algorithm (per parameter θ with gradient g, step t = 1, 2, ...):
        g ← −g if maximize
        if λ ≠ 0:  θ ← θ(1 − lr·λ) if decoupled_weight_decay  else  g ← g + λθ
        m ← β1·m + (1 − β1)·g;   v ← β2·v + (1 − β2)·g²
        m̂ ← m / (1 − β1ᵗ)
        ρ∞ ← 2/(1 − β2) − 1;     ρₜ ← ρ∞ − 2t·β2ᵗ/(1 − β2ᵗ)
        if ρₜ > 5:  r ← √((ρₜ − 4)(ρₜ − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρₜ))
                    θ ← θ − lr · m̂ · √(1 − β2ᵗ)/(√v + ε) · r
        else:       θ ← θ − lr · m̂                        (plain momentum SGD)

    Paper: Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond"
        (https://arxiv.org/abs/1908.03265).
    Note: as torch, ε is added to √v before the bias correction √(1 − β2ᵗ) multiplies the step,
        and the switch is ρₜ > 5 (the paper's listing says 4).

    Args:
        params: iterable of Parameters or of param-group dicts.
        lr: ≥ 0, default 1e-3.  betas: (β1, β2) each in [0, 1), default (0.9, 0.999).
        eps: ≥ 0, default 1e-8.  weight_decay: λ ≥ 0, default 0.
        decoupled_weight_decay: default False.  maximize: ascend instead (keyword only); foreach, capturable,
        differentiable: PyTorch's implementation switches (``Optimizer._switches``).
    State per parameter: ``step`` (int), ``exp_avg``, ``exp_avg_sq``.
    Raises: ValueError naming the invalid argument (torch's messages).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False, *, foreach=None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False):
        self._check_args(lr=lr, eps=eps, betas=betas, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                                      **self._switches(differentiable, foreach=foreach, capturable=capturable)))

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place; returns closure's loss if given."""
        loss = self._run_closure(closure)
        for group, p, g, state in self._params_with_grad():
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            t = self._begin_step(state, p, "exp_avg", "exp_avg_sq")
            g = self._decayed_grad(group, p, g)
            m, v = state["exp_avg"], state["exp_avg_sq"]
            self._update_moments(m, v, g, beta1, beta2)
            bias_correction2 = 1 - beta2 ** t
            m_hat = m / (1 - beta1 ** t)
            rho_inf = 2 / (1 - beta2) - 1
            rho_t = rho_inf - 2 * t * beta2 ** t / bias_correction2
            if rho_t > 5.0:
                rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                p._data -= m_hat * lr * (math.sqrt(bias_correction2) / (np.sqrt(v) + eps)) * rect
            else:
                p._data -= m_hat * lr
        return loss
