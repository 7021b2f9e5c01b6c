"""Issue 14 (reliability, round two): `ember train` / `evaluate` / `--resume` / the run folder under
divergence, changed flags, OS errors, empty splits, signals; and every op on a batch of N = 0.

Each test names the issue's item it checks. The data is synthetic and tiny (``_tiny_dataset``:
192 training and 64 test images), so the whole file (68 tests) runs in 15–60 s on 2 cores.
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.cli import main
from ember.serialization import CheckpointError, atomic_write_bytes, load_state_dict, save_state_dict
from ember.training import TrainConfig, TrainingError, load_checkpoint, read_train_state, train
from ember.training import loop as train_loop
from ember.training.checkpoint import save_run
from ember.training.config import _FIELDS

from test_reliability import _tiny_dataset

REPO = Path(__file__).resolve().parents[1]
QUIET = dict(log=lambda s: None)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """192 training and 64 test images of 28×28, classes separable by brightness (IDX files)."""
    folder = tmp_path_factory.mktemp("tiny")
    _tiny_dataset(folder)
    return folder


def _cfg(data, out, **kw):
    base = dict(data_dir=str(data), out=str(out), progress=False, epochs=2, batch_size=64, model="lenet5")
    base.update(kw)
    return TrainConfig(**base)


def _finite_checkpoint(out):
    """Load the run folder's model (SHA-256 verified) and assert that every weight is finite."""
    model, _ = load_checkpoint(str(out))
    assert all(np.isfinite(p.data).all() for p in model.parameters())
    return model


def _cli(*argv, capsys):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ================================================================== item 1: NaN weights never saved
def test_item1_weights_made_non_finite_by_the_last_step_never_replace_the_good_checkpoint(data, tmp_path,
                                                                                         monkeypatch):
    """The last update of epoch 2 makes the weights NaN (the loss check, which runs before
    opt.step(), cannot see it): epoch 1's checkpoint stays, the error names the epoch kept."""
    optimizers = []
    monkeypatch.setattr(train_loop, "rehearse", lambda cfg, steps: None)   # its dry run would count here too
    real_build = train_loop.build_optimizer
    monkeypatch.setattr(train_loop, "build_optimizer", lambda m, c: optimizers.append(real_build(m, c)) or optimizers[-1])
    real_after_epoch = train_loop.Schedule.after_epoch
    calls = []

    def poison_after_epoch_2(self, metric):
        calls.append(metric)
        if len(calls) == 2:
            optimizers[0].param_groups[0]["params"][0].data[...] = np.nan
        return real_after_epoch(self, metric)
    monkeypatch.setattr(train_loop.Schedule, "after_epoch", poison_after_epoch_2)
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"the weights became non-finite in epoch 2 \(non-finite values in "
                                            r"model\.0\.weight\); stopping \(the checkpoint of epoch 1 is kept in "):
        train(_cfg(data, out, epochs=3), **QUIET)
    _finite_checkpoint(out)
    assert [r["epoch"] for r in json.loads((out / "metrics.json").read_text())["epochs"]] == [1]
    assert read_train_state(out)[0]["epoch"] == 1


@pytest.mark.parametrize("optimizer, lr", [("sgd", 1e39), ("adam", 1e39)])
def test_item1_one_step_to_inf_exits_non_zero_and_writes_nothing(data, tmp_path, capsys, optimizer, lr):
    """`--epochs 1 --lr 1e39` with one step per epoch: old code saved inf/NaN weights and exited 0."""
    out = tmp_path / "run"
    status, _, err = _cli("train", "--data-dir", str(data), "--epochs", "1", "--batch-size", "192", "--lr", str(lr),
                          "--optimizer", optimizer, "--out", str(out), "--no-progress", capsys=capsys)
    assert status == 1
    assert err.startswith("ember train: error: the weights became non-finite in epoch 1 (") and \
        "no checkpoint was written" in err and len(err.strip().splitlines()) == 1
    assert not (out / "model.safetensors").exists() and not (out / "resume.safetensors").exists()


