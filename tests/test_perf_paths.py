"""The fast paths of issue 3 compute exactly what the plain formulas do.

conv2d runs in a CHWN layout in blocks of output rows and returns non-contiguous views; max-pool
finds its first maximum by comparisons instead of a stored argmax; small GEMMs switch BLAS to one
thread. Each is checked against PyTorch (float64, random upstream gradients) in the configurations
that exercise the blocking and the layouts, and float32 must stay float32 through a LeNet step.
"""
import numpy as np
import pytest

import ember
from ember.kernels import threads
from ember.models import lenet5
from ember.nn import functional as F
from ember.kernels import conv as conv_ops  # the fast (CHWN, blocked, threaded) Conv2d
from ember.optim import SGD
from ember.tensor import Tensor

torch = pytest.importorskip("torch")
TF = torch.nn.functional


@pytest.fixture(autouse=True)
def fast_kernels():
    """These tests are about the kernels: run them on the fast path even under EMBER_KERNELS=reference."""
    with ember.kernels.use("fast"):
        yield


def _check(e_out, t_out, e_ins, t_ins, rng, tol=1e-10):
    u = rng.standard_normal(tuple(t_out.shape))
    e_out.backward(u)
    t_out.backward(torch.from_numpy(u))
    np.testing.assert_allclose(e_out.numpy(), t_out.detach().numpy(), rtol=tol, atol=tol)
    for e, t in zip(e_ins, t_ins):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("block_bytes", [1, 4096, 1 << 30])  # one output row per block ... one block
