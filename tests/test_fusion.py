"""The fused Conv2d → ReLU → MaxPool2d (numba_conv.Conv2dReLUMaxPool2d, kernels/fusion.py).

The op against the three reference ops it replaces (ember.ops: Conv2d, then ReLU, then
MaxPool2d), forward and every gradient under a random upstream gradient (float64 1e-10,
float32 1e-5 relative to the largest reference magnitude), against PyTorch in float64, and
bit-identical across reruns, threading modes and thread counts. Then the fusion point: an
nn.Sequential runs the op exactly where it may (and gives the same model outputs and gradients
as the layers one by one), and never where a layer is wrapped, subclassed or differently
configured, or with kernels off. No timing here (benchmarks/profile_ops.py, RESULTS.md).
"""
import numpy as np
import pytest

import ember
import ember.nn as nn
from ember import kernels
from ember.kernels import _jit, fusion
from ember.kernels import numba_conv as nc
from ember.ops import activation as ref_act, conv as ref_conv, pool as ref_pool
from ember.tensor import Tensor

pytestmark = pytest.mark.skipif(not nc.AVAILABLE, reason="numba is not installed")

TOL = {np.float64: 1e-10, np.float32: 1e-5}

# id: (N, C_in, H, W), (C_out, KH, KW), stride, padding, dilation, groups, pool
ROWS = {
    "lenet_c1": ((5, 1, 28, 28), (6, 5, 5), (1, 1), (2, 2), (1, 1), 1, (2, 2)),
    "lenet_c3": ((3, 6, 14, 14), (16, 5, 5), (1, 1), (0, 0), (1, 1), 1, (2, 2)),
    "odd_out_floor": ((2, 3, 9, 7), (5, 3, 3), (1, 1), (1, 1), (1, 1), 1, (2, 2)),     # 9×7 -> 4×3
    "rect_pool_s2": ((3, 2, 11, 12), (4, 2, 3), (2, 1), (1, 0), (1, 1), 1, (2, 3)),
    "pool3_dilated": ((2, 2, 13, 12), (3, 3, 2), (1, 1), (2, 1), (2, 2), 1, (3, 3)),
    "groups2": ((2, 4, 8, 9), (6, 3, 3), (1, 1), (1, 1), (1, 1), 2, (2, 2)),
    "pool1": ((2, 3, 6, 5), (7, 3, 3), (1, 1), (1, 1), (1, 1), 1, (1, 1)),
}


def _inputs(row, dtype, seed=0):
    xs, (C_out, KH, KW), stride, padding, dilation, groups, pool = row
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal((C_out, xs[1] // groups, KH, KW)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups), pool


class _Reference:
    """The composition the fused op equals: the reference conv, ReLU and max-pool ops."""
    @staticmethod
    def apply(x, w, b, pool, **kw):
        y = ref_act.ReLU.apply(ref_conv.Conv2d.apply(x, w, b, **kw))
        return ref_pool.MaxPool2d.apply(y, kernel_size=pool, stride=pool, padding=(0, 0))


def _run(fn, arrays, kw, pool, grad_out=None, seed=1):
    ts = [None if a is None else Tensor(a.copy(), requires_grad=True) for a in arrays]
    y = fn.apply(*ts, pool=pool, **kw)
    if grad_out is None:
        grad_out = np.random.default_rng(seed).standard_normal(y.shape).astype(y._data.dtype)
    y.backward(Tensor(grad_out))
    return y._data, [None if t is None else t.grad._data for t in ts], grad_out


def _close(actual, expected, tol, what):
    scale = float(np.abs(expected).max()) if np.size(expected) else 1.0
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ROWS)
def test_fused_op_equals_conv_relu_pool_reference(name, dtype):
    x, w, b, kw, pool = _inputs(ROWS[name], dtype)
    y_ref, g_ref, go = _run(_Reference, [x, w, b], kw, pool)
    y, gs, _ = _run(nc.Conv2dReLUMaxPool2d, [x, w, b], kw, pool, grad_out=go)
    assert y.shape == y_ref.shape and (y == 0).any() and (y > 0).any()
    _close(y, y_ref, TOL[dtype], f"{name} forward")
    for what, a, e in zip(("grad_x", "grad_w", "grad_b"), gs, g_ref):
        assert np.abs(e).max() > 0, what
        _close(a, e, TOL[dtype], f"{name} {what}")


def test_fused_op_without_bias_and_without_input_grad():
    x, w, _, kw, pool = _inputs(ROWS["odd_out_floor"], np.float64)
    go = np.random.default_rng(3).standard_normal((2, 5, 4, 3))
    grads = []
    for fn in (nc.Conv2dReLUMaxPool2d, _Reference):
        xt, wt = Tensor(x), Tensor(w, requires_grad=True)      # the input needs no gradient
        y = fn.apply(xt, wt, None, pool=pool, **kw)
        y.backward(Tensor(go))
        assert xt.grad is None
        grads.append((y._data, wt.grad._data))
    _close(grads[0][0], grads[1][0], 1e-10, "no-bias forward")
    _close(grads[0][1], grads[1][1], 1e-10, "no-bias grad_w")


@pytest.mark.parametrize("name", ["lenet_c1", "odd_out_floor", "rect_pool_s2", "groups2"])
def test_fused_op_equals_torch(name):
    torch = pytest.importorskip("torch")
    x, w, b, kw, pool = _inputs(ROWS[name], np.float64, seed=2)
    y, gs, go = _run(nc.Conv2dReLUMaxPool2d, [x, w, b], kw, pool)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(tx, tw, tb, **kw)), pool)
    ty.backward(torch.tensor(go))
    _close(y, ty.detach().numpy(), 1e-10, f"{name} forward vs torch")
    for what, a, t in zip(("grad_x", "grad_w", "grad_b"), gs, (tx, tw, tb)):
        _close(a, t.grad.numpy(), 1e-10, f"{name} {what} vs torch")


