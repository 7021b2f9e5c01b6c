"""Start-up of ``ember train`` (issue 13): what ``import ember`` pulls in, the first-batch marker
benchmarks/startup.py times, and where numba's compiled kernels are cached (and found again).

Every check runs in a fresh interpreter (subprocess), since what a process imports or caches is
the point; nothing here is timed.
"""
import importlib.util
import os
import shutil
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code, env=None, cwd=None, root=ROOT, timeout=300):
    """Run ``python -c code`` with ``root`` first on sys.path; return the CompletedProcess."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


# ------------------------------------------------------------------------------------ imports

HEAVY = ["matplotlib", "onnx", "onnxruntime", "mpi4py", "PIL", "torch", "scipy"]


def test_import_ember_does_not_import_optional_packages(tmp_path):
    """``import ember`` (and the modules ``ember train`` adds) load none of the optional
    packages: plotting, ONNX, MPI, images and PyTorch are imported where they are used."""
    code = ("import sys\n"
            "import ember\n"
            f"heavy = {HEAVY!r}\n"
            "print(' '.join(sorted(m for m in heavy if m in sys.modules)) or 'none')\n"
            "import ember.cli, ember.training, ember.onnx.cli\n"
            "print(' '.join(sorted(m for m in heavy if m in sys.modules)) or 'none')\n")
    out = _python(code, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    after_import, after_cli = out.stdout.split("\n")[:2]
    assert after_import == "none", f"import ember imported {after_import}"
    assert after_cli == "none", f"import ember.cli / ember.training imported {after_cli}"


def test_heavy_import_check_sees_an_imported_package(tmp_path):
    """The check above can fail: importing one of the packages is reported."""
    pytest.importorskip("PIL")
    out = _python("import sys, ember, PIL\nprint('PIL' in sys.modules)", cwd=tmp_path)
    assert out.stdout.strip() == "True", out.stderr


# ------------------------------------------------------------------------------ first-batch marker

def _train(tmp_path, env_extra, *flags):
    """``ember train`` on 16 random images in batches of 4 (reference kernels: nothing compiles)."""
    data = _idx_folder(tmp_path.parent / f"{tmp_path.name}-data" / "fashion-mnist", n=16)
    env = dict(os.environ, EMBER_KERNELS="reference", HOME=str(tmp_path.parent / f"{tmp_path.name}-data"),
               **env_extra)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "ember.cli", "train", "--epochs", "1", "--data-dir", str(data),
                           "--batch-size", "4", "--no-progress", "--out", str(tmp_path / "run"), *flags],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)


def test_first_batch_marker_is_written_once_with_a_system_wide_clock(tmp_path):
    """EMBER_FIRST_BATCH_FILE gets one line "<monotonic> <process_time> <children's CPU>" (the end
    of batch 1 of the first epoch only), between the launch and the end of the run on the parent's
    clock; the third field is the CPU of reaped child processes (the prewarm helper), ≥ 0."""
    import time
    marker = tmp_path / "first"
    t0 = time.monotonic()
    out = _train(tmp_path, {"EMBER_FIRST_BATCH_FILE": str(marker)}, "--epochs", "2")
    t1 = time.monotonic()
    assert out.returncode == 0, out.stderr
    lines = marker.read_text().splitlines()
    assert len(lines) == 1                                      # 2 epochs x 4 batches: one line
    mono, cpu, children = map(float, lines[0].split())
    assert t0 < mono < t1
    assert 0 < cpu < 600 and 0 <= children < 600
    assert str(marker) not in out.stdout + out.stderr           # nothing about it in the output


def test_no_marker_without_the_variable(tmp_path, monkeypatch):
    """Without EMBER_FIRST_BATCH_FILE training writes no marker (only the run folder appears)."""
    monkeypatch.delenv("EMBER_FIRST_BATCH_FILE", raising=False)
    out = _train(tmp_path, {})
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# ------------------------------------------------------------------------------ numba's disk cache

needs_numba = pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed")

# Compiles (or loads) the smallest kernel, conv's grad_b, and prints where its cache lives and
# whether this process compiled it or loaded it from the disk cache.
_GRAD_B = ("import numpy as np\n"
           "from ember.kernels import numba_conv as nc\n"
           "g = np.ones((3, 2, 8), np.float32)\n"
           "assert np.array_equal(nc.conv2d_grad_b(g.reshape(3, 2, 4, 2)), np.full(3, 16, np.float32))\n"
           "d = nc._grad_b['serial']\n"
           "print(d._cache._cache_path if hasattr(d._cache, '_cache_path') else 'none')\n"
           "print(sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values()))\n")


# Read-only folders: chmod for an ordinary user. Root writes anywhere, so as root the child is told
# instead: os.access, os.makedirs and numba's cache-folder probe fail for those folders, as they
# would for a user without write permission.
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
_PRETEND = """import os
from numba.core import caching
RO = {ro!r}
def _ro(p):
    p = os.path.abspath(p)
    return any(p == r or p.startswith(r + os.sep) for r in RO)
