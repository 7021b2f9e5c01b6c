"""``ember.kernels.sgd``: SGD's compiled one-pass update equals the NumPy rule bit for bit.

The fused kernel must not change a single bit of training (``ember train``'s runs are compared
bit for bit before and after it): every combination of weight decay, momentum, dampening and
Nesterov, float32 and float64, odd sizes, several steps (the first creates the buffer), a
momentum buffer restored from a state dict, and the fall-backs (non-contiguous gradient,
``EMBER_KERNELS=reference``) are run against the NumPy code path and compared as raw bits.
"""
import itertools

import numpy as np
import pytest

import ember
from ember import kernels
from ember.kernels import sgd as ksgd

pytestmark = pytest.mark.skipif(not ksgd.AVAILABLE, reason="numba is not installed")


def _params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [ember.nn.Parameter(ember.tensor(rng.standard_normal(s).astype(dtype)))
            for s in [(7, 3, 5, 5), (7,), (129, 33), (1,)]]


def _run(dtype, steps, fast, **options):
    """Parameters and momentum buffers after ``steps`` SGD steps on fixed random gradients."""
    params = _params(dtype)
    opt = ember.optim.SGD([{"params": params[:2]}, {"params": params[2:], "weight_decay": 0.0}], **options)
    rng = np.random.default_rng(1)
    with kernels.use("fast" if fast else "reference"):
        for _ in range(steps):
            for p in params:
                p.grad = ember.tensor(rng.standard_normal(p.shape).astype(dtype))
            opt.step()
            for group in opt.param_groups:   # a schedule moves the lr between steps
                group["lr"] *= 0.97
    bufs = [opt.state.get(p, {}).get("momentum_buffer") for p in params]
    return [p._data.copy() for p in params], bufs


def _bits(a):
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wd,mu,tau,nesterov", [c for c in itertools.product([0.0, 5e-4], [0.0, 0.9], [0.0, 0.1],
                                                                             [False, True])
                                                if not (c[3] and (c[1] == 0 or c[2] != 0))])
def test_fused_sgd_equals_numpy_bit_for_bit(dtype, wd, mu, tau, nesterov):
    options = dict(lr=0.05, momentum=mu, dampening=tau, weight_decay=wd, nesterov=nesterov)
    fast, fast_bufs = _run(dtype, 4, True, **options)
    ref, ref_bufs = _run(dtype, 4, False, **options)
    for a, b in zip(fast, ref):
        np.testing.assert_array_equal(_bits(a), _bits(b))
    for a, b in zip(fast_bufs, ref_bufs):
        assert (a is None) == (b is None) == (mu == 0)
        if a is not None:
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(_bits(a), _bits(b))


def test_the_kernel_runs_and_falls_back():
    """The kernel is used for contiguous float arrays (its buffer is a new array), not for a
    non-contiguous gradient or with kernels off; every path gives the same bits."""
    p = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert ksgd.usable(p, p.copy())
    assert not ksgd.usable(p, np.ones((4, 3), np.float32).T)
    assert not ksgd.usable(p, p.astype(np.float64))
    with kernels.use("reference"):
        assert not ksgd.usable(p, p.copy())
    results = []
    for transpose in (False, True):
        w = ember.nn.Parameter(ember.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)))
        opt = ember.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
        for k in range(3):
            g = np.linspace(0.5, -0.25 * k, 12, dtype=np.float32).reshape(3, 4)
            w.grad = ember.tensor(np.ascontiguousarray(g.T).T if transpose else g)
            opt.step()
        results.append(w._data.copy())
    np.testing.assert_array_equal(_bits(results[0]), _bits(results[1]))


def test_resumed_buffer_is_used_in_place():
    """A momentum buffer loaded from a state dict continues exactly as the uninterrupted run."""
    def run(split):
        params = _params(np.float32)
        opt = ember.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
        rng = np.random.default_rng(2)
        for k in range(5):
            if k == split:
                state = opt.state_dict()
                params = [ember.nn.Parameter(ember.tensor(p._data.copy())) for p in params]
                opt = ember.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
                opt.load_state_dict(state)
            for p in params:
                p.grad = ember.tensor(rng.standard_normal(p.shape).astype(np.float32))
            opt.step()
        return [p._data for p in params]
    for a, b in zip(run(None), run(2)):
        np.testing.assert_array_equal(_bits(a), _bits(b))
