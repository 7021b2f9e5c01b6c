"""Variable-length sequences for the recurrent layers (torch.nn.utils.rnn): padding, and the
packed form that RNN/LSTM/GRU run without computing past each sequence's end.

A PackedSequence holds the sequences sorted by decreasing length and interleaved time-major:
``data`` (Σ lengths, *) is step 0 of every sequence, then step 1 of every sequence still
running, ...; ``batch_sizes[t]`` is how many sequences are longer than t. ``sorted_indices``
maps sorted order to the caller's batch order (None when the caller sorted, enforce_sorted=True)
and ``unsorted_indices`` back. Every function here is a composition of ember's differentiable ops
(indexing, cat, stack), so gradients flow through packing and padding.
Source: PyTorch 2.13's torch.nn.utils.rnn (names, argument orders, error messages).
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ...tensor import Tensor

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "pack_sequence",
           "unpad_sequence", "unpack_sequence"]


class PackedSequence(namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """(data, batch_sizes, sorted_indices, unsorted_indices), as torch.nn.utils.rnn.PackedSequence."""
    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None and sorted_indices is not None:
            unsorted_indices = Tensor(np.argsort(sorted_indices._data).astype(np.int64))
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def _order(self):
        """The caller's batch order as an index array into sorted order (None: the same order)."""
        return None if self.unsorted_indices is None else self.unsorted_indices._data


def _lengths(lengths) -> np.ndarray:
    a = np.asarray(getattr(lengths, "_data", lengths)).astype(np.int64).reshape(-1)
    return a


def pack_padded_sequence(input, lengths, batch_first: bool = False, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch (T, B, *) (batch_first: (B, T, *)) of sequences of ``lengths``.

    Raises: RuntimeError when enforce_sorted and the lengths do not decrease, or a length is 0
    (PyTorch's messages)."""
    lens = _lengths(lengths)
    if enforce_sorted:
        if np.any(np.diff(lens) > 0):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
                               "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to "
                               "sidestep this requirement if you do not need ONNX exportability.")
        order = None
    else:
        order = np.argsort(-lens, kind="stable")
        lens = lens[order]
    if lens.size and lens.min() <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' "
                           "that is <= 0")
    x = input.transpose(0, 1) if batch_first else input       # (T, B, *)
    if order is not None:
        x = x.index_select(1, Tensor(order))
    batch_sizes = np.array([(lens > t).sum() for t in range(int(lens[0]))], np.int64)
    from ... import cat
    data = cat([x[t, :int(b)] for t, b in enumerate(batch_sizes)], 0)
    sorted_indices = None if order is None else Tensor(order.astype(np.int64))
    return PackedSequence(data, Tensor(batch_sizes), sorted_indices)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None):
    """The inverse of pack_padded_sequence: (padded (T, B, *) or (B, T, *), lengths (B,) int64),
    in the caller's batch order; total_length pads T further.
    Raises: ValueError for a total_length shorter than the longest sequence."""
    from ... import cat, stack
    sizes = sequence.batch_sizes._data.astype(np.int64)
    T, B = len(sizes), int(sizes[0])
    if total_length is not None:
        if total_length < T:
            raise ValueError(f"Expected total_length to be at least the length of the longest sequence in input, "
                             f"but got total_length={total_length} and max sequence length being {T}")
    data, rows, start = sequence.data, [], 0
    fill = Tensor(np.full((B,) + tuple(data.shape[1:]), padding_value, data._data.dtype))
    for b in sizes:
        part = data[start:start + int(b)]
        rows.append(part if b == B else cat([part, fill[int(b):]], 0))
        start += int(b)
    for _ in range(T, total_length or T):
        rows.append(fill)
    padded = stack(rows, 0)                                     # (T, B, *) in sorted order
    lengths = np.array([(sizes > i).sum() for i in range(B)], np.int64)
    order = sequence._order()
    if order is not None:
        padded, lengths = padded.index_select(1, Tensor(order)), lengths[order]
    return (padded.transpose(0, 1) if batch_first else padded), Tensor(lengths)


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0, padding_side: str = "right"):
    """Stack tensors of shapes (L_i, *) into (L_max, B, *) (batch_first: (B, L_max, *)), padding
    each with padding_value on the right (or the left)."""
    from ... import cat, stack
    seqs = list(sequences)
    longest = max(s.shape[0] for s in seqs)
    out = []
    for s in seqs:
        fill = Tensor(np.full((longest - s.shape[0],) + tuple(s.shape[1:]), padding_value, s._data.dtype))
        out.append(s if fill.shape[0] == 0 else cat([s, fill] if padding_side == "right" else [fill, s], 0))
    padded = stack(out, 0)                                      # (B, L_max, *)
    return padded if batch_first else padded.transpose(0, 1)


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """pack_padded_sequence(pad_sequence(sequences), their lengths)."""
    seqs = list(sequences)
    return pack_padded_sequence(pad_sequence(seqs), [s.shape[0] for s in seqs], enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences, lengths, batch_first: bool = False):
    """The list of sequences (L_i, *) a padded batch holds."""
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    return [x[i, :int(n)] for i, n in enumerate(_lengths(lengths))]


def unpack_sequence(packed_sequences: PackedSequence):
    """The list of sequences a PackedSequence holds, in the caller's order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
