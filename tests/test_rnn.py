"""nn.RNN / LSTM / GRU and their cells against PyTorch: the same weights (copied through
state_dict, so the parameter names and shapes must be PyTorch's), float64 inputs, and then the
outputs, the final states, the input's and the initial states' gradients and every parameter's
gradient must agree to 1e-10; plus PyTorch's error messages, repr, dropout between layers and
the API scripts call (flatten_parameters, all_weights, unbind)."""
import numpy as np
import pytest

import ember
from helpers import assert_same_error

torch = pytest.importorskip("torch")


def _pair(kind, args, kwargs):
    tm = getattr(torch.nn, kind)(*args, **kwargs).double()
    em = getattr(ember.nn, kind)(*args, **kwargs).double()
    assert list(em.state_dict()) == list(tm.state_dict())
    assert [tuple(v.shape) for v in em.state_dict().values()] == [tuple(v.shape) for v in tm.state_dict().values()]
    em.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    return tm, em


def _flat(o):
    return [o] if not isinstance(o, tuple) else [y for z in o for y in _flat(z)]


def _check(tm, em, targs, eargs, leaves):
    to, eo = tm(*targs), em(*eargs)
    tf, ef = _flat(to), _flat(eo)
    assert len(tf) == len(ef)
    loss_t = loss_e = 0
    for t, e in zip(tf, ef):
        assert tuple(e.shape) == tuple(t.shape)
        np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-10)
        w = np.cos(np.arange(t.numel())).reshape(tuple(t.shape))        # a loss that weighs every output
        loss_t = loss_t + (t * torch.tensor(w)).sum()
        loss_e = loss_e + (e * ember.tensor(w)).sum()
    loss_t.backward()
    loss_e.backward()
    for t, e in leaves:
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-10)
    for (n, p), (n2, q) in zip(tm.named_parameters(), em.named_parameters()):
        assert n == n2
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-10, atol=1e-10, err_msg=n)


def _leaf(rng, shape):
    a = rng.standard_normal(shape)
    return torch.tensor(a, requires_grad=True), ember.tensor(a, requires_grad=True)


CASES = [  # kind, args, kwargs, input shape, initial state given
    ("LSTM", (3, 5), {}, (4, 2, 3), False),
    ("LSTM", (3, 5), {"num_layers": 2, "bidirectional": True, "batch_first": True}, (2, 4, 3), True),
    ("LSTM", (3, 5), {"proj_size": 2, "num_layers": 2}, (4, 2, 3), True),
    ("LSTM", (3, 5), {"bias": False}, (4, 3), True),                          # unbatched
    ("GRU", (3, 5), {"num_layers": 2, "bidirectional": True}, (4, 2, 3), True),
    ("GRU", (3, 5), {}, (4, 3), False),
    ("GRU", (3, 5), {"batch_first": True}, (3, 6, 3), True),
    ("RNN", (3, 5), {"nonlinearity": "relu", "num_layers": 3}, (4, 2, 3), True),
    ("RNN", (3, 5, 2), {"bidirectional": True, "batch_first": True}, (2, 6, 3), False),
]


@pytest.mark.parametrize("kind,args,kwargs,shape,with_state", CASES)
def test_recurrent_layers_match_torch_values_and_gradients(kind, args, kwargs, shape, with_state):
    rng = np.random.default_rng(len(shape) + 7 * len(kwargs))
    tm, em = _pair(kind, args, kwargs)
    tx, ex = _leaf(rng, shape)
    targs, eargs, leaves = [tx], [ex], [(tx, ex)]
    if with_state:
        D, L = 2 if kwargs.get("bidirectional") else 1, kwargs.get("num_layers", 1)
        H = args[1]
        batch = () if len(shape) == 2 else (shape[0 if kwargs.get("batch_first") else 1],)
        th, eh = _leaf(rng, (D * L,) + batch + (kwargs.get("proj_size") or H,))
        leaves.append((th, eh))
        if kind == "LSTM":
            tc, ec = _leaf(rng, (D * L,) + batch + (H,))
            leaves.append((tc, ec))
            targs.append((th, tc))
            eargs.append((eh, ec))
        else:
            targs.append(th)
            eargs.append(eh)
    _check(tm, em, targs, eargs, leaves)


@pytest.mark.parametrize("kind,kwargs,batch", [("LSTMCell", {}, (2,)), ("LSTMCell", {}, ()),
                                               ("GRUCell", {"bias": False}, (2,)), ("GRUCell", {}, ()),
                                               ("RNNCell", {"nonlinearity": "relu"}, (3,)), ("RNNCell", {}, ())])
