"""Losses (issue 4, item 3): torch parity of the forward and of every input gradient under a random
upstream gradient (float64, reductions 'none'/'mean'/'sum', plus float32), float64 full-Jacobian
central differences, NumPy references for the hinge and logistic losses of deck 002 (no torch
twins; stable for |f| = 1000), modules, and torch-like errors naming the bad argument."""
import numpy as np
import pytest

import ember
from ember import nn
from ember.nn import functional as F
from ember.ops.loss import HingeLoss, LogisticLoss
from ember.tensor import Tensor

from helpers import gradcheck, torch_parity

torch = pytest.importorskip("torch")
TF = torch.nn.functional

N, C = 6, 5
T_PLAIN = np.array([0, 4, 2, 2, 1, 3])
T_IGN = np.array([0, -100, 2, 4, -100, 3])       # two samples ignored (default ignore_index)
T_IGN1 = np.array([1, 0, 1, 4, 2, 3])            # ignore_index=1 drops two samples
W = np.array([0.5, 2.0, 1.0, 3.0, 0.25])


def _tw(w, x):
    return None if w is None else torch.tensor(w, dtype=x.dtype)


def _ce(t, w=None, **kw):
    return (lambda x: F.cross_entropy(x, t, weight=None if w is None else ember.tensor(w), **kw),
            lambda x: TF.cross_entropy(x, torch.tensor(t), weight=_tw(w, x), **kw))


def _nll(t, w=None, **kw):
    return (lambda x: F.nll_loss(x, t, weight=w, **kw),
            lambda x: TF.nll_loss(x, torch.tensor(t), weight=_tw(w, x), **kw))


def _mm(t, w=None, **kw):
    return (lambda x: F.multi_margin_loss(x, t, weight=w, **kw),
            lambda x: TF.multi_margin_loss(x, torch.tensor(t), weight=_tw(w, x), **kw))


def _reg(ours, theirs, **kw):  # regression losses: input and target both differentiable
    return (lambda x, y: ours(x, y, **kw), lambda x, y: theirs(x, y, **kw))


def _away(r, shape, gap=0.05):
    """Normal entries with |d| ≥ gap away from the kinks at d = 0 and |d| = β."""
    x = r.standard_normal(shape)
    return np.where(np.abs(x) < gap, gap * 2, x)


CLASS_CASES = {  # name -> (ember fn, torch fn builder given reduction)
    "ce": lambda red: _ce(T_PLAIN, reduction=red),
    "ce_weight": lambda red: _ce(T_PLAIN, W, reduction=red),
    "ce_ignore_weight": lambda red: _ce(T_IGN, W, reduction=red),
    "ce_smooth": lambda red: _ce(T_PLAIN, label_smoothing=0.2, reduction=red),
    "ce_smooth_weight_ignore1": lambda red: _ce(T_IGN1, W, ignore_index=1, label_smoothing=0.3, reduction=red),
    "ce_smooth_full": lambda red: _ce(T_IGN, W, label_smoothing=1.0, reduction=red),
    "nll": lambda red: _nll(T_PLAIN, reduction=red),
    "nll_weight_ignore": lambda red: _nll(T_IGN, W, reduction=red),
    "nll_ignore1": lambda red: _nll(T_IGN1, ignore_index=1, reduction=red),
    "multi_margin": lambda red: _mm(T_PLAIN, reduction=red),
    "multi_margin_p2_w": lambda red: _mm(T_PLAIN, W, p=2, margin=0.7, reduction=red),
    "multi_margin_w": lambda red: _mm(T_PLAIN, W, margin=2.0, reduction=red),
}
REG_CASES = {
    "l1": lambda red: _reg(F.l1_loss, TF.l1_loss, reduction=red),
    "smooth_l1": lambda red: _reg(F.smooth_l1_loss, TF.smooth_l1_loss, reduction=red),
    "smooth_l1_b0.5": lambda red: _reg(F.smooth_l1_loss, TF.smooth_l1_loss, reduction=red, beta=0.5),
    "smooth_l1_b0": lambda red: _reg(F.smooth_l1_loss, TF.smooth_l1_loss, reduction=red, beta=0.0),
    "huber": lambda red: _reg(F.huber_loss, TF.huber_loss, reduction=red),
    "huber_d0.3": lambda red: _reg(F.huber_loss, TF.huber_loss, reduction=red, delta=0.3),
    "mse": lambda red: _reg(F.mse_loss, TF.mse_loss, reduction=red),
}
REDS = ["none", "mean", "sum"]


