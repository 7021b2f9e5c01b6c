"""Run by tests/test_distributed.py under ``mpiexec -n 2``: every collective against the value
it must give, computed here from what each rank contributed. Any failed check raises, which
aborts the job (non-zero exit); rank 0 prints "collectives ok" at the end."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import ember  # noqa: E402
import ember.distributed as dist  # noqa: E402
from ember.data import DistributedSampler  # noqa: E402

dist.init_process_group("mpi", timeout=20)
r, W = dist.get_rank(), dist.get_world_size()
assert W == 2 and dist.is_initialized() and dist.get_backend() == "mpi"
contrib = [np.array([[1.5, -2.0, 3.0], [0.25, 8.0, -1.0]]) * (k + 1) - k for k in range(W)]


def check(op, expected, dtype=np.float64):
    t = ember.tensor(contrib[r].astype(dtype))
    dist.all_reduce(t, op)
    np.testing.assert_array_equal(t.numpy(), expected.astype(dtype), err_msg=str(op))


stack = np.stack(contrib)
check(dist.ReduceOp.SUM, stack.sum(0))
check(dist.ReduceOp.AVG, stack.sum(0) / W)
check(dist.ReduceOp.MAX, stack.max(0))
check(dist.ReduceOp.MIN, stack.min(0))
check(dist.ReduceOp.PRODUCT, stack.prod(0))
check(dist.ReduceOp.SUM, stack.sum(0), np.float32)
t = ember.tensor(np.array([r + 1, 10 * r], np.int64))
dist.all_reduce(t, dist.ReduceOp.MAX)
assert t.tolist() == [2, 10] and t.dtype == np.int64

# in place on a non-contiguous tensor (a transposed view): the writes reach the original array
base = np.arange(6.0).reshape(2, 3) * (r + 1)
view = ember.Tensor(base.T)   # wraps the non-contiguous ndarray without a copy
dist.all_reduce(view)
np.testing.assert_array_equal(base, np.arange(6.0).reshape(2, 3) * 3)

b = ember.tensor(np.full((3, 2), float(r)))
dist.broadcast(b, src=1)
np.testing.assert_array_equal(b.numpy(), np.ones((3, 2)))
b = ember.tensor(np.full(4, 7.0 + r, np.float32))
dist.broadcast(b, 0)
np.testing.assert_array_equal(b.numpy(), np.full(4, 7.0, np.float32))

out = [ember.zeros(2, 2) for _ in range(W)]
dist.all_gather(out, ember.tensor(np.full((2, 2), 10.0 * r, np.float32)))
for k in range(W):
    np.testing.assert_array_equal(out[k].numpy(), np.full((2, 2), 10.0 * k, np.float32))
dist.barrier()

# the sampler's defaults come from the process group
s = DistributedSampler(range(7), shuffle=False)
assert (s.num_replicas, s.rank, list(s)) == (2, r, [0, 2, 4, 6] if r == 0 else [1, 3, 5, 0])
# with shuffling, both ranks use the same permutation: their shards partition it
mine = ember.tensor(np.array(list(DistributedSampler(range(10), seed=3)), np.int64))
both = [ember.zeros(5).long() for _ in range(W)]
dist.all_gather(both, mine)
assert sorted(both[0].tolist() + both[1].tolist()) == list(range(10))

# errors, the same on every rank (so no rank is left waiting)
for call, msg in [(lambda: dist.broadcast(b, src=2), "broadcast: src must be a rank in [0, 1], got 2"),
                  (lambda: dist.all_gather([b], b), "all_gather: tensor_list has 1 tensors, expected one per rank (2)"),
                  (lambda: dist.all_reduce(ember.tensor([1, 2]), dist.ReduceOp.AVG),
                   "all_reduce: ReduceOp.AVG needs a floating-point tensor, got dtype int64")]:
    try:
        call()
    except ValueError as e:
        assert str(e) == msg, str(e)
    else:
        raise AssertionError(f"no error: {msg}")
assert dist.check_same({"lr": 0.05, "model": "lenet5"}) == dist.check_same({"model": "lenet5", "lr": 0.05})
dist.destroy_process_group()
assert not dist.is_initialized()
if r == 0:
    print("collectives ok")
