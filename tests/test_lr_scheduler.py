"""Schedulers against torch.optim.lr_scheduler: 20 steps, two param groups, an external lr change
mid-run (which the chainable schedules must carry forward exactly as torch does), the optimizer's
parameters (float64, some 1e-12 gradients) compared at every step to 1e-7, momentum/beta1 cycling,
state_dict round trips and torch-like errors."""
import copy
import warnings

import numpy as np
import pytest

import ember
from ember import nn, optim
from ember.optim import lr_scheduler as ours_lrs

torch = pytest.importorskip("torch")
from torch.optim import lr_scheduler as torch_lrs  # noqa: E402

STEPS = 20
CHANGE_AT = 8          # before this step the lr of each group is halved by hand
LRS = (0.1, 0.05)

SCHEDULES = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 11], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=6, eta_min=0.001)),
    ("CosineAnnealingLR", dict(T_max=10)),
    ("LinearLR", dict(start_factor=0.1, total_iters=12)),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.2, total_iters=4)),
    ("LambdaLR", dict(lr_lambda=lambda e: 1.0 / (1 + e))),
    ("LambdaLR", dict(lr_lambda=[lambda e: 0.9 ** e, lambda e: min(1.0, (e + 1) / 5)])),
    ("OneCycleLR", dict(max_lr=[0.5, 0.2], total_steps=STEPS)),
    ("OneCycleLR", dict(max_lr=0.3, epochs=4, steps_per_epoch=5, anneal_strategy="linear", three_phase=True,
                        pct_start=0.25)),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(SCHEDULES)]


def _grads():
    rng = np.random.default_rng(0)
    return [[rng.standard_normal(3) * (1e-12 if t in (0, 1, 9) else 1.0), rng.standard_normal(2)]
            for t in range(STEPS)]


def _make(lib, opt_name, opt_kwargs):
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(3), rng.standard_normal(2)]
    if lib == "ember":
        params, O = [nn.Parameter(a) for a in init], getattr(optim, opt_name)
    else:
        params, O = [torch.nn.Parameter(torch.tensor(a)) for a in init], getattr(torch.optim, opt_name)
    groups = [{"params": [params[0]], "lr": LRS[0]}, {"params": [params[1]], "lr": LRS[1], "weight_decay": 0.0}]
    return params, O(groups, **opt_kwargs)


def _run(lib, sched_name, sched_kwargs, opt_name="SGD", opt_kwargs=None, metrics=None, steps=STEPS,
         change=True):
    opt_kwargs = opt_kwargs or dict(lr=0.1, momentum=0.9, weight_decay=0.01)
    params, opt = _make(lib, opt_name, opt_kwargs)
    mod = ours_lrs if lib == "ember" else torch_lrs
    sched = getattr(mod, sched_name)(opt, **sched_kwargs)
    rows = [(list(sched.get_last_lr()), None)]
    for t, gs in enumerate(_grads()[:steps]):
        if change and t == CHANGE_AT:
            for g in opt.param_groups:
                g["lr"] *= 0.5
        for p, g in zip(params, gs):
            p.grad = ember.tensor(g) if lib == "ember" else torch.tensor(g)
        opt.step()
        sched.step(metrics[t]) if metrics is not None else sched.step()
        mom = [g.get("momentum", g.get("betas", (None,))[0]) for g in opt.param_groups]
        vals = [p.numpy().copy() if lib == "ember" else p.detach().numpy().copy() for p in params]
        rows.append((list(sched.get_last_lr()) + mom, vals))
        assert [g["lr"] for g in opt.param_groups] == list(sched.get_last_lr())
    return rows


def _compare(a, b, what):
    assert len(a) == len(b)
    for t, ((la, pa), (lb, pb)) in enumerate(zip(a, b)):
        np.testing.assert_allclose(np.array(la, float), np.array(lb, float), rtol=1e-12, atol=0,
                                   err_msg=f"{what}: lrs/momenta after step {t}")
        if pa is not None:
            for x, y in zip(pa, pb):
                np.testing.assert_allclose(x, y, rtol=1e-7, atol=1e-12, err_msg=f"{what}: params after step {t}")