def test_item1_divergence_over_20_seeds_and_both_optimizers_never_leaves_a_non_finite_checkpoint(data, tmp_path):
    """The divergence test: lr 1e33 .. 1e39 (1e39 > float32's max), 20 seeds × {sgd, adam}, 1, 2
    or 3 steps per epoch (with one, the loss check before the step never sees the overflow):
    every run stops with a TrainingError or finishes, and whatever checkpoint the folder holds
    is finite and loads (weights and optimizer state)."""
    stopped = finished = saved = 0
    for seed in range(20):
        for optimizer in ("sgd", "adam"):
            out = tmp_path / f"{optimizer}-{seed}"
            lr = 10.0 ** (33 + seed % 7)  # 1e33 .. 1e39: some overflow at once, some a few steps later
            try:
                train(_cfg(data, out, optimizer=optimizer, lr=lr, seed=seed, batch_size=(64, 96, 192)[seed % 3],
                           epochs=2, schedule="none"), **QUIET)
                finished += 1
            except TrainingError as e:
                assert "stopping (" in str(e), e
                stopped += 1
            if (out / "model.safetensors").exists():
                saved += 1
                _finite_checkpoint(out)
                state, arrays = read_train_state(out)
                assert all(np.isfinite(v).all() for k, v in arrays.items() if v.dtype.kind == "f"), state["epoch"]
    assert stopped + finished == 40 and stopped >= 20, (stopped, finished)
    print(f"divergence: {stopped}/40 runs stopped with a TrainingError, {finished} finished; "
          f"{saved} left a checkpoint, all finite")


def test_item1_evaluate_refuses_non_finite_weights(data, tmp_path, capsys):
    out = tmp_path / "run"
    train(_cfg(data, out, epochs=1), **QUIET)
    state = load_state_dict(out / "model.safetensors")
    state["0.weight"][0, 0, 0, 0] = np.inf
    save_state_dict(state, out / "model.safetensors")
    status, stdout, err = _cli("evaluate", "--checkpoint", str(out), "--data-dir", str(data), capsys=capsys)
    assert status == 1 and stdout == ""
    assert err == (f"ember evaluate: error: {out}/model.safetensors: the weights hold NaN/inf (0.weight); "
                   f"this model diverged and cannot be evaluated\n")


# ================================================================== item 3: --resume with changed flags
def test_item3_resume_refuses_changed_flags_and_lists_them_all(data, tmp_path):
    out = tmp_path / "run"
    train(_cfg(data, out, epochs=1), **QUIET)
    with pytest.raises(CheckpointError, match=r"saved with other flags \(--batch-size 64 -> 32; --schedule cosine -> "
                                              r"step; --lr 0.05 -> 0.1; --weight-decay 0.0005 -> 0.0\); start a new run"):
        train(_cfg(data, tmp_path / "b", epochs=2, resume=str(out), lr=0.1, batch_size=32, schedule="step",
                   weight_decay=0.0), **QUIET)
    with pytest.raises(CheckpointError, match=r"\(--lr 0.05 -> 0.1; --momentum 0.9 -> 0.5\); pass "
                                              r"--allow-changed-flags to continue with them anyway"):
        train(_cfg(data, tmp_path / "c", epochs=2, resume=str(out), lr=0.1, momentum=0.5), **QUIET)
    assert not (tmp_path / "c" / "config.json").exists()  # config.json never records flags that were not used


def test_item3_safe_flags_may_change_on_resume(data, tmp_path):
    """--epochs (to extend), --out, --threads, --patience and the display flags are not compared."""
    out = tmp_path / "run"
    train(_cfg(data, out, epochs=1), **QUIET)
    metrics = train(_cfg(data, tmp_path / "more", epochs=2, resume=str(out), threads=1, progress=True,
                         detect_anomaly=False), **QUIET)
    assert [r["epoch"] for r in metrics["epochs"]] == [1, 2] and "resume_changes" not in metrics


def test_item3_the_override_applies_the_new_lr_and_records_it(data, tmp_path):
    """With --allow-changed-flags the new --lr takes effect (the lr of the next step is doubled),
    config.json holds it and metrics.json says from which epoch on."""
    from ember.models import get_model
    from ember.training import Schedule, build_optimizer, load_train_state
    out = tmp_path / "run"
    train(_cfg(data, out, epochs=1), **QUIET)

    def lr_after_loading(**kw):
        cfg = _cfg(data, tmp_path / "x", epochs=2, resume=str(out), **kw)
        model = get_model(cfg.model)
        opt = build_optimizer(model, cfg)
        load_train_state(str(out), cfg, model, opt, Schedule(opt, cfg, 3))
        return [g["lr"] for g in opt.param_groups]
    same, doubled = lr_after_loading(), lr_after_loading(lr=0.1, allow_changed_flags=True)
    np.testing.assert_allclose(doubled, [2 * v for v in same], rtol=1e-12)
    metrics = train(_cfg(data, tmp_path / "b", epochs=2, resume=str(out), lr=0.1, allow_changed_flags=True), **QUIET)
    assert metrics["resume_changes"] == [{"after_epoch": 1, "flags": ["--lr 0.05 -> 0.1"]}]
    assert json.loads((tmp_path / "b" / "config.json").read_text())["lr"] == 0.1
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["resume_changes"] == metrics["resume_changes"]


