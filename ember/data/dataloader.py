"""``DataLoader``: batches of ember Tensors from a map-style dataset, as PyTorch's, in the main
process or in worker processes; ``default_collate``, ``default_convert``, ``get_worker_info``.

Worker processes (``num_workers > 0``): the main process walks the sampler and hands each
batch's indices to the workers in turn (batch k to worker k mod W, as torch); each worker
fetches and collates its batches and sends them back pickled; the main process yields them in
the sampler's order, so the batches are the same, in the same order, as with ``num_workers=0``.
"""
from __future__ import annotations

import collections.abc
import copy
import hashlib
import itertools
import json
import multiprocessing
import os
import pickle
import queue
import random
import time
import traceback
from dataclasses import dataclass
from numbers import Number
from typing import Any, Callable

import numpy as np

from ember.data.dataset import IterableDataset, fetch_batch
from ember.random import default_generator, manual_seed
from ember.tensor import Tensor

_COLLATE_ERROR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def _to_tensor(x) -> Tensor:
    """ember's dtype policy for batches: bool and integer -> int64, float64 stays, other -> float32."""
    a = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    if a.dtype.kind in "biu":
        a = a.astype(np.int64, copy=False)
    elif a.dtype != np.float64:
        a = a.astype(np.float32, copy=False)
    return Tensor(a)


def _stack(items: list) -> np.ndarray:
    arrays = [x._data if isinstance(x, Tensor) else np.asarray(x) for x in items]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        j = next(i for i, a in enumerate(arrays) if a.shape != arrays[0].shape)
        raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(arrays[0].shape)} at "
                           f"entry 0 and {list(arrays[j].shape)} at entry {j}")
    return np.stack(arrays)


