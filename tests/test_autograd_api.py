"""PyTorch's autograd surface on ember (issue 12, the rest): ``grad_fn`` nodes and hooks, multi-output
user Functions, ``autograd.grad``'s arguments, views sharing the version counter, ``nn.init``'s
version bumps, ``state_dict`` order, einsum diagonals and the exact GELU. Each test runs the same
lines under torch and ember and compares what they print, raise or compute."""
import math
import re
from pathlib import Path

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")

LIBS = pytest.mark.parametrize("lib", [torch, ember], ids=["torch", "ember"])
VERSION_ERROR = "one of the variables needed for gradient computation has been modified by an inplace operation"


def _error(fn, exc=RuntimeError):
    with pytest.raises(exc) as info:
        fn()
    return str(info.value)


def both(fn):
    """fn(torch) and fn(ember), for comparing."""
    return fn(torch), fn(ember)


# ---- 1. grad_fn as nodes ---------------------------------------------------------------------------
def _walk(node, seen=None):
    """The graph under ``node`` as nested tuples of (name, input_nr, children), as printed by a user."""
    if node is None:
        return None
    return (node.name(), type(node).__name__,
            tuple((_walk(n), i) for n, i in node.next_functions))


def _small_graph(lib):
    x = lib.tensor([[1.0, -2.0, 0.5], [0.3, 0.2, -0.1]], dtype=lib.float64, requires_grad=True)
    w = lib.tensor([[0.1, 0.2, 0.3], [-0.3, 0.5, 0.4]], dtype=lib.float64, requires_grad=True)
    c = lib.tensor([1.0, 2.0], dtype=lib.float64)                        # needs no gradient
    h = (x.mm(w.t()) * c).relu()
    z = (h * h + h.exp() / 2 - x[0][:2].unsqueeze(0) + x.sum(0)[1:].view(1, 2)).sigmoid()
    return x, w, z.mean(1).sum()


def test_walking_next_functions_gives_torch_names_and_structure():
    (tx, tw, tz), (ex, ew, ez) = both(_small_graph)
    assert _walk(ez.grad_fn) == _walk(tz.grad_fn)
    assert repr(ez).endswith("grad_fn=<SumBackward0>)") and repr(tz).endswith("grad_fn=<SumBackward0>)")


@LIBS
def test_nodes_are_objects_with_torch_identity_rules(lib):
    x, w, z = _small_graph(lib)
    assert z.grad_fn is z.grad_fn and x.grad_fn is None
    mul = (x * 2).grad_fn
    acc = mul.next_functions[0][0]
    assert type(acc).__name__ == "AccumulateGrad" and acc.name() == "torch::autograd::AccumulateGrad"
    assert acc.variable is x and acc.next_functions == ()
    assert acc is (x + 1).grad_fn.next_functions[0][0]           # one accumulator per leaf
    assert mul.next_functions[1] == (None, 0)                     # the constant 2 needs no gradient
    assert mul.name() == "MulBackward0" and isinstance(mul.metadata, dict)


@pytest.mark.parametrize("expr", [
    "x * y", "x + 2", "x - y", "x / y", "-x", "x.exp()", "x.log()", "x.relu()", "x.sigmoid()", "x.tanh()",
    "x.sum()", "x.sum(0)", "x.mean()", "x.mean(1)", "x.reshape(3, 2)", "x.view(6)", "x.permute(1, 0)",
    "x.transpose(0, 1)", "x.t()", "x.unsqueeze(0)", "x.unsqueeze(0).squeeze()", "x.unsqueeze(0).squeeze(0)",
    "x[0]", "x[1:]", "x[:, 1]", "x[[0, 1]]", "x[None]", "x.clone()", "x ** 2", "x ** y", "x.abs()",
    "x.clamp(0, 1)", "x.softmax(1)", "x.log_softmax(1)", "lib.cat([x, y])", "x.double()", "x.max()",
    "x.max(0).values", "lib.where(x > 0, x, y)", "v.expand(2, 3)", "x.cumsum(0)", "x.sin()", "x.cos()",
    "x.sqrt()", "x.flatten()", "x.mm(w.t())", "v @ v", "x @ v", "x.bmm(w.t().unsqueeze(0)) if False else x.unsqueeze(0).bmm(w.t().unsqueeze(0))",
    "F.gelu(x)", "F.silu(x)", "F.softplus(x)", "F.leaky_relu(x)", "F.mse_loss(x, y)", "F.pad(x, (1, 1))",
    "F.max_pool2d(x.reshape(1, 1, 2, 3), 1)",
])
def test_node_names_match_torch(expr):
    def make(lib):
        F = lib.nn.functional
        g = torch.Generator().manual_seed(0)
        x, y = (lib.tensor(torch.randn(2, 3, generator=g).abs().numpy() + 0.1, requires_grad=True) for _ in range(2))
        w = lib.tensor(torch.randn(4, 3, generator=g).numpy(), requires_grad=True)
        v = lib.tensor(torch.randn(3, generator=g).numpy(), requires_grad=True)
        fn = eval(expr, {"lib": lib, "F": F, "x": x, "y": y, "w": w, "v": v}).grad_fn
        return fn.name(), [(None if n is None else n.name(), i) for n, i in fn.next_functions]
    assert make(ember) == make(torch)


