"""Smaller PyTorch names against torch: cumprod (values and gradients, also through zeros),
promote_types, isinstance(x.dtype, torch.dtype), randint_like, seed / initial_seed /
get_rng_state / set_rng_state (a draw repeats after restoring the state), Module.type."""
import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("x", [np.random.default_rng(0).standard_normal((3, 5)),
                               np.array([[1.0, 0.0, 2.0, 3.0], [0.0, 0.0, 4.0, 5.0]]), np.array([2.0, 0.0, 3.0, 0.0, 1.5])])
def test_cumprod_matches_torch_through_zeros(x):
    for d in range(x.ndim):
        t, e = torch.tensor(x, requires_grad=True), ember.tensor(x, requires_grad=True)
        a, b = torch.cumprod(t, d), e.cumprod(d)
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-12)
        g = np.random.default_rng(d).standard_normal(tuple(a.shape))
        a.backward(torch.tensor(g))
        b.backward(ember.tensor(g))
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)
        assert type(b.grad_fn).__name__ == "CumprodBackward0"


def test_dtype_helpers_match_torch():
    for a, b in [("int64", "float32"), ("uint8", "int8"), ("bool", "int32"), ("float32", "float64"),
                 ("int32", "int64"), ("bool", "float16")]:
        ours = ember.promote_types(getattr(ember, a), getattr(ember, b))
        assert str(ours) == str(torch.promote_types(getattr(torch, a), getattr(torch, b))).replace("torch.", "")
    assert isinstance(ember.float32, ember.dtype) and isinstance(ember.zeros(1).dtype, ember.dtype)
    r = ember.randint_like(ember.zeros(2, 3), 3, 5)
    assert r.shape == (2, 3) and r.dtype == ember.float32 and set(np.unique(r.numpy())) <= {3.0, 4.0}


def test_rng_state_functions_roundtrip():
    ember.manual_seed(5)
    assert ember.initial_seed() == 5
    state = ember.get_rng_state()
    assert state.dtype == ember.uint8 and state.ndim == 1
    a = ember.randn(3)
    ember.set_rng_state(state)
    np.testing.assert_array_equal(ember.randn(3).numpy(), a.numpy())
    s = ember.seed()
    assert s == ember.initial_seed() and s >= 0


def test_module_type_casts_like_torch():
    for lib in (torch, ember):
        m = lib.nn.Linear(2, 2)
        assert m.type(lib.float64) is m and m.weight.dtype == lib.float64
        assert m.type("torch.FloatTensor").bias.dtype == lib.float32


@pytest.mark.parametrize("data", [[np.float64(0.5), 1.0], [np.float32(0.5)], [1, np.int32(2)], [np.int32(2)],
                                  [[np.float64(1)], [2.0]], [np.float16(1), 2.0], [np.uint8(1), np.int8(2)],
                                  [np.int32(1), 2.0], [True, np.int16(3)], [np.bool_(True)], [1.0, 2.0], [1, 2],
                                  list(np.linspace(0, 1, 5))])
def test_tensor_infers_dtypes_from_numpy_scalars_as_torch(data):
    """torch.tensor([np.mean(x), np.std(x)]) is float64 in PyTorch: NumPy scalars keep their dtype."""
    assert str(ember.tensor(data).dtype) == str(torch.tensor(data).dtype).replace("torch.", "")


def test_mean_of_integers_raises_as_torch_and_cross_entropy_takes_positions():
    for dt in ("int64", "int32", "uint8", "bool"):
        with pytest.raises(RuntimeError) as theirs:
            torch.zeros(2, dtype=getattr(torch, dt)).mean()
        with pytest.raises(RuntimeError) as ours:
            ember.zeros(2, dtype=getattr(ember, dt)).mean()
        assert str(ours.value) == str(theirs.value)
    assert float(ember.tensor([1, 2]).mean(dtype=ember.float32)) == 1.5
    rng = np.random.default_rng(0)
    x, t, w = rng.standard_normal((2, 3, 4, 5)), rng.integers(0, 3, (2, 4, 5)), rng.uniform(0.5, 2, 3)
    t[0, 0, 0] = -100
    for kw in ({}, {"reduction": "none"}, {"reduction": "sum", "weight": w}, {"label_smoothing": 0.1}):
        tx, ex = torch.tensor(x, requires_grad=True), ember.tensor(x, requires_grad=True)
        kt = {k: torch.tensor(v) if k == "weight" else v for k, v in kw.items()}
        ke = {k: ember.tensor(v) if k == "weight" else v for k, v in kw.items()}
        a = torch.nn.functional.cross_entropy(tx, torch.tensor(t), **kt)
        b = ember.nn.functional.cross_entropy(ex, ember.tensor(t), **ke)
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-12)
        a.sum().backward()
        b.sum().backward()
        np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-14)
        kt.pop("label_smoothing", None)
        ke.pop("label_smoothing", None)
        np.testing.assert_allclose(
            ember.nn.functional.nll_loss(ember.tensor(x).log_softmax(1), ember.tensor(t), **ke).numpy(),
            torch.nn.functional.nll_loss(torch.tensor(x).log_softmax(1), torch.tensor(t), **kt).numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="size mismatch"):
        ember.nn.functional.cross_entropy(ember.randn(2, 3, 4, 5), ember.zeros(2, 4, 6, dtype=ember.int64))
