"""Gradient clipping, parameters as one vector, and parameter-group helpers (``torch.nn.utils`` names).

Source: torch.nn.utils.clip_grad_norm_ / clip_grad_value_ / parameters_to_vector /
vector_to_parameters; deck 000's regularised gradient
D = Δ/n + λΘ for j ≠ 0 and D = Δ/n for the bias column j = 0 (``param_groups_no_bias_decay``).
"""
from __future__ import annotations

import math

import numpy as np

from ...tensor import Tensor


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Rescale gradients in place so that their joint norm is at most ``max_norm``.

    total = ‖(‖g₁‖_p, ..., ‖g_k‖_p)‖_p (the p-norm of all gradients concatenated; p = inf: max |g|);
    every g ← g · min(1, max_norm / (total + 1e-6)), exactly as torch (the 1e-6 guards a zero norm).

    Args:
        parameters: a Tensor or an iterable of Tensors; those without ``.grad`` are skipped.
        max_norm: the largest allowed norm.  norm_type: p (float, or ``math.inf``), default 2.
        error_if_nonfinite: raise instead of scaling when the total norm is nan or inf.
    Returns: the total norm before clipping, a 0-d Tensor of the gradients' dtype (0.0 if no grads).
    Raises: RuntimeError for a non-finite total norm with error_if_nonfinite=True.
    """
    grads = _grads(parameters)
    if not grads:
        return Tensor(np.asarray(0.0, dtype=np.float32))
    dtype = grads[0]._data.dtype
    p = float(norm_type)
    if math.isinf(p):
        total = max(float(np.abs(g._data).max(initial=0.0)) for g in grads)
    else:
        norms = [float(np.sum(np.abs(g._data.astype(np.float64)) ** p) ** (1.0 / p)) for g in grads]
        total = float(np.sum(np.asarray(norms) ** p) ** (1.0 / p))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
                           "so it cannot be clipped. To disable this error and scale the gradients by the "
                           "non-finite norm anyway, set `error_if_nonfinite=False`")
    coef = min(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g._data *= g._data.dtype.type(coef)  # in place, keeping float32 float32
    return Tensor(np.asarray(total, dtype=dtype))


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient element in place to [−clip_value, clip_value].

    Args: parameters: a Tensor or an iterable of Tensors (those without ``.grad`` are skipped);
        clip_value: ≥ 0.
    Raises: ValueError for a negative clip_value.
    """
    if clip_value < 0:
        raise ValueError(f"clip_grad_value_: clip_value must be non-negative, got {clip_value}")
    for g in _grads(parameters):
        np.clip(g._data, -clip_value, clip_value, out=g._data)


def parameters_to_vector(parameters) -> Tensor:
    """The parameters flattened and concatenated, in order: (Σ numel,) (torch.nn.utils.parameters_to_vector).

    Differentiable (a cat of reshapes), like torch's. Args: an iterable of Tensors.
    """
    from ... import cat
    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Give each parameter, in order, the next numel values of the 1-D ``vec`` as its data
    (torch.nn.utils.vector_to_parameters: ``param.data = vec[a:b].view_as(param).data``, so the
    parameters then share vec's storage, as torch's do).

    Raises: TypeError if vec is not a Tensor (torch's message).
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__module__}.{type(vec).__name__}")
    pointer = 0
    for p in parameters:
        n = p.numel()
        p.data = vec[pointer:pointer + n].view_as(p).data
        pointer += n


def param_groups_no_bias_decay(model, weight_decay: float) -> list:
    """Two optimizer param groups: weights with ``weight_decay``, biases without (deck 000).

    Deck 000's regularised gradient is D = Δ/n + λΘ for the weights but D = Δ/n for the bias
    column (j = 0): biases are not penalised. Parameters whose name ends in ``bias`` go to the
    group with ``weight_decay = 0.0``; empty groups are left out.

    Example:
        opt = ember.optim.SGD(param_groups_no_bias_decay(model, 5e-4), lr=0.1, momentum=0.9)
    Returns: a list of ``{"params": [...], "weight_decay": float}`` dicts.
    Raises: ValueError for a negative weight_decay.
    """
    if weight_decay < 0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name.split(".")[-1] == "bias" else decay).append(p)
    return [g for g in ({"params": decay, "weight_decay": weight_decay},
                        {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
