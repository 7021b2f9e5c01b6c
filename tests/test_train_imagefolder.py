"""`ember train --dataset imagefolder --data-dir PATH`: the split rule, the shape, classes and
per-channel statistics taken from the data, a folder and its zip, bad folders (a corrupt file, an
empty class folder, mixed sizes, a model that does not fit) as one error line, and a run that is
resumed, evaluated and drawn from its saved config. Small picture folders are built here."""
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.cli import main
from ember.data import images as images_mod
from ember.models import get_model, model_for, model_kwargs_from_weights
from ember.training import TrainConfig, load_checkpoint
from ember.training.data import augmentation, build_model, check_model_fits, data_spec, load_data
from helpers import write_tree, write_zip

Image = pytest.importorskip("PIL.Image")
USUAL_CACHE = images_mod.default_cache_dir


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Decoded arrays go to this test's folder, not ~/.cache."""
    monkeypatch.setattr(images_mod, "default_cache_dir", lambda: tmp_path / "cache")


def picture(a: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt)
    return buf.getvalue()


def pictures(classes=("ant", "bee", "cat"), n=10, size=(28, 28), rgb=False, seed=0) -> dict:
    """{relative path: PNG bytes}: class k is brighter by 60·k (so it can be learnt), plus noise."""
    r, files = np.random.default_rng(seed), {}
    for k, c in enumerate(classes):
        for i in range(n):
            a = (r.integers(0, 60, size + ((3,) if rgb else ())) + 60 * k).astype(np.uint8)
            files[f"{c}/{i:02d}.png"] = picture(a)
    return files


def decoded(files: dict, names) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(files[n]))) for n in names])