@pytest.mark.parametrize("mode", ["parallel", "pool", "serial"])
def test_fused_op_bit_identical_across_reruns_and_threading(mode, monkeypatch):
    x, w, b, kw, pool = _inputs(ROWS["lenet_c3"], np.float32)
    monkeypatch.setattr(_jit, "THREADING", "serial")
    base_y, base_g, go = _run(nc.Conv2dReLUMaxPool2d, [x, w, b], kw, pool)
    monkeypatch.setattr(_jit, "THREADING", mode)
    monkeypatch.setattr(_jit, "MIN_PARALLEL_WORK", 0)          # split even these small calls
    for threads in (1, 2, 3):
        monkeypatch.setattr(_jit, "num_threads", lambda n=threads: n)
        for _ in range(2):
            y, gs, _ = _run(nc.Conv2dReLUMaxPool2d, [x, w, b], kw, pool, grad_out=go)
            assert np.array_equal(y, base_y)
            for a, e in zip(gs, base_g):
                assert np.array_equal(a, e)


def test_fused_op_with_a_nan_matches_the_reference():
    """A NaN conv output: its window's max is NaN and the ReLU mask (NaN > 0 is False) stops its
    gradient, as the three ops do; an inf upstream gradient through a 0 mask gives NaN in both."""
    x, w, b, kw, pool = _inputs(ROWS["lenet_c3"], np.float64)
    x[1, 2, 5, 5] = np.nan
    go = np.random.default_rng(5).standard_normal((3, 16, 5, 5))
    go[0, 0, 0, 0] = np.inf
    y_ref, g_ref, _ = _run(_Reference, [x, w, b], kw, pool, grad_out=go)
    y, gs, _ = _run(nc.Conv2dReLUMaxPool2d, [x, w, b], kw, pool, grad_out=go)
    assert np.isnan(y).any()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(y_ref))
    for a, e in zip([y] + gs, [y_ref] + g_ref):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
        ok = np.isfinite(e)
        _close(a[ok], e[ok], 1e-10, "finite part")


def test_fused_op_falls_back_for_mixed_dtypes():
    x, w, b, kw, pool = _inputs(ROWS["lenet_c3"], np.float64)
    x32 = x.astype(np.float32)
    assert not nc.covers(x32, w, b)
    y_ref, g_ref, go = _run(_Reference, [x32, w, b], kw, pool)
    y, gs, _ = _run(nc.Conv2dReLUMaxPool2d, [x32, w, b], kw, pool, grad_out=go)
    _close(y, y_ref, 1e-10, "fallback forward")
    for a, e in zip(gs, g_ref):
        _close(a, e, 1e-10, "fallback grad")


