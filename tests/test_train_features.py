"""`ember train`'s issue-4 features: optimizer/schedule choice, warm-up, augmentation,
validation split with early stopping, --threads and a bit-for-bit --resume."""
import argparse
import dataclasses
import json
import math

import numpy as np
import pytest

import ember
from ember.serialization import CheckpointError, load_state_dict
from ember.cli import main
from ember.models import MODELS
from ember.training import DATASETS, OPTIMIZERS, SCHEDULES, Schedule, TrainConfig, build_optimizer, train
from ember.training.config import add_arguments
from ember.training import loop as train_mod

from test_train import run_cli, small_data  # noqa: F401  (the 1,024-image Fashion-MNIST slice)


def _cfg(data, out, **kw):
    base = dict(data_dir=str(data), out=str(out), progress=False, epochs=3, batch_size=128)
    base.update(kw)
    return TrainConfig(**base)


class Interrupt(KeyboardInterrupt):
    pass


def _stop_after(epoch):
    def log(msg):
        if msg.startswith(f"epoch {epoch}/"):
            raise Interrupt(msg)
    return log


def _without_seconds(metrics):
    return dict(metrics, epochs=[{k: v for k, v in row.items() if k != "seconds"} for row in metrics["epochs"]])


@pytest.mark.parametrize("kw,stop", [
    (dict(model="lenet5", augment=True, threads=1, epochs=2), 1),
    (dict(model="convnet-bn", optimizer="adam", lr=1e-3, schedule="onecycle", val_split=0.25, epochs=2), 1),
    (dict(model="lenet5", optimizer="rmsprop", lr=1e-3, schedule="plateau", warmup=1, val_split=0.25), 2),
])
def test_resume_is_bit_for_bit_the_uninterrupted_run(small_data, tmp_path, kw, stop):  # noqa: F811
    full = train(_cfg(small_data, tmp_path / "full", **kw), log=lambda m: None)
    with pytest.raises(Interrupt):
        train(_cfg(small_data, tmp_path / "cut", **kw), log=_stop_after(stop))
    resumed = train(_cfg(small_data, tmp_path / "cut", resume=str(tmp_path / "cut"), **kw), log=lambda m: None)
    assert _without_seconds(resumed) == _without_seconds(full)
    on_disk = [json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("full", "cut")]
    assert _without_seconds(on_disk[0]) == _without_seconds(on_disk[1])
    for name in ("model.safetensors", "resume.safetensors"):
        a, b = load_state_dict(tmp_path / "full" / name), load_state_dict(tmp_path / "cut" / name)
        assert sorted(a) == sorted(b) and a
        for k in a:
            if k != "train_state":  # the JSON state holds timings and paths (compared above via metrics)
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}: {k}")
    for name in ("steps.csv", "epochs.csv"):  # the interrupted epoch's rows are not duplicated
        rows = [[line.rsplit(",", 1)[0] for line in (tmp_path / d / name).read_text().splitlines()]
                for d in ("full", "cut")]
        assert rows[0] == rows[1] and len(rows[0]) > kw.get("epochs", 3)


def test_resume_with_another_model_names_the_differing_keys(small_data, tmp_path):  # noqa: F811
    train(_cfg(small_data, tmp_path / "run", epochs=1), log=lambda m: None)
    with pytest.raises(CheckpointError, match=r"the checkpoint \(model 'lenet5'\) does not fit model 'mlp': Error\(s\) "
                                              r"in loading state_dict for Sequential: missing keys: 1\.weight, 1\.bias; "
                                              r"unexpected keys: .*0\.weight"):
        train(_cfg(small_data, tmp_path / "run2", model="mlp", resume=str(tmp_path / "run")), log=lambda m: None)
    with pytest.raises(CheckpointError, match="saved with other flags \\(--optimizer sgd -> adam\\); start a new run"):
        train(_cfg(small_data, tmp_path / "run3", optimizer="adam", resume=str(tmp_path / "run")), log=lambda m: None)


def test_early_stopping_on_validation_loss(small_data, tmp_path, monkeypatch):  # noqa: F811
    """val losses 1.0, 0.5, 0.6, 0.7 with patience 2: stop after epoch 4; the saved model is epoch
    2's weights (the best, as Keras' restore_best_weights), metrics.json says so and gives epoch 2's
    test accuracy, and every epoch's console line shows the validation loss and accuracy."""
    script = iter([(1.0, 0.1), (1.0, 0.2), (1.0, 0.3), (0.5, 0.4), (1.0, 0.5), (0.6, 0.6), (1.0, 0.7), (0.7, 0.8)])
    weights = []                                                # the model's weights at each evaluation

    def fake_evaluate(model, x, y):
        weights.append({k: v.numpy().copy() for k, v in model.state_dict().items()})
        return next(script)
    monkeypatch.setattr(train_mod, "evaluate", fake_evaluate)
    lines = []
    m = train(_cfg(small_data, tmp_path / "run", epochs=6, val_split=0.1, patience=2), log=lines.append)
    assert [r["val_loss"] for r in m["epochs"]] == [1.0, 0.5, 0.6, 0.7]
    assert m["stopped_early"] == 4 and m["best_epoch"] == 2 and m["test_accuracy"] == 0.3
    assert dict(m, status="ok") == json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["saved_model"] == "epoch 2: the lowest validation loss (0.5000)"
    saved = load_state_dict(tmp_path / "run" / "model.safetensors")
    for k, v in saved.items():
        np.testing.assert_array_equal(v, weights[3][k])         # epoch 2's weights, not epoch 4's
    assert any(not np.array_equal(v, weights[7][k]) for k, v in saved.items())
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert "  val loss 1.0000 acc 0.2000 *  test loss 1.0000 acc 0.1000" in epoch_lines[0]
    assert "  val loss 0.6000 acc 0.6000  test loss" in epoch_lines[2]             # no star: not better
    assert ("early stopping: validation loss has not improved for 2 epochs; model.safetensors holds epoch 2 "
            "(the best, val loss 0.5000)") in lines
    assert lines[-1].startswith("final test accuracy 0.3000 (epoch 2's weights, the best validation loss)")


