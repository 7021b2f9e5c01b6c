"""Rprop, ASGD and LBFGS against torch.optim in float64: the parameters after every step (ASGD
also its average ax; LBFGS the losses, function evaluations and iterations of several step(closure)
calls with two parameters and a history shorter than the run), and torch's errors."""
import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name,kwargs", [
    ("Rprop", {}), ("Rprop", {"lr": 0.1, "etas": (0.3, 1.5), "step_sizes": (1e-3, 0.2), "maximize": True}),
    ("ASGD", {}), ("ASGD", {"lr": 0.05, "lambd": 0.01, "t0": 3, "weight_decay": 0.1})])
def test_rprop_and_asgd_match_torch(name, kwargs):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4))
    tw, ew = torch.nn.Parameter(torch.tensor(w0)), ember.nn.Parameter(ember.tensor(w0))
    topt, eopt = getattr(torch.optim, name)([tw], **kwargs), getattr(ember.optim, name)([ew], **kwargs)
    for step in range(12):
        target = rng.standard_normal((3, 4))
        for w, opt, lib in ((tw, topt, torch), (ew, eopt, ember)):
            opt.zero_grad()
            ((w - lib.tensor(target)) ** 2).sum().backward()
            opt.step()
        np.testing.assert_allclose(ew.detach().numpy(), tw.detach().numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=f"{name} step {step}")
    if name == "ASGD":
        np.testing.assert_allclose(eopt.state[ew]["ax"], topt.state[tw]["ax"].numpy(), rtol=1e-10)


@pytest.mark.parametrize("kwargs", [{}, {"lr": 0.5, "max_iter": 5, "history_size": 3}, {"max_iter": 50}])
def test_lbfgs_matches_torch(kwargs):
    rng = np.random.default_rng(1)
    A, b = rng.standard_normal((6, 4)), rng.standard_normal(6)
    runs = []
    for lib in (torch, ember):
        w, v = lib.nn.Parameter(lib.tensor(np.zeros(4))), lib.nn.Parameter(lib.tensor(np.ones(2)))
        opt = lib.optim.LBFGS([w, v], **kwargs)
        At, bt = lib.tensor(A), lib.tensor(b)

        def closure():
            opt.zero_grad()
            loss = ((At @ w - bt) ** 2).sum() + (v ** 4).sum() + (w.sin() * v.sum()).sum()
            loss.backward()
            return loss
        losses = [float(opt.step(closure).detach()) for _ in range(4)]
        runs.append((losses, w.detach().numpy().copy(), v.detach().numpy().copy(), opt.state[w]["func_evals"],
                     opt.state[w]["n_iter"]))
    (el, ew, ev, *ecounts), (tl, tw, tv, *tcounts) = runs[1], runs[0]
    np.testing.assert_allclose(el, tl, rtol=1e-10)
    np.testing.assert_allclose(ew, tw, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ev, tv, rtol=1e-9, atol=1e-12)
    assert ecounts == tcounts


def test_errors_are_torch_s():
    p = lambda lib: [lib.nn.Parameter(lib.zeros(2))]  # noqa: E731
    for call in (lambda L: L.optim.Rprop(p(L), etas=(1.5, 1.2)), lambda L: L.optim.ASGD(p(L), lr=-1.0),
                 lambda L: L.optim.LBFGS([{"params": p(L)}, {"params": p(L)}])):
        with pytest.raises(ValueError) as theirs:
            call(torch)
        with pytest.raises(ValueError) as ours:
            call(ember)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(NotImplementedError, match="strong_wolfe"):
        ember.optim.LBFGS(p(ember), line_search_fn="strong_wolfe").step(lambda: ember.zeros(()))
