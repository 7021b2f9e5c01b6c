"""nn.ConvTranspose1d/2d and F.conv_transpose1d/2d against PyTorch (float64, the same weights
through state_dict): outputs, input and parameter gradients to 1e-10 over strides, padding,
output_padding (also the case output_padding >= stride < dilation), groups, dilation, unbatched
input and output_size=; float finite differences of the reference op; PyTorch's errors and repr."""
import numpy as np
import pytest

import ember
from ember._api.conv_transpose import ConvTranspose2d as Op
from helpers import assert_same_error, gradcheck

torch = pytest.importorskip("torch")

CASES = [  # (layer, C_in, C_out, kernel, kwargs, input shape)
    ("ConvTranspose2d", 4, 3, 3, {}, (2, 4, 5, 5)),
    ("ConvTranspose2d", 16, 8, 4, dict(stride=2, padding=1), (2, 16, 7, 7)),
    ("ConvTranspose2d", 4, 6, (3, 5), dict(stride=(2, 3), padding=(1, 2), output_padding=(1, 2), groups=2,
                                          dilation=(1, 2), bias=False), (2, 4, 5, 6)),
    ("ConvTranspose2d", 4, 2, 3, dict(dilation=3, output_padding=2), (1, 4, 4, 4)),   # output_padding < dilation
    ("ConvTranspose2d", 3, 5, 3, dict(stride=2, output_padding=1), (3, 4, 4)),       # unbatched
    ("ConvTranspose1d", 4, 2, 3, dict(stride=2, padding=1), (2, 4, 7)),
    ("ConvTranspose1d", 4, 2, 3, {}, (4, 7)),
]


@pytest.mark.parametrize("name,cin,cout,k,kwargs,shape", CASES)
def test_conv_transpose_matches_torch_values_and_gradients(name, cin, cout, k, kwargs, shape):
    rng = np.random.default_rng(cin * 7 + cout)
    t = getattr(torch.nn, name)(cin, cout, k, **kwargs).double()
    e = getattr(ember.nn, name)(cin, cout, k, **kwargs).double()
    assert repr(e) == repr(t)
    assert [(n, tuple(v.shape)) for n, v in e.state_dict().items()] == \
        [(n, tuple(v.shape)) for n, v in t.state_dict().items()]
    e.load_state_dict({n: ember.tensor(v.detach().numpy()) for n, v in t.state_dict().items()})
    x = rng.standard_normal(shape)
    tx, ex = torch.tensor(x, requires_grad=True), ember.tensor(x, requires_grad=True)
    ty, ey = t(tx), e(ex)
    assert tuple(ey.shape) == tuple(ty.shape)
    np.testing.assert_allclose(ey.detach().numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    ey.backward(ember.tensor(g))
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    for (n, p), (n2, q) in zip(t.named_parameters(), e.named_parameters()):
        assert n == n2
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-10, atol=1e-10, err_msg=n)


def test_reference_op_passes_finite_differences():
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((2, 4, 3, 4)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(6)]
    fn = lambda u, w, b: Op.apply(u, w, b, stride=(2, 1), padding=(1, 0), output_padding=(1, 0), groups=2,  # noqa: E731
                                  dilation=(1, 2))
    assert gradcheck(fn, arrays, "conv_transpose2d")


def test_output_size_picks_the_output_padding():
    m, tm = ember.nn.ConvTranspose2d(4, 3, 3, stride=2), torch.nn.ConvTranspose2d(4, 3, 3, stride=2)
    x = np.zeros((1, 4, 5, 5), np.float32)
    for size in [(12, 12), [1, 3, 11, 11], (11, 12)]:
        assert tuple(m(ember.tensor(x), output_size=size).shape) == tuple(tm(torch.tensor(x), output_size=size).shape)
    with pytest.raises(ValueError) as ours:
        m(ember.tensor(x), output_size=(20, 20))
    with pytest.raises(ValueError) as theirs:
        tm(torch.tensor(x), output_size=(20, 20))
    assert str(ours.value) == str(theirs.value).replace("torch.Size([5, 5])", "(5, 5)")


@pytest.mark.parametrize("call", [
    lambda F, T: F.conv_transpose2d(T.randn(1, 5, 8, 8), T.randn(4, 3, 3, 3)),
    lambda F, T: F.conv_transpose2d(T.randn(1, 4, 8, 8), T.randn(4, 3, 3, 3), stride=2, output_padding=2),
    lambda F, T: F.conv_transpose2d(T.randn(1, 4, 8), T.randn(4, 3, 3, 3)),
    lambda F, T: T.nn.ConvTranspose2d(4, 3, 3, padding_mode="reflect"),
    lambda F, T: T.nn.ConvTranspose2d(4, 3, 3, groups=3),
])
def test_errors_are_torch_s(call):
    assert_same_error(call, (torch.nn.functional, torch), (ember.nn.functional, ember))
