"""The elementwise math, scatter family and shape helpers of ember/_api/math_ops.py and
shape_ops.py against PyTorch in float64: values, every input gradient (to 1e-10) and the node
name (grad_fn) for the ops with a derivative of their own; finite differences for those; the
in-place forms and the one-hot-by-scatter_ idiom; the integer/bool helpers' values."""
import numpy as np
import pytest

import ember
from helpers import gradcheck

torch = pytest.importorskip("torch")
RNG = np.random.default_rng(0)
X = RNG.uniform(-0.9, 0.9, (3, 4))
INDEX = np.array([[0, 1, 2, 0], [2, 0, 0, 1]])


def _both(tf, ef, arrays, names=True):
    ts = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    es = [ember.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    to, eo = tf(torch, *ts), ef(ember, *es)
    assert tuple(eo.shape) == tuple(to.shape)
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(1).standard_normal(tuple(to.shape))
    to.backward(torch.tensor(g))
    eo.backward(ember.tensor(g))
    for t, e in zip(ts, es):
        if t.requires_grad:
            np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-12)
    if names:
        assert type(eo.grad_fn).__name__ == type(to.grad_fn).__name__


UNARY = ["log1p", "expm1", "sinh", "cosh", "asin", "acos", "atan", "asinh", "atanh", "erf", "erfc", "exp2",
         "reciprocal", "acosh", "log2", "log10"]


@pytest.mark.parametrize("name", UNARY)
def test_unary_math_matches_torch_and_finite_differences(name):
    x = X + 2.0 if name == "acosh" else (np.abs(X) + 0.1 if name in ("log2", "log10") else X)
    _both(lambda L, t: getattr(L, name)(t), lambda L, t: getattr(L, name)(t), [x])
    _both(lambda L, t: getattr(t, name)(), lambda L, t: getattr(t, name)(), [x])
    gradcheck(getattr(ember, name), [x], name)
    t, e = torch.tensor(x.copy()), ember.tensor(x.copy())
    getattr(t, name + "_")()
    getattr(e, name + "_")()
    np.testing.assert_allclose(e.numpy(), t.numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["atan2", "hypot", "logaddexp"])
def test_binary_math_broadcasts_and_matches_torch(name):
    b = RNG.uniform(-2, 2, (1, 4))
    _both(lambda L, s, o: getattr(L, name)(s, o), lambda L, s, o: getattr(L, name)(s, o), [X, b])
    gradcheck(getattr(ember, name), [X, b], name)


@pytest.mark.parametrize("call,special", [(lambda L, t: L.logit(t), False), (lambda L, t: L.logit(t, eps=0.2), False),
                                          (lambda L, t: t.nan_to_num(), True),
                                          (lambda L, t: L.nan_to_num(t, nan=1.0, posinf=5.0), True)])
def test_logit_and_nan_to_num_match_torch(call, special):
    x = RNG.uniform(0.05, 0.95, (3, 4))
    if special:
        x[0, 0], x[1, 1], x[2, 2] = np.nan, np.inf, -np.inf
    _both(call, call, [x])


@pytest.mark.parametrize("call,src_shape", [
    (lambda L, i, s: i.scatter(0, L.tensor(INDEX), s), (2, 4)),
    (lambda L, i, s: L.scatter_add(i, 0, L.tensor(INDEX), s), (2, 4)),
    (lambda L, i, s: i.scatter(1, L.tensor(INDEX[:, :2]), 2.5) * s.sum(), (2, 4)),
    (lambda L, i, s: i.index_add(1, L.tensor([0, 2, 0, 3]), s, alpha=2.0), (3, 4)),
])
def test_scatter_family_matches_torch(call, src_shape):
    _both(call, call, [RNG.standard_normal((3, 4)), RNG.standard_normal(src_shape)], names=False)


def test_scatter_family_gradients_by_finite_differences():
    idx = ember.tensor(INDEX)
    gradcheck(lambda i, s: i.scatter(0, idx, s), [RNG.standard_normal((3, 4)), RNG.standard_normal((2, 4))], "scatter")
    gradcheck(lambda i, s: i.scatter_add(0, idx, s), [RNG.standard_normal((3, 4)), RNG.standard_normal((2, 4))],
              "scatter_add")
    gradcheck(lambda i, s: i.index_add(0, ember.tensor([1, 1, 0]), s, alpha=-0.5),
              [RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))], "index_add")


def test_in_place_scatter_forms_and_the_one_hot_idiom():
    t, e = torch.zeros(3, 4), ember.zeros(3, 4)
    for lib, z in ((torch, t), (ember, e)):
        z.scatter_add_(0, lib.tensor(INDEX), lib.ones(2, 4))
        z.index_add_(0, lib.tensor([1, 1]), lib.ones(2, 4))
        z.scatter_(1, lib.tensor([[3], [0], [1]]), 7.0)
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    labels = [2, 0, 1]
    assert ember.zeros(3, 4).scatter_(1, ember.tensor(labels).unsqueeze(1), 1.0).tolist() == \
        torch.zeros(3, 4).scatter_(1, torch.tensor(labels).unsqueeze(1), 1.0).tolist()
    with pytest.raises(RuntimeError, match="out of bounds"):
        ember.zeros(3, 4).scatter_(0, ember.tensor([[5, 0, 0, 0]]), 1.0)


SHAPES = [
    lambda L, t: L.movedim(t, 0, 2), lambda L, t: t.movedim((0, 1), (2, 0)), lambda L, t: L.moveaxis(t, -1, 0),
    lambda L, t: t.swapaxes(0, 2), lambda L, t: L.swapdims(t, 1, 2), lambda L, t: t.narrow(2, 1, 2),
    lambda L, t: L.narrow(t, 1, -2, 2), lambda L, t: t.select(1, 2), lambda L, t: t.unflatten(2, (2, 2)),
    lambda L, t: L.unflatten(t, 1, (-1, 1)), lambda L, t: t.ravel(), lambda L, t: t.diff(),
    lambda L, t: L.diff(t, n=2, dim=1), lambda L, t: t.diff(dim=0, prepend=t[:1] * 0), lambda L, t: t.clamp_min(0.1),
    lambda L, t: L.clamp_max(t, 0.1), lambda L, t: t.take_along_dim(L.tensor([[[0], [1], [0]]]), 2),
    lambda L, t: L.take_along_dim(t, L.tensor([0, 5, 7])), lambda L, t: L.masked_fill(t, t > 0, 0.5),
]


@pytest.mark.parametrize("call", SHAPES)
def test_shape_helpers_match_torch(call):
    _both(call, call, [RNG.standard_normal((2, 3, 4))], names=False)


@pytest.mark.parametrize("call", [
    lambda L, m: L.argwhere(m), lambda L, m: L.count_nonzero(m), lambda L, m: m.count_nonzero(dim=(0, 2)),
    lambda L, m: L.isin(L.tensor([1, 2, 3, 4]), L.tensor([2, 4])),
    lambda L, m: L.isin(L.tensor([1, 2, 3]), L.tensor([2]), invert=True),
    lambda L, m: L.tril_indices(3, 4), lambda L, m: L.triu_indices(4, 3, 1)])
def test_index_helpers_match_torch(call):
    m = (RNG.standard_normal((2, 3, 4)) > 0).astype(np.float64)
    np.testing.assert_array_equal(call(ember, ember.tensor(m)).numpy(), call(torch, torch.tensor(m)).numpy())