def test_cells_match_torch_values_and_gradients(kind, kwargs, batch):
    rng = np.random.default_rng(3)
    tm, em = _pair(kind, (3, 5), kwargs)
    tx, ex = _leaf(rng, batch + (3,))
    th, eh = _leaf(rng, batch + (5,))
    if kind == "LSTMCell":
        tc, ec = _leaf(rng, batch + (5,))
        _check(tm, em, [tx, (th, tc)], [ex, (eh, ec)], [(tx, ex), (th, eh), (tc, ec)])
    else:
        _check(tm, em, [tx, th], [ex, eh], [(tx, ex), (th, eh)])
    tm2, em2 = _pair(kind, (3, 5), kwargs)                                      # no state: zeros
    tx, ex = _leaf(rng, batch + (3,))
    _check(tm2, em2, [tx], [ex], [(tx, ex)])


def test_dropout_between_layers_only_in_training():
    tm, em = _pair("LSTM", (3, 4), {"num_layers": 2, "dropout": 0.5})
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    em.eval()
    tm.eval()
    np.testing.assert_allclose(em(ember.tensor(x))[0].numpy(), tm(torch.tensor(x))[0].detach().numpy(), atol=1e-12)
    em.train()
    a, b = em(ember.tensor(x))[0].numpy(), em(ember.tensor(x))[0].numpy()
    assert not np.allclose(a, b)                                                # a fresh mask per call
    with pytest.warns(UserWarning, match="dropout option adds dropout after all but last recurrent layer"):
        one = ember.nn.LSTM(3, 4, dropout=0.5).double()                         # one layer: nothing to drop
    np.testing.assert_array_equal(one(ember.tensor(x))[0].numpy(), one(ember.tensor(x))[0].numpy())


def test_repr_defaults_and_script_api_are_torch_s():
    for kind, args, kwargs in [("LSTM", (3, 5), {"num_layers": 2, "dropout": 0.5, "batch_first": True}),
                               ("RNN", (3, 5, 3), {"nonlinearity": "relu"}), ("GRU", (2, 3), {"bias": False}),
                               ("LSTM", (3, 5), {"proj_size": 2, "bidirectional": True}),
                               ("RNNCell", (3, 5), {"nonlinearity": "relu"}), ("LSTMCell", (3, 5), {"bias": False})]:
        assert repr(getattr(ember.nn, kind)(*args, **kwargs)) == repr(getattr(torch.nn, kind)(*args, **kwargs))
    m = ember.nn.LSTM(3, 5, 2, bidirectional=True)
    assert m.flatten_parameters() is None
    assert [len(w) for w in m.all_weights] == [len(w) for w in torch.nn.LSTM(3, 5, 2, bidirectional=True).all_weights]
    assert m.weight_ih_l0.dtype == ember.float32 and m(ember.zeros(2, 1, 3))[0].dtype == ember.float32
    bound = 1 / np.sqrt(5)
    assert all(np.abs(p.numpy()).max() <= bound for p in m.parameters())       # U(-1/sqrt(H), 1/sqrt(H))
    parts = ember.arange(6.0).reshape(2, 3).unbind(1)
    assert [p.tolist() for p in parts] == [t.tolist() for t in torch.arange(6.0).reshape(2, 3).unbind(1)]


@pytest.mark.parametrize("call", [
    lambda nn, T: nn.LSTM(3, 5)(T.randn(4, 2, 4)),
    lambda nn, T: nn.LSTM(3, 5)(T.randn(4, 2, 3), (T.zeros(1, 2, 5), T.zeros(2, 2, 5))),
    lambda nn, T: nn.GRU(3, 5)(T.randn(4, 2, 3), T.zeros(1, 3, 5)),
    lambda nn, T: nn.GRU(3, 5)(T.randn(2, 2, 4, 3)),
    lambda nn, T: nn.GRUCell(3, 5)(T.randn(2, 4)),
    lambda nn, T: nn.GRUCell(3, 5)(T.randn(2, 3), T.randn(3, 5)),
    lambda nn, T: nn.LSTMCell(3, 5)(T.randn(2, 3), (T.randn(2, 5), T.randn(2, 4))),
    lambda nn, T: nn.RNN(3, 5, nonlinearity="sigmoid"),
    lambda nn, T: nn.GRU(3, 5, proj_size=2),
    lambda nn, T: nn.LSTM(3, 5, proj_size=5),
    lambda nn, T: nn.LSTM(3, 5, dropout=1.5),
])
def test_errors_are_torch_s(call):
    assert_same_error(call, (torch.nn, torch), (ember.nn, ember))


