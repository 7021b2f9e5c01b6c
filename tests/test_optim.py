"""Optimizers against torch.optim: trajectories over 12 steps in float64 (tolerance 1e-7) with two
param groups (the second without weight decay), tiny (1e-12) gradients in the first steps (where
eps placement decides the update) and an lr change mid-run; state_dict round trips; bad arguments;
gradient clipping and the bias-without-decay helper."""
import copy
import math

import numpy as np
import pytest

import ember
from ember import nn, optim
from ember.nn.utils import clip_grad_norm_, clip_grad_value_, param_groups_no_bias_decay

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (4,)]
STEPS = 12
TINY = {0, 1, 7}        # steps whose gradients are scaled by 1e-12
LR_CHANGE = 5           # before this step, every group's lr is changed


def _grads(seed=0):
    rng = np.random.default_rng(seed)
    seq = []
    for t in range(STEPS):
        scale = 1e-12 if t in TINY else 1.0
        seq.append([rng.standard_normal(s) * scale for s in SHAPES])
    return seq


def _init(seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in SHAPES]


def _groups(params, wd_key):
    """Group 0: the weight (optimizer's weight decay); group 1: the bias, weight_decay=0."""
    return [{"params": [params[0]]}, {"params": [params[1]], wd_key: 0.0}]


def _ember_run(cls, kwargs, init, grads, start=0, opt=None, params=None):
    params = params or [nn.Parameter(np.array(a)) for a in init]
    opt = opt or cls(_groups(params, "weight_decay"), **kwargs)
    traj = []
    for t in range(start, len(grads)):
        if t == LR_CHANGE:
            for i, g in enumerate(opt.param_groups):
                g["lr"] *= 0.25 + i
        for p, g in zip(params, grads[t]):
            p.grad = ember.tensor(g)
        opt.step()
        traj.append([p.numpy().copy() for p in params])
    return traj, opt, params


def _torch_run(cls, kwargs, init, grads):
    params = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    opt = cls(_groups(params, "weight_decay"), **kwargs)
    traj = []
    for t in range(len(grads)):
        if t == LR_CHANGE:
            for i, g in enumerate(opt.param_groups):
                g["lr"] *= 0.25 + i
        for p, g in zip(params, grads[t]):
            p.grad = torch.tensor(g)
        opt.step()
        traj.append([p.detach().numpy().copy() for p in params])
    return traj


CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.3, lr_decay=0.05, weight_decay=0.05, initial_accumulator_value=0.1, eps=1e-6)),
    ("RMSprop", dict(lr=0.05)),
    ("RMSprop", dict(lr=0.05, alpha=0.9, momentum=0.9, centered=True, weight_decay=0.05)),
    ("RMSprop", dict(lr=0.05, momentum=0.5, eps=1e-4)),
    ("Adam", dict(lr=0.1)),
    ("Adam", dict(lr=0.1, betas=(0.8, 0.99), weight_decay=0.05, amsgrad=True)),
    ("AdamW", dict(lr=0.1)),
    ("AdamW", dict(lr=0.1, betas=(0.5, 0.9), weight_decay=0.3, amsgrad=True, eps=1e-6)),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_trajectory_matches_torch(name, kwargs):
    init, grads = _init(), _grads()
    ours, _, _ = _ember_run(getattr(optim, name), kwargs, init, grads)
    ref = _torch_run(getattr(torch.optim, name), kwargs, init, grads)
    for t, (a, b) in enumerate(zip(ours, ref)):
        for i, (x, y) in enumerate(zip(a, b)):
            np.testing.assert_allclose(x, y, rtol=1e-7, atol=1e-12,
                                       err_msg=f"{name}{kwargs}: step {t}, param {i}")


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_state_dict_round_trip_resumes_exactly(name, kwargs):
    """Stop after 6 steps, rebuild from state_dict() on fresh objects, continue: bit-identical."""
    init, grads = _init(), _grads()
    full, _, _ = _ember_run(getattr(optim, name), kwargs, init, grads)
    half, opt, params = _ember_run(getattr(optim, name), kwargs, init, grads[:6])
    sd = copy.deepcopy(opt.state_dict())
    params2 = [nn.Parameter(p.numpy().copy()) for p in params]
    opt2 = getattr(optim, name)(_groups(params2, "weight_decay"), **kwargs)
    opt2.load_state_dict(sd)
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    rest, _, _ = _ember_run(None, None, None, grads, start=6, opt=opt2, params=params2)
    for a, b in zip(full[6:], rest):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_state_dict_layout_and_independence():
    p = nn.Parameter(np.ones(3))
    opt = optim.Adam([p], lr=0.1)
    p.grad = ember.tensor(np.ones(3))
    opt.step()
    sd = opt.state_dict()
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"} and sd["state"][0]["step"] == 1
    assert sd["param_groups"][0]["params"] == [0] and sd["param_groups"][0]["betas"] == (0.9, 0.999)
    sd["state"][0]["exp_avg"][:] = 99          # a copy: the optimizer's buffer is untouched
    assert opt.state[p]["exp_avg"][0] != 99
    with pytest.raises(ValueError, match=r"parameter 0 has 'exp_avg' of shape \(3,\), but the parameter has "
                                         r"shape \(4,\)"):
        optim.Adam([nn.Parameter(np.ones(4))]).load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.Adam([{"params": [p]}, {"params": [nn.Parameter(np.ones(2))]}]).load_state_dict(sd)


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
def test_float32_stays_float32(name):
    kwargs = dict(momentum=0.9, centered=True) if name == "RMSprop" else dict(momentum=0.9) if name == "SGD" else {}
    p = nn.Parameter(np.ones((2, 3), dtype=np.float32))
    opt = getattr(optim, name)([p], lr=0.1, weight_decay=0.1, **kwargs)
    for _ in range(2):
        p.grad = ember.tensor(np.full((2, 3), 0.5, dtype=np.float32))
        opt.step()
    assert p.numpy().dtype == np.float32
    assert all(v.dtype == np.float32 for v in opt.state[p].values() if isinstance(v, np.ndarray))


