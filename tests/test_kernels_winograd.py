"""ember.kernels.winograd (F(2×2, 3×3)) against the reference conv (ember.ops.conv) and PyTorch.

Forward, grad_x and grad_w at shapes that reach every edge of the kernel: odd output sizes (a
tile half outside), paddings 0-2 (read as zeros by the input transform), channel counts that
are not multiples of the blocks (4 input, 8 output channels), more images than one pass holds
(N > J_TARGET), in float64 to 1e-10 and float32 to 1e-5 (relative to the largest value); the
fused ReLU; NaN propagation; bit-identical results across reruns and thread counts; and the
shape rule that sends ResNet's 3×3 layers here and LeNet's nowhere near it.
"""
import numpy as np
import pytest
import torch

from helpers import assert_same_bits_across_thread_counts, close_scaled as _close
from ember import Tensor
from ember.kernels import _jit, gemm_conv as gc, winograd as wg
from ember.ops import conv as ref_conv

pytestmark = pytest.mark.skipif(not _jit.AVAILABLE, reason="numba not installed")

SHAPES = [  # (N, C, C_out, H, W, padding)
    (3, 9, 10, 7, 6, (1, 1)),       # odd OH, C and C_out off the blocks
    (2, 16, 16, 8, 8, (1, 1)),      # ResNet-like, even
    (5, 8, 8, 5, 9, (0, 2)),        # padding 0 one way, 2 the other
    (1, 8, 3, 3, 3, (1, 1)),        # 3 output channels: grad_x's output has 8 (C_out of its filters = 3)
    (300, 8, 8, 4, 4, (1, 1)),      # N > J_TARGET: images in two passes
]


def _torch_conv(x, w, b, padding, gy, relu=False):
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, padding=padding)
    if relu:
        yt = torch.relu(yt)
    yt.backward(torch.from_numpy(gy))
    return yt.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:5])) + f"_p{s[5][0]}{s[5][1]}")
def test_passes_equal_reference_op_and_torch(shape, dtype, rtol):
    N, C, O, H, W, P = shape
    rng = np.random.default_rng(sum(shape[:5]))
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((N, C, H, W), (O, C, 3, 3), (O,)))
    kw = dict(stride=(1, 1), padding=P, dilation=(1, 1))
    xe, we, be = (Tensor(a, requires_grad=True) for a in (x, w, b))
    ye = ref_conv.Conv2d.apply(xe, we, be, **kw)
    gy = rng.standard_normal(ye.shape).astype(dtype)
    ye.backward(Tensor(gy))
    y_ref, gx_ref, gw_ref = ye._data, xe.grad._data, we.grad._data
    g = np.ascontiguousarray(gy.transpose(1, 2, 3, 0))       # (C_out, OH, OW, N)
    y = wg.forward(x, w, b, P).transpose(3, 0, 1, 2)
    gx = wg.grad_x(g, w, P).transpose(3, 0, 1, 2)
    gw = wg.grad_w(g, x, P)
    assert y.dtype == gx.dtype == gw.dtype == dtype
    for got, exp, what in ((y, y_ref, "forward"), (gx, gx_ref, "grad_x"), (gw, gw_ref, "grad_w")):
        assert got.shape == exp.shape, what
        _close(got, exp, rtol, what)
    if dtype == np.float64:
        ty, tgx, tgw, _ = _torch_conv(x, w, b, P, gy)
        for got, exp, what in ((y, ty, "forward vs torch"), (gx, tgx, "grad_x vs torch"), (gw, tgw, "grad_w vs torch")):
            _close(got, exp, rtol, what)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_registered_conv_relu_takes_winograd_and_equals_torch(dtype, rtol):
    """Through the dispatch a user's model takes: gemm_conv.Conv2dReLU (fusion's Conv2d → ReLU),
    forward and every gradient, grad_b summed in the ReLU mask's pass."""
    N, C, O, H, W = 4, 8, 16, 9, 10
    assert gc.choose((N, C, H, W), (O, C, 3, 3), (1, 1), (1, 1), (1, 1), "forward") == "winograd"
    rng = np.random.default_rng(3)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((N, C, H, W), (O, C, 3, 3), (O,)))
    xe, we, be = (Tensor(a, requires_grad=True) for a in (x, w, b))
    ye = gc.Conv2dReLU.apply(xe, we, be, stride=(1, 1), padding=(1, 1), dilation=(1, 1))
    gy = rng.standard_normal(ye.shape).astype(dtype)
    ye.backward(Tensor(gy))
    ty, tgx, tgw, tgb = _torch_conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 1,
                                    gy.astype(np.float64), relu=True)
    for got, exp, what in ((ye._data, ty, "forward"), (xe.grad._data, tgx, "grad_x"),
                           (we.grad._data, tgw, "grad_w"), (be.grad._data, tgb, "grad_b")):
        assert got.dtype == dtype
        _close(got, exp, rtol, what)
    assert (ye._data >= 0).all()


def test_nan_in_the_input_gives_nan_exactly_where_the_reference_does():
    """A NaN pixel reaches the outputs whose 3×3 window holds it, as in the reference: Bᵀ's and
    Aᵀ's zeros mean a patch's first row (column) never reaches a tile's second output row
    (column), and its last never the first, so no NaN · 0 is formed. The fused ReLU keeps NaN
    (as torch.relu). (An inf can become NaN here where the reference keeps inf: inf − inf.)"""
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 8, 8, 8)), rng.standard_normal((8, 8, 3, 3)), rng.standard_normal(8)
    x[1, 3, 4, 5] = np.nan
    y = wg.forward(x, w, b, (1, 1), relu=True).transpose(3, 0, 1, 2)
    ty = torch.relu(torch.nn.functional.conv2d(*map(torch.from_numpy, (x, w, b)), padding=1)).numpy()
    assert np.array_equal(np.isnan(y), np.isnan(ty))
    assert np.isnan(y[1, :, 3:6, 4:7]).all() and np.isnan(y).sum() == 8 * 9   # rows 3-5, columns 4-6


def test_bit_identical_across_reruns_and_thread_counts(monkeypatch):
    """Through the registered Conv2dReLU (forward, grad_x, grad_w on this path), every call split
    over threads: the same bits with 1, 2, 3 threads."""
    monkeypatch.setattr(_jit, "MIN_PARALLEL_WORK", 0)
    rng = np.random.default_rng(2)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((6, 16, 11, 10), (16, 16, 3, 3), (16,)))
    kw = dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1))
    assert gc.choose(x.shape, w.shape, (1, 1), (1, 1), (1, 1), "grad_w") == "winograd"
    assert_same_bits_across_thread_counts(gc.Conv2dReLU, [x, w, b], kw)


def test_covers_only_3x3_stride_1_undilated_with_enough_channels():
    ok = ((16, 16, 3, 3), (1, 1), (1, 1), (1, 1))
    assert wg.covers(*ok)
    assert not wg.covers((16, 16, 5, 5), *ok[1:])             # LeNet's 5×5: the direct kernel
    assert not wg.covers((16, 16, 3, 3), (2, 2), (1, 1), (1, 1))
    assert not wg.covers((16, 16, 3, 3), (1, 1), (1, 1), (2, 2))
    assert not wg.covers((16, 16, 3, 3), (1, 1), (3, 3), (1, 1))   # grad_x would need padding −1
    assert not wg.covers((16, 3, 3, 3), *ok[1:])              # a 3-channel first layer
    assert not wg.covers((4, 16, 3, 3), *ok[1:])
