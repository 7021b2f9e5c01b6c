"""``ember._api``: PyTorch's surface that is not maths, attached to ``Tensor`` and ``ember`` at import.

The core (``tensor.py``, ``autograd/``, ``ops/``) keeps the semantics that need its internals
(storage, version counter, the in-place rule ``Tensor._inplace``, the engine) inside its line
budget; the modules here hold the thin PyTorch names built on them, so a reader of the core is
not buried in aliases. ``semantics``: devices, dtypes, in-place methods, Python protocols, the
user-facing ``autograd.Function`` and ``autograd.grad``.
"""
from . import semantics  # noqa: F401  (attaches its names on import)
