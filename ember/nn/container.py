"""Containers and the identity layer: ``Identity``, ``ModuleList``, ``ModuleDict`` (as PyTorch's)."""
from __future__ import annotations

from .module import Module


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


class ModuleDict(Module):
    """An ordered dict name -> sub-module, registered under its names (``encoder.weight``).
    Supports [], in, len, iteration over keys, keys(), values(), items(), update().
    Raises: TypeError when a value is not a Module; KeyError for a missing name.
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict only holds Modules, got {type(module).__name__} for key {key!r}")
        setattr(self, key, module)

    def __contains__(self, key):
        return key in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules) -> None:
        for k, m in (modules.items() if hasattr(modules, "items") else modules):
            self[k] = m

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(); index it in your own forward()")