# ------------------------------------------------------------------------- the fusion point

@pytest.fixture
def fast():
    """Kernels on for the test (the suite also runs with EMBER_KERNELS=reference)."""
    with kernels.use("fast"):
        yield


def _ops(out):
    """The op classes in the graph that produced ``out`` (a ``SequentialChain`` node's are the ops
    of its stages)."""
    seen, stack = set(), [out]
    while stack:
        t = stack.pop()
        if t is None or getattr(t, "_ctx", None) is None:
            continue
        seen.add(t._ctx.fn)
        seen.update(op for op, *_ in t._ctx.__dict__.get("stages", ()) if op is not None)
        stack.extend(t._ctx.parents)
    return seen


def _step(model, x, y):
    """Logits, the ops of its graph and every parameter's gradient after one forward +
    cross-entropy + backward."""
    for p in model.parameters():
        p.grad = None
    out = model(Tensor(x))
    ops = _ops(out)                                            # before backward frees the graph
    ember.nn.functional.cross_entropy(out, y).backward()
    return out, ops, [p.grad._data.copy() for p in model.parameters()]


def _lenet_batch(dtype, n, seed):
    """LeNet-5 (seed 0) in ``dtype`` and a batch of n random images and labels."""
    from ember.models import lenet5
    ember.manual_seed(0)
    model = lenet5()
    if dtype == np.float64:
        for p in model.parameters():
            p._data = p._data.astype(np.float64)
    rng = np.random.default_rng(seed)
    return model, rng.standard_normal((n, 1, 28, 28)).astype(dtype), rng.integers(0, 10, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lenet_fused_equals_layers_one_by_one_and_reference(dtype, monkeypatch, fast):
    model, x, y = _lenet_batch(dtype, 9, seed=0)
    out, ops, grads = _step(model, x, y)
    assert nc.Conv2dReLUMaxPool2d in ops                       # both conv → ReLU → pool stages fused
    assert not any(issubclass(c, (ref_conv.Conv2d, ref_pool.MaxPool2d)) for c in ops)
    monkeypatch.setattr(fusion, "enabled", False)
    out_1, ops_1, grads_1 = _step(model, x, y)
    assert nc.Conv2dReLUMaxPool2d not in ops_1
    monkeypatch.setattr(fusion, "enabled", True)
    with kernels.use("reference"):
        out_r, ops_r, grads_r = _step(model, x, y)
    assert nc.Conv2dReLUMaxPool2d not in ops_r and ref_pool.MaxPool2d in ops_r
    for other, o in ((grads_1, out_1), (grads_r, out_r)):
        _close(out._data, o._data, TOL[dtype], "logits")
        for a, e in zip(grads, other):
            _close(a, e, TOL[dtype], "parameter gradient")


def _chain_run(model, x, y, chain, monkeypatch, x_grad=True):
    """(logits, its node's op, every parameter's gradient, x's gradient) after forward +
    cross-entropy + backward, with fusion.chain set to ``chain``."""
    monkeypatch.setattr(fusion, "chain", chain)
    for p in model.parameters():
        p.grad = None
    xt = Tensor(x, requires_grad=x_grad)
    out = model(xt)
    op = out._ctx.fn
    ember.nn.functional.cross_entropy(out, y).backward()
    return (out._data.copy(), op, [None if p.grad is None else p.grad._data.copy() for p in model.parameters()],
            None if xt.grad is None else xt.grad._data.copy())


def _same(a, b):
    return (a is None and b is None) or (a is not None and b is not None and a.dtype == b.dtype and np.array_equal(a, b))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequential_chain_is_one_node_with_the_groups_numbers_bit_for_bit(dtype, monkeypatch, fast):
    """LeNet-5 runs as ONE graph node (fusion.SequentialChain) named as PyTorch's output node,
    and its logits and every gradient (parameters and input) are those of the fused groups run
    one node each, bit for bit; with the first conv frozen, its gradients stay None."""
    model, x, y = _lenet_batch(dtype, 7, seed=3)
    for freeze in (False, True):
        for p in model[0].parameters():
            p.requires_grad = not freeze
        chained = _chain_run(model, x, y, True, monkeypatch, x_grad=not freeze)
        groups = _chain_run(model, x, y, False, monkeypatch, x_grad=not freeze)
        assert chained[1] is fusion.SequentialChain and groups[1] is ember.kernels.matmul.Linear
        assert _same(chained[0], groups[0]) and _same(chained[3], groups[3])
        assert all(_same(a, b) for a, b in zip(chained[2], groups[2]))
        assert (chained[2][0] is None) == freeze and (chained[3] is None) == freeze
    monkeypatch.setattr(fusion, "chain", True)
    assert model(Tensor(x)).grad_fn.name() == "AddmmBackward0"     # PyTorch's node for LeNet-5's output


def test_sequential_chain_under_no_grad_retained_and_after_an_in_place_write(monkeypatch, fast):
    from ember.models import lenet5
    ember.manual_seed(2)
    model = lenet5()
    x = Tensor(np.random.default_rng(2).standard_normal((3, 1, 28, 28)).astype(np.float32))
    with ember.no_grad():
        out = model(x)
    assert not out.requires_grad and out._ctx is None
    monkeypatch.setattr(fusion, "chain", False)
    with ember.no_grad():
        assert np.array_equal(out._data, model(x)._data)
    monkeypatch.setattr(fusion, "chain", True)
    loss = model(x).sum()                                          # retain_graph: twice the gradient
    loss.backward(retain_graph=True)
    once = [p.grad._data.copy() for p in model.parameters()]
    loss.backward()
    assert all(np.array_equal(p.grad._data, 2 * g) for p, g in zip(model.parameters(), once))
    out = model(x)
    with ember.no_grad():
        model[3].weight.add_(1.0)                                  # a weight a stage saved, written in place
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 2))
    xin = ember.randn(3, 3, 4, requires_grad=True)                # the first Linear saves a view of it
    out = mlp(xin)
    assert out._ctx.fn is fusion.SequentialChain
    with ember.no_grad():
        xin.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_sequential_chain_falls_back_where_a_layer_has_no_stage(monkeypatch, fast):
    """A MaxPool2d the conv cannot fuse (ceil_mode) has no stage: the groups run one by one (the
    same numbers), and that Sequential is not tried again on an input of that shape and dtype."""
    from ember.kernels import gemm_conv
    ember.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(),
                          nn.Linear(64, 3))
    x = np.random.default_rng(4).standard_normal((2, 2, 9, 9)).astype(np.float32)
    tries = []
    forward = fusion.SequentialChain.forward
    monkeypatch.setattr(fusion.SequentialChain, "forward",
                        staticmethod(lambda *a, **k: tries.append(1) or forward(*a, **k)))
    out = model(Tensor(x))
    assert out._ctx.fn is not fusion.SequentialChain and gemm_conv.Conv2dReLU in _ops(out)
    model(Tensor(x))
    assert len(tries) == 1 and ((2, 2, 9, 9), np.dtype(np.float32)) in fusion._UNCHAINED[model[0]]
    model(Tensor(x[:1]))                                           # another shape: tried again
    assert len(tries) == 2
    from ember.models import lenet5
    lenet = lenet5()                                               # a failure under a hook is not kept
    handle = lenet[0].register_forward_hook(lambda *a: None)
    lenet(Tensor(np.zeros((1, 1, 28, 28), np.float32)))
    handle.remove()
    assert lenet[0] not in fusion._UNCHAINED
    assert lenet(Tensor(np.zeros((1, 1, 28, 28), np.float32)))._ctx.fn is fusion.SequentialChain


