"""Issue 15: flag combinations refused before training, one folder per run (no silent overwrite),
``ember evaluate RUN`` and its resolution rule, the per-step/per-epoch CSV log and curves,
``--download`` with a progress bar."""
import csv
import dataclasses
import itertools
import json
import os
import time

import numpy as np
import pytest

from ember.cli import main
from ember.data import datasets
from ember.training import OPTIMIZERS, SCHEDULES, Schedule, TrainConfig, build_optimizer
from ember.training.runs import choose_folder, default_folder, find_run
from ember.training.schedules import rehearse
from ember.nn import Linear

from test_train import small_data  # noqa: F401  (the 1,024-image Fashion-MNIST slice)

STEPS = 8  # steps per epoch in the flag grid (the real default run has 938)


def _run_schedule(cfg, steps_per_epoch):
    """Step a real Schedule through a whole run as train() does; return every lr used."""
    opt = build_optimizer(Linear(1, 1), cfg)
    schedule, lrs = Schedule(opt, cfg, steps_per_epoch), []
    for _ in range(cfg.epochs):
        for _ in range(steps_per_epoch):
            lrs.append(opt.param_groups[0]["lr"])
            schedule.after_step()
        schedule.after_epoch(1.0)
    return lrs


@pytest.mark.parametrize("optimizer, schedule", list(itertools.product(OPTIMIZERS, SCHEDULES)))
def test_every_flag_combination_is_checked_before_training(optimizer, schedule):
    """optimizer × schedule × warm-up (0, half an epoch, 1, 2 epochs) at 1 and 2 epochs: either the
    config is refused up front (validate or rehearse) with a message naming the flags, or the whole
    run's schedule steps through with finite learning rates in [0, lr·(1 + tiny)]. The issue's
    `--optimizer adamw --schedule onecycle --warmup 1 --epochs 1` raised ZeroDivisionError in
    lr_scheduler.py after a whole epoch."""
    for warmup, epochs in itertools.product((0.0, 0.5, 1.0, 2.0), (1, 2)):
        cfg = TrainConfig(optimizer=optimizer, schedule=schedule, warmup=warmup, epochs=epochs, lr=0.01)
        try:
            cfg.validate()
            rehearse(cfg, STEPS)
        except ValueError as e:
            assert "--warmup" in str(e) and "--epochs" in str(e), e
            assert warmup >= epochs, f"{cfg} refused: {e}"        # only warm-ups as long as the run
            continue
        assert warmup < epochs or schedule != "onecycle"
        lrs = _run_schedule(cfg, STEPS)
        assert len(lrs) == epochs * STEPS and all(np.isfinite(lrs)) and min(lrs) >= 0
        assert max(lrs) <= 0.01 * (1 + 1e-9), (cfg, max(lrs))


