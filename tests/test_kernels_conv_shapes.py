"""ember.kernels.gemm_conv (im2col + GEMM in chunks) and the shape-based Conv2d choice.

Each row runs the same inputs and upstream gradient through the reference op (ember.ops.conv)
and the kernel, forward and every gradient: float64 to 1e-10, float32 to 1e-5 relative to the
reference's largest magnitude; then against PyTorch in float64. The GEMM path is forced (small
chunks, so a call spans many chunks and several threads); the registered Conv2d is checked at
the networks' own shape classes too. Bit-identical results across reruns and thread counts.
No timing here (benchmarks/conv_layers.py times them).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import assert_conv_equals_reference, assert_same_bits_across_thread_counts, assert_conv_equals_torch, close_scaled as _close, run_with_grads as _run

from ember import kernels, threads
from ember.kernels import gemm_conv as gc
from ember.ops import conv as ref_conv
from ember.tensor import Tensor

pytestmark = pytest.mark.skipif(not gc.AVAILABLE, reason="numba is not installed")

TOL = {np.float64: 1e-10, np.float32: 1e-5}

# id: (N, C_in, H, W), (C_out, KH, KW), stride, padding, dilation
ROWS = {
    "cifar_3x3_p1": ((3, 16, 8, 8), (16, 3, 3), (1, 1), (1, 1), (1, 1)),
    "cifar_s2": ((4, 16, 9, 8), (32, 3, 3), (2, 2), (1, 1), (1, 1)),
    "deck_7x7": ((2, 3, 17, 15), (16, 7, 7), (1, 1), (0, 0), (1, 1)),
    "deck_s2_odd": ((2, 16, 13, 11), (32, 3, 3), (2, 2), (1, 1), (1, 1)),
    "one_by_one": ((3, 8, 5, 7), (12, 1, 1), (1, 1), (0, 0), (1, 1)),
    "one_by_one_s2_pad": ((2, 5, 7, 6), (4, 1, 1), (2, 2), (1, 1), (1, 1)),
    "batch1_rect": ((1, 4, 10, 9), (6, 3, 2), (2, 1), (0, 1), (1, 1)),
    "pad_gt_k": ((2, 2, 5, 6), (3, 2, 2), (1, 1), (3, 2), (1, 1)),
    "dilated": ((2, 3, 12, 11), (5, 3, 2), (1, 2), (2, 1), (2, 3)),
    "s3_odd": ((2, 3, 10, 13), (2, 3, 3), (3, 2), (2, 2), (1, 1)),
}


@pytest.fixture
def forced(monkeypatch):
    """The GEMM path for every call, tiny chunks (many per call), threads for every call."""
    monkeypatch.setattr(gc, "choose", lambda *a: "gemm")
    monkeypatch.setattr(gc, "CHUNK_BYTES", 2048)
    monkeypatch.setattr(gc, "GROUP_CHUNKS", 2)
    monkeypatch.setattr(threads, "MIN_PART_FLOATS", 1)


def _inputs(row, dtype, seed=0):
    xs, (C_out, KH, KW), stride, padding, dilation = row
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((C_out, xs[1], KH, KW)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation)




@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ROWS)
def test_gemm_conv_equals_reference(name, dtype, forced):
    x, w, b, kw = _inputs(ROWS[name], dtype)
    assert_conv_equals_reference(gc.Conv2d, x, w, b, kw, TOL[dtype], name)


@pytest.mark.parametrize("name", ROWS)
def test_gemm_conv_equals_torch(name, forced):
    pytest.importorskip("torch")
    x, w, b, kw = _inputs(ROWS[name], np.float64, seed=2)
    assert_conv_equals_torch(gc.Conv2d, x, w, b, kw, name)


def test_gemm_conv_no_bias_input_without_grad(forced):
    x, w, _, kw = _inputs(ROWS["cifar_s2"], np.float64)
    xt, wt = Tensor(x), Tensor(w, requires_grad=True)          # the first layer: no grad_x
    y = gc.Conv2d.apply(xt, wt, None, **kw)
    go = np.random.default_rng(3).standard_normal(y.shape)
    y.backward(Tensor(go))
    xr, wr = Tensor(x), Tensor(w, requires_grad=True)
    yr = ref_conv.Conv2d.apply(xr, wr, None, **kw)
    yr.backward(Tensor(go))
    _close(y._data, yr._data, 1e-10, "no-bias forward")
    _close(wt.grad._data, wr.grad._data, 1e-10, "no-bias grad_w")
    assert xt.grad is None


def test_gemm_conv_empty_batch(forced):
    x, w, b, kw = _inputs(((0, 4, 6, 6), (8, 3, 3), (1, 1), (1, 1), (1, 1)), np.float32)
    y, gs, _ = _run(gc.Conv2d, [x, w, b], kw)
    assert y.shape == (0, 8, 6, 6)
    assert gs[0].shape == x.shape and not np.any(gs[1]) and not np.any(gs[2])


@pytest.mark.parametrize("name", ["cifar_3x3_p1", "deck_s2_odd", "one_by_one", "deck_7x7"])
def test_gemm_conv_bit_identical_across_reruns_and_thread_counts(name, forced, monkeypatch):
    """Chunks are fixed by the shapes, each float is summed by one GEMM or one col2im pass in a
    fixed order: the same bits for every rerun and thread count."""
    x, w, b, kw = _inputs(ROWS[name], np.float32)
    assert_same_bits_across_thread_counts(gc.Conv2d, [x, w, b], kw)


def test_choice_keeps_lenet_on_the_direct_kernel_and_takes_gemm_and_winograd_where_measured():
    d = (1, 1)
    for B in (1, 64, 256, 1000):                               # LeNet's convs stay on numba_conv
        assert gc.choose((B, 1, 28, 28), (6, 1, 5, 5), d, (2, 2), d, "forward") == "direct"
        assert gc.choose((B, 6, 14, 14), (16, 6, 5, 5), d, (0, 0), d, "grad_x") == "direct"
    deck = [((8, 3, 256, 256), (16, 3, 7, 7), 1, "direct"), ((8, 16, 250, 250), (32, 16, 3, 3), 2, "phase"),
            ((8, 32, 125, 125), (64, 32, 3, 3), 1, "winograd"), ((8, 64, 125, 125), (64, 64, 1, 1), 1, "gemm")]
    cifar = [((128, 16, 32, 32), (16, 16, 3, 3), 1, "winograd"), ((128, 16, 32, 32), (32, 16, 3, 3), 2, "phase"),
             ((128, 32, 16, 16), (64, 32, 3, 3), 2, "phase"), ((128, 64, 8, 8), (64, 64, 3, 3), 1, "winograd"),
             ((128, 3, 32, 32), (16, 3, 3, 3), 1, "direct"),             # 3 input channels: the direct kernel
             ((128, 16, 32, 32), (32, 16, 1, 1), 2, "gemm")]        # ResNet's 1×1 stride-2 shortcut
    for xs, ws, s, path in deck + cifar:
        for which in ("forward", "grad_x", "grad_w"):
            assert gc.choose(xs, ws, (s, s), (1, 1), d, which) == path, (xs, ws, s, which)
    for B, path in ((8, "gemm"), (128, "direct")):             # strided and dilated: the rule of before
        assert gc.choose((B, 16, 32, 32), (32, 16, 3, 3), (2, 2), (2, 2), (2, 2), "forward") == path


def test_registered_conv_is_the_shape_choice():
    from ember.ops.conv import Conv2d as Ref
    with kernels.use("fast"):
        assert kernels.dispatch(Ref) is gc.Conv2d
    with kernels.use("reference"):
        assert kernels.dispatch(Ref) is Ref


@pytest.mark.parametrize("xs, ws, s, p", [((3, 16, 12, 12), (16, 16, 3, 3), 1, 1),      # direct
                                          ((2, 1, 12, 12), (6, 1, 5, 5), 1, 2),         # direct
                                          ((3, 16, 11, 12), (32, 16, 3, 3), 2, 1),      # phase (s2)
                                          ((2, 8, 7, 9), (8, 8, 1, 1), 1, 0)])          # gemm (1×1)
def test_registered_conv_equals_reference_either_path(xs, ws, s, p):
    rng = np.random.default_rng(5)
    x, w, b = (rng.standard_normal(a) for a in (xs, ws, ws[:1]))
    kw = dict(stride=(s, s), padding=(p, p), dilation=(1, 1))
    y_ref, g_ref, go = _run(ref_conv.Conv2d, [x, w, b], kw)
    y, gs, _ = _run(gc.Conv2d, [x, w, b], kw, grad_out=go)
    _close(y, y_ref, 1e-10, "forward")
    for a, e in zip(gs, g_ref):
        _close(a, e, 1e-10, "grad")


def test_registered_conv_bit_identical_across_thread_counts_on_both_paths(monkeypatch):
    """A small network-like chain through the registered Conv2d (real choice: direct for the 3×3
    stride-1 layer, phase for the strided one, GEMM for the 1×1), every call split over threads."""
    from ember.kernels import _jit
    monkeypatch.setattr(threads, "MIN_PART_FLOATS", 1)
    monkeypatch.setattr(_jit, "MIN_PARALLEL_WORK", 0)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 3, 15, 15)).astype(np.float32)
    ws = [rng.standard_normal(s).astype(np.float32) for s in ((16, 3, 3, 3), (32, 16, 3, 3), (32, 32, 1, 1))]
    strides, pads = (1, 2, 1), (1, 1, 0)
    assert [gc.choose((4, w.shape[1], 15, 15), w.shape, (s, s), (p, p), (1, 1), "forward")
            for w, s, p in zip(ws, strides, pads)] == ["direct", "phase", "gemm"]

    def chain():
        h = Tensor(x, requires_grad=True)
        params = [Tensor(w, requires_grad=True) for w in ws]
        out = h
        for w, s, p in zip(params, strides, pads):
            out = gc.Conv2d.apply(out, w, None, stride=(s, s), padding=(p, p), dilation=(1, 1))
        (out * out).sum().backward()
        return [out._data.copy(), h.grad._data.copy()] + [w.grad._data.copy() for w in params]
    saved = threads.get_num_threads()
    try:
        threads.set_num_threads(1)
        base = chain()
        for n in (2, 1, 2):
            threads.set_num_threads(n)
            for a, e in zip(chain(), base):
                assert np.array_equal(a, e)
    finally:
        threads.set_num_threads(saved)


def test_without_numba_dispatch_takes_the_numpy_path(tmp_path):
    """numba not importable: gemm_conv still imports, dispatch picks kernels.conv's NumPy path,
    and gemm_conv.Conv2d itself hands every call on to it (through numba_conv's fallback)."""
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import numpy as np\n"
        "from ember import kernels\n"
        "from ember.kernels import conv as kc, gemm_conv as gc\n"
        "from ember.ops import conv as ref\n"
        "from ember.tensor import Tensor\n"
        "assert not gc.AVAILABLE and kernels.dispatch(ref.Conv2d) is kc.Conv2d\n"
        "x = np.random.default_rng(0).standard_normal((2, 16, 9, 9)).astype(np.float32)\n"
        "w = np.random.default_rng(1).standard_normal((32, 16, 3, 3)).astype(np.float32)\n"
        "kw = dict(stride=(2, 2), padding=(1, 1))\n"
        "a = gc.Conv2d.apply(Tensor(x), Tensor(w), None, **kw)._data\n"
        "r = kc.Conv2d.apply(Tensor(x), Tensor(w), None, **kw)._data\n"
        "assert np.array_equal(a, r)\n"
        "print('ok')\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("EMBER_KERNELS", None)   # the default (fast) mode, also when the suite runs with =reference
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("shape, pad, dtype", [((3, 2, 5, 7), (1, 2), np.float32), ((2, 3, 4, 4), (0, 3), np.float32),
                                               ((2, 3, 4, 4), (2, 0), np.float32), ((1, 1, 1, 1), (3, 3), np.float32),
                                               ((4, 16, 8, 8), (1, 1), np.float32),
                                               ((13, 3, 32, 32), (1, 1), np.float32),    # 12 KiB images, 13 > CHUNK
                                               ((9, 4, 24, 24), (2, 1), np.float64),     # 18 KiB images
                                               ((17, 1, 28, 28), (2, 2), np.float32)])   # LeNet's 3 KiB: one copy
def test_to_chwn_zeroes_every_border_cell_of_uninitialised_memory(monkeypatch, shape, pad, dtype):
    """The padded CHWN copy the conv kernels read equals np.pad's, even when the buffer it
    fills holds garbage (here NaN, from a poisoned ``buffers.empty``): its border is zeroed
    explicitly, and its interior copied whole or in slices of CHUNK images (far images)."""
    from ember.kernels import buffers, conv as conv_mod
    monkeypatch.setattr(buffers, "empty", lambda shape, dtype: np.full(shape, np.nan, dtype))
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    (ph, pw) = pad
    got = conv_mod._to_chwn(x, ph, pw)
    assert got.flags.c_contiguous and got.dtype == dtype
    np.testing.assert_array_equal(got, np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))).transpose(1, 2, 3, 0))


