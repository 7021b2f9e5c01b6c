"""Issue 4 layers: Conv1d, LocallyConnected2d, AdaptiveAvgPool2d, Dropout, BatchNorm1d/2d,
LayerNorm, Identity, ModuleList, ModuleDict — float64 finite differences and PyTorch parity
(forward, input and parameter gradients, train and eval mode)."""
import numpy as np
import pytest

import ember
from ember import nn
from ember.nn import functional as F
from ember.tensor import Tensor

from helpers import gradcheck, torch_parity

torch = pytest.importorskip("torch")
rng = np.random.default_rng(0)


def r(*shape):
    return rng.standard_normal(shape)


# ---- Conv1d -----------------------------------------------------------------------------
def test_conv1d_deck000_worked_example():
    """Deck 000: [1, 1, 1, 0, 0] correlated with the filter [1, 0, 1] gives [2, 1, 1]."""
    conv = nn.Conv1d(1, 1, 3, bias=False)
    conv.weight.numpy()[...] = np.array([[[1, 0, 1]]], np.float32)
    y = conv(ember.tensor([[[1.0, 1, 1, 0, 0]]]))
    assert y.dtype == np.float32 and y.shape == (1, 1, 3)
    np.testing.assert_array_equal(y.numpy(), [[[2, 1, 1]]])


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 2)])
def test_conv1d_gradcheck_and_torch(stride, padding, dilation, groups):
    x, w, b = r(2, 4, 9), r(6, 4 // groups, 3), r(6)
    f = lambda x, w, b: F.conv1d(x, w, b, stride, padding, dilation, groups)  # noqa: E731
    gradcheck(f, [x, w, b], "conv1d")
    torch_parity(f, lambda x, w, b: torch.nn.functional.conv1d(x, w, b, stride, padding, dilation, groups),
                 [x, w, b], "conv1d")


def test_conv1d_errors():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv1d(3, 4, 3, groups=2)
    with pytest.raises(nn.ShapeError, match=r"Conv1d: expected input with 2 channels, got 3"):
        nn.Conv1d(2, 4, 3)(ember.randn(1, 3, 8))
    with pytest.raises(nn.ShapeError, match=r"expected a 3-D input \(N, C, L\), got shape \(3, 8\)"):
        nn.Conv1d(2, 4, 3)(ember.randn(3, 8))


# ---- LocallyConnected2d -------------------------------------------------------------------
def loop_locally_connected(x, w, b, stride, padding):
    """Reference: one explicit dot product per (n, o, i, j)."""
    SH, SW = stride
    PH, PW = padding
    xp = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    OH, OW, O, C, KH, KW = w.shape
    y = np.zeros((x.shape[0], O, OH, OW))
    for n in range(x.shape[0]):
        for o in range(O):
            for i in range(OH):
                for j in range(OW):
                    patch = xp[n, :, i * SH:i * SH + KH, j * SW:j * SW + KW]
                    y[n, o, i, j] = np.sum(patch * w[i, j, o]) + (b[o, i, j] if b is not None else 0)
    return y


@pytest.mark.parametrize("stride,padding", [((1, 1), (0, 0)), ((2, 1), (1, 0))])
def test_locally_connected_matches_loop_reference_and_gradcheck(stride, padding):
    x = r(2, 2, 6, 5)
    OH, OW = (6 + 2 * padding[0] - 3) // stride[0] + 1, (5 + 2 * padding[1] - 2) // stride[1] + 1
    w, b = r(OH, OW, 3, 2, 3, 2), r(3, OH, OW)
    y = F.locally_connected2d(Tensor(x), Tensor(w), Tensor(b), stride, padding)
    np.testing.assert_allclose(y.numpy(), loop_locally_connected(x, w, b, stride, padding), rtol=1e-12, atol=1e-12)
    gradcheck(lambda x, w, b: F.locally_connected2d(x, w, b, stride, padding), [x, w, b], "locally_connected2d")


def test_locally_connected_equals_fc_with_zeroed_weights():
    """An FC layer whose weight is zero outside each output's receptive field is the same map."""
    N, C, H, W, O, K = 3, 2, 5, 4, 3, 2
    layer = nn.LocallyConnected2d(C, O, (H, W), K).double()
    OH, OW = layer.output_size
    dense = np.zeros((O, OH, OW, C, H, W))                 # FC weight, reshaped (O·OH·OW, C·H·W)
    for i in range(OH):
        for j in range(OW):
            dense[:, i, j, :, i:i + K, j:j + K] = layer.weight.numpy()[i, j]
    fc = nn.Linear(C * H * W, O * OH * OW).double()
    fc.weight.data = dense.reshape(O * OH * OW, C * H * W)
    fc.bias.data = layer.bias.numpy().reshape(-1).copy()
    x = Tensor(r(N, C, H, W), requires_grad=True)
    y1 = layer(x)
    x2 = Tensor(x.numpy().copy(), requires_grad=True)
    y2 = fc(x2.flatten(1)).reshape(N, O, OH, OW)
    np.testing.assert_allclose(y1.numpy(), y2.numpy(), rtol=1e-12, atol=1e-12)
    u = r(N, O, OH, OW)
    y1.backward(u)
    y2.backward(u)
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-12, atol=1e-12)
    mask = dense != 0                                        # the FC grads at the kept weights
    gfc = fc.weight.grad.numpy().reshape(dense.shape)
    for i in range(OH):
        for j in range(OW):
            np.testing.assert_allclose(layer.weight.grad.numpy()[i, j], gfc[:, i, j, :, i:i + K, j:j + K], rtol=1e-12)
    assert mask.sum() == layer.weight.numpy().size
    assert sum(p.numel() for p in layer.parameters()) == OH * OW * O * C * K * K + O * OH * OW


