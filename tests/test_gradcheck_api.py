"""ember.autograd.gradcheck and set_detect_anomaly, as torch.autograd's: gradcheck passes for
correct ops and custom Functions and fails (GradcheckError, or False) for a wrong backward, warns
for float32 inputs like PyTorch; set_detect_anomaly switches anomaly mode as a call and as a
context manager."""
import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


def _wrong_square(lib):
    class Square(lib.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            ctx.save_for_backward(t)
            return t ** 2

        @staticmethod
        def backward(ctx, g):
            (t,) = ctx.saved_tensors
            return g * t                                        # should be 2·t·g
    return Square.apply


@pytest.mark.parametrize("fn", [lambda L, t: (t.sin() * t).sum(1), lambda L, t: L.softmax(t, 1),
                                lambda L, t: (t @ t.T, t.exp())])
def test_gradcheck_passes_for_correct_ops_like_torch(fn):
    x = np.random.default_rng(0).standard_normal((3, 4))
    assert ember.autograd.gradcheck(lambda t: fn(ember, t), (ember.tensor(x, requires_grad=True),))
    assert torch.autograd.gradcheck(lambda t: fn(torch, t), (torch.tensor(x, requires_grad=True),))


def test_gradcheck_catches_a_wrong_backward_like_torch():
    x = np.array([0.5, -1.5])
    for lib, error in ((ember, ember.autograd.GradcheckError), (torch, __import__("torch.autograd.gradcheck", fromlist=["GradcheckError"]).GradcheckError)):
        with pytest.raises(error, match="Jacobian mismatch for output 0 with respect to input 0"):
            lib.autograd.gradcheck(_wrong_square(lib), (lib.tensor(x, requires_grad=True),))
        assert lib.autograd.gradcheck(_wrong_square(lib), (lib.tensor(x, requires_grad=True),),
                                      raise_exception=False) is False
    assert issubclass(ember.autograd.GradcheckError, RuntimeError)
    with pytest.warns(UserWarning, match="is not a double precision floating point"):
        ember.autograd.gradcheck(lambda t: t * 2, (ember.ones(2, requires_grad=True),), raise_exception=False)


def test_set_detect_anomaly_as_call_and_context_manager():
    assert not ember.autograd.is_anomaly_enabled()
    with ember.autograd.set_detect_anomaly(True):
        assert ember.autograd.is_anomaly_enabled()
        with pytest.raises(ember.autograd.AnomalyError):
            ember.tensor([-1.0], requires_grad=True).log()
    assert not ember.autograd.is_anomaly_enabled()
    ember.autograd.set_detect_anomaly(True)
    try:
        assert ember.autograd.is_anomaly_enabled()
    finally:
        ember.autograd.set_detect_anomaly(False)
    assert not ember.autograd.is_anomaly_enabled()