_access, _makedirs, _ensure = os.access, os.makedirs, caching._CacheLocator.ensure_cache_path
os.access = lambda p, m, *a, **k: False if m & os.W_OK and _ro(p) else _access(p, m, *a, **k)
def _mk(p, *a, **k):
    if _ro(p) and not os.path.isdir(p):
        raise PermissionError(13, "Permission denied", p)
    return _makedirs(p, *a, **k)
os.makedirs = _mk
def _probe(self):
    if _ro(self.get_cache_path()):
        raise PermissionError(13, "Permission denied", self.get_cache_path())
    return _ensure(self)
caching._CacheLocator.ensure_cache_path = _probe
"""


@pytest.fixture
def box(tmp_path):
    """A fresh folder, made writable again after the test (so pytest can remove it)."""
    yield str(tmp_path)
    for dirpath, _, _ in os.walk(tmp_path):
        os.chmod(dirpath, stat.S_IRWXU)


def _copy_package(box):
    """A copy of the ember package in its own folder (an installed, non-editable package)."""
    site = os.path.join(box, "site")
    shutil.copytree(os.path.join(ROOT, "ember"), os.path.join(site, "ember"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    return site


def _child(box, site, home, xdg=None, read_only=()):
    """Run _GRAD_B with the package copy ``site`` and HOME ``home``, the folders ``read_only`` not writable."""
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "EMBER_KERNELS")}
    env["HOME"] = home
    if xdg:
        env["XDG_CACHE_HOME"] = xdg
    env["PYTHONPATH"] = site + os.pathsep + env.get("PYTHONPATH", "")
    code = _GRAD_B
    if read_only and AS_ROOT:
        code = _PRETEND.format(ro=[os.path.abspath(p) for p in read_only]) + code
    elif read_only:
        for folder in read_only:
            for dirpath, _, _ in os.walk(folder):
                os.chmod(dirpath, stat.S_IRUSR | stat.S_IXUSR)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=box, timeout=300)


@needs_numba
def test_installed_package_caches_next_to_its_source_and_hits_it(box):
    """A writable installed package: numba's cache in ember/kernels/__pycache__, hit by the next process."""
    site = _copy_package(box)
    first = _child(box, site, box)
    assert first.returncode == 0, first.stderr
    path, counts = first.stdout.split("\n")[:2]
    assert path == os.path.join(site, "ember", "kernels", "__pycache__")
    assert counts == "0 1"                                      # compiled
    second = _child(box, site, box)
    assert second.stdout.split("\n")[1] == "1 0", second.stderr  # loaded from the disk cache
    assert first.stderr == second.stderr == ""


@needs_numba
def test_read_only_package_caches_in_the_user_cache_folder(box):
    """Package folder read-only: the cache goes to $XDG_CACHE_HOME/ember/numba and is hit next time."""
    site = _copy_package(box)
    xdg = os.path.join(box, "xdg")
    first = _child(box, site, box, xdg, read_only=[site])
    assert first.returncode == 0, first.stderr
    path, counts = first.stdout.split("\n")[:2]
    assert path.startswith(os.path.join(xdg, "ember", "numba")), path
    assert counts == "0 1"
    assert not os.path.exists(os.path.join(site, "ember", "kernels", "__pycache__"))
    second = _child(box, site, box, xdg, read_only=[site])
    assert second.stdout.split("\n")[1] == "1 0", second.stderr
    assert first.stderr == second.stderr == ""


@needs_numba
def test_nothing_writable_compiles_in_memory_quietly(box):
    """Package folder and home both read-only: ember imports, the kernel works, nothing is printed."""
    site = _copy_package(box)
    home = os.path.join(box, "home")
    os.mkdir(home)
    out = _child(box, site, home, read_only=[site, home])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["none", "0 1"]      # no disk cache; compiled
    assert out.stderr == ""


