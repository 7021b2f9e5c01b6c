"""``DistributedDataParallel``: data-parallel training, each rank on its shard of every batch.

Every rank holds a full copy of the model and runs forward and backward on its own part of the
global batch. Data parallelism is correct because the loss is a mean over the batch: with W ranks
of B images each,

    dL/dθ = 1/(W·B) Σ_i dℓ_i/dθ = 1/W Σ_r g_r,      g_r = 1/B Σ_{i in shard r} dℓ_i/dθ

so averaging the ranks' gradients (one allreduce) gives every rank the gradient of the whole
global batch, the optimizers take the same step, and the copies stay identical (Li et al.,
"PyTorch Distributed: Experiences on Accelerating Data Parallel Training", VLDB 2020).

Gradients travel in a few flat buckets (``bucket_cap_mb``, PyTorch's 25 MB default: LeNet-5's
61,706 float32 gradients are one 241 KiB bucket), one sum per bucket in a fixed order, so a
rerun on the same ranks gives bit-identical weights. When every rank runs on one host the sum goes
through a shared-memory window (``ember.distributed.shm.SharedSum``: the last rank to arrive
finishes without waiting for the others to poll), else through MPI's allreduce. The reduction
runs once backward() has finished (``engine_hook``), not overlapped with it as PyTorch does.
"""
from __future__ import annotations

import contextlib

import numpy as np

from ... import distributed as dist
from ...autograd import Function, is_grad_enabled
from ...distributed import shm
from ...distributed.group import _array
from ...tensor import Tensor
from ..module import Module
from . import engine_hook


class _Bucket:
    """Consecutive arrays of one dtype laid end to end in one flat buffer (one collective)."""

    def __init__(self, index, shapes, dtype):
        self.index, self.shapes = index, shapes
        self.sizes = [int(np.prod(s)) for s in shapes]
        self.offsets = np.cumsum([0] + self.sizes)
        self.flat = np.empty(int(self.offsets[-1]), dtype)
        self._views = None

    def pack(self, arrays, divisor=None, out=None):
        """Copy the arrays end to end into ``out`` (default: the flat buffer; None: zeros), then
        divide it by ``divisor`` if given (PyTorch's DDP divides each gradient by the world size
        before its SUM allreduce). One ``np.concatenate`` when every array is there: a NumPy call
        per array cost ~5 µs here (LeNet-5's ten: 60-70 µs a step against ~25). A power-of-two
        divisor is a multiplication by its inverse: the same numbers bit for bit (both are the
        exact quotient, rounded once), and no slower division."""
        out = self.flat if out is None else out
        parts = [arrays[i] for i in self.index]
        if all(a is not None for a in parts):
            np.concatenate([a.reshape(-1) for a in parts], out=out)
        else:
            for a, off, n in zip(parts, self.offsets, self.sizes):
                out[off:off + n] = 0 if a is None else a.reshape(-1)
        if divisor is not None and divisor & (divisor - 1) == 0:
            np.multiply(out, 1.0 / divisor, out=out)
        elif divisor is not None:
            np.divide(out, divisor, out=out)

    def views(self):
        """(index, view of the flat buffer shaped like the array) for each array in the bucket
        (made once: the buffer is never reallocated)."""
        if self._views is None:
            self._views = [(i, self.flat[off:off + n].reshape(s))
                           for i, off, n, s in zip(self.index, self.offsets, self.sizes, self.shapes)]
        return self._views


def _make_buckets(arrays, cap_bytes):
    """Split arrays (in order) into buckets of one dtype and at most ``cap_bytes`` (an array
    larger than the cap gets a bucket of its own)."""
    buckets, cur, size, dtype = [], [], 0, None
    for i, a in enumerate(arrays):
        if cur and (a.dtype != dtype or size + a.nbytes > cap_bytes):
            buckets.append(_Bucket(cur, [arrays[j].shape for j in cur], dtype))
            cur, size = [], 0
        cur.append(i)
        size, dtype = size + a.nbytes, a.dtype
    if cur:
        buckets.append(_Bucket(cur, [arrays[j].shape for j in cur], dtype))
    return buckets


