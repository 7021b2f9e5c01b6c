"""PyTorch's tensor semantics (issue 12 groups 1, 2, 3, 8, 9; issue 14 items 2 and 10): devices,
in-place updates with the version counter, ``.data``, dtypes and type promotion, Python
protocols, the autograd API. Each test runs the same lines under torch and ember where it can."""
import re

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F

torch = pytest.importorskip("torch")

LIBS = pytest.mark.parametrize("lib", [torch, ember], ids=["torch", "ember"])


def _raises(lib, exc, fn):
    with pytest.raises(exc) as info:
        fn()
    return str(info.value)


# ---- group 1: devices ------------------------------------------------------------------------
@LIBS
def test_cpu_device_idiom_runs(lib):
    device = lib.device("cuda" if lib.cuda.is_available() else "cpu")
    assert str(device) == "cpu" and device.type == "cpu" and repr(device) == "device(type='cpu')"
    x = lib.zeros(2, 3, device=device).to(device)
    assert x.device == lib.device("cpu") and x.cpu() is x and x.to("cpu") is x
    assert lib.tensor([1.0], device="cpu").device.type == "cpu"
    assert lib.ones(2, device="cpu").sum().item() == 2.0
    assert lib.arange(3, device="cpu").tolist() == [0, 1, 2]
    model = lib.nn.Linear(3, 2).to(device)
    assert model.cpu() is model and model.weight.device == device


@LIBS
def test_to_converts_dtype_and_follows_another_tensor(lib):
    x = lib.tensor([1.5, -2.5])
    assert x.to(lib.float64).dtype == lib.float64
    assert x.to("cpu", lib.int64).tolist() == [1, -2]
    assert x.to(lib.tensor([1], dtype=lib.int32)).dtype == lib.int32
    assert x.to(dtype=lib.float16).dtype == lib.float16
    y = x.to(lib.float32, copy=True)
    assert y is not x and y.tolist() == x.tolist()


def test_cuda_requests_fail_clearly():
    assert ember.cuda.is_available() is False and ember.cuda.device_count() == 0
    assert ember.accelerator.is_available() is False and ember.accelerator.current_accelerator() is None
    for request in (lambda: ember.zeros(2).to("cuda"), lambda: ember.zeros(2, device="cuda:0"),
                    lambda: ember.zeros(2).cuda(), lambda: nn.Linear(2, 2).to(ember.device("cuda"))):
        with pytest.raises(RuntimeError, match="ember runs on the CPU only: device 'cuda.*' is not available|no CUDA"):
            request()
    with pytest.raises(RuntimeError, match="device type at start of device string: tpu"):
        ember.device("tpu")


def test_module_dtype_conversions_match_torch():
    for lib in (torch, ember):
        m = lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.BatchNorm1d(3))
        assert m.double()[0].weight.dtype == lib.float64
        assert m.float()[1].running_mean.dtype == lib.float32
        assert m.to(lib.float64)[1].weight.dtype == lib.float64
        assert m.half()[0].bias.dtype == lib.float16


# ---- group 2: .data, in-place, version counter ----------------------------------------------
@LIBS
def test_data_is_an_untracked_tensor_sharing_storage(lib):
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    d = w.data
    assert isinstance(d, lib.Tensor) and not d.requires_grad
    d.add_(1.0)                       # allowed: .data is outside autograd
    assert w.tolist() == [2.0, 3.0]
    assert abs(w.data.norm().item() - np.hypot(2, 3)) < 1e-6 if lib is torch else True
    w.data = lib.tensor([5.0, 6.0])
    assert w.tolist() == [5.0, 6.0] and w.requires_grad


def _manual_sgd(lib):
    model = lib.nn.Linear(2, 1)
    with lib.no_grad():
        model.weight.copy_(lib.tensor([[0.5, -1.0]]))
        model.bias.fill_(0.25)
    x, y = lib.tensor([[1.0, 2.0], [3.0, -1.0]]), lib.tensor([[1.0], [0.0]])
    for _ in range(3):
        loss = ((model(x) - y) ** 2).mean()
        model.zero_grad()
        loss.backward()
        with lib.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
    return model.weight.flatten().tolist() + model.bias.tolist()


