"""ember.kernels.prewarm (issue 13): on a cold numba cache ``ember train`` compiles the backward
kernels in a helper process. Checked here: the training process then loads them from the cache
(numba's hit counters), the results are bit-identical to compiling in-process, a warm cache or
reference mode launches nothing, a failing helper falls back, a killed helper cannot leave an
index entry without its data, and no helper outlives ``ember train`` (error, Ctrl-C, SIGTERM,
SIGKILL). Nothing here is timed (the figures are in benchmarks/RESULTS.md).
"""
import os
import signal
import subprocess
import sys
import time

import pytest

from ember.kernels import _jit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_numba = pytest.mark.skipif(not _jit.AVAILABLE, reason="numba not installed")
needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")


def _env(cache, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("EMBER_KERNELS", "EMBER_PREWARM", "EMBER_NUMBA_THREADING")}
    env.update(NUMBA_CACHE_DIR=str(cache), PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    env.update({"EMBER_PREWARM": "1", **extra})     # 1: whatever the load (tests run on busy machines)
    return env


# One LeNet-5 training step (forward + backward) on fixed data, as ember train's first step.
_STEP = """
import numpy as np, ember, ember.nn.functional as F
from ember.models.lenet import lenet5
from ember.kernels import prewarm, numba_conv as nc
ember.manual_seed(0)
m = lenet5()
h = prewarm.start(m)
print("helper", "none" if h is None else ",".join(h.names))
x = ember.tensor(np.random.RandomState(0).randn(16, 1, 28, 28).astype(np.float32))
F.cross_entropy(m(x), ember.tensor(np.arange(16) % 10)).backward()
if h is not None:
    h.close()
    print("reported", ",".join(n for n in h.names if n in h.done))
for k in ("_unpool_relu", "_grad_w", "_grad_x"):
    d = nc.__dict__[k]["serial"]
    print(k, sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values()))
print("grads", b"".join(p.grad._data.tobytes() for p in m.parameters()).hex())
"""


def _step(cache, **extra):
    p = subprocess.run([sys.executable, "-c", _STEP], capture_output=True, text=True, env=_env(cache, **extra),
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return dict(line.split(" ", 1) for line in p.stdout.splitlines())


@needs_numba
def test_cold_cache_backward_kernels_come_from_the_helper_bit_identical(tmp_path):
    """Cold: the helper compiles unpool_relu and grad_x and the step loads each from the cache
    (1 hit, 0 misses: the helper compiled exactly the signatures training calls); grad_w is
    compiled in the training process (``kept_here``: LeNet-5's convolutions all run fused). Warm:
    no helper. Gradients equal bit for bit to a step that compiled everything itself, and to one
    on a cache whose helper was killed half-way."""
    cold = _step(tmp_path / "a")
    assert cold["helper"] == "unpool_relu,grad_x"
    assert cold["reported"] == "unpool_relu,grad_x"
    for k in ("_unpool_relu", "_grad_x"):
        assert cold[k] == "1 0", (k, cold[k])
    assert cold["_grad_w"] == "0 1"                                     # compiled here
    warm = _step(tmp_path / "a")
    assert warm["helper"] == "none" and warm["_grad_x"] == "1 0"
    alone = _step(tmp_path / "b", EMBER_PREWARM="0")
    assert alone["helper"] == "none" and alone["_grad_x"] == "0 1"     # compiled here
    assert cold["grads"] == warm["grads"] == alone["grads"]
    # A helper SIGKILLed mid-way (after its first kernel, while compiling the next): the next run
    # on that cache loads what it finished, compiles the rest, and computes the same gradients.
    kill = ("import time\nfrom ember.models.lenet import lenet5\nfrom ember.kernels import prewarm\n"
            "h = prewarm.start(lenet5())\nassert h.wait_for('unpool_relu')\ntime.sleep(0.5)\n"
            "print('running', h.proc.poll() is None)\nh.proc.kill()\nh.close()\n")
    p = subprocess.run([sys.executable, "-c", kill], capture_output=True, text=True, env=_env(tmp_path / "k"),
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    after = _step(tmp_path / "k", EMBER_PREWARM="0")
    assert after["_unpool_relu"] == "1 0" and after["grads"] == alone["grads"]


# ember train's first step with its loss and optimizer: the helper also compiles what the step
# calls directly (the cross-entropy's two passes, SGD's update), first.
_DIRECT = """
import numpy as np, ember, ember.nn.functional as F
from ember.models.lenet import lenet5
from ember.kernels import prewarm, numba_loss, numba_optim
ember.manual_seed(0)
m = lenet5()
opt = ember.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
h = prewarm.start(m, ["cross_entropy", "cross_entropy_backward", "sgd", "not_a_kernel"])
print("helper", "none" if h is None else ",".join(h.names))
if h is not None:   # as if the forward took long enough: the direct kernels are compiled first
    for n in ("cross_entropy", "cross_entropy_backward", "sgd"):
        assert h.wait_for(n), n
x = ember.tensor(np.random.RandomState(0).randn(16, 1, 28, 28).astype(np.float32))
F.cross_entropy(m(x), ember.tensor(np.arange(16) % 10)).backward()
opt.step()
if h is not None:
    h.close()
for name, d in (("ce", numba_loss._forward), ("ce_b", numba_loss._backward), ("sgd", numba_optim._sgd_body)):
    print(name, sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values()))
print("weights", b"".join(p._data.tobytes() for p in m.parameters()).hex())
"""


@needs_numba
def test_the_helper_compiles_the_loss_and_the_optimizer_first(tmp_path):
    """Cold: the helper's list starts with the directly called kernels (an unknown name is
    dropped), and the training process loads each of them from the cache (1 hit, 0 misses): the
    helper compiled exactly the signatures training calls. The weights after the step are bit
    for bit those of a run that compiled everything itself."""
    def run(cache, **extra):
        p = subprocess.run([sys.executable, "-c", _DIRECT], capture_output=True, text=True,
                           env=_env(cache, **extra), timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        return dict(line.split(" ", 1) for line in p.stdout.splitlines())
    cold = run(tmp_path / "a")
    assert cold["helper"] == "cross_entropy,cross_entropy_backward,sgd,unpool_relu,grad_x"
    for k in ("ce", "ce_b", "sgd"):
        assert cold[k] == "1 0", (k, cold[k])
    alone = run(tmp_path / "b", EMBER_PREWARM="0")
    assert alone["helper"] == "none" and alone["ce"] == "0 1" and alone["sgd"] == "0 1"
    assert cold["weights"] == alone["weights"]


def test_no_helper_in_reference_mode_or_without_an_on_disk_cache(tmp_path):
    """EMBER_KERNELS=reference, EMBER_PREWARM=0, and kernels compiled in memory (no writable
    cache folder: ``_jit.njit``'s fallback, cache=False) launch nothing."""
    code = ("import ember\nfrom ember.models.lenet import lenet5\nfrom ember.kernels import prewarm\n"
            "print(prewarm.start(lenet5()))\n")
    for extra in ({"EMBER_KERNELS": "reference"}, {"EMBER_PREWARM": "0"}):
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=_env(tmp_path / "c", **extra), timeout=300)
        assert p.returncode == 0 and p.stdout.strip() == "None", (extra, p.stdout, p.stderr[-2000:])
    if _jit.AVAILABLE:
        in_memory = ("import numba\n_nj = numba.njit\n"   # before ember: every kernel as _jit.njit's fallback makes it
                     "numba.njit = lambda *a, **k: _nj(*a, **dict(k, cache=False))\n" + code)
        p = subprocess.run([sys.executable, "-c", in_memory], capture_output=True, text=True,
                           env=_env(tmp_path / "d"), timeout=300)
        assert p.returncode == 0 and p.stdout.strip() == "None", (p.stdout, p.stderr[-2000:])
    assert not list(tmp_path.rglob("*.nbi"))                          # and nothing was compiled


def test_no_helper_without_a_free_core(monkeypatch):
    """Auto (EMBER_PREWARM unset): a helper only with 2+ usable cores and at most (cores - 2)
    other tasks runnable now; without /proc, a load average below (cores - 1). EMBER_PREWARM=1
    skips the check (start() would then launch: not called here)."""
    from ember.kernels import prewarm
    from ember.models.lenet import lenet5
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 3.0, 3.0))   # a job that just ended
    monkeypatch.setattr(prewarm, "runnable_others", lambda: 0)
    assert prewarm.free_core()
    monkeypatch.setattr(prewarm, "runnable_others", lambda: 1)       # the other core busy
    assert not prewarm.free_core()
    monkeypatch.delenv("EMBER_PREWARM", raising=False)
    assert prewarm.start(lenet5()) is None                          # busy: nothing launched
    monkeypatch.setattr(prewarm, "runnable_others", lambda: None)    # no /proc: the load average
    assert not prewarm.free_core()
    monkeypatch.setattr(os, "getloadavg", lambda: (0.6, 3.0, 3.0))
    assert prewarm.free_core()
    monkeypatch.setattr(prewarm, "runnable_others", lambda: 0)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert not prewarm.free_core()                                  # one core: never


def test_runnable_others_counts_a_busy_process():
    """runnable_others sees a process that keeps a core busy (and never counts itself)."""
    import subprocess
    import sys
    import time
    from ember.kernels import prewarm
    if not os.path.exists("/proc/loadavg"):
        pytest.skip("no /proc/loadavg")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert prewarm.runnable_others(reads=5) >= 1
    finally:
        busy.kill()
        busy.wait()


def test_needed_kernels_follow_the_model():
    import ember.nn as nn
    from ember.kernels import prewarm
    from ember.models.lenet import lenet5
    assert prewarm.needed(lenet5()) == (["unpool_relu", "grad_w", "grad_x"], "float32")
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten())
    assert prewarm.needed(plain) == (["grad_b", "grad_w", "grad_x"], "float32")
    assert prewarm.needed(nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.ReLU(), nn.MaxPool2d(3, stride=1))) \
        == (["grad_w", "grad_x"], "float32")
    assert prewarm.needed(nn.Sequential(nn.Linear(3, 2))) == ([], None)
    # 3×3 stride-1 layers of ≥ 8 channels run kernels.winograd: its grad_w kernel (grad_x is its forward's)
    resnet_like = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, bias=False))
    assert prewarm.needed(resnet_like) == (["grad_b", "grad_w", "grad_x", "winograd_grad_w"], "float32")
    same = nn.Sequential(nn.Conv2d(8, 8, 3, padding="same", bias=False), nn.Conv2d(8, 8, 3, padding="valid", bias=False))
    assert prewarm.needed(same) == (["winograd_grad_w"], "float32")       # string paddings read as pairs
    # what the training process compiles itself: grad_w when every convolution runs fused
    assert prewarm.kept_here(lenet5()) == {"grad_w"}
    assert prewarm.kept_here(plain) == set()
    mixed = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, bias=False), nn.ReLU())
    assert prewarm.needed(mixed) == (["unpool_relu", "grad_w", "grad_x"], "float32")
    assert prewarm.kept_here(mixed) == set()
    assert prewarm.kept_here(nn.Sequential(nn.Linear(3, 2))) == set()