@pytest.mark.parametrize("name,kwargs", SCHEDULES, ids=IDS)
def test_schedule_matches_torch(name, kwargs):
    _compare(_run("ember", name, kwargs), _run("torch", name, kwargs), name)


@pytest.mark.parametrize("name,kwargs", SCHEDULES[:3] + SCHEDULES[-1:], ids=IDS[:3] + IDS[-1:])
def test_schedule_with_adam_matches_torch(name, kwargs):
    """With Adam the schedule drives lr (and OneCycleLR cycles betas[0])."""
    kw = dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.01)
    _compare(_run("ember", name, kwargs, "Adam", kw), _run("torch", name, kwargs, "Adam", kw), name)


PLATEAU = [
    dict(patience=2),
    dict(mode="max", factor=0.5, patience=1, cooldown=2, threshold=0.1, threshold_mode="abs"),
    dict(factor=0.5, patience=0, min_lr=[0.02, 0.001], eps=1e-3),
]


@pytest.mark.parametrize("kwargs", PLATEAU)
def test_reduce_on_plateau_matches_torch(kwargs):
    metrics = [1.0, 0.9, 0.95, 0.95, 0.89995, 0.8, 0.8, 0.8, 0.8, 0.7, 1.2, 0.6, 0.6, 0.6, 0.6, 0.6, 0.59,
               0.7, 0.7, 0.7]
    _compare(_run("ember", "ReduceLROnPlateau", kwargs, metrics=metrics),
             _run("torch", "ReduceLROnPlateau", kwargs, metrics=metrics), "plateau")


@pytest.mark.parametrize("name,kwargs", [s for s in SCHEDULES if s[0] != "LambdaLR"] + [
    ("ReduceLROnPlateau", dict(factor=0.5, patience=1, cooldown=1))],
    ids=[i for i, s in zip(IDS, SCHEDULES) if s[0] != "LambdaLR"] + ["plateau"])
def test_state_dict_resume_is_exact(name, kwargs):
    """Save optimizer + scheduler after 7 steps, rebuild both, load, finish: identical lrs and params."""
    metrics = list(np.linspace(1, 0.5, 5)) + [0.5] * 15
    full = _run("ember", name, kwargs, metrics=metrics if name == "ReduceLROnPlateau" else None, change=False)
    params, opt = _make("ember", "SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01))
    sched = getattr(ours_lrs, name)(opt, **kwargs)
    grads = _grads()
    for t in range(STEPS):
        if t == 7:  # "restart the process": fresh objects, state restored from the dicts
            sd_opt, sd_sched = copy.deepcopy(opt.state_dict()), copy.deepcopy(sched.state_dict())
            params = [nn.Parameter(p.numpy().copy()) for p in params]
            _, opt = _make("ember", "SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01))
            opt.param_groups[0]["params"], opt.param_groups[1]["params"] = [params[0]], [params[1]]
            sched = getattr(ours_lrs, name)(opt, **kwargs)
            opt.load_state_dict(sd_opt)
            sched.load_state_dict(sd_sched)
        for p, g in zip(params, grads[t]):
            p.grad = ember.tensor(g)
        opt.step()
        sched.step(metrics[t]) if name == "ReduceLROnPlateau" else sched.step()
        np.testing.assert_array_equal(sched.get_last_lr(), full[t + 1][0][:2])
        for x, y in zip(params, full[t + 1][1]):
            np.testing.assert_array_equal(x.numpy(), y)


@pytest.mark.parametrize("name,kwargs", [s for s in SCHEDULES if s[0] != "LambdaLR"] + [
    ("ReduceLROnPlateau", dict(patience=1))], ids=[i for i, s in zip(IDS, SCHEDULES) if s[0] != "LambdaLR"] + ["plateau"])
def test_state_dict_survives_json(name, kwargs):
    """Checkpoints store scheduler state as JSON (int keys become str, tuples lists, inf stays)."""
    import json
    _, opt = _make("ember", "SGD", dict(lr=0.1, momentum=0.9))
    sched = getattr(ours_lrs, name)(opt, **kwargs)
    step = (lambda: sched.step(1.0)) if name == "ReduceLROnPlateau" else sched.step
    for _ in range(4):
        step()
    sd = json.loads(json.dumps(sched.state_dict()))
    _, opt2 = _make("ember", "SGD", dict(lr=0.1, momentum=0.9))
    sched2 = getattr(ours_lrs, name)(opt2, **kwargs)
    opt2.load_state_dict(json.loads(json.dumps({"state": {}, "param_groups": [
        {k: v for k, v in g.items() if k != "params"} | {"params": [i]} for i, g in enumerate(opt.param_groups)]})))
    sched2.load_state_dict(sd)
    step2 = (lambda: sched2.step(1.0)) if name == "ReduceLROnPlateau" else sched2.step
    for _ in range(6):
        step()
        step2()
        assert sched2.get_last_lr() == sched.get_last_lr()


COMPOSITES = {
    "warmup_cosine": lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=4),
                                                     m.CosineAnnealingLR(o, T_max=12, eta_min=1e-3)], milestones=[4]),
    "three_phases": lambda m, o: m.SequentialLR(o, [m.ExponentialLR(o, gamma=0.9), m.StepLR(o, 2, 0.5),
                                                    m.LambdaLR(o, lambda e: 1 / (e + 1))], milestones=[3, 9]),
    "chained": lambda m, o: m.ChainedScheduler([m.LinearLR(o, start_factor=0.2, total_iters=5),
                                                m.ExponentialLR(o, gamma=0.95)]),
}