PACKED = [("LSTM", {}, [5, 3, 2], True, False, False),
          ("LSTM", {"bidirectional": True, "num_layers": 2}, [2, 5, 3, 5], False, True, True),
          ("GRU", {"bidirectional": True}, [4, 1, 3], False, False, True),
          ("RNN", {}, [3, 3, 1], True, True, False)]


@pytest.mark.parametrize("kind,kwargs,lengths,enforce_sorted,batch_first,with_state", PACKED)
def test_packed_sequences_match_torch(kind, kwargs, lengths, enforce_sorted, batch_first, with_state):
    """pack_padded_sequence -> RNN -> pad_packed_sequence: packed data, padded output, lengths, the
    final states (each sequence's own last step, in the caller's order) and all gradients."""
    rng = np.random.default_rng(len(lengths))
    tm, em = _pair(kind, (3, 4), kwargs)
    tr, er = torch.nn.utils.rnn, ember.nn.utils.rnn
    T, B = max(lengths), len(lengths)
    tx, ex = _leaf(rng, (B, T, 3) if batch_first else (T, B, 3))
    tp = tr.pack_padded_sequence(tx, torch.tensor(lengths), batch_first, enforce_sorted)
    ep = er.pack_padded_sequence(ex, ember.tensor(lengths), batch_first, enforce_sorted)
    np.testing.assert_array_equal(ep.data.detach().numpy(), tp.data.detach().numpy())
    assert ep.batch_sizes.tolist() == tp.batch_sizes.tolist()
    targs, eargs, leaves = [tp], [ep], [(tx, ex)]
    if with_state:
        D, L = 2 if kwargs.get("bidirectional") else 1, kwargs.get("num_layers", 1)
        states = [_leaf(rng, (D * L, B, 4)) for _ in range(2 if kind == "LSTM" else 1)]
        leaves += states
        targs.append(tuple(s[0] for s in states) if kind == "LSTM" else states[0][0])
        eargs.append(tuple(s[1] for s in states) if kind == "LSTM" else states[0][1])
    (to, th), (eo, eh) = tm(*targs), em(*eargs)
    assert isinstance(eo, er.PackedSequence)
    (tpad, tlen), (epad, elen) = tr.pad_packed_sequence(to, batch_first), er.pad_packed_sequence(eo, batch_first)
    assert elen.tolist() == tlen.tolist()
    loss_t = loss_e = 0
    for t, e in zip((tpad,) + tuple(_flat(th)), (epad,) + tuple(_flat(eh))):
        np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-10)
        w = np.cos(np.arange(t.numel())).reshape(tuple(t.shape))
        loss_t, loss_e = loss_t + (t * torch.tensor(w)).sum(), loss_e + (e * ember.tensor(w)).sum()
    loss_t.backward()
    loss_e.backward()
    for t, e in leaves:
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-10)
    for (n, p), (_, q) in zip(tm.named_parameters(), em.named_parameters()):
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-10, atol=1e-10, err_msg=n)


def test_pad_and_pack_sequence_helpers_match_torch():
    rng = np.random.default_rng(5)
    seqs = [rng.standard_normal((n, 2)) for n in (3, 5, 1)]
    tr, er = torch.nn.utils.rnn, ember.nn.utils.rnn
    for kw in ({"batch_first": True, "padding_value": -1.0}, {"padding_side": "left"}):
        np.testing.assert_array_equal(er.pad_sequence([ember.tensor(s) for s in seqs], **kw).numpy(),
                                      tr.pad_sequence([torch.tensor(s) for s in seqs], **kw).numpy())
    tp = tr.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    ep = er.pack_sequence([ember.tensor(s) for s in seqs], enforce_sorted=False)
    np.testing.assert_array_equal(ep.data.numpy(), tp.data.numpy())
    assert ep.sorted_indices.tolist() == tp.sorted_indices.tolist()
    assert ep.unsorted_indices.tolist() == tp.unsorted_indices.tolist()
    for ours, theirs in zip(er.unpack_sequence(ep), tr.unpack_sequence(tp)):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert_same_error(lambda r, T: r.pack_padded_sequence(T.zeros(3, 2, 1), T.tensor([1, 3])), (tr, torch), (er, ember))
