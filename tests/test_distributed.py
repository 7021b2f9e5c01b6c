"""ember.distributed, DistributedDataParallel, DistributedSampler and the launch helpers.

Multi-rank tests start ``mpiexec -n 2`` subprocesses over loopback running the scripts in
tests/distributed/; they skip (with the reason) when mpi4py or mpiexec is missing. The
one-process tests (fallback group, sampler rules against PyTorch, launch helpers) always run.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import ember
import ember.distributed as dist
import ember.nn as nn
from ember.data import DistributedSampler
from ember.distributed import launch
from ember.nn.parallel import DistributedDataParallel

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "distributed"
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(not dist.is_mpi_available() or MPIEXEC is None,
                               reason="mpi4py and mpiexec are needed: pip install 'ember[distributed]'")


def run_ranks(n, script, *args, env=None, timeout=60):
    """Run ``script`` as n MPI ranks (n=0: one plain process, no launcher); return the result."""
    cmd = [sys.executable, str(SCRIPTS / script), *map(str, args)]
    if n:
        cmd = [MPIEXEC, "-n", str(n)] + cmd
    e = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e, cwd=ROOT)


@pytest.fixture
def one_rank_group():
    dist.init_process_group(timeout=5)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


# ---- one process ------------------------------------------------------------------------------

def test_single_process_group_collectives_are_identities(one_rank_group):
    assert (dist.get_rank(), dist.get_world_size(), dist.is_initialized()) == (0, 1, True)
    x = np.array([[1.5, -2.0], [3.0, 4.25]])
    for op in dist.ReduceOp:
        t = ember.tensor(x.copy())
        dist.all_reduce(t, op)
        np.testing.assert_array_equal(t.numpy(), x)
    t = ember.tensor(x.copy())
    dist.broadcast(t, 0)
    out = [ember.zeros(2, 2).double()]
    dist.all_gather(out, t)
    np.testing.assert_array_equal(out[0].numpy(), x)
    dist.barrier()
    assert len(dist.check_same({"a": 1})) == 64


def test_single_process_ddp_is_the_plain_module(one_rank_group):
    ember.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    ref = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    ref.load_state_dict(net.state_dict())
    ddp = DistributedDataParallel(net)
    assert ddp.module is net
    assert list(ddp.state_dict()) == ["module." + k for k in net.state_dict()]
    x = ember.randn(5, 3)
    ddp(x).sum().backward()
    ref(x).sum().backward()
    for p, q in zip(net.parameters(), ref.parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())


def test_engine_hook_runs_callbacks_once_after_backward():
    from ember import autograd
    from ember.nn.parallel import engine_hook
    assert engine_hook._callbacks is autograd._post_backward_callbacks   # the engine's own queue
    calls = []

    class Probe(ember.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad_out):
            engine_hook.queue_callback(lambda: calls.append(x.grad.numpy().copy()))
            engine_hook.queue_callback(calls.clear)                   # a second, distinct callback
            return grad_out * 2

    x = ember.ones(3, requires_grad=True)
    Probe.apply(x).sum().backward()
    assert calls == [] and not engine_hook.pending()                # both ran, in order, after the walk
    engine_hook.queue_callback(lambda: calls.append("late"))
    Probe.apply(x).sum().backward()
    assert calls == [] and not engine_hook.pending()
    with pytest.raises(RuntimeError, match="does not require grad"):
        engine_hook.queue_callback(lambda: calls.append("bad"))
        ember.ones(2).sum().backward()
    assert not engine_hook.pending() and calls == []               # a failed backward reduces nothing
    engine_hook.queue_callback(lambda: calls.append(x.grad.numpy().copy()))
    x.grad = None
    x.backward(ember.ones(3) * 5.0)                                 # a leaf root: the early return
    assert not engine_hook.pending() and [c.tolist() for c in calls] == [[5.0, 5.0, 5.0]]


def test_ddp_refuses_to_continue_when_the_engine_skipped_the_reduction(one_rank_group):
    from ember.nn.parallel import engine_hook
    ddp = DistributedDataParallel(nn.Linear(2, 2))
    engine_hook.queue_callback(print)
    try:
        with pytest.raises(RuntimeError, match="the autograd engine never ran it"):
            ddp(ember.ones(1, 2))
    finally:
        engine_hook.discard_callbacks()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bucket_pack_is_each_gradient_divided_by_the_world_size(dtype):
    """DDP's bucket: the arrays end to end, each value divided by the divisor exactly as
    ``np.divide`` does array by array (PyTorch's order), also where a power of two multiplies
    by its inverse instead: subnormals, the largest finite values, infinities, NaN, -0; a
    missing gradient packs as zeros; ``out`` receives it instead of the bucket's own buffer."""
    from ember.nn.parallel.distributed import _make_buckets
    info = np.finfo(dtype)
    edge = np.array([info.smallest_subnormal, 3 * info.smallest_subnormal, -info.smallest_subnormal,
                     info.tiny, info.max, -info.max, np.inf, -np.inf, np.nan, -0.0, 1 / 3], dtype)
    rng = np.random.default_rng(0)
    arrays = [np.concatenate([edge, rng.standard_normal(14).astype(dtype)]).reshape(5, 5),
              rng.standard_normal((3, 4, 2)).astype(dtype).transpose(2, 0, 1),   # not C-contiguous
              (rng.standard_normal(7) * 1e-300).astype(dtype)]
    [bucket] = _make_buckets(arrays, float("inf"))
    for divisor in (1, 2, 3, 4, 6, 8, 1024):
        bucket.pack(arrays, divisor)
        want = np.concatenate([np.divide(a.reshape(-1), divisor) for a in arrays])
        assert np.array_equal(bucket.flat.view(f"u{np.dtype(dtype).itemsize}"),
                              want.view(f"u{np.dtype(dtype).itemsize}")), divisor
    out = np.full(bucket.flat.size, 7, dtype)
    bucket.pack([arrays[0], None, arrays[2]], None, out=out)
    assert np.array_equal(out, np.concatenate([arrays[0].reshape(-1), np.zeros(24, dtype), arrays[2]]), equal_nan=True)


def test_process_group_errors():
    with pytest.raises(ValueError, match="get_rank: Default process group has not been initialized"):
        dist.get_rank()
    with pytest.raises(ValueError, match=r"backend 'nccl' is not supported by ember; use 'mpi'"):
        dist.init_process_group("nccl")
    with pytest.raises(ValueError, match="init_method 'tcp://1.2.3.4:5' is not supported"):
        dist.init_process_group("mpi", init_method="tcp://1.2.3.4:5")
    with pytest.raises(ValueError, match="world_size=4 but the launcher started this process as world_size 1"):
        dist.init_process_group("gloo", world_size=4)
    with pytest.raises(ValueError, match="timeout must be positive"):
        dist.init_process_group(timeout=0)
    assert not dist.is_initialized()
    dist.init_process_group("gloo")
    try:
        with pytest.raises(RuntimeError, match="trying to initialize the default process group twice!"):
            dist.init_process_group()
        with pytest.raises(TypeError, match="all_reduce: op must be an ember.distributed.ReduceOp"):
            dist.all_reduce(ember.ones(2), "sum")
        with pytest.raises(ValueError, match="async_op=True is not supported"):
            dist.all_reduce(ember.ones(2), async_op=True)
        with pytest.raises(TypeError, match="module must be an ember nn.Module, got list"):
            DistributedDataParallel([])
    finally:
        dist.destroy_process_group()


def test_spin_setting_is_checked(monkeypatch):
    monkeypatch.setenv("EMBER_DIST_SPIN_MS", "0.5")
    dist.init_process_group()
    try:
        assert dist.group._group.spin == 0.0005
    finally:
        dist.destroy_process_group()
    for bad in ("fast", "-1", "inf"):
        monkeypatch.setenv("EMBER_DIST_SPIN_MS", bad)
        with pytest.raises(ValueError, match=f"EMBER_DIST_SPIN_MS must be a number of milliseconds >= 0, got '{bad}'"):
            dist.init_process_group()
    assert not dist.is_initialized()


def test_without_mpi4py_a_launched_job_refuses_to_run(monkeypatch):
    monkeypatch.setattr(dist.group, "_mpi", lambda: None)
    dist.init_process_group()          # no launcher: a one-rank group
    assert dist.get_world_size() == 1
    dist.destroy_process_group()
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(RuntimeError, match=r"started 2 ranks but mpi4py is not installed: "
                                           r"pip install 'ember\[distributed\]'"):
        dist.init_process_group()


# ---- DistributedSampler -----------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 2, 5, 10, 11, 64, 101])
@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_matches_torch_without_shuffle(n, replicas, drop_last):
    tud = pytest.importorskip("torch.utils.data")
    for rank in range(replicas):
        ours = DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = tud.DistributedSampler(range(n), replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


@pytest.mark.parametrize("n, replicas", [(10, 3), (64, 2), (7, 4), (3, 5)])
def test_sampler_shuffle_properties(n, replicas):
    shards = [list(DistributedSampler(range(n), replicas, r, seed=5)) for r in range(replicas)]
    everything = sum(shards, [])
    assert all(len(s) == -(-n // replicas) for s in shards)
    assert set(everything) == set(range(n))                  # every sample is seen ...
    assert len(everything) - len(set(everything)) == len(everything) - n   # ... padding repeats only
    again = [list(DistributedSampler(range(n), replicas, r, seed=5)) for r in range(replicas)]
    assert again == shards                                    # same seed, same epoch: same order
    s = DistributedSampler(range(n), replicas, 0, seed=5)
    s.set_epoch(1)
    orders = {tuple(DistributedSampler(range(n), 1, 0, seed=5 + e)) for e in range(4)}
    assert len(orders) > 1 or n < 3                           # epochs reshuffle
    dropped = [list(DistributedSampler(range(n), replicas, r, seed=5, drop_last=True)) for r in range(replicas)]
    flat = sum(dropped, [])
    assert len(flat) == len(set(flat))                         # drop_last: no repeats


def test_sampler_errors():
    with pytest.raises(ValueError, match=r"Invalid rank 2, rank should be in the interval \[0, 1\]"):
        DistributedSampler(range(5), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas must be a positive integer, got 0"):
        DistributedSampler(range(5), num_replicas=0, rank=0)
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        DistributedSampler(range(5))


# ---- launch helpers ---------------------------------------------------------------------------

def test_launch_helpers():
    assert launch.is_main_process()                  # no group: the one process is the main one
    assert launch.per_rank_batch_size(64, 2) == 32
    with pytest.raises(ValueError, match="the global batch size 64 does not split evenly over 3 ranks"):
        launch.per_rank_batch_size(64, 3)
    assert [launch.shard_bounds(64, r, 2) for r in range(2)] == [(0, 32), (32, 64)]
    assert [launch.shard_bounds(10, r, 3) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]
    with pytest.raises(ValueError, match="a batch of 1 samples cannot be split over 2 ranks"):
        launch.shard_bounds(1, 0, 2)
    x, y = np.arange(64 * 3).reshape(64, 3), np.arange(64)
    x1, y1 = launch.shard((x, y), rank=1, world_size=2)
    np.testing.assert_array_equal(x1, x[32:]), np.testing.assert_array_equal(y1, y[32:])
    assert launch.shard(x) is x                      # one process: the whole global batch
    # uneven shards: weights w_r = W n_r / n make the equal-weight average the global mean
    ws = [launch.shard_weight(10, r, 3) for r in range(3)]
    assert ws == [1.2, 0.9, 0.9] and launch.shard_weight(64, 1, 2) == 1.0
    g = np.random.default_rng(0).standard_normal(10)
    avg = np.mean([w * g[slice(*launch.shard_bounds(10, r, 3))].mean() for r, w in enumerate(ws)])
    assert avg == pytest.approx(g.mean(), rel=1e-12)
    assert launch.default_threads(cores=8) == 8 and launch.local_world_size() == 1


def test_launch_helpers_in_a_one_rank_group(one_rank_group):
    assert launch.is_main_process() and launch.default_threads(cores=2) == 2
    assert launch.shard_bounds(64) == (0, 64)


# ---- two ranks over loopback ------------------------------------------------------------------

@needs_mpi
def test_collectives_two_ranks():
    r = run_ranks(2, "collectives.py")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "collectives ok" in r.stdout


@needs_mpi
def test_ddp_buffers_buckets_unused_parameters_two_ranks():
    r = run_ranks(2, "ddp_features.py")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ddp ok" in r.stdout


@needs_mpi
@pytest.mark.parametrize("n, shm", [(2, "1"), (3, "1"), (2, "0")])
def test_shared_memory_sum(n, shm):
    """DDP's shared-memory sum (ember/distributed/shm.py): the rank-order sum on every rank, bit
    for bit MPI's allreduce through DDP on 2 ranks, refused arrays, the timeout; EMBER_DIST_SHM=0."""
    r = run_ranks(n, "shared_sum.py", env={"EMBER_DIST_SHM": shm})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "shared sum ok" in r.stdout


def _params(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@needs_mpi
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-6), ("float32", 1e-5)])
def test_ddp_two_ranks_of_32_equal_one_process_of_64(tmp_path, dtype, rtol):
    """The issue's criterion: 50 SGD steps, 2 ranks × batch 32 vs 1 process × batch 64."""
    runs = {"one": (0, []), "two": (2, []), "two_again": (2, []), "two_accumulate": (2, ["--accumulate", "2"])}
    out = {}
    for name, (n, extra) in runs.items():
        r = run_ranks(n, "train_parity.py", "--out", tmp_path / f"{name}.npz", "--dtype", dtype, *extra)
        assert r.returncode == 0, r.stdout + r.stderr
        out[name] = _params(tmp_path / f"{name}.npz")
    ref = out["one"]
    assert list(ref) == ["module.0.weight", "module.0.bias", "module.4.weight", "module.4.bias",
                         "module.6.weight", "module.6.bias"]
    for name in ("two", "two_accumulate"):
        for k in ref:
            assert out[name][k].dtype == np.dtype(dtype)
            err = np.abs(out[name][k] - ref[k]).max() / np.abs(ref[k]).max()
            assert err < rtol, f"{name} {k}: relative difference {err:.2e}"
    for k in ref:   # a rerun on the same ranks is bit-identical
        assert np.array_equal(out["two"][k], out["two_again"][k]), k


@needs_mpi
def test_without_ddp_two_ranks_do_not_match(tmp_path):
    """Negative control: the parity test has teeth (each rank on its own shard diverges)."""
    for name, n, extra in (("one", 0, []), ("plain", 2, ["--no-ddp"])):
        r = run_ranks(n, "train_parity.py", "--out", tmp_path / f"{name}.npz", "--steps", "10", *extra)
        assert r.returncode == 0, r.stdout + r.stderr
    a, b = _params(tmp_path / "one.npz"), _params(tmp_path / "plain.npz")
    assert [k.removeprefix("module.") for k in a] == list(b)
    assert max(np.abs(u - v).max() / np.abs(u).max() for u, v in zip(a.values(), b.values())) > 1e-2


@needs_mpi
def test_model_mismatch_between_ranks_is_caught_at_start(tmp_path):
    r = run_ranks(2, "train_parity.py", "--out", tmp_path / "x.npz", env={"MISMATCH": "1"})
    assert r.returncode != 0
    assert ("ember.distributed.group.MismatchError: ember.distributed: the model (parameter names, shapes, dtypes) "
            "differs between ranks: rank 1 has 4.weight of shape (11, 144) and dtype float64 but rank 0 has "
            "4.weight of shape (10, 144) and dtype float64; start every rank with the same flags and "
            "model\n") in r.stderr


class _Writes:
    """A stderr that records each ``write`` call (one system call each under PYTHONUNBUFFERED)."""

    def __init__(self):
        self.calls = []

    def write(self, text):
        self.calls.append(text)
        return len(text)

    def flush(self):
        pass


def test_an_uncaught_error_is_written_in_one_piece_so_ranks_cannot_interleave_mid_line(monkeypatch):
    """Every rank raises the same MismatchError at once. Python's own excepthook writes the last
    line in pieces (module, name, ": ", message), which under PYTHONUNBUFFERED are separate
    writes to the launcher's pipe: in one CI run the two ranks' pieces interleaved and
    test_model_mismatch_between_ranks_is_caught_at_start found no whole message line. The hook
    ember installs writes the whole traceback in one call; ``say`` writes a longer text line by
    line, and a line with its newline."""
    def raised():
        try:
            raise dist.MismatchError("ember.distributed: the model differs between ranks: rank 1 has x", [])
        except dist.MismatchError as e:
            return e
    error = raised()
    python_own = _Writes()
    monkeypatch.setattr(sys, "stderr", python_own)
    sys.__excepthook__(type(error), error, error.__traceback__)
    assert len(python_own.calls) > 1   # what the pieces were
    ours = _Writes()
    monkeypatch.setattr(sys, "stderr", ours)
    dist.group.report_uncaught(type(error), error, error.__traceback__, sys.__excepthook__)
    assert ours.calls == ["".join(python_own.calls)], ours.calls
    assert ours.calls[0].endswith("\nember.distributed.group.MismatchError: ember.distributed: the model differs "
                                  "between ranks: rank 1 has x\n")
    hook = _Writes()
    dist.group.report_uncaught(type(error), error, error.__traceback__, lambda *a: hook.write("a user's hook"))
    assert hook.calls == ["a user's hook"] and ours.calls[1:] == []   # the user's hook, as it is
    out = _Writes()
    dist.group.say("ember train: error: x", out)
    assert out.calls == ["ember train: error: x\n"]
    long = "\n".join(f"line {i} " + "y" * 100 for i in range(60))   # > 4 KiB: whole lines, one by one
    dist.group.say(long, out)
    assert out.calls[1:] == [line + "\n" for line in long.split("\n")]


def test_differences_name_what_differs():
    """What check_same's error lists: every differing key of a dict, the first differing entry of a list."""
    diff = dist.group._differences
    assert diff({"lr": 0.1, "seed": 0, "epochs": 3}, {"lr": 0.05, "seed": 0, "epochs": 2}) == [
        ("epochs", 3, 2), ("lr", 0.1, 0.05)]
    assert diff({"a": 1}, {"b": 1}) == [("a", 1, "<missing>"), ("b", "<missing>", 1)]
    sig = [["0.weight", [6, 1, 5, 5], "float32"], ["0.bias", [6], "float32"]]
    assert diff(sig, sig) == []
    assert diff(sig[:1] + [["0.bias", [7], "float32"]], sig) == [(None, ["0.bias", [7], "float32"], sig[1])]
    assert diff(sig[:1], sig) == [(None, "<missing>", sig[1])]


@needs_mpi
def test_hung_rank_makes_the_other_exit_naming_it(tmp_path):
    """Rank 1 stops (SIGSTOP, a hung process) at step 3: rank 0's allreduce times out after 3 s,
    names rank 1, and the job exits non-zero well within 60 s."""
    t0 = time.monotonic()
    r = run_ranks(2, "train_parity.py", "--out", tmp_path / "x.npz", "--timeout", "3",
                  "--kill-rank", "1", "--kill-step", "3", "--stop")
    elapsed = time.monotonic() - t0
    assert r.returncode != 0 and elapsed < 60
    assert "ember.distributed: rank 0: all_reduce timed out after 3 s: lost rank 1 (pid" in r.stderr
    assert "has stopped" in r.stderr


@needs_mpi
def test_a_line_written_just_before_an_abort_reaches_mpiexec():
    """abort_job waits until the launcher has read the rank's stderr: with the launcher's proxy
    paused for 0.5 s when the rank aborts, the plain ``MPI_Abort`` lost the line 2 times in 3
    (status 1, empty stderr: what CI saw once for test_a_rank_that_never_joins...)."""
    for _ in range(2):
        r = run_ranks(2, "abort_with_slow_launcher.py", timeout=60)
        assert r.returncode == 1
        assert "rank 0: the line that must not be lost\n" in r.stderr, r.stderr


@needs_mpi
def test_killed_rank_makes_the_other_exit(tmp_path):
    """Rank 1 is SIGKILLed at step 3: the launcher (MPICH's hydra) stops rank 0 at once and names
    the dead process by its pid; the job exits non-zero well within 60 s."""
    t0 = time.monotonic()
    r = run_ranks(2, "train_parity.py", "--out", tmp_path / "x.npz", "--timeout", "30",
                  "--kill-rank", "1", "--kill-step", "3")
    assert r.returncode != 0 and time.monotonic() - t0 < 60
    assert "BAD TERMINATION" in r.stdout + r.stderr and "Killed (signal 9)" in r.stdout + r.stderr
    # ember's sentinel names the rank (no checkpoint note in a plain script); on a loaded machine it
    # may wake after mpiexec has killed rank 0 as well, and then names both as ended at once
    assert re.search(r"^ember: rank 1 \(PID \d+ on \S+\) was lost: it ended without finishing or reporting an "
                     r"error \(killed, or crashed\); the other ranks are stopped$", r.stderr, re.M) or re.search(
        r"^ember: rank 0 \(PID \d+\), rank 1 \(PID \d+\) on \S+ ended at once", r.stderr, re.M), r.stderr


def test_sentinel_messages():
    from ember.distributed.sentinel import _message
    pids = {0: 10, 1: 11}
    assert _message([1], pids, "vm", False, "last checkpoint: epoch 2 in runs/x") == (
        "ember: rank 1 (PID 11 on vm) was lost: it ended without finishing or reporting an error (killed, or "
        "crashed); the other ranks are stopped (last checkpoint: epoch 2 in runs/x)")
    assert _message([0, 1], pids, "vm", False, "") == (
        "ember: rank 0 (PID 10), rank 1 (PID 11) on vm ended at once without finishing or reporting an error: one "
        "was killed or crashed and mpiexec stopped the others (its BAD TERMINATION line names the PID that failed "
        "first)")
    assert "was lost (the first on b to end so):" in _message([1], pids, "b", True, "")


_FAKE_RANK = """
import socket, sys
link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
for line in sys.stdin:   # "link": connect as a rank does; "close": the link closes as a dying rank's files do
    if line == "link\\n":
        link.connect("\\0" + sys.argv[1] + "-link")
        link.sendall(sys.argv[2].encode())
    else:
        link.close()
    print("done", flush=True)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract Unix sockets, pidfds: Linux")
def test_sentinel_names_the_rank_whose_files_closed_first_even_if_it_ends_last(tmp_path):
    """On a loaded machine the rank killed first may finish dying (its pidfd fires) after the rank
    the launcher killed next: CI's sentinel then named the survivor, "rank 0 was lost". Rank 1's
    link to the sentinel closes first here while its process lives on, then rank 0 is killed: the
    sentinel names rank 1 (watching pidfds alone it named rank 0)."""
    address = f"ember-test-sentinel-{os.getpid()}-{tmp_path.name}"
    fake = [subprocess.Popen([sys.executable, "-c", _FAKE_RANK, address, str(r)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True) for r in (0, 1)]
    config = {"host": "vm", "ranks": [[r, p.pid] for r, p in enumerate(fake)], "world": 2, "address": address}
    sentinel = subprocess.Popen([sys.executable, "-I", "-S", str(ROOT / "ember" / "distributed" / "sentinel.py"),
                                 json.dumps(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert sentinel.stdout.readline() == "ready\n"
        for p, say in ((fake[0], "link"), (fake[1], "link"), (fake[1], "close")):
            p.stdin.write(say + "\n")
            p.stdin.flush()
            assert p.stdout.readline() == "done\n"
        time.sleep(0.5)
        fake[0].kill()
        fake[0].wait()
        time.sleep(0.5)
        fake[1].kill()
        fake[1].wait()
        _, err = sentinel.communicate(timeout=30)
    finally:
        for p in [*fake, sentinel]:
            p.kill()
    assert err == (f"ember: rank 1 (PID {fake[1].pid} on vm) was lost: it ended without finishing or reporting an "
                   f"error (killed, or crashed); the other ranks are stopped\n")


@needs_mpi
def test_a_clean_run_leaves_no_sentinel_message_and_no_process(tmp_path):
    token = f"EMBER_TEST_RUN={tmp_path.name}"   # only this run's sentinel (other test runs may have theirs)
    r = run_ranks(2, "train_parity.py", "--out", tmp_path / "x.npz", "--steps", "3", env=dict([token.split("=")]))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    time.sleep(0.5)
    left = [p for p in os.listdir("/proc") if p.isdigit() and "sentinel.py" in _cmdline(p)
            and token in _read(f"/proc/{p}/environ")]
    assert left == []


def _read(path):
    try:
        return Path(path).read_bytes().decode(errors="replace")
    except OSError:   # the process ended meanwhile
        return ""


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""