@pytest.mark.parametrize("name", list(COMPOSITES))
def test_composite_schedulers_match_torch(name):
    """SequentialLR (warm-up then cosine) and ChainedScheduler, with the lr halved by hand at step 8."""
    runs = []
    for lib, mod in (("ember", ours_lrs), ("torch", torch_lrs)):
        params, opt = _make(lib, "SGD", dict(lr=0.1, momentum=0.9))
        sched = COMPOSITES[name](mod, opt)
        lrs = [list(sched.get_last_lr())]
        for t, gs in enumerate(_grads()):
            if t == CHANGE_AT:
                for g in opt.param_groups:
                    g["lr"] *= 0.5
            for p, g in zip(params, gs):
                p.grad = ember.tensor(g) if lib == "ember" else torch.tensor(g)
            opt.step()
            sched.step()
            lrs.append(list(sched.get_last_lr()) + [g["lr"] for g in opt.param_groups])
        runs.append((lrs, [p.numpy() if lib == "ember" else p.detach().numpy() for p in params]))
    for t, (a, b) in enumerate(zip(runs[0][0], runs[1][0])):
        np.testing.assert_allclose(a, b, rtol=1e-12, err_msg=f"{name}: step {t}")
    for x, y in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(x, y, rtol=1e-7, atol=1e-12)


def test_composite_state_dict_nests_children_and_checks_arguments():
    _, opt = _make("ember", "SGD", dict(lr=0.1))
    seq = COMPOSITES["warmup_cosine"](ours_lrs, opt)
    for _ in range(6):
        seq.step()
    sd = seq.state_dict()
    assert len(sd["_schedulers"]) == 2 and sd["_schedulers"][1]["T_max"] == 12
    _, opt2 = _make("ember", "SGD", dict(lr=0.1))
    seq2 = COMPOSITES["warmup_cosine"](ours_lrs, opt2)
    opt2.load_state_dict(opt.state_dict())
    seq2.load_state_dict(sd)
    for _ in range(5):
        seq.step()
        seq2.step()
        assert seq.get_last_lr() == seq2.get_last_lr()
    with pytest.raises(ValueError, match="number of schedulers 2 and the number of milestones to be equal to 0"):
        ours_lrs.SequentialLR(opt, [ours_lrs.StepLR(opt, 2), ours_lrs.StepLR(opt, 3)], milestones=[])
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        ours_lrs.ChainedScheduler([ours_lrs.ReduceLROnPlateau(opt)])
    with pytest.raises(ValueError, match="same optimizer"):
        ours_lrs.ChainedScheduler([ours_lrs.StepLR(opt, 2), ours_lrs.StepLR(opt2, 2)])


def test_lambda_state_dict_skips_functions_keeps_callable_objects():
    class Factor:
        def __init__(self):
            self.k = 0.5

        def __call__(self, e):
            return self.k ** e
    _, opt = _make("ember", "SGD", dict(lr=0.1))
    f = Factor()
    sched = ours_lrs.LambdaLR(opt, [lambda e: 1.0, f])
    sd = sched.state_dict()
    assert sd["lr_lambdas"][0] is None and sd["lr_lambdas"][1] == {"k": 0.5}
    sd["lr_lambdas"][1]["k"] = 0.25
    sched.load_state_dict(sd)
    assert f.k == 0.25