def _net(*layers):
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), *layers, nn.Flatten())


def _fused(model, x):
    return nc.Conv2dReLUMaxPool2d in _ops(model(Tensor(x, requires_grad=True)))


def test_fusion_only_where_the_layers_are_exactly_conv_relu_pool(fast):
    x = np.random.default_rng(0).standard_normal((2, 2, 9, 9)).astype(np.float32)
    assert _fused(_net(nn.MaxPool2d(2)), x)
    assert _fused(_net(nn.MaxPool2d((2, 3))), x)
    assert not _fused(_net(nn.MaxPool2d(2, stride=1)), x)            # overlapping windows
    assert not _fused(_net(nn.MaxPool2d(2, padding=1)), x)
    assert not _fused(_net(nn.AvgPool2d(2)), x)
    assert not _fused(nn.Sequential(nn.Conv2d(2, 4, 3), nn.MaxPool2d(2), nn.ReLU()), x)

    class MyReLU(nn.ReLU):
        pass
    assert not _fused(nn.Sequential(nn.Conv2d(2, 4, 3), MyReLU(), nn.MaxPool2d(2)), x)
    wrapped = _net(nn.MaxPool2d(2))                                   # as summary/feature_maps do
    object.__setattr__(wrapped[0], "forward", wrapped[0].forward)
    assert not _fused(wrapped, x)
    with pytest.raises(TypeError, match="dtype"):                     # not fused: the layer refuses it
        _fused(_net(nn.MaxPool2d(2)), x.astype(np.float64))
    with pytest.raises(nn.ModuleError, match=r"^2 \(MaxPool2d\): Given input size: \(4x7x7\)\. Calculated output size: \(4x0x0\)\. Output size is too small"):
        _fused(_net(nn.MaxPool2d(8)), x)                              # 7×7 conv output: the pool's error
    with kernels.use("reference"):
        assert not _fused(_net(nn.MaxPool2d(2)), x)


