"""ember.nn against PyTorch: a PyTorch LeNet-5's state_dict loads into ember's lenet5 and gives
the same outputs; three SGD steps (momentum, Nesterov, weight decay, dampening) agree to 1e-7
in float64; load_state_dict errors; class labels out of range; module-path error messages."""
from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.models
from ember import nn
from ember.nn import functional as F
from ember.tensor import Tensor

torch = pytest.importorskip("torch")
tnn = torch.nn


def torch_lenet5():
    return tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
        tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))


def _pair(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    tm = torch_lenet5().to(dtype)
    em = ember.models.lenet5()
    if dtype == torch.float64:
        em = em.double()
    em.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return tm, em


def test_lenet5_has_torchs_keys_shapes_and_61706_parameters():
    tm, em = torch_lenet5(), ember.models.lenet5()
    assert list(em.state_dict()) == list(tm.state_dict())
    for (k, v), (_, tv) in zip(em.state_dict().items(), tm.state_dict().items()):
        assert v.shape == tuple(tv.shape), k
        assert v.dtype == np.float32
    assert sum(p.numpy().size for p in em.parameters()) == 61_706


@pytest.mark.parametrize("dtype,rtol,atol", [(torch.float32, 1e-5, 1e-6), (torch.float64, 1e-12, 1e-13)])
def test_a_torch_lenet5_state_dict_gives_the_same_outputs(dtype, rtol, atol):
    tm, em = _pair(dtype)
    x = np.random.default_rng(0).standard_normal((8, 1, 28, 28)).astype(
        np.float32 if dtype == torch.float32 else np.float64)
    with torch.no_grad():
        ref = tm(torch.from_numpy(x)).numpy()
    with ember.no_grad():
        out = em(Tensor(x)).numpy()
    assert out.dtype == ref.dtype
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol)


def test_state_dict_accepts_tensors_and_round_trips():
    tm, em = _pair()
    em2 = ember.models.lenet5()
    em2.load_state_dict({k: Tensor(v) for k, v in em.state_dict().items()})
    for (k, a), b in zip(em.state_dict().items(), em2.state_dict().values()):
        np.testing.assert_array_equal(a, b)
    em2.load_state_dict(tm.state_dict())          # torch tensors directly
    np.testing.assert_array_equal(em2.state_dict()["0.weight"], tm.state_dict()["0.weight"].numpy())


def _state_dict_semantics(lib):
    """What a PyTorch program sees of state_dict/load_state_dict, run under ``lib`` (torch or ember)."""
    seen = {}
    m = lib.nn.Sequential(lib.nn.Linear(3, 2), lib.nn.ReLU(), lib.nn.Linear(2, 1)).double()
    with lib.no_grad():
        for i, p in enumerate(m.parameters()):
            p.copy_(lib.tensor(np.linspace(-1, 1, p.numel()).reshape(tuple(p.shape)) + i))
    sd = m.state_dict()
    seen["types"] = {k: (type(v).__name__, v.requires_grad) for k, v in sd.items()}
    before = sd["0.weight"].clone()
    opt = lib.optim.SGD(m.parameters(), lr=0.5)
    m(lib.ones(4, 3, dtype=lib.float64)).sum().backward()
    opt.step()                                                    # sd taken before: shows the step
    seen["stepped"] = (sd["0.weight"] - before).numpy().round(12).tolist()
    sd["2.bias"].zero_()                                          # writes the model
    sd["0.bias"][0] = 7.0
    seen["written"] = (m[2].bias.detach().numpy().tolist(), m[0].bias.detach().numpy().tolist())
    seen["keep_vars"] = [(k, type(v).__name__, v.requires_grad, v is p)
                         for (k, v), p in zip(m.state_dict(keep_vars=True).items(), m.parameters())]
    seen["prefix"] = list(m.state_dict(prefix="net.").keys())
    dest = {"other": 1}
    seen["destination"] = (m.state_dict(destination=dest) is dest, sorted(dest))
    new = {k: v * 0 + 3 for k, v in m.state_dict().items()}
    held = m.state_dict()["2.weight"]
    r = m.load_state_dict(new)                                    # in place: held and the optimizer see it
    seen["all"] = (repr(r), str(r), r.missing_keys, r.unexpected_keys, tuple(r))
    seen["held"] = held.numpy().tolist()
    opt.zero_grad()
    m(lib.ones(1, 3, dtype=lib.float64)).sum().backward()
    opt.step()
    seen["after_load_step"] = m[2].weight.detach().numpy().round(12).tolist()
    r = m.load_state_dict({"0.weight": new["0.weight"], "x": new["0.bias"]}, strict=False)
    seen["partial"] = (repr(r), r.missing_keys, r.unexpected_keys)
    y = m(lib.ones(1, 3, dtype=lib.float64, requires_grad=True)).sum()
    m.load_state_dict(new)                                        # an in-place write to saved weights
    try:
        y.backward()
        seen["backward_after_load"] = "ran"
    except RuntimeError as e:
        seen["backward_after_load"] = "modified by an inplace operation" in str(e)
    return seen


