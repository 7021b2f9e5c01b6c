"""PyTorch's optimizer keywords beyond the rule: ``maximize`` (gradient ascent) on every optimizer
against torch.optim in float64 over several steps, and the implementation switches (foreach,
fused, capturable, differentiable) accepted where PyTorch's constructor takes them, kept in the
param groups under the same keys, and differentiable=True refused clearly."""
import inspect

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")

CASES = [  # name, kwargs (beyond maximize=True)
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)),
    ("SGD", dict(lr=0.1)),
    ("Adam", dict(lr=0.05, weight_decay=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.05)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01)),
    ("Adadelta", dict(lr=1.0, weight_decay=0.01)),
    ("Adamax", dict(lr=0.05, weight_decay=0.01)),
    ("NAdam", dict(lr=0.05, weight_decay=0.01)),
    ("RAdam", dict(lr=0.05, decoupled_weight_decay=True, weight_decay=0.01)),
]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_maximize_ascends_exactly_as_torch(name, kwargs):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4))
    tw, ew = torch.nn.Parameter(torch.tensor(w0)), ember.nn.Parameter(ember.tensor(w0))
    topt = getattr(torch.optim, name)([tw], maximize=True, **kwargs)
    eopt = getattr(ember.optim, name)([ew], maximize=True, **kwargs)
    for step in range(6):
        target = rng.standard_normal((3, 4))
        for w, opt, lib in ((tw, topt, torch), (ew, eopt, ember)):
            opt.zero_grad()
            (-(w - lib.tensor(target)) ** 2).sum().backward()          # maximise −‖w − target‖²
            opt.step()
        np.testing.assert_allclose(ew.detach().numpy(), tw.detach().numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=f"{name} step {step}")
    plain = getattr(ember.optim, name)([ember.nn.Parameter(ember.tensor(w0))], **kwargs)
    assert eopt.param_groups[0]["maximize"] and not plain.param_groups[0]["maximize"]


@pytest.mark.parametrize("name", sorted({n for n, _ in CASES}))
def test_implementation_switches_are_accepted_and_kept_like_torch(name):
    switches = [k for k in ("foreach", "fused", "capturable")
                if k in inspect.signature(getattr(torch.optim, name)).parameters]
    assert switches
    opt = getattr(ember.optim, name)([ember.nn.Parameter(ember.ones(2))], **{k: False for k in switches})
    ref = getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))], **{k: False for k in switches})
    assert {k: v for k, v in opt.param_groups[0].items() if k != "params"} == \
        {k: v for k, v in ref.param_groups[0].items() if k != "params"}
    with pytest.raises(NotImplementedError, match="differentiable=True"):
        getattr(ember.optim, name)([ember.nn.Parameter(ember.ones(2))], differentiable=True)