def test_manual_sgd_loop_updates_parameters_in_place():
    """Issue 12: ``p -= lr * p.grad`` under no_grad rebound the loop variable (loss stayed put)."""
    ours, theirs = _manual_sgd(ember), _manual_sgd(torch)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert ours != [0.5, -1.0, 0.25]


@LIBS
def test_in_place_on_a_leaf_that_requires_grad_raises_outside_no_grad(lib):
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    msg = _raises(lib, RuntimeError, lambda: w.sub_(1.0))
    assert msg == "a leaf Variable that requires grad is being used in an in-place operation."

    def augmented():
        v = w
        v -= 0.1 * w          # noqa: F841
    assert _raises(lib, RuntimeError, augmented) == msg
    with lib.no_grad():
        w -= 0.5
    assert w.tolist() == [0.5, 1.5] and w.requires_grad and w.grad is None


@LIBS
def test_in_place_methods_match_torch(lib):
    x = lib.tensor([[1.0, -2.0], [3.0, 4.0]])
    x.add_(1.0).mul_(2.0).sub_(lib.tensor([1.0, 2.0]), alpha=0.5).div_(2.0)
    assert x.tolist() == [[1.75, -1.5], [3.75, 4.5]]
    x.clamp_(min=-1.0, max=4.0)
    assert x.tolist() == [[1.75, -1.0], [3.75, 4.0]]
    x[0, 1] = 7.0
    x[1] = lib.tensor([0.5, 0.25])
    assert x.tolist() == [[1.75, 7.0], [0.5, 0.25]]
    x.zero_()
    assert x.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    x.copy_(lib.tensor([1.0, 2.0]))            # broadcast
    assert x.tolist() == [[1.0, 2.0], [1.0, 2.0]]
    i = lib.tensor([1, 2, 3])
    i += 1
    assert i.dtype == lib.int64 and i.tolist() == [2, 3, 4]
    msg = _raises(lib, RuntimeError, lambda: i.div_(2))
    assert "result type Float can't be cast to the desired output type Long" in msg if lib is torch \
        else "result type float32 can't be cast to the desired output type int64" in msg
    v = lib.zeros(1000)
    v.normal_(2.0, 0.5)
    assert abs(v.mean().item() - 2.0) < 0.1
    v.uniform_(-1.0, 1.0)
    assert -1.0 <= v.min().item() and v.max().item() < 1.0


@LIBS
def test_version_counter_counts_in_place_writes(lib):
    x = lib.zeros(3)
    assert x._version == 0
    x.add_(1)
    x[0] = 2.0
    x += 1
    assert x._version == 3
    assert x.detach()._version == 3        # detach shares the counter


VERSION_ERROR = "one of the variables needed for gradient computation has been modified by an inplace operation"


@LIBS
def test_modifying_a_saved_tensor_raises_at_backward(lib):
    """Issue 14 item 2: ``y.zero_()`` after y was saved gave zeros silently."""
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    z = (y * 1).sum()
    y.zero_()
    msg = _raises(lib, RuntimeError, z.backward)
    assert msg.startswith(VERSION_ERROR)
    assert re.search(r"is at version 1; expected version 0 instead", msg)
    if lib is ember:
        assert "output 0 of ExpBackward" in msg and "MulBackward" in msg   # names the ops


@LIBS
def test_optimizer_step_between_forward_and_backward_raises(lib):
    """Issue 14 item 2: ``opt.step()`` between forward and backward gave [0, 0] instead of raising."""
    w = lib.nn.Parameter(lib.tensor([1.0, 2.0]))
    opt = lib.optim.SGD([w], lr=0.1)
    loss = (w * w).sum()
    w.grad = lib.tensor([1.0, 1.0])
    opt.step()
    assert _raises(lib, RuntimeError, loss.backward).startswith(VERSION_ERROR)


