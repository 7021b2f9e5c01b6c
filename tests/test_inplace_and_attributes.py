"""PyTorch idioms found missing or different by the client programs (tests/clients): activations'
``inplace=True``, Module attribute assignment (a plain attribute replaced by a module, a buffer
updated by assignment, ``del``), ``flip(dims=...)``, BCE's weight/pos_weight, forward hooks,
channel dropout, PReLU/GLU/ZeroPad2d/KLDivLoss, F.pad's modes and Conv2d's padding_mode. Each
checked against torch itself."""
import io

import numpy as np
import pytest

import ember
from ember import nn
from ember.nn import functional as F

torch = pytest.importorskip("torch")

ACTIVATIONS = [  # (name, ember functional call, torch functional call, ember module, torch module)
    ("relu", lambda x, ip: F.relu(x, inplace=ip), lambda x, ip: torch.nn.functional.relu(x, inplace=ip),
     lambda ip: nn.ReLU(inplace=ip), lambda ip: torch.nn.ReLU(inplace=ip)),
    ("leaky_relu", lambda x, ip: F.leaky_relu(x, 0.2, ip), lambda x, ip: torch.nn.functional.leaky_relu(x, 0.2, ip),
     lambda ip: nn.LeakyReLU(0.2, inplace=ip), lambda ip: torch.nn.LeakyReLU(0.2, inplace=ip)),
    ("elu", lambda x, ip: F.elu(x, 0.7, ip), lambda x, ip: torch.nn.functional.elu(x, 0.7, ip),
     lambda ip: nn.ELU(0.7, inplace=ip), lambda ip: torch.nn.ELU(0.7, inplace=ip)),
    ("hardtanh", lambda x, ip: F.hardtanh(x, -0.5, 0.5, ip), lambda x, ip: torch.nn.functional.hardtanh(x, -0.5, 0.5, ip),
     lambda ip: nn.Hardtanh(-0.5, 0.5, inplace=ip), lambda ip: torch.nn.Hardtanh(-0.5, 0.5, inplace=ip)),
    ("relu6", lambda x, ip: F.relu6(x, inplace=ip), lambda x, ip: torch.nn.functional.relu6(x, inplace=ip),
     lambda ip: nn.ReLU6(inplace=ip), lambda ip: torch.nn.ReLU6(inplace=ip)),
    ("silu", lambda x, ip: F.silu(x, inplace=ip), lambda x, ip: torch.nn.functional.silu(x, inplace=ip),
     lambda ip: nn.SiLU(inplace=ip), lambda ip: torch.nn.SiLU(inplace=ip)),
    ("mish", None, None, lambda ip: nn.Mish(inplace=ip), lambda ip: torch.nn.Mish(inplace=ip)),
]


@pytest.mark.parametrize("name, ef, tf, em, tm", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_inplace_activation_writes_into_its_input_and_differentiates_as_torch(name, ef, tf, em, tm):
    """On a non-leaf input: the same values and gradients as torch, the returned tensor *is* the
    input (its values changed), the module's repr as torch's; a leaf that requires grad is
    refused with torch's message; inplace=False leaves the input alone."""
    a = np.random.default_rng(0).standard_normal((3, 5)) * (3 if name == "relu6" else 1)   # some above 6
    calls = [(lambda x: em(True)(x), lambda x: tm(True)(x))]
    if ef is not None:
        calls.append((lambda x: ef(x, True), lambda x: tf(x, True)))
    for e_call, t_call in calls:
        ew = ember.tensor(a, requires_grad=True)
        tw = torch.tensor(a, requires_grad=True)
        ex, tx = ew * 1.5, tw * 1.5                         # non-leaf inputs
        ey, ty = e_call(ex), t_call(tx)
        assert ey is ex and ty is tx
        np.testing.assert_allclose(ex.detach().numpy(), tx.detach().numpy(), rtol=1e-12, atol=1e-12)
        (ey * ey).sum().backward()
        (ty * ty).sum().backward()
        np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), rtol=1e-10, atol=1e-12)
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
            e_call(ember.tensor(a, requires_grad=True))
    assert repr(em(True)) == repr(tm(True)) and repr(em(False)) == repr(tm(False))
    x = ember.tensor(a)
    em(False)(x)
    np.testing.assert_array_equal(x.numpy(), a)


def test_dropout_inplace_and_repr():
    """Dropout(inplace=True) zeroes and scales its input itself in training (ember's generator
    draws the mask, so the values are checked by rule, not against torch's); eval is the
    identity; the repr is torch's."""
    ember.manual_seed(0)
    x = ember.ones(200, 10)
    y = nn.Dropout(0.3, inplace=True)(x)
    assert y is x
    vals = np.unique(x.numpy())
    assert len(vals) == 2 and vals[0] == 0 and np.isclose(vals[1], 1 / 0.7, rtol=1e-6)
    d = nn.Dropout(0.3, inplace=True).eval()
    z = ember.ones(4)
    assert d(z) is z and z.numpy().tolist() == [1, 1, 1, 1]
    assert repr(nn.Dropout(0.3, inplace=True)) == repr(torch.nn.Dropout(0.3, inplace=True))
    assert repr(nn.Dropout()) == repr(torch.nn.Dropout())