def test_item3_the_meaning_marker_lives_in_the_field_metadata_and_help_documents_it(capsys, monkeypatch):
    """The help text lists the flags of each kind, generated from the metadata."""
    monkeypatch.setenv("COLUMNS", "2000")  # no line breaks inside flag names
    kinds = {name: f.metadata["resume"] for name, f in _FIELDS.items()}
    assert {n for n, k in kinds.items() if k} >= {"model", "dataset", "batch_size", "lr", "momentum", "nesterov",
                                                  "weight_decay", "seed", "optimizer", "schedule", "warmup",
                                                  "augment", "val_split"}
    assert all(kinds[n] is None for n in ("epochs", "threads", "progress", "out", "data_dir", "resume"))
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("may change only the other flags (--data-dir, --download, --epochs, --out, --overwrite, --progress, "
            "--detect-anomaly, --patience, --threads, --timeout: --epochs to extend); a changed --lr, --momentum, "
            "--nesterov, --weight-decay, --augment needs --allow-changed-flags; --model, --dataset, --test-split, --batch-size, "
            "--seed, --optimizer, --schedule, --warmup, --val-split, --subset never change") in text
    assert "--allow-changed-flags with --resume: continue with a changed --lr, --momentum" in text


# ================================================================== item 6: OS errors, one line naming the path
def test_item6_out_that_is_a_file_or_under_a_file_fails_before_loading_data(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    missing = tmp_path / "no-data"  # the data is never looked at: the folder check comes first
    for out, message in ((afile, f"--out {afile}: is a file, not a folder"),
                         (afile / "run", f"--out {afile}/run: a part of this path is a file, not a folder")):
        status, _, err = _cli("train", "--data-dir", str(missing), "--out", str(out), capsys=capsys)
        assert (status, err) == (1, f"ember train: error: {message}\n")


def test_item6_read_only_out_is_refused_before_training(data, tmp_path, monkeypatch):
    """The writability probe (simulated EACCES: root ignores permission bits; the real read-only
    mount is in the fault-injection test below)."""
    import ember.training.safety as safety

    def denied(**kw):
        raise PermissionError(13, "Permission denied", kw.get("dir"))
    monkeypatch.setattr(safety.tempfile, "mkstemp", denied)
    monkeypatch.setattr(train_loop, "load_data", lambda *a, **k: pytest.fail("trained before checking --out"))
    with pytest.raises(ValueError, match=rf"^--out {tmp_path}/ro: the folder is not writable \(Permission denied\)$"):
        train(_cfg(data, tmp_path / "ro"), **QUIET)


def test_item6_disk_full_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"old")

    def no_space(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError) as e:
        atomic_write_bytes(path, b"new" * 1000)
    monkeypatch.undo()
    assert e.value.filename == str(path) and e.value.errno == 28
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_item6_disk_full_during_training_stops_naming_the_file_patched(data, tmp_path, monkeypatch):
    """ENOSPC simulated by patching fsync (runs where no tmpfs can be mounted): the save of epoch 2
    fails at its first file, the error names it, epoch 1's checkpoint stays whole."""
    real_fsync, real_after_epoch, full = os.fsync, train_loop.Schedule.after_epoch, []
    monkeypatch.setattr(train_loop, "rehearse", lambda cfg, steps: None)   # its dry run would count here too

    def fsync(fd):
        if full:
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    epochs = []

    def fill_disk_after_epoch_2(self, metric):  # called just before each epoch's save
        epochs.append(metric)
        if len(epochs) == 2:
            full.append(True)
        return real_after_epoch(self, metric)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(train_loop.Schedule, "after_epoch", fill_disk_after_epoch_2)
    out = tmp_path / "run"
    with pytest.raises(TrainingError) as e:
        train(_cfg(data, out, epochs=3), **QUIET)
    monkeypatch.undo()
    assert str(e.value) == (f"cannot save epoch 2: {out}/resume.safetensors: no space left on the device; "
                            f"stopping (the checkpoint of epoch 1 is kept in {out})")
    _finite_checkpoint(out)
    assert read_train_state(out)[0]["epoch"] == 1 and not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_item6_evaluate_accepts_the_model_file_itself(data, tmp_path, capsys):
    out = tmp_path / "run"
    train(_cfg(data, out, epochs=1), **QUIET)
    a = _cli("evaluate", "--checkpoint", str(out), "--data-dir", str(data), capsys=capsys)
    b = _cli("evaluate", "--checkpoint", str(out / "model.safetensors"), "--data-dir", str(data), capsys=capsys)
    assert a == b and a[0] == 0 and "accuracy" in a[1]


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "expected a JSON object of train settings, got a list"),
    ('{"model": "lenet5", "dataset": "imagenet"}', "unknown dataset 'imagenet'; valid datasets: "),
    ('{"model": "vgg99"}', "unknown model 'vgg99'; valid models: "),
    (None, "cannot read (Is a directory)"),
])
def test_item6_bad_config_json_is_one_line_naming_it(data, tmp_path, capsys, content, message):
    out = tmp_path / "run"
    train(_cfg(data, out, epochs=1), **QUIET)
    (out / "config.json").unlink()
    if content is None:
        (out / "config.json").mkdir()
    else:
        (out / "config.json").write_text(content)
    status, _, err = _cli("evaluate", "--checkpoint", str(out), capsys=capsys)
    assert status == 1 and err.startswith(f"ember evaluate: error: {out}/config.json: {message}")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["filter", "--demo", "--out", "{file}/x.png"], "--out {file}/x.png: {file} is a file, not a folder"),
    (["filter", "--demo", "--out", "{dir}"], "--out {dir}: is a folder; give a file name such as {dir}/picture.png"),
    (["visualize", "graph", "--out", "{file}"], "--out {file}: is a file, not a folder"),
    (["visualize", "graph", "--out", "{file}/sub"], "--out {file}/sub: a part of this path is a file, not a folder"),
])
def test_item6_picture_commands_with_out_at_a_file(tmp_path, capsys, argv, message):
    pytest.importorskip("matplotlib")
    afile = tmp_path / "afile"
    afile.write_text("x")
    fill = dict(file=str(afile), dir=str(tmp_path))
    status, _, err = _cli(*[a.format(**fill) for a in argv], capsys=capsys)
    assert (status, err) == (1, f"ember {argv[0]}: error: {message.format(**fill)}\n")


