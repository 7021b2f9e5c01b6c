"""RMSprop: divide the gradient by a running root-mean-square, as ``torch.optim.RMSprop``."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class RMSprop(Optimizer):
    """RMSprop, exactly as ``torch.optim.RMSprop``.

    Algorithm (per parameter θ with gradient g):
        g ← g + λθ                                       (weight_decay λ)
        s ← α·s + (1 − α)·g²                             (square_avg, s₀ = 0)
        if centered:  ḡ ← α·ḡ + (1 − α)·g;  d ← √(s − ḡ²) + ε   else  d ← √s + ε
        if μ > 0:     b ← μ·b + g/d;  θ ← θ − lr·b        (momentum_buffer, b₀ = 0)
        else:         θ ← θ − lr·g/d

    Paper: Hinton, Coursera "Neural Networks for Machine Learning", lecture 6e (2012);
        centered: Graves 2013, "Generating Sequences With Recurrent Neural Networks", eq. 38–45.
    Note: as torch, ε is added outside the square root and the momentum buffer holds g/d
        (lr applied afterwards), so changing lr mid-run rescales the whole buffer.

    Args:
        params: iterable of Parameters or of param-group dicts.
        lr: learning rate (≥ 0), default 1e-2.  alpha: smoothing constant (≥ 0), default 0.99.
        eps: ≥ 0, default 1e-8.  weight_decay: ≥ 0, default 0.  momentum: ≥ 0, default 0.
        centered: normalise by the estimated variance instead of the raw second moment.
        maximize: g ← −g first (ascent); capturable, foreach, differentiable: PyTorch's
        implementation switches (``Optimizer._switches``).
    State per parameter: ``step``, ``square_avg``, ``momentum_buffer`` (μ > 0), ``grad_avg`` (centered).
    Raises: ValueError naming the invalid argument (torch's messages).
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, capturable: bool = False,
                 foreach=None, maximize: bool = False, differentiable: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize,
                                      **self._switches(differentiable, capturable=capturable, foreach=foreach)))

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place; returns closure's loss if given."""
        loss = self._run_closure(closure)
        for group, p, g, state in self._params_with_grad():
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            wd, mu, centered = group["weight_decay"], group["momentum"], group["centered"]
            if not state:
                state["step"] = 0
                state["square_avg"] = np.zeros_like(p._data)
                if mu > 0:
                    state["momentum_buffer"] = np.zeros_like(p._data)
                if centered:
                    state["grad_avg"] = np.zeros_like(p._data)
            state["step"] += 1
            if wd != 0:
                g = g + wd * p._data
            s = state["square_avg"]
            s *= alpha
            s += (1 - alpha) * (g * g)
            if centered:
                ga = state["grad_avg"]
                ga += (1 - alpha) * (g - ga)                # lerp(ḡ, g, 1 − α), as torch
                d = np.sqrt(s - ga * ga) + eps
            else:
                d = np.sqrt(s) + eps
            if mu > 0:
                b = state["momentum_buffer"]
                b *= mu
                b += g / d
                p._data -= lr * b
            else:
                p._data -= lr * (g / d)
        return loss