def test_a_bad_input_is_still_reported_by_the_layer(fast):
    model = _net(nn.MaxPool2d(2))
    with pytest.raises(nn.ModuleError, match=r"^0 \(Conv2d\): .*channels"):
        model(Tensor(np.zeros((1, 3, 9, 9), np.float32)))


def test_fusion_under_no_grad_gives_the_same_logits(fast):
    from ember.models import lenet5
    ember.manual_seed(1)
    model = lenet5().eval()
    x = Tensor(np.random.default_rng(1).standard_normal((4, 1, 28, 28)).astype(np.float32))
    with ember.no_grad():
        fast = model(x)._data
        with kernels.use("reference"):
            ref = model(x)._data
    _close(fast, ref, 1e-5, "inference logits")


def test_without_numba_the_layers_run_one_by_one(tmp_path):
    """numba not importable: nothing is fused, and the fused op itself runs the three ops."""
    from test_kernels_numba import run_python
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import numpy as np, ember\n"
        "from ember.kernels import numba_conv as nc\n"
        "from ember.models import lenet5\n"
        "from ember.tensor import Tensor\n"
        "assert not nc.AVAILABLE\n"
        "x = Tensor(np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32))\n"
        "out = lenet5()(x)\n"
        "seen, stack = set(), [out]\n"
        "while stack:\n"
        "    t = stack.pop()\n"
        "    if getattr(t, '_ctx', None) is not None:\n"
        "        seen.add(t._ctx.fn.__name__); stack.extend(t._ctx.parents)\n"
        "assert 'Conv2dReLUMaxPool2d' not in seen and 'MaxPool2d' in seen, seen\n"
        "w = Tensor(np.ones((2, 1, 3, 3), np.float32), requires_grad=True)\n"
        "y = nc.Conv2dReLUMaxPool2d.apply(x, w, None, pool=(2, 2))\n"
        "y.sum().backward()\n"
        "assert y.shape == (3, 2, 13, 13) and w.grad is not None\n"
        "print('ok')\n")
    assert run_python(code, tmp_path) == "ok"


# ------------------------------------------------------------------- Conv2d → ReLU pairs