def _block(lib):
    class Block(lib.nn.Module):
        def __init__(self, down):
            super().__init__()
            self.conv = lib.nn.Conv2d(2, 4, 1, bias=False)
            self.downsample = None
            if down:                                            # the ResNet idiom: None, then a module
                self.downsample = lib.nn.Sequential(lib.nn.Conv2d(2, 4, 1, bias=False))
            self.register_buffer("steps", lib.zeros(1))

        def forward(self, x):
            self.steps = self.steps + 1                         # a buffer updated by assignment
            identity = x if self.downsample is None else self.downsample(x)
            return self.conv(x) + (identity if identity.shape[1] == 4 else 0)
    return Block


@pytest.mark.parametrize("down", [True, False])
def test_module_attribute_rules_match_torch(down):
    """A plain attribute (None) replaced by a module gives the module; a buffer assigned a new
    tensor stays a buffer (in state_dict); the same parameter and buffer names as torch."""
    eb, tb = _block(ember)(down), _block(torch)(down)
    assert (eb.downsample is None) == (tb.downsample is None) == (not down)
    x = np.random.default_rng(1).standard_normal((1, 2, 3, 3)).astype(np.float32)
    eb(ember.tensor(x))
    tb(torch.tensor(x))
    assert sorted(eb.state_dict()) == sorted(tb.state_dict())
    assert float(eb.state_dict()["steps"][0]) == float(tb.state_dict()["steps"][0]) == 1.0
    assert [n for n, _ in eb.named_parameters()] == [n for n, _ in tb.named_parameters()]


def test_module_setattr_errors_and_del_match_torch():
    """Assigning a plain tensor to a parameter's name is refused (TypeError); ``del`` removes a
    parameter, a buffer and a child module."""
    for lib in (ember, torch):
        m = lib.nn.Linear(2, 3)
        with pytest.raises(TypeError, match="cannot assign '.*' as parameter 'weight'"):
            m.weight = lib.zeros(3, 2)
        with pytest.raises(TypeError, match="cannot assign 'int' as child module '0'"):
            setattr(lib.nn.Sequential(lib.nn.ReLU()), "0", 3)
        bn = lib.nn.BatchNorm1d(2)
        with pytest.raises(TypeError, match="cannot assign 'float' as buffer 'running_mean'"):
            bn.running_mean = 0.5
        seq = lib.nn.Sequential(lib.nn.Linear(2, 2))
        seq.register_buffer("b", lib.zeros(1))
        del seq.b
        delattr(seq, "0")
        del m.bias
        assert "b" not in seq.state_dict() and len(list(seq.children())) == 0
        assert [n for n, _ in m.named_parameters()] == ["weight"]


def test_flip_takes_dims_as_torch():
    a = np.arange(24.0).reshape(2, 3, 4)
    for args, kwargs in [(((2,),), {}), (((0, 2),), {}), ((), {"dims": [0, 2]}), ((), {"dims": (1,)})]:
        np.testing.assert_array_equal(ember.flip(ember.tensor(a), *args, **kwargs).numpy(),
                                      torch.flip(torch.tensor(a), *args, **kwargs).numpy())
    for args, kwargs in [((2,), {}), ((0, 2), {}), ((), {"dims": [1]})]:
        np.testing.assert_array_equal(ember.tensor(a).flip(*args, **kwargs).numpy(),
                                      torch.tensor(a).flip(*args, **kwargs).numpy())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_weight, with_pos", [(True, False), (False, True), (True, True)])
