"""``ember._api``: PyTorch's surface over ember's core, attached to ``Tensor`` and ``ember`` at import.

The core (``tensor.py``, ``autograd/``, ``ops/``) keeps the semantics that need its internals
(storage, version counter, the in-place rule ``Tensor._inplace``, the engine) inside its line
budget; the modules here hold the thin PyTorch names built on them, so a reader of the core is
not buried in aliases. Every gradient still lives in ``ember/ops``.

``semantics``: devices, dtypes, in-place methods, Python protocols, the user-facing
``autograd.Function`` (several outputs too) and ``autograd.grad`` (issue 12, groups 1-3, 8, 9);
``nodes``: ``grad_fn`` as PyTorch's graph nodes (names, ``next_functions``, hooks),
``Tensor.register_hook`` and ``retain_grad``.
``tensor_methods`` attaches Tensor methods (``t.mm``, ``t.std``, ``t.topk``, ...) made of ember's ops,
``creation`` holds the creation functions (``linspace``, ``full``, ``eye``, ``randint``, ``*_like``),
``functions`` the module-level functions (``ember.sin``, ``ember.max``, ``ember.where``, ...)
(issue 12, groups 4-6). ``tensor_methods`` only adds names ``Tensor`` does not define yet.
"""
from . import semantics  # noqa: F401  (attaches its names on import)
from . import creation, functions, tensor_methods  # noqa: F401,E402

tensor_methods.install()