# ------------------------------------------------------------------ fault injection: real full / read-only disks
@contextlib.contextmanager
def _tmpfs(folder: Path, size: str):
    """A tmpfs of ``size`` mounted at ``folder`` (root with CAP_SYS_ADMIN only; else skip)."""
    folder.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()}); the patched tests above still run")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _train_proc(data, out, extra=()):
    cmd = [sys.executable, "-m", "ember", "train", "--data-dir", str(data), "--epochs", "100000", "--batch-size",
           "64", "--out", str(out), "--no-progress", *extra]
    return subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc, seconds=120):
    deadline = time.monotonic() + seconds
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert path.exists(), proc.communicate()


def test_fault_injection_disk_fills_up_mid_save(data, tmp_path):
    """A real 1.2 MB tmpfs: epoch 1's files (resume ~0.5 MB + model ~0.25 MB) fit; epoch 2's resume
    temp file does not (ENOSPC mid-save). The run exits 1 naming the file, epoch 1 loads."""
    with _tmpfs(tmp_path / "small", "1200k") as disk:
        out = disk / "run"
        proc = _train_proc(data, out)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, err
        assert err == (f"ember train: error: cannot save epoch 2: {out}/resume.safetensors: no space left on the "
                       f"device; stopping (the checkpoint of epoch 1 is kept in {out})\n")
        _finite_checkpoint(out)
        assert read_train_state(out)[0]["epoch"] == 1
        assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_fault_injection_folder_made_read_only_mid_run(data, tmp_path):
    """A tmpfs remounted read-only (`mount -o remount,ro`; permission bits would not stop root)
    right after the first checkpoint: the next save fails, the run exits 1 naming the file, and
    the last checkpoint loads."""
    with _tmpfs(tmp_path / "disk", "64m") as disk:
        out = disk / "run"
        proc = _train_proc(data, out)
        _wait_for(out / "metrics.json", proc)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, err
        line = err.splitlines()[-1]  # (before it, maybe: "could not draw training curves", a warning)
        assert line.startswith("ember train: error: cannot save epoch ") and \
            f"{out}/resume.safetensors: Read-only file system; stopping (the checkpoint of epoch " in line
        assert "Traceback" not in err and len(err.splitlines()) <= 2
        _finite_checkpoint(out)
        kept = int(line.rsplit("the checkpoint of epoch ", 1)[1].split()[0])
        assert read_train_state(out)[0]["epoch"] == kept >= 1