def test_chwn_copies_in_slices_only_far_images_and_equals_ascontiguousarray(monkeypatch):
    """``conv.chwn`` is np.ascontiguousarray of a (C, H, W, N)-ordered view: the view itself when
    it already is one (a kernel's output), the same values for an NCHW array whose images are
    far apart (copied CHUNK images at a time: counted here), near (one copy), reversed (negative
    batch stride), shorter than CHUNK, and cast to another dtype."""
    from ember.kernels import conv as conv_mod
    rng = np.random.default_rng(3)
    calls = []
    real = conv_mod.copy_chwn

    def counting(t, out):
        n = t.shape[-1]
        calls.append(0 if abs(t.strides[-1]) < conv_mod.FAR_BYTES or n <= conv_mod.CHUNK else -(-n // conv_mod.CHUNK))
        return real(t, out)
    monkeypatch.setattr(conv_mod, "copy_chwn", counting)
    far = rng.standard_normal((21, 4, 32, 32)).astype(np.float32)                 # 16 KiB per image
    cases = [(far, None, 3), (far[::-1], None, 3), (far[:5], None, 0), (far, np.float64, 3),
             (rng.standard_normal((21, 1, 28, 28)).astype(np.float32), None, 0)]  # 3 KiB: near
    for x, dtype, slices in cases:
        calls.clear()
        t = x.transpose(1, 2, 3, 0)
        got = conv_mod.chwn(t, dtype)
        want = np.ascontiguousarray(t, dtype)
        assert got.flags.c_contiguous and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        assert calls == [slices]
    handed_on = np.ascontiguousarray(far.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)   # a kernel's output
    calls.clear()
    t = handed_on.transpose(1, 2, 3, 0)
    assert conv_mod.chwn(t) is t and calls == []                                   # no copy at all


@pytest.mark.parametrize("shape, pad", [((400, 1, 29, 28), 2),     # LeNet-like: near images, odd H
                                        ((40, 8, 33, 32), 1),      # 32 KiB per image: far, sliced
                                        ((400, 1, 29, 28), 0)])    # no padding: chwn
def test_large_layout_copies_split_by_rows_between_threads(monkeypatch, shape, pad):
    """A layout copy of >= PARALLEL_COPY_MIN values is split by rows (axis 1) between the threads,
    one contiguous run each: the padded copy equals np.pad's and the plain one
    np.ascontiguousarray's, on 2 threads and on 1 (where nothing is split)."""
    from ember.kernels import conv as conv_mod
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    assert x.size >= conv_mod.PARALLEL_COPY_MIN
    want = np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))).transpose(1, 2, 3, 0))
    runs = []
    real = conv_mod.parallel_for
    monkeypatch.setattr(conv_mod, "parallel_for", lambda fn, parts: (runs.append(list(parts)), real(fn, parts))[1])
    saved = threads.get_num_threads()
    try:
        for n in (2, 1):
            threads.set_num_threads(n)
            runs.clear()
            got = conv_mod._to_chwn(x, pad, pad) if pad else conv_mod.chwn(x.transpose(1, 2, 3, 0))
            assert got.flags.c_contiguous
            np.testing.assert_array_equal(got, want)
            assert runs == ([[(0, shape[2] // 2), (shape[2] // 2, shape[2])]] if n == 2 else [])
    finally:
        threads.set_num_threads(saved)


@pytest.mark.parametrize("xs, ws, s, p", [((11, 3, 32, 32), (16, 3, 3, 3), 1, 1),     # direct (first layer)
                                          ((10, 16, 20, 20), (16, 16, 3, 3), 1, 1),   # winograd
                                          ((9, 16, 21, 20), (32, 16, 3, 3), 2, 1)])   # phase (s2)
def test_registered_conv_on_far_apart_nchw_images_equals_torch(xs, ws, s, p):
    """A C-contiguous (N, C, H, W) input and upstream gradient whose images lie ≥ FAR_BYTES
    apart (a batch as loaded, a tensor after .contiguous()) take the sliced layout copies on
    every path: forward and the three gradients equal PyTorch's (float64, 1e-10)."""
    from ember.kernels import conv as conv_mod
    rng = np.random.default_rng(11)
    x, w, b = (rng.standard_normal(a) for a in (xs, ws, ws[:1]))
    assert x[0].nbytes >= conv_mod.FAR_BYTES and xs[0] > conv_mod.CHUNK
    assert_conv_equals_torch(gc.Conv2d, x, w, b, dict(stride=(s, s), padding=(p, p), dilation=(1, 1)),
                             f"far images {xs}")
