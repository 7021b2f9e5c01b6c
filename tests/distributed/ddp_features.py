"""Run by tests/test_distributed.py under ``mpiexec -n 2``: DDP's buffers, buckets and unused
parameters, each checked against the value it must have. Rank 0 prints "ddp ok" at the end."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import ember  # noqa: E402
import ember.distributed as dist  # noqa: E402
import ember.nn as nn  # noqa: E402
from ember.nn.parallel import DistributedDataParallel  # noqa: E402

dist.init_process_group("mpi", timeout=20)
r, W = dist.get_rank(), dist.get_world_size()


def gathered(a):
    out = [ember.Tensor(np.empty_like(a)) for _ in range(W)]
    dist.all_gather(out, ember.Tensor(a.copy()))
    return [o.numpy() for o in out]


# BatchNorm: construction broadcasts rank 0's parameters AND buffers; each training forward
# first copies rank 0's running statistics to every rank, then updates them with the rank's own
# batch statistics (so after a forward they differ, and the next forward makes them equal again).
ember.manual_seed(r)
bn_net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
bn_net[1].running_mean.numpy()[...] = r + 1.0
bn_net[1].num_batches_tracked.numpy()[...] = 5 * r
ddp = DistributedDataParallel(bn_net)
for _, b in bn_net.named_buffers():
    g = gathered(b.numpy())
    assert np.array_equal(g[0], g[1]), "buffers differ after construction"
assert bn_net[1].running_mean.numpy()[0] == 1.0 and int(bn_net[1].num_batches_tracked.numpy()) == 0
x = ember.tensor(np.random.default_rng(r).standard_normal((8, 3)))
ddp(x.float()).sum().backward()
rm0 = gathered(bn_net[1].running_mean.numpy())
assert not np.array_equal(rm0[0], rm0[1]), "each rank's running stats follow its own batch"
ddp(x.float())
rm1 = gathered(bn_net[1].running_mean.numpy())
h = x.numpy().astype(np.float32) @ bn_net[0].weight.numpy().T + bn_net[0].bias.numpy()   # BN's input
np.testing.assert_allclose(rm1[r], 0.9 * rm0[0] + 0.1 * h.mean(0), rtol=1e-5)   # started from rank 0's
assert np.array_equal(gathered(bn_net[1].num_batches_tracked.numpy())[1], np.array(2))
# the gradients were averaged: equal on both ranks
for p in bn_net.parameters():
    g = gathered(p.grad.numpy())
    assert np.array_equal(g[0], g[1])

# Buckets: a tiny cap (several buckets) gives exactly the gradients of one bucket.
ember.manual_seed(0)
a = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 2))
b = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 2))
b.load_state_dict(a.state_dict())
one, many = DistributedDataParallel(a), DistributedDataParallel(b, bucket_cap_mb=40 / 2 ** 20)
assert len(one._grad_buckets) == 1 and len(many._grad_buckets) == 4, len(many._grad_buckets)
x = ember.tensor(np.random.default_rng(10 + r).standard_normal((4, 5)).astype(np.float32))
one(x).sum().backward()
many(x).sum().backward()
for p, q in zip(a.parameters(), b.parameters()):
    assert np.array_equal(p.grad.numpy(), q.grad.numpy())

# Parameters cast after construction (ddp.double()): the buckets follow, no silent float32 rounding.
one.double()
x64 = ember.tensor(np.full((1, 5), 1 + 2.0 ** -40 * (r + 1)))
one.zero_grad()
one(x64).sum().backward()
assert one._grad_buckets[0].flat.dtype == np.float64 and a[0].weight.grad.dtype == np.float64
u = a[0].bias.grad.numpy()                 # dL/dW = u x^T, averaged x = 1 + 1.5 * 2^-40
live = u != 0
ratio = a[0].weight.grad.numpy()[live] / u[live, None]
np.testing.assert_allclose(ratio - 1, 1.5 * 2.0 ** -40, rtol=1e-3)   # float32 buckets would give 0

# A parameter used on rank 1 only: rank 0 counts a zero gradient, both end with the average.
ember.manual_seed(0)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.common, self.extra = nn.Linear(2, 2), nn.Linear(2, 2)

    def forward(self, x, use_extra):
        y = self.common(x)
        return self.extra(y) if use_extra else y


net = Branchy()
ddp = DistributedDataParallel(net)
x = ember.tensor(np.ones((1, 2), np.float32))
ddp(x, use_extra=(r == 1)).sum().backward()
local = x.numpy() @ net.common.weight.numpy().T + net.common.bias.numpy()     # extra's input on rank 1
expected_w = np.ones((2, 1), np.float32) @ local / W                    # (rank 1's grad + 0) / 2
np.testing.assert_allclose(net.extra.weight.grad.numpy(), expected_w, rtol=1e-6)
assert np.array_equal(*gathered(net.extra.weight.grad.numpy()))

# Under no_grad (evaluation) a forward queues nothing; backward of a non-DDP tensor reduces nothing.
with ember.no_grad():
    ddp(x, use_extra=True)
before = net.common.weight.grad.numpy().copy()
(net.common.weight * 1.0).sum().backward()
assert np.array_equal(net.common.weight.grad.numpy(), before + 1)   # local accumulation only
dist.destroy_process_group()
if r == 0:
    print("ddp ok")
