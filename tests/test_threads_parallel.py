"""ember.kernels.threads' intra-op parallelism: parallel_for and the Conv2d paths that use it.

Conv2d splits its work between threads only above ``MIN_PART_FLOATS`` (LeNet at batch >= 128),
so the tests force the split with a tiny threshold and check that the threaded paths compute
exactly what PyTorch does (float64), deterministically, and that errors raised on a worker come
back to the caller.
"""
import threading

import numpy as np
import pytest

import ember
from ember.kernels import threads
from ember.models import lenet5
from ember.nn import functional as F
from ember.kernels import conv as conv_ops  # the NumPy fast (CHWN, blocked, threaded) Conv2d
from ember.kernels import pool as pool_ops
from ember.ops import conv as ref_conv, pool as ref_pool
from ember.optim import SGD
from ember.tensor import Tensor


@pytest.fixture(autouse=True)
def fast_kernels(monkeypatch):
    """These tests are about the NumPy kernels that use ember's thread pool (kernels.conv.Conv2d,
    kernels.pool.MaxPool2d): dispatch picks them here even when numba's kernels are registered,
    and even under EMBER_KERNELS=reference."""
    monkeypatch.setitem(ember.kernels._KERNELS, ref_conv.Conv2d, conv_ops.Conv2d)
    monkeypatch.setitem(ember.kernels._KERNELS, ref_pool.MaxPool2d, pool_ops.MaxPool2d)
    with ember.kernels.use("fast"):
        yield


@pytest.fixture
def two_threads(monkeypatch):
    """Two threads, and every op's work large enough to be split."""
    saved = threads.get_num_threads()
    threads.set_num_threads(2)
    monkeypatch.setattr(threads, "MIN_PART_FLOATS", 1)
    yield
    threads.set_num_threads(saved)


def test_parallel_for_runs_parts_on_two_threads_and_keeps_their_order(two_threads):
    names = {}

    def part(i):
        names[i] = threading.current_thread().name
        return i * i
    assert threads.parallel_for(part, [3, 4]) == [9, 16]
    assert names[3] == threading.current_thread().name and names[4].startswith("ember-worker")


def test_parallel_for_reraises_a_workers_error_after_all_parts_finished(two_threads):
    finished = []

    def part(i):
        if i == 1:
            raise KeyError("part 1 failed")
        finished.append(i)
    with pytest.raises(KeyError, match="part 1 failed"):
        threads.parallel_for(part, [0, 1])
    assert finished == [0]
    assert threads.parallel_for(lambda i: i + 1, [0, 1]) == [1, 2]   # the pool still works


def test_parallel_for_inside_a_part_runs_serially(two_threads):
    def part(i):
        return threads.parallel_for(lambda j: threading.current_thread().name, [0, 1])
    outer = threads.parallel_for(part, [0, 1])
    assert len(set(outer[1])) == 1                                  # the worker ran both inner parts


def test_num_parts_respects_thread_count_and_threshold(monkeypatch):
    saved = threads.get_num_threads()
    try:
        threads.set_num_threads(2)
        monkeypatch.setattr(threads, "MIN_PART_FLOATS", 1000)
        assert threads.num_parts(999) == 1 and threads.num_parts(2000) == 2 and threads.num_parts(10 ** 9) == 2
        threads.set_num_threads(1)
        assert threads.num_parts(10 ** 9) == 1
    finally:
        threads.set_num_threads(saved)


def _conv_case(rng, N=4, C=3, H=10, O=5, k=3):
    return rng.standard_normal((N, C, H, H)), rng.standard_normal((O, C, k, k)), rng.standard_normal(O)


@pytest.mark.parametrize("x_needs_grad", [True, False])
@pytest.mark.parametrize("block_bytes", [64, 1 << 20])            # pixel blocks / row blocks
def test_threaded_conv2d_matches_torch_in_float64(two_threads, monkeypatch, x_needs_grad, block_bytes):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(conv_ops, "_BLOCK_BYTES", block_bytes)
    calls = []
    real = threads.parallel_for

    def spy(fn, parts):
        parts = list(parts)
        calls.append(len(parts))
        return real(fn, parts)
    monkeypatch.setattr(conv_ops, "parallel_for", spy)
    rng = np.random.default_rng(0)
    x, w, b = _conv_case(rng)
    ex, ew, eb = Tensor(x, requires_grad=x_needs_grad), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
    tx, tw, tb = torch.tensor(x, requires_grad=x_needs_grad), torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    u = rng.standard_normal((4, 5, 8, 8))
    e_out = F.conv2d(ex, ew, eb, padding=0)
    t_out = torch.nn.functional.conv2d(tx, tw, tb)
    e_out.backward(u)
    t_out.backward(torch.from_numpy(u))
    np.testing.assert_allclose(e_out.numpy(), t_out.detach().numpy(), rtol=1e-10, atol=1e-10)
    pairs = [(ew, tw), (eb, tb)] + ([(ex, tx)] if x_needs_grad else [])
    for e, t in pairs:
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-10)
    assert calls == [2, 2]                                          # forward and grad_w were split


