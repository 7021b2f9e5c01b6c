"""A stand-in ``torch`` package that *is* ember, for the client-program runner (test_clients.py).

With this folder first on ``sys.path``, ``import torch`` gives the ``ember`` module itself and
``import torch.X.Y`` / ``from torch.X import Y`` give ``ember.X.Y``: only the import names change,
nothing is added to ember, so a program fails here exactly where ember lacks PyTorch's API.
"""
import importlib
import importlib.abc
import importlib.util
import sys


class _EmberAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``torch.<rest>`` as the already importable ``ember.<rest>`` (same module object)."""

    def find_spec(self, name, path, target=None):
        if name.startswith("torch."):
            real = "ember" + name[len("torch"):]
            try:
                if importlib.util.find_spec(real) is None:
                    return None
            except ModuleNotFoundError:
                return None
            return importlib.util.spec_from_loader(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = importlib.import_module("ember" + spec.name[len("torch"):])
        self._spec = module.__spec__
        return module

    def exec_module(self, module):
        module.__spec__ = self._spec  # the import system overwrote it with the alias's spec


sys.meta_path.insert(0, _EmberAlias())
import ember  # noqa: E402

sys.modules["torch"] = ember