def test_bce_with_logits_weight_and_pos_weight_match_torch(reduction, with_weight, with_pos):
    """Values and gradients (logits and target) of BCEWithLogitsLoss(weight, pos_weight) against
    torch in float64, with logits at 0 and at ±40 (softplus's far tails) among them."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 3)) * 3
    z[0, 0], z[1, 1], z[2, 2] = 0.0, 40.0, -40.0
    y = rng.uniform(0, 1, (5, 3))
    w = rng.uniform(0.5, 2, (5, 1)) if with_weight else None
    pw = np.array([1.0, 3.0, 0.25]) if with_pos else None
    ez, ey = ember.tensor(z, requires_grad=True), ember.tensor(y, requires_grad=True)
    tz, ty = torch.tensor(z, requires_grad=True), torch.tensor(y, requires_grad=True)
    kw = lambda lib: dict(weight=None if w is None else lib.tensor(w), pos_weight=None if pw is None else lib.tensor(pw),  # noqa: E731
                          reduction=reduction)
    el = nn.BCEWithLogitsLoss(**kw(ember))(ez, ey)
    tl = torch.nn.BCEWithLogitsLoss(**kw(torch))(tz, ty)
    np.testing.assert_allclose(el.detach().numpy(), tl.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(tl.shape)
    el.backward(ember.tensor(g))
    tl.backward(torch.tensor(g))
    np.testing.assert_allclose(ez.grad.numpy(), tz.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ey.grad.numpy(), ty.grad.numpy(), rtol=1e-9, atol=1e-12)
    assert sorted(nn.BCEWithLogitsLoss(**kw(ember)).state_dict()) == sorted(torch.nn.BCEWithLogitsLoss(**kw(torch)).state_dict())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_weight_and_legacy_reduction_match_torch(reduction):
    rng = np.random.default_rng(4)
    p, y, w = rng.uniform(0.01, 0.99, (4, 3)), rng.uniform(0, 1, (4, 3)), rng.uniform(0.5, 2, (3,))
    ep, tp = ember.tensor(p, requires_grad=True), torch.tensor(p, requires_grad=True)
    el = nn.BCELoss(weight=ember.tensor(w), reduction=reduction)(ep, ember.tensor(y))
    tl = torch.nn.BCELoss(weight=torch.tensor(w), reduction=reduction)(tp, torch.tensor(y))
    np.testing.assert_allclose(el.detach().numpy(), tl.detach().numpy(), rtol=1e-10)
    el.sum().backward()
    tl.sum().backward()
    np.testing.assert_allclose(ep.grad.numpy(), tp.grad.numpy(), rtol=1e-9)
    legacy = F.binary_cross_entropy(ember.tensor(p), ember.tensor(y), size_average=False)
    assert np.isclose(float(legacy), float(torch.nn.functional.binary_cross_entropy(torch.tensor(p), torch.tensor(y),
                                                                                    reduction="sum")))


def test_parameters_to_vector_and_back_match_torch():
    """parameters_to_vector concatenates in order (and is differentiable); vector_to_parameters
    gives each parameter its slice, as torch; a non-tensor vec is refused."""
    from ember.nn.utils import parameters_to_vector, vector_to_parameters
    em, tm = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    tm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in em.state_dict().items()})
    ev, tv = parameters_to_vector(em.parameters()), torch.nn.utils.parameters_to_vector(tm.parameters())
    np.testing.assert_array_equal(ev.detach().numpy(), tv.detach().numpy())
    (ev * ev).sum().backward()
    np.testing.assert_allclose(em.weight.grad.numpy(), 2 * em.weight.detach().numpy())
    new = np.arange(8, dtype=np.float32)
    vector_to_parameters(ember.tensor(new), em.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(new), tm.parameters())
    np.testing.assert_array_equal(em.weight.detach().numpy(), tm.weight.detach().numpy())
    np.testing.assert_array_equal(em.bias.detach().numpy(), [6, 7])
    with pytest.raises(TypeError, match="expected torch.Tensor, but got"):
        vector_to_parameters(new, em.parameters())


def _hooked(lib, x):
    """Forward hooks and pre-hooks as feature-extraction code uses them; what they saw and returned."""
    lib.manual_seed(0)
    net = lib.nn.Sequential(lib.nn.Conv2d(1, 2, 3), lib.nn.ReLU(), lib.nn.MaxPool2d(2), lib.nn.Flatten(),
                            lib.nn.Linear(2 * 3 * 3, 2))
    with lib.no_grad():
        for p, v in zip(net.parameters(), _hook_weights()):
            p.copy_(lib.tensor(v))
    seen, order = {}, []
    h1 = net[1].register_forward_hook(lambda m, args, out: seen.__setitem__("relu", out.detach().numpy().copy()))
    net[0].register_forward_hook(lambda m, args, out: order.append("second"))
    net[0].register_forward_hook(lambda m, args, out: order.append("first"), prepend=True)
    net[0].register_forward_pre_hook(lambda m, args: (args[0] * 2,))            # doubles the input
    net[4].register_forward_hook(lambda m, args, out: out + 1)                   # replaces the output
    net[4].register_forward_pre_hook(lambda m, args, kwargs: ((args[0] * 0.5,), kwargs), with_kwargs=True)
    y1 = net(lib.tensor(x)).detach().numpy().copy()
    h1.remove()
    h1.remove()
    seen.pop("relu")
    y2 = net(lib.tensor(x)).detach().numpy().copy()
    calls = []
    with net[3].register_forward_hook(lambda m, args, out: calls.append(1)):
        net(lib.tensor(x))
    net(lib.tensor(x))
    failed = []
    bad = lib.nn.Linear(3, 2)
    bad.register_forward_hook(lambda m, args, out: failed.append(out), always_call=True)
    try:
        bad(lib.zeros(1, 4))                                 # the wrong width: forward raises
    except (RuntimeError, ValueError):
        pass
    return y1, y2, order, sorted(seen), calls, failed


def _hook_weights():
    rng = np.random.default_rng(9)
    return [rng.standard_normal(s).astype(np.float32) for s in [(2, 1, 3, 3), (2,), (2, 18), (2,)]]


def test_forward_hooks_run_as_torchs_even_where_ember_fuses_layers():
    """A hook on the ReLU of a Conv2d → ReLU → MaxPool2d (which ember otherwise runs fused) sees
    the ReLU's output; pre-hooks and hooks replace inputs and outputs; prepend orders them;
    remove() (twice) and the handle as a context manager unregister; always_call runs on a
    failing forward. Same outputs and calls as torch."""
    x = np.random.default_rng(2).standard_normal((2, 1, 8, 8)).astype(np.float32)
    e, t = _hooked(ember, x), _hooked(torch, x)
    np.testing.assert_allclose(e[0], t[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(e[1], t[1], rtol=1e-5, atol=1e-6)
    assert e[2] == t[2] == ["first", "second"] * 4
    assert e[3] == t[3] == [] and e[4] == t[4] == [1]
    assert e[5] == t[5] == [None]


def _grads_match(e_fn, t_fn, arrays, rtol=1e-10):
    """Forward values and every input's gradient of e_fn (ember) and t_fn (torch), float64."""
    e_in = [ember.tensor(a, requires_grad=True) for a in arrays]
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    eo, to = e_fn(*e_in), t_fn(*t_in)
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=rtol, atol=1e-12)
    g = np.random.default_rng(0).standard_normal(tuple(to.shape))
    eo.backward(ember.tensor(g))
    to.backward(torch.tensor(g))
    for e, t in zip(e_in, t_in):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=1e-12)


