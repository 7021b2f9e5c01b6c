"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from __future__ import annotations

from ..kernels import mode, numba_optim
from .optimizer import Optimizer


class SGD(Optimizer):
    """SGD, exactly as ``torch.optim.SGD``.

    Algorithm (per parameter θ with gradient g, at step t):
        g ← −g if maximize
        g ← g + λθ                              (weight_decay λ: the L2 term of deck 000's D)
        if μ ≠ 0:  b ← g at t = 1, else b ← μb + (1 − τ)g      (momentum μ, dampening τ)
                   g ← g + μb if nesterov else b
        θ ← θ − lr·g

    Paper: Sutskever et al. 2013, "On the importance of initialization and momentum".
    Args: params, lr (required, ≥ 0), momentum=0, dampening=0, weight_decay=0, nesterov=False;
        keyword only: maximize=False (g ← −g first: ascent), foreach, fused, differentiable
        (PyTorch's implementation switches: ``Optimizer._switches``).
    Note: as torch (and unlike Sutskever), lr multiplies the whole buffer at each step, and the
        buffer starts as g itself (not (1 − τ)g). Deck 002 covers momentum and Nesterov.
    Raises: ValueError for a negative lr/momentum/weight_decay or nesterov without momentum.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False, foreach=None,
                 differentiable: bool = False, fused=None):
        if lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize,
                                      **self._switches(differentiable, foreach=foreach, fused=fused)))

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place; returns closure's loss if given.

        Each parameter goes through ``update`` (the formula above), or its compiled twin
        ``ember.kernels.numba_optim.sgd_update`` when kernels are on and it covers the
        arguments (``numba_optim.covers``): bit-identical results.
        """
        loss = self._run_closure(closure)
        for group in self.param_groups:
            lr, mu, tau = group["lr"], group["momentum"], group["dampening"]
            wd, nesterov, maximize = group["weight_decay"], group["nesterov"], bool(group.get("maximize"))
            compiled = mode() == "fast" and numba_optim.AVAILABLE and numba_optim.plain_scalars(lr, wd, mu, tau)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.setdefault(p, {}) if mu != 0 else None
                args = (p._data, p.grad._data, None if state is None else state.get("momentum_buffer"), lr, wd, mu,
                        tau, nesterov, maximize)
                buf = numba_optim.sgd_update(*args) if compiled and numba_optim.covers_arrays(*args[:3]) else update(*args)
                if state is not None:
                    state["momentum_buffer"] = buf
                p._vc[0] += 1   # an in-place update: a graph that saved p refuses to use it
        return loss


def update(p, g, buf, lr, wd, mu, tau, nesterov, maximize):
    """One parameter's SGD update, in place: the reference (SGD's formula, one NumPy call a term).

    Args: p (ndarray θ, updated in place), g (its gradient, same shape), buf (the momentum
        buffer b, or None before the first step), lr, wd (λ), mu (μ), tau (τ), nesterov, maximize.
    Returns: the momentum buffer (``g`` copied on the first step with momentum; None without
        momentum). p ← p − lr·d, d as in ``SGD``'s docstring.
    """
    g = -g if maximize else g
    if wd != 0:
        g = g + wd * p
    if mu != 0:
        if buf is None:
            buf = g.copy()
        else:
            buf *= mu
            buf += (1 - tau) * g if tau else g
        g = g + mu * buf if nesterov else buf
    p -= lr * g
    return buf

