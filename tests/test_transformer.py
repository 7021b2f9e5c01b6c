"""Attention and the Transformer modules against PyTorch in float64 (the same weights through
state_dict, so names and shapes must be PyTorch's): outputs, attention weights, input and
parameter gradients to 1e-10 for F.scaled_dot_product_attention, nn.MultiheadAttention (masks,
kdim/vdim, add_bias_kv, add_zero_attn, batch_first, unbatched, need_weights), the encoder and
decoder layers (post/pre-norm, relu/gelu, dropout in eval), the stacks and nn.Transformer; the
repr (ModuleList's "(0-1): 2 x" runs), copy.deepcopy of parameters, errors."""
import copy

import numpy as np
import pytest

import ember
from helpers import assert_same_error

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")   # torch's, about its fast path


def _leaf(rng, shape):
    a = rng.standard_normal(shape)
    return torch.tensor(a, requires_grad=True), ember.tensor(a, requires_grad=True)


def _same(t, e, tin, ein, tkw=None, ekw=None, train=True):
    """Copy t's weights into e, run both, compare every output, then the gradients of a loss
    that weighs every output element."""
    assert list(e.state_dict()) == list(t.state_dict())
    e.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})
    t.train(train)
    e.train(train)
    to, eo = t(*tin, **(tkw or {})), e(*ein, **(ekw or {}))
    tf = [x for x in (to if isinstance(to, tuple) else (to,)) if x is not None]
    ef = [x for x in (eo if isinstance(eo, tuple) else (eo,)) if x is not None]
    assert len(tf) == len(ef)
    lt = le = 0
    for a, b in zip(tf, ef):
        assert tuple(b.shape) == tuple(a.shape)
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-10, atol=1e-10)
        w = np.cos(np.arange(a.numel())).reshape(tuple(a.shape))
        lt, le = lt + (a * torch.tensor(w)).sum(), le + (b * ember.tensor(w)).sum()
    lt.backward()
    le.backward()
    for a, b in zip(tin, ein):
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-10, atol=1e-10)
    for (n, p), (n2, q) in zip(t.named_parameters(), e.named_parameters()):
        assert n == n2
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-10, atol=1e-10, err_msg=n)


@pytest.mark.parametrize("kw,mask", [({}, None), ({}, "float"), ({}, "bool"), ({"is_causal": True}, None),
                                     ({"scale": 0.3}, "bool")])
def test_scaled_dot_product_attention_matches_torch(kw, mask):
    rng = np.random.default_rng(0)
    (tq, eq), (tk, ek), (tv, ev) = (_leaf(rng, s) for s in [(2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7)])
    m = {"float": rng.standard_normal((4, 6)), "bool": rng.random((2, 1, 4, 6)) > 0.3, None: None}[mask]
    to = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, None if m is None else torch.tensor(m), **kw)
    eo = ember.nn.functional.scaled_dot_product_attention(eq, ek, ev, None if m is None else ember.tensor(m), **kw)
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(tuple(to.shape))
    to.backward(torch.tensor(g))
    eo.backward(ember.tensor(g))
    for a, b in [(tq, eq), (tk, ek), (tv, ev)]:
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-10, atol=1e-12)


MHA = [  # constructor kwargs, forward options, L, S, N (None: unbatched)
    ({}, {}, 4, 5, 2),
    ({"batch_first": True}, {"need_weights": False}, 4, 5, 2),
    ({"kdim": 6, "vdim": 3, "add_bias_kv": True, "add_zero_attn": True}, {"average_attn_weights": False}, 3, 4, 2),
    ({"bias": False}, {"mask": "bool"}, 4, 4, 3),
    ({}, {"mask": "float", "kpm": True}, 4, 5, 2),
    ({}, {"mask": "float", "kpm": True, "need_weights": False}, 4, 5, 2),
    ({}, {"kpm": True}, 4, 5, None),
]


@pytest.mark.parametrize("kw,opts,L,S,N", MHA)
def test_multihead_attention_matches_torch(kw, opts, L, S, N):
    rng = np.random.default_rng(L * 10 + S)
    E, H = 8, 2
    t, e = torch.nn.MultiheadAttention(E, H, **kw).double(), ember.nn.MultiheadAttention(E, H, **kw).double()
    assert repr(e) == repr(t)
    bf = kw.get("batch_first", False)
    shape = lambda n, d: (n, d) if N is None else ((N, n, d) if bf else (n, N, d))   # noqa: E731
    (tq, eq), (tk, ek), (tv, ev) = _leaf(rng, shape(L, E)), _leaf(rng, shape(S, kw.get("kdim", E))), \
        _leaf(rng, shape(S, kw.get("vdim", E)))
    tkw, ekw = {}, {}
    masks = {}
    if opts.get("mask") == "bool":
        m = rng.random((L, S)) > 0.7
        np.fill_diagonal(m, False)
        masks["attn_mask"] = m
    if opts.get("mask") == "float":
        masks["attn_mask"] = rng.standard_normal((N * H, L, S))
    if opts.get("kpm"):
        m = rng.random((N, S) if N else (S,)) > 0.6
        m[..., 0] = False
        masks["key_padding_mask"] = m
    for k, m in masks.items():
        tkw[k], ekw[k] = torch.tensor(m), ember.tensor(m)
    for k in ("need_weights", "average_attn_weights"):
        if k in opts:
            tkw[k] = ekw[k] = opts[k]
    _same(t, e, [tq, tk, tv], [eq, ek, ev], tkw, ekw)


