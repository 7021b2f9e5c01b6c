"""DataLoader as torch's: the signature, worker processes giving the same batches in the same
order as num_workers=0, worker seeding, worker errors/deaths/timeouts, samplers and batch
samplers, batch_size=None, and default_collate against torch.utils.data.default_collate."""
import collections
import inspect
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.data import DataLoader, Dataset, TensorDataset, default_collate, get_worker_info
from ember.random import default_generator, manual_seed
from ember.tensor import Tensor

torch = pytest.importorskip("torch")


def _np(x):
    """Nested batch (ember or torch) -> nested NumPy/Python, for comparisons."""
    if isinstance(x, (Tensor, torch.Tensor)):
        return ("T", x.numpy().tolist(), str(x.numpy().dtype))
    if isinstance(x, dict):
        return {k: _np(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return (type(x).__name__, [_np(v) for v in x])
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [_np(v) for v in x])
    return x


class Items(Dataset):
    """Per-item dataset (no __getitems__): (float32 image filled with i, int i, worker pid)."""
    def __init__(self, n, fail_at=None, die_at=None, sleep=0.0):
        self.n, self.fail_at, self.die_at, self.sleep = n, fail_at, die_at, sleep
    def __len__(self): return self.n
    def __getitem__(self, i):
        if i == self.fail_at:
            raise KeyError(f"sample {i} is broken")
        if i == self.die_at:
            os._exit(3)
        time.sleep(self.sleep)
        info = get_worker_info()
        return np.full((2, 2), i, np.float32), i, -1 if info is None else info.id


def test_signature_is_torchs():
    ours = inspect.signature(DataLoader.__init__).parameters
    theirs = inspect.signature(torch.utils.data.DataLoader.__init__).parameters
    assert list(ours) == list(theirs)
    for name, p in theirs.items():
        assert ours[name].kind == p.kind, name
        if name not in ("self", "dataset"):
            assert ours[name].default == p.default, name


def _batches(loader):
    return [_np(b) for b in loader]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("make", ["tensor_dataset", "items"])
def test_workers_give_the_same_batches_in_the_same_order(shuffle, make):
    ds = TensorDataset(np.arange(46, dtype=np.float32).reshape(23, 2), np.arange(23)) if make == "tensor_dataset" \
        else Items(23)
    runs = {}
    for workers in (0, 1, 3):
        kw = dict(prefetch_factor=1) if workers == 3 else {}
        loader = DataLoader(ds, batch_size=4, shuffle=shuffle, num_workers=workers, pin_memory=True, **kw)
        manual_seed(5)
        runs[workers] = [[_np(b[:2]) for b in loader] for _ in range(2)]   # Items' worker-id field aside
        runs[workers, "state"] = default_generator().bit_generator.state
    assert runs[0] == runs[1] == runs[3]
    assert runs[0, "state"] == runs[1, "state"] == runs[3, "state"]   # workers draw nothing from it
    assert (runs[0][0] != runs[0][1]) == shuffle
    assert len(runs[0][0]) == 6


def test_work_happens_in_worker_processes_round_robin():
    loader = DataLoader(Items(12), batch_size=2, num_workers=3)
    worker_ids = [b[2].tolist() for b in loader]
    assert worker_ids == [[k % 3] * 2 for k in range(6)]                # batch k on worker k mod 3
    assert [b[2].tolist() for b in DataLoader(Items(4), batch_size=2)] == [[-1, -1]] * 2   # main process
    assert get_worker_info() is None


class Seeds(Dataset):
    def __len__(self): return 8
    def __getitem__(self, i):
        info = get_worker_info()
        return info.seed, info.num_workers, float(ember.rand(1).item()), os.getpid()


def test_worker_seeds_persistent_workers_and_init_fn(tmp_path):
    calls = tmp_path / "init"
    def init(worker_id):
        with open(calls, "a") as f:
            f.write(f"{worker_id} {os.getpid()}\n")
    loader = DataLoader(Seeds(), batch_size=2, num_workers=2, worker_init_fn=init, persistent_workers=True)
    e1, e2 = list(loader), list(loader)
    seeds = {int(s) for b in e1 for s in b[0].tolist()}
    assert len(seeds) == 2 and all(int(n) == 2 for b in e1 for n in b[1].tolist())
    draws = [x for b in e1 for x in b[2].tolist()]
    assert len(set(draws)) == len(draws)                                # workers' streams differ
    pids = {p for e in (e1, e2) for b in e for p in b[3].tolist()}
    assert len(pids) == 2 and os.getpid() not in pids                    # the same 2 processes, both epochs
    inits = [line.split() for line in calls.read_text().splitlines()]
    assert sorted(int(w) for w, _ in inits) == [0, 1] and {int(p) for _, p in inits} == pids   # once per worker
    loader._pool.shutdown()
    def draws(seed):
        manual_seed(seed)
        fresh = DataLoader(Seeds(), batch_size=2, num_workers=2)
        return [[b[2].tolist() for b in fresh] for _epoch in range(2)]
    a = draws(1)
    assert a == draws(1) and a != draws(2)              # reproducible from the seed
    assert a[0] != a[1]                                 # new worker streams every epoch


def test_worker_exception_is_raised_again_with_its_type():
    loader = DataLoader(Items(10, fail_at=5), batch_size=2, num_workers=2)
    with pytest.raises(KeyError) as e:
        list(loader)
    assert "Caught KeyError in DataLoader worker process 0." in str(e.value)
    assert "sample 5 is broken" in str(e.value) and "Original Traceback" in str(e.value)
    got = []
    with pytest.raises(KeyError):
        for b in loader:
            got.append(b[1].tolist())
    assert got == [[0, 1], [2, 3]]                                        # batches before the bad one


def test_worker_death_and_timeout():
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+ \(exit code 3\)\) exited unexpectedly"):
        list(DataLoader(Items(10, die_at=3), batch_size=2, num_workers=2))
    with pytest.raises(RuntimeError, match=re.escape("DataLoader timed out after 0.2 seconds")):
        list(DataLoader(Items(4, sleep=5.0), batch_size=2, num_workers=1, timeout=0.2))