# ================================================================== item 7: empty splits, N = 0 batches
@pytest.mark.parametrize("n_train, n_test, extra, message", [
    (0, 64, [], "the training set is empty (0 images): check --data-dir and --dataset"),
    (192, 0, [], "the test set is empty (0 images): check --data-dir and --dataset"),
    (192, 64, ["--val-split", "0.999"], "--val-split 0.999 leaves no training images (all 192 are held out for "
                                        "validation); use a smaller fraction"),
    (192, 64, ["--val-split", "0.001"], "--val-split 0.001 holds out no image of the 192 training images; use at "
                                        "least 0.0052"),
])
def test_item7_empty_splits_are_refused_before_training(tmp_path, capsys, n_train, n_test, extra, message):
    folder = tmp_path / "data"
    folder.mkdir()
    _tiny_dataset(folder, n_train=n_train, n_test=n_test)
    status, out, err = _cli("train", "--data-dir", str(folder), "--out", str(tmp_path / "r"), "--no-progress",
                            *extra, capsys=capsys)
    assert (status, err) == (1, f"ember train: error: {message}\n")
    assert "epoch 1/" not in out


def _n0_cases():
    import torch
    import torch.nn.functional as tF
    from ember import nn
    import ember.nn.functional as F
    L = torch.zeros(0, dtype=torch.int64)
    return {  # name: (ember module/function, torch one, input shape, extra args as (ember, torch))
        "conv2d": (lambda: nn.Conv2d(1, 2, 3), lambda: torch.nn.Conv2d(1, 2, 3), (0, 1, 5, 5)),
        "conv2d_s2_p1": (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), lambda: torch.nn.Conv2d(3, 4, 3, 2, 1),
                         (0, 3, 8, 8)),
        "conv1d": (lambda: nn.Conv1d(1, 2, 3), lambda: torch.nn.Conv1d(1, 2, 3), (0, 1, 5)),
        "max_pool2d": (lambda: nn.MaxPool2d(2), lambda: torch.nn.MaxPool2d(2), (0, 2, 4, 4)),
        "avg_pool2d": (lambda: nn.AvgPool2d(2), lambda: torch.nn.AvgPool2d(2), (0, 2, 4, 4)),
        "adaptive_avg_pool2d": (lambda: nn.AdaptiveAvgPool2d(1), lambda: torch.nn.AdaptiveAvgPool2d(1), (0, 2, 4, 4)),
        "linear": (lambda: nn.Linear(3, 2), lambda: torch.nn.Linear(3, 2), (0, 3)),
        "batch_norm2d_train": (lambda: nn.BatchNorm2d(2), lambda: torch.nn.BatchNorm2d(2), (0, 2, 3, 3)),
        "batch_norm1d_train": (lambda: nn.BatchNorm1d(3), lambda: torch.nn.BatchNorm1d(3), (0, 3)),
        "batch_norm2d_eval": (lambda: nn.BatchNorm2d(2).eval(), lambda: torch.nn.BatchNorm2d(2).eval(), (0, 2, 3, 3)),
        "layer_norm": (lambda: nn.LayerNorm(3), lambda: torch.nn.LayerNorm(3), (0, 3)),
        "flatten": (lambda: nn.Flatten(), lambda: torch.nn.Flatten(), (0, 2, 3, 3)),
        "dropout": (lambda: nn.Dropout(0.5), lambda: torch.nn.Dropout(0.5), (0, 3)),
        "relu": (lambda: F.relu, lambda: tF.relu, (0, 3)),
        "sigmoid": (lambda: F.sigmoid, lambda: torch.sigmoid, (0, 3)),
        "tanh": (lambda: F.tanh, lambda: torch.tanh, (0, 3)),
        "leaky_relu": (lambda: F.leaky_relu, lambda: tF.leaky_relu, (0, 3)),
        "softmax": (lambda: (lambda x: F.softmax(x, dim=1)), lambda: (lambda x: tF.softmax(x, dim=1)), (0, 3)),
        "log_softmax": (lambda: (lambda x: F.log_softmax(x, dim=1)), lambda: (lambda x: tF.log_softmax(x, dim=1)),
                        (0, 3)),
        "cross_entropy_mean": (lambda: (lambda x: F.cross_entropy(x, ember.zeros(0, dtype=ember.int64))),
                               lambda: (lambda x: tF.cross_entropy(x, L)), (0, 3)),
        "cross_entropy_sum": (lambda: (lambda x: F.cross_entropy(x, ember.zeros(0, dtype=ember.int64), reduction="sum")),
                              lambda: (lambda x: tF.cross_entropy(x, L, reduction="sum")), (0, 3)),
        "cross_entropy_none": (lambda: (lambda x: F.cross_entropy(x, ember.zeros(0, dtype=ember.int64), reduction="none")),
                               lambda: (lambda x: tF.cross_entropy(x, L, reduction="none")), (0, 3)),
        "mse_loss_sum": (lambda: (lambda x: F.mse_loss(x, ember.zeros(0, 3), reduction="sum")),
                         lambda: (lambda x: tF.mse_loss(x, torch.zeros(0, 3), reduction="sum")), (0, 3)),
        "bce_with_logits_sum": (
            lambda: (lambda x: F.binary_cross_entropy_with_logits(x, ember.zeros(0, 3), reduction="sum")),
            lambda: (lambda x: tF.binary_cross_entropy_with_logits(x, torch.zeros(0, 3), reduction="sum")), (0, 3)),
    }


