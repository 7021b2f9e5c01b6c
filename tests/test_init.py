"""nn.init: calculate_gain (exact values and errors against torch), trunc_normal_ (moments and
CDF of the truncated normal in both of torch's sampling regimes; bounds), orthogonal_
(orthonormal rows or columns, gain, shapes; torch's errors)."""
import math
import re
import warnings

import numpy as np
import pytest

import ember
from ember import nn
from ember.nn import init

torch = pytest.importorskip("torch")


GAINS = [("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None), ("conv_transpose1d", None),
         ("conv_transpose2d", None), ("conv_transpose3d", None), ("sigmoid", None), ("tanh", None),
         ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 3), ("leaky_relu", 0),
         ("selu", None), ("tanh", 5.0)]


@pytest.mark.parametrize("name,param", GAINS)
def test_calculate_gain_matches_torch(name, param):
    ours, theirs = init.calculate_gain(name, param), torch.nn.init.calculate_gain(name, param)
    assert ours == theirs and type(ours) is type(theirs)


@pytest.mark.parametrize("name,param", [("leaky_relu", True), ("leaky_relu", "0.2"), ("identity", None),
                                        ("gelu", None), ("ReLU", None)])
def test_calculate_gain_errors_match_torch(name, param):
    with pytest.raises(ValueError) as ours:
        init.calculate_gain(name, param)
    with pytest.raises(ValueError) as theirs:
        torch.nn.init.calculate_gain(name, param)
    assert str(ours.value) == str(theirs.value)


def _phi(x):
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _Phi(x):
    return (1 + math.erf(x / math.sqrt(2))) / 2


@pytest.mark.parametrize("mean,std,a,b", [(0.0, 1.0, -2.0, 2.0),     # torch's default: redraw branch
                                          (0.5, 0.02, 0.46, 0.55),   # ViT-style small std
                                          (0.0, 1.0, 2.0, 3.0),      # 2% of the mass: uniform proposals
                                          (1.0, 2.0, -5.0, -0.5)])   # one-sided, mean outside
def test_trunc_normal_moments_and_cdf(mean, std, a, b):
    ember.manual_seed(0)
    t = nn.Parameter(np.zeros((400, 500)))
    assert init.trunc_normal_(t, mean, std, a, b) is t
    x = t.numpy().ravel()
    assert x.min() >= a and x.max() <= b
    al, be = (a - mean) / std, (b - mean) / std
    z = _Phi(be) - _Phi(al)
    mu = mean + std * (_phi(al) - _phi(be)) / z
    var = std ** 2 * (1 + (al * _phi(al) - be * _phi(be)) / z - ((_phi(al) - _phi(be)) / z) ** 2)
    n = x.size
    assert abs(x.mean() - mu) < 5 * math.sqrt(var / n)
    assert abs(x.var() / var - 1) < 0.02
    for q in np.linspace(a, b, 9)[1:-1]:       # empirical CDF against the exact one (KS-like)
        exact = (_Phi((q - mean) / std) - _Phi(al)) / z
        assert abs((x <= q).mean() - exact) < 0.005


def test_trunc_normal_like_torch_and_errors():
    t = ember.zeros(50000)
    init.trunc_normal_(t, std=0.02, generator=np.random.default_rng(1))   # timm's ViT idiom
    torch.manual_seed(0)
    ref = torch.nn.init.trunc_normal_(torch.zeros(50000), std=0.02).numpy()
    assert t.numpy().dtype == np.float32
    for x in (t.numpy(), ref):   # a = -2, b = 2 are absolute: practically N(0, 0.02²); 5 standard errors
        assert abs(x.mean()) < 5 * 0.02 / math.sqrt(50000) and abs(x.std() / 0.02 - 1) < 0.016
    with pytest.warns(UserWarning, match=re.escape("mean is more than 2 std from [a, b] in nn.init.trunc_normal_")):
        init.trunc_normal_(ember.zeros(10), mean=5.0, std=1.0, a=-1.0, b=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        init.trunc_normal_(ember.zeros(10))
    with pytest.raises(ValueError, match=re.escape("trunc_normal_ expects a <= b, got a=2.0, b=-2.0")):
        init.trunc_normal_(ember.zeros(3), a=2.0, b=-2.0)
    with pytest.raises(ValueError, match=re.escape("trunc_normal_ expects std > 0, got std=0.0")):
        init.trunc_normal_(ember.zeros(3), std=0.0)


def test_trunc_normal_reproducible_with_seed():
    ember.manual_seed(7); a = init.trunc_normal_(ember.zeros(5, 5), a=2.0, b=3.0).numpy().copy()
    ember.manual_seed(7); b = init.trunc_normal_(ember.zeros(5, 5), a=2.0, b=3.0).numpy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(6, 6), (3, 7), (7, 3), (4, 2, 3, 3), (16, 1, 5, 5), (1, 9)])
@pytest.mark.parametrize("gain", [1, 2.5])
def test_orthogonal(shape, gain):
    ember.manual_seed(1)
    t = nn.Parameter(np.zeros(shape))
    assert init.orthogonal_(t, gain=gain) is t
    w = t.numpy().reshape(shape[0], -1)
    rows, cols = w.shape
    gram = w @ w.T if rows <= cols else w.T @ w
    np.testing.assert_allclose(gram, gain ** 2 * np.eye(min(rows, cols)), atol=1e-12)
    ref = torch.nn.init.orthogonal_(torch.zeros(shape, dtype=torch.float64), gain=gain).reshape(rows, -1)
    ref_gram = ref @ ref.T if rows <= cols else ref.T @ ref
    np.testing.assert_allclose(ref_gram.numpy(), gram, atol=1e-12)   # the same property in torch


def test_orthogonal_is_haar_distributed_and_float32():
    """Entries of a Haar orthogonal n×n matrix have mean 0 and variance 1/n (no sign bias on
    the diagonal, which an uncorrected QR would give)."""
    ember.manual_seed(2)
    diags = []
    for _ in range(300):
        t = ember.zeros(8, 8)
        init.orthogonal_(t)
        diags.append(np.diag(t.numpy()))
    assert t.numpy().dtype == np.float32
    d = np.array(diags)
    assert abs(d.mean()) < 0.03 and abs(d.var() - 1 / 8) < 0.02


def test_orthogonal_errors_and_empty():
    with pytest.raises(ValueError) as ours:
        init.orthogonal_(ember.zeros(5))
    with pytest.raises(ValueError) as theirs:
        torch.nn.init.orthogonal_(torch.zeros(5))
    assert str(ours.value) == str(theirs.value) == "Only tensors with 2 or more dimensions are supported"
    assert init.orthogonal_(ember.zeros(0, 3)).shape == (0, 3)


def test_kaiming_gain_unchanged():
    assert init._gain("leaky_relu", math.sqrt(5)) == torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5))
    assert init._gain("leaky_relu") == math.sqrt(2)
