"""The main job: `ember train` / `ember evaluate` on Fashion-MNIST, end to end, and its errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import ember
from ember.data import FashionMNIST, write_idx
from ember.serialization import load_state_dict
from ember.models import lenet5
from ember.training import TrainConfig, TrainingError, train

HAVE_DATA = os.path.isdir("/usr/share/datasets/fashion-mnist")
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "ember", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """A 1,024/512-image slice of the real Fashion-MNIST as IDX files (fast training tests)."""
    if not HAVE_DATA:
        pytest.skip("Fashion-MNIST not installed")
    root = tmp_path_factory.mktemp("fmnist")
    for train, n, prefix in ((True, 1024, "train"), (False, 512, "t10k")):
        ds = FashionMNIST(train=train)
        write_idx(root / f"{prefix}-images-idx3-ubyte", ds.data[:n])
        write_idx(root / f"{prefix}-labels-idx1-ubyte", ds.targets[:n].astype(np.uint8))
    return root


def test_lenet5_has_61706_parameters():
    assert sum(p.numel() for p in lenet5().parameters()) == 61706


@needs_data
def test_one_epoch_default_settings_reaches_85_percent(tmp_path):
    """The README's figure: `ember train --epochs 1` with defaults, on the real 60k/10k data."""
    out = tmp_path / "run"
    r = run_cli("train", "--epochs", "1", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.85, metrics
    row = metrics["epochs"][0]
    assert set(row) == {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds"}
    assert "epoch 1/1" in r.stdout and "img/s" in r.stdout and "final test accuracy" in r.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "lenet5" and config["epochs"] == 1
    # the checkpoint reloads and gives the same accuracy
    r = run_cli("evaluate", "--checkpoint", str(out))
    assert r.returncode == 0, r.stderr
    assert f"accuracy {metrics['test_accuracy']:.4f}" in r.stdout


def test_small_run_writes_checkpoint_and_learns(small_data, tmp_path):
    cfg = TrainConfig(data_dir=str(small_data), epochs=2, out=str(tmp_path / "r"), progress=False)
    metrics = train(cfg, log=lambda s: None)
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert metrics["epochs"][1]["train_loss"] < metrics["epochs"][0]["train_loss"]
    assert metrics["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    state = load_state_dict(tmp_path / "r" / "model.safetensors")
    assert sorted(state) == sorted(lenet5().state_dict())
    assert not [f for f in os.listdir(tmp_path / "r") if f.endswith(".tmp")]  # no temp files left


def test_same_seed_gives_identical_weights(small_data, tmp_path):
    for name in ("a", "b"):
        train(TrainConfig(data_dir=str(small_data), epochs=1, out=str(tmp_path / name), progress=False),
              log=lambda s: None)
    a, b = (load_state_dict(tmp_path / n / "model.safetensors") for n in ("a", "b"))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_training_runs_with_the_old_objects_frozen_and_unfreezes_them(small_data, tmp_path):
    """``ember train`` hides the process's old objects from the garbage collector while it trains
    (``gc.freeze()``: a full collection walked ~110,000 objects, 110 ms, once per epoch; the other
    rank waits for it under mpiexec) and gives them back afterwards, also when training fails."""
    import gc
    seen = []

    def watch(phase, info):
        if phase == "start":
            seen.append(gc.get_freeze_count())
    gc.callbacks.append(watch)
    try:
        train(TrainConfig(data_dir=str(small_data), epochs=2, out=str(tmp_path / "r"), progress=False),
              log=lambda s: None)
    finally:
        gc.callbacks.remove(watch)
    assert seen and max(seen) > 10_000, "no collection during training saw frozen objects"
    assert gc.get_freeze_count() == 0
    with pytest.raises(TrainingError):
        train(TrainConfig(data_dir=str(small_data), epochs=1, lr=1e9, out=str(tmp_path / "nan"), progress=False),
              log=lambda s: None)
    assert gc.get_freeze_count() == 0


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(small_data, tmp_path, monkeypatch):
    import ember.training.loop as T
    real = T.F.cross_entropy
    calls = {"n": 0}
    steps_per_epoch = 1024 // 64

    def poisoned(logits, target, **kw):
        loss = real(logits, target, **kw)
        if kw.get("reduction", "mean") != "mean":  # evaluation's calls
            return loss
        calls["n"] += 1
        if calls["n"] == steps_per_epoch + 3:
            return loss * float("nan")
        return loss

    monkeypatch.setattr(T.F, "cross_entropy", poisoned)
    out = tmp_path / "r"
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 2, step 3; stopping \(the checkpoint of "
                                            r"epoch 1 is kept in .*\)"):
        train(TrainConfig(data_dir=str(small_data), epochs=3, out=str(out), progress=False), log=lambda s: None)
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1]
    model = lenet5()
    model.load_state_dict(load_state_dict(out / "model.safetensors"))
    assert all(np.isfinite(p.numpy()).all() for p in model.parameters())


def test_diverging_lr_exits_with_one_line(small_data, tmp_path):
    r = run_cli("train", "--data-dir", str(small_data), "--epochs", "1", "--lr", "1e9",
                "--out", str(tmp_path / "r"), "--no-progress")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("ember train: error: loss became ")
    assert "at epoch 1, step " in r.stderr and "no checkpoint was written" in r.stderr


def test_missing_data_folder_is_one_clear_line(tmp_path):
    missing = tmp_path / "nowhere"
    r = run_cli("train", "--data-dir", str(missing), "--epochs", "1", "--out", str(tmp_path / "r"))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(missing) in lines[0] and "apt-get install dataset-fashion-mnist" in lines[0]


@pytest.mark.parametrize("args, status, message", [
    (["--model", "resnet9000"], 2, "argument --model: invalid choice: 'resnet9000' (choose from 'cifar-convnet', "),
    (["--dataset", "cifar"], 2, "argument --dataset: invalid choice: 'cifar' (choose from 'fashion-mnist', 'mnist'"),
    (["--epochs", "0"], 1, "--epochs must be at least 1, got 0"),
    (["--lr", "-1"], 1, "--lr must be positive, got -1.0"),
])
def test_bad_train_settings(args, status, message, tmp_path):
    """Names are argparse choices (exit status 2, as any argparse error); values are checked by
    TrainConfig.validate (status 1); either way one line names the flag, no traceback."""
    r = run_cli("train", *args, "--out", str(tmp_path / "r"))
    assert r.returncode == status and "Traceback" not in r.stderr
    assert message in r.stderr and not (tmp_path / "r").exists()


def test_evaluate_missing_checkpoint(tmp_path):
    r = run_cli("evaluate", "--checkpoint", str(tmp_path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{tmp_path}/config.json: no such file" in r.stderr


def test_evaluate_corrupt_weights(small_data, tmp_path):
    out = tmp_path / "r"
    train(TrainConfig(data_dir=str(small_data), epochs=1, out=str(out), progress=False), log=lambda s: None)
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(data[: len(data) // 2])
    r = run_cli("evaluate", "--checkpoint", str(out), "--data-dir", str(small_data))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "model.safetensors" in r.stderr


def test_cli_help_lists_commands():
    r = run_cli("--help")
    assert r.returncode == 0 and "train" in r.stdout and "evaluate" in r.stdout