BAD = [
    (dict(num_workers=-1), "num_workers option should be non-negative; use num_workers=0 to disable multiprocessing."),
    (dict(timeout=-1), "timeout option should be non-negative"),
    (dict(prefetch_factor=2), "prefetch_factor option could only be specified in multiprocessing.let num_workers > 0 "
                              "to enable multiprocessing, otherwise set prefetch_factor to None."),
    (dict(persistent_workers=True), "persistent_workers option needs num_workers > 0"),
    (dict(sampler=[0, 1], shuffle=True), "sampler option is mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler option is mutually exclusive with batch_size, shuffle, "
                                              "sampler, and drop_last"),
    (dict(batch_sampler=[[0]], drop_last=True), "batch_sampler option is mutually exclusive with batch_size, "
                                                "shuffle, sampler, and drop_last"),
    (dict(batch_size=None, drop_last=True), "batch_size=None option disables auto-batching and is mutually "
                                            "exclusive with drop_last"),
]


@pytest.mark.parametrize("kwargs,msg", BAD, ids=[m[:30] for _, m in BAD])
def test_bad_options_match_torch(kwargs, msg):
    ds = list(range(4))
    with pytest.raises(ValueError) as ours:
        DataLoader(ds, **kwargs)
    with pytest.raises(ValueError) as theirs:
        torch.utils.data.DataLoader(ds, **kwargs)
    assert str(ours.value) == str(theirs.value) == msg


class Plain:
    """A dataset of dict samples, not subclassing Dataset (torch accepts any __getitem__/__len__)."""
    def __len__(self): return 7
    def __getitem__(self, i):
        return {"x": np.arange(3, dtype=np.float64) * i, "y": i, "name": f"s{i}"}


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kwargs", [dict(batch_size=3), dict(batch_size=3, drop_last=True),
                                    dict(sampler=[6, 0, 3, 3, 1]), dict(sampler=[6, 0, 3, 3, 1], batch_size=2),
                                    dict(batch_sampler=[[1, 2], [0], [6, 5, 4]]), dict(batch_size=None),
                                    dict(batch_size=None, sampler=[4, 2])])