@needs_numba
def test_import_compiles_nothing(tmp_path):
    """``import ember`` (and a model build) compiles no kernel: numba compiles on a kernel's first call."""
    code = ("from numba.core import dispatcher as d\n"
            "calls = []\n"
            "orig = d.Dispatcher.compile\n"
            "d.Dispatcher.compile = lambda self, sig: calls.append(self.py_func.__name__) or orig(self, sig)\n"
            "import ember\n"
            "from ember.models import get_model\n"
            "get_model('lenet5')\n"
            "print(calls)\n")
    out = _python(code, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _env_importing(folder):
    """This environment, numba's cache in its default place, with ``folder`` and ember importable."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = f"{folder}{os.pathsep}{ROOT}"
    return env


@needs_numba
def test_parallel_and_nogil_variants_do_not_share_a_cache_entry(tmp_path):
    """``_jit.kernel_pair``: the parallel=True and the nogil variant of one body are compiled and
    cached apart (numba keys its disk cache by function name and types, not by options; one
    shared entry made the second variant called load the first one's machine code)."""
    (tmp_path / "pairmod.py").write_text(
        "from ember.kernels._jit import kernel_pair, prange\n"
        "def body(a, lo, hi):\n"
        "    for i in prange(lo, hi):\n"
        "        a[i] += 1.0\n"
        "pair = kernel_pair(body)\n")
    code = ("import numpy as np, pairmod\n"
            "a = np.zeros(8)\n"
            "for kind in ('serial', 'parallel'):\n"
            "    d = pairmod.pair[kind]\n"
            "    d(a, 0, 8)\n"
            "    print(kind, sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values()))\n"
            "print(a.tolist() == [2.0] * 8)\n")
    env = _env_importing(tmp_path)
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split("\n")[:3] == ["serial 0 1", "parallel 0 1", "True"]   # each compiled
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert second.stdout.split("\n")[:3] == ["serial 1 0", "parallel 1 0", "True"], second.stderr
    names = sorted(p.name.split("-")[0] for p in (tmp_path / "__pycache__").glob("*.nbi"))
    assert names == ["pairmod.body_nogil", "pairmod.body_parallel"]


# A kernel pair and a plain kernel that allocate (numba's runtime, NRT) and call exp; run the
# three, then a function numba compiles (not cached); print each kernel's cache hits and the
# count of numba target-context refreshes before and after that compile.
_LOADS = ("import numpy as np\n"
          "from numba.core import base\n"
          "refreshes = []\n"
          "orig = base.BaseContext.refresh\n"
          "base.BaseContext.refresh = lambda self: refreshes.append(1) or orig(self)\n"
          "{prelude}"
          "import loadmod, numba\n"
          "a = np.arange(6.0)\n"
          "out = [loadmod.pair[k](a.copy(), 0, 6).tolist() for k in ('serial', 'parallel')]\n"
          "out.append(loadmod.soft(a).tolist())\n"
          "print(out == [np.exp(a).tolist()] * 3)\n"
          "print([sum(d.stats.cache_hits.values()) for d in (loadmod.pair['serial'], loadmod.pair['parallel'], loadmod.soft)])\n"
          "print(len(refreshes))\n"
          "print(numba.njit(lambda x: np.sum(np.exp(x)))(a) == np.sum(np.exp(a)), len(refreshes) > 0)\n")


@needs_numba
def test_cached_kernels_load_without_numbas_context_refresh(tmp_path):
    """``_jit._load_without_refresh``: ember's kernels found in the disk cache are loaded without
    numba's target-context refresh (0.2-0.3 s of imports and registries on a process's first load,
    needed only to compile); they give the same results, allocation and parallel variants
    included, and a later compile in the same process still refreshes and works. When the short
    path fails, numba's own load (with its refresh) is used."""
    (tmp_path / "loadmod.py").write_text(
        "import numpy as np\n"
        "from ember.kernels._jit import kernel_pair, njit, prange\n"
        "def body(a, lo, hi):\n"
        "    t = np.empty(hi - lo)\n"
        "    for i in prange(lo, hi):\n"
        "        t[i - lo] = np.exp(a[i])\n"
        "    a[lo:hi] = t\n"
        "    return a\n"
        "pair = kernel_pair(body)\n"
        "@njit(cache=True)\n"
        "def soft(a):\n"
        "    return np.exp(a)\n")
    env = _env_importing(tmp_path)

    def run(prelude=""):
        out = subprocess.run([sys.executable, "-c", _LOADS.format(prelude=prelude)], capture_output=True,
                             text=True, env=env, cwd=tmp_path, timeout=300)
        assert out.returncode == 0, out.stderr
        return out.stdout.split("\n")[:4]

    first = run()                                   # compiles all three: numba refreshes
    assert first[:2] == ["True", "[0, 0, 0]"] and int(first[2]) > 0
    second = run()                                  # loads all three: no refresh until the compile
    assert second == ["True", "[1, 1, 1]", "0", "True True"]
    # the short path failing once (its first _load_overload raises): numba's own load, refreshing
    failing = ("from numba.core import caching\n"
               "_load, failed = caching.Cache._load_overload, []\n"
               "def _once(self, *a):\n"
               "    if not failed:\n"
               "        failed.append(1)\n"
               "        raise RuntimeError('short path broken')\n"
               "    return _load(self, *a)\n"
               "caching.Cache._load_overload = _once\n")
    third = run(failing)
    assert third[:2] == ["True", "[1, 1, 1]"] and int(third[2]) > 0


# ------------------------------------------------------------------- decoded Fashion-MNIST cache

def _idx_folder(folder, n=7, seed=0):
    """A Fashion-MNIST folder of n random training and test images, as gzip IDX files."""
    import numpy as np
    from ember.data import write_idx
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    return folder


def test_decoded_arrays_are_cached_and_read_back(tmp_path, monkeypatch):
    """load_data keeps the decoded IDX arrays in ARRAY_CACHE and reads them instead of the gzip files
    next time (same result, bit for bit); a changed file is read again."""
    import numpy as np
    from ember.data import datasets, read_idx
    from ember.training import data
    monkeypatch.setattr(data, "ARRAY_CACHE", tmp_path / "cache")
    root = _idx_folder(tmp_path / "fashion-mnist")
    x, y = data.load_data("fashion-mnist", str(root), train=True)
    images = read_idx(root / "train-images-idx3-ubyte.gz")
    expect = (images[:, None].astype(np.float32) / np.float32(255) - np.float32(0.2860)) / np.float32(0.3530)
    assert np.array_equal(x, expect) and x.dtype == np.float32 and x.shape == (7, 1, 28, 28)
    assert np.array_equal(y, read_idx(root / "train-labels-idx1-ubyte.gz")) and y.dtype == np.int64
    assert len(list((tmp_path / "cache").glob("idx-*.npz"))) == 1

    def no_reading(*a, **k):
        raise AssertionError("read the IDX files again")
    monkeypatch.setattr(datasets, "read_idx", no_reading)
    x2, y2 = data.load_data("fashion-mnist", str(root), train=True)
    assert np.array_equal(x2, x) and np.array_equal(y2, y)
    monkeypatch.undo()
    monkeypatch.setattr(data, "ARRAY_CACHE", tmp_path / "cache")
    _idx_folder(root, n=9, seed=1)                                # new files: the copy is stale
    x3, _ = data.load_data("fashion-mnist", str(root), train=True)
    assert x3.shape == (9, 1, 28, 28)
    assert np.array_equal(x3[:, 0], (read_idx(root / "train-images-idx3-ubyte.gz").astype(np.float32) / np.float32(255)
                                     - np.float32(0.2860)) / np.float32(0.3530))


def test_damaged_or_unwritable_cache_is_ignored(tmp_path, monkeypatch):
    """A damaged cache file is read over; a cache folder that cannot be made costs nothing but the cache."""
    import numpy as np
    from ember.training import data
    root = _idx_folder(tmp_path / "fashion-mnist")
    monkeypatch.setattr(data, "ARRAY_CACHE", tmp_path / "cache")
    x, y = data.load_data("fashion-mnist", str(root), train=False)
    (cached,) = (tmp_path / "cache").glob("idx-*.npz")
    cached.write_bytes(b"not a zip file")
    x2, y2 = data.load_data("fashion-mnist", str(root), train=False)
    assert np.array_equal(x2, x) and np.array_equal(y2, y)
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(data, "ARRAY_CACHE", blocker / "cache")     # under a file: mkdir fails
    x3, _ = data.load_data("fashion-mnist", str(root), train=False)
    assert np.array_equal(x3, x)


def test_startup_benchmark_tiny_runs(tmp_path):
    """benchmarks/startup.py end to end on a 7-image data set, reference mode (nothing compiles):
    a launch timed to its first-batch marker and an in-process breakdown. Timings are not tested."""
    import json
    data = _idx_folder(tmp_path / "fashion-mnist")
    out = tmp_path / "runs.json"
    env = dict(os.environ, HOME=str(tmp_path), PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "startup.py"), "--rounds", "1",
                           "--modes", "reference", "--launchers", "module", "--breakdown", "1", "--no-bytecode",
                           "--json", str(out), "--train-args", f"--data-dir {data} --batch-size 4 --no-progress"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = json.loads(out.read_text())
    (run,) = got["runs"]
    assert run["mode"] == "reference" and run["launcher"] == "module" and run["seconds"] > 0 and run["cpu"] > 0
    (b,) = got["breakdowns"]
    assert b["compiles"] == [] and b["total"][0] > 0
    assert "data loading (train + test)" in b["phases"] and "batch 1: the step itself" in b["phases"]
    assert "Summary" in proc.stdout and "Breakdown 1, reference" in proc.stdout