@needs_numba
def test_a_failing_helper_is_not_waited_for(tmp_path, monkeypatch):
    """A helper that finds another cache folder exits (3) having compiled nothing: wait_for
    returns False at once (not after WAIT_S) and the hook is consumed; close() is idempotent."""
    from ember.kernels import prewarm
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setattr(prewarm, "WAIT_S", 120.0)
    h = prewarm.Helper(["grad_b"], "float32", str(tmp_path / "not-the-cache"))
    try:
        assert id(prewarm._pair("grad_b")) in _jit.BEFORE_FIRST_CALL
        t0 = time.monotonic()
        assert h.wait_for("grad_b") is False
        assert time.monotonic() - t0 < 100
        assert h.proc.wait(timeout=60) == 3
    finally:
        h.close()
        h.close()
    assert id(prewarm._pair("grad_b")) not in _jit.BEFORE_FIRST_CALL


@needs_numba
def test_helper_writes_the_data_file_before_the_index(tmp_path, monkeypatch):
    """Killed while writing an entry's data file, the helper leaves the index without that entry
    (numba's own order writes the index first: an entry naming a missing or stale data file)."""
    from numba.core import caching
    from ember.kernels import prewarm
    cls = caching.IndexDataCacheFile
    monkeypatch.setattr(cls, "save", cls.save)                      # restored after the test
    assert prewarm._data_before_index()
    f = cls(str(tmp_path), "kernel-1.py311", ("stamp", 1))
    f.save("key-a", ("data", 1))
    assert f.load("key-a") == ("data", 1)

    def killed(self, name, data):
        raise KeyboardInterrupt("killed while writing " + name)
    monkeypatch.setattr(cls, "_save_data", killed)
    with pytest.raises(KeyboardInterrupt):
        f.save("key-b", ("data", 2))
    assert set(f._load_index()) == {"key-a"}
    assert f.load("key-b") is None and f.load("key-a") == ("data", 1)


