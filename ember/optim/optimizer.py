"""``Optimizer``: parameter groups, per-parameter state, ``zero_grad`` and ``state_dict``, as torch."""
from __future__ import annotations

import copy
import warnings

import numpy as np

from ..tensor import Tensor


class Optimizer:
    """Base class: holds ``param_groups`` (list of dicts with 'params' and hyper-parameters) and
    ``state`` (dict Parameter -> dict of ndarrays). Subclasses implement ``step()``.

    Args:
        params: an iterable of Parameters, or of dicts ``{"params": [...], "lr": ..., ...}``
            whose missing options take ``defaults``.
        defaults: the optimizer's hyper-parameters.
    Raises: ValueError for an empty parameter list or a parameter in two groups.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.state: dict = {}
        self.param_groups: list = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors "
                            f"or dicts, but got {type(params).__name__}")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict) -> None:
        group = dict(group)
        ps = group["params"]
        group["params"] = [ps] if isinstance(ps, Tensor) else list(ps)
        if len({id(p) for p in group["params"]}) != len(group["params"]):   # PyTorch's warning, word for word
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this will "
                          "cause an error; see github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient (to None by default, as torch)."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad._data[...] = 0

    def step(self, closure=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def _params_with_grad(self):
        """Yield (group, parameter, gradient ndarray, state dict) for each parameter with a grad (the
        gradient negated, a new array, when ``group["maximize"]``: ascent, as PyTorch's maximize);
        once the caller has updated it, bump the parameter's version (PyTorch's in-place rule: a
        pending graph that saved the old weights refuses to backward through them)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    g = p.grad._data
                    yield group, p, (-g if group.get("maximize") else g), self.state.setdefault(p, {})
                    p._vc[0] += 1

    @staticmethod
    def _switches(differentiable=False, **switches) -> dict:
        """PyTorch's implementation switches (foreach, fused, capturable, differentiable), kept in
        the param groups under its names so that scripts passing them run and state_dicts carry
        them. foreach/fused/capturable choose how PyTorch runs the same rule (per tensor, batched,
        CUDA graphs): ember has one implementation, so they change nothing.
        Raises: NotImplementedError for differentiable=True (autograd through the step itself)."""
        if differentiable:
            raise NotImplementedError("differentiable=True (autograd through the optimizer step) is not supported "
                                      "by ember")
        return dict(switches, differentiable=False)

    @staticmethod
    def _check_args(lr=0.0, eps=0.0, betas=(0.0, 0.0), weight_decay=0.0, **others) -> None:
        """Raise torch's ValueError for a negative lr/eps/weight_decay, a beta outside [0, 1), or
        a negative value among ``others`` (named as torch names them, e.g. momentum_decay)."""
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        for name, value in others.items():
            if not 0.0 <= value:
                raise ValueError(f"Invalid {name} value: {value}")

    @staticmethod
    def _begin_step(state: dict, p, *buffers: str) -> int:
        """On a parameter's first step create ``state["step"] = 0`` and a zero array (the
        parameter's shape and dtype) per name in ``buffers``; then count this step. Returns t."""
        if not state:
            state["step"] = 0
            for name in buffers:
                state[name] = np.zeros_like(p._data)
        state["step"] += 1
        return state["step"]

    @staticmethod
    def _update_moments(m: np.ndarray, v: np.ndarray, g: np.ndarray, beta1: float, beta2: float) -> None:
        """Adam's moment estimates in place, in torch's order: m ← lerp(m, g, 1 − β1),
        v ← β2·v + (1 − β2)·g² (Adam, NAdam, RAdam)."""
        m += (1 - beta1) * (g - m)
        v *= beta2
        v += (1 - beta2) * (g * g)

    @staticmethod
    def _decayed_grad(group: dict, p, g: np.ndarray) -> np.ndarray:
        """The gradient a step uses, as torch's single-tensor optimizers prepare it (already negated
        by ``_params_with_grad`` if ``group["maximize"]``): if weight_decay λ ≠ 0, either θ ← θ(1 − lr·λ) in place
        (``group.get("decoupled_weight_decay")``, AdamW's rule) or g ← g + λθ (L2). Never
        writes into ``g`` (it is the parameter's .grad)."""
        wd = group["weight_decay"]
        if wd != 0:
            if group.get("decoupled_weight_decay"):
                p._data *= 1 - group["lr"] * wd
            else:
                g = g + wd * p._data
        return g

    @staticmethod
    def _run_closure(closure):
        """Call ``closure()`` (which re-evaluates the model and returns the loss) with grad enabled."""
        if closure is None:
            return None
        from ..autograd import enable_grad
        with enable_grad():
            return closure()

    def state_dict(self) -> dict:
        """{'state': {index: {name: ndarray}}, 'param_groups': [{..., 'params': [indices]}]} —
        parameters are referred to by their position, as in torch."""
        index = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            packed["params"] = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {index[id(p)]: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                 for p, s in ((p, self.state[p]) for g in self.param_groups for p in g["params"]
                              if p in self.state)}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and buffers saved by ``state_dict``.

        Raises: ValueError if the number of groups or of parameters per group differs, or if a
            saved buffer's shape differs from its parameter's (naming the parameter and buffer).
        """
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError("loaded state dict has a different number of parameter groups or "
                             "parameters than this optimizer")
        params = {}
        for saved, own in zip(groups, self.param_groups):
            for i, p in zip(saved["params"], own["params"]):
                params[i] = p
            own.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            for k, v in s.items():
                if isinstance(v, np.ndarray) and v.ndim and v.shape != p.shape:
                    raise ValueError(f"loaded optimizer state for parameter {int(i)} has '{k}' of shape "
                                     f"{v.shape}, but the parameter has shape {p.shape}")
            self.state[p] = {k: (np.array(v, dtype=p.dtype) if isinstance(v, np.ndarray) else v)
                             for k, v in s.items()}
