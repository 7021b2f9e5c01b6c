"""Anomaly mode: find the op that first produced a NaN or an infinity, forward or backward.

``with ember.autograd.detect_anomaly(): ...`` installs a hook that ``Function.apply`` and the
backward engine call after every op (``ember.autograd._anomaly_hook``; outside anomaly mode
the hook is None and costs one comparison per op). The hook checks

* every op's forward output: a non-finite value raises ``AnomalyError`` naming the op, its
  forward call site (the first frame outside ember's op machinery, and the caller chain) and
  the shapes and dtypes of its inputs (and whether an input was already non-finite);
* every backward's input gradients: a non-finite gradient raises naming the op
  (``ConvBackward``-style: "<Op> backward returned nan in the gradient of input k"), the
  forward call site recorded when the op ran, and the input shapes.

As ``torch.autograd.detect_anomaly``, this is a debugging tool: capturing a call site for
every op slows training (about 1.15× measured on a LeNet-5 step, batch 64) — turn it off when done.

Caveat (as in PyTorch): ``where(cond, f(x), g(x))``-style code evaluates both branches, so a
branch that is not selected can still produce inf/NaN in the forward (e.g. ``log(x)`` for
x ≤ 0 masked out afterwards) and, worse, a NaN *gradient* through the masked branch
(0 · inf = NaN). Anomaly mode reports such ops even though the selected values are finite;
the fix is to make the masked branch safe (``log(where(x > 0, x, 1))``), not to silence it.
Source: PyTorch's ``torch.autograd.detect_anomaly`` (its forward-traceback and
"Function 'XBackward' returned nan values" behaviour).
"""
from __future__ import annotations

import os
import sys

import numpy as np

from .. import autograd

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the ember package
# Frames inside these files are the op machinery; the call site is the first frame outside them.
_MACHINERY = tuple(os.path.join(_PKG, p) for p in ("autograd" + os.sep, "tensor.py", "ops" + os.sep,
                                                    "kernels" + os.sep, os.path.join("nn", "functional.py")))


class AnomalyError(RuntimeError):
    """A NaN or infinity produced by an op's forward or backward under ``detect_anomaly``."""


def _call_site(depth: int = 2) -> str:
    """'file:line in func' of the first frame outside the op machinery, then up to ``depth``
    - 1 callers (innermost first), joined by ' <- '."""
    f = sys._getframe(2)
    sites = []
    while f is not None and len(sites) < depth:
        fn = os.path.abspath(f.f_code.co_filename)
        if sites or not fn.startswith(_MACHINERY):
            sites.append(f"{os.path.relpath(fn) if fn.startswith(os.getcwd()) else fn}:{f.f_lineno} "
                         f"in {f.f_code.co_name}")
        f = f.f_back
    return " <- ".join(sites) or "<unknown>"


def _describe(x) -> str:
    data = getattr(x, "_data", x)
    if isinstance(data, np.ndarray):
        bad = data.dtype.kind == "f" and not np.isfinite(data).all()
        return f"{tuple(data.shape)} {data.dtype}" + (" (non-finite!)" if bad else "")
    return type(x).__name__


def _nonfinite(a) -> str | None:
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "fc" or np.isfinite(a).all():
        return None
    return "nan" if np.isnan(a).any() else "inf"


class _Hook:
    """The object installed as ``autograd._anomaly_hook``."""

    @staticmethod
    def check_forward(cls, args, out) -> None:
        site = _call_site()
        if out._ctx is not None:
            out._ctx.anomaly_site = site       # read by check_backward (ctx has a __dict__)
        kind = _nonfinite(out._data)
        if kind:
            shapes = ", ".join(_describe(a) for a in args)
            raise AnomalyError(f"{cls.__name__} forward produced {kind} values (output shape "
                               f"{tuple(out.shape)}); inputs: [{shapes}]; forward call site: {site}")

    @staticmethod
    def check_backward(ctx, in_grads) -> None:
        for k, g in enumerate(in_grads):
            kind = _nonfinite(g)
            if kind:
                shapes = ", ".join(_describe(p) for p in (ctx.parents or ()))
                site = ctx.__dict__.get("anomaly_site", "<recorded outside detect_anomaly>")
                raise AnomalyError(f"{ctx.fn.__name__} backward returned {kind} values in the gradient of "
                                   f"input {k}; inputs: [{shapes}]; forward call site: {site}")


class detect_anomaly:
    """Context manager (or decorator) that checks every op's output and gradients for NaN/inf.

    Args:
        check_nan: False turns the checks off (as torch's ``detect_anomaly(check_nan=False)``).
    Raises (inside the block):
        AnomalyError: naming the op, its forward call site and its input shapes and dtypes.
    Example:
        >>> with ember.autograd.detect_anomaly():
        ...     loss = model(x).log().sum(); loss.backward()
    """

    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan

    def __enter__(self):
        self.prev = autograd._anomaly_hook
        autograd._anomaly_hook = _Hook() if self.check_nan else None
        return self

    def __exit__(self, *exc):
        autograd._anomaly_hook = self.prev
        return False

    def __call__(self, fn):
        return autograd._decorate(lambda: detect_anomaly(self.check_nan), fn)


def is_anomaly_enabled() -> bool:
    """True inside ``detect_anomaly()``."""
    return autograd._anomaly_hook is not None


class set_detect_anomaly:
    """Turn anomaly mode on or off now (torch.autograd.set_detect_anomaly); as a context manager
    the previous mode comes back on exit. Args: mode (bool), check_nan=True."""

    def __init__(self, mode: bool, check_nan: bool = True):
        self.prev = autograd._anomaly_hook
        autograd._anomaly_hook = _Hook() if mode and check_nan else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        autograd._anomaly_hook = self.prev
        return False