def _class_input(name, r):
    x = r.standard_normal((N, C)) * 2
    return TF.log_softmax(torch.tensor(x), 1).numpy() if name.startswith("nll") else x


def _reg_inputs(r):
    x = r.standard_normal((3, 4)) * 1.5
    d = _away(r, (3, 4))
    d = np.where(np.abs(np.abs(d) - 0.5) < 0.05, d * 1.3, d)  # away from |d| = β = 0.5
    d = np.where(np.abs(np.abs(d) - 0.3) < 0.05, d * 1.5, d)  # and from |d| = δ = 0.3
    d = np.where(np.abs(np.abs(d) - 1.0) < 0.05, d * 1.2, d)  # and from 1.0
    return [x, x - d]


@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("name", list(CLASS_CASES))
def test_class_losses_match_torch(name, red):
    fn, tfn = CLASS_CASES[name](red)
    x = _class_input(name, np.random.default_rng(len(name)))
    torch_parity(fn, tfn, [x], name=f"{name}/{red}", rtol=1e-10)
    torch_parity(fn, tfn, [x.astype(np.float32)], name=f"{name}/{red}/f32", rtol=1e-5)


@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("name", list(REG_CASES))
def test_regression_losses_match_torch(name, red):
    fn, tfn = REG_CASES[name](red)
    arrays = _reg_inputs(np.random.default_rng(len(name)))
    torch_parity(fn, tfn, arrays, name=f"{name}/{red}", rtol=1e-10)
    torch_parity(fn, tfn, [a.astype(np.float32) for a in arrays], name=f"{name}/{red}/f32", rtol=1e-5)


@pytest.mark.parametrize("red", ["none", "mean"])
@pytest.mark.parametrize("name", list(CLASS_CASES) + list(REG_CASES))
def test_gradcheck_float64(name, red):
    if name in CLASS_CASES:
        fn, _ = CLASS_CASES[name](red)
        arrays = [_class_input(name, np.random.default_rng(len(name)))]
    else:
        fn, _ = REG_CASES[name](red)
        arrays = _reg_inputs(np.random.default_rng(len(name)))
    gradcheck(fn, arrays, name=f"{name}/{red}")


SOFT = [dict(), dict(weight=W), dict(label_smoothing=0.25), dict(weight=W, label_smoothing=0.4)]


@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("kw", SOFT, ids=["plain", "weight", "smooth", "weight_smooth"])
def test_cross_entropy_probability_targets(kw, red):
    """Soft labels (N, C): torch parity for logits and target gradients, and float64 gradcheck."""
    r = np.random.default_rng(11)
    z, y = r.standard_normal((N, C)) * 2, r.dirichlet(np.ones(C), N)
    w = kw.get("weight")
    ls = kw.get("label_smoothing", 0.0)
    fn = lambda a, b: F.cross_entropy(a, b, weight=w, label_smoothing=ls, reduction=red)  # noqa: E731
    tfn = lambda a, b: TF.cross_entropy(a, b, weight=_tw(w, a), label_smoothing=ls, reduction=red)  # noqa: E731
    torch_parity(fn, tfn, [z, y], name=f"soft/{red}", rtol=1e-10)
    torch_parity(fn, tfn, [z.astype(np.float32), y.astype(np.float32)], name=f"soft/{red}/f32", rtol=1e-5)
    gradcheck(fn, [z, y], name=f"soft/{red}")