@pytest.mark.parametrize("N,C,H,W,O,k,s,p,d,g", [
    (5, 1, 12, 11, 6, 5, 1, 2, 1, 1),      # LeNet C1-like: C_in = 1, padding
    (4, 6, 9, 7, 8, 3, 2, 1, 1, 2),        # stride 2, groups 2, odd sizes
    (3, 4, 10, 9, 4, 3, 1, 0, 2, 4),       # dilation, depthwise
])
def test_conv2d_blocked_chwn_matches_torch(monkeypatch, block_bytes, N, C, H, W, O, k, s, p, d, g):
    monkeypatch.setattr(conv_ops, "_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((N, C, H, W)), rng.standard_normal((O, C // g, k, k)), rng.standard_normal(O)
    ex, ew, eb = (Tensor(a, requires_grad=True) for a in (x, w, b))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    _check(F.conv2d(ex, ew, eb, stride=s, padding=p, dilation=d, groups=g),
           TF.conv2d(tx, tw, tb, stride=s, padding=p, dilation=d, groups=g), (ex, ew, eb), (tx, tw, tb), rng)


def test_lenet_block_chain_on_chwn_views_matches_torch(monkeypatch):
    """conv -> relu -> pool -> conv: layers receive the non-contiguous CHWN views of each other."""
    monkeypatch.setattr(conv_ops, "_BLOCK_BYTES", 2048)
    rng = np.random.default_rng(1)
    x = np.round(rng.standard_normal((3, 1, 12, 12)), 1)
    # unrounded weights: rounded ones made some conv outputs exactly zero in exact arithmetic, whose
    # sign (±1e-17) then depends on the summation order (numba's direct conv vs im2col vs torch),
    # so ReLU + max-pool could route a gradient elsewhere; pooling ties: the test below
    w1, w2 = rng.standard_normal((4, 1, 3, 3)), rng.standard_normal((5, 4, 3, 3))
    e = [Tensor(a, requires_grad=True) for a in (x, w1, w2)]
    t = [torch.tensor(a, requires_grad=True) for a in (x, w1, w2)]
    eo = F.conv2d(F.max_pool2d(F.relu(F.conv2d(e[0], e[1], padding=1)), 2), e[2])
    to = TF.conv2d(TF.max_pool2d(TF.relu(TF.conv2d(t[0], t[1], padding=1)), 2), t[2])
    _check(eo, to, e, t, rng)


def test_max_pool2d_ties_on_a_transposed_input_go_to_the_first_max():
    x = np.zeros((2, 3, 4, 4))
    x[..., 1, 1] = x[..., 1, 0] = x[..., 0, 1] = 1.0                 # ties inside the top-left window
    xt = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)   # CHWN memory order
    ex = Tensor(xt, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    _check(F.max_pool2d(ex, 2), TF.max_pool2d(tx, 2), [ex], [tx], np.random.default_rng(2))


def test_lenet_training_step_stays_float32_everywhere():
    ember.manual_seed(0)
    model = lenet5()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = Tensor(np.random.default_rng(0).standard_normal((7, 1, 28, 28)).astype(np.float32))
    h, seen = x, []
    for layer in model:
        h = layer(h)
        seen.append((type(layer).__name__, h.dtype))
    loss = F.cross_entropy(h, np.arange(7) % 10)
    opt.zero_grad()
    loss.backward()
    opt.step()
    bad = [s for s in seen if s[1] != np.float32] + [(n, p.grad.dtype) for n, p in model.named_parameters()
                                                      if p.grad.dtype != np.float32 or p.numpy().dtype != np.float32]
    assert loss.dtype == np.float32 and not bad, f"left float32: {bad}"


def test_threads_matmul_same_result_single_or_multi_threaded():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((300, 200)).astype(np.float32), rng.standard_normal((200, 400)).astype(np.float32)
    with threads.blas_threads(2):
        old = threads.PARALLEL_MIN_FLOPS
        try:
            threads.PARALLEL_MIN_FLOPS = 1                         # force the multi-threaded branch
            multi = threads.matmul(a, b)
        finally:
            threads.PARALLEL_MIN_FLOPS = old
        single = threads.matmul(a, b)                              # 48 MFLOP: below the threshold
    np.testing.assert_allclose(multi, single, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(single, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


def test_set_num_threads_rejects_zero():
    with pytest.raises(ValueError, match="expected a thread count >= 1, got 0"):
        threads.set_num_threads(0)


def test_relu_backward_of_a_mean_head_copies_the_broadcast_gradient_into_the_activations_order(monkeypatch):
    """F.relu(conv(x)).mean((2, 3)): the mean's backward hands ReLU a broadcast (N, C) gradient
    while the conv output is CHWN in memory; relu_grad copies it into that order first (one
    ``conv.chwn`` call, spied here) and the gradients equal PyTorch's (float64). Below
    BROADCAST_COPY_MIN values, or with a gradient that is not a broadcast, nothing is copied."""
    from ember.kernels import activation
    calls = []
    real = activation.chwn
    monkeypatch.setattr(activation, "chwn", lambda t, dtype=None: calls.append(t.shape) or real(t, dtype))
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((16, 3, 18, 18)), rng.standard_normal((16, 3, 3, 3)), rng.standard_normal(16)
    assert 16 * 16 * 18 * 18 >= activation.BROADCAST_COPY_MIN
    ex, ew, eb = (Tensor(a.copy(), requires_grad=True) for a in (x, w, b))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    e_out = F.relu(F.conv2d(ex, ew, eb, padding=1)).mean((2, 3))
    t_out = TF.relu(TF.conv2d(tx, tw, tb, padding=1)).mean((2, 3))
    _check(e_out, t_out, [ex, ew, eb], [tx, tw, tb], rng)
    assert calls == [(16, 18, 18, 16)]                       # (C, H, W, N): once, for the ReLU
    calls.clear()
    y = np.maximum(rng.standard_normal((16, 8, 8, 4)), 0).transpose(3, 0, 1, 2)     # 4,096 values
    g = np.broadcast_to(rng.standard_normal((4, 16, 1, 1)), y.shape)
    np.testing.assert_array_equal(activation.relu_grad(y, g), g * (y > 0))
    big = np.maximum(rng.standard_normal((16, 32, 32, 16)), 0).transpose(3, 0, 1, 2)
    full = rng.standard_normal(big.shape)                                             # NCHW, no broadcast
    np.testing.assert_array_equal(activation.relu_grad(big, full), full * (big > 0))
    assert calls == []


@pytest.mark.parametrize("shape", [(40, 24, 12, 11), (3, 5, 4, 2)])   # tiled (>= 2^16 values) and plain
def test_contiguous_of_a_chwn_conv_output_is_a_row_major_copy_and_clone_keeps_the_order(shape):
    """A compiled conv's (N, C, H, W) output lives in CHWN memory order. ``.contiguous()`` copies
    it into row-major order (in tiles of Contiguous.TILE rows of its (C·H·W, N) transpose when
    large), ``.clone()`` keeps its memory order as torch's clone keeps a permuted tensor's
    strides (preserve_format); values, gradients and grad_fn names equal torch's (float64)."""
    import torch
    from ember._api.tensor_methods import Contiguous
    N, C, H, W = shape
    rng = np.random.default_rng(8)
    a = rng.standard_normal((C, H, W, N))
    assert (a.size >= 1 << 16 and C * H * W > Contiguous.TILE) == (N == 40)   # several tiles, or none
    gc, gk = rng.standard_normal(shape), rng.standard_normal(shape)
    res = {}
    for lib in (torch, ember):
        x = lib.tensor(a, requires_grad=True)
        v = x.permute(3, 0, 1, 2)                              # (N, C, H, W), CHWN in memory
        c, k = v.contiguous(), v.clone()
        ((c * lib.tensor(gc)).sum() + (k * lib.tensor(gk)).sum()).backward()
        res[lib.__name__] = (c.detach().numpy().copy(), k.detach().numpy().copy(), c.is_contiguous(),
                             k.is_contiguous(), type(c.grad_fn).__name__, type(k.grad_fn).__name__,
                             x.grad.numpy().copy())
    t, e = res["torch"], res["ember"]
    np.testing.assert_array_equal(e[0], t[0])
    np.testing.assert_array_equal(e[1], t[1])
    assert e[2:6] == t[2:6] == (True, False, "CloneBackward0", "CloneBackward0")
    np.testing.assert_allclose(e[6], t[6], rtol=1e-12)
    x = ember.tensor(a).permute(3, 0, 1, 2)
    assert x.contiguous()._data.flags.c_contiguous and x.clone()._data.strides == x._data.strides


def test_stride_equals_torchs_and_names_a_conv_outputs_batch_innermost_order():
    """Tensor.stride(): element steps as torch gives them for contiguous, transposed, permuted,
    stepped, indexed, 0-d and expanded tensors, one dim (negative too), and torch's IndexError
    messages; a compiled conv's output has the CHWN steps its docstring names."""
    import torch
    rows = {}
    for lib in (torch, ember):
        a = lib.tensor(np.arange(24.0).reshape(2, 3, 4))
        got = [c.stride() for c in (a, a.transpose(0, 2), a.permute(2, 0, 1), a[:, ::2], a[0], lib.tensor(3.0),
                                   a.unsqueeze(0).expand(5, 2, 3, 4))] + [a.stride(-1), a.stride(1)]
        for t, d in ((a, 3), (a, -4), (lib.tensor(3.0), 0)):
            with pytest.raises(IndexError) as e:
                t.stride(d)
            got.append(str(e.value))
        rows[lib.__name__] = got
    assert rows["ember"] == rows["torch"]
    y = ember.nn.Conv2d(3, 8, 3)(ember.randn(4, 3, 10, 10))
    assert y.stride() == (1, 8 * 8 * 4, 8 * 4, 4) and not y.is_contiguous() and y.contiguous().stride() == (512, 64, 8, 1)


def test_openblas_woken_once_per_process_before_the_first_gemm_with_the_same_results():
    """``threads._numpy_blas()`` runs ``_wake_openblas`` (one small sgemm) once, at its first call,
    when NumPy's BLAS is OpenBLAS (its slow state: RESULTS.md, eighteenth session), never again,
    and a product after it equals the same product computed before it, bit for bit."""
    import os
    import subprocess
    import sys
    code = (
        "import numpy as np\n"
        "from ember.kernels import threads as t\n"
        "a = np.random.default_rng(0).standard_normal((64, 400)).astype(np.float32)\n"
        "w = np.random.default_rng(1).standard_normal((120, 400)).astype(np.float32)\n"
        "from threadpoolctl import threadpool_limits\n"
        "with threadpool_limits(1, user_api='blas'):\n"
        "    before = np.dot(a, w.T)   # one BLAS thread, as ember runs a product this small\n"
        "calls = []\n"
        "real = t._wake_openblas\n"
        "t._wake_openblas = lambda: (calls.append(1), real())\n"
        "t._numpy_blas(); t._numpy_blas(); after = t.matmul(a, w.T); t.set_num_threads(1)\n"
        "print(len(calls), 'openblas' in [c.internal_api for c in t._libs], np.array_equal(before, after))\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120,
                         env={**os.environ, "PYTHONPATH": root})
    assert out.returncode == 0, out.stderr
    calls, openblas, same = out.stdout.split()
    assert calls == ("1" if openblas == "True" else "0")
    assert same == "True"
