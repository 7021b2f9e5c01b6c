"""``Module`` and ``Parameter``: the containers that hold a model's weights, as in PyTorch.

Assigning a Parameter or a Module to an attribute registers it, so ``parameters()``,
``named_parameters()`` and ``state_dict()`` find it under its dotted name (``features.0.weight``),
the same keys PyTorch uses.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from ..autograd import is_grad_enabled
from ..kernels import fusion as _fusion
from ..tensor import Tensor
from ._validation import ShapeError


class Parameter(Tensor):
    """A Tensor that is a module's weight: ``requires_grad=True`` and found by ``parameters()``."""
    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data._data if isinstance(data, Tensor) else np.asarray(data), requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        """A Parameter with a copy of the values and the same requires_grad, and no .grad: as
        PyTorch's (copy.deepcopy(model) gives layers without the original's gradients)."""
        if id(self) not in memo:
            memo[id(self)] = type(self)(self._data.copy(), self.requires_grad)
        return memo[id(self)]


class ModuleError(ShapeError):
    """A bad input caught inside a module; the message is prefixed with the module's path,
    e.g. ``features.3 (Conv2d): expected input with 6 channels, got 3``."""

    def __init__(self, message, module):
        super().__init__(message)
        self.message, self.module, self.path = message, module, []

    def __str__(self):
        kind = type(self.module).__name__
        where = f"{'.'.join(self.path)} ({kind})" if self.path else kind
        return f"{where}: {self.message}"


