"""`mpiexec -n 2 ember train`: data-parallel training of the same global batches, rank 0 writes,
faults (a killed rank, flags that differ between ranks), --resume with the rank count checked.

Each test starts real processes over loopback (MPICH's mpiexec from the venv), on 256 images of
a slice of Fashion-MNIST (test_train's ``small_data``): 6 epochs of 4 steps, a few seconds per run.
(24 steps: float32 rounding differences between 2×32 and 1×64, ~1e-8 per step, stay below
1e-7 here; over ~50 steps at lr 0.05 training amplified them to 1e-2 on another slice.)
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ember.serialization import load_state_dict
from ember.training import load_checkpoint
from test_train import run_cli, small_data  # noqa: F401 (fixture)

MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
try:
    import mpi4py  # noqa: F401
    HAVE_MPI = MPIEXEC is not None
except ImportError:
    HAVE_MPI = False
pytestmark = pytest.mark.skipif(not HAVE_MPI, reason="no mpi4py or mpiexec (pip install 'ember[distributed]')")

ROOT = str(Path(__file__).resolve().parents[1])


def flags(data, out, *extra):
    return ["train", "--data-dir", str(data), "--subset", "256", "--epochs", "6", "--batch-size", "64",
            "--threads", "1", "--no-progress", "--out", str(out), *extra]


def mpi_cmd(n, *args):
    env_path = os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])
    return [MPIEXEC, "-genv", "PYTHONPATH", env_path, "-n", str(n), sys.executable, "-m", "ember", *args]


def run_mpi(n, *args, timeout=600):
    return subprocess.run(mpi_cmd(n, *args), capture_output=True, text=True, timeout=timeout)


def assert_same_weights(a_folder, b_folder, rel=1e-5):
    a, b = load_state_dict(Path(a_folder) / "model.safetensors"), load_state_dict(Path(b_folder) / "model.safetensors")
    assert sorted(a) == sorted(b) and a
    for k in a:
        err = np.linalg.norm(a[k].astype(np.float64) - b[k]) / max(np.linalg.norm(a[k].astype(np.float64)), 1e-30)
        assert err <= rel, f"{k}: relative difference {err:.2e}"


@pytest.fixture(scope="module")
def two_runs(small_data, tmp_path_factory):  # noqa: F811
    """The same 6-epoch run in one process and on 2 ranks: (data, one-process folder, 2-rank folder, 2-rank output)."""
    tmp = tmp_path_factory.mktemp("mpi")
    r1 = run_cli(*flags(small_data, tmp / "one"))
    assert r1.returncode == 0, r1.stderr
    r2 = run_mpi(2, *flags(small_data, tmp / "two"))
    assert r2.returncode == 0, r2.stderr
    return small_data, tmp / "one", tmp / "two", r2


def test_two_ranks_train_the_weights_of_one_process_and_only_rank_0_reports(two_runs):
    _, one, two, r2 = two_runs
    assert_same_weights(one, two)
    lines = r2.stdout.splitlines()
    assert [ln.split()[1] for ln in lines if ln.startswith("epoch ")] == [f"{e}/6" for e in range(1, 7)]   # printed once
    assert sum(ln.startswith("final test accuracy") for ln in lines) == 1
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert len(m2["epochs"]) == 6
    for a, b in zip(m1["epochs"], m2["epochs"]):   # metrics over the global batch, not rank 0's half
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-5 and a["train_accuracy"] == b["train_accuracy"]
        assert abs(a["test_loss"] - b["test_loss"]) < 1e-5 and a["test_accuracy"] == b["test_accuracy"]
    assert sorted(os.listdir(two)) == sorted(os.listdir(one))   # no second metrics file, no leftovers
    assert json.loads((two / "config.json").read_text()) == json.loads((one / "config.json").read_text()) | {
        "out": str(two)}


def test_resume_with_another_rank_count_is_refused(two_runs, tmp_path):
    data, _, two, _ = two_runs
    r = run_cli(*flags(data, tmp_path / "r", "--resume", str(two)))
    assert r.returncode == 1
    assert r.stderr.strip() == (f"ember train: error: --resume {two}: that run was trained on 2 rank(s), this one "
                                f"has 1; resume it with the same number: mpiexec -n 2 ember train ...")


def _rank_pid(out: Path, rank: int):
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(out).encode() in cmd and f"PMI_RANK={rank}".encode() in env:
            return int(pid)
    return None


def test_a_killed_rank_stops_the_job_the_checkpoint_loads_and_resume_continues(two_runs, tmp_path):
    data, _, two, _ = two_runs
    out = tmp_path / "cut"
    job = subprocess.Popen(mpi_cmd(2, *flags(data, out)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        # metrics.json is the last file an epoch writes (resume.safetensors comes first): wait for a whole epoch
        while not (out / "metrics.json").exists() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        victim = _rank_pid(out, 1)
        assert job.poll() is None and victim is not None, "the run ended before a rank could be killed"
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        out_text, err = job.communicate(timeout=60)
        assert time.monotonic() - killed < 60 and job.returncode != 0
    finally:
        if job.poll() is None:
            job.kill()
    # MPICH's launcher stops the other rank itself (SIGKILL) and names the pid; ember's sentinel
    # (ember/distributed/sentinel.py) names the rank and the last checkpoint rank 0 reported
    said = out_text + err
    assert "BAD TERMINATION" in said and f"PID {victim}" in said, said
    lost = [ln for ln in err.splitlines() if ln.startswith("ember: ")]
    head = (f"ember: rank 1 (PID {victim} on {socket.gethostname()}) was lost: it ended without finishing or "
            f"reporting an error (killed, or crashed); the other ranks are stopped (last checkpoint: epoch ")
    # (a sentinel that woke only after mpiexec had killed rank 0 too names both "at once": a loaded machine)
    tie = f"rank 1 (PID {victim}) on {socket.gethostname()} ended at once"
    assert len(lost) == 1 and (lost[0].startswith(head) or tie in lost[0]) and lost[0].endswith(f" in {out})"), err
    model, cfg = load_checkpoint(str(out))   # the last atomic checkpoint is whole
    assert cfg.model == "lenet5" and sum(p.numel() for p in model.parameters()) == 61706
    done = len(json.loads((out / "metrics.json").read_text())["epochs"])
    named = int(lost[0].rsplit("(last checkpoint: epoch ", 1)[1].split()[0])
    assert 1 <= named <= done <= 6   # what it names is on disk
    r = run_mpi(2, *flags(data, out, "--resume", str(out)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("resuming") == 1
    assert_same_weights(two, out, rel=0.0)   # same ranks, same batches: the uninterrupted run, bit for bit


def test_flags_that_differ_between_ranks_stop_every_rank_at_start(small_data, tmp_path):  # noqa: F811
    env_path = os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])
    rank = [sys.executable, "-m", "ember", *flags(small_data, tmp_path / "x", "--epochs", "1")]
    r = subprocess.run([MPIEXEC, "-genv", "PYTHONPATH", env_path, "-n", "1", *rank, ":", "-n", "1", *rank,
                        "--lr", "0.1"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert ("ember train: error: rank 1 was started with --lr 0.1 but rank 0 with --lr 0.05; start every "
            "rank with the same flags\n") in r.stderr, r.stderr
    assert "ember: rank" not in r.stderr   # an error a rank reported itself: the sentinel says nothing
    assert not (tmp_path / "x" / "metrics.json").exists()


def test_several_differing_flags_are_all_named(small_data, tmp_path):  # noqa: F811
    env_path = os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])
    rank = [sys.executable, "-m", "ember", *flags(small_data, tmp_path / "x", "--epochs", "1")]
    r = subprocess.run([MPIEXEC, "-genv", "PYTHONPATH", env_path, "-n", "1", *rank, ":", "-n", "1", *rank,
                        "--augment", "--threads", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert ("ember train: error: rank 1 was started with --augment but rank 0 with --no-augment; rank 1 was "
            "started with --threads 2 but rank 0 with --threads 1; start every rank with the same flags") in r.stderr


def test_timeout_flag_is_checked(tmp_path):
    for bad in ("0", "-5", "nan"):
        r = run_cli("train", "--timeout", bad, "--out", str(tmp_path / "t"))
        assert r.returncode == 1
        assert r.stderr.strip() == f"ember train: error: --timeout must be positive, got {float(bad)}"


def test_a_rank_that_never_joins_stops_the_other_within_the_timeout(small_data, tmp_path):  # noqa: F811
    env_path = os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])
    rank0 = [sys.executable, "-m", "ember", *flags(small_data, tmp_path / "x", "--epochs", "1", "--timeout", "3")]
    absent = [sys.executable, "-c", "from mpi4py import MPI; import time; time.sleep(120)"]   # MPI, but no ember
    t0 = time.monotonic()
    r = subprocess.run([MPIEXEC, "-genv", "PYTHONPATH", env_path, "-n", "1", *rank0, ":", "-n", "1", *absent],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and time.monotonic() - t0 < 60
    assert ("ember train: error on rank 0 of 2: ember.distributed: rank 0: init_process_group timed out after "
            "3 s: rank(s) 1 did not join (started by the launcher, but not calling init_process_group, or hung "
            "or dead before it)\n") in r.stderr, r.stderr


def test_a_hung_rank_stops_the_other_within_the_timeout(small_data, tmp_path):  # noqa: F811
    out = tmp_path / "hung"
    job = subprocess.Popen(mpi_cmd(2, *flags(small_data, out, "--epochs", "200", "--timeout", "4")),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (out / "metrics.json").exists() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        victim = _rank_pid(out, 1)
        assert job.poll() is None and victim is not None, "the run ended before a rank could be stopped"
        os.kill(victim, signal.SIGSTOP)   # hung: alive, but never reaches its next allreduce
        stopped = time.monotonic()
        _, err = job.communicate(timeout=120)
        assert time.monotonic() - stopped < 60 and job.returncode != 0
    finally:
        if job.poll() is None:
            job.kill()
    assert (f"ember train: error on rank 0 of 2: ember.distributed: rank 0: all_reduce timed out after 4 s: lost "
            f"rank 1 (pid {victim} on {socket.gethostname()}) has stopped\n") in err, err
    load_checkpoint(str(out))


def test_threads_default_to_cores_over_ranks(tmp_path):
    """Without --threads each of W ranks on a host gets cores ÷ W threads (at least 1)."""
    script = ("import ember.training.parallel as P, ember.training.config as C\n"
              "from ember.kernels.threads import get_num_threads\n"
              "with P.Ranks(C.TrainConfig()) as r: print(f'rank {r.rank} threads {get_num_threads()}', flush=True)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    want = max(1, len(os.sched_getaffinity(0)) // 2)
    # mpiexec forwards both ranks' stdout into one stream, where their lines can run together
    assert sorted(re.findall(r"rank \d+ threads \d+", r.stdout)) == [f"rank 0 threads {want}",
                                                                    f"rank 1 threads {want}"], r.stdout


def test_a_rank_stopped_by_a_bug_shows_its_traceback_and_never_an_empty_line():
    """What a rank prints before the job is aborted (``Ranks._abort``): one line for an error a user
    can fix, as in one process; for a bug the traceback too, and the exception's type when it has
    no message (before: "ember train: error on rank 0 of 2: " and nothing else for a StopIteration)."""
    import io
    from ember.training.parallel import report_error
    from ember.training import TrainingError

    def raised(e):
        try:
            raise e
        except BaseException as caught:
            return caught
    out = io.StringIO()
    report_error(raised(StopIteration()), 0, 2, out)
    text = out.getvalue()
    assert text.startswith("Traceback (most recent call last):") and "raise e" in text
    assert text.endswith("StopIteration\nember train: error on rank 0 of 2: StopIteration\n"), text
    for error, line in ((ValueError("--lr must be positive, got -1.0"), "--lr must be positive, got -1.0"),
                        (TrainingError("loss became nan at epoch 1, step 3"), "loss became nan at epoch 1, step 3")):
        out = io.StringIO()
        report_error(raised(error), 1, 2, out)
        assert out.getvalue() == f"ember train: error on rank 1 of 2: {line}\n"