# ---- hinge and logistic (deck 002), against NumPy ---------------------------------------------
def _pm(r, shape):
    return np.where(r.random(shape) < 0.5, -1.0, 1.0)


def _np_hinge(f, y):
    return np.maximum(0, 1 - y * f), -y * (1 - y * f > 0)


def _np_logistic(f, y):
    return np.logaddexp(0, -y * f), -y * np.exp(-np.logaddexp(0, y * f))  # σ(−yf) = 1/(1 + e^{yf})


@pytest.mark.parametrize("red", REDS)
@pytest.mark.parametrize("name,ref", [("hinge_loss", _np_hinge), ("logistic_loss", _np_logistic)])
def test_binary_losses_match_numpy(name, ref, red):
    r = np.random.default_rng(7)
    f = r.standard_normal((4, 3)) * 3
    f[0, :] = [1000.0, -1000.0, 0.0]     # huge scores: no overflow, exact limits
    f[1, 0] = 0.5                         # keep one sample strictly inside the margin
    y = _pm(r, (4, 3))
    y[0, :2] = [-1.0, 1.0]                # the huge scores are badly wrong: loss ≈ 1001 / 1000
    loss_ref, dl_df = ref(f, y)
    x = Tensor(f, requires_grad=True)
    out = getattr(F, name)(x, ember.tensor(y), reduction=red)
    assert np.isfinite(out.numpy()).all()
    u = r.standard_normal(out.shape)
    out.backward(u)
    if red == "none":
        np.testing.assert_allclose(out.numpy(), loss_ref, rtol=1e-13)
        np.testing.assert_allclose(x.grad.numpy(), u * dl_df, rtol=1e-13)
    else:
        k = 1 / f.size if red == "mean" else 1.0
        np.testing.assert_allclose(out.numpy(), loss_ref.sum() * k, rtol=1e-13)
        np.testing.assert_allclose(x.grad.numpy(), u * k * dl_df, rtol=1e-13)
    assert out.numpy().max() >= 1000.0 if red != "mean" else True


def test_logistic_loss_equals_torch_bce_with_logits():
    r = np.random.default_rng(8)
    f, y = r.standard_normal(10) * 5, _pm(r, (10,))
    torch_parity(lambda x: F.logistic_loss(x, y, reduction="none"),
                 lambda x: TF.binary_cross_entropy_with_logits(x, torch.tensor((y + 1) / 2), reduction="none"),
                 [f], name="logistic", rtol=1e-12)


@pytest.mark.parametrize("name", ["hinge_loss", "logistic_loss"])
def test_binary_losses_gradcheck_both_inputs(name):
    r = np.random.default_rng(9)
    f = _away(r, (3, 4)) * 2
    f = np.where(np.abs(np.abs(f) - 1) < 0.05, f * 1.2, f)  # away from the hinge at y f = 1
    y = _pm(r, (3, 4))
    op = {"hinge_loss": HingeLoss, "logistic_loss": LogisticLoss}[name]  # the op: F rejects y ≠ ±1
    gradcheck(lambda a, b: op.apply(a, b, reduction="none"), [f, y], name=name)
    gradcheck(lambda a: getattr(F, name)(a, y), [f], name=name)


def test_hinge_multi_margin_match_deck_002_formulas():
    """Deck 002: L = Σ_j max(0, 1 − x_y + x_j) (torch's MultiMarginLoss times C), J = 1 if x_y − x_j < 1."""
    x = np.array([[2.0, 1.5, -1.0, 0.9]])
    t = np.array([0])
    xt = Tensor(x, requires_grad=True)
    loss = F.multi_margin_loss(xt, t, reduction="sum")
    loss.backward()
    assert np.isclose(loss.item() * 4, 0.5 + 0 + 0.0)      # only j = 1 violates: 1 − 2 + 1.5 = 0.5
    np.testing.assert_allclose(xt.grad.numpy() * 4, [[-1, 1, 0, 0]])


