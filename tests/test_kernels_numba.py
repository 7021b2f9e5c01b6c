"""The numba kernels (ember/kernels/numba_*.py) against their reference ops and against PyTorch.

Each row runs the same inputs and the same random upstream gradient through the reference op
(ember.ops) and the kernel's Function, and compares the forward value and every input gradient:
float64 to 1e-10, float32 to 1e-5, relative to the largest magnitude of the reference (sums of
many terms in another order differ by rounding, elementwise relative error is meaningless near
zero). Then the kernel against PyTorch in float64. Also: bit-identical results across reruns and
thread counts, the fallback for dtypes the kernels do not cover, and the import without numba.
No timing here (benchmarks/kernels_numba.py times them).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import assert_conv_equals_torch, close_scaled as _close, run_with_grads as _run

from ember.kernels import _jit
from ember.kernels import numba_conv as nc
from ember.ops import conv as ref_conv
from ember.tensor import Tensor

try:  # the reference ops' homes after the layout change, and before it
    from ember.ops import pool as ref_pool
except ImportError:
    ref_pool = ref_conv
try:
    from ember.ops import activation as ref_act
except ImportError:
    from ember.ops import elementwise as ref_act

pytestmark = pytest.mark.skipif(not nc.AVAILABLE, reason="numba is not installed")

TOL = {np.float64: 1e-10, np.float32: 1e-5}

# id: (N, C_in, H, W), (C_out, KH, KW), stride, padding, dilation, groups
CONV_ROWS = {
    "lenet_c1": ((5, 1, 28, 28), (6, 5, 5), (1, 1), (2, 2), (1, 1), 1),
    "lenet_c3": ((3, 6, 14, 14), (16, 5, 5), (1, 1), (0, 0), (1, 1), 1),
    "odd_3x3_p1": ((2, 3, 9, 7), (4, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    "rect_k_s2": ((3, 2, 11, 10), (5, 2, 3), (2, 1), (1, 0), (1, 1), 1),
    "s3_p2": ((2, 3, 10, 13), (2, 3, 3), (3, 2), (2, 2), (1, 1), 1),
    "dilated": ((2, 2, 12, 11), (3, 3, 2), (1, 2), (2, 1), (2, 3), 1),
    "groups2": ((2, 4, 8, 9), (6, 3, 3), (1, 1), (1, 1), (1, 1), 2),
    "depthwise": ((3, 3, 7, 7), (3, 3, 3), (2, 2), (1, 1), (1, 1), 3),
    "batch1_1x1": ((1, 5, 6, 4), (7, 1, 1), (1, 1), (0, 0), (1, 1), 1),
    "pad_gt_k": ((2, 1, 5, 6), (2, 2, 2), (1, 1), (3, 2), (1, 1), 1),
    "kernel_eq_input": ((4, 2, 5, 5), (3, 5, 5), (1, 1), (0, 0), (1, 1), 1),
    "cifar_3x3": ((4, 16, 8, 8), (32, 3, 3), (2, 2), (1, 1), (1, 1), 1),
}


def _conv_inputs(row, dtype, seed=0):
    xs, (C_out, KH, KW), stride, padding, dilation, groups = row
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((C_out, xs[1] // groups, KH, KW)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)




@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", CONV_ROWS)
def test_conv2d_equals_reference(name, dtype):
    x, w, b, kw = _conv_inputs(CONV_ROWS[name], dtype)
    y_ref, g_ref, go = _run(ref_conv.Conv2d, [x, w, b], kw)
    y, gs, _ = _run(nc.Conv2d, [x, w, b], kw, grad_out=go)
    tol = TOL[dtype]
    _close(y, y_ref, tol, f"{name} forward")
    for what, a, e in zip(("grad_x", "grad_w", "grad_b"), gs, g_ref):
        _close(a, e, tol, f"{name} {what}")


@pytest.mark.parametrize("name", CONV_ROWS)
def test_conv2d_equals_torch(name):
    pytest.importorskip("torch")
    x, w, b, kw = _conv_inputs(CONV_ROWS[name], np.float64, seed=2)
    assert_conv_equals_torch(nc.Conv2d, x, w, b, kw, name)


def test_conv2d_without_bias_and_partial_grads():
    x, w, _, kw = _conv_inputs(CONV_ROWS["odd_3x3_p1"], np.float64)
    xt, wt = Tensor(x), Tensor(w, requires_grad=True)          # the input needs no gradient
    y = nc.Conv2d.apply(xt, wt, None, **kw)
    go = np.random.default_rng(3).standard_normal(y.shape)
    y.backward(Tensor(go))
    xr, wr = Tensor(x), Tensor(w, requires_grad=True)
    yr = ref_conv.Conv2d.apply(xr, wr, None, **kw)
    yr.backward(Tensor(go))
    _close(y._data, yr._data, 1e-10, "no-bias forward")
    _close(wt.grad._data, wr.grad._data, 1e-10, "no-bias grad_w")
    assert xt.grad is None


@pytest.mark.parametrize("mode", ["parallel", "pool", "serial"])
def test_conv2d_bit_identical_across_reruns_and_threading(mode, monkeypatch):
    """Every output element is summed by one loop iteration in a fixed order: the same bits
    for every rerun, every threading mode and thread count."""
    x, w, b, kw = _conv_inputs(CONV_ROWS["lenet_c3"], np.float32)
    monkeypatch.setattr(_jit, "THREADING", "serial")
    base_y, base_g, go = _run(nc.Conv2d, [x, w, b], kw)
    monkeypatch.setattr(_jit, "THREADING", mode)
    monkeypatch.setattr(_jit, "MIN_PARALLEL_WORK", 0)          # split even these small calls
    for threads in (1, 2, 3):
        monkeypatch.setattr(_jit, "num_threads", lambda n=threads: n)
        for _ in range(2):
            y, gs, _ = _run(nc.Conv2d, [x, w, b], kw, grad_out=go)
            assert np.array_equal(y, base_y)
            for a, e in zip(gs, base_g):
                assert np.array_equal(a, e)


def test_conv2d_falls_back_for_other_dtypes():
    x, w, b, kw = _conv_inputs(CONV_ROWS["odd_3x3_p1"], np.float32)
    w64 = w.astype(np.float64)                                 # mixed dtypes: the NumPy path runs
    assert not nc.covers(x, w64, b)
    y, gs, go = _run(nc.Conv2d, [x, w64, b], kw)
    y_ref, g_ref, _ = _run(nc._FallbackConv2d, [x, w64, b], kw, grad_out=go)
    assert np.array_equal(y, y_ref)
    for a, e in zip(gs, g_ref):
        assert np.array_equal(a, e)


def test_output_keeps_the_batch_innermost_layout():
    x, w, b, kw = _conv_inputs(CONV_ROWS["lenet_c3"], np.float32)
    y = nc.Conv2d.apply(Tensor(x), Tensor(w), Tensor(b), **kw)._data
    assert y.transpose(1, 2, 3, 0).flags.c_contiguous         # (C_out, OH, OW, N) underneath


def test_imports_and_falls_back_without_numba(tmp_path):
    """numba not importable: ember.kernels.numba_conv still imports, AVAILABLE is False, and
    Conv2d gives the NumPy path's numbers."""
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import numpy as np\n"
        "from ember.kernels import numba_conv as nc\n"
        "from ember.ops import conv as ref\n"
        "from ember.tensor import Tensor\n"
        "assert not nc.AVAILABLE\n"
        "x = np.random.default_rng(0).standard_normal((2, 3, 7, 7)).astype(np.float32)\n"
        "w = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)\n"
        "a = nc.Conv2d.apply(Tensor(x), Tensor(w), None, padding=(1, 1))._data\n"
        "r = nc._FallbackConv2d.apply(Tensor(x), Tensor(w), None, padding=(1, 1))._data\n"
        "assert np.array_equal(a, r)\n"
        "print('ok')\n")
    assert run_python(code, tmp_path) == "ok"


