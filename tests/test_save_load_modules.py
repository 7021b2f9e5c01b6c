"""``ember.save``/``ember.load`` without pickle (issue 12 group 7) and the module API of group 10:
``Module.apply``/``add_module``/``register_buffer(persistent=)``/``buffers``, ``F.one_hot``,
``nn.GELU``/``SiLU``/``Softplus`` — each against torch 2.13's behaviour."""
import io
from collections import OrderedDict

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember.serialization import CheckpointError

torch = pytest.importorskip("torch")


def _same(a, b):
    """Deep equality with types: Tensors/arrays by dtype, shape and values (NaN equal)."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, ember.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def _trained():
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))
    opt = ember.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        model(ember.randn(5, 4)).sum().backward()
        opt.step()
    return model, opt


def test_checkpoint_dict_round_trips_exactly(tmp_path):
    model, opt = _trained()
    ckpt = {"epoch": 3, "model": model.state_dict(), "optimizer": opt.state_dict(), "loss": 0.25,
            "best": float("nan"), "history": [1.5, 2, None, "x", True], "shape": (2, (3, 4)), 7: "int key",
            (1, 2): {"nested": np.arange(5, dtype=np.int32)}, "scalar": np.float32(1.5), "big": 2 ** 62,
            "t": ember.tensor([[1.0, 2.0]], requires_grad=True), "bool": ember.tensor([True, False]),
            "empty": ember.zeros(0, 3), "zero_d": ember.tensor(3)}
    path = tmp_path / "ckpt.pt"
    ember.save(ckpt, path)
    loaded = ember.load(path, weights_only=True)
    _same(ckpt, loaded)
    assert isinstance(loaded["model"], OrderedDict) and isinstance(loaded["optimizer"]["state"], dict)
    assert list(loaded["optimizer"]["state"]) == [0, 1, 2, 3, 4, 5]          # int keys stay ints
    assert loaded["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)


def test_loaded_state_dicts_restore_model_and_optimizer(tmp_path):
    model, opt = _trained()
    ember.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "c.pt")
    model2, opt2 = _trained()
    for p in model2.parameters():
        ember.nn.init.zeros_(p)
    ck = ember.load(tmp_path / "c.pt")
    model2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["optimizer"])
    x = ember.randn(3, 4)
    model.eval(), model2.eval()
    np.testing.assert_array_equal(model(x).numpy(), model2(x).numpy())


def test_file_objects_and_shared_tensors():
    t = ember.tensor([1.0, 2.0, 3.0])
    buf = io.BytesIO()
    ember.save({"a": t, "b": t, "list": [t]}, buf)
    buf.seek(0)
    out = ember.load(buf, map_location="cpu")
    assert out["a"] is out["b"] is out["list"][0]                 # stored once, as torch keeps sharing
    _same(out["a"], t)


def test_saving_a_module_points_to_state_dict():
    with pytest.raises(TypeError, match=r"state_dict\(\)"):
        ember.save(nn.Linear(2, 2), io.BytesIO())
    with pytest.raises(TypeError, match=r"\['model'\].*state_dict"):
        ember.save({"model": nn.Linear(2, 2)}, io.BytesIO())
    with pytest.raises(TypeError, match="function"):
        ember.save({"fn": lambda: 0}, io.BytesIO())


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        ember.load(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 3)
    with pytest.raises(CheckpointError, match="truncated"):
        ember.load(tmp_path / "bad.pt")
    ember.save({"w": ember.ones(2)}, tmp_path / "ok.pt")
    with pytest.raises(RuntimeError, match="CPU only"):
        ember.load(tmp_path / "ok.pt", map_location="cuda")
    with pytest.raises(TypeError, match="pickle_module"):
        ember.load(tmp_path / "ok.pt", pickle_module=None)


def test_plain_safetensors_file_loads_as_tensors(tmp_path):
    from ember.serialization import save_state_dict
    save_state_dict({"w": np.ones((2, 2), np.float32)}, tmp_path / "w.safetensors")
    out = ember.load(tmp_path / "w.safetensors")
    assert list(out) == ["w"] and isinstance(out["w"], ember.Tensor) and out["w"].shape == (2, 2)


# ---- Module API ------------------------------------------------------------------------------------
class _Net(nn.Module):
    def __init__(self, lib):
        super().__init__()
        self.fc = lib.nn.Linear(2, 2)
        self.register_buffer("steps", lib.zeros(1))
        self.register_buffer("cache", lib.ones(3), persistent=False)


def test_register_buffer_persistent_and_buffers_as_torch():
    class TNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)
            self.register_buffer("steps", torch.zeros(1))
            self.register_buffer("cache", torch.ones(3), persistent=False)
    ours, theirs = _Net(ember), TNet()
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()] == ["steps", "cache"]
    assert len(list(ours.buffers())) == 2
    assert set(ours.state_dict()) == set(theirs.state_dict()) == {"fc.weight", "fc.bias", "steps"}
    ours.load_state_dict(ours.state_dict())                      # strict: the non-persistent buffer is not expected
    seq = nn.Sequential(ours)
    assert [n for n, _ in seq.named_buffers()] == ["0.steps", "0.cache"]
    assert [n for n, _ in seq.named_buffers(recurse=False)] == []
    ours.register_buffer("cache", ember.zeros(3))                # re-registering as persistent
    assert "cache" in ours.state_dict()


@pytest.mark.parametrize("call,exc", [
    (lambda m, lib: m.register_buffer("a.b", lib.ones(1)), KeyError),
    (lambda m, lib: m.register_buffer("", lib.ones(1)), KeyError),
    (lambda m, lib: m.register_buffer("fc", lib.ones(1)), KeyError),
    (lambda m, lib: m.register_buffer("x", 3), TypeError),
    (lambda m, lib: m.register_buffer(1, lib.ones(1)), TypeError),
    (lambda m, lib: m.add_module("y", 3), TypeError),
    (lambda m, lib: m.add_module("a.b", lib.nn.ReLU()), KeyError),
    (lambda m, lib: m.add_module("steps", lib.nn.ReLU()), KeyError),
])
def test_registration_errors_match_torch(call, exc):
    class TNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)
            self.register_buffer("steps", torch.zeros(1))
    with pytest.raises(exc):
        call(TNet(), torch)
    with pytest.raises(exc):
        call(_Net(ember), ember)


def test_add_module_and_apply_as_torch():
    order = {}
    for lib in (ember, torch):
        m = lib.nn.Sequential()
        m.add_module("first", lib.nn.Linear(3, 2))
        m.add_module("act", lib.nn.ReLU())
        inner = lib.nn.Sequential(lib.nn.Linear(2, 2))
        m.add_module("inner", inner)
        seen = []
        assert m.apply(lambda mod: seen.append(type(mod).__name__)) is m
        order[lib.__name__] = seen
        assert [n for n, _ in m.named_parameters()] == ["first.weight", "first.bias", "inner.0.weight", "inner.0.bias"]
        assert m.first is m[0] if lib is ember else True
    assert order["ember"] == order["torch"] == ["Linear", "ReLU", "Linear", "Sequential", "Sequential"]


def test_apply_initialises_weights():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))

    def init(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)
            nn.init.zeros_(m.bias)
    model.apply(init)
    assert all((p.numpy() == (0.5 if p.ndim == 2 else 0)).all() for p in model.parameters())


# ---- one_hot and the new activations -----------------------------------------------------------------
def test_one_hot_matches_torch():
    for labels, n in (([0, 2, 1, 2], -1), ([[1, 0], [3, 3]], 5), ([], 3)):
        e = F.one_hot(ember.tensor(labels, dtype=ember.int64), n)
        t = torch.nn.functional.one_hot(torch.tensor(labels, dtype=torch.int64), n)
        assert e.dtype == np.int64 and np.array_equal(e.numpy(), t.numpy())


@pytest.mark.parametrize("labels,n", [([0, 3], 3), ([-1, 0], 3), ([0.0, 1.0], -1), ([], -1)])
def test_one_hot_errors_match_torch(labels, n):
    tt = torch.tensor(labels) if labels else torch.tensor(labels, dtype=torch.int64)
    et = ember.tensor(labels) if labels else ember.tensor(np.zeros(0, np.int64))
    with pytest.raises(RuntimeError):
        torch.nn.functional.one_hot(tt, n)
    with pytest.raises(RuntimeError):
        F.one_hot(et, n)


@pytest.mark.parametrize("make", [lambda lib: lib.nn.GELU(), lambda lib: lib.nn.GELU(approximate="tanh"),
                                  lambda lib: lib.nn.SiLU(), lambda lib: lib.nn.Softplus(),
                                  lambda lib: lib.nn.Softplus(beta=2.0, threshold=1.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_modules_match_torch(make, dtype):
    x = np.random.default_rng(3).standard_normal((4, 6)).astype(dtype) * 3
    g = np.random.default_rng(4).standard_normal((4, 6)).astype(dtype)
    ex, tx = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ey, ty = make(ember)(ex), make(torch)(tx)
    (ey * ember.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    tol = 1e-6 if dtype == np.float32 else 1e-12
    assert ey.dtype == dtype and ex.grad.dtype == dtype
    np.testing.assert_allclose(ey.numpy(), ty.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=10 * tol, atol=10 * tol)
    assert repr(make(ember)) == repr(make(torch))


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU(approximate="fast")
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(ember.ones(2), approximate="erf")


@pytest.mark.parametrize("name,ours,theirs", [
    ("hardtanh", lambda x: F.hardtanh(x, -0.5, 0.8), lambda x: torch.nn.functional.hardtanh(x, -0.5, 0.8)),
    ("relu6", lambda x: F.relu6(x * 4), lambda x: torch.nn.functional.relu6(x * 4)),
    ("elu", lambda x: F.elu(x * 30, 0.7), lambda x: torch.nn.functional.elu(x * 30, 0.7)),
    ("logsigmoid", lambda x: F.logsigmoid(x * 10), lambda x: torch.nn.functional.logsigmoid(x * 10)),
    ("softmin", lambda x: F.softmin(x, 1), lambda x: torch.nn.functional.softmin(x, 1)),
    ("normalize", lambda x: F.normalize(x), lambda x: torch.nn.functional.normalize(x)),
    ("normalize_p1_dim0", lambda x: F.normalize(x, 1.0, 0), lambda x: torch.nn.functional.normalize(x, 1.0, 0)),
    ("cosine_similarity", lambda x: F.cosine_similarity(x, x.flip(0)), lambda x: torch.nn.functional.cosine_similarity(
        x, x.flip(0))),
    ("mish", lambda x: nn.Mish()(x), lambda x: torch.nn.Mish()(x)),
    ("elu_module", lambda x: nn.ELU()(x), lambda x: torch.nn.ELU()(x)),
    ("unflatten", lambda x: nn.Unflatten(1, (2, 3))(x), lambda x: torch.nn.Unflatten(1, (2, 3))(x)),
])
def test_more_functional_parity(name, ours, theirs):
    x = np.random.default_rng(5).standard_normal((4, 6))
    g = np.random.default_rng(6).standard_normal(theirs(torch.tensor(x)).shape)
    ex, tx = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ey, ty = ours(ex), theirs(tx)
    np.testing.assert_allclose(ey.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    (ey * ember.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_embedding_matches_torch_with_padding_idx():
    w = np.random.default_rng(7).standard_normal((5, 3))
    idx = np.array([[0, 1, 4], [1, 1, 2]])
    ew, tw = ember.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    ey = F.embedding(ember.tensor(idx), ew, padding_idx=1)
    ty = torch.nn.functional.embedding(torch.tensor(idx), tw, padding_idx=1)
    np.testing.assert_array_equal(ey.numpy(), ty.detach().numpy())
    g = np.random.default_rng(8).standard_normal(ty.shape)
    (ey * ember.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), rtol=1e-12)
    layer = nn.Embedding(10, 4, padding_idx=2)
    assert layer.weight.shape == (10, 4) and not layer.weight.numpy()[2].any()
    assert layer(ember.tensor([[2, 3]])).shape == (1, 2, 4) and repr(layer) == repr(torch.nn.Embedding(10, 4, 2))
    with pytest.raises(IndexError):
        layer(ember.tensor([10]))


def test_register_parameter_and_get_submodule_as_torch():
    for lib in (ember, torch):
        m = lib.nn.Sequential(lib.nn.Linear(2, 2), lib.nn.Sequential(lib.nn.ReLU()))
        m.register_parameter("scale", lib.nn.Parameter(lib.ones(2)))
        assert [n for n, _ in m.named_parameters()][0] == "scale"
        assert type(m.get_submodule("1.0")).__name__ == "ReLU" and m.get_submodule("") is m
        with pytest.raises(AttributeError):
            m.get_submodule("1.5")
        with pytest.raises(TypeError):
            m.register_parameter("w", lib.ones(2))
        with pytest.raises(KeyError):
            m.register_parameter("a.b", None)


def _member_walks(lib):
    """named_modules/named_parameters/named_buffers/get_parameter/get_buffer of a model holding one
    Linear and one BatchNorm1d under two names each, under ``lib``."""
    m = lib.nn.Sequential(lib.nn.Linear(1, 1), lib.nn.BatchNorm1d(1))
    m.add_module("s", m[0])
    m.add_module("b", m[1])
    memo = {m[1]}
    seen = {
        "modules": [n for n, _ in m.named_modules()],
        "modules_all": [n for n, _ in m.named_modules(remove_duplicate=False)],
        "modules_memo": [n for n, _ in m.named_modules(memo, "net")],
        "params": [n for n, _ in m.named_parameters()],
        "params_all": [n for n, _ in m.named_parameters(remove_duplicate=False)],
        "params_own": [n for n, _ in m.named_parameters(recurse=False)],
        "linear_own": [n for n, _ in m[0].named_parameters(prefix="fc", recurse=False)],
        "count_own": len(list(m[0].parameters(recurse=False))),
        "buffers": [n for n, _ in m.named_buffers()],
        "buffers_all": [n for n, _ in m.named_buffers(remove_duplicate=False)],
        "state_dict": list(m.state_dict()),
        "get": [m.get_parameter("0.weight") is m[0].weight, m.get_buffer("b.running_mean") is m[1].running_mean],
    }
    for get, target in ((m.get_parameter, "0.nope"), (m.get_parameter, "x.weight"), (m.get_buffer, "1.weight"),
                        (m.get_parameter, "1.running_var")):
        with pytest.raises(AttributeError) as e:
            get(target)
        seen[target] = str(e.value)
    return seen


def test_named_members_recurse_remove_duplicate_and_get_parameter_as_torch():
    """PyTorch's signatures and walks: named_modules(memo, prefix, remove_duplicate),
    named_parameters/named_buffers(prefix, recurse, remove_duplicate), parameters(recurse),
    get_parameter/get_buffer with torch's messages (before: no recurse, no remove_duplicate, no
    get_parameter or get_buffer, and a shared buffer listed twice)."""
    got, want = _member_walks(ember), _member_walks(torch)
    assert got == want
    assert want["buffers"] == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]


def _pretrained(lib):
    """nn.Embedding.from_pretrained as a PyTorch program uses it (GloVe-style vectors), under ``lib``."""
    vectors = lib.tensor(np.arange(12.0).reshape(4, 3))
    frozen = lib.nn.Embedding.from_pretrained(vectors)
    tuned = lib.nn.Embedding.from_pretrained(vectors, freeze=False, padding_idx=1)
    out = tuned(lib.tensor([[1, 2], [0, 1]]))
    (out * lib.tensor([1.0, 2.0, 3.0], dtype=lib.float64)).sum().backward()
    seen = (repr(frozen), repr(tuned), frozen.weight.requires_grad, tuned.weight.requires_grad,
            str(tuned.weight.dtype).replace("torch.", ""), tuned.weight.grad.tolist(), tuned.weight[1].tolist(),
            frozen(lib.tensor([3])).tolist(), [n for n, _ in frozen.named_parameters()])
    vectors[0, 0] = 99.0                          # the weight is the given tensor's memory, as torch's
    with pytest.raises(AssertionError) as e:
        lib.nn.Embedding.from_pretrained(lib.ones(3))
    return seen + (frozen.weight[0, 0].item(), str(e.value))


def test_embedding_from_pretrained_as_torch():
    """from_pretrained: frozen by default, the padding row kept (not zeroed) and without gradient, the
    dtype kept, memory shared with the given tensor, torch's AssertionError for a 1-D tensor (before:
    no from_pretrained, and Embedding took none of torch's other arguments)."""
    assert _pretrained(ember) == _pretrained(torch)
    with pytest.raises(NotImplementedError, match="max_norm=1.0 is not supported"):
        nn.Embedding(3, 2, max_norm=1.0)