def test_samplers_and_batches_match_torch(kwargs, workers):
    ours = _batches(DataLoader(Plain(), num_workers=workers, **kwargs))
    theirs = _batches(torch.utils.data.DataLoader(Plain(), **kwargs))
    assert ours == theirs
    assert len(DataLoader(Plain(), **kwargs)) == len(torch.utils.data.DataLoader(Plain(), **kwargs))


Point = collections.namedtuple("Point", "a b")
SAMPLES = [
    [np.array([1.0, 2.0]), np.array([3.0, 4.0])],                          # float64 arrays keep float64
    [(np.float32(1.5), 2), (np.float32(2.5), 3)],                          # tuples -> list, NumPy scalars
    [[1.0, 2], [3.0, 4]],                                                  # lists of Python numbers
    [{"a": np.ones((2, 2), np.float32), "b": ("u", 1)}, {"a": np.zeros((2, 2), np.float32), "b": ("v", 2)}],
    [Point(1, 2.0), Point(3, 4.0)],
    [["x", b"y"], ["z", b"w"]],
    [3.25, 4.5],
]


@pytest.mark.parametrize("batch", SAMPLES, ids=range(len(SAMPLES)))
def test_default_collate_matches_torch(batch):
    assert _np(default_collate(batch)) == _np(torch.utils.data.default_collate(batch))


def test_default_collate_tensors_and_errors():
    out = default_collate([ember.tensor([1.0, 2.0]), ember.tensor([3.0, 4.0])])
    assert isinstance(out, Tensor) and out.shape == (2, 2) and out.dtype == np.float32
    with pytest.raises(RuntimeError) as ours:
        default_collate([ember.tensor([1.0, 2.0]), ember.tensor([3.0])])
    with pytest.raises(RuntimeError) as theirs:
        torch.utils.data.default_collate([torch.tensor([1.0, 2.0]), torch.tensor([3.0])])
    assert str(ours.value) == str(theirs.value)
    for bad in ([[1, 2], [3]], [object(), object()]):
        with pytest.raises((RuntimeError, TypeError)) as ours:
            default_collate(bad)
        with pytest.raises((RuntimeError, TypeError)) as theirs:
            torch.utils.data.default_collate(bad)
        assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)


def test_tensor_dataset_items_are_tensors_like_torch():
    x, y = np.arange(6, dtype=np.float32).reshape(3, 2), np.array([4, 5, 6])
    ours, theirs = TensorDataset(x, y)[1], torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y))[1]
    assert _np(list(ours)) == _np(list(theirs))


_ORPHAN_PARENT = """
import os, sys
import numpy as np
from ember.utils.data import DataLoader, TensorDataset
ds = TensorDataset(np.arange(64, dtype=np.float32).reshape(64, 1), np.arange(64))
loader = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True)
it = iter(loader)
next(it)
print(" ".join(str(p.pid) for p in loader._pool.workers), flush=True)
os.kill(os.getpid(), 9)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers start with fork here")
def test_workers_of_a_killed_process_exit_and_release_its_pipes():
    """A process SIGKILLed while its DataLoader's persistent workers wait for work: the workers exit
    within seconds (they check their parent while idle, as PyTorch's), so whoever reads the
    process's pipes (a terminal, mpiexec, this test's communicate) sees them close. Before, the
    workers waited forever and ``mpiexec`` never returned."""
    proc = subprocess.Popen([sys.executable, "-c", _ORPHAN_PARENT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=60)   # returns once every holder of the pipes has exited
    assert proc.returncode == -9, err
    pids = [int(p) for p in out.split()]
    assert len(pids) == 2 and time.monotonic() - t0 < 30
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{p}") for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if os.path.exists(f"/proc/{p}") and "Z" not in _state(p)]


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except OSError:
        return "Z"
