"""Adadelta: step sizes from running averages of squared gradients and squared updates."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class Adadelta(Optimizer):
    """Adadelta, exactly as ``torch.optim.Adadelta`` (single-tensor path).

    Algorithm (per parameter θ with gradient g):
        g ← −g if maximize;  g ← g + λθ                  (weight_decay λ)
        v ← ρ·v + (1 − ρ)·g²                             (square_avg, v₀ = 0)
        Δ ← √(u + ε) / √(v + ε) · g                      (u: acc_delta, u₀ = 0)
        u ← ρ·u + (1 − ρ)·Δ²
        θ ← θ − lr·Δ

    Paper: Zeiler 2012, "ADADELTA: An Adaptive Learning Rate Method"
        (https://arxiv.org/abs/1212.5701).
    Note: as torch, an ``lr`` (default 1.0) scales Δ; the paper has none (lr = 1).

    Args:
        params: iterable of Parameters or of param-group dicts.
        lr: ≥ 0, default 1.0.  rho: ρ in [0, 1], default 0.9.  eps: ≥ 0, default 1e-6.
        weight_decay: λ ≥ 0, default 0.  maximize: ascend instead of descend (keyword only); foreach, capturable, differentiable:
        PyTorch's implementation switches (``Optimizer._switches``).
    State per parameter: ``step`` (int), ``square_avg``, ``acc_delta`` (parameter's shape and dtype).
    Raises: ValueError naming the invalid argument (torch's messages).
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, foreach=None, *, capturable: bool = False, maximize: bool = False,
                 differentiable: bool = False):
        self._check_args(lr=lr, eps=eps, weight_decay=weight_decay)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                                      **self._switches(differentiable, foreach=foreach, capturable=capturable)))

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place; returns closure's loss if given."""
        loss = self._run_closure(closure)
        for group, p, g, state in self._params_with_grad():
            lr, rho, eps = group["lr"], group["rho"], group["eps"]
            self._begin_step(state, p, "square_avg", "acc_delta")
            g = self._decayed_grad(group, p, g)
            v, u = state["square_avg"], state["acc_delta"]
            v *= rho
            v += (1 - rho) * (g * g)
            delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g
            u *= rho
            u += (1 - rho) * (delta * delta)
            p._data -= lr * delta
        return loss