@LIBS
def test_in_place_on_a_non_leaf_keeps_gradients_right(lib):
    x = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x * 2
    y.add_(1.0)
    y.mul_(x)           # y = (2x + 1) x  ->  dy/dx = 4x + 1
    y[1] = 0.0          # element 1 cut
    y.sum().backward()
    assert x.grad.tolist() == [5.0, 0.0, 13.0]


def test_unchanged_saved_tensors_and_other_ops_still_backward():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    z = (y * 2).sum()
    y2 = x * 3
    y2.add_(1)          # y2 is not saved by anyone
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([1.0, 2.0]), rtol=1e-6)


def test_duplicate_parameters_warn_like_torch():
    """Issue 14 item 10: ``SGD([p, p])`` stepped p twice without PyTorch's warning."""
    msgs = []
    for lib in (torch, ember):
        p = lib.nn.Parameter(lib.zeros(2))
        with pytest.warns(UserWarning) as rec:
            lib.optim.SGD([p, p], lr=0.1)
        msgs.append(str(rec[0].message))
    assert msgs[0] == msgs[1]


@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_softmax_of_integers_raises_like_torch(dtype):
    """Issue 14 item 10: softmax on int/bool returned float64/float16."""
    msgs = []
    for lib in (torch, ember):
        x = lib.tensor([1, 0, 1]).to(getattr(lib, dtype))
        with pytest.raises(RuntimeError) as info:
            lib.nn.functional.softmax(x, dim=0)
        msgs.append(str(info.value))
        with pytest.raises(RuntimeError):
            x.softmax(0)
        with pytest.raises(RuntimeError):
            lib.nn.functional.log_softmax(x, dim=0)
    assert msgs[0] == msgs[1]
    assert F.softmax(ember.tensor([1, 2]), 0, dtype=ember.float32).dtype == ember.float32


# ---- group 3: dtypes and promotion ------------------------------------------------------------
NAMES = ["float", "double", "half", "float16", "float32", "float64", "long", "int", "int64", "int32",
         "int16", "short", "int8", "uint8", "bool"]


def test_dtype_aliases_and_conversions_match_torch():
    for name in NAMES:
        a, b = torch.tensor([1.7, 0.0]).to(getattr(torch, name)), ember.tensor([1.7, 0.0]).to(getattr(ember, name))
        assert str(a.dtype).replace("torch.", "") == {"float": "float32", "double": "float64", "half": "float16",
                                                       "long": "int64", "int": "int32", "short": "int16"}.get(name, name)
        assert np.dtype(str(a.dtype).replace("torch.", "")) == b.dtype
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for m in ["int", "long", "float", "double", "bool", "half"]:
        assert np.dtype(str(getattr(torch.tensor([1.5]), m)().dtype).replace("torch.", "")) == \
            getattr(ember.tensor([1.5]), m)().dtype
    assert ember.tensor([1.5]).type(ember.int32).tolist() == [1]
    assert ember.tensor([1.5]).type() == "ember.FloatTensor" and torch.tensor([1.5]).type() == "torch.FloatTensor"


def test_default_dtype():
    assert ember.get_default_dtype() == ember.float32
    try:
        ember.set_default_dtype(ember.float64)
        assert ember.tensor([1.5]).dtype == ember.float64 and ember.arange(0, 1, 0.5).dtype == ember.float64
    finally:
        ember.set_default_dtype(ember.float32)
    assert ember.tensor([1.5]).dtype == ember.float32
    with pytest.raises(TypeError, match="only floating-point types are supported as the default type"):
        ember.set_default_dtype(ember.int64)


