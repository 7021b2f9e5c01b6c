"""ember.distributions against torch.distributions in float64: log_prob, entropy, cdf, probs,
kl_divergence values and their gradients to the parameters (and the value) to 1e-10; sampling
statistics, shapes and dtypes; rsample's gradient (the reparameterisation trick); repr."""
import numpy as np
import pytest

import ember
import ember.distributions as ED

torch = pytest.importorskip("torch")
import torch.distributions as TD  # noqa: E402

RNG = np.random.default_rng(0)
MU, SD, V = RNG.standard_normal(4), RNG.uniform(0.5, 2, 4), RNG.standard_normal((3, 4))
LG, P = RNG.standard_normal((2, 5)), RNG.uniform(0.1, 1, (2, 5))

CASES = [
    (lambda D, L, m, s, x: D.Normal(m, s).log_prob(x), [MU, SD, V]),
    (lambda D, L, m, s: D.Normal(m, s).entropy(), [MU, SD]),
    (lambda D, L, m, s, x: D.Normal(m, s).cdf(x), [MU, SD, V]),
    (lambda D, L, m, s, m2, s2: D.kl_divergence(D.Normal(m, s), D.Normal(m2, s2)),
     [MU, SD, RNG.standard_normal(4), RNG.uniform(0.5, 2, 4)]),
    (lambda D, L, lg: D.Categorical(logits=lg).log_prob(L.tensor(np.array([1, 4]))), [LG]),
    (lambda D, L, lg: D.Categorical(logits=lg).entropy(), [LG]),
    (lambda D, L, lg: D.Categorical(logits=lg).probs, [LG]),
    (lambda D, L, p: D.Categorical(probs=p).log_prob(L.tensor(np.array([[1, 4], [0, 2], [3, 3]]))), [P]),
    (lambda D, L, p: D.Categorical(probs=p).entropy(), [P]),
    (lambda D, L, a, b: D.kl_divergence(D.Categorical(logits=a), D.Categorical(logits=b)), [LG, RNG.standard_normal((2, 5))]),
    (lambda D, L, p, y: D.Bernoulli(probs=p).log_prob(y), [RNG.uniform(0.1, 0.9, 4), (RNG.random((3, 4)) > 0.5) * 1.0]),
    (lambda D, L, lg: D.Bernoulli(logits=lg).entropy(), [RNG.standard_normal(4)]),
    (lambda D, L, a, b, y: D.Uniform(a, b).log_prob(y), [np.zeros(4), np.full(4, 2.0), RNG.uniform(0.1, 1.9, 4)]),
    (lambda D, L, a, b: D.Uniform(a, b).entropy(), [np.zeros(4), RNG.uniform(1, 3, 4)]),
]


@pytest.mark.parametrize("fn,arrays", CASES, ids=range(len(CASES)))
def test_values_and_gradients_match_torch(fn, arrays):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    es = [ember.tensor(a, requires_grad=True) for a in arrays]
    to, eo = fn(TD, torch, *ts), fn(ED, ember, *es)
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = RNG.standard_normal(tuple(to.shape))
    to.backward(torch.tensor(g))
    eo.backward(ember.tensor(g))
    for t, e in zip(ts, es):
        if t.grad is not None:
            np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_sampling_shapes_and_statistics():
    ember.manual_seed(0)
    s = ED.Normal(ember.tensor([0.0, 10.0]), ember.tensor([1.0, 2.0])).sample((20000,))
    assert s.shape == (20000, 2) and not s.requires_grad
    np.testing.assert_allclose(s.numpy().mean(0), [0, 10], atol=0.05)
    np.testing.assert_allclose(s.numpy().std(0), [1, 2], rtol=0.03)
    c = ED.Categorical(probs=ember.tensor([0.2, 0.3, 0.5])).sample((30000,))
    assert c.shape == (30000,) and c.dtype == ember.int64
    np.testing.assert_allclose(np.bincount(c.numpy()) / 30000, [0.2, 0.3, 0.5], atol=0.015)
    assert ED.Categorical(logits=ember.zeros(4, 3)).sample((2,)).shape == (2, 4)
    np.testing.assert_allclose(ED.Bernoulli(probs=ember.tensor([0.25])).sample((40000,)).numpy().mean(), 0.25, atol=0.01)
    u = ED.Uniform(2.0, 4.0).sample((10000,)).numpy()
    assert 2.0 <= u.min() and u.max() < 4.0


def test_rsample_carries_the_gradient_and_repr_is_torchs():
    loc = ember.tensor([0.0, 1.0], requires_grad=True)
    scale = ember.tensor([1.0, 2.0], requires_grad=True)
    ED.Normal(loc, scale).rsample((5,)).sum().backward()
    np.testing.assert_array_equal(loc.grad.numpy(), [5, 5])
    assert scale.grad is not None
    for make in (lambda D, L: D.Normal(L.tensor([0.0, 1.0]), L.tensor([1.0, 2.0])),
                 lambda D, L: D.Categorical(logits=L.tensor([[1.0, 2.0, 3.0]])),
                 lambda D, L: D.Bernoulli(probs=L.tensor([0.3]))):
        assert repr(make(ED, ember)) == repr(make(TD, torch))
    with pytest.raises(ValueError, match="Either `probs` or `logits` must be specified"):
        ED.Categorical()
    with pytest.raises(NotImplementedError, match="No KL"):
        ED.kl_divergence(ED.Normal(0.0, 1.0), ED.Uniform(0.0, 1.0))
