"""`ember train --dataset cifar10`: per-channel data, --augment, the model-fit error, summary,
evaluate and pictures of a CIFAR run (a small binary data set built here; the shared copy when present)."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from ember.data import CIFAR10_MEAN, CIFAR10_STD
from ember.training.data import augmentation, check_model_fits, load_data
from test_train import run_cli

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10"


def write_cifar(root: Path, n_train=96, n_test=32, seed=0) -> Path:
    """A CIFAR-10 binary folder whose class is visible: class k has red level 20 + 20k, plus noise."""
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    r = np.random.default_rng(seed)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    sizes = [n_train // 5] * 4 + [n_train - 4 * (n_train // 5), n_test]
    for name, n in zip(names, sizes):
        labels = r.integers(0, 10, n).astype(np.uint8)
        planes = r.integers(0, 60, (n, 3, 1024)).astype(np.uint8)                # (N, C, H*W)
        planes[:, 0] += (20 + 20 * labels)[:, None].astype(np.uint8)
        (folder / name).write_bytes(np.concatenate([labels[:, None], planes.reshape(n, -1)], 1).tobytes())
    return root


def test_load_data_normalises_each_channel(tmp_path):
    root = write_cifar(tmp_path)
    raw = np.fromfile(root / "cifar-10-batches-bin" / "test_batch.bin", np.uint8).reshape(-1, 3073)
    x, y = load_data("cifar10", str(root), train=False)
    assert x.shape == (32, 3, 32, 32) and x.dtype == np.float32 and x.flags.c_contiguous
    assert y.dtype == np.int64 and y.tolist() == raw[:, 0].tolist()
    pixels = raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float64) / 255                 # channel-major records
    want = (pixels - np.array(CIFAR10_MEAN)[:, None, None]) / np.array(CIFAR10_STD)[:, None, None]
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-5)
    xs, ys = load_data("cifar10", str(root), train=False, subset=10)               # a fixed sample, in order
    rows = [int(np.flatnonzero((x == xi).all(axis=(1, 2, 3)))[0]) for xi in xs]
    assert len(xs) == 10 and rows == sorted(rows) and ys.tolist() == y[rows].tolist()
    np.testing.assert_array_equal(load_data("cifar10", str(root), train=False, subset=10)[0], xs)


def test_augment_pads_with_each_channels_black_and_keeps_the_picture():
    black = -np.array(CIFAR10_MEAN, np.float32) / np.array(CIFAR10_STD, np.float32)        # (3,)
    x = np.broadcast_to(black[None, :, None, None], (64, 3, 32, 32)).copy()
    x[:, :, 10:20, 10:20] = 5.0                                                       # a bright square
    out = augment_batch(x)
    assert out.shape == x.shape
    border = out != 5.0
    np.testing.assert_array_equal(np.where(border, out, 0), np.where(border, black[None, :, None, None], 0))
    assert ((out == 5.0).sum(axis=(1, 2, 3)) == 3 * 100).all()                      # the square is never cut
    shifted = [not np.array_equal(o, x[0]) for o in out]
    assert 32 < sum(shifted) <= 64                                                  # most images moved


def augment_batch(x):
    from ember import manual_seed
    manual_seed(0)
    return augmentation("cifar10")(x)


def test_a_model_that_does_not_fit_the_data_is_one_clear_line(tmp_path):
    with pytest.raises(ValueError) as e:
        check_model_fits("resnet20", "fashion-mnist")
    assert str(e.value) == ("model resnet20 takes 3×32×32 images but fashion-mnist has 1×28×28 ones; models for "
                            "1×28×28: convnet-bn, lenet5, lenet5-classic, mlp (or --dataset cifar10)")
    check_model_fits("cifar-convnet", "cifar10")
    r = run_cli("train", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--model", "lenet5",
                "--out", str(tmp_path / "run"), timeout=300)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "ember train: error: model lenet5 takes 1×28×28 images but cifar10 has 3×32×32 ones; models for 3×32×32: "
        "cifar-convnet, resnet20 (or --dataset fashion-mnist / mnist)"]
    assert not (tmp_path / "run").exists()


def test_summary_of_resnet20_needs_no_input_shape():
    r = run_cli("summary", "--model", "resnet20", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Total params: 269,722" in r.stdout and "1×3×32×32" in r.stdout and "1×64×8×8" in r.stdout


def _smoke(tmp_path, data_dir, subset=None):
    out = tmp_path / "run"
    args = ["train", "--dataset", "cifar10", "--data-dir", str(data_dir), "--model", "resnet20", "--epochs", "1",
            "--batch-size", "32", "--lr", "0.1", "--augment", "--no-progress", "--out", str(out)]
    r = run_cli(*args, *(["--subset", str(subset)] if subset else []), timeout=900)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(os.listdir(out)) >= {"config.json", "metrics.json", "model.safetensors", "resume.safetensors"}
    acc = metrics["test_accuracy"]
    r = run_cli("evaluate", "--checkpoint", str(out), timeout=600)           # the data folder from config.json
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("resnet20 on cifar10 test set:") and f"accuracy {acc:.4f}" in r.stdout
    return out, metrics


def test_smoke_run_on_a_small_binary_set_with_evaluate_resume_and_pictures(tmp_path):
    out, metrics = _smoke(tmp_path, write_cifar(tmp_path / "data"))
    row = metrics["epochs"][0]
    assert np.isfinite(row["train_loss"]) and 0 <= row["test_accuracy"] <= 1
    assert json.loads((out / "config.json").read_text())["dataset"] == "cifar10"
    r = run_cli("train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"), "--model", "resnet20",
                "--epochs", "2", "--batch-size", "32", "--lr", "0.1", "--augment", "--no-progress",
                "--out", str(out), "--resume", str(out), timeout=900)
    assert r.returncode == 0 and "resuming" in r.stdout, r.stderr
    pytest.importorskip("matplotlib")
    for what in ("filters", "activations"):
        r = run_cli("visualize", what, "--checkpoint", str(out), timeout=600)
        assert r.returncode == 0, r.stderr
        assert Path(r.stdout.strip().splitlines()[-1]).is_file()


@pytest.mark.skipif(not (SHARED / "cifar10-jpeg.zip").is_file(), reason="no shared CIFAR-10 copy")
def test_smoke_run_on_a_few_hundred_pictures_of_the_shared_copy(tmp_path):
    _, metrics = _smoke(tmp_path, SHARED.resolve() / "cifar10-jpeg.zip", subset=256)
    assert np.isfinite(metrics["epochs"][0]["train_loss"])
