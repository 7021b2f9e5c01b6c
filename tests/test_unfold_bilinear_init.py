"""F.unfold / F.fold (im2col / col2im) and their modules, F.bilinear / nn.Bilinear, and
nn.init's eye_, dirac_ and sparse_ against PyTorch: values and gradients in float64 to 1e-12,
finite differences, repr, errors, and what each initialiser must leave (identity, a conv that
keeps its input, the zeros per column)."""
import numpy as np
import pytest

import ember
from helpers import assert_same_error, gradcheck

torch = pytest.importorskip("torch")
RNG = np.random.default_rng(0)

CALLS = [
    (lambda L, x: L.nn.functional.unfold(x, 3), [(2, 3, 5, 6)]),
    (lambda L, x: L.nn.functional.unfold(x, (2, 3), dilation=(2, 1), padding=1, stride=(1, 2)), [(2, 3, 5, 6)]),
    (lambda L, x: L.nn.functional.unfold(x, 2), [(3, 4, 4)]),
    (lambda L, x: L.nn.functional.fold(x, (4, 5), 2), [(2, 12, 12)]),
    (lambda L, x: L.nn.functional.fold(x, (5, 6), (2, 3), dilation=(2, 1), padding=1, stride=(1, 2)), [(2, 18, 15)]),
    (lambda L, a, b, w, bias: L.nn.functional.bilinear(a, b, w, bias), [(4, 3), (4, 5), (2, 3, 5), (2,)]),
    (lambda L, a, b, w: L.nn.functional.bilinear(a, b, w), [(2, 4, 3), (2, 4, 5), (2, 3, 5)]),
]


@pytest.mark.parametrize("fn,shapes", CALLS, ids=range(len(CALLS)))
def test_matches_torch_values_and_gradients(fn, shapes):
    arrays = [RNG.standard_normal(s) for s in shapes]
    ts, es = [torch.tensor(a, requires_grad=True) for a in arrays], [ember.tensor(a, requires_grad=True) for a in arrays]
    to, eo = fn(torch, *ts), fn(ember, *es)
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = RNG.standard_normal(tuple(to.shape))
    to.backward(torch.tensor(g))
    eo.backward(ember.tensor(g))
    for t, e in zip(ts, es):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-12)
    gradcheck(lambda *xs: fn(ember, *xs), arrays, "unfold/fold/bilinear")


def test_modules_repr_roundtrip_and_errors():
    for make in (lambda L: L.nn.Bilinear(3, 4, 5), lambda L: L.nn.Unfold(3),
                 lambda L: L.nn.Unfold((2, 3), dilation=2, padding=1, stride=(1, 2)), lambda L: L.nn.Fold((4, 5), 2)):
        assert repr(make(ember)) == repr(make(torch))
    x = ember.arange(32.0).reshape(1, 2, 4, 4)
    np.testing.assert_array_equal(ember.nn.Fold((4, 4), 2, stride=2)(ember.nn.Unfold(2, stride=2)(x)).numpy(),
                                  x.numpy())
    for call in (lambda F, T: F.bilinear(T.randn(2, 3), T.randn(2, 4), T.randn(5, 2, 4)),
                 lambda F, T: F.fold(T.randn(1, 7, 6), (4, 5), 2),
                 lambda F, T: F.fold(T.randn(2, 18, 20), (5, 6), (2, 3), dilation=(2, 1), padding=1, stride=(1, 2)),
                 lambda F, T: F.unfold(T.randn(2, 3, 4), 5)):
        assert_same_error(call, (torch.nn.functional, torch), (ember.nn.functional, ember))


def test_eye_dirac_and_sparse_initialisers():
    for lib in (ember, torch):
        w = lib.nn.Parameter(lib.zeros(3, 4))
        lib.nn.init.eye_(w)
        np.testing.assert_array_equal(w.detach().numpy(), np.eye(3, 4))
        c = lib.nn.Parameter(lib.zeros(4, 2, 3, 3))
        lib.nn.init.dirac_(c, 2)
        assert np.argwhere(c.detach().numpy()).tolist() == [[0, 0, 1, 1], [1, 1, 1, 1], [2, 0, 1, 1], [3, 1, 1, 1]]
    x = ember.randn(2, 2, 5, 5)
    w = ember.nn.Parameter(ember.zeros(2, 2, 3, 3))
    ember.nn.init.dirac_(w)
    np.testing.assert_allclose(ember.nn.functional.conv2d(x, w, padding=1).numpy(), x.numpy())
    s = ember.nn.Parameter(ember.zeros(10, 4))
    ember.nn.init.sparse_(s, 0.3, std=0.5)
    assert (s.numpy() == 0).sum(0).tolist() == [3, 3, 3, 3] and s.numpy().std() > 0.1
    for call in (lambda I, T: I.eye_(T.zeros(2, 2, 2)), lambda I, T: I.dirac_(T.zeros(3, 3)),
                 lambda I, T: I.dirac_(T.zeros(3, 2, 3, 3), 2), lambda I, T: I.sparse_(T.zeros(3), 0.1)):
        assert_same_error(call, (torch.nn.init, torch), (ember.nn.init, ember))