@LIBS
def test_node_hooks_see_and_replace_gradients(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    z = (y * y).sum()
    seen = []
    y.grad_fn.register_prehook(lambda grad_outputs: seen.append(grad_outputs[0].tolist()))
    handle = y.grad_fn.register_hook(lambda grad_inputs, grad_outputs: (grad_inputs[0] * 10, *grad_inputs[1:]))
    z.backward(retain_graph=True)
    assert seen == [[6.0, 12.0]] and x.grad.tolist() == [180.0, 360.0]
    handle.remove()
    x.grad = None
    z.backward()
    assert x.grad.tolist() == [18.0, 36.0]


@LIBS
def test_tensor_hooks_and_retain_grad(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: g * 2)                      # a leaf: before accumulation
    h = x * x
    h.retain_grad()
    got = []
    h.register_hook(lambda g: got.append(g.tolist()))
    (h * lib.tensor([1.0, 3.0])).sum().backward()
    assert h.retains_grad and h.grad.tolist() == [1.0, 3.0] and got == [[1.0, 3.0]]
    assert x.grad.tolist() == [4.0, 24.0]
    assert _error(lambda: lib.ones(1).register_hook(print)) == \
        "cannot register a hook on a tensor that doesn't require gradient"


# ---- 2. multi-output autograd.Function --------------------------------------------------------------
def _two(lib, materialize=True):
    log = []

    class Two(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(materialize)
            ctx.save_for_backward(x)
            return x * 2, x * x, 7, x.argmax()

        @staticmethod
        def backward(ctx, g1, g2, g3, g4):
            (x,) = ctx.saved_tensors
            log.append([None if g is None else g.tolist() for g in (g1, g2, g3, g4)])
            return (0 if g1 is None else g1 * 2) + (0 if g2 is None else g2 * 2 * x)
    return Two, log


@pytest.mark.parametrize("materialize", [True, False])
def test_multi_output_function_matches_torch(materialize):
    def run(lib):
        Two, log = _two(lib, materialize)
        x = lib.tensor([1.0, 3.0], dtype=lib.float64, requires_grad=True)
        a, b, seven, i = Two.apply(x)
        a.sum().backward()
        first = x.grad.tolist()
        x.grad = None
        a, b, _, _ = Two.apply(x)
        same, edges = a.grad_fn is b.grad_fn, [(n.name(), k) for n, k in (a * b).grad_fn.next_functions]
        ((a * b).sum() + b.sum()).backward()
        return first, x.grad.tolist(), log, seven, i.requires_grad, a.grad_fn.name(), same, edges
    assert run(ember) == run(torch)


@LIBS
def test_multi_output_function_without_grad_returns_plain_tensors(lib):
    Two, log = _two(lib)
    with lib.no_grad():
        a, b, _, _ = Two.apply(lib.tensor([1.0, 2.0], requires_grad=True))
    assert not a.requires_grad and a.grad_fn is None and b.tolist() == [1.0, 4.0]


# ---- 3. autograd.grad --------------------------------------------------------------------------------
@LIBS
def test_autograd_grad_arguments(lib):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    assert lib.autograd.grad(y, x)[0].tolist() == [2.0, 4.0, 6.0]
    assert _error(lambda: lib.autograd.grad(y, x)).startswith("Trying to backward through the graph a second time")
    assert lib.autograd.grad(x * 2, x, grad_outputs=lib.ones(3))[0].tolist() == [2.0, 2.0, 2.0]
    assert _error(lambda: lib.autograd.grad(x * 2, x)).startswith("grad can be implicitly created only for scalar outputs")
    h = x * 2                                          # a non-leaf input
    gh, gx = lib.autograd.grad((h * h).sum(), [h, x])
    assert gh.tolist() == [4.0, 8.0, 12.0] and gx.tolist() == [8.0, 16.0, 24.0]
    u = lib.tensor([5.0], requires_grad=True)
    assert lib.autograd.grad((x * 2).sum(), [x, u], materialize_grads=True)[1].tolist() == [0.0]
    a, b = lib.autograd.grad([(x * 2).sum(), (x * x).sum()], [x, x])       # several outputs: summed
    assert a.tolist() == b.tolist() == [4.0, 6.0, 8.0]


def test_create_graph_is_refused_naming_the_limitation():
    x = ember.tensor([1.0], requires_grad=True)
    msg = _error(lambda: ember.autograd.grad((x * x).sum(), x, create_graph=True), NotImplementedError)
    assert "double backward" in msg and "NumPy arrays" in msg
    assert "create_graph=True" in (Path(ember.__file__).parent.parent / "docs" / "pytorch-compat.md").read_text()


# ---- 4. views share the version counter ---------------------------------------------------------------
VIEWS = {   # expression -> whether torch makes a view of a
    "a[0]": True, "a[0, 1]": True, "a[1:]": True, "a[..., 0]": True, "a[None]": True, "a[[0]]": False,
    "a[a > 0]": False, "a.view(6)": True, "a.reshape(6)": True, "a.t().reshape(6)": False, "a.t()": True,
    "a.permute(1, 0)": True, "a.transpose(0, 1)": True, "a.unsqueeze(0)": True, "a[None].squeeze(0)": True,
    "a.flatten()": True, "a.T": True, "a.view_as(a)": True, "a.split(1)[0]": True, "a.chunk(2, 1)[0]": True,
    "a.flip(0)": False, "a.clone()": False, "a.t().contiguous()": False,
}


@pytest.mark.parametrize("expr", list(VIEWS))
def test_which_ops_make_views_and_share_the_version_counter(expr):
    def run(lib):
        a = lib.zeros(2, 3)
        v = eval(expr, {"a": a})
        before = a._version
        v.add_(1)
        return v._is_view(), v._base is a, a._version - before, v._version, a.sum().item()
    t, e = both(run)
    assert e == t and t[0] == VIEWS[expr]


@LIBS
def test_views_pickle_and_copy_as_tensors(lib):
    import copy
    import pickle
    a = lib.arange(6.0).reshape(2, 3)
    for v in (a[1], a.t(), a[:, 1:]):
        for c in (pickle.loads(pickle.dumps(v)), copy.deepcopy(v)):
            assert c.tolist() == v.tolist() and not c._is_view()


@LIBS
def test_data_has_its_own_counter_detach_shares_it(lib):
    a = lib.zeros(2)
    a.data.add_(1)
    d = a.detach()
    d.add_(1)
    assert a._version == 1 and a.tolist() == [2.0, 2.0] and a.contiguous() is a


@LIBS
def test_a_saved_tensor_whose_view_was_modified_raises(lib):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * 1
    y = (h * h).sum()
    h[0:2].add_(1)
    msg = _error(y.backward)
    assert msg.startswith(VERSION_ERROR) and re.search(r"is at version 1; expected version 0 instead", msg)
    x.grad = None
    h = x * 1
    b = h[1:]
    y = (b * b).sum()
    h.mul_(2)                                        # the base: the saved view sees it too
    assert _error(y.backward).startswith(VERSION_ERROR)


def test_in_place_through_views_rewrites_the_base_as_torch():
    def run(lib):
        x = lib.tensor([1.0, 2.0, 3.0], dtype=lib.float64, requires_grad=True)
        h = x * 2
        b, d = h[1:], h[:2]
        b.mul_(x[1:])                                # through a view: h changes, its node too
        out = [h.tolist(), h.grad_fn.name(), d.tolist()]
        (h.sum() + (d * lib.tensor([1.0, 10.0], dtype=lib.float64)).sum()).backward()   # d's node taken anew
        x2 = lib.tensor([1.0, 2.0], requires_grad=True)
        g = x2 * 1
        kept = g.detach()
        g.mul_(3)                                    # tracked in place: a detached alias sees the values
        return out + [x.grad.tolist(), kept.tolist(), g._version, kept._version]
    t, e = both(run)
    assert e == t and e[1] == t[1] == "torch::autograd::CopySlices"


@LIBS
def test_view_errors(lib):
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    assert _error(lambda: w[0:1].add_(1)) == "a view of a leaf Variable that requires grad is being used in an in-place operation."
    assert _error(lambda: w.view(2).mul_(2)) == "a view of a leaf Variable that requires grad is being used in an in-place operation."
    assert _error(lambda: lib.zeros(1, 3).expand(2, 3).add_(1)).startswith(
        "unsupported operation: more than one element of the written-to tensor refers to a single memory location.")
    assert _error(lambda: lib.zeros(2, 3).t().view(6)).startswith("view size is not compatible with input tensor's size and stride")
    e = lib.zeros(1, 3)
    x = e.expand(2, 3)
    e.add_(1)
    assert x.tolist() == [[1.0] * 3] * 2 and x._version == 1


@LIBS
def test_masked_fill_in_place(lib):
    x = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
    h = x * 2
    h.masked_fill_(h < 0, 0.5)
    h.sum().backward()
    assert h.tolist() == [2.0, 0.5, 6.0] and h._version == 1 and x.grad.tolist() == [2.0, 0.0, 2.0]


# ---- 5. nn.init bumps the version counter ------------------------------------------------------------
INITS = {"normal_": lambda I, t: I.normal_(t), "uniform_": lambda I, t: I.uniform_(t), "zeros_": lambda I, t: I.zeros_(t),
         "ones_": lambda I, t: I.ones_(t), "constant_": lambda I, t: I.constant_(t, 0.3),
         "kaiming_uniform_": lambda I, t: I.kaiming_uniform_(t), "kaiming_normal_": lambda I, t: I.kaiming_normal_(t),
         "xavier_uniform_": lambda I, t: I.xavier_uniform_(t), "xavier_normal_": lambda I, t: I.xavier_normal_(t),
         "orthogonal_": lambda I, t: I.orthogonal_(t),
         # torch counts one write, and one more (a copy_) when some samples had to be drawn again
         "trunc_normal_never_redrawn": lambda I, t: I.trunc_normal_(t, a=-100.0, b=100.0),
         "trunc_normal_redrawn": lambda I, t: I.trunc_normal_(t, a=-0.5, b=2.0),
         "trunc_normal_rejection_sampled": lambda I, t: I.trunc_normal_(t, a=1.0, b=3.0)}


@pytest.mark.parametrize("name", list(INITS))
def test_init_bumps_the_version_counter_as_torch(name):
    def run(lib):
        t = lib.nn.Parameter(lib.zeros(10, 10))
        loss = (t * t).sum()
        INITS[name](lib.nn.init, t)
        return t._version, t.requires_grad, t.grad_fn, _error(loss.backward)[:len(VERSION_ERROR)]
    assert both(run)[1] == both(run)[0]


# ---- 6. state_dict order -------------------------------------------------------------------------------
def test_state_dict_keys_in_torch_order():
    def keys(lib):
        nn = lib.nn
        m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))
        m.register_buffer("top", lib.zeros(1))
        m.top_p = nn.Parameter(lib.zeros(1))
        m.tied = m[0]                                  # a module reachable twice: listed twice
        return list(m.state_dict())
    t, e = both(keys)
    assert e == t and t.index("top_p") < t.index("top") < t.index("0.weight") and "tied.weight" in t
    m = ember.nn.Sequential(ember.nn.Linear(2, 2), ember.nn.BatchNorm1d(2))
    m.tied = m[0]
    m.load_state_dict(m.state_dict())               # the duplicate keys load back