def test_closure_is_evaluated_and_returned():
    p = nn.Parameter(np.array([3.0]))
    opt = optim.Adam([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss
    with ember.no_grad():
        loss = opt.step(closure)
    assert float(loss.item()) == 9.0 and p.numpy()[0] < 3.0


BAD = [
    (optim.Adam, dict(lr=-1.0), "Invalid learning rate: -1.0"),
    (optim.Adam, dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (optim.Adam, dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (optim.Adam, dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (optim.AdamW, dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    (optim.AdamW, dict(betas=(0.9, 1.5)), "Invalid beta parameter at index 1: 1.5"),
    (optim.RMSprop, dict(alpha=-0.5), "Invalid alpha value: -0.5"),
    (optim.RMSprop, dict(momentum=-0.5), "Invalid momentum value: -0.5"),
    (optim.RMSprop, dict(lr=-0.01), "Invalid learning rate: -0.01"),
    (optim.Adagrad, dict(lr_decay=-1.0), "Invalid lr_decay value: -1.0"),
    (optim.Adagrad, dict(initial_accumulator_value=-1.0), "Invalid initial_accumulator_value value: -1.0"),
    (optim.Adagrad, dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (optim.SGD, dict(lr=-0.1), "Invalid learning rate: -0.1"),
    (optim.SGD, dict(lr=0.1, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
]


@pytest.mark.parametrize("cls,kwargs,msg", BAD, ids=[f"{c.__name__}-{m[:20]}" for c, _, m in BAD])
def test_bad_arguments(cls, kwargs, msg):
    with pytest.raises(ValueError) as e:
        cls([nn.Parameter(np.ones(2))], **kwargs)
    assert str(e.value) == msg


def test_bad_params():
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.Adam(nn.Parameter(np.ones(2)))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    p = nn.Parameter(np.ones(2))
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.Adam([{"params": [p]}, {"params": [p]}])


# ---- nn.utils ---------------------------------------------------------------------------------
@pytest.mark.parametrize("norm_type,max_norm", [(2.0, 1.0), (1.0, 0.5), (math.inf, 0.3), (3.0, 100.0)])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    rng = np.random.default_rng(3)
    gs = [rng.standard_normal(s) for s in [(3, 4), (4,), (2, 2, 2)]]
    ours = [nn.Parameter(np.zeros_like(g)) for g in gs]
    theirs = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in gs]
    for p, q, g in zip(ours, theirs, gs):
        p.grad, q.grad = ember.tensor(g.copy()), torch.tensor(g.copy())
    extra = nn.Parameter(np.ones(2))  # no grad: skipped
    total = clip_grad_norm_(ours + [extra], max_norm, norm_type)
    ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    np.testing.assert_allclose(float(total.item()), ref.item(), rtol=1e-12)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_float32_nonfinite_and_empty():
    p = nn.Parameter(np.zeros(3, dtype=np.float32))
    p.grad = ember.tensor(np.array([3.0, 4.0, 0.0], dtype=np.float32))
    total = clip_grad_norm_(p, 1.0)
    assert total.dtype == np.float32 and p.grad.numpy().dtype == np.float32
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8, 0.0], rtol=1e-5)
    p.grad = ember.tensor(np.array([np.inf, 1.0, 0.0], dtype=np.float32))
    with pytest.raises(RuntimeError, match="total norm of order 2.0 .* is non-finite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert float(clip_grad_norm_([nn.Parameter(np.ones(2))], 1.0).item()) == 0.0


def test_clip_grad_value_matches_torch():
    g = np.random.default_rng(4).standard_normal((5, 3)) * 2
    p, q = nn.Parameter(np.zeros_like(g)), torch.nn.Parameter(torch.zeros(5, 3, dtype=torch.float64))
    p.grad, q.grad = ember.tensor(g.copy()), torch.tensor(g.copy())
    clip_grad_value_([p], 0.7)
    torch.nn.utils.clip_grad_value_([q], 0.7)
    np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    with pytest.raises(ValueError, match="clip_value must be non-negative"):
        clip_grad_value_([p], -1.0)


def test_no_bias_decay_groups_match_deck_000_gradient():
    """SGD on the groups from the helper = one step of D = Δ/n + λΘ with no penalty on the bias."""
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    groups = param_groups_no_bias_decay(model, 0.1)
    assert [len(g["params"]) for g in groups] == [2, 2] and groups[1]["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in groups[0]["params"]) and all(p.ndim == 1 for p in groups[1]["params"])
    before = {k: v.numpy().copy() for k, v in model.named_parameters()}
    for p in model.parameters():
        p.grad = ember.tensor(np.ones_like(p.numpy()))
    optim.SGD(groups, lr=0.5).step()
    for k, p in model.named_parameters():
        lam = 0.0 if k.endswith("bias") else 0.1
        np.testing.assert_allclose(p.numpy(), before[k] - 0.5 * (1 + lam * before[k]), rtol=1e-6)
    with pytest.raises(ValueError, match="Invalid weight_decay value: -1"):
        param_groups_no_bias_decay(model, -1)