def test_state_dict_values_share_the_parameters_and_load_copies_in_place_as_torch():
    """state_dict() gives detached Tensors sharing the parameters' memory (a write to one writes the
    model; one taken before a step shows the step), keep_vars/prefix/destination as torch;
    load_state_dict copies in place (a Tensor held before sees the values, the optimizer keeps
    training the same parameters, a graph that saved a weight refuses to backward) and returns
    _IncompatibleKeys with torch's repr. Before: NumPy copies, so ``sd[k][0] = 7`` changed nothing."""
    got, want = _state_dict_semantics(ember), _state_dict_semantics(torch)
    assert got["types"] == {k: ("Tensor", False) for k in want["types"]} and want["types"] == got["types"]
    for key in want:
        if key != "types":
            assert got[key] == want[key], key


@pytest.mark.parametrize("opts", [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.9, weight_decay=1e-2),
    dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=5e-4),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4),
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_three_sgd_steps_of_lenet5_agree_with_torch_to_1e_7(opts):
    tm, em = _pair(torch.float64, seed=1)
    topt = torch.optim.SGD(tm.parameters(), **opts)
    eopt = ember.optim.SGD(em.parameters(), **opts)
    rng = np.random.default_rng(2)
    for step in range(3):
        x = rng.standard_normal((16, 1, 28, 28))
        y = rng.integers(0, 10, 16)
        tloss = tnn.functional.cross_entropy(tm(torch.from_numpy(x)), torch.from_numpy(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        eloss = F.cross_entropy(em(Tensor(x)), y)
        eopt.zero_grad()
        eloss.backward()
        eopt.step()
        assert abs(eloss.item() - tloss.item()) <= 1e-7 * abs(tloss.item())
    for (k, ev), tv in zip(em.state_dict().items(), tm.state_dict().values()):
        tv = tv.numpy()
        err = np.max(np.abs(ev - tv) / np.maximum(np.abs(tv), 1e-2))
        assert err <= 1e-7, f"{k}: relative error {err:.2e} after 3 steps ({opts})"


def test_load_state_dict_names_missing_and_unexpected_keys():
    m = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    state = m.state_dict()
    del state["2.bias"]
    state["2.scale"] = np.ones(1)
    with pytest.raises(KeyError, match=r"Error\(s\) in loading state_dict for Sequential: missing keys: 2\.bias; "
                                       r"unexpected keys: 2\.scale"):
        m.load_state_dict(state)
    missing, unexpected = m.load_state_dict(state, strict=False)
    assert missing == ["2.bias"] and unexpected == ["2.scale"]


def test_load_state_dict_names_mis_shaped_keys_with_both_shapes():
    m = nn.Sequential(nn.Conv2d(1, 6, 5), nn.Flatten(), nn.Linear(24, 3))
    state = m.state_dict()
    state["0.weight"] = np.zeros((6, 1, 3, 3))
    state["2.bias"] = np.zeros(4)
    state["2.weight"] = np.ones((3, 24))                   # fine on its own, but must not be loaded
    before = m.state_dict()
    with pytest.raises(ValueError, match=r"size mismatch for 0\.weight: checkpoint shape \(6, 1, 3, 3\), model shape "
                                         r"\(6, 1, 5, 5\); 2\.bias: checkpoint shape \(4,\), model shape \(3,\)"):
        m.load_state_dict(state)
    for k, v in m.state_dict().items():                   # nothing was half-loaded
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("labels,bad", [([0, 3, 10], 10), ([-1, 2, 0], -1), ([0, 255, 1], 255)])
def test_class_label_out_of_range_names_the_label_and_the_class_count(labels, bad):
    logits = ember.zeros(3, 10, requires_grad=True)
    for t in (np.array(labels), Tensor(np.array(labels))):
        with pytest.raises(IndexError, match=rf"cross_entropy: target {bad} is out of bounds for 10 classes "
                                             rf"\(valid: 0\.\.9\)"):
            F.cross_entropy(logits, t)
        with pytest.raises(IndexError, match=rf"nll_loss: target {bad} is out of bounds for 10 classes"):
            F.nll_loss(logits, t)
    with pytest.raises(IndexError, match="target 10 is out of bounds for 10 classes"):
        nn.CrossEntropyLoss()(logits, np.array([1, 10, 2]))


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "uint16", ">i4", "<i8", ">u2"])
def test_targets_of_every_integer_dtype_and_byte_order_are_checked(dtype):
    """The in-range check looks at the targets as unsigned (a negative one is then past C) when
    the dtype is native; every integer dtype and byte order must still name the bad target, let
    ignore_index through, and give the loss of the same targets as int64."""
    logits = Tensor(np.linspace(-2, 2, 30).reshape(3, 10))
    good = np.array([0, 9, 4]).astype(dtype)
    ref = F.cross_entropy(logits, np.array([0, 9, 4])).item()
    assert F.cross_entropy(logits, good).item() == ref
    bad = 10 if np.dtype(dtype).kind == "u" else -3
    with pytest.raises(IndexError, match=rf"cross_entropy: target {bad} is out of bounds for 10 classes"):
        F.cross_entropy(logits, np.array([0, bad, 4]).astype(dtype))
    if np.dtype(dtype).kind == "i":   # a target equal to ignore_index is skipped, not an error
        skip = np.array([0, -1, 4]).astype(dtype)
        assert F.cross_entropy(logits, skip, ignore_index=-1).item() == F.cross_entropy(logits[[0, 2]], np.array([0, 4])).item()
    dt = np.dtype(dtype)
    if not dt.isnative:   # a target whose bytes, read in the machine's order, are a valid class
        swapped = 10 << (8 * (dt.itemsize - 1))
        with pytest.raises(IndexError, match=rf"cross_entropy: target {swapped} is out of bounds for 16 classes"):
            F.cross_entropy(Tensor(np.zeros((1, 16))), np.array([swapped], dt))


def test_errors_inside_a_model_name_the_layer_path():
    model = ember.models.lenet5()
    with pytest.raises(nn.ModuleError, match=r"^0 \(Conv2d\): expected input with 1 channels, got 3 channels"):
        model(ember.zeros(2, 3, 28, 28))
    with pytest.raises(nn.ModuleError, match=r"^7 \(Linear\): expected input with 400 features .*got .*576"):
        model(ember.zeros(2, 1, 32, 32))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(4, 4, 3),
                                                                                        nn.Conv2d(5, 2, 1)))

        def forward(self, x):
            return self.features(x)
    with pytest.raises(nn.ModuleError, match=r"^features\.2\.1 \(Conv2d\): expected input with 5 channels, got 4"):
        Net()(ember.zeros(1, 1, 8, 8))


def test_modules_to_dtype_and_train_eval():
    m = ember.models.lenet5()
    assert m.double()[0].weight.dtype == np.float64
    assert m.float()[0].weight.dtype == np.float32
    assert not m.eval().training and all(not c.training for c in m.modules())
    assert m.train().training
    m(ember.randn(2, 1, 28, 28)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
