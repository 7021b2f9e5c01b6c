"""Reused memory for the kernels' large outputs: a buffer is handed out again once nothing holds it.

Why: NumPy takes an array of a few MB from ``mmap``, fresh from the operating system, and the
first write to each 4 KiB page of it traps into the kernel (a minor page fault) to be given a
zeroed page. A CIFAR-style training step (``ember bench``, batch 128) made 3,333 such faults, and
the faults were 6–8% of its time on two threads; the padded copy in front of each 3×3 conv took
0.7–0.9 ms a call with a fresh array and 0.09–0.36 ms when it got its freed buffer back
(benchmarks/RESULTS.md, twelfth session). PyTorch's CUDA allocator caches blocks for the same
reason (``torch.cuda.empty_cache`` hands them back); this is that idea for the kernels' arrays.

How the pool knows a buffer is free: each buffer it hands out is a view of an *owner*, a 1-D
uint8 array that only the pool creates. Every array that shares the owner's memory (the view
handed out, its transposes and reshapes, a Tensor over any of them, a memoryview) holds a
reference to the owner, directly or through the views between (``ndarray.base``). So when the
owner's reference count is back to the pool's own references, nothing can read or write its
memory any more, and the next request of the same size may reuse it. Nothing else changes:
a reused buffer is uninitialised, as ``np.empty``'s is (``zeros`` fills it).

Only arrays of at least ``MIN_BYTES`` are pooled (smaller ones come from malloc's heap, already
mapped), and the pool holds at most ``LIMIT_BYTES`` (env ``EMBER_BUFFER_POOL_MB``, default 512;
``0`` turns the pool off): past it, free buffers are dropped (oldest first) and, if that is not
enough, the request gets a plain ``np.empty``. ``empty_cache()`` drops every free buffer.
"""
import math
import os
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 18


def _limit_from_env():
    """``EMBER_BUFFER_POOL_MB`` in bytes (default 512 MiB). Raises ValueError naming the variable."""
    raw = os.environ.get("EMBER_BUFFER_POOL_MB", "512")
    try:
        mb = float(raw)
    except ValueError:
        mb = -1.0
    if not mb >= 0:
        raise ValueError(f"EMBER_BUFFER_POOL_MB must be a number of MiB >= 0, got {raw!r}")
    return int(mb * (1 << 20))


LIMIT_BYTES = _limit_from_env()

_owners = {}            # nbytes -> [owner, ...], oldest first
_held = 0               # bytes of all owners
_lock = threading.Lock()


def _refs(owner):
    """The owner's reference count as seen from inside this module's scan (``_FREE`` when free)."""
    return sys.getrefcount(owner)


def _calibrate():
    """The count ``_refs`` reports for an owner that only the pool holds, measured on this Python
    the way ``_take`` sees one (list entry + loop variable + the call's argument)."""
    probe = [np.empty(1, np.uint8)]
    for owner in probe:
        return _refs(owner)


_FREE = _calibrate()


def _take(nbytes):
    """A free owner of ``nbytes`` bytes from the pool, or a new one added to it, or None (over the limit)."""
    global _held
    with _lock:
        bucket = _owners.get(nbytes)
        if bucket is not None:
            for owner in bucket:
                if _refs(owner) == _FREE:
                    return owner
        if _held + nbytes > LIMIT_BYTES:
            _drop_free(_held + nbytes - LIMIT_BYTES)
            if _held + nbytes > LIMIT_BYTES:
                return None
        owner = np.empty(nbytes, np.uint8)
        _owners.setdefault(nbytes, []).append(owner)
        _held += nbytes
        return owner


def _drop_free(need):
    """Forget free owners (each size's oldest first) until ``need`` bytes are released or none is left."""
    global _held
    for nbytes in list(_owners):
        bucket = _owners[nbytes]
        keep = []
        for owner in bucket:
            if need > 0 and _refs(owner) == _FREE:
                need -= nbytes
                _held -= nbytes
            else:
                keep.append(owner)
        if keep:
            _owners[nbytes] = keep
        else:
            del _owners[nbytes]
        if need <= 0:
            return


def empty(shape, dtype):
    """An uninitialised C-contiguous array of ``shape`` and ``dtype``, like ``np.empty``.

    Shapes: any. Large arrays (≥ ``MIN_BYTES``) come from the pool: memory that an earlier
    array of the same byte size used and that nothing refers to any more (already mapped, so
    writing it does not fault), else new memory the pool keeps. Raises what ``np.empty`` raises
    for a bad shape or dtype.
    """
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize      # math.prod: 0.2 µs, np.prod 5 µs
    if nbytes < MIN_BYTES or LIMIT_BYTES <= 0:
        return np.empty(shape, dtype)
    owner = _take(nbytes)
    if owner is None:
        return np.empty(shape, dtype)
    return owner.view(dtype).reshape(shape)


def zeros(shape, dtype):
    """``empty(shape, dtype)`` filled with zeros: like ``np.zeros``, from the pool when large."""
    out = empty(shape, dtype)
    out.fill(0)
    return out


def empty_cache():
    """Release every pooled buffer that nothing refers to (as ``torch.cuda.empty_cache`` does);
    buffers still in use stay. Returns the bytes released."""
    with _lock:
        before = _held
        _drop_free(before)
        return before - _held


def held_bytes():
    """Bytes of memory the pool holds now, in use or free."""
    return _held


def _forget():  # a forked child (a DataLoader worker) starts with an empty pool of its own
    global _owners, _held, _lock
    _owners, _held, _lock = {}, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget)