def run_python(code, cwd, timeout=300):
    """Run ``code`` in a fresh Python with this checkout's ember first on the path; its stdout
    (stripped). Raises AssertionError with the end of stderr if it fails."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=cwd, timeout=timeout)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_wide_vectors_drops_llvms_256_bit_preference_only_on_avx512():
    """The CPU features ember gives numba: the host's plus -prefer-256-bit where AVX-512 is
    there (a "-avx512f" entry means absent), unchanged (None) without it or with
    EMBER_VECTOR_WIDTH=256."""
    assert _jit.wide_vectors("+avx2,+avx512f,+fma", "") == "+avx2,+avx512f,+fma,-prefer-256-bit"
    assert _jit.wide_vectors("+avx2,-avx512f,+fma", "") is None
    assert _jit.wide_vectors("+neon", "") is None
    assert _jit.wide_vectors("+avx2,+avx512f", "256") is None
    assert _jit.wide_vectors("+avx2,+avx512f", "512") == "+avx2,+avx512f,-prefer-256-bit"


@pytest.mark.parametrize("env, wide", [({}, True), ({"EMBER_VECTOR_WIDTH": "256"}, False),
                                       ({"NUMBA_CPU_FEATURES": "HOST"}, False)])
def test_numba_compiles_with_the_features_ember_chose(tmp_path, monkeypatch, env, wide):
    """In a fresh process importing ember's kernels, numba's code generator (whose features key
    the disk cache) has -prefer-256-bit on an AVX-512 host by default, not with
    EMBER_VECTOR_WIDTH=256, and a user's own NUMBA_CPU_FEATURES is left as given."""
    from numba.core.codegen import get_host_cpu_features
    host = get_host_cpu_features()
    monkeypatch.delenv("EMBER_VECTOR_WIDTH", raising=False)
    monkeypatch.delenv("NUMBA_CPU_FEATURES", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, host if v == "HOST" else v)
    code = ("from ember.kernels import numba_conv\n"
            "from numba.core.registry import cpu_target\n"
            "print(cpu_target.target_context.codegen().magic_tuple()[2])\n")
    features = run_python(code, tmp_path)
    avx512 = "+avx512f" in host.split(",")
    assert features == (host + ",-prefer-256-bit" if wide and avx512 else host)