def test_schedules_lr_sequences():
    """cosine reproduces the original per-step formula lr·0.5·(1 + cos(π t/T)) bit for bit (the
    default run is unchanged); warm-up is linear; step drops 10x every epochs//3 epochs; plateau
    cuts on a flat metric."""
    lrs = _lrs
    assert lrs() == [0.1 * 0.5 * (1 + math.cos(math.pi * t / 30)) for t in range(30)]
    w = lrs(warmup=1, schedule="none")
    assert w[:6] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1, 0.1]) and w[-1] == 0.1
    s = lrs(schedule="step")
    assert s[9] == pytest.approx(0.1) and s[10] == pytest.approx(0.01) and s[29] == pytest.approx(0.001)
    p = lrs(schedule="plateau")
    assert p[0] == 0.1 and p[-1] < 0.1
    o = lrs(schedule="onecycle")
    assert max(o) == pytest.approx(0.1) and o[0] == pytest.approx(0.1 / 25) and math.isclose(o.index(max(o)), 8, abs_tol=1)


def _lrs(**kw):
    """The lr before each of 30 steps (6 epochs of 5) of ``Schedule`` with peak lr 0.1."""
    cfg = TrainConfig(lr=0.1, epochs=6, **kw)
    p = ember.nn.Parameter(np.zeros(2, np.float32))
    opt = ember.optim.SGD([p], lr=cfg.lr, momentum=0.9)
    sch, out = Schedule(opt, cfg, steps_per_epoch=5), []
    for epoch in range(cfg.epochs):
        for _ in range(5):
            out.append(opt.param_groups[0]["lr"])
            sch.after_step()
        sch.after_epoch(1.0)
    return out


def test_cosine_schedule_is_torch_cosine_annealing_per_step():
    """The default schedule shares ``lr_scheduler.cosine_factor`` with CosineAnnealingLR: stepped
    once per batch it gives torch.optim.lr_scheduler.CosineAnnealingLR(T_max=30)'s sequence."""
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9)
    sched, want = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30), []
    for _ in range(30):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(_lrs(), want, rtol=1e-12, atol=1e-17)