def test_locally_connected_wrong_input_size():
    with pytest.raises(nn.ShapeError, match=r"input of size 7x7 gives a 5x5 output, but the weights are for a 4x4 output"):
        nn.LocallyConnected2d(1, 2, (6, 6), 3)(ember.randn(1, 1, 7, 7))


# ---- AdaptiveAvgPool2d --------------------------------------------------------------------
@pytest.mark.parametrize("size,out", [((6, 6), (3, 3)), ((7, 5), (3, 2)), ((5, 5), (1, 1)), ((4, 6), (None, 4))])
def test_adaptive_avg_pool2d(size, out):
    x = r(2, 3, *size)
    f = lambda x: F.adaptive_avg_pool2d(x, out)  # noqa: E731
    gradcheck(f, [x], "adaptive_avg_pool2d")
    torch_parity(f, lambda x: torch.nn.functional.adaptive_avg_pool2d(x, out), [x], "adaptive_avg_pool2d")
    assert nn.AdaptiveAvgPool2d(1)(ember.randn(2, 3, 5, 5)).shape == (2, 3, 1, 1)


# memory order of the (N, C, H, W) input (outermost first), as a permutation of the stored array
_LAYOUTS = {"NCHW": (0, 1, 2, 3), "CHWN (a conv output)": (1, 2, 3, 0), "NHWC": (0, 2, 3, 1), "HWNC": (2, 3, 0, 1)}


@pytest.mark.parametrize("out", [(1, 1), (2, 3)])
@pytest.mark.parametrize("layout", list(_LAYOUTS))
@pytest.mark.parametrize("sliced", [False, True])
def test_adaptive_avg_pool2d_in_any_memory_order_equals_torch_and_keeps_it(out, layout, sliced):
    """Output and input gradient equal PyTorch's whatever the input's memory order (global
    pooling sums in memory order, ``AdaptiveAvgPool2d``'s docstring), also on a sliced view; the
    input gradient is stored in the input's order (a conv output's CHWN: its backward then reads
    it without a copy)."""
    order = _LAYOUTS[layout]
    nchw = r(4, 3, 5, 7 + 2 * sliced)
    stored = np.ascontiguousarray(nchw.transpose(order))
    view = stored.transpose(np.argsort(order))                          # (N, C, H, W) view
    if sliced:
        view, nchw = view[..., 1:-1], nchw[..., 1:-1]
    x = Tensor(view, requires_grad=True)
    g = r(4, 3, *out)
    y = F.adaptive_avg_pool2d(x, out)
    y.backward(Tensor(g))
    assert x.grad.numpy().transpose(order).flags.c_contiguous
    tx = torch.tensor(nchw, requires_grad=True)
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, out)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-15)


# ---- Dropout ------------------------------------------------------------------------------
def test_dropout_train_eval_and_gradient():
    ember.manual_seed(0)
    d = nn.Dropout(0.25)
    x = ember.ones(200, 100, requires_grad=True)
    y = d(x)
    kept = y.numpy() != 0
    assert 0.72 < kept.mean() < 0.78
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.75, rtol=1e-6)
    y.backward(np.full(y.shape, 2.0, np.float32))
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, 2 / 0.75, 0), rtol=1e-6)
    assert d.eval()(x) is x
    ember.manual_seed(0)
    np.testing.assert_array_equal(nn.Dropout(0.25)(x).numpy(), y.numpy())  # seeded from ember's generator
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


# ---- BatchNorm ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 3, 4, 4)])
def test_batch_norm_train_gradcheck_and_torch(shape):
    x, w, b = r(*shape), r(3), r(3)
    f = lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)  # noqa: E731
    gradcheck(f, [x, w, b], "batch_norm")
    torch_parity(f, lambda x, w, b: torch.nn.functional.batch_norm(x, None, None, w, b, training=True),
                 [x, w, b], "batch_norm")


def test_batch_norm_eval_gradcheck_and_torch():
    x, w, b = r(4, 3, 2, 2), r(3), r(3)
    rm, rv = r(3), np.abs(r(3)) + 0.5
    f = lambda x, w, b: F.batch_norm(x, Tensor(rm), Tensor(rv), w, b, training=False)  # noqa: E731
    gradcheck(f, [x, w, b], "batch_norm eval")
    torch_parity(f, lambda x, w, b: torch.nn.functional.batch_norm(x, torch.tensor(rm), torch.tensor(rv), w, b),
                 [x, w, b], "batch_norm eval")


