"""More of PyTorch's modules against torch.nn in float64 (weights copied through state_dict):
outputs and every input/parameter gradient to 1e-10, repr and state_dict keys: the activations of
ember/nn/activation.py, the padding, pixel-shuffle and distance modules of ember/nn/shape.py,
InstanceNorm1d/2d (also tracking running statistics, train and eval), the 1-D adaptive pools and
the losses of ember/nn/more_losses.py (each reduction)."""
import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")

# (module, args, kwargs, input shapes, train mode); inputs are float64 normals unless noted
MODULES = [
    ("Hardswish", (), {}, [(3, 5)], True), ("Hardsigmoid", (), {}, [(3, 5)], True),
    ("Softsign", (), {}, [(3, 5)], True), ("Tanhshrink", (), {}, [(3, 5)], True),
    ("Threshold", (0.1, 20.0), {}, [(3, 5)], True), ("CELU", (2.0,), {}, [(3, 5)], True),
    ("SELU", (), {}, [(3, 5)], True), ("Hardshrink", (), {}, [(3, 5)], True), ("Softshrink", (0.3,), {}, [(3, 5)], True),
    ("RReLU", (), {}, [(3, 5)], False), ("LogSigmoid", (), {}, [(3, 5)], True), ("Softmin", (1,), {}, [(3, 5)], True),
    ("Softmax2d", (), {}, [(2, 3, 4, 5)], True),
    ("ReflectionPad2d", (2,), {}, [(1, 2, 4, 5)], True), ("ReflectionPad1d", ((1, 2),), {}, [(2, 3, 5)], True),
    ("ReplicationPad2d", ((1, 2, 3, 0),), {}, [(1, 2, 4, 5)], True), ("ReplicationPad1d", (2,), {}, [(2, 3, 5)], True),
    ("CircularPad2d", (1,), {}, [(1, 2, 4, 5)], True), ("CircularPad1d", ((2, 1),), {}, [(2, 3, 5)], True),
    ("ConstantPad2d", (1, 3.5), {}, [(1, 2, 4, 5)], True), ("ConstantPad1d", ((2, 0), 1.0), {}, [(2, 3, 5)], True),
    ("ZeroPad1d", (2,), {}, [(2, 3, 5)], True),
    ("PixelShuffle", (2,), {}, [(2, 8, 3, 4)], True), ("PixelUnshuffle", (2,), {}, [(2, 2, 4, 6)], True),
    ("CosineSimilarity", (), {}, [(4, 6), (4, 6)], True), ("PairwiseDistance", (), {"p": 1.0}, [(4, 6), (4, 6)], True),
    ("InstanceNorm2d", (3,), {}, [(2, 3, 4, 5)], True), ("InstanceNorm1d", (3,), {"affine": True}, [(2, 3, 7)], True),
    ("InstanceNorm2d", (3,), {"affine": True, "track_running_stats": True}, [(2, 3, 4, 5)], True),
    ("InstanceNorm2d", (3,), {"track_running_stats": True}, [(2, 3, 4, 5)], False),
    ("InstanceNorm1d", (3,), {}, [(3, 7)], True),
    ("AdaptiveAvgPool1d", (4,), {}, [(2, 3, 10)], True), ("AdaptiveMaxPool1d", (3,), {}, [(2, 3, 10)], True),
]


# PyTorch's hardsigmoid_backward multiplies by 1/6 rounded to float32, even in float64 (relative
# error 3e-8); ember's gradient is the exact 1/6, so that one gradient is compared to 1e-7
GRAD_RTOL = {"Hardsigmoid": 1e-7}


def _run(name, args, kwargs, shapes, train, seed=0):
    rng = np.random.default_rng(seed)
    t, e = getattr(torch.nn, name)(*args, **kwargs).double(), getattr(ember.nn, name)(*args, **kwargs).double()
    assert repr(e) == repr(t)
    assert list(e.state_dict()) == list(t.state_dict())
    state = {k: v.detach().numpy().copy() for k, v in t.state_dict().items()}
    for k, v in state.items():                                  # non-trivial weights and running statistics
        if v.dtype.kind == "f":
            state[k] = v + rng.uniform(0.1, 0.5, v.shape)
    t.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    e.load_state_dict({k: ember.tensor(v) for k, v in state.items()})
    t.train(train)
    e.train(train)
    xs = [rng.standard_normal(s) for s in shapes]
    ts, es = [torch.tensor(x, requires_grad=True) for x in xs], [ember.tensor(x, requires_grad=True) for x in xs]
    to, eo = t(*ts), e(*es)
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(tuple(to.shape))
    to.backward(torch.tensor(g))
    eo.backward(ember.tensor(g))
    for a, b in zip(ts, es):
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=GRAD_RTOL.get(name, 1e-9), atol=1e-10)
    for (n, p), (n2, q) in zip(t.named_parameters(), e.named_parameters()):
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-9, atol=1e-10, err_msg=n)
    for (n, b), (n2, c) in zip(t.named_buffers(), e.named_buffers()):   # running statistics updated alike
        np.testing.assert_allclose(c.numpy(), b.numpy(), rtol=1e-10, atol=1e-12, err_msg=n)