# ------------------------------------------------------------------------------ no orphans

def _children(pid):
    """Live (not zombie) processes whose parent is ``pid`` and that run the prewarm helper."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != "Z" and b"ember.kernels.prewarm" in cmd:
                out.append(int(d))
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _idx_folder(folder, n=8):
    import numpy as np
    from ember.data import write_idx
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    return folder


@needs_numba
@needs_proc
@pytest.mark.parametrize("how", ["sigint-group", "sigterm", "sigkill"])
def test_no_helper_outlives_an_interrupted_ember_train(tmp_path, how):
    """``ember train`` on a cold cache, stopped while its helper compiles: Ctrl-C (SIGINT to the
    process group, as a terminal sends it), SIGTERM or SIGKILL to the training process. The
    helper is gone within seconds (closed by ember train, or by PR_SET_PDEATHSIG)."""
    data = _idx_folder(tmp_path / "fashion-mnist")
    p = subprocess.Popen([sys.executable, "-m", "ember.cli", "train", "--epochs", "1", "--batch-size", "4",
                          "--no-progress", "--data-dir", str(data), "--out", str(tmp_path / "out")],
                         env=_env(tmp_path / "cache"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        deadline, helpers = time.monotonic() + 120, []
        while not helpers and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            helpers = _children(p.pid)
        assert helpers, "no helper seen (cache not cold?) " + (p.stderr.read().decode()[-2000:] if p.poll() is not None else "")
        sig = {"sigint-group": signal.SIGINT, "sigterm": signal.SIGTERM, "sigkill": signal.SIGKILL}[how]
        if how == "sigint-group":
            os.killpg(p.pid, sig)
        else:
            os.kill(p.pid, sig)
        rc = p.wait(timeout=300)   # a SIGTERM swallowed inside numba's compile stops the run at its next
        #                          step: on a loaded machine the cold compile alone can take minutes
        assert rc != 0
        # closed by ember train before it exits; after SIGKILL, by the kernel (PR_SET_PDEATHSIG) at once.
        # (Left alone, a helper would compile on for seconds, until its next report met the closed pipe.)
        deadline = time.monotonic() + (3.0 if how == "sigkill" else 1.0)
        while any(_alive(h) for h in helpers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(h) for h in helpers), f"helper {helpers} left running after {how}"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@needs_numba
def test_no_helper_outlives_a_training_error(tmp_path):
    """An exception in the first step (here: the model's forward) ends ember train with the error;
    the helper it had launched is killed and reaped by then."""
    data = _idx_folder(tmp_path / "fashion-mnist")
    code = f"""
import ember.nn as nn
from ember.kernels import prewarm
from ember.training.config import TrainConfig
from ember.training.loop import train
made = []
_start = prewarm.start
prewarm.start = lambda *a: made.append(_start(*a)) or made[-1]
def boom(self, x):
    raise RuntimeError("boom")
nn.Sequential.forward = boom
try:
    train(TrainConfig(epochs=1, batch_size=4, progress=False, data_dir={str(data)!r}, out={str(tmp_path / 'out')!r}),
          log=lambda m: None)
except RuntimeError as e:
    print("error", e)
(h,) = made
print("helper", h is not None and h.proc.returncode is not None)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(tmp_path / "cache"),
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "error boom" in p.stdout and "helper True" in p.stdout, p.stdout