@pytest.mark.parametrize("kw", [dict(dropout=0.0), dict(dropout=0.0, norm_first=True, activation="gelu", batch_first=True),
                                dict(dropout=0.3)])
def test_encoder_and_decoder_layers_and_stacks_match_torch(kw):
    rng = np.random.default_rng(1)
    E, H, train = 8, 2, kw["dropout"] == 0                      # with dropout: compared in eval mode
    shape = (2, 5, E) if kw.get("batch_first") else (5, 2, E)
    mask_t = torch.nn.Transformer.generate_square_subsequent_mask(5).double()
    mask_e = ember.nn.Transformer.generate_square_subsequent_mask(5, dtype=ember.float64)
    np.testing.assert_array_equal(mask_e.numpy(), mask_t.numpy())
    kpm = np.zeros((2, 5), bool)
    kpm[1, 3:] = True
    t, e = torch.nn.TransformerEncoderLayer(E, H, 16, **kw).double(), ember.nn.TransformerEncoderLayer(E, H, 16, **kw).double()
    assert repr(e) == repr(t)
    tx, ex = _leaf(rng, shape)
    _same(t, e, [tx], [ex], dict(src_mask=mask_t, src_key_padding_mask=torch.tensor(kpm)),
          dict(src_mask=mask_e, src_key_padding_mask=ember.tensor(kpm)), train)
    t = torch.nn.TransformerEncoder(t, 2, norm=torch.nn.LayerNorm(E).double())
    e = ember.nn.TransformerEncoder(e, 2, norm=ember.nn.LayerNorm(E).double())
    assert repr(e) == repr(t)
    tx, ex = _leaf(rng, shape)
    _same(t, e, [tx], [ex], dict(mask=mask_t, is_causal=True), dict(mask=mask_e, is_causal=True), train)
    t, e = torch.nn.TransformerDecoderLayer(E, H, 16, **kw).double(), ember.nn.TransformerDecoderLayer(E, H, 16, **kw).double()
    assert repr(e) == repr(t)
    (tx, ex), (tm, em) = _leaf(rng, shape), _leaf(rng, (2, 3, E) if kw.get("batch_first") else (3, 2, E))
    _same(t, e, [tx, tm], [ex, em], dict(tgt_mask=mask_t), dict(tgt_mask=mask_e), train)


def test_transformer_matches_torch():
    rng = np.random.default_rng(2)
    t = torch.nn.Transformer(8, 2, 2, 2, 16, dropout=0.0).double()
    e = ember.nn.Transformer(8, 2, 2, 2, 16, dropout=0.0).double()
    assert repr(e) == repr(t)
    (ts, es), (tt, et) = _leaf(rng, (6, 2, 8)), _leaf(rng, (4, 2, 8))
    mask = torch.nn.Transformer.generate_square_subsequent_mask(4).double()
    _same(t, e, [ts, tt], [es, et], dict(tgt_mask=mask), dict(tgt_mask=ember.tensor(mask.numpy())))


def test_module_list_repr_and_deepcopy_are_torch_s():
    for lib in (torch, ember):
        nn = lib.nn
        lib.r = repr(nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 3), nn.Linear(2, 3)]))
    assert ember.r == torch.r and "(0-1): 2 x Linear" in ember.r
    layer = ember.nn.Linear(2, 2)
    layer(ember.ones(1, 2)).sum().backward()
    layer.bias.requires_grad_(False)
    twin = copy.deepcopy(layer)
    assert twin.weight.grad is None and layer.weight.grad is not None           # torch: no .grad in the copy
    assert isinstance(twin.weight, ember.nn.Parameter) and twin.weight.requires_grad and not twin.bias.requires_grad
    twin.weight.data.add_(1.0)
    assert not np.allclose(twin.weight.numpy(), layer.weight.numpy())          # its own values


@pytest.mark.parametrize("call", [
    lambda nn, T: nn.MultiheadAttention(8, 3),
    lambda nn, T: nn.MultiheadAttention(8, 2)(T.randn(4, 2, 8), T.randn(4, 2, 8), T.randn(4, 2, 8), is_causal=True),
    lambda nn, T: nn.TransformerEncoderLayer(8, 2, activation="tanh"),
])
def test_errors_are_torch_s(call):
    assert_same_error(call, (torch.nn, torch), (ember.nn, ember))
