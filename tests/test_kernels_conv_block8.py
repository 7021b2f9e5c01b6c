"""numba_conv's 8-channel blocks (``_conv_rows8``, ``_grad_x_rows8``, ``_grad_w_taps8``) against
the reference op (ember.ops.conv.Conv2d), against PyTorch, and against the 4-channel kernel.

Forward, grad_x and grad_w run with block=8 (the new kernels) and block=4 (the kernels of before) on the
same inputs: float64 to 1e-10 and float32 to 1e-5 relative to the reference's largest
magnitude. Shapes cover what the blocks split: channel counts that are and are not multiples of
8 (a block of 8 plus a tail of 1-7 channels taken 4 at a time), rows of OW*N floats shorter and
longer than STRIP and not a multiple of it (the last strip is short), padding 0/1/2 (grad_x
clips the columns of a strip), bias and no bias, groups 1 and 2, odd N, H, W. Bit-identical
across reruns and thread counts. No timing here (benchmarks/conv_layers.py --ab-block times it).
"""
import numpy as np
import pytest
import torch

from ember import threads
from ember.autograd import Context
from ember.kernels import _jit
from ember.kernels import numba_conv as nc
from ember.kernels.conv import _to_chwn
from ember.ops.conv import Conv2d as Ref

pytestmark = pytest.mark.skipif(not nc.AVAILABLE, reason="numba is not installed")

TOL = {np.float64: 1e-10, np.float32: 1e-5}

# id: N, C_in, C_out, H, W, padding, bias, groups
ROWS = {
    "16to16_p1": (3, 16, 16, 7, 9, 1, True, 1),
    "row_over_strip": (67, 8, 8, 5, 9, 1, True, 1),          # OW*N = 603 > STRIP = 512, not a multiple
    "tail_channels": (5, 13, 21, 6, 7, 1, False, 1),          # 8 + 5 output channels, 8 + 5 input channels
    "pad0": (4, 9, 24, 8, 6, 0, True, 1),
    "pad2": (2, 16, 8, 5, 6, 2, False, 1),                    # grad_x: kw offsets clipped at both ends
    "groups2": (3, 16, 16, 6, 5, 1, True, 2),                 # 8 + 8 channels per group
    "small_c": (3, 3, 16, 9, 8, 1, True, 1),                  # the CIFAR first layer's 3 input channels
    "narrow": (1, 8, 8, 3, 1, 1, True, 1),                    # W = 1, N = 1
}


def _inputs(row, dtype, seed=0):
    N, C, O, H, W, P, bias, G = row
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C // G, 3, 3)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype) if bias else None
    return x, w, b, P, G


def _reference(x, w, b, P, G, go=None):
    """(y, grad_x, grad_w) of ops.conv.Conv2d (the gradients only when go is given)."""
    ctx = Context(Ref, None, (True, True, b is not None))
    y = Ref.forward(ctx, x, w, b, (1, 1), (P, P), (1, 1), G)
    if go is None:
        return y, None, None
    grads = Ref.backward(ctx, go)
    return y, grads[0], grads[1]


def _close(a, e, tol, what):
    err = np.abs(np.asarray(a, np.float64) - e).max() / max(np.abs(e).max(), 1e-300)
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol}"


def _kernel(x, w, b, P, G, go, block, relu=False):
    """(y (N, C_out, OH, OW), grad_x (N, C, H, W), grad_w) through numba_conv with this block size."""
    N, C, H, W = x.shape
    xc = _to_chwn(x, P, P)
    y = nc.conv2d_forward(xc, w, b, (1, 1), (1, 1), G, relu=relu, block=block)
    g = np.ascontiguousarray(go.transpose(1, 2, 3, 0))
    gx = nc.conv2d_grad_x(g, w, H, W, (P, P), (1, 1), (1, 1), G, block=block)
    gw = nc.conv2d_grad_w(g, xc, w.shape, (1, 1), (1, 1), G, block=block)
    return y.transpose(3, 0, 1, 2), gx.transpose(3, 0, 1, 2), gw


