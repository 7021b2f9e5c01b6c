"""The benchmarks run (tiny configurations, seconds), so they cannot rot; their timings are not tested."""
import json
import os
import subprocess
import sys

import pytest

from ember import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_lenet_benchmark_tiny_reports_every_figure(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "lenet.py"), "--tiny", "--synthetic",
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    row = res["configs"][0]
    for key in ("ember_epoch_s", "torch_epoch_s", "ratio", "ember_gflops", "torch_gflops"):
        assert row[key] > 0, key
    assert res["inference"]["ratio"] > 0 and res["gemm_gflops"]["numpy"] > 0
    assert [o["op"].split()[0] for o in res["ops"]] == ["conv2d"] * 3 + ["max_pool2d"] * 2 + ["cross_entropy"]
    assert "ratio ember/PyTorch" in proc.stdout and "Per-op" in proc.stdout
    steal = res["machine"]["steal_percent"]
    assert (steal is None) == (not os.path.exists("/proc/stat"))
    assert "CPU steal during the run " + ("unknown" if steal is None else f"{steal:.1f}%") in proc.stdout


def test_steal_percent_is_the_stolen_share_of_the_cpu_time_between_readings(tmp_path, monkeypatch):
    from ember.training import bench
    assert bench.steal_percent((10, 1000), (40, 1200)) == 15.0
    assert bench.steal_percent(None, (40, 1200)) is None and bench.steal_percent((10, 1000), (10, 1000)) is None
    stat = tmp_path / "stat"      # /proc/stat: user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 5 20 800 10 0 5 60 0 0\ncpu0 50 2 10 400 5 0 2 30 0 0\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: real_open(stat if f == "/proc/stat" else f, *a, **k))
    assert bench.cpu_ticks() == (60, 1000)


def test_scaling_benchmark_tiny_runs():
    proc = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "scaling.py"), "--tiny", "--no-torch",
                           "--repeats", "1", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "vs batch size" in proc.stdout and "vs input size" in proc.stdout


def test_ember_bench_command_is_registered_and_checks_repeats(capsys):
    assert "bench" in cli.COMMANDS
    assert cli.main(["bench", "--repeats", "2", "--no-torch"]) == 1
    assert "--repeats must be at least 3 (medians), got 2" in capsys.readouterr().err


def test_ember_bench_runs_the_installed_module(monkeypatch, capsys):
    """`ember bench` calls ember.training.bench (part of the installed package), whatever the
    current folder; benchmarks/lenet.py is only a script over the same module."""
    from ember.training import bench
    seen = []
    monkeypatch.setattr(bench, "run", lambda args: seen.append((args.threads, args.repeats, args.tiny)))
    monkeypatch.chdir(os.path.dirname(REPO))
    assert cli.main(["bench", "--threads", "1", "--repeats", "5", "--tiny"]) == 0
    assert seen == [(1, 5, True)]
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    assert "--batch-sizes" in capsys.readouterr().out
    assert "spec_from_file_location" not in open(cli.__file__).read()


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="Linux /proc needed")
def test_peak_step_growth_measures_what_a_step_touches():
    """The probe behind `ember bench`'s and conv_layers.py's peak-memory columns: a step that fills
    a fresh 64 MiB array reports nearly that (≥ 60 MiB), one that allocates nothing little."""
    from ember.training.bench import fresh_process_int
    big = fresh_process_int("import numpy as np; from ember.training.bench import peak_step_growth; "
                            "print(peak_step_growth(lambda: np.ones(8 << 20).sum()))")
    small = fresh_process_int("from ember.training.bench import peak_step_growth; "
                              "print(peak_step_growth(lambda: sum(range(100))))")
    assert big >= 60 << 20 and small < 4 << 20, (big, small)
