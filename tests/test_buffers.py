"""ember.kernels.buffers: a pooled buffer is handed out again only when nothing can reach its memory,
and the kernels give the same results whether their outputs come from the pool or not."""
import os
import subprocess
import sys

import numpy as np
import pytest

import ember
import ember.nn as nn
from ember.kernels import _jit, buffers

SHAPE = (16, 34, 34, 32)                                       # float32: 2.4 MB, over MIN_BYTES


@pytest.fixture
def pool(monkeypatch):
    """A fresh, empty pool of 64 MiB for the test (the process's own pool is put back after)."""
    monkeypatch.setattr(buffers, "_owners", {})
    monkeypatch.setattr(buffers, "_held", 0)
    monkeypatch.setattr(buffers, "LIMIT_BYTES", 64 << 20)
    return buffers


def test_freed_buffer_is_reused_and_live_one_is_not(pool):
    a = pool.empty(SHAPE, np.float32)
    assert a.shape == SHAPE and a.dtype == np.float32 and a.flags.c_contiguous
    b = pool.empty(SHAPE, np.float32)
    assert not np.shares_memory(a, b)                          # a is alive: b gets new memory
    address = a.__array_interface__["data"][0]
    del a
    c = pool.empty(SHAPE, np.float32)
    assert c.__array_interface__["data"][0] == address         # a's memory, now that a is gone
    assert pool.held_bytes() == 2 * c.nbytes


@pytest.mark.parametrize("keep", ["transpose", "slice", "reshape", "tensor", "memoryview", "view-of-view"])
def test_any_alias_keeps_the_buffer_in_use(pool, keep):
    a = pool.empty(SHAPE, np.float32)
    a[...] = 7.0
    alias = {"transpose": lambda: a.transpose(3, 0, 1, 2),
             "slice": lambda: a[3:5, 1:-1],
             "reshape": lambda: a.reshape(-1),
             "tensor": lambda: ember.from_numpy(a.transpose(3, 0, 1, 2)),
             "memoryview": lambda: memoryview(a),
             "view-of-view": lambda: a.T[::2][1:, 2].swapaxes(0, 1)[::3]}[keep]()
    assert np.shares_memory(alias.numpy() if keep == "tensor" else np.asarray(alias), a)
    del a
    for _ in range(3):                                         # none of these may take alias's memory
        b = pool.empty(SHAPE, np.float32)
        b[...] = -1.0
        assert np.all((alias.numpy() if keep == "tensor" else np.asarray(alias)) == 7.0)
    held = pool.held_bytes()                                   # alias's buffer and two of b's
    assert held == 3 * b.nbytes
    del alias, b
    again = [pool.empty(SHAPE, np.float32) for _ in range(3)]
    assert pool.held_bytes() == held                           # all three free again: all reused
    assert len({d.__array_interface__["data"][0] for d in again}) == 3


def test_small_arrays_and_a_full_pool_use_plain_numpy(pool):
    small = pool.empty((10, 10), np.float64)
    assert small.base is None and pool.held_bytes() == 0       # under MIN_BYTES: np.empty's own
    pool.LIMIT_BYTES = 5 << 20                                 # room for two 2.4 MB buffers
    a, b = pool.empty(SHAPE, np.float32), pool.empty(SHAPE, np.float32)
    c = pool.empty(SHAPE, np.float32)                          # over the limit, none free: not pooled
    assert c.base is None and pool.held_bytes() == 2 * a.nbytes
    del a
    big = pool.empty((3,) + SHAPE, np.float32)                 # 7.1 MB: over even with a dropped
    assert big.base is None
    assert pool.held_bytes() == b.nbytes                       # a's free buffer was dropped to try


def test_empty_cache_releases_only_free_buffers(pool):
    a, b = pool.empty(SHAPE, np.float32), pool.empty(SHAPE, np.float64)
    del a
    assert pool.empty_cache() == int(np.prod(SHAPE)) * 4
    assert pool.held_bytes() == b.nbytes
    b[...] = 1.5
    c = pool.empty(SHAPE, np.float64)                          # b is alive: new memory
    c[...] = 0.0
    assert not np.shares_memory(b, c) and np.all(b == 1.5)


def test_zeros_is_zero_even_on_a_reused_buffer(pool):
    a = pool.empty(SHAPE, np.float32)
    a[...] = 3.0
    del a
    z = pool.zeros(SHAPE, np.float32)
    assert np.count_nonzero(z) == 0


def test_pool_off_and_bad_setting():
    env = dict(os.environ, EMBER_BUFFER_POOL_MB="0")
    code = ("import numpy as np; from ember.kernels import buffers as b; "
            "a = b.empty((64, 1024, 64), np.float32); print(a.base is None, b.held_bytes())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "0"]
    env["EMBER_BUFFER_POOL_MB"] = "lots"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "EMBER_BUFFER_POOL_MB must be a number of MiB >= 0, got 'lots'" in bad.stderr


def _train(steps, limit, monkeypatch):
    monkeypatch.setattr(buffers, "_owners", {})
    monkeypatch.setattr(buffers, "_held", 0)
    monkeypatch.setattr(buffers, "LIMIT_BYTES", limit)
    ember.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    opt = ember.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(1)
    x = ember.tensor(rng.standard_normal((64, 3, 24, 24)).astype(np.float32))
    y = ember.tensor(rng.integers(0, 10, 64))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [p.detach().numpy().copy() for p in net.parameters()]


@pytest.mark.skipif(not _jit.AVAILABLE, reason="the pool serves the compiled kernels")
def test_training_is_bit_identical_with_and_without_the_pool(monkeypatch):
    with ember.kernels.use("fast"):                            # also under EMBER_KERNELS=reference
        on_losses, on_params = _train(4, 256 << 20, monkeypatch)
        assert buffers.held_bytes() > 0                        # the kernels did use the pool
        off_losses, off_params = _train(4, 0, monkeypatch)
    assert buffers.held_bytes() == 0
    assert on_losses == off_losses
    for a, b in zip(on_params, off_params):
        assert np.array_equal(a, b)