def default_collate(batch: list):
    """Merge a list of samples into a batch, as ``torch.utils.data.default_collate``.

    Args:
        batch: a non-empty list of samples, all of the same structure.
    Returns, by the type of the first sample:
        Tensor -> one Tensor (B, ...) of its dtype; ndarray or NumPy scalar -> one Tensor
        (B, ...) (bool/int become int64, float64 stays, other floats become float32:
        ember's batch dtypes); Python float -> float64 Tensor (B,); Python int -> int64
        Tensor (B,); str/bytes -> the list unchanged; dict (Mapping) -> a dict of the same
        keys, each collated; namedtuple -> the same namedtuple of collated fields; tuple ->
        a *list* of collated fields (as torch); list and other sequences -> the same type.
    Raises:
        RuntimeError: tensors/arrays of different shapes (torch's ``stack`` message) or
            sequences of different lengths ("each element in list of batch should be of equal size").
        TypeError: another type (torch's message).
    Note: batches never require grad (ember stacks the arrays); torch's stack would track it.
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return Tensor(_stack(batch))
    if isinstance(elem, (np.ndarray, np.generic)) and not isinstance(elem, (np.str_, np.bytes_)):
        if elem.dtype.kind in "OSUV":
            raise TypeError(_COLLATE_ERROR.format(elem.dtype))
        return _to_tensor(_stack(batch))
    if isinstance(elem, bool):
        return _to_tensor(np.array(batch))
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, int):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        fields = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            if isinstance(elem, collections.abc.MutableMapping):
                clone = copy.copy(elem)
                clone.update(fields)
                return clone
            return type(elem)(fields)
        except TypeError:
            return fields
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(s) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(e) != size for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [default_collate(s) for s in zip(*batch)]
        if isinstance(elem, (tuple, list)):
            return fields if isinstance(elem, tuple) or type(elem) is list else type(elem)(fields)
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    if isinstance(elem, Number):
        return Tensor(np.array(batch))
    raise TypeError(_COLLATE_ERROR.format(type(elem)))


def default_convert(data):
    """Turn NumPy arrays inside ``data`` into Tensors, as ``torch.utils.data.default_convert``
    (used when ``batch_size=None``): ndarray -> Tensor (its dtype), mappings and sequences are
    converted element by element, anything else (numbers, str, Tensors) is returned as is."""
    if isinstance(data, np.ndarray) and data.dtype.kind not in "OSUV":
        return Tensor(data)
    if isinstance(data, collections.abc.Mapping):
        fields = {k: default_convert(v) for k, v in data.items()}
        try:
            return type(data)(fields)
        except TypeError:
            return fields
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, (tuple, list)):
        return type(data)(default_convert(d) for d in data)
    return data


@dataclass(frozen=True)
class WorkerInfo:
    """What ``get_worker_info()`` returns inside a worker: ``id`` in [0, num_workers),
    ``num_workers``, ``seed`` (ember's generator in this worker was seeded with it) and this
    worker's copy of ``dataset``."""
    id: int
    num_workers: int
    seed: int
    dataset: Any


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """Inside a DataLoader worker process, its ``WorkerInfo``; in the main process, None
    (as ``torch.utils.data.get_worker_info``); e.g. to split an index range among workers."""
    return _worker_info


def _fetch(dataset, indices, collate_fn, auto_batch: bool):
    """One batch (or one sample when ``auto_batch`` is False), as yielded by the loader."""
    if not auto_batch:
        sample = dataset[indices]
        return default_convert(sample) if collate_fn is None else collate_fn(sample)
    if collate_fn is not None:
        return collate_fn([dataset[int(i)] for i in indices])
    if hasattr(dataset, "__getitems__"):  # ember's fast path: the dataset collates the batch itself
        out = fetch_batch(dataset, indices)
        return tuple(_to_tensor(x) for x in out) if isinstance(out, (tuple, list)) else _to_tensor(out)
    return default_collate([dataset[int(i)] for i in indices])


class _WorkerError:
    """An exception raised in a worker, carried to the main process and raised there again."""

    def __init__(self, exc: BaseException, worker_id: int):
        self.exc_type = type(exc)
        try:
            pickle.dumps(self.exc_type)
        except Exception:  # a class defined inside a function cannot travel; keep its message
            self.exc_type = RuntimeError
        self.message = (f"Caught {type(exc).__name__} in DataLoader worker process {worker_id}.\n"
                        f"Original {traceback.format_exc()}")

    def reraise(self):
        try:
            err = self.exc_type(self.message)
        except Exception:
            err = RuntimeError(self.message)
        raise err


_PARENT_CHECK_S = 1.0   # how often an idle worker checks that the process that started it is alive


def _worker_loop(dataset, collate_fn, auto_batch, index_queue, result_queue, worker_id, num_workers,
                 seed, worker_init_fn):
    """A worker process: seed, run ``worker_init_fn``, then fetch batches until told to stop (None),
    or until the process that started it has gone (killed: nobody will say stop). It checks every
    ``_PARENT_CHECK_S`` seconds while idle, as PyTorch's workers do (its ``ManagerWatchdog``);
    without the check a worker of a SIGKILLed process waited forever, holding the terminal's or the
    launcher's pipes open (``mpiexec`` then never returned)."""
    global _worker_info
    parent = os.getppid()
    _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
    manual_seed(seed)
    random.seed(seed)
    init_error = None
    if worker_init_fn is not None:
        try:
            worker_init_fn(worker_id)
        except Exception as e:
            init_error = _WorkerError(e, worker_id)
    while True:
        try:
            job = index_queue.get(timeout=_PARENT_CHECK_S)
        except queue.Empty:
            if os.getppid() != parent:   # orphaned: exit at once (no queue flushing for a reader that is gone)
                os._exit(0)
            continue
        if job is None:
            break
        key, indices = job
        try:
            if init_error is not None:
                init_error.reraise()
            out = _fetch(dataset, indices, collate_fn, auto_batch)
            payload = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            payload = pickle.dumps(_WorkerError(e, worker_id), protocol=pickle.HIGHEST_PROTOCOL)
        result_queue.put((key, payload))


class _WorkerPool:
    """``num_workers`` processes, one index queue each, one shared result queue."""

    def __init__(self, loader: "DataLoader", seeds: list[int]):
        ctx = loader.multiprocessing_context
        self.result_queue = ctx.Queue()
        self.index_queues, self.workers = [], []
        for w in range(loader.num_workers):
            q = ctx.Queue()
            p = ctx.Process(target=_worker_loop, daemon=True,
                            args=(loader.dataset, loader.collate_fn, loader._auto_collation, q,
                                  self.result_queue, w, loader.num_workers, seeds[w], loader.worker_init_fn))
            p.start()
            self.index_queues.append(q)
            self.workers.append(p)

    def get(self, timeout: float):
        """Next (key, payload) from any worker. Raises RuntimeError when ``timeout`` (> 0)
        seconds pass, or when a worker has died."""
        deadline = time.monotonic() + timeout if timeout > 0 else None
        while True:
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            try:
                return self.result_queue.get(timeout=wait)
            except queue.Empty:
                dead = [p for p in self.workers if not p.is_alive()]
                if dead:
                    pids = ", ".join(f"{p.pid} (exit code {p.exitcode})" for p in dead)
                    self.shutdown(wait=False)
                    raise RuntimeError(f"DataLoader worker (pid(s) {pids}) exited unexpectedly") from None
                if deadline is not None and time.monotonic() >= deadline:
                    self.shutdown(wait=False)
                    raise RuntimeError(f"DataLoader timed out after {timeout} seconds") from None

    def shutdown(self, wait: bool = True):
        """Stop the workers: ask each to finish (then wait up to 5 s), or, with ``wait=False``
        (a worker died or timed out), terminate them at once."""
        for q, p in zip(self.index_queues, self.workers):
            if wait and p.is_alive():
                try:
                    q.put(None)
                except (OSError, ValueError):
                    pass
        for p in self.workers:
            p.join(timeout=5 if wait else 0)
            if p.is_alive():
                p.terminate()
                p.join()
        for q in (*self.index_queues, self.result_queue):
            q.cancel_join_thread()
            q.close()
        self.workers = []

    def __del__(self):
        try:
            if getattr(self, "workers", None):
                self.shutdown()
        except Exception:  # interpreter shutdown: the processes are daemons and die with us
            pass


def _check_positive_int(name: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} should be a positive integer value, but got {name}={value}")
    return int(value)


class DataLoader:
    """Iterate over a map-style dataset in batches, as ``torch.utils.data.DataLoader``.

    Args (PyTorch's names, order and defaults):
        dataset: a map-style dataset (``__getitem__``, ``__len__``, optionally
            ``__getitems__``, see ``ember.data.Dataset``).
        batch_size: positive int, samples per batch; None yields single samples
            (no batching; NumPy arrays become Tensors, see ``default_convert``).
        shuffle: draw a fresh permutation at the start of every epoch (every ``iter()``).
        sampler: an iterable of indices (with ``__len__``) to draw samples in that order;
            excludes ``shuffle``.
        batch_sampler: an iterable of lists of indices, one list per batch; excludes
            batch_size, shuffle, sampler and drop_last.
        num_workers: 0 loads in this process; N > 0 starts N worker processes (see the
            module docstring): same batches, same order as 0.
        collate_fn: called on the list of ``dataset[i]`` samples of a batch (in the worker);
            its result is yielded as is. Default: ``default_collate``, or, for datasets with
            ``__getitems__``, ember's batched fast path (one call per batch).
        pin_memory: accepted for PyTorch programs; ember runs on the CPU, so it does nothing.
        drop_last: drop the last batch if it has fewer than ``batch_size`` samples.
        timeout: seconds to wait for a batch from the workers (0: forever), as torch.
        worker_init_fn: called as ``worker_init_fn(worker_id)`` in each worker, after seeding.
        multiprocessing_context: a start method name ("fork", "spawn", "forkserver") or a
            context; default "fork" where available (the dataset then need not be picklable).
        generator: ``np.random.Generator`` for shuffling; default
            ``ember.random.default_generator()`` looked up at each ``iter()``, so
            ``ember.manual_seed(s)`` makes the order reproducible.
        prefetch_factor: batches in flight per worker (default 2 when num_workers > 0).
        persistent_workers: keep the worker processes between epochs.
        pin_memory_device, in_order: accepted for PyTorch programs (batches always come in order).
    Raises:
        ValueError: torch's messages for a non-positive batch_size, negative num_workers or
            timeout, prefetch_factor or persistent_workers without workers, and the mutually
            exclusive options above.
        RuntimeError: a worker died, or no batch came within ``timeout`` seconds; an exception
            raised while loading in a worker is raised again here, same type, with the
            worker's traceback in its message ("Caught ValueError in DataLoader worker process 0...").

    Yields (default collate): for a dataset of ``(image, label)`` samples, ``(x, y)``
    Tensors, e.g. FashionMNIST gives x float32 (B, 1, 28, 28) and y int64 (B,); B is
    ``batch_size`` except maybe for the last batch. Worker seeds: worker w reseeds ember's
    generator (and Python's ``random``) from a hash of the loader's generator state, the
    epoch and w, without drawing from it, so the main process's random stream, and so the
    shuffling of later epochs, is the same with and without workers.
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn: Callable | None = None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn: Callable | None = None, multiprocessing_context=None,
                 generator: np.random.Generator | None = None, *, prefetch_factor: int | None = None,
                 persistent_workers: bool = False, pin_memory_device: str = "", in_order: bool = True):
        if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing."
                             "let num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None.")
        if prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if isinstance(dataset, IterableDataset):   # a stream: no indices to sample or shuffle (PyTorch's checks)
            for name, value in (("shuffle", shuffle), ("sampler", sampler), ("batch_sampler", batch_sampler)):
                if value not in (None, False):
                    raise ValueError(f"DataLoader with IterableDataset: expected unspecified {name} option, but got "
                                     f"{name}={value}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, "
                                 "sampler, and drop_last")
            batch_size = None
            auto = True
        else:
            batch_size = _check_positive_int("batch_size", batch_size, allow_none=True)
            if batch_size is None and drop_last:
                raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive "
                                 "with drop_last")
            auto = batch_size is not None
        if multiprocessing_context is None and num_workers > 0:
            methods = multiprocessing.get_all_start_methods()
            multiprocessing_context = "fork" if "fork" in methods else methods[0]
        if isinstance(multiprocessing_context, str):
            multiprocessing_context = multiprocessing.get_context(multiprocessing_context)
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, bool(shuffle)
        self.sampler, self.batch_sampler, self.num_workers = sampler, batch_sampler, int(num_workers)
        self.collate_fn, self.pin_memory, self.drop_last = collate_fn, bool(pin_memory), bool(drop_last)
        self.timeout, self.worker_init_fn, self.generator = timeout, worker_init_fn, generator
        self.multiprocessing_context = multiprocessing_context
        self.prefetch_factor = (2 if prefetch_factor is None else prefetch_factor) if num_workers else None
        self.persistent_workers, self.pin_memory_device, self.in_order = persistent_workers, pin_memory_device, in_order
        self._auto_collation = auto  # batches of indices (True) or single indices (batch_size=None)
        self._pool: _WorkerPool | None = None
        self._epoch = 0

    def __len__(self) -> int:
        """Number of batches per epoch (samples, when ``batch_size=None``)."""
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)                                 # TypeError if the stream has no length
            return n if self.batch_size is None else (n // self.batch_size if self.drop_last else -(-n // self.batch_size))
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _rng(self) -> np.random.Generator:
        return default_generator() if self.generator is None else self.generator

    def _index_batches(self):
        """The epoch's batches of indices: int64 arrays (or batch_sampler's lists, or single
        indices when batch_size=None), from the sampler or a fresh permutation."""
        if self.batch_sampler is not None:
            return iter(self.batch_sampler)
        if self.sampler is None:  # the fast path: slices of one index array
            n = len(self.dataset)
            order = self._rng().permutation(n) if self.shuffle else np.arange(n)
            if self.batch_size is None:
                return iter(order.tolist())
            stop = len(self) * self.batch_size
            return (order[start:start + self.batch_size] for start in range(0, stop, self.batch_size))
        if self.batch_size is None:
            return iter(self.sampler)
        return self._chunks(iter(self.sampler))

    def _chunks(self, it):
        while chunk := list(itertools.islice(it, self.batch_size)):
            if len(chunk) < self.batch_size and self.drop_last:
                return
            yield np.asarray(chunk, dtype=np.int64)

    def __iter__(self):
        self._epoch += 1
        if isinstance(self.dataset, IterableDataset):
            return self._stream()
        batches = self._index_batches()
        if self.num_workers == 0:
            return (_fetch(self.dataset, idx, self.collate_fn, self._auto_collation) for idx in batches)
        return self._from_workers(batches)

    def _stream(self):
        """The batches of an IterableDataset: its samples in order, batch_size at a time, collated
        (batch_size=None: each sample through default_convert). Raises NotImplementedError for
        num_workers > 0 (workers here fetch by index)."""
        if self.num_workers:
            raise NotImplementedError("DataLoader: an IterableDataset with num_workers > 0 is not supported by ember "
                                      "(its workers fetch samples by index); use num_workers=0")
        it = iter(self.dataset)
        if self.batch_size is None:
            yield from ((self.collate_fn or default_convert)(x) for x in it)
            return
        collate = self.collate_fn or default_collate
        while chunk := list(itertools.islice(it, self.batch_size)):
            if len(chunk) < self.batch_size and self.drop_last:
                return
            yield collate(chunk)

    def _worker_seeds(self) -> list[int]:
        state = json.dumps(self._rng().bit_generator.state, sort_keys=True, default=str).encode()
        entropy = int.from_bytes(hashlib.sha256(state).digest()[:16], "little")
        seq = np.random.SeedSequence(entropy, spawn_key=(self._epoch,))
        return [int(s.generate_state(1, np.uint64)[0] >> np.uint64(1)) for s in seq.spawn(self.num_workers)]  # < 2**63, as torch's

    def _from_workers(self, batches):
        if self._pool is None or not self._pool.workers:
            self._pool = _WorkerPool(self, self._worker_seeds())
        pool, tag, end = self._pool, self._epoch, object()
        in_flight = max(1, self.prefetch_factor * self.num_workers)
        sent = received = 0
        ready = {}

        def send(idx):
            nonlocal sent
            pool.index_queues[sent % self.num_workers].put(((tag, sent), idx))
            sent += 1

        try:
            for idx in itertools.islice(batches, in_flight):
                send(idx)
            while received < sent:
                while received not in ready:
                    (epoch, key), payload = pool.get(self.timeout)
                    if epoch == tag:  # results of an abandoned earlier epoch are dropped
                        ready[key] = payload
                out = pickle.loads(ready.pop(received))
                received += 1
                if (idx := next(batches, end)) is not end:
                    send(idx)
                if isinstance(out, _WorkerError):
                    out.reraise()
                yield out
        finally:
            if not self.persistent_workers:
                pool.shutdown()
                self._pool = None

    def __del__(self):
        if getattr(self, "_pool", None) is not None:
            self._pool.__del__()