@pytest.mark.parametrize("cls,shape,momentum", [("BatchNorm2d", (8, 3, 5, 5), 0.1), ("BatchNorm1d", (8, 3), 0.3),
                                                 ("BatchNorm1d", (8, 3, 4), None)])
def test_batch_norm_module_matches_torch_over_steps(cls, shape, momentum):
    """Running statistics, momentum (incl. None = cumulative), train then eval, all grads."""
    ours, theirs = getattr(nn, cls)(3, momentum=momentum).double(), getattr(torch.nn, cls)(3, momentum=momentum).double()
    ours.weight.numpy()[...] = theirs.weight.detach().numpy()[...] = r(3)
    ours.bias.numpy()[...] = r(3)
    theirs.bias.data = torch.tensor(ours.bias.numpy().copy())
    theirs.weight.data = torch.tensor(ours.weight.numpy().copy())
    for step in range(4):
        x = r(*shape) * 3 + step
        u = r(*shape)
        for mode in ("train", "eval"):
            getattr(ours, mode)()
            getattr(theirs, mode)()
            xe, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
            ye, yt = ours(xe), theirs(xt)
            np.testing.assert_allclose(ye.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-10)
            ours.zero_grad()
            theirs.zero_grad()
            ye.backward(u)
            yt.backward(torch.tensor(u))
            np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-10)
            np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-9, atol=1e-10)
            np.testing.assert_allclose(ours.bias.grad.numpy(), theirs.bias.grad.numpy(), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(ours.running_mean.numpy(), theirs.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-12)
    assert int(ours.num_batches_tracked.numpy()) == int(theirs.num_batches_tracked) == 4
    assert list(ours.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})


def test_batch_norm_float32_and_errors():
    bn = nn.BatchNorm2d(4)
    y = bn(ember.randn(2, 4, 3, 3))
    assert y.dtype == np.float32 and bn.running_var.dtype == np.float32
    with pytest.raises(nn.ShapeError, match=r"BatchNorm2d: expected input with 4 channels, got 3 channels"):
        bn(ember.randn(2, 3, 3, 3))
    with pytest.raises(nn.ShapeError, match=r"BatchNorm2d: expected 4-D input, got shape \(2, 4\)"):
        bn(ember.randn(2, 4))
    with pytest.raises(ValueError, match="expected more than 1 value per channel when training"):
        nn.BatchNorm1d(4)(ember.randn(1, 4))


# ---- LayerNorm ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape,ns", [((4, 6), (6,)), ((2, 3, 4, 5), (4, 5))])
def test_layer_norm_gradcheck_and_torch(shape, ns):
    x, w, b = r(*shape), r(*ns), r(*ns)
    f = lambda x, w, b: F.layer_norm(x, ns, w, b)  # noqa: E731
    gradcheck(f, [x, w, b], "layer_norm")
    torch_parity(f, lambda x, w, b: torch.nn.functional.layer_norm(x, ns, w, b), [x, w, b], "layer_norm")
    ln = nn.LayerNorm(ns)
    assert ln.eval()(ember.randn(*shape)).shape == shape
    with pytest.raises(nn.ShapeError, match=r"LayerNorm: expected input with trailing dimensions"):
        ln(ember.randn(2, 7))


# ---- containers -----------------------------------------------------------------------------
def test_identity_modulelist_moduledict():
    x = ember.randn(2, 3)
    assert nn.Identity(54, unused="x")(x) is x
    ml = nn.ModuleList([nn.Linear(3, 4), nn.ReLU()]).append(nn.Linear(4, 2))
    assert len(ml) == 3 and isinstance(ml[1], nn.ReLU) and len(ml[:2]) == 2
    assert list(ml.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    md = nn.ModuleDict({"enc": nn.Linear(3, 4), "act": nn.Tanh()})
    md["dec"] = nn.Linear(4, 1)
    assert list(md) == ["enc", "act", "dec"] and "act" in md
    assert list(md.state_dict()) == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    with pytest.raises(TypeError, match="ModuleList only holds Modules, got int"):
        ml.append(3)


def test_init_functions_cover_the_issue_list():
    w = ember.zeros(64, 32, 3, 3)
    ember.manual_seed(0)
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.numpy().std() - np.sqrt(2 / (32 * 9))) < 0.01 and w.dtype == np.float32
    nn.init.kaiming_uniform_(w, a=np.sqrt(5))
    assert np.abs(w.numpy()).max() <= 1 / np.sqrt(32 * 9)
    nn.init.xavier_uniform_(w)
    assert np.abs(w.numpy()).max() <= np.sqrt(6 / (32 * 9 + 64 * 9))
    nn.init.xavier_normal_(w)
    nn.init.normal_(w, 1.0, 0.1)
    assert abs(w.numpy().mean() - 1) < 0.01
    for f, v in ((nn.init.zeros_, 0), (nn.init.ones_, 1), (lambda t: nn.init.constant_(t, 0.5), 0.5)):
        f(w)
        assert np.all(w.numpy() == v)