def _vgg(dtype):
    """A plain VGG-style net: every conv path (direct 3×3, phase stride 2, GEMM 1×1, groups > 1
    on numba_conv) followed by a ReLU, and a conv with no ReLU after it."""
    ember.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1),
                          nn.ReLU(), nn.Conv2d(16, 16, 1), nn.ReLU(), nn.Conv2d(16, 8, 3, groups=2), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    for p in model.parameters():
        p._data = p._data.astype(dtype)
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_relu_pairs_fused_equal_the_layers_and_torch(dtype, monkeypatch, fast):
    from ember.kernels import gemm_conv
    model = _vgg(dtype)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3, 11, 12)).astype(dtype)
    y = rng.integers(0, 5, 6)
    out, ops, grads = _step(model, x, y)
    assert gemm_conv.Conv2dReLU in ops and nc.Conv2dReLU in ops          # groups = 2 on numba_conv
    assert ref_act.ReLU not in ops and not any(issubclass(c, ref_act.ReLU) for c in ops)
    monkeypatch.setattr(fusion, "pairs", False)
    out_1, ops_1, grads_1 = _step(model, x, y)
    assert gemm_conv.Conv2dReLU not in ops_1 and any(issubclass(c, ref_act.ReLU) for c in ops_1)
    _close(out._data, out_1._data, TOL[dtype], "logits, pairs fused vs not")
    for a, e in zip(grads, grads_1):
        _close(a, e, TOL[dtype], "parameter gradient, pairs fused vs not")
    if dtype == np.float64:
        torch = pytest.importorskip("torch")
        tm = torch.nn.Sequential(*[getattr(torch.nn, type(m).__name__)(*_args(m)) for m in model])
        tm.load_state_dict({k: torch.tensor(np.array(v)) for k, v in model.state_dict().items()})
        tm.double()
        tout = tm(torch.tensor(x))
        torch.nn.functional.cross_entropy(tout, torch.tensor(y)).backward()
        _close(out._data, tout.detach().numpy(), 1e-10, "logits vs torch")
        for a, t in zip(grads, tm.parameters()):
            _close(a, t.grad.numpy(), 1e-10, "parameter gradient vs torch")


def _args(m):
    """The constructor arguments that rebuild layer m in torch.nn (for _vgg's layer kinds)."""
    if isinstance(m, nn.Conv2d):
        return (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups)
    if isinstance(m, nn.Linear):
        return (m.in_features, m.out_features)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return (m.output_size,)
    return ()


def test_conv_relu_pair_not_fused_for_a_subclass_or_a_hook(fast):
    from ember.kernels import gemm_conv
    x = np.random.default_rng(0).standard_normal((2, 2, 9, 9)).astype(np.float32)

    def pair_fused(model):
        return gemm_conv.Conv2dReLU in _ops(model(Tensor(x)))

    class MyReLU(nn.ReLU):
        pass
    assert pair_fused(nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU()))
    assert not pair_fused(nn.Sequential(nn.Conv2d(2, 4, 3), MyReLU()))
    hooked = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU())
    seen = []
    hooked[0].register_forward_hook(lambda mod, inp, out: seen.append(out.shape))
    assert not pair_fused(hooked) and seen == [(2, 4, 7, 7)]
    assert not pair_fused(nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"), nn.ReLU()))


def _mlp(dtype=np.float32, relu=nn.ReLU):
    ember.manual_seed(3)
    model = nn.Sequential(nn.Linear(7, 6), relu(), nn.Linear(6, 5), relu(), nn.Linear(5, 4))
    for p in model.parameters():
        p._data = p._data.astype(dtype)
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(9, 7), (3, 4, 7)], ids=["2d", "3d"])
def test_linear_relu_pairs_fused_equal_the_layers_bit_for_bit_and_torch(dtype, shape, monkeypatch, fast):
    """Linear → ReLU as matmul.LinearReLU: the same logits and parameter gradients as the two
    kernels one after the other (bit for bit), as the reference ops (1e-10 / 1e-5) and, in
    float64, as PyTorch (1e-10)."""
    from ember.kernels import matmul
    model = _mlp(dtype)
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(dtype)
    u = rng.standard_normal(shape[:-1] + (4,)).astype(dtype)

    def step():
        for p in model.parameters():
            p.grad = None
        xt = Tensor(x, requires_grad=True)
        out = model(xt)
        ops = _ops(out)
        out.backward(Tensor(u))
        return out._data.copy(), ops, [p.grad._data.copy() for p in model.parameters()] + [xt.grad._data.copy()]
    out, ops, grads = step()
    assert matmul.LinearReLU in ops and not any(issubclass(c, ref_act.ReLU) for c in ops)
    monkeypatch.setattr(fusion, "pairs", False)
    out_1, ops_1, grads_1 = step()
    assert matmul.LinearReLU not in ops_1 and any(issubclass(c, ref_act.ReLU) for c in ops_1)
    assert np.array_equal(out, out_1) and all(np.array_equal(a, b) for a, b in zip(grads, grads_1))
    with kernels.use("reference"):
        out_r, _, grads_r = step()
    _close(out, out_r, TOL[dtype], "logits vs reference")
    for a, e in zip(grads, grads_r):
        _close(a, e, TOL[dtype], "gradient vs reference")
    if dtype == np.float64:
        torch = pytest.importorskip("torch")
        tm = torch.nn.Sequential(*[getattr(torch.nn, type(m).__name__)(*_args(m)) for m in model]).double()
        tm.load_state_dict({k: torch.tensor(np.array(v)) for k, v in model.state_dict().items()})
        xt = torch.tensor(x, requires_grad=True)
        tm(xt).backward(torch.tensor(u))
        _close(out, tm(torch.tensor(x)).detach().numpy(), 1e-10, "logits vs torch")
        for a, t in zip(grads, [*tm.parameters(), xt]):
            _close(a, t.grad.numpy(), 1e-10, "gradient vs torch")