# ---- 7. einsum diagonals, with gradients ---------------------------------------------------------------
@pytest.mark.parametrize("eq,shapes", [("ii->i", [(3, 3)]), ("ii", [(3, 3)]), ("iij->j", [(3, 3, 2)]),
                                       ("bii->bi", [(2, 3, 3)]), ("iji->ij", [(2, 3, 2)]), ("ii,i->i", [(3, 3), (3,)]),
                                       ("iii->i", [(2, 2, 2)]), ("bij,bjj->bi", [(2, 3, 4), (2, 4, 4)])])
def test_einsum_repeated_index_takes_the_diagonal(eq, shapes):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    te = [torch.tensor(a, requires_grad=True) for a in arrays]
    ee = [ember.tensor(a, requires_grad=True) for a in arrays]
    t, e = torch.einsum(eq, *te), ember.einsum(eq, *ee)
    np.testing.assert_allclose(e.numpy(), t.detach().numpy(), rtol=1e-12, atol=1e-12)
    weights = rng.standard_normal(t.shape)
    (t * torch.tensor(weights)).sum().backward()
    (e * ember.tensor(weights)).sum().backward()
    for a, b in zip(ee, te):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12, atol=1e-12)


# ---- 8. exact GELU ---------------------------------------------------------------------------------------
def test_erf_is_float64_accurate():
    from ember.ops.activation import erf
    x = np.concatenate([np.linspace(-9, 9, 36001), [0.0, -0.0, 1.0, -1.0, 1e-300, 40.0, -np.inf, np.inf]])
    want = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(erf(x), want, rtol=5e-16, atol=5e-16)
    assert np.isnan(erf(np.array([np.nan])))[0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_exact_gelu_matches_torch_forward_and_backward(dtype):
    x = np.concatenate([np.linspace(-12, 12, 4001), np.random.default_rng(1).standard_normal(2000) * 3]).astype(dtype)
    g = np.random.default_rng(2).standard_normal(x.shape).astype(dtype)
    tx, ex = torch.tensor(x, requires_grad=True), ember.tensor(x, requires_grad=True)
    ty, ey = torch.nn.GELU()(tx), ember.nn.GELU()(ex)
    (ty * torch.tensor(g)).sum().backward()
    (ey * ember.tensor(g)).sum().backward()
    tol = dict(rtol=1e-8, atol=1e-8) if dtype == "float64" else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ey.numpy(), ty.detach().numpy(), **tol)
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), **tol)
    assert ey.dtype == np.dtype(dtype)