# ---------------------------------------------------------------------------------- max pool

from ember.kernels import numba_pool as npool  # noqa: E402

# id: x shape, kernel, stride, padding, layout of x ("chwn": a conv output's memory order)
POOL_ROWS = {
    "lenet_s2": ((8, 6, 28, 28), (2, 2), (2, 2), (0, 0), "chwn"),
    "lenet_s4_nchw": ((3, 16, 10, 10), (2, 2), (2, 2), (0, 0), "nchw"),
    "overlap_3s2_p1": ((2, 3, 9, 8), (3, 3), (2, 2), (1, 1), "chwn"),
    "rect_odd": ((2, 2, 7, 11), (2, 3), (1, 2), (1, 1), "nchw"),
    "odd_size_floor": ((5, 2, 7, 7), (2, 2), (2, 2), (0, 0), "chwn"),
    "nchw_batch_copied_to_chwn": ((12, 3, 9, 8), (3, 2), (2, 2), (1, 1), "nchw"),   # N >= CHWN_MIN_BATCH
    "nchw_rows_overlap": ((2, 3, 9, 10), (3, 3), (2, 1), (1, 1), "nchw"),
}


def _pool_input(row, dtype, seed=0, ties=True):
    shape, _, _, _, layout = row
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    if ties:                                                   # ReLU outputs: many equal zeros
        x = np.maximum(x, 0).astype(dtype)
    if layout == "chwn":
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    return x


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", POOL_ROWS)
def test_max_pool_equals_reference(name, dtype):
    row = POOL_ROWS[name]
    x = _pool_input(row, dtype)
    kw = dict(kernel_size=row[1], stride=row[2], padding=row[3])
    y_ref, (g_ref,), go = _run(ref_pool.MaxPool2d, [x], kw)
    y, (g,), _ = _run(npool.MaxPool2d, [x], kw, grad_out=go)
    assert np.array_equal(y, y_ref), name                     # a max is exact
    if all(s >= k for s, k in zip(row[2], row[1])):           # one term per pixel: exact
        assert np.array_equal(g, g_ref), name
    else:                                                      # overlapping windows add in another order
        _close(g, g_ref, TOL[dtype], f"{name} grad_x")
    if row[4] == "chwn":                                       # the layout is kept
        assert y.transpose(1, 2, 3, 0).flags.c_contiguous


