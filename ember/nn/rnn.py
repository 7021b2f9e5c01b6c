"""Recurrent layers with PyTorch's names, parameters and semantics: RNN, LSTM, GRU and their cells.

Each time step is written with ember's differentiable ops (``F.linear``, ``sigmoid``, ``tanh``,
products and sums), so backpropagation through time is the engine's ordinary walk back over the
unrolled steps; no recurrent op has a backward of its own. The input projection x Wᵢₕᵀ + bᵢₕ of
every step is one matrix product over the whole sequence before the loop; each step then adds
h Wₕₕᵀ + bₕₕ. The gate equations are PyTorch's (``torch.nn.RNN``/``LSTM``/``GRU`` docs,
PyTorch 2.13), with σ the logistic sigmoid and ⊙ the elementwise product:

    RNN:   h' = tanh(x Wᵢₕᵀ + bᵢₕ + h Wₕₕᵀ + bₕₕ)                 (or relu: nonlinearity="relu")
    LSTM:  i, f, g, o = chunks of (x Wᵢₕᵀ + bᵢₕ + h Wₕₕᵀ + bₕₕ)      (Hochreiter & Schmidhuber 1997)
           i, f, o = σ(i), σ(f), σ(o);  g = tanh(g)
           c' = f ⊙ c + i ⊙ g;  h' = o ⊙ tanh(c')                    (h' = h' Wₕᵣᵀ with proj_size)
    GRU:   r, z, n from x Wᵢₕᵀ + bᵢₕ = (aᵣ, a_z, aₙ) and h Wₕₕᵀ + bₕₕ = (bᵣ, b_z, bₙ)   (Cho et al. 2014)
           r = σ(aᵣ + bᵣ);  z = σ(a_z + b_z);  n = tanh(aₙ + r ⊙ bₙ);  h' = (1 − z) ⊙ n + z ⊙ h

Parameters, per layer k and direction (suffix "_reverse" for the backward one), named and shaped
as PyTorch's, so state_dicts move between the two: weight_ih_l{k} (G·H, input), weight_hh_l{k}
(G·H, H_out), bias_ih_l{k} and bias_hh_l{k} (G·H,), weight_hr_l{k} (proj_size, H) for an LSTM with
proj_size; G = 1 (RNN), 4 (LSTM, gates i f g o), 3 (GRU, gates r z n); the input of layer k > 0 is
D·H_out (D = 2 if bidirectional). All start ~ U(−1/√H, 1/√H), PyTorch's default.

PackedSequence inputs (``nn.utils.rnn.pack_padded_sequence``) run on the padded batch in sorted
order, each sequence's rows only while it lasts: its state stops at its own last step (backward
direction: starts there), and the output is a PackedSequence, as PyTorch's.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import random as _random
from ..tensor import Tensor
from . import functional as F
from ._validation import _check_range
from .module import Module, Parameter

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _uniform(shape, k, dt):
    return Parameter(_random.default_generator().uniform(-k, k, shape).astype(dt))


def _step(mode, xi, h, c, w_hh, b_hh, w_hr):
    """One time step of one layer and direction: (h', c') from the projected input xi = x Wᵢₕᵀ + bᵢₕ
    (N, G·H), the previous h (N, H_out) and c (N, H; LSTM only, else None)."""
    hh = F.linear(h, w_hh, b_hh)
    if mode == "RNN_TANH":
        return (xi + hh).tanh(), None
    if mode == "RNN_RELU":
        return (xi + hh).relu(), None
    if mode == "LSTM":
        i, f, g, o = (xi + hh).chunk(4, 1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        return (h if w_hr is None else F.linear(h, w_hr)), c
    a_r, a_z, a_n = xi.chunk(3, 1)
    b_r, b_z, b_n = hh.chunk(3, 1)
    r, z = (a_r + b_r).sigmoid(), (a_z + b_z).sigmoid()
    n = (a_n + r * b_n).tanh()
    return (1 - z) * n + z * h, None


def _check_hidden(t, shape, what):
    if tuple(t.shape) != tuple(shape):
        raise RuntimeError(f"Expected {what} size {tuple(shape)}, got {list(t.shape)}")


class RNNBase(Module):
    """The multi-layer, optionally bidirectional recurrence shared by RNN, LSTM and GRU
    (torch.nn.RNNBase); see the module docstring for the equations and parameters.

    forward(input, hx=None):
        input (L, N, H_in), or (N, L, H_in) with batch_first, or unbatched (L, H_in);
        hx (D·num_layers, N, H_out) (LSTM: a tuple (h_0, c_0), c_0 (D·num_layers, N, H)),
        zeros when None; unbatched: without the N dim.
        -> (output, h_n) (LSTM: (output, (h_n, c_n))): output (L, N, D·H_out) (batch_first:
        (N, L, D·H_out)) holds the last layer's h at every step, both directions concatenated;
        h_n (D·num_layers, N, H_out) the last step's h of every layer and direction (the backward
        direction's last step is t = 0). H_out = proj_size if proj_size > 0 else hidden_size.
    dtype: the parameters' (float32 by default; ``.double()`` for float64). Dropout (p = dropout)
    is applied to each layer's output except the last, in training mode, as PyTorch does.
    Raises: ValueError for bad sizes, dropout outside [0, 1], proj_size ≥ hidden_size or
    proj_size on a non-LSTM (RNN and GRU take the argument only to refuse it, as PyTorch's);
    UserWarning for dropout with one layer (nothing to drop); RuntimeError naming the expected
    and given sizes for an input or hidden state of the wrong shape. A PackedSequence input gives
    a PackedSequence output and h_n in the caller's batch order (see the module docstring).
    """

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        _check_range(input_size, "input_size", 1)
        _check_range(hidden_size, "hidden_size", 1)
        _check_range(num_layers, "num_layers", 1)
        if isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        dt, k = np.dtype(dtype or np.float32), 1 / math.sqrt(hidden_size)
        gate, h_out, D = _GATES[mode] * hidden_size, proj_size or hidden_size, 2 if bidirectional else 1
        self._flat_weights_names = []
        for layer in range(num_layers):
            for suffix in ("", "_reverse")[:D]:
                shapes = {"weight_ih": (gate, input_size if layer == 0 else h_out * D), "weight_hh": (gate, h_out)}
                if bias:
                    shapes.update(bias_ih=(gate,), bias_hh=(gate,))
                if proj_size:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                for name, shape in shapes.items():
                    full = f"{name}_l{layer}{suffix}"
                    setattr(self, full, _uniform(shape, k, dt))
                    self._flat_weights_names.append(full)

    def flatten_parameters(self):
        """A no-op (PyTorch's packs the weights for cuDNN); kept so scripts that call it run."""

    @property
    def all_weights(self):
        """[[weight_ih, weight_hh, (bias_ih, bias_hh), (weight_hr)] per layer and direction]."""
        per = len(self._flat_weights_names) // (self.num_layers * (2 if self.bidirectional else 1))
        ws = [getattr(self, n) for n in self._flat_weights_names]
        return [ws[i:i + per] for i in range(0, len(ws), per)]

    def _weights(self, layer, suffix):
        get = lambda name: getattr(self, f"{name}_l{layer}{suffix}", None)   # noqa: E731
        return get("weight_ih"), get("bias_ih"), get("weight_hh"), get("bias_hh"), get("weight_hr")

    def forward(self, input, hx=None):
        from .utils.rnn import PackedSequence, pad_packed_sequence
        packed = input if isinstance(input, PackedSequence) else None
        lstm, sizes = self.mode == "LSTM", None
        if packed is not None:   # run on the padded batch in sorted order, row b only while it lasts
            input, _ = pad_packed_sequence(PackedSequence(packed.data, packed.batch_sizes))
            sizes = packed.batch_sizes._data
            if hx is not None and packed.sorted_indices is not None:
                order = packed.sorted_indices
                hx = (hx[0].index_select(1, order), hx[1].index_select(1, order)) if lstm else hx.index_select(1, order)
        elif input.ndim not in (2, 3):
            raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.ndim}D instead")
        batched = input.ndim == 3
        x = input if not batched or packed is not None else (input.transpose(0, 1) if self.batch_first else input)
        if not batched:
            x = x.unsqueeze(1)
        L, N, H_in = x.shape
        if H_in != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {H_in}")
        D = 2 if self.bidirectional else 1
        h_out = self.proj_size or self.hidden_size
        dt = getattr(self, self._flat_weights_names[0])._data.dtype
        if hx is None:
            h0 = Tensor(np.zeros((self.num_layers * D, N, h_out), dt))
            c0 = Tensor(np.zeros((self.num_layers * D, N, self.hidden_size), dt)) if lstm else None
        else:
            h0, c0 = hx if lstm else (hx, None)
            if not batched:
                h0 = h0.unsqueeze(1)
                c0 = c0.unsqueeze(1) if lstm else None
            _check_hidden(h0, (self.num_layers * D, N, h_out), "hidden[0]" if lstm else "hidden")
            if lstm:
                _check_hidden(c0, (self.num_layers * D, N, self.hidden_size), "hidden[1]")
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(("", "_reverse")[:D]):
                w_ih, b_ih, w_hh, b_hh, w_hr = self._weights(layer, suffix)
                xi = F.linear(x, w_ih, b_ih)                   # (L, N, G·H): every step's input part at once
                h, c = h0[layer * D + d], (c0[layer * D + d] if lstm else None)
                steps = [None] * L
                for t in (range(L - 1, -1, -1) if d else range(L)):
                    b = N if sizes is None else int(sizes[t])
                    if b == N:
                        h, c = _step(self.mode, xi[t], h, c, w_hh, b_hh, w_hr)
                        steps[t] = h
                        continue
                    hb, cb = _step(self.mode, xi[t, :b], h[:b], c[:b] if lstm else None, w_hh, b_hh, w_hr)
                    steps[t] = _cat([hb, Tensor(np.zeros((N - b,) + hb.shape[1:], dt))], 0)   # rows past their end
                    h = _cat([hb, h[b:]], 0)                   # their state waits (backward: until it starts)
                    c = _cat([cb, c[b:]], 0) if lstm else None
                outs.append(_stack(steps))
                h_n.append(h)
                c_n.append(c)
            x = outs[0] if D == 1 else _cat(outs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        output, h_n = x, _stack(h_n)
        c_n = _stack(c_n) if lstm else None
        if packed is not None:
            output = PackedSequence(_cat([x[t, :int(b)] for t, b in enumerate(sizes)], 0), packed.batch_sizes,
                                    packed.sorted_indices, packed.unsorted_indices)
            if packed.unsorted_indices is not None:     # the states back in the caller's batch order
                h_n = h_n.index_select(1, packed.unsorted_indices)
                c_n = c_n.index_select(1, packed.unsorted_indices) if lstm else None
            return output, ((h_n, c_n) if lstm else h_n)
        if not batched:
            output, h_n = output.squeeze(1), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if lstm else None
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, ((h_n, c_n) if lstm else h_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout:
            s += f", dropout={self.dropout:g}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


def _stack(ts):
    from .. import stack
    return stack(ts, 0)


def _cat(ts, dim):
    from .. import cat
    return cat(ts, dim)


class RNN(RNNBase):
    """Elman RNN, h' = tanh(x Wᵢₕᵀ + bᵢₕ + h Wₕₕᵀ + bₕₕ) (torch.nn.RNN; Elman 1990).

    Args (positional in PyTorch's order): input_size, hidden_size, num_layers=1,
    nonlinearity='tanh' ('tanh' or 'relu'), bias=True, batch_first=False, dropout=0.0,
    bidirectional=False. Shapes, parameters, errors: ``RNNBase``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device, dtype)
        self.nonlinearity = nonlinearity   # not in the repr: PyTorch's RNN shows no nonlinearity either


class LSTM(RNNBase):
    """Long short-term memory (torch.nn.LSTM; Hochreiter & Schmidhuber 1997, with the forget gate
    of Gers et al. 2000): gates i, f, g, o in that order in weight_ih/weight_hh.

    Args (positional in PyTorch's order): input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, proj_size=0. forward(input, (h_0, c_0))
    -> (output, (h_n, c_n)). Shapes, parameters, errors: ``RNNBase``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit (torch.nn.GRU; Cho et al. 2014): gates r, z, n in that order; the
    reset gate multiplies h Wₕₙᵀ + bₕₙ, as PyTorch's (and cuDNN's) variant does.

    Args (positional in PyTorch's order): input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False. Shapes, parameters, errors: ``RNNBase``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)


class RNNCellBase(Module):
    """One step of a recurrence (torch.nn.RNNCellBase): parameters weight_ih (G·H, input_size),
    weight_hh (G·H, H), bias_ih and bias_hh (G·H,), all ~ U(−1/√H, 1/√H).

    forward(input, hx=None): input (N, input_size) or unbatched (input_size,); hx (N, H) (an
    LSTMCell: a tuple (h, c)), zeros when None -> h' (N, H) (LSTMCell: (h', c')).
    Raises: ValueError for bad sizes or an input that is not 1-D or 2-D; RuntimeError naming the
    sizes for a mismatched input or hidden state.
    """

    def __init__(self, mode, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        _check_range(input_size, "input_size", 1)
        _check_range(hidden_size, "hidden_size", 1)
        self.mode, self.input_size, self.hidden_size, self.bias = mode, input_size, hidden_size, bias
        dt, k, gate = np.dtype(dtype or np.float32), 1 / math.sqrt(hidden_size), _GATES[mode] * hidden_size
        self.weight_ih = _uniform((gate, input_size), k, dt)
        self.weight_hh = _uniform((gate, hidden_size), k, dt)
        self.bias_ih = _uniform((gate,), k, dt) if bias else None
        self.bias_hh = _uniform((gate,), k, dt) if bias else None

    def forward(self, input, hx=None):
        name, lstm = type(self).__name__, self.mode == "LSTM"
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        if x.shape[1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {x.shape[1]} expected {self.input_size}")
        N, dt = x.shape[0], self.weight_ih._data.dtype
        if hx is None:
            zeros = Tensor(np.zeros((N, self.hidden_size), dt))
            h, c = zeros, (zeros if lstm else None)
        else:
            h, c = hx if lstm else (hx, None)
            if not batched:
                h, c = h.unsqueeze(0), (c.unsqueeze(0) if lstm else None)
            for i, t in enumerate((h, c)[:2 if lstm else 1]):
                if t.shape[0] != N:
                    raise RuntimeError(f"Input batch size {N} doesn't match hidden{i} batch size {t.shape[0]}")
                if t.shape[1] != self.hidden_size:
                    raise RuntimeError(f"hidden{i} has inconsistent hidden_size: got {t.shape[1]}, expected "
                                       f"{self.hidden_size}")
        h, c = _step(self.mode, F.linear(x, self.weight_ih, self.bias_ih), h, c, self.weight_hh, self.bias_hh, None)
        if not batched:
            h, c = h.squeeze(0), (c.squeeze(0) if lstm else None)
        return (h, c) if lstm else h

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(RNNCellBase):
    """One Elman step h' = tanh(x Wᵢₕᵀ + bᵢₕ + h Wₕₕᵀ + bₕₕ) (torch.nn.RNNCell); args input_size,
    hidden_size, bias=True, nonlinearity='tanh' ('tanh' or 'relu'). See ``RNNCellBase``."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity


class LSTMCell(RNNCellBase):
    """One LSTM step (torch.nn.LSTMCell): forward(input, (h, c)) -> (h', c'), gates i f g o.
    Args input_size, hidden_size, bias=True. See ``RNNCellBase`` and ``LSTM``."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)


class GRUCell(RNNCellBase):
    """One GRU step (torch.nn.GRUCell), gates r z n. Args input_size, hidden_size, bias=True.
    See ``RNNCellBase`` and ``GRU``."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)