@pytest.mark.parametrize("name", sorted(_n0_cases() if __import__("importlib").util.find_spec("torch") else []))
def test_item7_every_op_accepts_a_batch_of_zero_as_torch(name):
    """Forward shape and values, the input gradient's shape and every parameter gradient (zeros), as torch."""
    import torch
    make_e, make_t, shape = _n0_cases()[name]
    fe, ft = make_e(), make_t()
    xe, xt = ember.zeros(*shape, requires_grad=True), torch.zeros(*shape, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of nothing is NaN, as torch's
        ye, yt = fe(xe), ft(xt)
    assert tuple(ye.shape) == tuple(yt.shape), name
    np.testing.assert_array_equal(ye.detach().numpy(), yt.detach().numpy())
    if yt.numel() and not torch.isfinite(yt).all():
        return  # the mean of an empty batch: NaN in both; its gradient is NaN·0 in both, not compared
    ye.sum().backward()
    yt.sum().backward()
    assert tuple(xe.grad.shape) == tuple(xt.grad.shape)
    if hasattr(fe, "parameters"):
        for (n, pe), pt in zip(fe.named_parameters(), ft.parameters()):
            np.testing.assert_array_equal(pe.grad.numpy() if pe.grad is not None else 0, pt.grad.numpy(), err_msg=n)


def test_item7_where_torch_raises_on_small_batches_ember_raises_too():
    """N = 0 is accepted, but training batch norm with one value per channel stays an error, as in torch."""
    import torch
    from ember import nn
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        torch.nn.BatchNorm1d(3)(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"batch_norm: expected more than 1 value per channel when training, got "
                                         r"input size \(1, 3\)"):
        nn.BatchNorm1d(3)(ember.zeros(1, 3))
    with pytest.raises(RuntimeError):
        torch.nn.Conv2d(3, 2, 3)(torch.zeros(0, 1, 5, 5))
    with pytest.raises(Exception, match="expected input with 3 channels, got 1 channels"):
        nn.Conv2d(3, 2, 3)(ember.zeros(0, 1, 5, 5))


def test_item6_visualize_takes_the_model_file_as_checkpoint(data, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    train(_cfg(data, out, epochs=1), **QUIET)
    status, stdout, err = _cli("visualize", "filters", "--checkpoint", str(out / "model.safetensors"), capsys=capsys)
    assert status == 0, err
    assert (out / "viz" / "filters.png").exists()


def test_item7_batch_norm_on_an_empty_batch_keeps_its_running_statistics():
    from ember import nn
    bn = nn.BatchNorm2d(2)
    bn.running_mean.data[...] = 3.0
    bn(ember.zeros(0, 2, 3, 3))
    assert bn.running_mean.numpy().tolist() == [3.0, 3.0] and bn.running_var.numpy().tolist() == [1.0, 1.0]
    assert int(bn.num_batches_tracked.item()) == 1  # as torch: the counter still advances


def test_item7_models_take_an_empty_batch():
    from ember.models import get_model
    for name in ("lenet5", "convnet-bn"):
        assert tuple(get_model(name)(ember.zeros(0, 1, 28, 28)).shape) == (0, 10), name


# ================================================================== item 10: the smaller ones
@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "inf", "--lr must be finite, got inf"),
    ("--lr", "nan", "--lr must be positive, got nan"),
    ("--weight-decay", "nan", "--weight-decay must be non-negative and finite, got nan"),
    ("--weight-decay", "inf", "--weight-decay must be non-negative and finite, got inf"),
    ("--weight-decay", "-1", "--weight-decay must be non-negative and finite, got -1.0"),
])
def test_item10_non_finite_flags_are_refused_naming_the_flag(tmp_path, capsys, flag, value, message):
    status, _, err = _cli("train", flag, value, "--out", str(tmp_path / "r"), capsys=capsys)
    assert (status, err) == (1, f"ember train: error: {message}\n")