@pytest.mark.parametrize("name", POOL_ROWS)
def test_max_pool_equals_torch(name):
    torch = pytest.importorskip("torch")
    row = POOL_ROWS[name]
    x = _pool_input(row, np.float64, seed=4, ties=False)       # torch breaks ties its own way
    kw = dict(kernel_size=row[1], stride=row[2], padding=row[3])
    y, (g,), go = _run(npool.MaxPool2d, [x], kw)
    tx = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, **kw)
    ty.backward(torch.tensor(go))
    _close(y, ty.detach().numpy(), 1e-12, f"{name} forward vs torch")
    _close(g, tx.grad.numpy(), 1e-12, f"{name} grad_x vs torch")


def test_max_pool_nan_and_threading_bits(monkeypatch):
    """A NaN in a window: y is NaN and the gradient goes to the NaN (np.argmax's and PyTorch's
    choice); the same bits in every threading mode."""
    torch = pytest.importorskip("torch")
    row = POOL_ROWS["overlap_3s2_p1"]
    x = _pool_input(row, np.float32, ties=False)
    x[0, 1, 2, 3] = np.nan
    kw = dict(kernel_size=row[1], stride=row[2], padding=row[3])
    tx = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, **kw)
    go = np.random.default_rng(1).standard_normal(ty.shape).astype(np.float32)
    ty.backward(torch.tensor(go))
    monkeypatch.setattr(_jit, "MIN_PARALLEL_WORK", 0)
    results = []
    for mode in ("serial", "pool", "parallel"):
        monkeypatch.setattr(_jit, "THREADING", mode)
        y, (g,), _ = _run(npool.MaxPool2d, [x], kw, grad_out=go)
        assert np.array_equal(y, ty.detach().numpy(), equal_nan=True)
        _close(g, tx.grad.numpy(), 1e-6, f"grad_x with a NaN ({mode})")
        results.append((y, g))
    for y, g in results[1:]:
        assert np.array_equal(y, results[0][0], equal_nan=True) and np.array_equal(g, results[0][1])


def test_kernels_benchmark_tiny_runs():
    """CI runs the benchmark once in its tiny configuration so it cannot rot (no timing checked)."""
    pytest.importorskip("torch")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "kernels_numba.py"), "--tiny"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for text in ("torch.get_num_threads()", "threadpoolctl:", "conv2 6→16 k5", "max_pool2d",
                 "LeNet-5 training step", "LeNet-5 inference"):
        assert text in proc.stdout, text


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pool_threads_work_in_a_forked_child(monkeypatch):
    """DataLoader workers fork: the child must start its own pool threads, not wait on the parent's."""
    monkeypatch.setattr(_jit, "THREADING", "pool")
    monkeypatch.setattr(_jit, "MIN_PARALLEL_WORK", 0)
    x, w, b, kw = _conv_inputs(CONV_ROWS["lenet_c3"], np.float32)
    expected = nc.Conv2d.apply(Tensor(x), Tensor(w), Tensor(b), **kw)._data   # starts the pool here
    r, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:                                               # child: same call, report, exit
        try:
            y = nc.Conv2d.apply(Tensor(x), Tensor(w), Tensor(b), **kw)._data
            os.write(wfd, b"1" if np.array_equal(y, expected) else b"0")
        finally:
            os._exit(0)
    os.close(wfd)
    _, status = os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1" and status == 0


# ------------------------------------------------------------------------ fused conv + ReLU

class _RefConvReLU:
    """The composition the fused op must equal: ops.conv.Conv2d, then the reference ReLU."""
    @staticmethod
    def apply(x, w, b, **kw):
        return ref_act.ReLU.apply(ref_conv.Conv2d.apply(x, w, b, **kw))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["lenet_c1", "lenet_c3", "rect_k_s2", "groups2", "dilated"])