def test_prelu_glu_zeropad_match_torch():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 4))
    x[0, 0, 0, 0] = 0.0
    _grads_match(F.prelu, torch.nn.functional.prelu, [x, np.array([0.1, 0.3, -0.2])])
    _grads_match(F.prelu, torch.nn.functional.prelu, [x, np.array([0.25])])
    _grads_match(lambda a: F.glu(a, 1), lambda a: torch.nn.functional.glu(a, 1), [rng.standard_normal((2, 6, 3))])
    _grads_match(lambda a: nn.ZeroPad2d((1, 2, 0, 3))(a), lambda a: torch.nn.ZeroPad2d((1, 2, 0, 3))(a), [x])
    with pytest.raises(RuntimeError, match="Halving dimension must be even"):
        F.glu(ember.randn(2, 5))
    with pytest.raises(RuntimeError, match="Mismatch of parameter numbers and input channel size"):
        F.prelu(ember.randn(2, 3, 4), ember.ones(2))
    m = nn.PReLU(3)
    assert repr(m) == repr(torch.nn.PReLU(3)) and m.weight.numpy().tolist() == pytest.approx([0.25] * 3)
    assert repr(nn.ZeroPad2d(2)) == repr(torch.nn.ZeroPad2d(2)) and repr(nn.GLU()) == repr(torch.nn.GLU())


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none", "mean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(reduction, log_target):
    """Distillation's loss: input log-probabilities, target probabilities (zeros among them) or
    log-probabilities; values and gradients of input and target."""
    rng = np.random.default_rng(6)
    logq = np.log(rng.dirichlet(np.ones(5), 4))
    p = rng.dirichlet(np.ones(5), 4)
    target = np.log(rng.dirichlet(np.ones(5), 4)) if log_target else p
    kw = dict(reduction=reduction, log_target=log_target)
    with pytest.warns(UserWarning) if reduction == "mean" else _nothing():
        _grads_match(lambda a, b: F.kl_div(a, b, **kw), lambda a, b: torch.nn.functional.kl_div(a, b, **kw),
                     [logq, target])
        p[0, 1] = 0.0                                        # t log t = 0 where t = 0 (input gradient only)
        _grads_match(lambda a: F.kl_div(a, ember.tensor(p), **kw), lambda a: torch.nn.functional.kl_div(a, torch.tensor(p), **kw),
                     [logq])
    e = nn.KLDivLoss(reduction="batchmean")(ember.tensor(logq), ember.tensor(p))
    assert np.isclose(float(e), float(torch.nn.KLDivLoss(reduction="batchmean")(torch.tensor(logq), torch.tensor(p))))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_channel_dropout_zeroes_whole_channels():
    """Dropout2d/Dropout1d in training zero whole channels (a channel is all zeros or all
    scaled by 1/(1 − p)); the identity in eval; inplace writes into the input; dropout1d takes
    unbatched (C, L) and refuses 4-D (torch's message); dropout2d on 3-D warns as torch."""
    ember.manual_seed(0)
    x = ember.ones(8, 16, 3, 3)
    y = nn.Dropout2d(0.5)(x).numpy()
    per_channel = y.reshape(8, 16, -1)
    assert np.all(per_channel.min(-1) == per_channel.max(-1))                 # constant per channel
    assert set(np.unique(per_channel[..., 0]).tolist()) == {0.0, 2.0}
    assert np.array_equal(nn.Dropout2d(0.5).eval()(x).numpy(), x.numpy())
    z = ember.ones(4, 6, 5)
    assert nn.Dropout1d(0.5, inplace=True)(z) is z and set(np.unique(z.numpy()).tolist()) == {0.0, 2.0}
    u = F.dropout1d(ember.ones(6, 5), 0.5).numpy()
    assert np.all(u.min(-1) == u.max(-1))
    w = ember.ones(6, 5, requires_grad=True)
    v = w * 2                                                 # unbatched, in place, then backward
    assert F.dropout1d(v, 0.5, inplace=True) is v
    v.sum().backward()
    kept = v.detach().numpy()[:, 0] != 0
    assert np.array_equal(w.grad.numpy()[:, 0], np.where(kept, 4.0, 0.0))
    with pytest.raises(RuntimeError, match="dropout1d: Expected 2D or 3D input, but received a 4D input"):
        F.dropout1d(ember.ones(1, 2, 3, 4), 0.5)
    with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
        F.dropout2d(ember.ones(2, 3, 4), 0.5)
    assert repr(nn.Dropout2d(0.2)) == repr(torch.nn.Dropout2d(0.2))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape, pads", [((2, 3, 5), (2, 1)), ((2, 2, 4, 5), (1, 2, 3, 0)), ((1, 2, 3, 4, 4), (1, 1, 2, 0, 1, 1))])
