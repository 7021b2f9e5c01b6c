"""ember/kernels/numba_optim.py: the compiled SGD update equals the reference (``optim.sgd.update``)
bit for bit, in float32 and float64, for every option, over several steps; whatever it does not
cover falls back to the reference; SGD takes it when kernels are on and matches PyTorch's SGD."""
import numpy as np
import pytest

import ember
from ember import kernels
from ember.kernels import numba_optim
from ember.optim import sgd

OPTIONS = [dict(mu=0.0, tau=0.0, wd=0.0, nesterov=False, maximize=False),
           dict(mu=0.9, tau=0.0, wd=0.0, nesterov=False, maximize=False),
           dict(mu=0.9, tau=0.0, wd=5e-4, nesterov=True, maximize=False),
           dict(mu=0.8, tau=0.3, wd=0.05, nesterov=False, maximize=False),
           dict(mu=0.7, tau=0.0, wd=0.01, nesterov=True, maximize=True),
           dict(mu=0.0, tau=0.0, wd=0.1, nesterov=False, maximize=True),
           dict(mu=1, tau=0, wd=0, nesterov=False, maximize=False)]   # Python ints, as SGD(momentum=1) passes them


def steps(update, dtype, o, shape=(7, 5, 3), n=4, seed=0):
    """(θ, b) after n updates of one parameter by ``update``, with gradients drawn per step."""
    r = np.random.default_rng(seed)
    p, buf = r.standard_normal(shape).astype(dtype), None
    for k in range(n):
        g = r.standard_normal(shape).astype(dtype)
        buf = update(p, g, buf, 0.1 / (k + 1), o["wd"], o["mu"], o["tau"], o["nesterov"], o["maximize"])
    return p, buf


@pytest.mark.skipif(not numba_optim.AVAILABLE, reason="numba not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("o", OPTIONS, ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items()))
def test_compiled_update_is_the_reference_bit_for_bit(dtype, o):
    p, buf = steps(numba_optim.sgd_update, dtype, o)
    p_ref, buf_ref = steps(sgd.update, dtype, o)
    assert p.dtype == dtype and np.array_equal(p, p_ref)
    if o["mu"]:
        assert buf.dtype == dtype and np.array_equal(buf, buf_ref)
    else:
        assert buf is None and buf_ref is None


@pytest.mark.parametrize("case", ["strided", "numpy-scalar", "float16", "other-dtype-grad"])
def test_what_the_compiled_pass_does_not_cover_is_refused(case):
    """A non-contiguous parameter, a NumPy float64 lr (NumPy promotes a float32 array with it, the
    compiled pass would not), a float16 array and a gradient of another dtype are not covered."""
    r = np.random.default_rng(1)
    dtype = np.float16 if case == "float16" else np.float32
    base = r.standard_normal((6, 8)).astype(dtype)
    g = r.standard_normal((6, 4)).astype(np.float64 if case == "other-dtype-grad" else dtype)
    lr = np.float64(0.1) if case == "numpy-scalar" else 0.1
    p = base[:, ::2] if case == "strided" else base[:, :4].copy()
    ok = np.zeros((6, 4), np.float32)
    assert numba_optim.covers(ok, ok.copy(), ok.copy(), 0.1, 0.01, 0.9, 0) == numba_optim.AVAILABLE
    assert not numba_optim.covers(p, g, None, lr, 0.01, 0.9, 0.0)


def test_sgd_calls_the_kernel_when_kernels_are_on_and_the_reference_otherwise(monkeypatch):
    """SGD.step takes the compiled update with kernels on (and numba there), ``update`` with
    EMBER_KERNELS=reference or for what ``covers`` refuses (a float64 NumPy lr): the same numbers."""
    calls = []
    compiled = numba_optim.sgd_update
    monkeypatch.setattr(numba_optim, "sgd_update", lambda *a: calls.append(1) or compiled(*a))
    out = []
    for mode, lr in (("fast", 0.1), ("reference", 0.1), ("fast", np.float64(0.1))):
        calls.clear()
        with kernels.use(mode):
            w = ember.nn.Parameter(ember.tensor(np.linspace(-1, 1, 12, dtype=np.float32)))
            opt = ember.optim.SGD([w], lr=lr, momentum=0.9, weight_decay=0.01)
            for _ in range(3):
                w.grad = ember.tensor(np.cos(w.detach().numpy()))
                opt.step()
        out.append(w.detach().numpy().copy())
        assert len(calls) == (3 if (mode, type(lr)) == ("fast", float) and numba_optim.AVAILABLE else 0)
    assert np.array_equal(out[0], out[1])
    assert not np.array_equal(out[0], out[2])   # float64 lr: NumPy computes lr·g in float64, as before


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sgd_with_kernels_on_and_off_and_pytorch_agree(dtype):
    """ember's SGD (weight decay, Nesterov momentum), kernels on and off, against torch.optim.SGD
    over 5 steps from the same weights and gradients: bit-identical between ember's paths, and
    PyTorch's to 1e-12 (float64) / 1e-6 (float32) relative."""
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(2)
    w0 = r.standard_normal((4, 6)).astype(dtype)
    grads = [r.standard_normal((4, 6)).astype(dtype) for _ in range(5)]
    out = {}
    for mode in ("fast", "reference"):
        with kernels.use(mode):
            w = ember.nn.Parameter(ember.tensor(w0.copy()))
            opt = ember.optim.SGD([w], lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
            for g in grads:
                w.grad = ember.tensor(g.copy())
                opt.step()
            out[mode] = w.detach().numpy().copy()
    wt = torch.nn.Parameter(torch.tensor(w0.copy()))
    opt = torch.optim.SGD([wt], lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    for g in grads:
        wt.grad = torch.tensor(g.copy())
        opt.step()
    assert np.array_equal(out["fast"], out["reference"])
    tol = 1e-12 if dtype == "float64" else 1e-6
    np.testing.assert_allclose(out["fast"], wt.detach().numpy(), rtol=tol, atol=tol)