@pytest.mark.parametrize("name,kwargs", [("StepLR", dict(step_size=3, gamma=0.5)),
                                         ("MultiStepLR", dict(milestones=[2, 6], gamma=0.5)),
                                         ("CosineAnnealingLR", dict(T_max=8)),
                                         ("LinearLR", dict(total_iters=6)),
                                         ("ExponentialLR", dict(gamma=0.8))])
def test_step_with_epoch_uses_closed_form_like_torch(name, kwargs):
    out = []
    for lib, mod in (("ember", ours_lrs), ("torch", torch_lrs)):
        _, opt = _make(lib, "SGD", dict(lr=0.1))
        sched = getattr(mod, name)(opt, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for e in (3, 7, 5):
                sched.step(e)
                out.append(sched.get_last_lr())
    np.testing.assert_allclose(out[:3], out[3:], rtol=1e-12)


def _opt():
    return _make("ember", "SGD", dict(lr=0.1))[1]


@pytest.mark.parametrize("make,exc,msg", [
    (lambda: ours_lrs.LinearLR(_opt(), start_factor=0), ValueError,
     "Starting multiplicative factor expected to be greater than 0 and less or equal to 1."),
    (lambda: ours_lrs.LinearLR(_opt(), end_factor=1.5), ValueError,
     "Ending multiplicative factor expected to be between 0 and 1."),
    (lambda: ours_lrs.OneCycleLR(_opt(), 0.1), ValueError,
     "You must define either total_steps OR (epochs AND steps_per_epoch)"),
    (lambda: ours_lrs.OneCycleLR(_opt(), 0.1, total_steps=0), ValueError,
     "Expected positive integer total_steps, but got 0"),
    (lambda: ours_lrs.OneCycleLR(_opt(), 0.1, total_steps=5, pct_start=1.5), ValueError,
     "Expected float between 0 and 1 pct_start, but got 1.5"),
    (lambda: ours_lrs.OneCycleLR(_opt(), 0.1, total_steps=5, anneal_strategy="exp"), ValueError,
     "anneal_strategy must be one of 'cos' or 'linear', instead got exp"),
    (lambda: ours_lrs.OneCycleLR(_opt(), [0.1], total_steps=5), ValueError,
     "max_lr must have the same length as optimizer.param_groups. max_lr has 1 values, param_groups has 2."),
    (lambda: ours_lrs.OneCycleLR(optim.Adagrad([nn.Parameter(np.ones(1))]), 0.1, total_steps=5), ValueError,
     "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"),
    (lambda: ours_lrs.ReduceLROnPlateau(_opt(), factor=1.0), ValueError, "Factor should be < 1.0."),
    (lambda: ours_lrs.ReduceLROnPlateau(_opt(), mode="up"), ValueError, "mode up is unknown! (expected 'min' or 'max')"),
    (lambda: ours_lrs.ReduceLROnPlateau(_opt(), min_lr=[0.1]), ValueError, "expected 2 min_lrs, got 1"),
    (lambda: ours_lrs.LambdaLR(_opt(), [lambda e: 1.0]), ValueError, "Expected 2 lr_lambdas, but got 1"),
    (lambda: ours_lrs.StepLR(_opt(), step_size=0), ValueError, "StepLR: step_size must be a positive integer, got 0"),
    (lambda: ours_lrs.StepLR(object(), step_size=2), TypeError, "object is not an Optimizer"),
    (lambda: ours_lrs.ExponentialLR(_opt(), 0.9, last_epoch=3), KeyError, "initial_lr"),
])
def test_bad_arguments(make, exc, msg):
    with pytest.raises(exc) as e:
        make()
    assert msg in str(e.value)


def test_one_cycle_refuses_to_step_past_total():
    sched = ours_lrs.OneCycleLR(_opt(), 0.1, total_steps=3)
    for _ in range(2):
        sched.step()
    sched.step()  # step 3 == total_steps is still allowed, as in torch
    with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total steps is 3"):
        sched.step()