def test_pad_modes_match_torch(mode, shape, pads):
    """F.pad's reflect, replicate and circular modes: values and gradients (summed over every
    copy of a value) as torch's, on 1-, 2- and 3-D paddings."""
    if mode == "reflect" and len(shape) == 5:
        pytest.skip("torch reflects at most the last 3 dims of a 5-D input; covered by the others")
    x = np.random.default_rng(7).standard_normal(shape)
    _grads_match(lambda a: F.pad(a, pads, mode=mode), lambda a: torch.nn.functional.pad(a, pads, mode=mode), [x])


def test_pad_mode_errors():
    with pytest.raises(RuntimeError, match="Padding size should be less than the corresponding input dimension"):
        F.pad(ember.randn(1, 2, 3), (3, 0), mode="reflect")
    with pytest.raises(RuntimeError, match="wrapping around more than once"):
        F.pad(ember.randn(1, 2, 3), (4, 0), mode="circular")
    with pytest.raises(ValueError, match="Unrecognised padding mode"):
        F.pad(ember.randn(1, 2, 3), (1, 0), mode="mirror")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(1, 1, 3, padding_mode="mirror")


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv_padding_mode_matches_torch_fused_or_not(mode):
    """Conv2d(padding_mode=...) alone and in a Sequential Conv2d → ReLU → MaxPool2d (which ember
    fuses only for zero padding): the output and the weight gradient of torch; its repr; ONNX
    export refuses it with a clear message."""
    from ember.onnx import OnnxExportError, export
    rng = np.random.default_rng(8)
    w, b = rng.standard_normal((3, 2, 3, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    outs = []
    for lib in (ember, torch):
        conv = lib.nn.Conv2d(2, 3, 3, padding=(1, 2), padding_mode=mode)
        conv.load_state_dict({"weight": lib.tensor(w), "bias": lib.tensor(b)})
        net = lib.nn.Sequential(conv, lib.nn.ReLU(), lib.nn.MaxPool2d(2))
        y = net(lib.tensor(x))
        y.sum().backward()
        outs.append((y.detach().numpy(), conv.weight.grad.numpy(), repr(conv)))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-4, atol=1e-4)
    assert outs[0][2] == outs[1][2]
    with pytest.raises(OnnxExportError, match=f"padding_mode='{mode}' is not exported"):
        export(ember.nn.Sequential(ember.nn.Conv2d(2, 3, 3, padding=1, padding_mode=mode)), ember.randn(1, 2, 6, 6),
               io.BytesIO())


@pytest.mark.parametrize("kernel, dilation", [(3, 1), (4, 1), ((2, 5), (1, 2)), (1, 1)])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv_string_padding_matches_torch(kernel, dilation, padding):
    """padding='same' (the odd extra zero after, for even kernels) and 'valid', in F.conv2d,
    nn.Conv2d (also in a Sequential ember would fuse), F.conv1d and nn.Conv1d: values and
    gradients as torch's, the repr keeps the string."""
    rng = np.random.default_rng(11)
    k2 = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    w = rng.standard_normal((3, 2) + k2)
    x = rng.standard_normal((2, 2, 9, 10))
    kw = dict(padding=padding, dilation=dilation)
    _grads_match(lambda a, b: F.conv2d(a, b, **kw), lambda a, b: torch.nn.functional.conv2d(a, b, **kw), [x, w])
    w1 = rng.standard_normal((3, 2, k2[1]))
    kw1 = dict(padding=padding, dilation=dilation[1] if isinstance(dilation, tuple) else dilation)
    _grads_match(lambda a, b: F.conv1d(a, b, **kw1), lambda a, b: torch.nn.functional.conv1d(a, b, **kw1),
                 [x[:, :, 0], w1])
    xs = x.astype(np.float32)
    outs = []
    for lib in (ember, torch):
        conv = lib.nn.Conv2d(2, 3, kernel, padding=padding, dilation=dilation)
        conv.load_state_dict({"weight": lib.tensor(w.astype(np.float32)), "bias": lib.zeros(3)})
        y = lib.nn.Sequential(conv, lib.nn.ReLU(), lib.nn.MaxPool2d(2))(lib.tensor(xs))
        outs.append((y.detach().numpy(), repr(conv)))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-5, atol=1e-5)
    assert outs[0][1] == outs[1][1]


def test_conv_string_padding_errors_match_torch():
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="Invalid padding string 'full', should be one of"):
        nn.Conv2d(1, 1, 3, padding="full")
    with pytest.raises(RuntimeError, match="padding='same' is not supported for strided convolutions"):
        F.conv2d(ember.randn(1, 1, 5, 5), ember.randn(1, 1, 3, 3), stride=2, padding="same")
    with pytest.raises(RuntimeError, match="Invalid padding string: 'full'"):
        F.conv2d(ember.randn(1, 1, 5, 5), ember.randn(1, 1, 3, 3), padding="full")


