"""The SGD update compiled with numba: one pass over a parameter instead of NumPy's five.

Equals ``ember.optim.sgd.update`` (the reference: torch.optim.SGD's formula as NumPy calls):

    g ← −g if maximize;  g ← g + λθ;  b ← g (first step) or μb + (1 − τ)g;
    g ← g + μb (Nesterov) or b;  θ ← θ − lr·g

The reference makes a temporary per line and runs one NumPy call per operation (about 1.5 µs
each, whatever the size): LeNet-5's ten parameters (61,706 numbers) took 74–83 µs a step alone
(0.14 ms in the training loop's profile), the largest share of a training step's
batch-independent cost (issue 17: 2 ranks × batch 32 against 1 × 64). Here every element goes through the formula once, in the same order of operations and
in the parameter's dtype (the scalars are cast to it first, as NumPy 2 casts a Python float
against a float32 array), without fast-math: results are bit-identical to the reference.
Measured: 41 µs a step for the same update (RESULTS.md, thirteenth session).
"""
from __future__ import annotations

import numpy as np

from ._jit import AVAILABLE, njit


@njit(cache=True, nogil=True)
def _sgd_body(p, g, buf, lr, wd, mu, tau1, dampen, nesterov, maximize, first):
    """p[i] ← p[i] − lr·d[i] for the SGD direction d of the module docstring, in place, i < p.size.

    p, g, buf: 1-D arrays of one dtype (buf unused when mu == 0); lr, wd, mu, tau1 = 1 − τ:
    Python floats, each cast to that dtype first (as NumPy 2 casts a Python float against a
    float32 array: the same rounding as ``np.float32(lr)``, without a NumPy scalar made per call);
    dampen: τ ≠ 0; first: buf holds nothing yet (it is set to g).
    """
    t = p.dtype.type
    lr, wd, mu, tau1 = t(lr), t(wd), t(mu), t(tau1)
    for i in range(p.shape[0]):
        gi = -g[i] if maximize else g[i]
        if wd != 0:
            gi = gi + wd * p[i]
        if mu != 0:
            if first:
                b = gi
            elif dampen:
                b = mu * buf[i] + tau1 * gi
            else:
                b = mu * buf[i] + gi
            buf[i] = b
            gi = gi + mu * b if nesterov else b
        p[i] = p[i] - lr * gi


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def covers(p, g, buf, lr, wd, mu, tau, nesterov=False, maximize=False):
    """Whether ``sgd_update`` takes these arguments (``ember.optim.sgd.update``'s): numba there,
    every scalar a Python float or int (``plain_scalars``) and the arrays as ``covers_arrays``
    says. Otherwise SGD runs the reference."""
    return AVAILABLE and plain_scalars(lr, wd, mu, tau) and covers_arrays(p, g, buf)


def plain_scalars(*scalars):
    """Whether every scalar is a Python float or int: a NumPy float64 scalar promotes a float32
    array in NumPy, which the cast to the array's dtype here would not reproduce."""
    for s in scalars:
        if type(s) is not float and type(s) is not int:
            return False
    return True


def covers_arrays(p, g, buf):
    """Whether p is float32/float64, C-contiguous and writable, and g and buf (if not None) are
    C-contiguous arrays of its dtype and shape."""
    return (p.dtype in _FLOATS and g.dtype == p.dtype and g.shape == p.shape and p.flags.c_contiguous
            and p.flags.writeable and g.flags.c_contiguous
            and (buf is None or (buf.dtype == p.dtype and buf.shape == p.shape and buf.flags.c_contiguous)))


def sgd_update(p, g, buf, lr, wd, mu, tau, nesterov, maximize):
    """``ember.optim.sgd.update`` compiled: the same arguments, the same result, for arguments
    ``covers`` accepts (``SGD.step`` checks it first).

    Args: p (ndarray, updated in place), g (its gradient), buf (the momentum buffer or None),
        lr, wd, mu, tau (Python floats: lr, weight decay, momentum, dampening), nesterov, maximize.
    Returns: the momentum buffer (a new array on the first step with momentum, else ``buf``).
    """
    first = mu != 0 and buf is None
    if first:
        buf = np.empty_like(p)
    b = p if buf is None else buf
    # 1-D views (a 1-D array as it is: each reshape costs ~0.5 µs, and SGD.step calls this per
    # parameter); the scalars as Python floats, cast in the kernel (exact for ints below 2**53)
    _sgd_body(p if p.ndim == 1 else p.reshape(-1), g if g.ndim == 1 else g.reshape(-1),
              b if b.ndim == 1 else b.reshape(-1), float(lr), float(wd), float(mu), float(1 - tau),
              tau != 0, bool(nesterov), bool(maximize), first)
    return buf
