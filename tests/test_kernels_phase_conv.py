"""ember.kernels.phase_conv: strided convolution as stride-1 sums over the input's phases.

Every row runs through gemm_conv.Conv2d with the phase path forced and through the reference op
(ember.ops.conv.Conv2d): forward and all three gradients, float64 to 1e-10 and float32 to 1e-5
relative to the reference's largest magnitude; then against PyTorch in float64, with the fused
ReLU of the phase forward, and bit-identical across reruns and thread counts. The rows cover
what the phases' edges depend on: odd and even sizes, padding larger than the stride, strides
3 and (2, 1), kernels smaller than the stride (phases with no tap), a 1×1 kernel, and a batch
of 1. No timing here (benchmarks/conv_layers.py and gemm_conv.choose's table).
"""
import numpy as np
import pytest

from helpers import assert_conv_equals_reference, assert_same_bits_across_thread_counts, assert_conv_equals_torch, close_scaled as _close, run_with_grads as _run

from ember import threads
from ember.kernels import _jit, gemm_conv as gc, phase_conv as pc
from ember.ops import conv as ref_conv

pytestmark = pytest.mark.skipif(not gc.AVAILABLE, reason="numba is not installed")

TOL = {np.float64: 1e-10, np.float32: 1e-5}

# id: (N, C_in, H, W), (C_out, KH, KW), stride, padding
ROWS = {
    "resnet_s2": ((4, 16, 9, 8), (32, 3, 3), (2, 2), (1, 1)),             # 8-channel blocks, odd H
    "deck_s2_odd": ((2, 16, 13, 11), (32, 3, 3), (2, 2), (1, 1)),
    "tail_channels": ((3, 5, 10, 7), (11, 3, 3), (2, 2), (1, 1)),         # 8 + 3 output channels
    "s3_pad2": ((2, 3, 10, 13), (9, 3, 3), (3, 3), (2, 2)),
    "rect_stride": ((1, 4, 10, 9), (6, 3, 2), (2, 1), (0, 1)),
    "kernel_lt_stride": ((2, 3, 11, 11), (8, 2, 2), (3, 3), (1, 0)),      # phases with no tap
    "one_by_one": ((2, 5, 7, 6), (4, 1, 1), (2, 2), (1, 1)),
    "7x7_s2": ((2, 3, 15, 16), (8, 7, 7), (2, 2), (3, 3)),                # ResNet-50's stem shape
    "pad_gt_k": ((2, 2, 6, 5), (3, 2, 2), (2, 2), (3, 2)),
}


@pytest.fixture
def forced(monkeypatch):
    """The phase path for every call, and every call split over threads."""
    monkeypatch.setattr(gc, "choose", lambda *a: "phase")
    monkeypatch.setattr(threads, "MIN_PART_FLOATS", 1)
    monkeypatch.setattr(_jit, "MIN_PARALLEL_WORK", 0)


def _inputs(row, dtype, seed=0):
    xs, (C_out, KH, KW), stride, padding = row
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((C_out, xs[1], KH, KW)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    return x, w, b, dict(stride=stride, padding=padding, dilation=(1, 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ROWS)
def test_phase_conv_equals_reference(name, dtype, forced):
    x, w, b, kw = _inputs(ROWS[name], dtype)
    assert_conv_equals_reference(gc.Conv2d, x, w, b, kw, TOL[dtype], name)


@pytest.mark.parametrize("name", ROWS)
def test_phase_conv_equals_torch(name, forced):
    pytest.importorskip("torch")
    x, w, b, kw = _inputs(ROWS[name], np.float64, seed=2)
    assert_conv_equals_torch(gc.Conv2d, x, w, b, kw, name)


@pytest.mark.parametrize("name", ["resnet_s2", "tail_channels", "s3_pad2"])
def test_phase_forward_relu_is_the_reference_relu(name, forced):
    x, w, b, kw = _inputs(ROWS[name], np.float64, seed=4)
    stride, padding = kw["stride"], kw["padding"]
    out_hw = [ref_conv.out_size(x.shape[2 + i], w.shape[2 + i], stride[i], padding[i]) for i in (0, 1)]
    xs = pc.phases(x, padding, stride)
    y = pc.forward(xs, w, b, stride, out_hw, relu=True).transpose(3, 0, 1, 2)
    expect = np.maximum(_run(ref_conv.Conv2d, [x, w, b], kw)[0], 0)
    assert (expect == 0).any() and (expect > 0).any()
    _close(y, expect, 1e-10, f"{name} forward + ReLU")


def test_phases_layout_is_the_padded_input_subsampled():
    """xs[a·SW + b, c, i, j, n] = xpad[c, i·SH + a, j·SW + b, n], zeros past the padded edge."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 7, 8))
    for stride, padding in (((2, 2), (1, 1)), ((3, 2), (2, 0)), ((2, 1), (0, 3))):
        (SH, SW), (PH, PW) = stride, padding
        xs = pc.phases(x, padding, stride)
        Hs, Ws = -(-(7 + 2 * PH) // SH), -(-(8 + 2 * PW) // SW)
        assert xs.shape == (SH * SW, 2, Hs, Ws, 3)
        big = np.zeros((2, Hs * SH, Ws * SW, 3))
        big[:, PH:PH + 7, PW:PW + 8] = x.transpose(1, 2, 3, 0)
        for a in range(SH):
            for b in range(SW):
                np.testing.assert_array_equal(xs[a * SW + b], big[:, a::SH, b::SW])


def test_phase_conv_bit_identical_across_reruns_and_thread_counts(forced):
    x, w, b, kw = _inputs(ROWS["resnet_s2"], np.float32)
    assert_same_bits_across_thread_counts(gc.Conv2d, [x, w, b], kw)


def test_chwn_input_view_takes_no_transpose_and_matches():
    """The kernels' outputs are (N, C, H, W) views of CHWN arrays: phases of such a view equal
    the phases of the same values in NCHW order."""
    rng = np.random.default_rng(3)
    chwn = rng.standard_normal((4, 9, 8, 5)).astype(np.float32)
    view = chwn.transpose(3, 0, 1, 2)
    np.testing.assert_array_equal(pc.phases(view, (1, 1), (2, 2)),
                                  pc.phases(np.ascontiguousarray(view), (1, 1), (2, 2)))


def test_phase_grad_w_bands_give_the_same_bits(monkeypatch):
    """Bands of one output row, and one band of all rows: the same bits (sums over oh in order)."""
    from ember.kernels import numba_conv as nc
    x, w, b, kw = _inputs(ROWS["deck_s2_odd"], np.float32)
    xs = pc.phases(x, kw["padding"], kw["stride"])
    g = np.random.default_rng(6).standard_normal((32, 7, 6, 2)).astype(np.float32)
    out = []
    for band_bytes in (1, 1 << 40):
        monkeypatch.setattr(nc, "GRAD_W_BAND_BYTES", band_bytes)
        out.append(pc.grad_w(g, xs, w.shape, kw["stride"]))
    assert np.array_equal(out[0], out[1])
    with_grad = _run(ref_conv.Conv2d, [x, w, b], kw, grad_out=g.transpose(3, 0, 1, 2).copy())[1][1]
    _close(out[0], with_grad, 1e-5, "banded phase grad_w")
