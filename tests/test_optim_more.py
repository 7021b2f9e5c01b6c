"""Adadelta, Adamax, NAdam, RAdam against torch.optim 2.13: 20-step trajectories in float64 to
1e-10, with two param groups (the second without weight decay), tiny (1e-12) gradients in some
steps, an lr change mid-run, maximize and decoupled weight decay; state_dict round trips that
resume bit for bit; float32 kept; torch's error messages for bad arguments."""
import copy

import numpy as np
import pytest

import ember
from ember import nn, optim

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (5,)]
STEPS = 20
TINY = {0, 3, 11}
LR_CHANGE = 8


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) * (1e-12 if t in TINY else 1.0) for s in SHAPES] for t in range(STEPS)]
    return init, grads


def _run(lib, cls, kwargs, init, grads, start=0, stop=STEPS, state=None):
    """Run steps start..stop-1 in ``lib`` (ember or torch) from parameters ``init`` (and the
    optimizer state ``state``); returns (trajectory, optimizer)."""
    Param = nn.Parameter if lib is ember else torch.nn.Parameter
    params = [Param(lib.tensor(a)) for a in init] if lib is torch else [Param(np.array(a)) for a in init]
    opt = cls([{"params": [params[0]]}, {"params": [params[1]], "weight_decay": 0.0}], **kwargs)
    if state is not None:
        opt.load_state_dict(state)
    traj = []
    for t in range(start, stop):
        if t == LR_CHANGE:
            for i, g in enumerate(opt.param_groups):
                g["lr"] *= 0.25 + i
        for p, g in zip(params, grads[t]):
            p.grad = lib.tensor(g)
        opt.step()
        traj.append([np.array(p.detach().numpy() if lib is torch else p.numpy()) for p in params])
    return traj, opt


CASES = [
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.05)),
    ("Adadelta", dict(lr=0.5, weight_decay=0.05, maximize=True)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05)),
    ("Adamax", dict(lr=0.05, maximize=True)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.05, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.05, weight_decay=0.3, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=0.05, betas=(0.5, 0.9), weight_decay=0.05)),           # rectified from step 6
    ("RAdam", dict(lr=0.05, betas=(0.9, 0.8), weight_decay=0.3, decoupled_weight_decay=True,
                   maximize=True, eps=1e-6)),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CASES)]


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_trajectory_matches_torch(name, kwargs):
    init, grads = _problem()
    ours, _ = _run(ember, getattr(optim, name), kwargs, init, grads)
    ref, _ = _run(torch, getattr(torch.optim, name), kwargs, init, grads)
    for t, (a, b) in enumerate(zip(ours, ref)):
        for i, (x, y) in enumerate(zip(a, b)):
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-10, err_msg=f"{name}{kwargs}: step {t}, param {i}")
    assert not np.allclose(ours[-1][0], init[0])  # it moved


def test_radam_takes_both_branches():
    """With β2 = 0.999 ρₜ ≤ 5 for the first 5 steps (SGD-like branch), then rectified."""
    beta2 = 0.999
    rho_inf = 2 / (1 - beta2) - 1
    rho = [rho_inf - 2 * t * beta2 ** t / (1 - beta2 ** t) for t in range(1, STEPS + 1)]
    assert [r > 5 for r in rho] == [False] * 5 + [True] * (STEPS - 5)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_state_dict_round_trip_resumes_exactly(name, kwargs):
    init, grads = _problem(1)
    cls = getattr(optim, name)
    full, _ = _run(ember, cls, kwargs, init, grads)
    half, opt = _run(ember, cls, kwargs, init, grads, stop=9)
    sd = copy.deepcopy(opt.state_dict())
    assert set(sd["state"][0]) >= {"step"} and sd["state"][0]["step"] == 9
    rest, _ = _run(ember, cls, kwargs, half[-1], grads, start=9, state=sd)
    for a, b in zip(full[9:], rest):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", ["Adadelta", "Adamax", "NAdam", "RAdam"])
def test_float32_stays_float32_and_state_names(name):
    p = nn.Parameter(np.ones((2, 3), dtype=np.float32))
    opt = getattr(optim, name)([p], lr=0.1, weight_decay=0.1)
    tp = torch.nn.Parameter(torch.ones(2, 3))
    topt = getattr(torch.optim, name)([tp], lr=0.1, weight_decay=0.1)
    for _ in range(7):
        p.grad = ember.tensor(np.full((2, 3), 0.5, dtype=np.float32))
        tp.grad = torch.full((2, 3), 0.5)
        opt.step()
        topt.step()
    assert p.numpy().dtype == np.float32
    assert all(v.dtype == np.float32 for v in opt.state[p].values() if isinstance(v, np.ndarray))
    assert set(opt.state[p]) == set(topt.state[tp])
    np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["Adadelta", "Adamax", "NAdam", "RAdam"])
def test_defaults_match_torch(name):
    ours = getattr(optim, name)([nn.Parameter(np.ones(2))]).defaults
    theirs = getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))]).defaults
    for k, v in ours.items():
        assert theirs[k] == v, (name, k)


BAD = [
    (optim.Adadelta, dict(lr=-1.0), "Invalid learning rate: -1.0"),
    (optim.Adadelta, dict(rho=1.5), "Invalid rho value: 1.5"),
    (optim.Adadelta, dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (optim.Adadelta, dict(weight_decay=-1.0), "Invalid weight_decay value: -1.0"),
    (optim.Adamax, dict(betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
    (optim.Adamax, dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (optim.NAdam, dict(momentum_decay=-0.1), "Invalid momentum_decay value: -0.1"),
    (optim.NAdam, dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (optim.RAdam, dict(weight_decay=-0.5), "Invalid weight_decay value: -0.5"),
    (optim.RAdam, dict(lr=-0.5), "Invalid learning rate: -0.5"),
]


@pytest.mark.parametrize("cls,kwargs,msg", BAD, ids=[f"{c.__name__}-{m[:20]}" for c, _, m in BAD])
def test_bad_arguments_match_torch(cls, kwargs, msg):
    with pytest.raises(ValueError) as ours:
        cls([nn.Parameter(np.ones(2))], **kwargs)
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, cls.__name__)([torch.nn.Parameter(torch.ones(2))], **kwargs)
    assert str(ours.value) == str(theirs.value) == msg