def test_linear_relu_fused_only_for_plain_layers_and_errors_come_from_the_layer(fast):
    from ember.kernels import matmul
    x = np.random.default_rng(5).standard_normal((3, 7)).astype(np.float32)

    def fused(model, inp=x):
        return matmul.LinearReLU in _ops(model(Tensor(inp)))

    class MyReLU(nn.ReLU):
        pass
    assert fused(_mlp()) and fused(_mlp(relu=lambda: nn.ReLU(inplace=True)))
    assert not fused(_mlp(relu=MyReLU))
    hooked, seen = _mlp(), []
    hooked[0].register_forward_hook(lambda mod, inp, out: seen.append(out.shape))
    out = hooked(Tensor(x))
    assert seen == [(3, 6)] and matmul.LinearReLU in _ops(out)        # only the hooked pair runs unfused
    wrapped = nn.Sequential(nn.Linear(7, 6), nn.ReLU())
    object.__setattr__(wrapped[1], "forward", wrapped[1].forward)    # as summary/feature_maps do
    assert not fused(wrapped)
    with pytest.raises(nn.ModuleError, match=r"^0 \(Linear\): expected input with 7 features \(last dimension\), got 8"):
        _mlp()(Tensor(np.zeros((3, 8), np.float32)))
    with pytest.raises(TypeError, match="^linear: input dtype float64 and weight dtype float32 differ"):
        _mlp()(Tensor(x.astype(np.float64)))                          # not fused: the layer refuses it
    with kernels.use("reference"):
        assert not fused(_mlp())


@pytest.mark.parametrize("name", ["lenet_c1", "lenet_c3", "rect_pool_s2"])
def test_fused_forward_without_backward_skips_the_offsets_and_gives_the_same_output(name, monkeypatch):
    """Under no_grad (and when no input requires a gradient) the fused op asks for no argmax
    offsets: the 2×2 kernel leaves them unwritten (arg None), other windows still make them;
    the output is bit for bit the one computed with the offsets, which backward still gets."""
    from ember import no_grad
    x, w, b, kw, pool = _inputs(ROWS[name], np.float32, seed=4)
    asked = []
    real = nc.conv2d_relu_pool_forward

    def spy(*a):
        out = real(*a)
        asked.append((a[-1], out[1] is None))
        return out
    monkeypatch.setattr(nc, "conv2d_relu_pool_forward", spy)
    y, gs, _ = _run(nc.Conv2dReLUMaxPool2d, [x, w, b], kw, pool)   # with backward
    with no_grad():
        y_ng = nc.Conv2dReLUMaxPool2d.apply(Tensor(x, requires_grad=True), Tensor(w, requires_grad=True),
                                            Tensor(b, requires_grad=True), **kw, pool=pool)
    y_off = nc.Conv2dReLUMaxPool2d.apply(Tensor(x), Tensor(w), Tensor(b), **kw, pool=pool)   # nothing requires grad
    assert np.array_equal(y_ng._data, y) and np.array_equal(y_off._data, y)
    two = tuple(pool) == (2, 2)
    assert asked == [(True, False), (False, two), (False, two)]