def test_float32_in_float32_out():
    x32 = ember.randn(4, 3)
    for out in [F.cross_entropy(x32, np.array([0, 1, 2, -100]), weight=ember.tensor(W[:3]), label_smoothing=0.1),
                F.nll_loss(x32, np.array([0, 1, 2, 1]), weight=W[:3]),
                F.multi_margin_loss(x32, np.array([0, 1, 2, 1]), weight=W[:3]),
                F.hinge_loss(x32, np.ones((4, 3))), F.logistic_loss(x32, ember.tensor(-np.ones((4, 3)))),
                F.l1_loss(x32, np.zeros((4, 3))), F.smooth_l1_loss(x32, np.zeros((4, 3))),
                F.huber_loss(x32, np.zeros((4, 3)))]:
        assert out.dtype == np.float32, out


# ---- modules ------------------------------------------------------------------------------
MODULES = [
    (lambda: nn.CrossEntropyLoss(weight=ember.tensor(W), ignore_index=2, label_smoothing=0.1, reduction="sum"),
     lambda: torch.nn.CrossEntropyLoss(weight=torch.tensor(W), ignore_index=2, label_smoothing=0.1, reduction="sum"),
     "class"),
    (lambda: nn.NLLLoss(weight=ember.tensor(W)), lambda: torch.nn.NLLLoss(weight=torch.tensor(W)), "class"),
    (lambda: nn.MultiMarginLoss(p=2, margin=0.5, reduction="none"),
     lambda: torch.nn.MultiMarginLoss(p=2, margin=0.5, reduction="none"), "class"),
    (lambda: nn.L1Loss(reduction="sum"), lambda: torch.nn.L1Loss(reduction="sum"), "reg"),
    (lambda: nn.SmoothL1Loss(beta=0.5), lambda: torch.nn.SmoothL1Loss(beta=0.5), "reg"),
    (lambda: nn.HuberLoss(delta=0.3, reduction="none"), lambda: torch.nn.HuberLoss(delta=0.3, reduction="none"), "reg"),
    (lambda: nn.CrossEntropyLoss(reduce=False), lambda: torch.nn.CrossEntropyLoss(reduce=False), "class"),
    (lambda: nn.L1Loss(size_average=False), lambda: torch.nn.L1Loss(size_average=False), "reg"),
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("i", range(len(MODULES)))
def test_modules_match_torch(i):
    ours, theirs, kind = MODULES[i][0](), MODULES[i][1](), MODULES[i][2]
    r = np.random.default_rng(i)
    if kind == "class":
        x = r.standard_normal((N, C))
        if isinstance(ours, nn.NLLLoss):
            x = TF.log_softmax(torch.tensor(x), 1).numpy()
        torch_parity(lambda a: ours(a, T_PLAIN), lambda a: theirs(a, torch.tensor(T_PLAIN)), [x],
                     name=type(ours).__name__, rtol=1e-10)
    else:
        torch_parity(ours, theirs, _reg_inputs(r), name=type(ours).__name__, rtol=1e-10)


def test_binary_modules_and_weight_buffer():
    f, y = ember.tensor([[0.3, -2.0]]), ember.tensor([[1.0, -1.0]])
    assert np.isclose(nn.HingeLoss(reduction="sum")(f, y).item(), 0.7)
    assert np.isclose(nn.LogisticLoss()(f, y).item(), np.mean(np.log1p(np.exp([-0.3, -2.0]))))
    m = nn.CrossEntropyLoss(weight=ember.tensor(W))
    assert list(m.state_dict()) == ["weight"]
    assert list(nn.CrossEntropyLoss().state_dict()) == []


# ---- bad input ------------------------------------------------------------------------------
X, Y = ember.zeros(3, 4), np.array([0, 1, 2])
BAD = [
    ("unknown reduction (ce)", lambda: F.cross_entropy(X, Y, reduction="avg"), ValueError,
     r"reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"),
    ("unknown reduction (hinge)", lambda: F.hinge_loss(X, np.ones((3, 4)), reduction="total"), ValueError,
     r"reduction must be one of .* got 'total'"),
    ("unknown reduction (huber)", lambda: F.huber_loss(X, X, reduction="avg"), ValueError, r"reduction must be one of"),
    ("unknown reduction (module)", lambda: nn.SmoothL1Loss(reduction="avg"), ValueError, r"reduction must be one of"),
    ("unknown reduction (MultiMargin)", lambda: nn.MultiMarginLoss(reduction="x"), ValueError, r"reduction must be"),
    ("label_smoothing", lambda: F.cross_entropy(X, Y, label_smoothing=1.5), ValueError,
     r"label_smoothing must be between 0.0 and 1.0. Got: 1.5"),
    ("label_smoothing module", lambda: nn.CrossEntropyLoss(label_smoothing=-0.1), ValueError,
     r"label_smoothing must be between 0.0 and 1.0. Got: -0.1"),
    ("weight shape", lambda: F.cross_entropy(X, Y, weight=ember.ones(3)), ValueError,
     r"cross_entropy: weight tensor should be defined either for all 4 classes or no classes but got weight "
     r"tensor of shape: \[3\]"),
    ("nll weight shape", lambda: F.nll_loss(X, Y, weight=np.ones(5)), ValueError, r"nll_loss: weight tensor .* \[5\]"),
    ("negative label is not ignore_index", lambda: F.cross_entropy(X, np.array([0, -1, 2]), weight=np.ones(4)),
     IndexError, r"cross_entropy: target -1 is out of bounds for 4 classes"),
    ("ignore_index only skips its own value", lambda: F.nll_loss(X, np.array([0, 7, 2]), ignore_index=5),
     IndexError, r"nll_loss: target 7 is out of bounds"),
    ("multi_margin p", lambda: F.multi_margin_loss(X, Y, p=3), ValueError, r"only p == 1 and p == 2 supported, got p=3"),
    ("MultiMarginLoss p", lambda: nn.MultiMarginLoss(p=0), ValueError, r"only p == 1 and p == 2 supported"),
    ("multi_margin target", lambda: F.multi_margin_loss(X, np.array([0, 4, 1])), IndexError,
     r"multi_margin_loss: target 4 is out of bounds for 4 classes"),
    ("hinge labels", lambda: F.hinge_loss(X, np.zeros((3, 4))), ValueError, r"hinge_loss: targets must be -1 or 1, got 0.0"),
    ("logistic labels", lambda: F.logistic_loss(X, np.full((3, 4), 2.0)), ValueError, r"logistic_loss: targets must be -1 or 1"),
    ("logistic shapes", lambda: F.logistic_loss(X, np.ones(4)), ValueError,
     r"logistic_loss: input shape \(3, 4\) and target shape \(4,\) differ"),
    ("smooth_l1 beta", lambda: F.smooth_l1_loss(X, X, beta=-1.0), ValueError,
     r"smooth_l1_loss does not support negative values for beta"),
    ("huber delta", lambda: nn.HuberLoss(delta=0.0), ValueError, r"huber_loss does not support non-positive values for delta"),
    ("l1 shapes", lambda: F.l1_loss(X, ember.zeros(4, 3)), ValueError, r"l1_loss: input shape \(3, 4\) and target shape"),
]


@pytest.mark.parametrize("what,fn,exc,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_arguments(what, fn, exc, msg):
    with pytest.raises(exc, match=msg):
        fn()


def test_multi_margin_1d_input():
    x = np.array([0.1, 0.2, 0.4, 0.8])
    ours = F.multi_margin_loss(ember.tensor(x), np.array(3), reduction="none")
    ref = TF.multi_margin_loss(torch.tensor(x), torch.tensor(3), reduction="none")
    assert ours.shape == tuple(ref.shape) and np.isclose(ours.item(), ref.item())
