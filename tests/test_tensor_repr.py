"""print(tensor) looks as in PyTorch: the same digits, modes (int mode "1.", 4 decimals,
scientific notation), alignment, wrapping at 80 columns, summarised large tensors and the
grad_fn / requires_grad suffixes; the dtype suffix names ember's dtype (PyTorch's says torch.)."""
import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")
RNG = np.random.default_rng(0)

VALUES = [[0.3], [0.3, 1.0], [1.0, 2.0], [0.123456, 2.5], 0.3, 1.0, [[1.5, 2.25], [3.0, 4.125]], [1e-5, 1.0],
          [1e9, 1.0], [1.0, 1e5], [float("nan"), 1.0], [float("inf"), -2.0, 0.0], [0.0, 0.0], [-1.5, 2.0],
          np.linspace(0, 1, 30, dtype=np.float32).tolist(), np.arange(2000.0).reshape(40, 50).tolist(),
          np.arange(24.0).reshape(2, 3, 4).tolist(), [[[1.5]]], [True, False], [1, 2, 300], list(range(1500)),
          12345678.9, [1e-3, 0.5], RNG.standard_normal((3, 4)).astype(np.float32),
          RNG.standard_normal((2, 3, 5)).astype(np.float32), RNG.standard_normal((7, 20)).astype(np.float32),
          RNG.standard_normal(1001).astype(np.float32)]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_repr_is_pytorchs(value):
    assert repr(ember.tensor(value)) == repr(torch.tensor(value))


def test_suffixes_are_pytorchs():
    x = RNG.standard_normal((2, 3))
    t, e = torch.tensor(x, requires_grad=True), ember.tensor(x, requires_grad=True)
    pairs = [(t, e), (t * 2, e * 2), (torch.zeros(0, 3), ember.zeros(0, 3)), (torch.tensor([]), ember.tensor([])),
             (torch.tensor([1, 2], dtype=torch.int32), ember.tensor([1, 2], dtype=ember.int32))]
    wide = RNG.standard_normal((3, 30))                        # float64: the dtype suffix after wrapped rows
    pairs.append((torch.tensor(wide), ember.tensor(wide)))
    for theirs, ours in pairs:
        assert repr(ours) == repr(theirs).replace("torch.", "ember.")