@pytest.mark.parametrize("block", [8, 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ROWS)
def test_block_equals_reference(name, dtype, block):
    x, w, b, P, G = _inputs(ROWS[name], dtype)
    y_ref = _reference(x, w, b, P, G)[0]
    go = np.random.default_rng(1).standard_normal(y_ref.shape).astype(dtype)
    _, gx_ref, gw_ref = _reference(x, w, b, P, G, go)
    y, gx, gw = _kernel(x, w, b, P, G, go, block)
    assert y.dtype == dtype and gx.dtype == dtype and gw.dtype == dtype
    _close(y, y_ref, TOL[dtype], "forward")
    _close(gx, gx_ref, TOL[dtype], "grad_x")
    _close(gw, gw_ref, TOL[dtype], "grad_w")
    yr = _kernel(x, w, b, P, G, go, block, relu=True)[0]      # the fused ReLU (Conv2dReLU)
    _close(yr, np.maximum(y_ref, 0), TOL[dtype], "forward + ReLU")


@pytest.mark.parametrize("name", ["16to16_p1", "tail_channels", "pad2", "groups2"])
def test_block8_equals_torch(name):
    x, w, b, P, G = _inputs(ROWS[name], np.float64)
    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    ty = torch.nn.functional.conv2d(tx, tw, None if b is None else torch.from_numpy(b), padding=P, groups=G)
    go = np.random.default_rng(2).standard_normal(ty.shape)
    ty.backward(torch.from_numpy(go))
    y, gx, gw = _kernel(x, w, b, P, G, go, 8)
    _close(y, ty.detach().numpy(), 1e-10, "forward")
    _close(gx, tx.grad.numpy(), 1e-10, "grad_x")
    _close(gw, tw.grad.numpy(), 1e-10, "grad_w")


def test_block8_keeps_nan_under_relu():
    """A NaN input gives NaN outputs with and without the fused ReLU, as np.maximum does."""
    x, w, b, P, G = _inputs(ROWS["16to16_p1"], np.float32)
    x[1, 3, 2, 4] = np.nan
    y_ref = _reference(x, w, b, P, G)[0]
    go = np.ones(y_ref.shape, np.float32)
    for relu in (False, True):
        y = _kernel(x, w, b, P, G, go, 8, relu=relu)[0]
        assert np.array_equal(np.isnan(y), np.isnan(y_ref))


def test_default_block_is_8_only_for_stride1_and_8_or_more_channels():
    assert nc.forward_block(16, 1) == 8 and nc.forward_block(8, 1) == 8
    assert nc.forward_block(6, 1) == 4 and nc.forward_block(16, 2) == 4
    x, w, b, P, G = _inputs(ROWS["16to16_p1"], np.float32)
    xc = _to_chwn(x, P, P)
    assert np.array_equal(nc.conv2d_forward(xc, w, b, (1, 1), (1, 1), 1),
                          nc.conv2d_forward(xc, w, b, (1, 1), (1, 1), 1, block=8))
    with pytest.raises(ValueError, match="block must be 4 or 8"):
        nc.conv2d_forward(xc, w, b, (1, 1), (1, 1), 1, block=16)
    with pytest.raises(ValueError, match="block must be 4 or 8"):
        nc.conv2d_grad_x(np.zeros((16, 7, 9, 3), np.float32), w, 7, 9, (1, 1), (1, 1), (1, 1), 1, block=3)
    with pytest.raises(ValueError, match="block must be 4 or 8"):
        nc.conv2d_grad_w(np.zeros((16, 7, 9, 3), np.float32), xc, w.shape, (1, 1), (1, 1), 1, block=2)


@pytest.mark.parametrize("name", ["row_over_strip", "tail_channels", "groups2"])
def test_block8_bit_identical_across_reruns_and_thread_counts(name, monkeypatch):
    monkeypatch.setattr(_jit, "MIN_PARALLEL_WORK", 0)
    x, w, b, P, G = _inputs(ROWS[name], np.float32)
    go = np.random.default_rng(3).standard_normal((x.shape[0], w.shape[0], x.shape[2] + 2 * P - 2,
                                                   x.shape[3] + 2 * P - 2)).astype(np.float32)
    saved = threads.get_num_threads()
    try:
        threads.set_num_threads(1)
        base = _kernel(x, w, b, P, G, go, 8)
        for n in (2, 3, 1, 2):
            threads.set_num_threads(n)
            for a, e in zip(_kernel(x, w, b, P, G, go, 8), base):
                assert np.array_equal(a, e)
    finally:
        threads.set_num_threads(saved)



@pytest.mark.parametrize("band_bytes", [1, 7000, 1 << 40])          # 1 row a band, 2, all rows
def test_grad_w_bands_give_the_same_bits(band_bytes, monkeypatch):
    """The 8-channel grad_w sums each tap over the output rows band by band; any band size gives
    the bits of one band (the sums run over oh in order either way) and equals the reference."""
    x, w, b, P, G = _inputs(ROWS["tail_channels"], np.float32)
    go = np.random.default_rng(5).standard_normal((x.shape[0], w.shape[0], x.shape[2], x.shape[3])).astype(np.float32)
    xc, g = _to_chwn(x, P, P), np.ascontiguousarray(go.transpose(1, 2, 3, 0))
    monkeypatch.setattr(nc, "GRAD_W_BAND_BYTES", 1 << 40)
    one = nc.conv2d_grad_w(g, xc, w.shape, (1, 1), (1, 1), G, block=8)
    monkeypatch.setattr(nc, "GRAD_W_BAND_BYTES", band_bytes)
    # a row: 13 channels' padded input rows (9 × 5 floats) and 8 gradient rows (7 × 5), float32
    assert nc.grad_w_band(6, 13 * 9 * 5, 7 * 5, 4) == {1: 1, 7000: 2, 1 << 40: 6}[band_bytes]
    banded = nc.conv2d_grad_w(g, xc, w.shape, (1, 1), (1, 1), G, block=8)
    assert np.array_equal(banded, one)
    _close(banded, _reference(x, w, b, P, G, go)[2], TOL[np.float32], "banded grad_w")
