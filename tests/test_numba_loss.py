"""ember/kernels/numba_loss.py: the compiled softmax cross-entropy equals the reference op and
PyTorch (float64 1e-10, float32 1e-5), with ignore_index, every reduction and NaN logits; class
weights and label smoothing run the reference; F.cross_entropy takes the kernel when kernels are on."""
import numpy as np
import pytest

import ember
from ember import kernels
from ember.kernels import numba_loss
from ember.nn import functional as F

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not numba_loss.AVAILABLE, reason="numba not installed")


def run(mode, z, t, **kw):
    """(loss, grad_z, the graph node's op) of F.cross_entropy under kernels ``mode``, with an
    upstream gradient of ones (or 1..N for 'none')."""
    with kernels.use(mode):
        zt = ember.tensor(z.copy(), requires_grad=True)
        loss = F.cross_entropy(zt, t, **kw)
        u = np.arange(1, loss.numel() + 1, dtype=z.dtype).reshape(loss.shape)
        loss.backward(ember.tensor(u))
        return loss.numpy(), zt.grad.numpy(), loss._ctx.fn


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore", [False, True])
def test_kernel_equals_reference_and_pytorch(dtype, tol, reduction, ignore):
    r = np.random.default_rng(3)
    z = (r.standard_normal((9, 7)) * 4).astype(dtype)
    t = r.integers(0, 7, 9)
    if ignore:
        t[[1, 4]] = 3   # and ignore class 3 (PyTorch's ignore_index takes any value)
    kw = dict(reduction=reduction, ignore_index=3 if ignore else -100)
    loss, grad, op = run("fast", z, t, **kw)
    ref_loss, ref_grad, ref_op = run("reference", z, t, **kw)
    assert op is numba_loss.CrossEntropy and ref_op is ember.ops.loss.CrossEntropy
    assert loss.dtype == dtype and grad.dtype == dtype
    np.testing.assert_allclose(loss, ref_loss, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, ref_grad, rtol=tol, atol=tol * np.abs(ref_grad).max())
    zt = torch.tensor(z, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(zt, torch.tensor(t), **kw)
    tl.backward(torch.arange(1, tl.numel() + 1, dtype=zt.dtype).reshape(tl.shape))
    np.testing.assert_allclose(loss, tl.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=tol, atol=tol * np.abs(ref_grad).max())


def test_a_nan_logit_makes_its_rows_loss_nan_as_the_reference():
    """``ember train`` stops on a non-finite loss: a NaN anywhere in a row must reach the loss."""
    z = np.zeros((3, 4), np.float32)
    for j in range(4):   # NaN in every column position, the first included (the running max's seed)
        z[:] = 0
        z[1, j] = np.nan
        loss, grad, _ = run("fast", z, np.array([0, 1, 2]), reduction="none")
        assert np.isnan(loss[1]) and not np.isnan(loss[[0, 2]]).any()
        assert np.isnan(grad[1]).all() and np.isfinite(grad[[0, 2]]).all()
        assert np.isnan(run("fast", z, np.array([0, 1, 2]))[0])


def test_every_target_ignored_gives_nan_mean_as_torch():
    z = np.random.default_rng(0).standard_normal((2, 3))
    loss = run("fast", z, np.array([-100, -100]))[0]
    assert np.isnan(loss) and np.isnan(torch.nn.functional.cross_entropy(
        torch.tensor(z), torch.tensor([-100, -100])).item())


@pytest.mark.parametrize("kw", [dict(weight=ember.tensor(np.array([1.0, 2.0, 0.5]))), dict(label_smoothing=0.1)],
                         ids=["weight", "label_smoothing"])
def test_weights_and_smoothing_run_the_reference(kw):
    z = np.random.default_rng(1).standard_normal((4, 3))
    t = np.array([0, 2, 1, 2])
    loss, grad, op = run("fast", z, t, **kw)
    ref_loss, ref_grad, _ = run("reference", z, t, **kw)
    assert op is numba_loss.CrossEntropy   # the kernel's class, running the reference's code
    assert np.array_equal(loss, ref_loss) and np.array_equal(grad, ref_grad)
