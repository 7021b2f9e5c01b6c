"""Module backward hooks: ``register_full_backward_hook`` and ``register_full_backward_pre_hook``.

PyTorch's recipe (``torch.utils.hooks.BackwardHook``), with ember's user-level ``autograd.Function``:
one forward call of a hooked module puts an identity node on each side of it,

    inputs ──► _HookInputs ──► module.forward ──► _HookOutputs ──► outputs

Backward meets ``_HookOutputs`` first: its gradients are ∂L/∂outputs (``grad_output``); the
pre-hooks run there (``hook(module, grad_output)``, a tuple returned replaces them). Then the
module's own nodes run, and ``_HookInputs`` receives ∂L/∂inputs (``grad_input``): the full hooks
run there (``hook(module, grad_input, grad_output)``, a tuple returned replaces grad_input, which
flows on to the inputs). When no input requires a gradient there is no ``_HookInputs``, and the
full hooks run at ``_HookOutputs`` with every grad_input None, after PyTorch's warning.

grad_input has one entry per positional argument (None for a non-Tensor or a Tensor that needs no
gradient); grad_output one per output (the output itself, or each entry of an output tuple: None
for a non-Tensor or an output no gradient reached). A hook returning a tuple of another length
raises PyTorch's RuntimeError. Source: torch.nn.Module.register_full_backward_hook.
"""
from __future__ import annotations

import os
import sys
import warnings

from .. import autograd
from ..tensor import Tensor
from .._api.semantics import _user_apply

_NO_INPUT_WARNING = ("Full backward hook is firing when gradients are computed with respect to module outputs since no "
                     "inputs require gradients. See https://docs.pytorch.org/docs/main/generated/"
                     "torch.nn.Module.html#torch.nn.Module.register_full_backward_hook for more details.")


def _differentiable(t) -> bool:
    return isinstance(t, Tensor) and t.requires_grad and t.dtype.kind == "f"


class BackwardHook:
    """The hooks of one forward call of ``module``: ``wrap_inputs(args)`` before its forward,
    ``wrap_outputs(output)`` after it (and after its forward hooks)."""

    def __init__(self, module, full: list, pre: list):
        self.module, self.full, self.pre = module, full, pre
        self.n_inputs, self.input_index, self.n_outputs, self.output_index = 0, [], 0, []
        self.grad_output = None

    def wrap_inputs(self, args: tuple) -> tuple:
        """``args`` with each Tensor that needs a gradient passed through one ``_HookInputs`` node."""
        self.n_inputs = len(args)
        self.input_index = [i for i, a in enumerate(args) if _differentiable(a)]
        if not self.input_index or not self.full:
            return args
        return tuple(_through(_HookInputs, self, args, self.input_index))

    def wrap_outputs(self, output):
        """``output`` (a Tensor or a tuple) with its Tensors that need a gradient passed through one
        ``_HookOutputs`` node; anything else is returned as it is (no hook will run)."""
        single = isinstance(output, Tensor)
        items = (output,) if single else output
        if not isinstance(items, tuple):
            return output
        self.n_outputs = len(items)
        self.output_index = [i for i, o in enumerate(items) if _differentiable(o)]
        if not self.output_index:
            return output
        items = _through(_HookOutputs, self, items, self.output_index)
        return items[0] if single else output._make(items) if hasattr(output, "_make") else tuple(items)

    def outputs_reached(self, grads: tuple) -> tuple:
        """At ``_HookOutputs``: run the pre-hooks on grad_output (each may replace it), keep it for
        the full hooks, and run those now if no input needs a gradient. Returns the gradients
        to send into the module."""
        grad_output = _pack(grads, self.output_index, self.n_outputs)
        for hook in self.pre:
            result = hook(self.module, grad_output)
            if result is not None:
                grad_output = _checked(result, self.n_outputs, "grad_output")
        self.grad_output = grad_output
        if self.full and not self.input_index:
            warnings.warn(_NO_INPUT_WARNING, UserWarning, stacklevel=_outside_ember())
            for hook in self.full:
                hook(self.module, (None,) * self.n_inputs, grad_output)
        return tuple(grad_output[i] for i in self.output_index)

    def inputs_reached(self, grads: tuple) -> tuple:
        """At ``_HookInputs``: run the full hooks on grad_input (each may replace it). Returns
        the gradients to send on to the inputs."""
        grad_input = _pack(grads, self.input_index, self.n_inputs)
        for hook in self.full:
            result = hook(self.module, grad_input, self.grad_output)
            if result is not None:
                grad_input = _checked(result, self.n_inputs, "grad_input")
        return tuple(grad_input[i] for i in self.input_index)


_EMBER = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _outside_ember() -> int:
    """The ``stacklevel`` of the first caller outside the ember package (the user's ``backward()``
    line, where PyTorch's warning points), for a warning raised by the caller of this function."""
    f, level = sys._getframe(2), 2
    while f is not None and f.f_code.co_filename.startswith(_EMBER):
        f, level = f.f_back, level + 1
    return level


def _as_tuple(x) -> tuple:
    return x if isinstance(x, tuple) else (x,)


def _through(fn, state, items, index: list) -> list:
    """``items`` with the entries at ``index`` replaced by their pass through one ``fn`` node."""
    items = list(items)
    for i, t in zip(index, _as_tuple(fn.apply(state, *(items[i] for i in index)))):
        items[i] = t
    return items


def _pack(grads, index: list, n: int) -> tuple:
    """One entry per argument (or output): the gradient of each hooked one, None for the others."""
    out = [None] * n
    for i, g in zip(index, grads):
        out[i] = g
    return tuple(out)


def _checked(result, n: int, what: str) -> tuple:
    result = _as_tuple(result)
    if len(result) != n:
        raise RuntimeError(f"Backward hook returned an invalid number of {what}, got {len(result)}, but expected {n}")
    return result


class _HookInputs(autograd.Function):
    """Identity on the hooked Tensor inputs; backward runs the full hooks on ∂L/∂inputs."""
    apply = classmethod(_user_apply)

    @staticmethod
    def forward(ctx, state, *inputs):
        ctx.state = state
        return inputs if len(inputs) > 1 else inputs[0]

    @staticmethod
    def backward(ctx, *grads):
        return (None, *ctx.state.inputs_reached(grads))


class _HookOutputs(autograd.Function):
    """Identity on the hooked Tensor outputs; backward runs the pre-hooks on ∂L/∂outputs."""
    apply = classmethod(_user_apply)

    @staticmethod
    def forward(ctx, state, *outputs):
        ctx.state = state
        ctx.set_materialize_grads(False)   # an output no gradient reached: None in grad_output, as torch
        return outputs if len(outputs) > 1 else outputs[0]

    @staticmethod
    def backward(ctx, *grads):
        return (None, *ctx.state.outputs_reached(grads))