PROMOTION = [
    ("f32 + i64", lambda L: L.tensor([1.5]) + L.tensor([2])),
    ("f32 ** i64", lambda L: L.tensor([1.5]) ** L.tensor([2])),
    ("i64 ** f32", lambda L: L.tensor([2]) ** L.tensor([1.5])),
    ("i64 * 2.5", lambda L: L.tensor([1, 2]) * 2.5),
    ("2.5 * i64", lambda L: 2.5 * L.tensor([1, 2])),
    ("i64 / i64", lambda L: L.tensor([1, 2]) / L.tensor([2, 2])),
    ("i64 / 2", lambda L: L.tensor([1, 2]) / 2),
    ("f32 * 2", lambda L: L.tensor([1.5]) * 2),
    ("f32 + f64 0-d", lambda L: L.tensor([1.5]) + L.tensor(2.0, dtype=L.float64)),
    ("f32 0-d + f64", lambda L: L.tensor(1.5) + L.tensor([2.0], dtype=L.float64)),
    ("i32 + i64 0-d", lambda L: L.tensor([1], dtype=L.int32) + L.tensor(2)),
    ("i64 + f64 0-d", lambda L: L.tensor([1]) + L.tensor(2.0, dtype=L.float64)),
    ("u8 + i8", lambda L: L.tensor([1], dtype=L.uint8) + L.tensor([2], dtype=L.int8)),
    ("bool + bool", lambda L: L.tensor([True]) + L.tensor([False])),
    ("bool + 1", lambda L: L.tensor([True]) + 1),
    ("f16 + f32 0-d", lambda L: L.tensor([1.0], dtype=L.float16) + L.tensor(2.0)),
    ("i64 < 1.5", lambda L: L.tensor([1, 2]) < 1.5),
    ("arange floats", lambda L: L.arange(0, 1, 0.25)),
    ("arange ints", lambda L: L.arange(5)),
    ("i64 - f32", lambda L: L.tensor([3]) - L.tensor([0.5])),
]


@pytest.mark.parametrize("name,fn", PROMOTION, ids=[p[0] for p in PROMOTION])
def test_type_promotion_matches_torch(name, fn):
    a, b = fn(torch), fn(ember)
    assert np.dtype(str(a.dtype).replace("torch.", "")) == b.dtype, name
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-3)


def test_result_type_matches_torch():
    cases = [(lambda L: L.tensor([1.0]), 2), (lambda L: L.tensor([1]), 2.0),
             (lambda L: L.tensor([1], dtype=L.int32), lambda L: L.tensor([1]))]
    for a, b in cases:
        ta, ea = a(torch), a(ember)
        tb, eb = (b(torch), b(ember)) if callable(b) else (b, b)
        assert np.dtype(str(torch.result_type(ta, tb)).replace("torch.", "")) == ember.result_type(ea, eb)
    for a, b in ((2, 3.0), (2, 3), (1.0, "tensor")):
        tb, eb = (torch.tensor([1]), ember.tensor([1])) if b == "tensor" else (b, b)
        assert np.dtype(str(torch.result_type(a, tb)).replace("torch.", "")) == ember.result_type(a, eb)


def test_promotion_keeps_gradients():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    (x * ember.tensor([3, 4])).sum().backward()
    assert x.grad.dtype == ember.float32 and x.grad.tolist() == [3.0, 4.0]


# ---- group 8: Python protocols ----------------------------------------------------------------
@LIBS
def test_python_protocols(lib):
    classes = ["a", "b", "c"]
    label = lib.tensor(2)
    assert classes[label] == "c" and list(range(5))[lib.tensor([1])] == 1
    loss = lib.tensor(0.123456)
    assert f"{loss:.4f}" == "0.1235" and "{:+.2f}".format(loss) == "+0.12"
    assert len(lib.zeros(4, 2)) == 4
    rows = [r.tolist() for r in lib.tensor([[1, 2], [3, 4]])]
    assert rows == [[1, 2], [3, 4]]
    assert bool(lib.tensor([1.0])) and not bool(lib.tensor(0))
    assert lib.tensor([[1.5]]).item() == 1.5 and lib.tensor([[1, 2]]).tolist() == [[1, 2]]
    assert float(lib.tensor(2.5)) == 2.5 and int(lib.tensor(3.7)) == 3
    assert _raises(lib, RuntimeError, lambda: bool(lib.tensor([1, 2]))) == \
        "Boolean value of Tensor with more than one value is ambiguous"
    assert _raises(lib, TypeError, lambda: [0, 1][lib.tensor(1.0)]) == \
        "only integer tensors of a single element can be converted to an index"
    assert _raises(lib, TypeError, lambda: len(lib.tensor(1.0))) == "len() of a 0-d tensor"
    assert _raises(lib, TypeError, lambda: iter(lib.tensor(1.0))) == "iteration over a 0-d tensor"
    assert "cannot be converted to Scalar" in _raises(lib, RuntimeError, lambda: lib.tensor([1, 2]).item())
    with pytest.raises(TypeError):
        f"{lib.tensor([1.0, 2.0]):.2f}"