def _describe_parameter(key, entry) -> str:
    """Words for one ``parameter_signature`` entry in a mismatch error."""
    if not isinstance(entry, list):
        return "no further parameter"
    name, shape, dtype = entry
    return f"{name} of shape {tuple(shape)} and dtype {dtype}"


def _broadcast_in_place(arrays, src=0):
    """Overwrite every array with rank ``src``'s, one broadcast per dtype."""
    for b in _make_buckets(arrays, float("inf")):
        b.pack(arrays)
        dist.broadcast(b.flat, src)
        for i, v in b.views():
            arrays[i][...] = v


class _ReduceAfterBackward(Function):
    """Identity on the module's output whose backward (the first node that backward visits)
    queues the gradient allreduce for the end of this backward pass."""

    @staticmethod
    def forward(ctx, x, ddp):
        ctx.ddp = ddp
        return x.view()

    @staticmethod
    def backward(ctx, grad_out):
        engine_hook.queue_callback(ctx.ddp._reduce_gradients)
        return grad_out, None


class DistributedDataParallel(Module):
    """Wrap a module for data-parallel training over the default process group (PyTorch's DDP).

    At construction rank 0's parameters and buffers are broadcast to every rank (so different
    random initialisations do not matter), and every rank checks that all ranks hold the same
    architecture (names, shapes and dtypes; RuntimeError naming the differing ranks). Forward
    calls the wrapped module; after ``loss.backward()`` each parameter's ``.grad`` holds the
    average over the ranks of the ranks' gradients, so ``optimizer.step()`` is the same on all.

    Args:
        module: the model (an ember ``nn.Module``).
        device_ids, output_device: PyTorch's; must be None (ember runs on the CPU).
        broadcast_buffers: as PyTorch's default True: rank 0's buffers (BatchNorm running
            statistics) are copied to every rank at the start of each training forward.
        bucket_cap_mb: bucket size in MiB (PyTorch's default 25).
        find_unused_parameters: accepted for compatibility and ignored: a parameter that got no
            gradient on a rank counts as a zero gradient there, and every rank ends with the
            average (PyTorch leaves a parameter unused on every rank at None; ember gives zeros).
    Attributes:
        module: the wrapped module; ``state_dict()`` keys carry PyTorch DDP's ``module.`` prefix.
        require_backward_grad_sync: False inside ``no_sync()``.
    Note:
        BatchNorm normalises each rank's shard with that shard's own batch statistics (PyTorch's
        default; SyncBatchNorm is not provided), so a network with BatchNorm on 2 ranks × 32 is
        not the same function as on 1 × 64; without BatchNorm it is (tests/test_distributed.py).
    Raises:
        ValueError: before init_process_group (or a device_ids given); TypeError if module is not
            a Module; DistBackendError if a rank fails in a collective.
    Example:
        >>> dist.init_process_group()
        >>> model = DistributedDataParallel(lenet5())
        >>> loss = F.cross_entropy(model(x_shard), y_shard); loss.backward()   # grads averaged
    """

    def __init__(self, module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None, bucket_cap_mb: float = 25,
                 find_unused_parameters: bool = False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be an ember nn.Module, "
                            f"got {type(module).__name__}")
        if device_ids is not None or output_device is not None:
            raise ValueError("DistributedDataParallel: device_ids and output_device must be None "
                             "(ember runs on the CPU)")
        if process_group is not None or dim != 0:
            raise ValueError("DistributedDataParallel: only the default process group and dim=0 exist")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb}")
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.bucket_cap_mb = bucket_cap_mb
        self.find_unused_parameters = find_unused_parameters
        self.require_backward_grad_sync = True
        self.world_size = dist.get_world_size()
        dist.check_same(dist.parameter_signature(module), what="model (parameter names, shapes, dtypes)",
                        describe=_describe_parameter)
        self._params = [p for p in module.parameters() if p.requires_grad]
        self._has_buffers = any(True for _ in module.named_buffers())   # LeNet-5: none, no per-step walk
        self._grad_buckets = self._buckets_for_params()   # and self._sums, one per bucket
        if self.world_size > 1:
            _broadcast_in_place([_array(p) for p in module.parameters()]
                                + [_array(b) for _, b in module.named_buffers()])

    def forward(self, *inputs, **kwargs):
        if engine_hook.pending():
            raise RuntimeError("DistributedDataParallel: the last backward() queued the gradient allreduce "
                               "but the autograd engine never ran it (ember.autograd.backward runs "
                               "ember.autograd._post_backward_callbacks at its end)")
        if self.world_size > 1 and self.broadcast_buffers and self._has_buffers and self.module.training:
            _broadcast_in_place([_array(b) for _, b in self.module.named_buffers()])
        out = self.module(*inputs, **kwargs)
        if self.world_size > 1 and self.require_backward_grad_sync and is_grad_enabled():
            out = self._mark(out)
        return out

    def _mark(self, out):
        """Pass every output tensor that needs a gradient through ``_ReduceAfterBackward``."""
        if isinstance(out, (tuple, list)):
            return type(out)(self._mark(o) for o in out)
        if isinstance(out, dict):
            return {k: self._mark(v) for k, v in out.items()}
        if getattr(out, "requires_grad", False):
            return _ReduceAfterBackward.apply(out, self)
        return out

    def _reduce_gradients(self) -> None:
        """Average every parameter's gradient over the ranks: each gradient divided by the world
        size as it is copied into its bucket (PyTorch's order), then one SUM allreduce per
        bucket, in place, in a fixed order, and the averages copied back into the ``.grad``
        arrays. The buckets are allocated once (again only if a parameter changes shape or dtype,
        e.g. after ``.to(float64)``). Called once per backward pass."""
        params = self._params
        arrays = [_array(p) for p in params]
        if self._bucket_layout != [(a.shape, a.dtype) for a in arrays]:
            self._grad_buckets = self._buckets_for_params()
        grads = [None if p.grad is None else _array(p.grad) for p in params]
        for b, shared_sum in zip(self._grad_buckets, self._sums):
            if shared_sum is not None:   # packed straight into this rank's shared slot
                b.pack(grads, self.world_size, out=shared_sum.next_slot())
                shared_sum.sum_into(b.flat)
            else:
                b.pack(grads, self.world_size)
                dist.all_reduce(b.flat, dist.ReduceOp.SUM)
            for i, v in b.views():
                if grads[i] is None:
                    params[i].grad = Tensor(v.copy())
                else:
                    grads[i][...] = v

    def _buckets_for_params(self):
        """The gradient buckets of the current parameters, and (``self._sums``) for each the
        shared-memory sum that reduces it when every rank is on this host (``distributed/shm.py``;
        else None: MPI's allreduce). Collective on several ranks: every rank calls it at the same
        point (construction, or the first backward after a parameter changed shape or dtype)."""
        self._bucket_layout = [(_array(p).shape, _array(p).dtype) for p in self._params]
        buckets = _make_buckets([_array(p) for p in self._params], self.bucket_cap_mb * 2 ** 20)
        for s in getattr(self, "_sums", ()):
            if s is not None:
                s.free()
        self._sums = [None] * len(buckets)
        if self.world_size > 1 and shm.enabled(sum(b.flat.nbytes for b in buckets)):
            self._sums = [shm.SharedSum(b.flat.size, b.flat.dtype) for b in buckets]
        return buckets

    @contextlib.contextmanager
    def no_sync(self):
        """Skip the gradient allreduce for backward passes of forwards run inside this context:
        the gradients accumulate locally, and the first synchronised backward after it averages
        the accumulated sums (gradient accumulation over several micro-batches, PyTorch's)."""
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    def extra_repr(self) -> str:
        return f"world_size={self.world_size}, bucket_cap_mb={self.bucket_cap_mb}"