class RemovableHandle:
    """What ``register_forward_hook`` and ``register_forward_pre_hook`` return: ``remove()``
    unregisters the hook (twice is harmless); also a context manager that removes it on exit
    (torch.utils.hooks.RemovableHandle)."""
    _next_id = 0

    def __init__(self, hooks):
        self.hooks_dict_ref, self.id = hooks, RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self.hooks_dict_ref.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class _IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` returns (PyTorch's ``_IncompatibleKeys``): the model's keys the
    state lacked and the state's keys the model lacks."""
    missing_keys: list
    unexpected_keys: list

    def __repr__(self):
        return "<All keys matched successfully>" if not (self.missing_keys or self.unexpected_keys) else (
            f"_IncompatibleKeys(missing_keys={self.missing_keys}, unexpected_keys={self.unexpected_keys})")

    __str__ = __repr__


class Module:
    """Base class of every layer and model.

    Subclasses set attributes in ``__init__`` (Parameters and sub-Modules are registered) and
    define ``forward``; call the module, not ``forward``. ``training`` is True after ``train()``
    and False after ``eval()``.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        """torch.nn.Module's rules: a Parameter or Module value is registered (and any plain
        attribute of that name dropped, so ``self.down = None`` then ``self.down = Sequential(...)``
        gives the Sequential); a Tensor given to a registered buffer's name updates the buffer;
        anything else (None included) becomes a plain attribute.
        Raises: TypeError for a value of the wrong kind given to a registered parameter's, child
            module's or buffer's name (None aside), as torch."""
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError("cannot assign attributes before Module.__init__() call")
        if isinstance(value, Tensor) and not isinstance(value, Parameter) and name in self._buffers:
            self._buffers[name] = value
            return
        if value is not None and not isinstance(value, Parameter) and name in self._parameters:
            raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                            "(ember.nn.Parameter or None expected)")
        if value is not None and not isinstance(value, (Module, Parameter)) and name in self._modules:
            raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                            "(ember.nn.Module or None expected)")
        if value is not None and not isinstance(value, Tensor) and name in self._buffers:
            raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                            "(ember.Tensor or None expected)")
        for store in (self._parameters, self._modules, self._buffers):
            store.pop(name, None)
        if isinstance(value, Parameter):
            d.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            d.pop(name, None)
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __delattr__(self, name):
        """``del self.name`` for a parameter, buffer or child module too (torch.nn.Module's)."""
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_modules", "_buffers"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def _check_new_name(self, kind: str, name, store: str) -> None:
        """torch's checks on a name given to register_buffer/add_module (TypeError, KeyError)."""
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f'{kind} name can\'t be empty or contain ".", got: {name!r}')
        if name not in getattr(self, store) and (name in self.__dict__ or hasattr(type(self), name)
                                                 or any(name in d for d in (self._parameters, self._modules,
                                                                            self._buffers))):
            raise KeyError(f"attribute '{name}' already exists")

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Register a non-trainable tensor (e.g. running statistics) as ``self.<name>``, as
        torch.nn.Module.register_buffer: saved in ``state_dict`` unless ``persistent=False``;
        listed by ``buffers()``/``named_buffers()`` either way; cast by ``to()``.

        Args: name (str); tensor: a Tensor, an ndarray (wrapped) or None; persistent (bool).
        Raises: TypeError for a non-string name or another kind of value; KeyError for an empty
            name, one with ".", or one already used by another attribute.
        """
        self._check_new_name("buffer", name, "_buffers")
        if tensor is not None and not isinstance(tensor, (Tensor, np.ndarray)):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(Tensor or None required)")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor if tensor is None or isinstance(tensor, Tensor) else Tensor(tensor)
        non_persistent = self.__dict__.setdefault("_non_persistent_buffers_set", set())
        (non_persistent.discard if persistent else non_persistent.add)(name)

    def add_module(self, name: str, module) -> None:
        """Register ``module`` (a Module or None) as the child ``name`` (torch.nn.Module.add_module):
        reachable as ``self.<name>``, in ``children()``, ``parameters()`` and ``state_dict()``.

        Raises: TypeError if module is not a Module (or None) or name not a string; KeyError for
            an empty name, one with ".", or one already used by another attribute.
        """
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_new_name("module", name, "_modules")
        self.__dict__.pop(name, None)
        self._modules[name] = module

    register_module = add_module

    def register_parameter(self, name: str, param) -> None:
        """Register ``param`` (a Parameter or None) as ``self.<name>`` (torch.nn.Module.register_parameter).

        Raises: TypeError for another kind of value or a non-string name; KeyError for an empty
            name, one with ".", or one already used by another attribute.
        """
        self._check_new_name("parameter", name, "_parameters")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(ember.nn.Parameter or None required)")
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    def get_submodule(self, target: str) -> "Module":
        """The submodule at the dotted path ``target`` ("" is self), as torch.nn.Module.get_submodule.
        Raises AttributeError naming the missing part."""
        module = self
        for part in target.split(".") if target else ():
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no attribute `{part}`")
            module = child
        return module

    def apply(self, fn) -> "Module":
        """Call ``fn(m)`` on every submodule, children first, then on self; return self
        (torch.nn.Module.apply, the usual way to initialise weights: ``model.apply(init_fn)``)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    # ---- hooks (torch.nn.Module's forward pre-hooks and forward hooks) ------------------
    def register_forward_pre_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False):
        """Call ``hook(module, args)`` (``hook(module, args, kwargs)`` with ``with_kwargs``) before
        each forward; a non-None result replaces the positional inputs (a single value is wrapped
        in a tuple; with_kwargs: an ``(args, kwargs)`` pair). Returns a handle whose ``remove()``
        unregisters it. Hooked modules are never fused (ember.kernels.fusion), so hooks always run.
        Source: torch.nn.Module.register_forward_pre_hook."""
        return self._add_hook("_forward_pre_hooks", hook, prepend, with_kwargs)

    def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False):
        """Call ``hook(module, args, output)`` (``hook(module, args, kwargs, output)`` with
        ``with_kwargs``) after each forward; a non-None result replaces the output. Returns a
        handle whose ``remove()`` unregisters it; ``always_call`` runs it even when forward raised.
        Source: torch.nn.Module.register_forward_hook."""
        return self._add_hook("_forward_hooks", hook, prepend, with_kwargs, always_call)

    def register_full_backward_hook(self, hook, prepend: bool = False):
        """Call ``hook(module, grad_input, grad_output)`` when the gradients with respect to this
        module's inputs have been computed; a tuple returned replaces grad_input. grad_input: one
        entry per positional argument (None for a non-Tensor or one needing no gradient);
        grad_output: one per output. When no input needs a gradient it runs with grad_output, every
        grad_input None, after PyTorch's UserWarning. Returns a handle whose ``remove()``
        unregisters it. Source: torch.nn.Module.register_full_backward_hook (mechanics:
        ``ember/nn/_backward_hooks.py``)."""
        return self._add_hook("_backward_hooks", hook, prepend)

    def register_full_backward_pre_hook(self, hook, prepend: bool = False):
        """Call ``hook(module, grad_output)`` when the gradients with respect to this module's
        outputs have been computed, before they flow into the module; a tuple returned replaces
        grad_output. Source: torch.nn.Module.register_full_backward_pre_hook."""
        return self._add_hook("_backward_pre_hooks", hook, prepend)

    def _add_hook(self, store, hook, prepend, *flags):
        hooks = self.__dict__.get(store)
        if hooks is None:
            hooks = OrderedDict()
            object.__setattr__(self, store, hooks)
        handle = RemovableHandle(hooks)
        hooks[handle.id] = (hook, *flags)
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        return handle

    def _has_hooks(self) -> bool:
        d = self.__dict__
        return bool(d.get("_forward_pre_hooks") or d.get("_forward_hooks") or d.get("_backward_hooks")
                    or d.get("_backward_pre_hooks"))

    def _call_with_hooks(self, args, kwargs):
        for hook, with_kwargs in list(self.__dict__.get("_forward_pre_hooks", {}).values()):
            result = hook(self, args, kwargs) if with_kwargs else hook(self, args)
            if result is not None:
                if with_kwargs:
                    args, kwargs = result
                else:
                    args = result if isinstance(result, tuple) else (result,)
        full = [h for h, *_ in self.__dict__.get("_backward_hooks", {}).values()]
        pre = [h for h, *_ in self.__dict__.get("_backward_pre_hooks", {}).values()]
        backward = None
        if (full or pre) and is_grad_enabled():
            from ._backward_hooks import BackwardHook
            backward = BackwardHook(self, full, pre)
            args = backward.wrap_inputs(args)
        try:
            output = self.forward(*args, **kwargs)
        except BaseException:
            for hook, with_kwargs, always in list(self.__dict__.get("_forward_hooks", {}).values()):
                if always:
                    hook(self, args, kwargs, None) if with_kwargs else hook(self, args, None)
            raise
        for hook, with_kwargs, _ in list(self.__dict__.get("_forward_hooks", {}).values()):
            result = hook(self, args, kwargs, output) if with_kwargs else hook(self, args, output)
            if result is not None:
                output = result
        return output if backward is None else backward.wrap_outputs(output)

    def __call__(self, *args, **kwargs):
        try:
            if self._has_hooks():
                return self._call_with_hooks(args, kwargs)
            return self.forward(*args, **kwargs)
        except ModuleError as e:
            # Name the failing child by its attribute name in this module ("features.3").
            for name, child in self._modules.items():
                if child is e._outer:
                    e.path.insert(0, name)
                    break
            e._outer = self
            raise
        except ShapeError as e:
            err = ModuleError(str(e).split(": ", 1)[-1], self)
            err._outer = self
            raise err from None

    # ---- traversal --------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True):
        """Yield (dotted name, module) for this module and every descendant, depth first (each
        module, then its children in order), as torch.nn.Module.named_modules: a module reachable
        under two names is yielded once (``remove_duplicate=False``: under each); ``memo``, a set of
        modules to skip, is filled with those yielded."""
        memo = set() if memo is None else memo
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if m in memo:
                continue
            if remove_duplicate:
                memo.add(m)
            yield name, m
            for child_name, child in reversed(m._modules.items()):
                if child is not None:
                    stack.append((f"{name}.{child_name}" if name else child_name, child))

    def modules(self):
        return (m for _, m in self.named_modules())

    def children(self):
        """Yield the direct sub-modules."""
        return (m for m in self._modules.values() if m is not None)

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def _named_members(self, store: str, prefix: str, recurse: bool, remove_duplicate: bool):
        """(dotted name, Tensor) of ``store`` ("_parameters" or "_buffers") of self and, with
        ``recurse``, every descendant; each Tensor once unless ``remove_duplicate`` is False."""
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mname, m in modules:
            for name, t in m.__dict__[store].items():
                if t is None or id(t) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(t))
                yield (f"{mname}.{name}" if mname else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """Yield (dotted name, Parameter), e.g. ('0.weight', ...), of this module and (with
        ``recurse``) every descendant, each parameter once (``remove_duplicate=False``: under
        every name it has), as torch.nn.Module.named_parameters."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True):
        """Yield every Parameter (for the optimizer); ``recurse=False``: this module's own only."""
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """Yield (dotted name, buffer Tensor) of this module and (with ``recurse``) every descendant,
        e.g. ('1.running_mean', ...), each buffer once, as torch.nn.Module.named_buffers."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        """Yield every buffer Tensor (torch.nn.Module.buffers)."""
        return (b for _, b in self.named_buffers(recurse=recurse))

    def get_parameter(self, target: str) -> "Parameter":
        """The parameter at the dotted path ``target`` (``"features.0.weight"``), as
        torch.nn.Module.get_parameter. Raises AttributeError naming the missing module or
        attribute, or saying that it is not a parameter."""
        return self._get_member(target, "_parameters", "an nn.Parameter")

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at the dotted path ``target`` (``"bn.running_mean"``), as
        torch.nn.Module.get_buffer; raises AttributeError as ``get_parameter``."""
        return self._get_member(target, "_buffers", "a buffer")

    def _get_member(self, target: str, store: str, kind: str):
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        if not hasattr(module, name):
            raise AttributeError(f"{type(module).__name__} has no attribute `{name}`")
        if name not in module.__dict__[store]:
            raise AttributeError(f"`{name}` is not {kind}")
        return module.__dict__[store][name]

    # ---- modes and dtype --------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (dropout active, batch norm uses batch statistics)."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        """Set evaluation mode: ``train(False)``."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of all parameters (to None, as torch's default)."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad._data[...] = 0

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self, *args, **kwargs) -> "Module":
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(tensor)`` as torch.nn.Module.to:
        cast every floating-point parameter and buffer to the dtype in place; returns self.
        Raises: RuntimeError for a non-CPU device; TypeError for a non-floating dtype (torch's)."""
        from .._api.semantics import parse_to
        dtype = parse_to(args, **kwargs)[0]
        if dtype is None:
            return self
        dtype = np.dtype(dtype)
        if dtype.kind not in "fc":
            raise TypeError(f"nn.Module.to only accepts floating point or complex dtypes, but got desired dtype={dtype}")
        for p in self.parameters():
            p._data = p._data.astype(dtype)
            if p.grad is not None:
                p.grad = Tensor(p.grad._data.astype(dtype))
        for _, b in self.named_buffers():
            if b.dtype.kind == "f":
                b._data = b._data.astype(dtype)
        return self

    def float(self) -> "Module":
        return self.to(np.float32)

    def double(self) -> "Module":
        return self.to(np.float64)

    def half(self) -> "Module":
        return self.to(np.float16)

    def type(self, dst_type) -> "Module":
        """Cast every parameter and buffer to ``dst_type`` (a dtype or a type name such as
        'torch.DoubleTensor'), as torch.nn.Module.type; returns self."""
        if isinstance(dst_type, str):
            dst_type = Tensor(np.zeros(1, np.float32)).type(dst_type).dtype
        for t in [*self.parameters(), *self.buffers()]:
            t._data = t._data.astype(dst_type)
            if t.grad is not None:
                t.grad = Tensor(t.grad._data.astype(dst_type))
        return self

    def cpu(self) -> "Module":
        """Return self: ember's parameters always live on the CPU (torch.nn.Module.cpu)."""
        return self

    # ---- state --------------------------------------------------------------------------
    def _state_items(self):
        """(key, Parameter or buffer) in PyTorch's state_dict order: per module, depth first
        from self, its own parameters, then its own persistent buffers, then its children (a
        parameter or module reachable under two names is listed under both, as torch)."""
        stack = [("", self)]
        while stack:
            prefix, m = stack.pop()
            skip = m.__dict__.get("_non_persistent_buffers_set", ())
            yield from ((prefix + n, p) for n, p in m._parameters.items() if p is not None)
            yield from ((prefix + n, b) for n, b in m._buffers.items() if b is not None and n not in skip)
            stack.extend((f"{prefix}{n}.", c) for n, c in reversed(m._modules.items()) if c is not None)

    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False) -> "OrderedDict[str, Tensor]":
        """Every parameter and persistent buffer by name, as torch.nn.Module.state_dict: PyTorch's
        keys (``0.weight``, ``features.3.bias``, ``bn.running_mean``) in PyTorch's order (each
        module's parameters, then its buffers, then its children).

        The values are ``detach()``-ed Tensors sharing memory and the version counter with the
        parameters and buffers, as PyTorch's: an in-place write to one (``sd["0.bias"].zero_()``)
        writes the model, and a value taken before training shows the trained weights; copy them
        (``copy.deepcopy(sd)``, ``{k: v.clone() ...}``) for a snapshot. Before the twenty-second
        session they were NumPy copies, so ``sd[k][:] = 0`` changed nothing, silently.

        Args: destination (a dict to fill and return; default a new OrderedDict), prefix (put
            before every key), keep_vars (True: the Parameters and buffers themselves, not
            detached).
        """
        out = OrderedDict() if destination is None else destination
        for n, t in self._state_items():
            out[prefix + n] = t if keep_vars else t.detach()
        return out

    def load_state_dict(self, state, strict: bool = True):
        """Copy arrays (Tensors, NumPy arrays, or anything with ``.numpy()``) into the parameters
        and buffers, in place and cast to their dtypes, as torch.nn.Module.load_state_dict: a
        Tensor taken from ``state_dict()`` before, or an optimizer holding the parameters, sees
        the loaded values (each write counts as an in-place write, so a graph that saved the old
        values refuses to backward through them).

        Raises:
            KeyError: with ``strict``, listing missing and unexpected keys.
            ValueError: naming each key whose shape differs, with both shapes.
        Returns: ``_IncompatibleKeys(missing_keys, unexpected_keys)``, a named tuple of lists,
            printed ``<All keys matched successfully>`` when both are empty (PyTorch's).
        """
        own = OrderedDict(self._state_items())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append("missing keys: " + ", ".join(missing))
            if unexpected:
                parts.append("unexpected keys: " + ", ".join(unexpected))
            raise KeyError(f"Error(s) in loading state_dict for {type(self).__name__}: " + "; ".join(parts))
        arrays, bad = {}, []
        for k, target in own.items():
            if k not in state:
                continue
            v = state[k]
            v = v._data if isinstance(v, Tensor) else v
            v = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
            if v.shape != target.shape:
                bad.append(f"{k}: checkpoint shape {tuple(v.shape)}, model shape {tuple(target.shape)}")
            arrays[k] = v
        if bad:
            raise ValueError(f"Error(s) in loading state_dict for {type(self).__name__}: size mismatch for "
                             + "; ".join(bad))
        for k, v in arrays.items():
            t = own[k]
            if t._data.flags.writeable:
                np.copyto(t._data, v, casting="unsafe")
            else:   # a read-only array (e.g. one a file was loaded into): a copy of the values instead
                t._data = np.array(v, dtype=t.dtype, copy=True)
            t._vc[0] += 1
        return _IncompatibleKeys(missing, unexpected)

    # ---- printing -----------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"({n}): " + repr(m).replace("\n", "\n  ") for n, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + ("\n  " + "\n  ".join(lines) + "\n)" if lines else ")")


class Sequential(Module):
    """Apply modules in order: ``Sequential(Conv2d(1, 6, 5), ReLU())(x)``; children named 0, 1, ..."""

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], dict):
            for name, layer in layers[0].items():
                setattr(self, name, layer)
        else:
            for i, layer in enumerate(layers):
                setattr(self, str(i), layer)

    def forward(self, x):
        if _fusion.mode() == "fast":   # the same loop, Conv2d → ReLU → MaxPool2d fused (kernels/fusion.py)
            return _fusion.sequential_forward(self._modules.values(), x)
        for layer in self._modules.values():
            x = layer(x)
        return x

    def __getitem__(self, i):
        mods = list(self._modules.values())
        return Sequential(*mods[i]) if isinstance(i, slice) else mods[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        setattr(self, str(len(self._modules)), module)
        return self
