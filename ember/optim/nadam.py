"""NAdam: Adam with Nesterov momentum and Dozat's momentum schedule."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class NAdam(Optimizer):
    """NAdam, exactly as ``torch.optim.NAdam`` (single-tensor path).

    Algorithm (per parameter θ with gradient g, step t = 1, 2, ...; ψ = momentum_decay):
        g ← −g if maximize
        if λ ≠ 0:  θ ← θ(1 − lr·λ) if decoupled_weight_decay  else  g ← g + λθ
        μₜ ← β1·(1 − ½·0.96^(t·ψ)),  μₜ₊₁ ← β1·(1 − ½·0.96^((t+1)·ψ))
        Πₜ ← Πₜ₋₁·μₜ                                     (mu_product, Π₀ = 1)
        m ← β1·m + (1 − β1)·g;   v ← β2·v + (1 − β2)·g²
        d ← √(v / (1 − β2ᵗ)) + ε
        θ ← θ − lr·(1 − μₜ)/(1 − Πₜ) · g/d − lr·μₜ₊₁/(1 − Πₜ·μₜ₊₁) · m/d

    Paper: Dozat 2016, "Incorporating Nesterov Momentum into Adam" (ICLR workshop);
        decoupled weight decay: Loshchilov & Hutter 2019 (https://arxiv.org/abs/1711.05101).
    Note: as torch at its default dtype, Π (``mu_product``) is kept as a float32 scalar, so
        trajectories equal torch's to rounding even for float64 parameters.

    Args:
        params: iterable of Parameters or of param-group dicts.
        lr: ≥ 0, default 2e-3.  betas: (β1, β2) each in [0, 1), default (0.9, 0.999).
        eps: ≥ 0, default 1e-8.  weight_decay: λ ≥ 0, default 0.
        momentum_decay: ψ ≥ 0, default 4e-3.  decoupled_weight_decay: default False.
        maximize: ascend instead of descend (keyword only); foreach, capturable, differentiable:
        PyTorch's implementation switches (``Optimizer._switches``).
    State per parameter: ``step`` (int), ``mu_product`` (np.float32), ``exp_avg``, ``exp_avg_sq``.
    Raises: ValueError naming the invalid argument (torch's messages).
    """

    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach=None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False):
        self._check_args(lr=lr, eps=eps, betas=betas, weight_decay=weight_decay,
                         momentum_decay=momentum_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                                      **self._switches(differentiable, foreach=foreach, capturable=capturable)))

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place; returns closure's loss if given."""
        loss = self._run_closure(closure)
        for group, p, g, state in self._params_with_grad():
            lr, (beta1, beta2), eps, psi = group["lr"], group["betas"], group["eps"], group["momentum_decay"]
            t = self._begin_step(state, p, "exp_avg", "exp_avg_sq")
            g = self._decayed_grad(group, p, g)
            mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
            mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
            state["mu_product"] = np.float32(state.get("mu_product", 1.0) * np.float32(mu))
            mu_product = float(state["mu_product"])
            m, v = state["exp_avg"], state["exp_avg_sq"]
            self._update_moments(m, v, g, beta1, beta2)
            denom = np.sqrt(v / (1 - beta2 ** t)) + eps
            p._data -= lr * (1.0 - mu) / (1.0 - mu_product) * (g / denom)
            p._data -= lr * mu_next / (1.0 - mu_product * mu_next) * (m / denom)
        return loss