# ---- group 9: autograd API --------------------------------------------------------------------
def _my_functions(lib):
    class Clip(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, lo):
            ctx.save_for_backward(x)
            ctx.lo = lo
            ctx.flags = ctx.needs_input_grad
            return x.clamp(min=lo).clone()

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            g = grad_output.clone()
            g[x < ctx.lo] = 0
            return g, None

    class ArgMaxOf(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            out = x.argmax(0)
            ctx.mark_non_differentiable(out)
            return out

        @staticmethod
        def backward(ctx, g):  # pragma: no cover - never called
            raise AssertionError
    return Clip, ArgMaxOf


@LIBS
def test_user_defined_function_sees_tensors(lib):
    Clip, ArgMaxOf = _my_functions(lib)
    x = lib.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    y = Clip.apply(x * 2, 0.0)
    (y * lib.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [0.0, 4.0, 6.0]
    assert y.grad_fn is not None
    i = ArgMaxOf.apply(x)
    assert i.item() == 2 and not i.requires_grad
    z = x.exp()
    w = Clip.apply(z, 0.0)
    x.grad = None
    w.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x.detach().numpy()), rtol=1e-6)


@LIBS
def test_user_function_saved_tensor_modified_raises(lib):
    Clip, _ = _my_functions(lib)
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1
    y = Clip.apply(h, 0.0).sum()
    h.add_(1)
    assert _raises(lib, RuntimeError, y.backward).startswith(VERSION_ERROR)


@LIBS
def test_autograd_grad(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    w = lib.tensor([3.0, 4.0], requires_grad=True)
    w.grad = lib.tensor([9.0, 9.0])
    y = (x * x * w).sum()
    gx, = lib.autograd.grad(y, x, retain_graph=True)
    assert gx.tolist() == [6.0, 16.0] and x.grad is None and w.grad.tolist() == [9.0, 9.0]
    gx, gw = lib.autograd.grad([y], [x, w], grad_outputs=[lib.tensor(2.0)])
    assert gw.tolist() == [2.0, 8.0]
    u = lib.tensor([1.0], requires_grad=True)
    msg = _raises(lib, RuntimeError, lambda: lib.autograd.grad((x * 2).sum(), [x, u]))
    assert msg == "The differentiated Tensor at index 1 appears to not have been used in the graph. " \
                  "Set allow_unused=True if this is the desired behavior."
    assert lib.autograd.grad((x * 2).sum(), [x, u], allow_unused=True)[1] is None


def test_autograd_grad_create_graph_is_refused_clearly():
    x = ember.tensor([1.0], requires_grad=True)
    with pytest.raises(NotImplementedError, match="create_graph=True"):
        ember.autograd.grad((x * x).sum(), x, create_graph=True)


@LIBS
def test_grad_modes(lib):
    x = lib.tensor([1.0], requires_grad=True)
    with lib.set_grad_enabled(False):
        assert not (x * 2).requires_grad
        with lib.enable_grad():
            assert (x * 2).requires_grad
    with lib.inference_mode():
        assert not (x * 2).requires_grad
    with lib.inference_mode(False):
        assert (x * 2).requires_grad

    @lib.set_grad_enabled(False)
    def f(t):
        return t * 2
    assert not f(x).requires_grad and lib.is_grad_enabled()
