"""Adagrad: per-coordinate step sizes from the sum of squared gradients, as ``torch.optim.Adagrad``."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class Adagrad(Optimizer):
    """Adagrad, exactly as ``torch.optim.Adagrad``.

    Algorithm (per parameter θ with gradient g, step t = 1, 2, ...):
        g ← g + λθ                                   (weight_decay λ)
        η ← lr / (1 + (t − 1)·lr_decay)
        S ← S + g²                                   (sum, S₀ = initial_accumulator_value)
        θ ← θ − η · g / (√S + ε)

    Paper: Duchi, Hazan & Singer 2011, "Adaptive Subgradient Methods for Online Learning and
        Stochastic Optimization" (JMLR 12).
    Note: as torch, ε is added outside the square root and the state is created for every
        parameter at construction (``step`` = 0, ``sum`` filled with initial_accumulator_value).

    Args:
        params: iterable of Parameters or of param-group dicts.
        lr: ≥ 0, default 1e-2.  lr_decay: ≥ 0, default 0.  weight_decay: ≥ 0, default 0.
        initial_accumulator_value: ≥ 0, default 0.  eps: ≥ 0, default 1e-10.
    State per parameter: ``step`` (int), ``sum`` (same shape as the parameter).
    Raises: ValueError naming the invalid argument (torch's messages).
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, foreach=None, *, maximize: bool = False,
                 differentiable: bool = False, fused=None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize,
                                      **self._switches(differentiable, foreach=foreach, fused=fused)))
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p] = {"step": 0,
                                 "sum": np.full_like(p._data, group["initial_accumulator_value"])}

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place; returns closure's loss if given."""
        loss = self._run_closure(closure)
        for group, p, g, state in self._params_with_grad():
            lr, lr_decay, wd, eps = group["lr"], group["lr_decay"], group["weight_decay"], group["eps"]
            if not state:  # a group added after construction
                state["step"] = 0
                state["sum"] = np.full_like(p._data, group["initial_accumulator_value"])
            state["step"] += 1
            if wd != 0:
                g = g + wd * p._data
            clr = lr / (1 + (state["step"] - 1) * lr_decay)
            state["sum"] += g * g
            p._data -= clr * (g / (np.sqrt(state["sum"]) + eps))
        return loss