def test_item10_metrics_json_never_holds_a_bare_nan(tmp_path):
    from ember.models import get_model
    metrics = {"test_accuracy": 0.1, "epochs": [{"epoch": 1, "train_loss": 2.0, "test_loss": float("nan")},
                                                {"epoch": 2, "train_loss": 1.0, "test_loss": float("inf")}]}
    save_run(tmp_path, get_model("mlp"), TrainConfig(model="mlp"), metrics)

    def refuse(constant):
        raise AssertionError(f"bare {constant} in metrics.json")
    written = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=refuse)
    assert [r["test_loss"] for r in written["epochs"]] == [None, None]
    assert written["status"] == "non-finite values written as null: epochs[0].test_loss, epochs[1].test_loss"
    save_run(tmp_path, get_model("mlp"), TrainConfig(model="mlp"), {"epochs": [{"test_loss": 1.0}]})
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "ok"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_item10_checkpoint_files_get_the_umask_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        save_state_dict({"w": np.zeros(2, np.float32)}, tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == mode


def test_item10_stale_temporaries_are_removed_at_start(data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = [out / ".model.safetensors.k3j2h1.tmp", out / ".resume.safetensors.x9y8z7.tmp"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    (out / "notes.tmp").write_text("not ours: not hidden")
    train(_cfg(data, out, epochs=1), **QUIET)
    assert not any(p.exists() for p in stale) and (out / "notes.tmp").exists()


def test_item10_numpy_warnings_in_worker_threads_follow_the_callers_errstate():
    from ember.kernels.threads import parallel_for, set_num_threads, get_num_threads
    before = get_num_threads()
    set_num_threads(2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning in any thread would become an exception, re-raised here
            with np.errstate(over="ignore"):
                out = parallel_for(lambda p: np.float32(3e38) * np.float32(p), [10, 20, 30, 40])
    finally:
        set_num_threads(before)
    assert all(np.isinf(v) for v in out)


def test_item10_sigterm_stops_training_like_ctrl_c(data, tmp_path):
    out = tmp_path / "run"
    proc = _train_proc(data, out)
    _wait_for(out / "metrics.json", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err == "ember train: terminated by SIGTERM; the last saved checkpoint is kept\n"
    _finite_checkpoint(out)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_whose_exception_was_swallowed_still_stops_the_next_step(data, tmp_path, signum):
    """SIGTERM's or Ctrl-C's exception is lost when the signal lands in a weakref callback or
    __del__ (seen in CI, inside an import and inside numba's compile: `ember train` then trained to
    the end and exited 0); the handler's record makes the training loop stop at the next step."""
    import os
    from ember.training import safety

    class Swallow:
        def __del__(self):
            os.kill(os.getpid(), signum)   # the handler runs here; Python ignores its exception

    expected = (safety.Terminated, "terminated by SIGTERM") if signum == signal.SIGTERM else (KeyboardInterrupt, "^$")
    with safety.sigterm_as_interrupt():
        Swallow()   # dropped at once: __del__ runs, the exception it raises is printed and ignored
        with pytest.raises(expected[0], match=expected[1]) as e:
            train(_cfg(data, tmp_path / "run", epochs=1), **QUIET)
    assert type(e.value) is expected[0]
    assert not (tmp_path / "run" / "metrics.json").exists()   # stopped at the first step
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # both handlers restored
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_swallowed_after_the_last_step_stops_before_the_epoch_is_saved(data, tmp_path, monkeypatch, signum):
    """A swallowed SIGTERM or Ctrl-C in epoch 2's evaluation (after its last step: no step check
    follows) stops the run before epoch 2 is saved; epoch 1's checkpoint stays (CI: a Ctrl-C lost
    in the last of 2 steps let `ember train` save and exit 0)."""
    from ember.training import safety
    real, calls = train_loop.evaluate, []

    class Swallow:
        def __del__(self):
            os.kill(os.getpid(), signum)

    def evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:   # epoch 2's test pass
            Swallow()
        return real(*args, **kwargs)
    monkeypatch.setattr(train_loop, "evaluate", evaluate)
    out = tmp_path / "run"
    with safety.sigterm_as_interrupt():
        with pytest.raises(KeyboardInterrupt):
            train(_cfg(data, out, epochs=2), **QUIET)
    assert len(calls) == 2
    assert [r["epoch"] for r in json.loads((out / "metrics.json").read_text())["epochs"]] == [1]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_inside_llvmlites_lock_is_deferred_and_leaves_the_lock_free(signum):
    """A signal landing inside llvmlite's lock ``__enter__`` (after the acquire, in its callbacks)
    used to raise there and leave the lock held: the next kernel compiled or loaded on another
    thread waited forever, and interpreter exit waited for that thread (``ember train`` hung for
    300 s after printing "terminated by SIGTERM", CI). Now the signal is recorded, not raised
    there, the lock is released, and ``check_terminated`` raises it."""
    ffi = pytest.importorskip("llvmlite.binding.ffi")
    if not hasattr(getattr(ffi.lib, "_lock", None), "register"):
        pytest.skip("this llvmlite has no lock callbacks to land a signal in")
    code = f"""
import os, signal, threading
from llvmlite import binding
from llvmlite.binding import ffi
from ember.training import safety
fired = []
def acquired():          # runs inside llvmlite's lock __enter__, right after the acquire
    if not fired:
        fired.append(1)
        os.kill(os.getpid(), {int(signum)})
def released():
    pass
ffi.lib._lock.register(acquired, released)
with safety.sigterm_as_interrupt():
    try:
        binding.get_process_triple()
        print("not raised inside the lock")
    except KeyboardInterrupt as e:
        print("raised inside the lock:", type(e).__name__)
    ffi.lib._lock.unregister(acquired, released)
    t = threading.Thread(target=binding.get_process_triple, daemon=True)
    t.start(); t.join(20)
    print("lock free" if not t.is_alive() else "lock held")
    try:
        safety.check_terminated()
    except KeyboardInterrupt as e:
        print("raised at the check:", type(e).__name__, *e.args)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    raised = "Terminated terminated by SIGTERM" if signum == signal.SIGTERM else "KeyboardInterrupt"
    assert p.stdout.split("\n")[:3] == ["not raised inside the lock", "lock free", f"raised at the check: {raised}"], \
        p.stdout + p.stderr[-2000:]


def test_ignored_sigint_stays_ignored_during_training(monkeypatch):
    """A job started without job control ignores SIGINT; ember train must not turn it back on."""
    from ember.training import safety
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with safety.sigterm_as_interrupt():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_item3_weight_decay_cannot_be_switched_on_when_resuming_a_run_without_it(data, tmp_path):
    """A run trained with --weight-decay 0 has no group to decay: turning it on at --resume would be
    silently ignored, so it is refused with a message naming the flag (with or without the override)."""
    out = tmp_path / "run"
    train(_cfg(data, out, epochs=1, weight_decay=0.0), **QUIET)
    with pytest.raises(ValueError, match=r"^--weight-decay 0.001: the resumed run was trained without weight "
                                         r"decay, which cannot be turned on when resuming; start a new run instead"):
        train(_cfg(data, tmp_path / "b", epochs=2, resume=str(out), weight_decay=1e-3, allow_changed_flags=True),
              **QUIET)


def test_item3_resume_alone_continues_with_the_saved_flags(data, tmp_path, capsys):
    """`ember train --resume RUN` with no other flag continues the run as it was started (model,
    schedule, lr, batch size, seed... from RUN/config.json; here --epochs extends it): the same
    weights as the run done in one go. Before, every flag not repeated took its default, so this
    `--model mlp` run was refused as a checkpoint that does not fit lenet5."""
    flags = ["--data-dir", str(data), "--model", "mlp", "--lr", "0.1", "--batch-size", "32",
             "--schedule", "none", "--no-progress", "--seed", "3"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert _cli("train", *flags, "--epochs", "3", "--out", str(whole), capsys=capsys)[0] == 0
    assert _cli("train", *flags, "--epochs", "1", "--out", str(cut), capsys=capsys)[0] == 0
    status, out, err = _cli("train", "--resume", str(cut), "--epochs", "3", "--no-progress", capsys=capsys)
    assert status == 0, err
    assert f"resuming {cut} after epoch 1" in out and "epoch 3/3" in out
    saved = json.loads((cut / "config.json").read_text())
    assert (saved["model"], saved["lr"], saved["batch_size"], saved["schedule"], saved["epochs"]) == \
        ("mlp", 0.1, 32, "none", 3)
    a, b = load_state_dict(whole / "model.safetensors"), load_state_dict(cut / "model.safetensors")
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # a flag given with --resume still overrides its saved value, and is compared as before
    status, out, err = _cli("train", "--resume", str(cut), "--epochs", "4", "--lr", "0.2", capsys=capsys)
    assert status == 1 and "saved with other flags (--lr 0.1 -> 0.2)" in err, err