def test_the_issue_command_fails_before_training_with_the_flags_named(small_data, tmp_path, capsys):  # noqa: F811
    """No folder, no epoch: one line naming --schedule, --warmup and --epochs; with --epochs 2
    the same flags train (a tiny real run)."""
    argv = ["train", "--optimizer", "adamw", "--schedule", "onecycle", "--warmup", "1", "--augment",
            "--data-dir", str(small_data), "--no-progress", "--batch-size", "256"]
    assert main([*argv, "--epochs", "1", "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert err == ("ember train: error: --schedule onecycle needs --warmup below --epochs (the warm-up is its "
                   "rising phase, the rest of the run anneals), got --warmup 1 --epochs 1\n")
    assert not (tmp_path / "a").exists()
    assert main([*argv, "--epochs", "2", "--out", str(tmp_path / "b"), "--lr", "1e-3"]) == 0
    assert len(json.loads((tmp_path / "b" / "metrics.json").read_text())["epochs"]) == 2


def test_rehearse_names_the_flags_and_the_step(monkeypatch):
    """A warm-up shorter than one step is refused; a schedule that fails mid-run is reported with
    the flags and the step, before any training (simulated with a lambda that divides by zero)."""
    with pytest.raises(ValueError, match=r"^--warmup 0.01 is less than one step \(8 steps per epoch at "
                                         r"--batch-size 64\); pass at least 0.12 or 0$"):
        rehearse(TrainConfig(warmup=0.01, epochs=2), STEPS)
    from ember.optim import lr_scheduler
    monkeypatch.setattr(lr_scheduler, "cosine_factor", lambda t, total: 1 / (total - 1 - t) if t < total else 0.0)
    with pytest.raises(ValueError, match=r"^--optimizer sgd --schedule cosine --warmup 0 --epochs 2: the "
                                         r"learning-rate schedule fails at step 14 of 16 \(ZeroDivisionError: "):
        rehearse(TrainConfig(epochs=2), STEPS)


def _train(small_data, *args):  # noqa: F811
    return main(["train", "--data-dir", str(small_data), "--epochs", "1", "--no-progress", "--batch-size", "256",
                 *args])


def test_each_run_gets_its_own_folder(small_data, tmp_path, monkeypatch, capsys):  # noqa: F811
    """Without --out: runs/<model>-<dataset>/<YYYYmmdd-HHMMSS>, printed first; a second run in the
    same second gets -2; config.json records the folder; `ember evaluate runs/<model>-<dataset>`
    takes the newest run and says which."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "localtime", lambda t=None: time.struct_time((2026, 12, 1, 5, 30, 0, 1, 335, 0)))
    assert _train(small_data) == 0 and _train(small_data, "--seed", "1") == 0
    out = capsys.readouterr().out.splitlines()
    first, second = "runs/lenet5-fashion-mnist/20261201-053000", "runs/lenet5-fashion-mnist/20261201-053000-2"
    assert out[0] == f"run folder: {first}" and f"run folder: {second}" in out
    for folder in (first, second):
        assert json.loads((tmp_path / folder / "config.json").read_text())["out"] == folder
    seconds = os.path.getmtime(tmp_path / second / "metrics.json")
    os.utime(tmp_path / first / "metrics.json", (seconds + 10, seconds + 10))   # the first is now the newest
    assert main(["evaluate", "runs/lenet5-fashion-mnist", "--data-dir", str(small_data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    acc = json.loads((tmp_path / first / "metrics.json").read_text())["test_accuracy"]
    assert lines[0] == f"run: {first}" and lines[1].endswith(f", accuracy {acc:.4f} (512 images)")
    assert main(["evaluate", "--checkpoint", second, "--data-dir", str(small_data)]) == 0   # old spelling
    assert capsys.readouterr().out.startswith("lenet5 on fashion-mnist test set:")


def test_a_finished_run_is_never_overwritten_silently(small_data, tmp_path, capsys):  # noqa: F811
    """--out on a folder holding a run is refused (the files stay byte for byte) unless --overwrite;
    --resume DIR alone continues in DIR."""
    out = tmp_path / "a"
    assert _train(small_data, "--out", str(out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert _train(small_data, "--out", str(out), "--seed", "3") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ember train: error: --out {out} holds another run (config.json, metrics.json, "
                          f"model.safetensors, resume.safetensors); pass --resume {out} to continue it, "
                          f"--overwrite to replace it")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _train(small_data, "--out", str(out), "--seed", "3", "--overwrite") == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 3
    capsys.readouterr()
    assert _train(small_data, "--resume", str(out), "--seed", "3") == 0          # no --out: continues in out
    assert capsys.readouterr().out.splitlines()[:2] == [f"run folder: {out}", f"resuming {out} after epoch 1"]


def test_run_folder_rules(tmp_path):
    """choose_folder, default_folder and find_run on their own (no training)."""
    cfg = TrainConfig(out=str(tmp_path / "x"))
    assert choose_folder(cfg) == str(tmp_path / "x")                           # a new or empty folder
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    assert choose_folder(cfg) == str(tmp_path / "x")                           # other files are no run
    (tmp_path / "x" / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match="holds another run"):
        choose_folder(cfg)
    assert choose_folder(dataclasses.replace(cfg, resume=str(tmp_path / "x"))) == str(tmp_path / "x")
    assert choose_folder(dataclasses.replace(cfg, out=None, resume=str(tmp_path / "x"))) == str(tmp_path / "x")
    name = default_folder("mlp", "mnist", root=str(tmp_path / "runs"), now=0)
    assert name == str(tmp_path / "runs" / "mlp-mnist" / time.strftime("%Y%m%d-%H%M%S", time.localtime(0)))
    for i, run in enumerate(("a/1", "a/2", "b/deep/3")):
        (tmp_path / "r" / run).mkdir(parents=True)
        (tmp_path / "r" / run / "config.json").write_text("{}")
        (tmp_path / "r" / run / "metrics.json").write_text("{}")
        os.utime(tmp_path / "r" / run / "metrics.json", (1000 + i * (1 if run != "a/2" else 5),) * 2)
    assert find_run(str(tmp_path / "r")) == str(tmp_path / "r" / "a" / "2")   # written last, any depth
    assert find_run(str(tmp_path / "r" / "a" / "1")) == str(tmp_path / "r" / "a" / "1")  # a run is itself
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path}/nope: no such run folder \\(one written by ember "
                                                r"train, holding config.json\)$"):
        find_run(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path}/x/config.json: no such file, and no run folder"):
        find_run(str(tmp_path / "x"))


def test_csv_logs_and_curves(small_data, tmp_path):  # noqa: F811
    """steps.csv: one row per step, with the lr the step used (the schedule's) and its seconds;
    epochs.csv: one row per epoch, equal to metrics.json's, val columns filled with --val-split;
    curves.png has the learning-rate panel (1500 px wide) after a single epoch."""
    from PIL import Image
    from ember.training import train
    cfg = TrainConfig(data_dir=str(small_data), epochs=2, batch_size=128, val_split=0.25, out=str(tmp_path / "r"),
                      progress=False, schedule="onecycle", warmup=0.5, optimizer="adam", lr=1e-3)
    metrics = train(cfg, log=lambda m: None)
    with open(tmp_path / "r" / "steps.csv", newline="") as f:
        steps = list(csv.DictReader(f))
    per_epoch = 6                                                    # 768 training images / 128
    assert [int(r["step"]) for r in steps] == list(range(1, 2 * per_epoch + 1))
    assert [int(r["epoch"]) for r in steps] == [1] * per_epoch + [2] * per_epoch
    np.testing.assert_allclose([float(r["lr"]) for r in steps], _run_schedule(cfg, per_epoch), rtol=1e-5)
    assert all(float(r["seconds"]) > 0 and np.isfinite(float(r["loss"])) for r in steps)
    losses = np.array([float(r["loss"]) for r in steps])
    assert metrics["epochs"][0]["train_loss"] == pytest.approx(losses[:per_epoch].mean(), rel=1e-5)
    with open(tmp_path / "r" / "epochs.csv", newline="") as f:
        epochs = list(csv.DictReader(f))
    assert list(epochs[0]) == ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
                               "test_accuracy", "lr", "seconds"]
    for row, saved in zip(epochs, metrics["epochs"]):
        for k, v in saved.items():
            assert float(row[k]) == pytest.approx(v), k
    assert Image.open(tmp_path / "r" / "curves.png").size == (1500, 400)


def test_download_flag_and_progress_bar(tmp_path, monkeypatch, capsys):
    """The missing-data error tells CLI users to pass --download; --download fetches the files
    (here from a file:// mirror) with a tqdm bar counting every byte."""
    assert main(["train", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.strip().endswith("set EMBER_DATA, or pass --download") and "download=True" not in err
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    payload = os.urandom(3000)
    (mirror / "blob.gz").write_bytes(payload)
    import hashlib
    bars = []

    class Bar:
        def __init__(self, total=None, **kw):
            self.total, self.n, self.kw = total, 0, kw
            bars.append(self)

        def update(self, n):
            self.n += n

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False
    monkeypatch.setattr(datasets, "tqdm", Bar)
    datasets._download_file(f"file://{mirror}/blob.gz", tmp_path / "blob.gz", hashlib.sha256(payload).hexdigest())
    assert (tmp_path / "blob.gz").read_bytes() == payload
    assert [(b.total, b.n, b.kw["unit"], b.kw["desc"]) for b in bars] == [(3000, 3000, "B", "blob.gz")]


def test_readme_train_commands_are_valid_flag_combinations(tmp_path, monkeypatch):
    """Every `$ ember train ...` line of the README parses and passes validation and the schedule
    rehearsal (at the real 938 steps per epoch), so none of them fails before or after an epoch."""
    import argparse
    import pathlib
    import shlex
    from ember.training.config import add_arguments
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text().replace("\\\n", " ")
    lines = [line.split("#")[0].strip()[len("$ ember train"):] for line in readme.splitlines()
             if line.strip().startswith("$ ember train") and "--help" not in line]
    assert len(lines) >= 5
    monkeypatch.chdir(tmp_path)
    for run in ("a", "resnet20-cifar10"):                         # the README's --resume folders
        (tmp_path / "runs" / run).mkdir(parents=True)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for line in lines:
        cfg = TrainConfig.from_args(parser.parse_args(shlex.split(line)))
        cfg.validate()
        rehearse(cfg, 938)
        assert choose_folder(cfg)


@pytest.mark.parametrize("argv, message", [
    (["--optimizer", "adam", "--momentum", "0.5"],
     "--momentum applies to --optimizer sgd only, not --optimizer adam (which uses PyTorch's defaults); "
     "drop --momentum"),
    (["--optimizer", "rmsprop", "--no-nesterov"],
     "--no-nesterov applies to --optimizer sgd only, not --optimizer rmsprop (which uses PyTorch's defaults); "
     "drop --no-nesterov"),
    (["--schedule", "onecycle", "--momentum", "0.8"],
     "--momentum is ignored by --schedule onecycle, which cycles the momentum between 0.95 and 0.85 itself; "
     "drop --momentum or choose another --schedule"),
])
def test_flags_the_choice_would_ignore_are_refused(argv, message, capsys, tmp_path):
    """A flag that the chosen optimizer or schedule would silently ignore is an error, before any
    data is read; the defaults (momentum 0.9, Nesterov) never trigger it."""
    assert main(["train", *argv, "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().err == f"ember train: error: {message}\n"
    assert main(["train", "--optimizer", "adam", "--schedule", "onecycle", "--data-dir", str(tmp_path / "none")]) == 1
    assert "Fashion-MNIST not found" in capsys.readouterr().err              # got past the flag checks
