"""MultiplicativeLR, ConstantLR, PolynomialLR and CyclicLR against torch.optim.lr_scheduler: the lr
(and the cycled momentum or β1) of every param group after each of many steps, with two groups,
and ConstantLR/PolynomialLR's closed form (step(epoch)); PyTorch's errors."""
import warnings

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")

CASES = [
    ("MultiplicativeLR", "SGD", {"lr_lambda": lambda e: 0.9 if e % 2 else 0.95}, 12),
    ("ConstantLR", "SGD", {"factor": 0.5, "total_iters": 4}, 8),
    ("PolynomialLR", "SGD", {"total_iters": 6, "power": 2.0}, 9),
    ("CyclicLR", "SGD", {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 4, "step_size_down": 3}, 20),
    ("CyclicLR", "SGD", {"base_lr": [0.01, 0.02], "max_lr": 0.1, "step_size_up": 3, "mode": "triangular2"}, 20),
    ("CyclicLR", "Adam", {"base_lr": 0.001, "max_lr": 0.01, "step_size_up": 5, "mode": "exp_range", "gamma": 0.9}, 20),
    ("CyclicLR", "SGD", {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2, "scale_fn": lambda x: 0.5 ** x,
                         "scale_mode": "iterations", "cycle_momentum": False}, 12),
]


def _groups(lib, opt_name):
    a, b = lib.nn.Parameter(lib.zeros(2)), lib.nn.Parameter(lib.zeros(3))
    kw = {"momentum": 0.9} if opt_name == "SGD" else {}
    return getattr(lib.optim, opt_name)([{"params": [a]}, {"params": [b], "lr": 0.2}], lr=0.1, **kw)


def _trace(lib, name, opt_name, kwargs, steps):
    opt = _groups(lib, opt_name)
    sched = getattr(lib.optim.lr_scheduler, name)(opt, **kwargs)
    out = []
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append([(g["lr"], g.get("momentum"), g.get("betas", (None,))[0]) for g in opt.param_groups])
    return out, sched.get_last_lr()


@pytest.mark.parametrize("name,opt_name,kwargs,steps", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_schedule_matches_torch(name, opt_name, kwargs, steps):
    (ours, last), (theirs, their_last) = _trace(ember, name, opt_name, kwargs, steps), \
        _trace(torch, name, opt_name, kwargs, steps)
    np.testing.assert_allclose(np.array(ours, dtype=float), np.array(theirs, dtype=float), rtol=1e-12)
    np.testing.assert_allclose(last, their_last, rtol=1e-12)


@pytest.mark.parametrize("name,kwargs", [("ConstantLR", {"factor": 0.25, "total_iters": 3}),
                                         ("PolynomialLR", {"total_iters": 4, "power": 0.5})])
def test_closed_form_jumps_match_torch(name, kwargs):
    lrs = []
    for lib in (ember, torch):
        opt = _groups(lib, "SGD")
        sched = getattr(lib.optim.lr_scheduler, name)(opt, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lrs.append([(sched.step(e), [g["lr"] for g in opt.param_groups])[1] for e in (2, 5, 1, 7)])
    np.testing.assert_allclose(lrs[0], lrs[1], rtol=1e-12)


def test_errors_are_torch_s():
    for call in (lambda L: L.optim.lr_scheduler.ConstantLR(_groups(L, "SGD"), factor=1.5),
                 lambda L: L.optim.lr_scheduler.CyclicLR(_groups(L, "Adagrad"), 0.01, 0.1),
                 lambda L: L.optim.lr_scheduler.CyclicLR(_groups(L, "SGD"), 0.01, 0.1, mode="sawtooth")):
        with pytest.raises(ValueError) as theirs:
            call(torch)
        with pytest.raises(ValueError) as ours:
            call(ember)
        assert str(ours.value) == str(theirs.value)