@pytest.mark.parametrize("shape, groups", [((2, 6, 4, 5), 3), ((3, 4, 7), 2), ((2, 8, 2, 3, 2), 8), ((2, 4, 3, 3), 1)])
def test_group_norm_matches_torch(shape, groups):
    rng = np.random.default_rng(12)
    x = rng.standard_normal(shape) * 3 + 1
    C = shape[1]
    _grads_match(lambda a, w, b: F.group_norm(a, groups, w, b, 1e-5),
                 lambda a, w, b: torch.nn.functional.group_norm(a, groups, w, b, 1e-5),
                 [x, rng.standard_normal(C), rng.standard_normal(C)], rtol=1e-9)
    for kw in ({}, {"affine": False}, {"bias": False}):
        assert repr(nn.GroupNorm(groups, C, **kw)) == repr(torch.nn.GroupNorm(groups, C, **kw))
    with pytest.raises(ValueError, match="num_channels must be divisible by num_groups"):
        nn.GroupNorm(5, C)


@pytest.mark.parametrize("mode, align", [("nearest", None), ("nearest-exact", None), ("bilinear", False),
                                         ("bilinear", True)])
@pytest.mark.parametrize("how", [{"scale_factor": 2}, {"scale_factor": 1.7}, {"size": (5, 9)}, {"size": (2, 3)},
                                 {"scale_factor": (0.5, 3)}])
def test_interpolate_matches_torch(mode, align, how):
    """F.interpolate / nn.Upsample, up and down, by size and by scale factor: values and
    gradients as torch's (nearest, nearest-exact, bilinear with and without align_corners)."""
    x = np.random.default_rng(13).standard_normal((2, 3, 4, 6))
    kw = dict(how, mode=mode, align_corners=align)
    _grads_match(lambda a: F.interpolate(a, **kw), lambda a: torch.nn.functional.interpolate(a, **kw), [x])
    _grads_match(lambda a: nn.Upsample(**kw)(a), lambda a: torch.nn.Upsample(**kw)(a), [x])


def test_interpolate_1d_and_errors():
    x = np.random.default_rng(14).standard_normal((2, 3, 7))
    for kw in ({"scale_factor": 2, "mode": "linear", "align_corners": False}, {"size": 4, "mode": "nearest"},
               {"size": 10, "mode": "linear", "align_corners": True}):
        _grads_match(lambda a: F.interpolate(a, **kw), lambda a: torch.nn.functional.interpolate(a, **kw), [x])
    with pytest.raises(ValueError, match="only one of size or scale_factor should be defined"):
        F.interpolate(ember.randn(1, 1, 4, 4))
    with pytest.raises(ValueError, match="bilinear mode needs 4D input"):
        F.interpolate(ember.randn(1, 1, 4), scale_factor=2, mode="bilinear")
    with pytest.raises(NotImplementedError, match="bicubic"):
        F.interpolate(ember.randn(1, 1, 4, 4), scale_factor=2, mode="bicubic")


def test_set_grad_enabled_as_a_call_as_torch():
    """torch.set_grad_enabled(False) as a plain call switches graph recording off at once (the
    top of an inference script); as a context manager the mode from before the call comes back;
    as a decorator the call itself changes nothing; inference_mode(False) records."""
    seen = {}
    for lib in (ember, torch):
        trace = []
        lib.set_grad_enabled(False)
        trace.append(lib.is_grad_enabled())
        lib.set_grad_enabled(True)
        trace.append(lib.is_grad_enabled())
        with lib.set_grad_enabled(False):
            trace.append(lib.is_grad_enabled())
        trace.append(lib.is_grad_enabled())
        lib.set_grad_enabled(False)
        with lib.set_grad_enabled(True):
            trace.append(lib.is_grad_enabled())
        trace.append(lib.is_grad_enabled())
        lib.set_grad_enabled(True)
        deco = lib.set_grad_enabled(False)(lambda: lib.is_grad_enabled())
        trace += [lib.is_grad_enabled(), deco(), lib.is_grad_enabled()]
        trace += [lib.inference_mode(False)(lambda: lib.is_grad_enabled())(), lib.inference_mode()(lambda: lib.is_grad_enabled())()]
        seen[lib.__name__] = trace
    assert seen["ember"] == seen["torch"] == [False, True, False, True, True, False, True, False, True, True, False]


def test_torch_utils_data_after_import_torch_alone():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import ember; print(ember.utils.data.DataLoader.__name__)"],
                         capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "DataLoader", out.stderr