@pytest.mark.parametrize("name,args,kwargs,shapes,train", MODULES,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MODULES)])
def test_module_matches_torch(name, args, kwargs, shapes, train):
    _run(name, args, kwargs, shapes, train)


def test_activations_in_place_and_rrelu_training_draws():
    x = np.random.default_rng(1).standard_normal((3, 4))
    for name, kw in [("Hardswish", {}), ("CELU", {"alpha": 0.5}), ("SELU", {}), ("Threshold", {"threshold": 0.0,
                                                                                                "value": -1.0})]:
        t, e = torch.tensor(x.copy()), ember.tensor(x.copy())
        out = getattr(ember.nn, name)(**kw, inplace=True)(e)
        getattr(torch.nn, name)(**kw, inplace=True)(t)
        assert out is e
        np.testing.assert_allclose(e.numpy(), t.numpy(), rtol=1e-12)
    r = ember.nn.RReLU(0.1, 0.3)
    y = r(ember.tensor(-np.ones((200,)))).numpy()
    assert 0.1 <= -y.max() and -y.min() <= 0.3 and len(np.unique(y)) > 100     # a slope per element
    r.eval()
    np.testing.assert_allclose(r(ember.tensor(-np.ones(3))).numpy(), -0.2)


LOSSES = [  # (module, kwargs, input builders from rng)
    ("MarginRankingLoss", {"margin": 0.3}, lambda r: [r.standard_normal(6), r.standard_normal(6),
                                                      np.sign(r.standard_normal(6))]),
    ("CosineEmbeddingLoss", {"margin": 0.2}, lambda r: [r.standard_normal((5, 4)), r.standard_normal((5, 4)),
                                                        np.array([1, -1, 1, -1, -1.0])]),
    ("TripletMarginLoss", {"margin": 0.5}, lambda r: [r.standard_normal((5, 4)) for _ in range(3)]),
    ("TripletMarginLoss", {"swap": True, "p": 1.0}, lambda r: [r.standard_normal((5, 4)) for _ in range(3)]),
    ("PoissonNLLLoss", {}, lambda r: [r.standard_normal((3, 4)), r.poisson(2.0, (3, 4)).astype(float)]),
    ("PoissonNLLLoss", {"log_input": False, "full": True}, lambda r: [r.uniform(0.5, 3, (3, 4)),
                                                                       r.poisson(2.0, (3, 4)).astype(float)]),
    ("GaussianNLLLoss", {}, lambda r: [r.standard_normal((4, 3)), r.standard_normal((4, 3)), r.uniform(0.5, 2, (4, 3))]),
    ("GaussianNLLLoss", {"full": True}, lambda r: [r.standard_normal((4, 3)), r.standard_normal((4, 3)),
                                                   r.uniform(0.5, 2, (4, 1))]),
    ("SoftMarginLoss", {}, lambda r: [r.standard_normal((3, 4)), np.sign(r.standard_normal((3, 4)))]),
    ("MultiLabelSoftMarginLoss", {}, lambda r: [r.standard_normal((3, 4)), (r.random((3, 4)) > 0.5).astype(float)]),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,kwargs,make", LOSSES, ids=[f"{m[0]}-{i}" for i, m in enumerate(LOSSES)])
def test_loss_matches_torch(name, kwargs, make, reduction):
    xs = make(np.random.default_rng(2))
    grads = [True, True, True] if name == "GaussianNLLLoss" else [True, name in ("MarginRankingLoss",
                                                                               "CosineEmbeddingLoss",
                                                                               "TripletMarginLoss"), True]
    ts = [torch.tensor(x, requires_grad=g) for x, g in zip(xs, grads)]
    es = [ember.tensor(x, requires_grad=g) for x, g in zip(xs, grads)]
    tl = getattr(torch.nn, name)(**kwargs, reduction=reduction)(*ts)
    el = getattr(ember.nn, name)(**kwargs, reduction=reduction)(*es)
    np.testing.assert_allclose(el.detach().numpy(), tl.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(3).standard_normal(tuple(tl.shape))
    tl.backward(torch.tensor(g))
    el.backward(ember.tensor(g))
    for a, b in zip(ts, es):
        if a.requires_grad and a.grad is not None:
            np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-9, atol=1e-12)
