"""Pooling with PyTorch's full signatures: max_pool2d (dilation, ceil_mode, return_indices,
max_pool2d_with_indices), avg_pool2d (ceil_mode, count_include_pad, divisor_override),
max_unpool2d, and the layers MaxPool2d / AvgPool2d / MaxUnpool2d.

Every case runs under torch and under ember on the same inputs, through both paths (``path``:
the reference ops and the kernels, which must hand what they do not implement to the reference):
forward values, indices (exactly) and the input gradient under a random upstream gradient
(float64 to 1e-10, float32 to 1e-5 relative to the largest magnitude). Bad arguments: ember raises
torch's message, word for word, for a sweep of bad calls. The fused Conv2d → ReLU → MaxPool2d is
skipped for the pool options it does not implement (ceil_mode, dilation, return_indices).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import ember
import ember.nn as nn
from ember import kernels
from ember.nn import functional as F
from ember.ops import pool as ref_pool
from ember.tensor import Tensor

from helpers import gradcheck

torch = pytest.importorskip("torch")
TF = torch.nn.functional
TOL = {np.float64: 1e-10, np.float32: 1e-5}


@pytest.fixture(params=["reference", "fast"])
def path(request):
    with kernels.use(request.param):
        yield request.param


def _close(a, e, tol, what):
    scale = float(np.max(np.abs(e[np.isfinite(e)]), initial=0.0)) or 1.0
    np.testing.assert_allclose(a, e, rtol=tol, atol=tol * scale, err_msg=what)


def _compare(efn, tfn, x, dtype, what, seed=1):
    """Run both on x (a float64 array cast to dtype): outputs (and indices) and the input gradient."""
    x = x.astype(dtype)
    ex, tx = Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
    eo, to = efn(ex), tfn(tx)
    ey, ei = eo if isinstance(eo, tuple) else (eo, None)
    ty, ti = to if isinstance(to, tuple) else (to, None)
    assert ey.shape == tuple(ty.shape), f"{what}: shape {ey.shape} != torch {tuple(ty.shape)}"
    assert ey.dtype == ty.detach().numpy().dtype, what
    _close(ey.numpy(), ty.detach().numpy(), TOL[dtype], f"{what}: forward")
    if ti is not None:
        assert ei.dtype == np.int64
        np.testing.assert_array_equal(ei.numpy(), ti.numpy(), err_msg=f"{what}: indices")
    u = np.random.default_rng(seed).standard_normal(ey.shape).astype(dtype)
    ey.backward(u)
    ty.backward(torch.tensor(u))
    _close(ex.grad.numpy(), tx.grad.numpy(), TOL[dtype], f"{what}: grad")


# ---- max_pool2d: a sweep of every option against torch ----------------------------------------
def _window_outside_input(case):
    H, W, K, S, P, D, ceil = case
    return any(not any(0 <= o * s - p + j * d < n for j in range(k))
               for n, k, s, p, d in zip((H, W), K, S, P, D)
               for o in range(ref_pool.pool_out_size(n, k, s, p, d, ceil)))


def _max_cases():
    """(H, W, kernel, stride, padding, dilation, ceil_mode) that torch accepts: a seeded sweep."""
    rng, cases = np.random.default_rng(0), []
    while len(cases) < 60:
        K = tuple(int(v) for v in rng.integers(1, 5, 2))
        S = tuple(int(v) for v in rng.integers(1, 4, 2))
        D = tuple(int(v) for v in rng.integers(1, 3, 2))
        P = tuple(int(rng.integers(0, k // 2 + 1)) for k in K)
        H, W = (int(v) for v in rng.integers(1, 10, 2))
        c = (H, W, K, S, P, D, bool(rng.integers(0, 2)))
        try:
            TF.max_pool2d(torch.zeros(1, 1, H, W), K, S, P, D, c[6])
        except RuntimeError:
            continue
        if not _window_outside_input(c):
            cases.append(c)
    # ceil_mode's corner: the extra window would start in the right padding -> dropped (torch)
    # a window with no cell inside x (dilation skips over it): y = −inf, torch's index ih0*W + iw0
    # (here 2 and 3, inside the 4×1 plane: torch 2.13's backward writes past its buffer for an
    # index beyond the plane, so only this safe case runs against it)
    cases += [(4, 1, (2, 2), (3, 3), (1, 1), (2, 2), True)]
    cases += [(5, 5, (2, 2), (2, 2), (0, 0), (1, 1), True), (5, 5, (3, 3), (2, 2), (1, 1), (1, 1), True),
              (6, 6, (3, 3), (2, 2), (1, 1), (1, 1), True), (7, 6, (2, 3), (3, 2), (1, 1), (2, 1), True),
              (28, 28, (2, 2), (2, 2), (0, 0), (1, 1), True)]            # ceil_mode adding no window
    return cases


MAX_CASES = _max_cases()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", MAX_CASES, ids=lambda c: "H%dW%d_k%s_s%s_p%s_d%s_%s" % (
    c[0], c[1], *("%d%d" % v for v in c[2:6]), "ceil" if c[6] else "floor"))
def test_max_pool2d_every_option_matches_torch(case, dtype, path):
    H, W, K, S, P, D, ceil = case
    x = np.random.default_rng(H * 100 + W).standard_normal((2, 3, H, W))
    kw = dict(kernel_size=K, stride=S, padding=P, dilation=D, ceil_mode=ceil)
    _compare(lambda a: F.max_pool2d(a, **kw, return_indices=True),
             lambda a: TF.max_pool2d(a, **kw, return_indices=True), x, dtype, f"{case}")
    _compare(lambda a: F.max_pool2d(a, **kw), lambda a: TF.max_pool2d(a, **kw), x, dtype, f"{case} (values)")


def test_max_pool2d_ties_and_minus_inf_windows_as_torch(path):
    """Ties: the first maximum (row-major) takes the gradient and is the index. A window of −inf
    inputs (the padding is −inf too) points at its first cell inside the input, never a pad."""
    rng = np.random.default_rng(3)
    x = np.round(rng.uniform(0, 2, (2, 2, 7, 8)))                   # small ints: many ties
    x[0, 0] = -np.inf
    x[1, 1, :3, :3] = -np.inf
    for kw in (dict(kernel_size=2, stride=1, padding=1), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
               dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1), dilation=(2, 3), ceil_mode=True)):
        ex, tx = Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
        (ey, ei), (ty, ti) = F.max_pool2d(ex, **kw, return_indices=True), TF.max_pool2d(tx, **kw, return_indices=True)
        np.testing.assert_array_equal(ey.numpy(), ty.detach().numpy())
        np.testing.assert_array_equal(ei.numpy(), ti.numpy(), err_msg=str(kw))
        u = rng.integers(-8, 9, ey.shape).astype(np.float64)       # integer sums: exact in any order
        ey.backward(u)
        ty.backward(torch.tensor(u))
        np.testing.assert_array_equal(ex.grad.numpy(), tx.grad.numpy(), err_msg=str(kw))


def test_max_pool2d_with_indices_unbatched_and_the_signature(path):
    x = np.random.default_rng(5).standard_normal((3, 7, 6))          # (C, H, W): no batch
    _compare(lambda a: F.max_pool2d_with_indices(a, 3, 2, 1, 1, True),
             lambda a: TF.max_pool2d_with_indices(a, 3, 2, 1, 1, True), x, np.float64, "with_indices unbatched")
    # F.max_pool2d's positional order is torch's: (..., dilation, ceil_mode, return_indices)
    y, i = F.max_pool2d(Tensor(x), 2, 2, 0, 1, True, True)
    ty, ti = TF.max_pool2d(torch.tensor(x), 2, 2, 0, 1, True, True)
    np.testing.assert_array_equal(y.numpy(), ty.numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    # return_indices=False: one Tensor, as torch
    assert isinstance(F.max_pool2d(Tensor(x), 2), Tensor)


def test_max_pool2d_gradcheck_with_every_option(path):
    x = np.random.default_rng(2).standard_normal((1, 2, 6, 5))
    gradcheck(lambda a: F.max_pool2d(a, (3, 2), (2, 1), (1, 1), (1, 2), ceil_mode=True), [x],
              name=f"max_pool2d dilated ceil [{path}]")
    gradcheck(lambda a: F.avg_pool2d(a, 3, 2, 1, ceil_mode=True, count_include_pad=False), [x],
              name=f"avg_pool2d ceil count_include_pad=False [{path}]")


def test_fast_kernels_hand_unimplemented_options_to_the_reference():
    """The kernels run dilation 1, no indices and a ceil_mode adding no window; anything else
    must be the reference op's numbers (not a kernel's floor-mode ones)."""
    x = np.random.default_rng(4).standard_normal((9, 2, 7, 7))      # batch ≥ 8: numba's CHWN path
    for kw in (dict(kernel_size=2, ceil_mode=True), dict(kernel_size=2, stride=1, dilation=2),
               dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)):
        for fn in (F.max_pool2d, F.avg_pool2d):
            if fn is F.avg_pool2d and "dilation" in kw:
                continue
            outs = {}
            for mode in ("reference", "fast"):
                with kernels.use(mode):
                    outs[mode] = fn(Tensor(x), **kw).numpy()
            tfn = TF.max_pool2d if fn is F.max_pool2d else TF.avg_pool2d
            np.testing.assert_allclose(outs["fast"], tfn(torch.tensor(x), **kw).numpy(), rtol=1e-12)
            np.testing.assert_allclose(outs["fast"], outs["reference"], rtol=1e-10, atol=1e-15)
    with kernels.use("fast"):                                        # direct kernel calls too
        for k in set(kernels.kernels().values()):
            if issubclass(k, ref_pool.MaxPool2d):
                y = k.apply(Tensor(x), kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), ceil_mode=True)
                assert y.shape == (9, 2, 4, 4), k


# ---- avg_pool2d ---------------------------------------------------------------------------------
AVG_CASES = [(H, W, K, S, P, ceil, cip, div)
             for (H, W, K, S, P) in [(5, 5, 2, 2, 0), (7, 6, 3, 2, 1), (6, 7, (3, 2), (2, 3), (1, 1)),
                                     (9, 4, (4, 3), (3, 2), (2, 0)), (4, 4, 2, 1, 1), (1, 1, 1, 1, 0)]
             for ceil in (False, True) for cip in (True, False) for div in (None, 3)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", AVG_CASES, ids=str)
def test_avg_pool2d_every_option_matches_torch(case, dtype, path):
    H, W, K, S, P, ceil, cip, div = case
    x = np.random.default_rng(H * 10 + W).standard_normal((2, 3, H, W))
    kw = dict(kernel_size=K, stride=S, padding=P, ceil_mode=ceil, count_include_pad=cip, divisor_override=div)
    _compare(lambda a: F.avg_pool2d(a, **kw), lambda a: TF.avg_pool2d(a, **kw), x, dtype, str(case))


# ---- max_unpool2d -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,k,s,p,output_size", [
    ((2, 3, 6, 6), 2, None, 0, None), ((2, 3, 7, 7), 2, None, 0, (7, 7)), ((2, 3, 7, 7), 2, None, 0, [2, 3, 7, 7]),
    ((1, 2, 9, 7), 3, 2, 1, None), ((1, 2, 9, 8), 3, 2, 1, (9, 8)), ((2, 5, 6), (2, 3), (2, 2), (1, 0), (5, 6))])
def test_max_unpool2d_inverts_max_pool2d_as_torch(shape, k, s, p, output_size, path):
    x = np.random.default_rng(6).standard_normal(shape)
    _, ti = TF.max_pool2d(torch.tensor(x), k, s, p, return_indices=True)
    pooled = TF.max_pool2d(torch.tensor(x), k, s, p).numpy()

    def eun(a):
        return F.max_unpool2d(a, Tensor(ti.numpy()), k, s, p, output_size)

    def tun(a):
        return TF.max_unpool2d(a, ti, k, s, p, output_size)
    _compare(eun, tun, pooled, np.float64, "max_unpool2d")
    _compare(eun, tun, pooled, np.float32, "max_unpool2d f32")
    pool, unpool = nn.MaxPool2d(k, s, p, return_indices=True), nn.MaxUnpool2d(k, s, p)  # the layers
    y, i = pool(Tensor(x))
    out = unpool(y, i, output_size=output_size)
    np.testing.assert_array_equal(out.numpy(), TF.max_unpool2d(torch.tensor(pooled), ti, k, s, p, output_size).numpy())


# ---- errors: torch's messages, word for word -----------------------------------------------------
BAD_CALLS = [
    ("max_pool2d", (1, 1, 3, 3), dict(kernel_size=2, padding=2)),
    ("max_pool2d", (1, 1, 9, 9), dict(kernel_size=2, padding=2, dilation=3)),       # ≤ half of K, not of D(K−1)+1
    ("max_pool2d", (1, 1, 9, 9), dict(kernel_size=2, padding=3, dilation=3)),
    ("max_pool2d", (1, 1, 9, 9), dict(kernel_size=(3, 2), padding=(2, 2), dilation=(1, 3))),
    ("max_pool2d", (1, 1, 9, 9), dict(kernel_size=(3, 2), padding=(1, 2), dilation=(1, 3))),
    ("max_pool2d", (1, 1, 3, 3), dict(kernel_size=0)),
    ("max_pool2d", (1, 1, 3, 3), dict(kernel_size=0, stride=1)),
    ("max_pool2d", (1, 1, 3, 3), dict(kernel_size=(2, 0), stride=1)),
    ("max_pool2d", (1, 1, 3, 3), dict(kernel_size=-1, stride=1)),
    ("max_pool2d", (1, 1, 3, 3), dict(kernel_size=2, stride=(1, 0))),
    ("max_pool2d", (1, 1, 3, 3), dict(kernel_size=2, stride=-1)),
    ("max_pool2d", (1, 1, 3, 3), dict(kernel_size=2, dilation=0)),
    ("max_pool2d", (1, 1, 3, 3), dict(kernel_size=2, padding=-1)),
    ("max_pool2d", (1, 1, 3, 3), dict(kernel_size=5)),
    ("max_pool2d", (2, 1, 1, 4), dict(kernel_size=2)),
    ("max_pool2d", (1, 1, 3, 3), dict(kernel_size=2, dilation=3)),
    ("max_pool2d", (1, 1, 3, 3), dict(kernel_size=(2, 3, 4))),
    ("max_pool2d", (1, 1, 3, 3), dict(kernel_size=2, padding=(1, 2, 3))),
    ("max_pool2d", (1, 1, 3, 3), dict(kernel_size=2, stride=(1, 2, 3))),
    ("max_pool2d", (1, 1, 3, 3), dict(kernel_size=2, dilation=(1, 2, 3))),
    ("max_pool2d", (3, 3), dict(kernel_size=2)),
    ("max_pool2d", (1, 1, 1, 3, 3), dict(kernel_size=2)),
    ("max_pool2d", (1, 0, 4, 4), dict(kernel_size=2)),
    ("avg_pool2d", (1, 1, 9, 9), dict(kernel_size=2, padding=2)),
    ("avg_pool2d", (1, 1, 9, 9), dict(kernel_size=0)),
    ("avg_pool2d", (1, 1, 9, 9), dict(kernel_size=2, divisor_override=0)),
    ("avg_pool2d", (1, 1, 1, 4), dict(kernel_size=2)),
    ("avg_pool2d", (1, 1, 3, 3), dict(kernel_size=(2, 3, 4))),
    ("avg_pool2d", (1, 1, 3, 3), dict(kernel_size=2, stride=(1, 2, 3))),
    ("avg_pool2d", (1, 1, 3, 3), dict(kernel_size=2, padding=(1, 2, 3))),
]


@pytest.mark.parametrize("name,shape,kw", BAD_CALLS, ids=lambda v: str(v))
def test_bad_arguments_raise_torchs_message(name, shape, kw):
    with pytest.raises((RuntimeError, ValueError, IndexError)) as te:
        getattr(TF, name)(torch.zeros(shape), **kw)
    with pytest.raises((ValueError, TypeError)) as ee:                # ValueError/ShapeError, ember's kinds
        getattr(F, name)(ember.zeros(*shape), **kw)
    if type(te.value) is IndexError:                                 # torch's 2-D avg_pool2d: an IndexError
        assert str(ee.value) == f"{name}: non-empty 3D or 4D (batch mode) tensor expected for input"
    else:                                                            # torch's words, after "<name>: "
        assert str(ee.value) == (str(te.value) if str(te.value).startswith(name) else f"{name}: {te.value}")


def test_max_unpool2d_bad_arguments_raise_torchs_message():
    y, i = TF.max_pool2d(torch.arange(16.0).reshape(1, 1, 4, 4), 2, return_indices=True)
    ey, ei = Tensor(y.numpy()), Tensor(i.numpy())
    calls = [lambda f, a, b: f(a, b, 2, output_size=(3, 3)), lambda f, a, b: f(a, b, 2, output_size=(6, 6)),
             lambda f, a, b: f(a, b, 2, output_size=(1, 4, 4)), lambda f, a, b: f(a, b + 100, 2),
             lambda f, a, b: f(a, b[..., :1], 2), lambda f, a, b: f(a, b.float() if hasattr(b, "float") else b, 2)]
    for call in calls:
        with pytest.raises((RuntimeError, ValueError)) as te:
            call(TF.max_unpool2d, y, i)
        with pytest.raises((ValueError, IndexError, TypeError)) as ee:
            call(F.max_unpool2d, ey, ei)
        if "should be type int64" in str(te.value):                  # torch names its dtype Float
            assert str(ee.value) == "max_unpool2d: elements in indices should be type int64 but got: float32"
        else:                                                        # which bad index torch names varies
            num = re.compile(r"index: \d+ ")
            assert num.sub("index: I ", str(ee.value)) == num.sub("index: I ", f"max_unpool2d: {te.value}")


# ---- the layers -----------------------------------------------------------------------------------
def test_layers_have_torchs_signature_attributes_and_repr():
    pairs = [(nn.MaxPool2d(2), torch.nn.MaxPool2d(2)),
             (nn.MaxPool2d(3, 2, 1, 2, True, True), torch.nn.MaxPool2d(3, 2, 1, 2, True, True)),
             (nn.AvgPool2d(3, 2, 1, True, False, 4), torch.nn.AvgPool2d(3, 2, 1, True, False, 4)),
             (nn.AvgPool2d(2), torch.nn.AvgPool2d(2)),
             (nn.MaxUnpool2d(2), torch.nn.MaxUnpool2d(2)), (nn.MaxUnpool2d((2, 3), 1, 1), torch.nn.MaxUnpool2d((2, 3), 1, 1))]
    for e, t in pairs:
        assert repr(e) == repr(t)
        for a in ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode",
                  "count_include_pad", "divisor_override"):
            assert getattr(e, a, None) == getattr(t, a, None), (repr(t), a)
    x = np.random.default_rng(8).standard_normal((2, 3, 7, 7))
    for e, t in pairs[:4]:
        out, tout = e(Tensor(x)), t(torch.tensor(x))
        out, tout = (out, tout) if isinstance(tout, tuple) else ((out,), (tout,))
        for a, b in zip(out, tout):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


# ---- the fused Conv2d → ReLU → MaxPool2d: skipped for the options it does not implement --------
@pytest.mark.parametrize("pool_args", [dict(kernel_size=2, ceil_mode=True), dict(kernel_size=2, dilation=2),
                                       dict(kernel_size=(2, 3), ceil_mode=True), dict(kernel_size=2)])
def test_fused_eligible_sequential_with_pool_options_gives_torchs_numbers(pool_args, path):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 2, 10, 11)).astype(np.float32)      # conv 3×3 -> 8×9: odd width
    w, b = rng.standard_normal((4, 2, 3, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.MaxPool2d(**pool_args), nn.Flatten())
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(**pool_args),
                                 torch.nn.Flatten())
    model[0].weight.data, model[0].bias.data = Tensor(w.copy()), Tensor(b.copy())
    with torch.no_grad():
        tmodel[0].weight.copy_(torch.tensor(w))
        tmodel[0].bias.copy_(torch.tensor(b))
    ex, tx = Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
    out, tout = model(ex), tmodel(tx)
    assert out.shape == tuple(tout.shape)
    _close(out.numpy(), tout.detach().numpy(), 1e-5, f"{pool_args}: forward")
    u = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(u)
    tout.backward(torch.tensor(u))
    _close(ex.grad.numpy(), tx.grad.numpy(), 1e-5, f"{pool_args}: grad x")
    _close(model[0].weight.grad.numpy(), tmodel[0].weight.grad.numpy(), 1e-5, f"{pool_args}: grad w")


def test_fusion_is_skipped_for_pool_options_it_does_not_implement():
    from ember.kernels import fusion, numba_conv
    conv, relu = nn.Conv2d(2, 4, 3), nn.ReLU()
    x = ember.randn(2, 2, 9, 9)
    assert fusion._fusable(conv, relu, nn.MaxPool2d(2), x) == numba_conv.AVAILABLE
    for pool in (nn.MaxPool2d(2, ceil_mode=True), nn.MaxPool2d(2, dilation=2), nn.MaxPool2d(2, return_indices=True),
                 nn.MaxPool2d(2, dilation=(1, 2))):
        assert not fusion._fusable(conv, relu, pool, x), pool
    with kernels.use("fast"):                                        # and a return_indices pool still returns a pair
        y, i = nn.Sequential(conv, relu, nn.MaxPool2d(2, return_indices=True))(x)
        assert y.shape == i.shape == (2, 4, 3, 3) and i.dtype == np.int64


# ---- 1-D pools and adaptive max pooling ------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape,k,s,p,d,ceil", [((2, 3, 9), 3, 2, 1, 1, False), ((2, 3, 9), 2, None, 0, 1, True),
                                                ((3, 10), 3, 2, 1, 2, True), ((1, 2, 7), (2,), (3,), (1,), (2,), True)])
def test_pool1d_matches_torch(shape, k, s, p, d, ceil, dtype, path):
    x = np.random.default_rng(11).standard_normal(shape)
    _compare(lambda a: F.max_pool1d(a, k, s, p, d, ceil, True), lambda a: TF.max_pool1d(a, k, s, p, d, ceil, True),
             x, dtype, "max_pool1d")
    _compare(lambda a: F.max_pool1d_with_indices(a, k, s, p, d, ceil),
             lambda a: TF.max_pool1d_with_indices(a, k, s, p, d, ceil), x, dtype, "max_pool1d_with_indices")
    for cip in (True, False):
        _compare(lambda a: F.avg_pool1d(a, k, s, p, ceil, cip), lambda a: TF.avg_pool1d(a, k, s, p, ceil, cip),
                 x, dtype, "avg_pool1d")
    for e, t in ((nn.MaxPool1d(k, s, p, d, False, ceil), torch.nn.MaxPool1d(k, s, p, d, False, ceil)),
                 (nn.AvgPool1d(k, s, p, ceil), torch.nn.AvgPool1d(k, s, p, ceil))):
        assert repr(e) == repr(t)
        np.testing.assert_allclose(e(Tensor(x)).numpy(), t(torch.tensor(x)).numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape,size", [((2, 3, 7, 6), (3, 4)), ((2, 3, 5, 5), 2), ((3, 8, 5), (None, 2)),
                                        ((1, 2, 4, 4), (4, 4)), ((1, 2, 3, 3), 5), ((1, 1, 6, 9), (1, 1))])
def test_adaptive_max_pool2d_matches_torch(shape, size, dtype):
    x = np.random.default_rng(12).standard_normal(shape)
    x[..., 0, :2] = x[..., 0, 2:3]                                   # a few ties
    _compare(lambda a: F.adaptive_max_pool2d(a, size, True), lambda a: TF.adaptive_max_pool2d(a, size, True),
             x, dtype, "adaptive_max_pool2d")
    _compare(lambda a: F.adaptive_max_pool2d_with_indices(a, size),
             lambda a: TF.adaptive_max_pool2d_with_indices(a, size), x, dtype, "with_indices")
    _compare(lambda a: F.adaptive_avg_pool2d(a, size), lambda a: TF.adaptive_avg_pool2d(a, size), x, dtype, "avg")
    e, t = nn.AdaptiveMaxPool2d(size, True), torch.nn.AdaptiveMaxPool2d(size, True)
    assert repr(e) == repr(t)
    (y, i), (ty, ti) = e(Tensor(x)), t(torch.tensor(x))
    np.testing.assert_array_equal(i.numpy(), ti.numpy())


BAD_1D_ADAPTIVE = [
    ("max_pool1d", (1, 1, 5), dict(kernel_size=0)), ("max_pool1d", (1, 1, 5), dict(kernel_size=2, stride=0)),
    ("max_pool1d", (1, 1, 5), dict(kernel_size=2, padding=2)), ("max_pool1d", (1, 1, 5), dict(kernel_size=2, padding=-1)),
    ("max_pool1d", (1, 1, 5), dict(kernel_size=2, dilation=0)), ("max_pool1d", (1, 1, 5), dict(kernel_size=6)),
    ("max_pool1d", (1, 1, 5), dict(kernel_size=(2, 2))), ("max_pool1d", (1, 1, 5), dict(kernel_size=2, stride=(1, 1))),
    ("max_pool1d", (1, 1, 5), dict(kernel_size=3, dilation=3)), ("max_pool1d", (5,), dict(kernel_size=2)),
    ("max_pool1d", (1, 0, 5), dict(kernel_size=2)),
    ("avg_pool1d", (1, 1, 5), dict(kernel_size=0)), ("avg_pool1d", (1, 1, 5), dict(kernel_size=2, padding=2)),
    ("avg_pool1d", (1, 1, 5), dict(kernel_size=6)), ("avg_pool1d", (1, 1, 5), dict(kernel_size=(2, 2))),
    ("avg_pool1d", (5,), dict(kernel_size=2)),
    ("adaptive_max_pool2d", (5, 5), dict(output_size=2)), ("adaptive_avg_pool2d", (5, 5), dict(output_size=2)),
    ("adaptive_max_pool2d", (1, 2, 0, 5), dict(output_size=2)), ("adaptive_avg_pool2d", (1, 2, 0, 5), dict(output_size=2)),
    ("adaptive_avg_pool2d", (1, 2, 5, 5), dict(output_size=-1)), ("adaptive_avg_pool2d", (1, 2, 5, 5), dict(output_size=(2, 3, 4))),
]


@pytest.mark.parametrize("name,shape,kw", BAD_1D_ADAPTIVE, ids=str)
def test_1d_and_adaptive_bad_arguments_raise_torchs_message(name, shape, kw):
    with pytest.raises(RuntimeError) as te:
        getattr(TF, name)(torch.zeros(shape), **kw)
    with pytest.raises(ValueError) as ee:
        getattr(F, name)(ember.zeros(*shape), **kw)
    t = str(te.value)
    assert str(ee.value) == (t if t.startswith(name) else f"{name}: {t}")


def test_feature_maps_takes_the_output_of_a_pool_returning_indices():
    from ember.viz.plots import feature_maps
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, return_indices=True))
    maps = feature_maps(model, ember.randn(1, 1, 8, 8))
    assert [(n, k, m.shape) for n, k, m in maps] == [("0", "Conv2d", (2, 6, 6)), ("1", "MaxPool2d", (2, 3, 3))]


@pytest.mark.parametrize("mode", ["reference", "fast"])
def test_every_pool_takes_an_empty_batch_on_both_paths(mode):
    """A batch of 0 gives torch's (0, C, OH, OW) output and an empty gradient on both paths (the
    reference ops once reshaped with -1, which NumPy cannot infer for a 0-size array)."""
    torch = pytest.importorskip("torch")
    x = np.zeros((0, 2, 6, 6), np.float32)
    cases = [(lambda m, a: m.max_pool2d(a, 2), {}), (lambda m, a: m.max_pool2d(a, 3, 2, 1, 2, True), {}),
             (lambda m, a: m.max_pool2d(a, 2, return_indices=True)[0], {}),
             (lambda m, a: m.avg_pool2d(a, 3, 2, 1, True, False), {}),
             (lambda m, a: m.avg_pool2d(a, 2, divisor_override=3), {}),
             (lambda m, a: m.adaptive_max_pool2d(a, (4, 3)), {}), (lambda m, a: m.adaptive_avg_pool2d(a, 4), {})]
    with kernels.use(mode):
        for f, _ in cases:
            xe, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
            ye, yt = f(F, xe), f(torch.nn.functional, xt)
            assert ye.shape == tuple(yt.shape)
            ye.sum().backward()
            assert xe.grad.shape == x.shape
        y, idx = F.max_pool2d(Tensor(x), 2, return_indices=True)
        assert F.max_unpool2d(y, idx, 2).shape == (0, 2, 6, 6)
