"""Rprop and ASGD, exactly as ``torch.optim.Rprop`` / ``torch.optim.ASGD`` (single-tensor paths)."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class Rprop(Optimizer):
    """Resilient backpropagation: each weight's own step size grows by η+ while its gradient keeps
    its sign and shrinks by η− when the sign flips; the update uses only the gradient's sign.

    Algorithm (per parameter θ, gradient g, previous gradient g', step sizes Δ₀ = lr):
        g ← −g if maximize
        s = sign(g·g');  Δ ← clamp(Δ·(η+ if s > 0, η− if s < 0, 1 if s = 0), Δmin, Δmax)
        g ← 0 where s < 0 (no step after a sign flip);  θ ← θ − sign(g)·Δ;  g' ← g
    Paper: Riedmiller & Braun 1993, "A direct adaptive method for faster backpropagation learning".
    Args: params, lr=1e-2, etas=(η−, η+)=(0.5, 1.2), step_sizes=(Δmin, Δmax)=(1e-6, 50); keyword
        only: capturable, foreach, maximize=False, differentiable (``Optimizer._switches``).
    State per parameter: ``step``, ``prev``, ``step_size``.
    Raises: ValueError for a negative lr or etas not with 0 < η− < 1 < η+ (torch's messages).
    """

    def __init__(self, params, lr: float = 1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable: bool = False,
                 foreach=None, maximize: bool = False, differentiable: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        super().__init__(params, dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes), maximize=maximize,
                                      **self._switches(differentiable, foreach=foreach, capturable=capturable)))

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place; returns closure's loss if given."""
        loss = self._run_closure(closure)
        for group, p, g, state in self._params_with_grad():
            (eta_minus, eta_plus), (lo, hi) = group["etas"], group["step_sizes"]
            if not state:
                state["step"] = 0
                state["prev"] = np.zeros_like(p._data)
                state["step_size"] = np.full_like(p._data, group["lr"])
            state["step"] += 1
            sign = np.sign(g * state["prev"])
            factor = np.where(sign > 0, eta_plus, np.where(sign < 0, eta_minus, 1)).astype(p._data.dtype)
            np.clip(state["step_size"] * factor, lo, hi, out=state["step_size"])
            g = np.where(factor == eta_minus, 0, g).astype(p._data.dtype)
            p._data -= np.sign(g) * state["step_size"]
            state["prev"][...] = g
        return loss


def _scalar(x: float) -> float:
    """x rounded to the default float dtype, as PyTorch's 0-d state tensors hold it."""
    from ..tensor import _DEFAULT_FLOAT
    return float(np.asarray(x, _DEFAULT_FLOAT))


class ASGD(Optimizer):
    """Averaged SGD: SGD with a decaying step size and a running average ``ax`` of the iterates.

    Algorithm (per parameter θ, step t = 1, 2, ...; η₁ = lr, μ₁ = 1):
        g ← −g if maximize;  g ← g + λ_wd·θ
        θ ← θ·(1 − λ·η_t);  θ ← θ − η_t·g
        ax ← θ if μ_t = 1 else ax + μ_t·(θ − ax)
        η_{t+1} = lr / (1 + λ·lr·t)^α;  μ_{t+1} = 1 / max(1, t − t0)
    Paper: Polyak & Juditsky 1992, "Acceleration of stochastic approximation by averaging".
    Args: params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach, maximize=False,
        differentiable, capturable (PyTorch's order).
    State per parameter: ``step``, ``eta``, ``mu``, ``ax``. As PyTorch, eta and mu are kept in the
    default float dtype (float32: 0.01 is stored as 0.0099999998), which the update then uses.
    Raises: ValueError for a negative lr or weight_decay (torch's messages).
    """

    def __init__(self, params, lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6,
                 weight_decay: float = 0.0, foreach=None, maximize: bool = False, differentiable: bool = False,
                 capturable: bool = False):
        self._check_args(lr=lr, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                                      maximize=maximize,
                                      **self._switches(differentiable, foreach=foreach, capturable=capturable)))

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place; returns closure's loss if given."""
        loss = self._run_closure(closure)
        for group, p, g, state in self._params_with_grad():
            lr, lambd, alpha, t0 = group["lr"], group["lambd"], group["alpha"], group["t0"]
            if not state:
                state.update(step=0, eta=_scalar(lr), mu=1.0, ax=np.zeros_like(p._data))
            state["step"] += 1
            t = state["step"]
            if group["weight_decay"] != 0:
                g = g + group["weight_decay"] * p._data
            eta = state["eta"]
            p._data *= 1 - lambd * eta
            p._data -= eta * g
            if state["mu"] != 1:
                state["ax"] += (p._data - state["ax"]) * state["mu"]
            else:
                state["ax"][...] = p._data
            state["eta"] = _scalar(lr / ((1 + lambd * lr * t) ** alpha))
            state["mu"] = _scalar(1 / max(1, t - t0))
        return loss