def test_conv_relu_equals_reference(name, dtype):
    x, w, b, kw = _conv_inputs(CONV_ROWS[name], dtype)
    y_ref, g_ref, go = _run(_RefConvReLU, [x, w, b], kw)
    y, gs, _ = _run(nc.Conv2dReLU, [x, w, b], kw, grad_out=go)
    assert (y == 0).any() and (y > 0).any()
    _close(y, y_ref, TOL[dtype], f"{name} conv+relu forward")
    for what, a, e in zip(("grad_x", "grad_w", "grad_b"), gs, g_ref):
        _close(a, e, TOL[dtype], f"{name} conv+relu {what}")
    x32, w64 = x.astype(np.float32), w.astype(np.float64)     # mixed dtypes: the fallback path
    assert not nc.covers(x32, w64, b)
    y_f, gs_f, _ = _run(nc.Conv2dReLU, [x32, w64, b], kw, grad_out=go.astype(np.float64))
    y_r, gr_f, _ = _run(_RefConvReLU, [x32, w64, b], kw, grad_out=go.astype(np.float64))
    _close(y_f, y_r, 1e-10, f"{name} conv+relu fallback forward")
    for a, e in zip(gs_f, gr_f):
        _close(a, e, 1e-10, f"{name} conv+relu fallback grad")


def test_conv_relu_equals_torch():
    torch = pytest.importorskip("torch")
    x, w, b, kw = _conv_inputs(CONV_ROWS["odd_3x3_p1"], np.float64, seed=5)
    y, gs, go = _run(nc.Conv2dReLU, [x, w, b], kw)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.relu(torch.nn.functional.conv2d(tx, tw, tb, **kw))
    ty.backward(torch.tensor(go))
    _close(y, ty.detach().numpy(), 1e-10, "conv+relu forward vs torch")
    for what, a, t in zip(("grad_x", "grad_w", "grad_b"), gs, (tx, tw, tb)):
        _close(a, t.grad.numpy(), 1e-10, f"conv+relu {what} vs torch")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_mask_sums_grad_b_on_the_way(dtype, monkeypatch):
    """The ReLU mask's pass sums the bias gradient on the way (as ``conv2d_grad_b`` would over
    its output: a sum per row in g's dtype, the rows added in float64), deterministically
    whatever the threads; g is exactly the mask."""
    rng = np.random.default_rng(3)
    y = np.maximum(rng.standard_normal((5, 6, 7, 9)), 0).astype(dtype)    # (C, OH, OW, N)
    go = rng.standard_normal((9, 5, 6, 7)).astype(dtype).transpose(1, 2, 3, 0)
    g, gb = nc.relu_mask(go, y)
    assert np.array_equal(g, go * (y > 0)) and gb.dtype == dtype
    exact = (go * (y > 0)).astype(np.float64).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(gb, exact, rtol=1e-12 if dtype == np.float64 else 1e-5)
    np.testing.assert_allclose(gb, nc.conv2d_grad_b(g), rtol=1e-12 if dtype == np.float64 else 1e-5)
    monkeypatch.setattr(_jit, "MIN_PARALLEL_WORK", 0)
    for threading in ("serial", "pool"):
        monkeypatch.setattr(_jit, "THREADING", threading)
        assert np.array_equal(nc.relu_mask(go, y)[1], gb)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_max_pool_2x2_path_nan_inf_and_ties_bit_for_bit(dtype):
    """The 2×2 stride-2 windows' register path (``_max2x2``): NaN at every window offset (the
    first NaN wins and takes the gradient), two NaNs in one window, ±inf, and ties (the earlier
    offset keeps the max): the reference op's output and gradient exactly, CHWN layout."""
    rng = np.random.default_rng(11)
    x = rng.integers(-2, 3, size=(9, 3, 6, 7)).astype(dtype)  # small integers: many ties
    for n, k in enumerate(range(4)):                           # a NaN at offset k of a window
        x[n, 0, 2 + k // 2, 2 + k % 2] = np.nan
    x[4, 1, 0, 1] = x[4, 1, 1, 0] = np.nan                     # two NaNs, offsets 1 and 2
    x[5, 2, 2:4, 4:6] = -np.inf                                # a window of -inf only
    x[6, 2, 3, 1] = np.inf
    x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)   # CHWN in memory
    kw = dict(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))
    go = np.random.default_rng(2).standard_normal((9, 3, 3, 3)).astype(dtype)
    y_ref, (g_ref,), _ = _run(ref_pool.MaxPool2d, [x], kw, grad_out=go)
    y, (g,), _ = _run(npool.MaxPool2d, [x], kw, grad_out=go)
    assert np.isnan(y).sum() == 5 and np.isneginf(y).sum() == 1 and np.isposinf(y).sum() == 1
    assert np.array_equal(y, y_ref, equal_nan=True)
    assert np.array_equal(g, g_ref, equal_nan=True)
