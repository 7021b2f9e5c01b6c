"""Containers and the identity layer: ``Identity``, ``ModuleList``, ``ModuleDict``, ``ParameterList``,
``ParameterDict`` (as PyTorch's)."""
from __future__ import annotations

from .module import Module, Parameter


class Identity(Module):
    """Return the input unchanged (a placeholder layer); accepts and ignores any arguments."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class ModuleList(Module):
    """A list of sub-modules, registered (state-dict keys ``0.weight``, ``1.weight``, ...) but not
    called in order: write the forward yourself. Supports indexing, len, iteration, append, extend.
    Raises: TypeError when an element is not a Module.
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _check(self, m):
        if not isinstance(m, Module):
            raise TypeError(f"ModuleList only holds Modules, got {type(m).__name__}")
        return m

    def __getitem__(self, i):
        mods = list(self._modules.values())
        return ModuleList(mods[i]) if isinstance(i, slice) else mods[i]

    def __setitem__(self, i, m):
        key = list(self._modules)[i]
        setattr(self, key, self._check(m))

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> "ModuleList":
        setattr(self, str(len(self._modules)), self._check(module))
        return self

    def extend(self, modules) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(); iterate over it in your own forward()")

    def __repr__(self):
        """As PyTorch's: a run of neighbours with the same repr is one entry, "(0-5): 6 x Layer(...)"."""
        runs = []                                              # [first index, last index, repr]
        for i, m in enumerate(self):
            r = repr(m)
            if runs and runs[-1][2] == r:
                runs[-1][1] = i
            else:
                runs.append([i, i, r])
        if not runs:
            return f"{type(self).__name__}()"
        lines = [(f"({a}): " if a == b else f"({a}-{b}): {b - a + 1} x ") + r.replace("\n", "\n  ")
                 for a, b, r in runs]
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


class _DictOf(Module):
    """The dict protocol of ModuleDict and ParameterDict over one of Module's stores (``_store``):
    [], in, len, iteration over keys, keys(), values(), items(), update()."""
    _store = "_modules"

    def _dict(self):
        return self.__dict__[self._store]

    def __getitem__(self, key):
        return self._dict()[key]

    def __contains__(self, key):
        return key in self._dict()

    def __len__(self):
        return len(self._dict())

    def __iter__(self):
        return iter(self._dict())

    def keys(self):
        return self._dict().keys()

    def values(self):
        return self._dict().values()

    def items(self):
        return self._dict().items()

    def update(self, values) -> None:
        for k, v in (values.items() if hasattr(values, "items") else values):
            self[k] = v


class ModuleDict(_DictOf):
    """An ordered dict name -> sub-module, registered under its names (``encoder.weight``).
    Supports [], in, len, iteration over keys, keys(), values(), items(), update().
    Raises: TypeError when a value is not a Module; KeyError for a missing name.
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __setitem__(self, key, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict only holds Modules, got {type(module).__name__} for key {key!r}")
        setattr(self, key, module)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(); index it in your own forward()")


def _as_parameter(value):
    """A Parameter as given, or a Tensor/array wrapped in one (torch's ParameterList does so)."""
    return value if isinstance(value, Parameter) or value is None else Parameter(value)


class ParameterList(Module):
    """A list of Parameters, registered as ``0``, ``1``, ... (torch.nn.ParameterList): in
    ``parameters()`` and ``state_dict()``; a Tensor or array given is wrapped in a Parameter.
    Supports indexing, len, iteration, append, extend."""

    def __init__(self, values=None):
        super().__init__()
        for v in values or ():
            self.append(v)

    def __getitem__(self, i):
        params = list(self._parameters.values())
        return ParameterList(params[i]) if isinstance(i, slice) else params[i]

    def __setitem__(self, i, value):
        setattr(self, list(self._parameters)[i], _as_parameter(value))

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def append(self, value) -> "ParameterList":
        setattr(self, str(len(self._parameters)), _as_parameter(value))
        return self

    def extend(self, values) -> "ParameterList":
        for v in values:
            self.append(v)
        return self

    def extra_repr(self):
        return "\n".join(f"({k}): Parameter containing: [{type(p).__name__} of size {'x'.join(map(str, p.shape))}]"
                         for k, p in self._parameters.items())


class ParameterDict(_DictOf):
    """An ordered dict name -> Parameter (torch.nn.ParameterDict), registered under its names;
    a Tensor or array given is wrapped in a Parameter. Supports [], in, len, iteration over keys,
    keys(), values(), items(), update().
    Raises: KeyError for a missing name."""
    _store = "_parameters"

    def __init__(self, parameters=None):
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __setitem__(self, key, value):
        setattr(self, key, _as_parameter(value))