def test_a_weight_used_twice_by_threaded_convs_sums_its_gradients(two_threads):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, w, _ = _conv_case(rng, C=3, O=3)
    ex, ew = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (F.conv2d(F.conv2d(ex, ew, padding=1), ew) * 1.5).sum().backward()
    (torch.nn.functional.conv2d(torch.nn.functional.conv2d(tx, tw, padding=1), tw) * 1.5).sum().backward()
    np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_an_error_on_a_worker_reaches_backward(two_threads, monkeypatch):
    rng = np.random.default_rng(2)
    x, w, _ = _conv_case(rng)
    ew = Tensor(w, requires_grad=True)
    y = F.conv2d(Tensor(x), ew).sum()
    real = conv_ops._columns_chwn

    def broken(xc, block, *a):
        if threading.current_thread().name.startswith("ember-worker"):
            raise MemoryError("no room for the columns")
        return real(xc, block, *a)
    monkeypatch.setattr(conv_ops, "_columns_chwn", broken)      # grad_w rebuilds the columns
    with pytest.raises(MemoryError, match="no room for the columns"):
        y.backward()
    assert ew.grad is None


def test_lenet_step_is_deterministic_and_agrees_with_one_thread(monkeypatch):
    """Same seed, same batch: the two-thread step is bit-for-bit repeatable and within float32
    rounding of the one-thread step (partial sums are added in a fixed order)."""
    monkeypatch.setattr(threads, "MIN_PART_FLOATS", 1)
    x = np.random.default_rng(3).standard_normal((32, 1, 28, 28)).astype(np.float32)
    y = np.arange(32) % 10
    saved = threads.get_num_threads()

    def step(n):
        threads.set_num_threads(n)
        ember.manual_seed(0)
        model = lenet5()
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
        loss = F.cross_entropy(model(Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return [p.grad.numpy().copy() for p in model.parameters()]
    try:
        a, b, one = step(2), step(2), step(1)
    finally:
        threads.set_num_threads(saved)
    for ga, gb, g1 in zip(a, b, one):
        assert np.array_equal(ga, gb)
        np.testing.assert_allclose(ga, g1, rtol=1e-4, atol=1e-6)


def test_workers_gemms_run_with_blas_at_one_thread(two_threads):
    """OpenBLAS ignores thread-count changes made off the main thread, so the main thread sets
    one BLAS thread before handing work off; otherwise the workers' GEMMs ran two-threaded."""
    if not threads._numpy_blas():
        pytest.skip("threadpoolctl cannot see NumPy's BLAS")
    blas = threads._numpy_blas()[0]
    assert blas.num_threads == 2                                    # set_num_threads(2) set it
    assert threads.parallel_for(lambda i: blas.num_threads, [0, 1]) == [1, 1]


@pytest.mark.parametrize("chwn", [True, False])                  # split along C / along N
def test_threaded_relu_and_max_pool_match_torch_with_ties(two_threads, chwn):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = np.round(rng.standard_normal((4, 6, 8, 8)), 1)            # rounding: ties inside windows
    if chwn:
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    ex, tx = Tensor(x, requires_grad=True), torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    u = rng.standard_normal((4, 6, 4, 4))
    e_out = F.max_pool2d(F.relu(ex), 2)
    t_out = torch.nn.functional.max_pool2d(torch.relu(tx), 2)
    e_out.backward(u)
    t_out.backward(torch.from_numpy(u))
    np.testing.assert_array_equal(e_out.numpy(), t_out.detach().numpy())
    np.testing.assert_array_equal(ex.grad.numpy(), tx.grad.numpy())



def test_an_unregistered_kernel_worker_does_not_hang_exit(tmp_path):
    """The compiled kernels' pool wakes all its workers at exit. A SIGTERM or Ctrl-C landing in
    ThreadPoolExecutor.submit between a worker's start and its registration for the executor's
    exit hook (simulated: the registry cleared) used to leave the worker waiting for work and
    interpreter exit waiting for it: ``ember train`` hung after saying it was terminated."""
    import subprocess
    import sys
    nc = pytest.importorskip("ember.kernels.numba_conv")
    if not nc.AVAILABLE:
        pytest.skip("numba is not installed")
    code = ("import numpy as np\n"
            "from ember.kernels import _jit, numba_conv as nc, threads\n"
            "from concurrent.futures import thread\n"
            "threads.set_num_threads(2); _jit.THREADING = 'pool'; _jit.MIN_PARALLEL_WORK = 0\n"
            "nc.conv2d_grad_b(np.ones((8, 4, 4, 3), np.float32))   # starts a pool worker\n"
            "assert _jit._pool is not None and _jit._pool._threads\n"
            "thread._threads_queues.clear()                        # as if its registration was cut off\n"
            "print('exiting', flush=True)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, "EMBER_NUMBA_THREADING": "pool"})
    assert p.returncode == 0 and p.stdout.strip() == "exiting", p.stderr[-2000:]
