"""``ember.kernels``: the fast paths, each equal to a reference op of ``ember.ops``, chosen by dispatch.

A reader learns every gradient from ``ember/ops/`` (the slide formulas as code); this package is
where the speed lives: layouts, cache-sized blocking, fused passes and the worker threads
(``threads``). Every kernel is a subclass of its reference op with the same arguments and the
same result, and its docstring says which op it equals, why it is faster, and the measured
figure. ``tests/test_ops.py`` runs the whole op table through both paths and compares them.

    gemm_conv.Conv2d     = ops.conv.Conv2d          by shape: im2col + GEMM in chunks, or numba_conv's
                                                    direct convolution (LeNet's shapes) (if numba installed)
    numba_conv.Conv2d    = ops.conv.Conv2d          direct convolution compiled by numba (if installed)
    numba_pool.MaxPool2d = ops.pool.MaxPool2d       one compiled pass, argmax kept (if numba installed)
    conv.Conv2d          = ops.conv.Conv2d          without numba: CHWN layout, cache-sized blocks, threads
    pool.MaxPool2d       = ops.pool.MaxPool2d       without numba: maximum passes over strided views
    pool.AvgPool2d       = ops.pool.AvgPool2d       strided adds, no window temporary
    activation.ReLU      = ops.activation.ReLU      SIMD-friendly maximum, threads
    matmul.Linear        = ops.matmul.Linear        GEMMs under ember's BLAS thread rule
    numba_norm.BatchNorm = ops.norm.BatchNorm       training-mode forward/backward compiled by numba
    numba_loss.CrossEntropy = ops.loss.CrossEntropy softmax cross-entropy, one compiled pass each way
    numba_optim.sgd_update = optim.sgd.update       SGD's update of one parameter in one pass (not an op:
                                                    SGD.step calls it itself, numba_optim.covers first)

Choosing the path:
    dispatch(op)             the kernel registered for ``op`` when kernels are on, else ``op``
    use("reference"|"fast")  switch (also a context manager: the previous mode comes back)
    mode()                   the current mode
    EMBER_KERNELS=reference  (environment, read at import) starts with kernels off
Callers (``ember.nn.functional``, ``Tensor`` methods) call ``dispatch(ops.x.Op).apply(...)``.
"""
from __future__ import annotations

import os
import sys

_MODES = ("fast", "reference")


def _check_mode(mode, source):
    if mode not in _MODES:
        raise ValueError(f"{source} must be 'fast' or 'reference', got {mode!r}")
    return mode


_mode = _check_mode(os.environ.get("EMBER_KERNELS", "fast") or "fast", "EMBER_KERNELS")


def dispatch(op):
    """The Function to run for reference op ``op``: its kernel when kernels are on (and one
    exists), ``op`` itself otherwise. Example: ``dispatch(ops.conv.Conv2d).apply(x, w)``."""
    return _KERNELS.get(op, op) if _mode == "fast" else op


def mode() -> str:
    """'fast' (kernels on) or 'reference'."""
    return _mode


class use:
    """Choose the path: ``use("reference")`` turns the kernels off, ``use("fast")`` on.

    Calling it switches at once; as a context manager it also restores the previous mode on
    exit: ``with ember.kernels.use("reference"): ...``.
    Raises: ValueError for any other mode.
    """

    def __init__(self, mode: str):
        global _mode
        self.previous, _mode = _mode, _check_mode(mode, "kernels.use")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _mode
        _mode = self.previous
        return False


def kernels() -> dict:
    """{reference op class: kernel class} for every registered kernel."""
    return dict(_KERNELS)


from . import threads  # noqa: E402
from .threads import get_num_threads, set_num_threads  # noqa: E402
from . import activation, conv, gemm_conv, matmul, numba_conv, numba_pool, pool  # noqa: E402
from ..ops import activation as _act, conv as _conv, matmul as _mm, pool as _pool  # noqa: E402
from . import numba_norm  # noqa: E402
from ..ops import norm as _norm  # noqa: E402
from . import numba_loss  # noqa: E402
from ..ops import loss as _loss  # noqa: E402

# The table dispatch reads: reference op -> its kernel (a subclass with the same signature).
# Conv2d and MaxPool2d: the numba kernels when numba imports (``_jit.AVAILABLE``), else the NumPy
# ones (measured in benchmarks/RESULTS.md, issue 13). Conv2d picks its path per call by shape
# (``gemm_conv.choose``: im2col + GEMM beyond LeNet, numba_conv's direct convolution for LeNet).
_KERNELS = {_conv.Conv2d: gemm_conv.Conv2d if gemm_conv.AVAILABLE else conv.Conv2d,
            _pool.MaxPool2d: numba_pool.MaxPool2d if numba_pool.AVAILABLE else pool.MaxPool2d,
            _pool.AvgPool2d: pool.AvgPool2d, _act.ReLU: activation.ReLU, _mm.Linear: matmul.Linear}
_KERNELS[_norm.BatchNorm] = numba_norm.BatchNorm   # training-mode kernels (the reference code otherwise)
if numba_loss.AVAILABLE:   # softmax cross-entropy in one compiled pass each way (class weights, smoothing: reference)
    _KERNELS[_loss.CrossEntropy] = numba_loss.CrossEntropy

# Tensor.relu() & co. take the fast path too, without tensor.py importing the kernels (the module
# from sys.modules: the attribute ember.tensor is the tensor() function)
sys.modules[f"{__package__.rpartition('.')[0]}.tensor"]._dispatch = dispatch