def cli(capsys, *args) -> tuple[int, str, str]:
    status = main(list(args))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_split_rule_held_out_fraction_of_each_class_and_statistics_of_the_training_split(tmp_path):
    files = pictures(n=10)
    root = write_tree(tmp_path / "pics", files)
    spec = data_spec("imagefolder", str(root))
    assert spec.shape == (1, 28, 28) and spec.classes == ("ant", "bee", "cat")       # grayscale: one channel
    x_tr, y_tr = load_data("imagefolder", str(root), train=True)
    x_te, y_te = load_data("imagefolder", str(root), train=False)
    assert x_tr.shape == (24, 1, 28, 28) and x_te.shape == (6, 1, 28, 28) and x_tr.dtype == np.float32
    assert np.bincount(y_te).tolist() == [2, 2, 2] and np.bincount(y_tr).tolist() == [8, 8, 8]   # 0.2 of each
    names = sorted(files)                                        # torchvision's order: ant/00 ... cat/09
    held = np.zeros(30, bool)
    rng = np.random.default_rng(0)                               # the documented draw, class by class
    for k in range(3):
        held[rng.permutation(np.arange(10 * k, 10 * k + 10))[:2]] = True
    raw_tr = decoded(files, [n for n, h in zip(names, held) if not h]).astype(np.float64) / 255
    raw_te = decoded(files, [n for n, h in zip(names, held) if h]).astype(np.float64) / 255
    mean, std = raw_tr.mean(), raw_tr.std()                      # of the training split only
    np.testing.assert_allclose(spec.mean, [mean], rtol=1e-6) and np.testing.assert_allclose(spec.std, [std], rtol=1e-6)
    np.testing.assert_allclose(x_tr[:, 0], (raw_tr - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x_te[:, 0], (raw_te - mean) / std, rtol=1e-5, atol=1e-5)
    x, _ = load_data("imagefolder", str(root), train=False, test_split=0.5)
    assert len(x) == 15
    aug = augmentation("imagefolder", spec)                      # 2-pixel shifts on 28×28, black padding
    assert aug.transforms[0].padding == 2 and np.allclose(aug.transforms[0].fill, -spec.mean / spec.std)


def test_train_and_test_folders_rgb_and_the_zip_give_the_same_arrays(tmp_path):
    train, test = pictures(("a", "b"), n=6, size=(32, 32), rgb=True), pictures(("a", "b"), n=3, size=(32, 32),
                                                                              rgb=True, seed=1)
    folder = write_tree(write_tree(tmp_path / "set", train, "train"), test, "test")
    (folder / "val").mkdir()                                     # other folders beside train/ and test/: not read
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for prefix, files in (("set/train/", train), ("set/test/", test)):
            for rel, data in files.items():
                z.writestr(prefix + rel, data)
    for where in (folder, archive / "set"):
        spec = data_spec("imagefolder", str(where))
        assert spec.shape == (3, 32, 32) and spec.classes == ("a", "b")
        x_tr, y_tr = load_data("imagefolder", str(where), train=True)
        x_te, y_te = load_data("imagefolder", str(where), train=False)
        raw = decoded(train, sorted(train)).astype(np.float64) / 255                   # (12, 32, 32, 3)
        np.testing.assert_allclose(spec.mean, raw.mean(axis=(0, 1, 2)), rtol=1e-6)
        np.testing.assert_allclose(spec.std, raw.std(axis=(0, 1, 2)), rtol=1e-6)
        want = (raw - raw.mean(axis=(0, 1, 2))) / raw.std(axis=(0, 1, 2))
        np.testing.assert_allclose(x_tr, want.transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-5)
        assert y_tr.tolist() == [0] * 6 + [1] * 6 and y_te.tolist() == [0] * 3 + [1] * 3 and x_te.shape[0] == 6
    with pytest.raises(ValueError, match=r"^--test-split 0.3: .* has train/ and test/ folders, which give the "
                                         r"test split; drop --test-split$"):
        data_spec("imagefolder", str(folder), test_split=0.3)
    model = build_model(TrainConfig(model="cifar-convnet", dataset="imagefolder", data_dir=str(folder)))
    assert model[0].weight.shape == (32, 3, 3, 3) and model[-1].weight.shape == (2, 128)


def test_a_model_is_built_for_the_datas_channels_and_classes_and_rebuilt_from_its_weights():
    for name, shape in (("lenet5", (3, 28, 28)), ("convnet-bn", (3, 28, 28)), ("mlp", (3, 28, 28)),
                        ("resnet20", (1, 32, 32)), ("cifar-convnet", (1, 32, 32)), ("lenet5-classic", (1, 28, 28))):
        model = model_for(name, shape, 4)
        assert model(ember.zeros((2,) + shape)).shape == (2, 4)
        kwargs = model_kwargs_from_weights(name, model.state_dict())
        again = get_model(name, **kwargs)
        assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    # LeNet-5's Sequential keys sort as text 0, 10, 3, 5, 7, 9: the model's own order says which layer is last
    w = dict(sorted(model_for("lenet5", (3, 28, 28), 4).state_dict().items()))
    assert model_kwargs_from_weights("lenet5", w) == {"num_classes": 4, "in_channels": 3}


def bad(capsys, tmp_path, files, *extra, model="lenet5"):
    root = write_tree(tmp_path / "bad", files)
    status, _, err = cli(capsys, "train", "--dataset", "imagefolder", "--data-dir", str(root), "--model", model,
                         "--out", str(tmp_path / "run"), "--no-progress", *extra)
    assert status == 1 and not (tmp_path / "run").exists()
    return root, err.strip().splitlines()


def test_a_corrupt_picture_is_named(capsys, tmp_path):
    files = pictures(n=3)
    files["bee/01.png"] = files["bee/01.png"][:60]                       # truncated
    root, err = bad(capsys, tmp_path, files)
    assert len(err) == 1 and err[0].startswith(f"ember train: error: {root / 'bee' / '01.png'}: not a readable image (")


def test_an_empty_class_folder_is_named(capsys, tmp_path):
    files = pictures(n=3)
    files["dog/readme.txt"] = b"no pictures here"
    root, err = bad(capsys, tmp_path, files)
    assert err == [f"ember train: error: Found no valid file for the classes dog in {root}. Supported extensions "
                   f"are: {', '.join(images_mod.IMG_EXTENSIONS)}"]


def test_pictures_of_two_sizes_name_two_files(capsys, tmp_path):
    files = pictures(n=3)
    files["cat/02.png"] = picture(np.zeros((30, 28), np.uint8))
    root, err = bad(capsys, tmp_path, files)
    assert err == [f"ember train: error: {root / 'cat' / '02.png'} is 28x30 but {root / 'ant' / '00.png'} is 28x28: "
                   f"ImageFolder stores all pictures in one (N, H, W, 3) array, so they must share one size "
                   f"(resize them first)"]


def test_a_model_for_other_pictures_is_refused_before_training(capsys, tmp_path):
    root, err = bad(capsys, tmp_path, pictures(n=3), model="resnet20")
    assert err == [f"ember train: error: model resnet20 takes 1×32×32 images but imagefolder {root} has 1×28×28 "
                   f"ones; models for 1×28×28: convnet-bn, lenet5, lenet5-classic, mlp"]
    spec = data_spec("imagefolder", str(root))
    check_model_fits("lenet5", "imagefolder", spec)
    big = write_tree(tmp_path / "big", pictures(n=3, size=(40, 40), rgb=True))
    with pytest.raises(ValueError) as e:
        check_model_fits("cifar-convnet", "imagefolder", data_spec("imagefolder", str(big)))
    assert str(e.value) == f"model cifar-convnet takes 3×32×32 images but imagefolder {big} has 3×40×40 ones; " \
                           f"models for 3×40×40: none"


@pytest.mark.parametrize("layout, extra, message", [
    ("train-only", [], "{root} has a train/ folder but no test/ folder: give both train/<class>/ and test/<class>/ "
                       "folders, or only class folders (then --test-split holds out a fraction of each class)"),
    ("wrapped", [], "{root} has one class folder, set/: a classifier needs two or more; if the class folders are "
                    "inside it, give --data-dir {root}/set"),
    ("classes", ["--test-split", "1.5"], "--test-split must be in (0, 1), got 1.5"),
    ("classes", ["--test-split", "0.01"], "--test-split 0.01 of the 9 pictures in {root} leaves no test picture "
                                           "(0 held out, round(fraction × pictures) of each class); change --test-split"),
    ("classes", ["--download"], "--download: --dataset imagefolder reads the pictures in --data-dir; there is "
                                "nothing to download"),
])
def test_bad_split_flags_are_one_line(capsys, tmp_path, layout, extra, message):
    files = pictures(n=3)
    if layout != "classes":
        files = {f"{'train' if layout == 'train-only' else 'set'}/{k}": v for k, v in files.items()}
    root, err = bad(capsys, tmp_path, files, *extra)
    assert err == ["ember train: error: " + message.format(root=root)]


def test_flags_for_imagefolder_only_and_its_data_dir_are_checked(capsys):
    for args, message in ((["--dataset", "imagefolder"], "--dataset imagefolder needs --data-dir: a folder (or "
                           ".zip) of class folders (torchvision's ImageFolder layout: DIR/<class>/<picture>, or "
                           "DIR/train/<class>/... and DIR/test/<class>/...)"),
                          (["--dataset", "mnist", "--test-split", "0.2"],
                           "--test-split applies to --dataset imagefolder only, not mnist")):
        status, _, err = cli(capsys, "train", *args, "--no-progress")
        assert status == 1 and err.strip() == f"ember train: error: {message}"


def train_args(root, out, epochs, *extra):
    return ["train", "--dataset", "imagefolder", "--data-dir", str(root), "--model", "lenet5", "--epochs",
            str(epochs), "--batch-size", "8", "--lr", "0.05", "--schedule", "none", "--augment", "--no-progress", "--out", str(out), *extra]


def test_a_zip_run_is_resumed_bit_for_bit_and_evaluate_and_visualize_reload_its_data(capsys, tmp_path):
    files = pictures(("ant", "bee", "cat", "dog"), n=8, rgb=True)           # 4 classes of 3×28×28
    archive = write_zip(tmp_path / "pics.zip", files)
    whole, part = tmp_path / "whole", tmp_path / "part"      # (no schedule: --epochs 2 then extends epoch 1's run)
    assert cli(capsys, *train_args(archive, whole, 2, "--test-split", "0.25"))[0] == 0
    assert cli(capsys, *train_args(archive, part, 1, "--test-split", "0.25"))[0] == 0
    status, out, err = cli(capsys, *train_args(archive, part, 2, "--test-split", "0.25", "--resume", str(part)))
    assert status == 0 and "resuming" in out, err
    m_whole, m_part = (json.loads((d / "metrics.json").read_text()) for d in (whole, part))
    for a, b in zip(m_whole["epochs"], m_part["epochs"]):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    model, cfg = load_checkpoint(str(part))
    assert cfg.dataset == "imagefolder" and cfg.test_split == 0.25 and model[0].weight.shape == (6, 3, 5, 5)
    assert model[-1].weight.shape == (4, 84)
    for k, v in load_checkpoint(str(whole))[0].state_dict().items():
        np.testing.assert_array_equal(v, model.state_dict()[k])
    status, out, err = cli(capsys, "evaluate", str(part))
    acc = m_part["test_accuracy"]
    assert status == 0 and out.strip() == f"lenet5 on imagefolder test set: loss {m_part['epochs'][-1]['test_loss']:.4f}, " \
                                          f"accuracy {acc:.4f} (8 images)", err
    other = write_tree(tmp_path / "other", pictures(("x", "y"), n=4, rgb=True))
    status, _, err = cli(capsys, "evaluate", str(part), "--data-dir", str(other))
    assert status == 1 and err.strip() == (f"ember evaluate: error: the model was trained on 4 classes but {other} "
                                           f"has 2 (x, y): not the run's pictures (give --data-dir)")
    pytest.importorskip("matplotlib")
    status, out, err = cli(capsys, "visualize", "confusion", "--checkpoint", str(part))
    assert status == 0 and Path(out.strip().splitlines()[-1]).is_file(), err


SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10" / "cifar10-jpeg.zip"


@pytest.mark.skipif(not SHARED.is_file(), reason="no shared CIFAR-10 copy")
def test_the_shared_cifar10_zip_as_an_imagefolder_measures_cifar10s_statistics(monkeypatch):
    monkeypatch.setattr(images_mod, "default_cache_dir", USUAL_CACHE)      # decoded once, by any earlier run
    from ember.data import CIFAR10, CIFAR10_MEAN, CIFAR10_STD
    spec = data_spec("imagefolder", str(SHARED.resolve()))
    assert spec.shape == (3, 32, 32) and spec.classes == tuple(CIFAR10.classes)
    np.testing.assert_allclose(spec.mean, CIFAR10_MEAN, atol=5e-5)
    np.testing.assert_allclose(spec.std, CIFAR10_STD, atol=5e-5)
