"""ember/kernels/numba_norm.py: the compiled training-mode BatchNorm equals the reference op
(ember/ops/norm.py) and PyTorch (float64 to 1e-10, float32 to 1e-5), in NCHW and in the conv
kernels' CHWN order, bit-identical across reruns and thread counts; evaluation mode (the running
statistics) as the reference and PyTorch; training mode without γ/β runs the reference."""
import numpy as np
import pytest

import ember
from ember import kernels
from ember.kernels import numba_norm
from ember.nn import functional as F
from ember.ops import norm as ref
from ember.tensor import Tensor

torch = pytest.importorskip("torch")


def case(dtype, layout, shape=(6, 5, 7, 3), seed=0):
    r = np.random.default_rng(seed)
    x = (r.standard_normal(shape) * 3 + 2).astype(dtype)
    if layout == "chwn":                               # the memory order ember's conv kernels write
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    w, b = r.standard_normal(shape[1]).astype(dtype), r.standard_normal(shape[1]).astype(dtype)
    g = r.standard_normal(shape).astype(dtype)
    return x, w, b, g


def run_op(op, x, w, b, g):
    """y, grad_x, grad_w, grad_b and the stats dict of op in training mode."""
    xt, wt, bt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
    stats = {}
    y = op.apply(xt, wt, bt, eps=1e-5, stats=stats)
    (y * Tensor(g)).sum().backward()
    return y._data, xt.grad._data, wt.grad._data, bt.grad._data, stats


def run_torch(x, w, b, g):
    xt, wt, bt = (torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in (x, w, b))
    y = torch.nn.functional.batch_norm(xt, None, None, wt, bt, training=True, eps=1e-5)
    y.backward(torch.tensor(g))
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
def test_equals_the_reference_op_and_torch(dtype, tol, layout):
    x, w, b, g = case(dtype, layout)
    got = run_op(numba_norm.BatchNorm, x, w, b, g)
    want = run_op(ref.BatchNorm, x, w, b, g)
    for a, e, t in zip(got[:4], want[:4], run_torch(x, w, b, g)):
        assert a.dtype == dtype and a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol)
        np.testing.assert_allclose(a, t, rtol=tol, atol=tol)
    for k in ("mean", "var"):
        assert got[4][k].dtype == dtype
        np.testing.assert_allclose(got[4][k], want[4][k], rtol=tol, atol=tol)
    if layout == "chwn" and numba_norm.AVAILABLE:      # the output keeps the batch innermost
        assert got[0].transpose(1, 2, 3, 0).flags.c_contiguous


def test_a_gradient_in_another_memory_order_than_x(monkeypatch):
    x, w, b, g = case(np.float64, "chwn")
    xt, wt, bt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
    y = numba_norm.BatchNorm.apply(xt, wt, bt, eps=1e-5)
    (y * Tensor(np.ascontiguousarray(g))).sum().backward()     # NCHW gradient into a CHWN x
    want = run_torch(x, w, b, g)
    np.testing.assert_allclose(xt.grad._data, want[1], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(wt.grad._data, want[2], rtol=1e-10, atol=1e-10)


def test_bit_identical_across_reruns_and_thread_counts():
    x, w, b, g = case(np.float32, "chwn", shape=(64, 16, 16, 16))       # large enough to be split
    before = kernels.get_num_threads()
    try:
        runs = []
        for n in (1, 2, 2):
            kernels.set_num_threads(n)
            runs.append(run_op(numba_norm.BatchNorm, x, w, b, g)[:4])
    finally:
        kernels.set_num_threads(before)
    for other in runs[1:]:
        for a, e in zip(runs[0], other):
            np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("layout", ["nchw", "chwn"])
@pytest.mark.parametrize("affine", [True, False])
def test_evaluation_mode_equals_the_reference_op_and_torch(dtype, tol, layout, affine):
    """The running statistics given: the compiled one-pass kernel, its output in x's memory order,
    and its gradients (x, γ, β) as the reference's and PyTorch's eval-mode batch_norm."""
    x, w, b, g = case(dtype, layout)
    r = np.random.default_rng(3)
    mean, var = (r.standard_normal(5) * 2).astype(dtype), (r.random(5) * 3 + 0.5).astype(dtype)
    got, want = [], []
    for op, out in ((numba_norm.BatchNorm, got), (ref.BatchNorm, want)):
        xt = Tensor(x, requires_grad=True)
        params = [Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)] if affine else [None, None]
        y = op.apply(xt, *params, mean=mean, var=var, eps=1e-5)
        if op is numba_norm.BatchNorm and numba_norm.AVAILABLE:
            assert y._ctx.compiled == "eval"                # the compiled pass ran, not the reference
        (y * Tensor(g)).sum().backward()
        out += [y._data, xt.grad._data] + ([p.grad._data for p in params] if affine else [])
    tx = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    tp = [torch.tensor(a, requires_grad=True) for a in (w, b)] if affine else [None, None]
    ty = torch.nn.functional.batch_norm(tx, torch.tensor(mean), torch.tensor(var), *tp, training=False, eps=1e-5)
    ty.backward(torch.tensor(g))
    expect = [ty.detach().numpy(), tx.grad.numpy()] + ([p.grad.numpy() for p in tp] if affine else [])
    for a, e, t in zip(got, want, expect):
        assert a.dtype == dtype and a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol)
        np.testing.assert_allclose(a, t, rtol=tol, atol=tol)
    if layout == "chwn" and numba_norm.AVAILABLE:      # the output keeps the batch innermost
        assert got[0].transpose(1, 2, 3, 0).flags.c_contiguous


def test_training_mode_without_affine_runs_the_reference():
    x, w, b, g = case(np.float64, "nchw")
    got = numba_norm.BatchNorm.apply(Tensor(x))
    want = ref.BatchNorm.apply(Tensor(x))
    np.testing.assert_array_equal(got._data, want._data)


def test_dispatch_picks_it_and_a_resnet_block_trains_the_same_as_the_reference_path():
    assert kernels.kernels()[ref.BatchNorm] is numba_norm.BatchNorm
    from ember.models.cifar import BasicBlock
    ember.manual_seed(0)
    block = BasicBlock(16, 32, stride=2).double()
    x = np.random.default_rng(1).standard_normal((8, 16, 8, 8))
    grads = []
    for mode in ("fast", "reference"):
        with kernels.use(mode):
            for p in block.parameters():
                p.grad = None
            out = block(Tensor(x))
            F.cross_entropy(out.flatten(1), np.arange(8)).backward()
            grads.append([p.grad._data.copy() for p in block.parameters()])
    for a, e in zip(*grads):
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-10)