def test_arithmetic_and_reduction_idioms_match_torch():
    """//, %, remainder, fmod (values and gradients), type_as, logical_*, amax/amin (ties share
    the gradient), sum/mean(dtype=), squeeze of a tuple of dims, permute(dims=), pow(2, t)."""
    rng = np.random.default_rng(15)
    a, b = rng.standard_normal((3, 4)) * 5, rng.uniform(0.5, 2, (3, 4)) * np.sign(rng.standard_normal((3, 4)))
    _grads_match(lambda x, y: x % y, lambda x, y: x % y, [a, b])
    _grads_match(lambda x, y: ember.remainder(x, y), lambda x, y: torch.remainder(x, y), [a, b])
    _grads_match(lambda x, y: ember.fmod(x, y), lambda x, y: torch.fmod(x, y), [a, b])
    np.testing.assert_array_equal((ember.tensor(a) // 2).numpy(), (torch.tensor(a) // 2).numpy())
    np.testing.assert_array_equal((7 // ember.tensor(b)).numpy(), (7 // torch.tensor(b)).numpy())
    np.testing.assert_array_equal(ember.floor_divide(ember.tensor(a), ember.tensor(b)).numpy(),
                                  torch.floor_divide(torch.tensor(a), torch.tensor(b)).numpy())
    assert ember.tensor([1, 2]).type_as(ember.tensor(a)).dtype == np.float64
    for name in ("logical_and", "logical_or", "logical_xor"):
        e = getattr(ember, name)(ember.tensor(a) > 0, ember.tensor(b) > 0).numpy()
        assert e.dtype == bool and np.array_equal(e, getattr(torch, name)(torch.tensor(a) > 0, torch.tensor(b) > 0).numpy())
    assert np.array_equal(ember.logical_not(ember.tensor(a) > 0).numpy(), torch.logical_not(torch.tensor(a) > 0).numpy())
    ties = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    for fn in ("amax", "amin"):
        for kw in ({}, {"dim": 1}, {"dim": (0, 1), "keepdim": True}, {"dim": 0, "keepdim": True}):
            _grads_match(lambda x: getattr(ember, fn)(x, **kw), lambda x: getattr(torch, fn)(x, **kw), [ties])
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    assert ember.tensor(x).sum(dim=1, dtype=ember.float64).dtype == np.float64
    np.testing.assert_array_equal(ember.tensor(x.astype(np.float32)).mean(dtype=ember.float64).numpy(),
                                  torch.tensor(x.astype(np.float32)).mean(dtype=torch.float64).numpy())
    assert ember.zeros(1, 3, 1, 2).squeeze((0, 2)).shape == tuple(torch.zeros(1, 3, 1, 2).squeeze((0, 2)).shape)
    assert ember.zeros(1, 3, 1).squeeze((1,)).shape == (1, 3, 1)
    assert ember.zeros(2, 3, 4).permute(dims=(2, 0, 1)).shape == (4, 2, 3)
    np.testing.assert_allclose(ember.pow(2, ember.tensor(a)).numpy(), torch.pow(2, torch.tensor(a)).numpy())


def test_generator_samplers_and_concat_dataset():
    """torch.Generator().manual_seed(s) gives a reproducible stream for DataLoader, random_split
    and randperm (ember's numbers, not torch's); the samplers keep torch's structure;
    ConcatDataset and BatchSampler give torch's exact results."""
    from ember.utils.data import (BatchSampler, ConcatDataset, DataLoader, SequentialSampler, SubsetRandomSampler,
                                  TensorDataset, WeightedRandomSampler, random_split)
    runs = [[b[0].numpy().tolist() for b in DataLoader(TensorDataset(ember.arange(10)), batch_size=4, shuffle=True,
                                                       generator=ember.Generator().manual_seed(3))] for _ in range(2)]
    assert runs[0] == runs[1] and sorted(sum(runs[0], [])) == list(range(10))
    g = ember.Generator()
    assert g.manual_seed(5) is g and g.initial_seed() == 5
    assert [list(s.indices) for s in random_split(range(10), [0.7, 0.3], generator=ember.Generator().manual_seed(1))] == \
        [list(s.indices) for s in random_split(range(10), [7, 3], generator=ember.Generator().manual_seed(1))]
    assert np.array_equal(ember.randperm(6, generator=ember.Generator().manual_seed(2)).numpy(),
                          ember.randperm(6, generator=ember.Generator().manual_seed(2)).numpy())
    idx = list(SubsetRandomSampler([3, 5, 7, 9], generator=ember.Generator().manual_seed(0)))
    assert sorted(idx) == [3, 5, 7, 9]
    drawn = list(WeightedRandomSampler([0.0, 1.0, 3.0], 400, generator=ember.Generator().manual_seed(0)))
    assert 0 not in drawn and 2.2 < drawn.count(2) / drawn.count(1) < 4.2
    with pytest.raises(ValueError, match="num_samples should be a positive integer value"):
        WeightedRandomSampler([1.0], 0)
    for drop in (False, True):
        assert list(BatchSampler(SequentialSampler(range(10)), 4, drop)) == \
            list(torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(10)), 4, drop))
    e, t = ConcatDataset([range(3), range(10, 14)]), torch.utils.data.ConcatDataset([range(3), range(10, 14)])
    assert len(e) == len(t) and [e[i] for i in range(-7, 7)] == [t[i] for i in range(-7, 7)]
    assert e.cumulative_sizes == t.cumulative_sizes


@pytest.mark.parametrize("T_mult", [1, 2])
def test_cosine_annealing_warm_restarts_matches_torch(T_mult):
    """Per-epoch steps and fractional steps (step(epoch + i / iters)) give torch's lrs."""
    lrs = {}
    for lib in (ember, torch):
        p = lib.zeros(1, requires_grad=True)
        opt = lib.optim.SGD([p], lr=0.1)
        sched = lib.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=T_mult, eta_min=0.001)
        out = []
        for _ in range(12):
            opt.step()
            sched.step()
            out.append(opt.param_groups[0]["lr"])
        for e in range(3):
            for i in range(4):
                sched.step(e + i / 4)
                out.append(opt.param_groups[0]["lr"])
        lrs[lib.__name__] = out
    np.testing.assert_allclose(lrs["ember"], lrs["torch"], rtol=1e-12)


@pytest.mark.parametrize("enabled", [True, False])
def test_grad_scaler_trains_as_torchs(enabled):
    """A mixed-precision training loop's scaler (scale, backward, unscale_ + clip, step, update),
    with an inf injected into one step's gradient: the same parameters, scales and skipped step
    as torch.amp.GradScaler on the CPU; disabled, every method passes through."""
    rng = np.random.default_rng(16)
    w0, xs = rng.standard_normal((3, 2)).astype(np.float32), rng.standard_normal((6, 4, 3)).astype(np.float32)
    out = {}
    for lib in (ember, torch):
        w = lib.tensor(w0.copy(), requires_grad=True)
        opt = lib.optim.SGD([w], lr=0.1, momentum=0.9)
        scaler = lib.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=2, enabled=enabled)
        trace = []
        for k, x in enumerate(xs):
            opt.zero_grad()
            loss = (lib.tensor(x) @ w).pow(2).mean()
            scaler.scale(loss).backward()
            if k == 2 and enabled:
                w.grad[0, 0] = float("inf")                       # an overflow: the step is skipped
            scaler.unscale_(opt)
            lib.nn.utils.clip_grad_norm_([w], 10.0)
            scaler.step(opt)
            scaler.update()
            trace.append(scaler.get_scale())
        out[lib.__name__] = (w.detach().numpy().copy(), trace, scaler.state_dict())
    np.testing.assert_allclose(out["ember"][0], out["torch"][0], rtol=1e-5, atol=1e-6)
    assert out["ember"][1] == out["torch"][1]
    assert out["ember"][2] == out["torch"][2]
    s = ember.amp.GradScaler(enabled=True)
    opt = ember.optim.SGD([ember.zeros(1, requires_grad=True)], lr=0.1)
    s.unscale_(opt)
    with pytest.raises(RuntimeError, match="unscale_\\(\\) has already been called on this optimizer"):
        s.unscale_(opt)