def _parse(*argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p, p.parse_args(list(argv))


def test_train_flags_are_generated_from_the_config_fields():
    """One flag per TrainConfig field (and no other), defaults = the dataclass defaults, and each
    flag sets its own field; bool fields get --x / --no-x (the old --no-nesterov, --no-progress,
    --augment, --detect-anomaly and the hidden --nesterov, --progress keep working)."""
    fields = dataclasses.fields(TrainConfig)
    p, args = _parse()
    assert {a.dest for a in p._actions if a.dest != "help"} == {f.name for f in fields}
    assert TrainConfig.from_args(args) == TrainConfig()
    argv = ["--model", "mlp", "--dataset", "mnist", "--data-dir", "d", "--epochs", "3", "--batch-size", "7",
            "--lr", "0.2", "--momentum", "0.5", "--no-nesterov", "--weight-decay", "0.01", "--seed", "4",
            "--out", "o", "--no-progress", "--detect-anomaly", "--optimizer", "adam", "--schedule", "step",
            "--warmup", "0.5", "--augment", "--val-split", "0.2", "--patience", "2", "--resume", "r",
            "--threads", "3", "--download", "--overwrite", "--subset", "100", "--timeout", "60",
            "--allow-changed-flags", "--test-split", "0.3"]
    args = _parse(*argv)[1]
    with pytest.raises(ValueError, match="^--momentum applies to --optimizer sgd only, not --optimizer adam"):
        TrainConfig.from_args(args)                          # (tests/test_train_runs.py: ignored flags)
    del args._given                                          # here: only that every flag reaches its field
    cfg = TrainConfig.from_args(args)
    assert cfg == TrainConfig(model="mlp", dataset="mnist", data_dir="d", epochs=3, batch_size=7, lr=0.2,
                              momentum=0.5, nesterov=False, weight_decay=0.01, seed=4, out="o", progress=False,
                              detect_anomaly=True, optimizer="adam", schedule="step", warmup=0.5, augment=True,
                              val_split=0.2, patience=2, resume="r", threads=3,
                              download=True, overwrite=True, subset=100, timeout=60.0,
                              allow_changed_flags=True, test_split=0.3)
    assert [f.name for f in fields if getattr(cfg, f.name) == f.default] == []  # argv changed every field
    assert TrainConfig.from_args(_parse("--no-nesterov", "--nesterov")[1]).nesterov is True
    assert TrainConfig.from_args(_parse("--nesterov", "--no-nesterov")[1]).nesterov is False
    assert TrainConfig.from_args(_parse("--augment", "--no-augment", "--progress")[1]) == TrainConfig()
    assert type(TrainConfig.from_args(_parse("--epochs", "2", "--lr", "1")[1]).lr) is float
    with pytest.raises(SystemExit):
        _parse("--epochs", "two")


def test_train_help_lists_every_choice_and_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapped help text
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for names in (sorted(MODELS), DATASETS, OPTIMIZERS, SCHEDULES):
        assert ", ".join(names) in out
    lines, key = {}, None                                   # option -> its help block, on one line
    for line in out.split("options:")[1].splitlines():
        if line.startswith("  -"):
            key = line.split()[0].rstrip(",")
            lines[key] = line
        elif key:
            lines[key] += " " + line.strip()
    assert "(default: 64)" in lines["--batch-size"] and "(default: cosine)" in lines["--schedule"]
    # one spelling per switch, the one that changes the default (the other is accepted, hidden)
    assert "--nesterov" not in lines and "--progress" not in lines and "--no-augment" not in lines
    assert lines["--no-nesterov"].endswith("turn off (on by default): Nesterov momentum for sgd (off: classical "
                                           "momentum)") and "--augment" in lines
    assert "$EMBER_DATA" in lines["--data-dir"] and "(default: None)" not in out
    assert "--optimizer {sgd,adam,adamw,rmsprop,adagrad}" not in out        # NAME in the usage, names in the help
    assert "BLAS" in lines["--threads"] and "conv2d, ReLU, pooling" in lines["--threads"]
    assert "runs/<model>-<dataset>/<YYYYmmdd-HHMMSS>" in lines["--out"] and "--download" in lines


def test_bad_names_are_refused_by_one_check():
    """build_optimizer and Schedule give TrainConfig.validate's message (one check, three callers)."""
    model = ember.nn.Linear(2, 2)
    bad = dataclasses.replace(TrainConfig(), optimizer="lbfgs")
    for call in (bad.validate, lambda: build_optimizer(model, bad)):
        with pytest.raises(ValueError, match="^unknown optimizer 'lbfgs'; valid optimizers: sgd, adam, adamw, "
                                             "rmsprop, adagrad$"):
            call()
    bad = dataclasses.replace(TrainConfig(), schedule="poly")
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    for call in (bad.validate, lambda: Schedule(opt, bad, 10)):
        with pytest.raises(ValueError, match="^unknown schedule 'poly'; valid schedules: none, step, cosine, "
                                             "onecycle, plateau$"):
            call()


def test_bad_settings_list_the_valid_choices(tmp_path):
    for kw, msg in [(dict(optimizer="lbfgs"), "unknown optimizer 'lbfgs'; valid optimizers: sgd, adam, adamw, rmsprop, adagrad"),
                    (dict(schedule="poly"), "unknown schedule 'poly'; valid schedules: none, step, cosine, onecycle, plateau"),
                    (dict(model="resnet"), "unknown model 'resnet'; valid models: cifar-convnet, convnet-bn, lenet5, lenet5-classic, mlp, resnet20"),
                    (dict(patience=3), "--patience needs a validation set: pass --val-split"),
                    (dict(val_split=1.0), r"--val-split must be in \[0, 1\), got 1.0"),
                    (dict(subset=0), "--subset must be at least 1, got 0"),
                    (dict(timeout=0.0), "--timeout must be positive, got 0.0"),
                    (dict(resume=str(tmp_path / "nope")), "no such run folder")]:
        with pytest.raises(ValueError, match=msg):
            dataclasses.replace(TrainConfig(), **kw).validate()
    r = run_cli("train", "--optimizer", "lbfgs", "--schedule", "cosine")
    assert r.returncode == 2 and "invalid choice: 'lbfgs' (choose from 'sgd', 'adam', 'adamw', 'rmsprop', 'adagrad')" in r.stderr


def test_batchnorm_checkpoint_round_trip(tmp_path):
    """num_batches_tracked is 0-d, as torch's; a save/load cycle must keep it 0-d so that
    `ember evaluate` and --resume can load BatchNorm models."""
    from ember.serialization import save_state_dict
    from ember.models import get_model
    m = get_model("convnet-bn")
    save_state_dict(m.state_dict(), tmp_path / "w.safetensors")
    state = load_state_dict(tmp_path / "w.safetensors")
    assert state["1.num_batches_tracked"].shape == () and state["1.num_batches_tracked"].dtype == np.int64
    get_model("convnet-bn").load_state_dict(state)
