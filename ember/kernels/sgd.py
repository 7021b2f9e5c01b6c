"""One compiled pass per parameter for ``ember.optim.SGD.step`` (equal, bit for bit, to its NumPy rule).

``SGD.step`` in NumPy makes five passes over each parameter with four temporaries
(``g + wd·θ``, ``b·μ``, ``b + g``, ``g + μ·b``, ``θ − lr·g``): LeNet-5's 61,706 weights took
~0.16-0.19 ms per step, a fixed cost that a 2-rank half batch pays in full (issue 17). This
kernel does the same arithmetic element by element in one pass, in the parameter's dtype, in the
same order and with the same roundings: the scalars are cast to the array's dtype first, as
NumPy casts a Python float against a float32 array (NEP 50), and each product and sum is rounded
on its own (numba does not fuse a multiply and an add without ``fastmath``). Element-wise, so
vectorising changes nothing. ``tests/test_optim_kernel.py`` checks equality bit for bit.

    sgd_step(p, g, buf, lr, mu, damp, wd, flags)       (all arrays 1-D, one dtype, C-contiguous)
        flags: 1 weight decay, 2 momentum, 4 first step (buf <- g), 8 dampening, 16 Nesterov
"""
from __future__ import annotations

import numpy as np

from ._jit import AVAILABLE, njit

WD, MOMENTUM, FIRST, DAMPENING, NESTEROV = 1, 2, 4, 8, 16


@njit(cache=True, nogil=True)
def _sgd_step(p, grad, buf, lr, mu, damp, wd, flags):   # pragma: no cover - compiled
    for i in range(p.shape[0]):
        g = grad[i]
        if flags & 1:
            g = g + wd * p[i]
        if flags & 2:
            if flags & 4:
                b = g
            else:
                b = buf[i] * mu
                if flags & 8:
                    b = b + damp * g
                else:
                    b = b + g
            buf[i] = b
            if flags & 16:
                g = g + mu * b
            else:
                g = b
        p[i] = p[i] - lr * g


def usable(p: np.ndarray, g: np.ndarray) -> bool:
    """True when the kernel can update parameter array ``p`` with gradient ``g``: numba is
    there, ember's kernels are on, both C-contiguous float32 or float64 of one dtype and size."""
    from . import mode
    return (AVAILABLE and mode() == "fast" and p.dtype == g.dtype and p.dtype.kind == "f"
            and p.dtype.itemsize in (4, 8) and p.size == g.size
            and p.flags.c_contiguous and g.flags.c_contiguous and p.flags.writeable)


def sgd_step(p: np.ndarray, g: np.ndarray, buf: np.ndarray | None, lr: float, mu: float, tau: float,
             wd: float, nesterov: bool) -> np.ndarray | None:
    """Update ``p`` in place by ``torch.optim.SGD``'s rule (see ``ember.optim.SGD``), with
    momentum buffer ``buf`` (None on the first step: a new one is returned; else updated in
    place and returned). Arrays as ``usable`` requires; the scalars are Python floats."""
    t = p.dtype.type
    flags = (WD if wd != 0 else 0) | (NESTEROV if nesterov else 0)
    if mu != 0:
        flags |= MOMENTUM | (DAMPENING if tau else 0)
        if buf is None:
            buf, flags = np.empty_like(p), flags | FIRST
    _sgd_step(p.reshape(-1), g.reshape(-1), p.reshape(-1) if buf is None else buf.reshape(-1),
              t(lr), t(mu), t(1 - tau), t(wd), flags)
    return buf