def test_runtime_names_scripts_use():
    """torch.backends.cudnn flags, torch.compile, torch.autocast (warns when enabled: ember has no
    mixed precision), torch.Size, and their imports through the torch shim."""
    import subprocess
    import sys
    from pathlib import Path
    ember.backends.cudnn.benchmark = True
    assert ember.backends.cudnn.is_available() is False and ember.backends.mps.is_available() is False
    ember.backends.cudnn.benchmark = False
    m = nn.Linear(2, 2)
    assert ember.compile(m) is m and ember.compile(mode="max-autotune")(m) is m
    with ember.autocast("cpu", enabled=False):
        pass
    assert ember.Size([2, 3]) == (2, 3) and ember.zeros(2, 3).shape == ember.Size([2, 3]) and ember.Size([2, 3]).numel() == 6
    shim = Path(__file__).parent / "clients" / "shim"
    code = ("import torch.backends.cudnn as cudnn; cudnn.benchmark = True\n"
            "from torch.cuda.amp import GradScaler, autocast\nimport torch\n"
            "print(torch.backends.cudnn.benchmark, GradScaler is torch.amp.GradScaler, torch.cuda.is_available())")
    root = Path(__file__).parent.parent
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": f"{shim}:{root}"})
    assert res.stdout.split() == ["True", "True", "False"], res.stderr


def test_linalg_norms_cdist_pairwise_distance_match_torch():
    """torch.linalg.vector_norm/matrix_norm/norm, torch.cdist (a zero distance among them: its
    gradient is 0, as torch's) and F.pairwise_distance: values and gradients."""
    rng = np.random.default_rng(17)
    a, b = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 3))
    b[0, 1] = a[0, 2]                                          # one zero distance
    for kw in ({}, {"ord": 1, "dim": 1}, {"ord": float("inf"), "dim": -1, "keepdim": True}, {"ord": 3, "dim": (1, 2)}):
        _grads_match(lambda x: ember.linalg.vector_norm(x, **kw), lambda x: torch.linalg.vector_norm(x, **kw), [a])
    _grads_match(lambda x: ember.linalg.matrix_norm(x), lambda x: torch.linalg.matrix_norm(x), [a])
    _grads_match(lambda x: ember.linalg.norm(x), lambda x: torch.linalg.norm(x), [a])
    _grads_match(lambda x: ember.linalg.norm(x, 1, dim=2), lambda x: torch.linalg.norm(x, 1, dim=2), [a])
    for p in (2.0, 1.0):
        _grads_match(lambda x, y: ember.cdist(x, y, p=p), lambda x, y: torch.cdist(x, y, p=p), [a, b], rtol=1e-9)
    _grads_match(lambda x, y: F.pairwise_distance(x, y), lambda x, y: torch.nn.functional.pairwise_distance(x, y),
                 [a[0], b[0, :4]])


def test_parameter_list_and_dict_register_as_torchs():
    names = {}
    for lib in (ember, torch):
        class M(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.ws = lib.nn.ParameterList([lib.nn.Parameter(lib.ones(2)), lib.nn.Parameter(lib.zeros(3))])
                self.d = lib.nn.ParameterDict({"a": lib.nn.Parameter(lib.ones(1))})
        m = M()
        m.ws.append(lib.nn.Parameter(lib.ones(4)))
        m.d["b"] = lib.nn.Parameter(lib.ones(2))
        names[lib.__name__] = (sorted(m.state_dict()), [n for n, _ in m.named_parameters()], len(m.ws),
                               list(m.d.keys()), "a" in m.d, [tuple(p.shape) for p in m.ws])
    assert names["ember"] == names["torch"]
