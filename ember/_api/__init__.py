"""PyTorch's API surface over ember's core: names a PyTorch user types that need no gradient
of their own (issue 12, groups 4–6).

``tensor_methods`` attaches Tensor methods (``t.mm``, ``t.std``, ``t.topk``, ...) made of ember's ops,
``creation`` holds the creation functions (``linspace``, ``full``, ``eye``, ``randint``, ``*_like``),
``functions`` the module-level functions (``ember.sin``, ``ember.max``, ``ember.where``, ...).
Every gradient still lives in ``ember/ops``: these are thin wrappers, kept outside the core's line
budget. ``ember/__init__.py`` imports this package, which attaches the methods at import.
"""
from . import creation, functions, tensor_methods  # noqa: F401

tensor_methods.install()
