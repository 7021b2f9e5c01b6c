"""Module.register_full_backward_hook / register_full_backward_pre_hook against torch 2.13: the
same program under both libraries sees the same grad_input and grad_output, the same replaced
gradients, PyTorch's warning (pointing at the user's backward line) and error, and hooks on the
layers of a fusable Sequential (LeNet-style) still run."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


def _weights(lib, m):
    with lib.no_grad():
        for i, p in enumerate(m.parameters()):
            p.copy_(lib.tensor(np.linspace(-1, 1, p.numel()).reshape(tuple(p.shape)) * (i + 1), dtype=p.dtype))
    return m


def _sums(gs):
    return [None if g is None else round(float(g.sum().item()), 9) for g in gs]


def _program(lib):
    """Every case, as a PyTorch user writes it; returns what the hooks saw and the gradients."""
    nn, seen = lib.nn, {}
    log = []
    lin = _weights(lib, nn.Linear(3, 2).double())
    h = lin.register_full_backward_hook(lambda m, gi, go: log.append(("full", m is lin, _sums(gi), _sums(go))))
    p = lin.register_full_backward_pre_hook(lambda m, go: log.append(("pre", _sums(go))))
    x = lib.tensor(np.linspace(0, 1, 12).reshape(4, 3), requires_grad=True)
    (lin(x) * 2).square().sum().backward()
    seen["order"] = list(log)
    log.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (lin(lib.ones(4, 3, dtype=lib.float64)) * 2).sum().backward()   # no input needs a gradient
    seen["no_input"] = (list(log), [(str(w.message), w.filename, w.category.__name__) for w in caught])
    log.clear()
    h.remove()
    p.remove()
    lin.register_full_backward_hook(lambda m, gi, go: (gi[0] * 10,))    # replaces grad_input
    x = lib.tensor(np.linspace(0, 1, 12).reshape(4, 3), requires_grad=True)
    lin.zero_grad()
    (lin(x) * 2).square().sum().backward()
    seen["replaced_input"] = _sums([x.grad, lin.weight.grad])
    lin2 = _weights(lib, nn.Linear(3, 2).double())
    lin2.register_full_backward_pre_hook(lambda m, go: (go[0] * -3,))   # replaces grad_output
    x = lib.tensor(np.linspace(0, 1, 12).reshape(4, 3), requires_grad=True)
    lin2(x).square().sum().backward()
    seen["replaced_output"] = _sums([x.grad, lin2.weight.grad, lin2.bias.grad])
    lin3 = _weights(lib, nn.Linear(3, 2).double())
    lin3.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
    with pytest.raises(RuntimeError) as e:
        lin3(lib.ones(4, 3, dtype=lib.float64, requires_grad=True)).sum().backward()
    seen["wrong_count"] = str(e.value)

    class Two(nn.Module):
        def forward(self, a, k, b):
            return a * k + b, a - b
    two = Two()
    two.register_full_backward_hook(lambda m, gi, go: log.append((len(gi), _sums(gi)[:2], _sums(go))))
    a = lib.tensor([1.0, 2.0], requires_grad=True)
    o1, _ = two(a, 3.0, lib.ones(2))
    o1.sum().backward()                                                 # the second output gets no gradient
    seen["two"] = list(log)
    log.clear()
    twice = _weights(lib, nn.Linear(2, 2).double())
    twice.register_full_backward_hook(lambda m, gi, go: log.append(_sums(go)))
    y = twice(lib.ones(1, 2, dtype=lib.float64, requires_grad=True))
    (y.sum() + y.prod()).backward()                                     # output used twice: one call
    seen["twice"] = list(log)
    log.clear()
    seq = _weights(lib, nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 2)).double())
    seq[0].register_full_backward_hook(lambda m, gi, go: log.append(("conv", tuple(go[0].shape), _sums(go))))
    seq[4].register_full_backward_pre_hook(lambda m, go: log.append(("fc", tuple(go[0].shape), _sums(go))))
    xx = lib.tensor(np.linspace(-1, 1, 72).reshape(2, 1, 6, 6), dtype=lib.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seq(xx).square().sum().backward()
    seen["sequential"] = (list(log), _sums([seq[0].weight.grad, xx.grad]))
    log.clear()
    with lib.no_grad():
        seq(xx)
    seen["no_grad"] = list(log)
    return seen


def test_full_backward_hooks_see_and_replace_what_torchs_see_and_replace():
    got, want = _program(ember), _program(torch)
    for key in want:
        if key == "no_input":   # the warning's file is this one under both: the user's backward line
            assert got[key][0] == want[key][0]
            assert [(m, c) for m, _, c in got[key][1]] == [(m, c) for m, _, c in want[key][1]]
            assert [f for _, f, _ in got[key][1]] == [__file__] == [f for _, f, _ in want[key][1]]
        else:
            assert got[key] == want[key], key
    assert want["order"][0][0] == "pre" and want["order"][1][0] == "full"
    assert want["sequential"][0][0][0] == "fc" and want["no_grad"] == []
