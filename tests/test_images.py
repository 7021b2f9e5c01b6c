"""ember.data.ImageFolder and CIFAR10: small folders, zips and binary files built here, bad inputs
with their exact messages, the download path against a local server, and the shared CIFAR-10 copy
(a few hundred pictures) when it is present."""
import hashlib
import http.server
import io
import os
import tarfile
import threading
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.data import (CIFAR10, CIFAR10_MEAN, CIFAR10_STD, DataLoader, DatasetNotFoundError, ImageDataError,
                        ImageFolder, cifar10_transform, read_cifar10_bin)
from ember.data import images as images_mod
from ember.data import transforms as T
from helpers import write_tree, write_zip

Image = pytest.importorskip("PIL.Image")
torch = pytest.importorskip("torch")

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10" / "cifar10-jpeg.zip"
rng = np.random.default_rng(0)


def png(arr, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def picture_files(h=4, w=5):
    """{relative path: bytes} of a 3-class picture folder, and the RGB array each should decode to."""
    files, expect = {}, {}
    for rel, mode in [("dog/b.png", "RGB"), ("dog/a.png", "RGB"), ("cat/x.png", "L"), ("cat/sub/y.png", "RGBA"),
                      ("ant/z.png", "RGB")]:
        a = rng.integers(0, 256, (h, w, {"RGB": 3, "L": 1, "RGBA": 4}[mode]), dtype=np.uint8)
        files[rel] = png(a[..., 0] if mode == "L" else a)
        expect[rel] = np.repeat(a, 3, axis=2) if mode == "L" else a[..., :3]
    files["dog/notes.txt"] = b"not a picture, skipped by its extension"
    return files, expect


ORDER = ["ant/z.png", "cat/x.png", "cat/sub/y.png", "dog/a.png", "dog/b.png"]   # torchvision's walk order


def check_folder(ds, expect, shown):
    assert ds.classes == ["ant", "cat", "dog"] and ds.class_to_idx == {"ant": 0, "cat": 1, "dog": 2}
    assert ds.samples == [(shown(r), t) for r, t in zip(ORDER, [0, 1, 1, 2, 2])] and ds.imgs == ds.samples
    np.testing.assert_array_equal(ds.targets, [0, 1, 1, 2, 2])
    assert ds.targets.dtype == np.int64 and ds.data.dtype == np.uint8 and ds.data.shape == (5, 4, 5, 3)
    for i, rel in enumerate(ORDER):
        np.testing.assert_array_equal(ds.data[i], expect[rel])
    img, t = ds[3]
    assert t == 2 and img.shape == (4, 5, 3)
    x, y = ds.__getitems__(np.array([4, 0]))
    np.testing.assert_array_equal(x, np.stack([expect["dog/b.png"], expect["ant/z.png"]]))
    np.testing.assert_array_equal(y, [2, 0])


def test_image_folder_layout_order_modes_and_items(tmp_path):
    files, expect = picture_files()
    root = write_tree(tmp_path / "pics", files)
    ds = ImageFolder(root, cache=False)
    check_folder(ds, expect, lambda r: str(root / r))
    assert len(ds) == 5 and repr(ds) == f"ImageFolder(root={str(root)!r}, samples=5, classes=3, size=4x5)"


def test_image_folder_from_zip_and_from_a_folder_inside_a_zip(tmp_path):
    files, expect = picture_files()
    z = write_zip(tmp_path / "pics.zip", files)
    check_folder(ImageFolder(z, cache=False), expect, lambda r: str(z / r))
    z2 = write_zip(tmp_path / "split.zip", {**{f"train/{k}": v for k, v in files.items()}, "test/ant/q.png": files["ant/z.png"]})
    check_folder(ImageFolder(z2 / "train", cache=False), expect, lambda r: str(z2 / "train" / r))
    assert ImageFolder(z2 / "test", cache=False).classes == ["ant"]


def test_image_folder_transforms_and_dataloader(tmp_path):
    files, expect = picture_files()
    ds = ImageFolder(write_tree(tmp_path / "pics", files), transform=T.ToTensor(),
                     target_transform=lambda t: t * 10, cache=False)
    img, t = ds[0]
    assert t == 0 and img.dtype == np.float32 and img.shape == (3, 4, 5)
    np.testing.assert_allclose(img, expect["ant/z.png"].transpose(2, 0, 1) / 255, rtol=1e-6)
    xb, yb = next(iter(DataLoader(ds, batch_size=5)))
    assert xb.shape == (5, 3, 4, 5) and xb.dtype == np.float32
    np.testing.assert_array_equal(yb.numpy(), [0, 10, 10, 20, 20])


def test_is_valid_file_and_allow_empty(tmp_path):
    files, _ = picture_files()
    root = write_tree(tmp_path / "pics", files)
    ds = ImageFolder(root, is_valid_file=lambda p: p.endswith("a.png") or "cat" in p, allow_empty=True, cache=False)
    assert ds.classes == ["ant", "cat", "dog"] and [s for s, _ in ds.samples] == [str(root / r) for r in ORDER[1:4]]
    with pytest.raises(FileNotFoundError) as e:
        ImageFolder(root, is_valid_file=lambda p: "cat" in p, cache=False)
    assert str(e.value) == f"Found no valid file for the classes ant, dog in {root}. is_valid_file accepted none of their files"


def test_decoded_array_is_cached_on_disk(tmp_path, monkeypatch):
    files, expect = picture_files()
    z = write_zip(tmp_path / "pics.zip", files)
    first = ImageFolder(z, cache=tmp_path / "cache")
    cached = list((tmp_path / "cache").glob("*.npy"))
    assert len(cached) == 1 and not list((tmp_path / "cache").glob("*.part"))

    def no_decoding(*a):
        raise AssertionError("decoded again")
    monkeypatch.setattr(images_mod, "decode_image", no_decoding)
    again = ImageFolder(z, cache=tmp_path / "cache")                 # loads the file, decodes nothing
    np.testing.assert_array_equal(again.data, first.data)
    with pytest.raises(AssertionError, match="decoded again"):       # another file list: another key
        ImageFolder(z, is_valid_file=lambda p: "dog" in p or "ant" in p or "cat" in p, cache=tmp_path / "cache")
    os.utime(z, ns=(1, 1))                                            # the zip changed: decode again
    with pytest.raises(AssertionError, match="decoded again"):
        ImageFolder(z, cache=tmp_path / "cache")
    monkeypatch.undo()
    (tmp_path / "file").write_text("a file where the cache folder should be")
    np.testing.assert_array_equal(ImageFolder(z, cache=tmp_path / "file" / "sub").data, first.data)  # quietly skipped


def test_default_cache_folder_is_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    files, _ = picture_files()
    ImageFolder(write_zip(tmp_path / "pics.zip", files))
    assert len(list((tmp_path / ".cache" / "ember" / "images").glob("*.npy"))) == 1


def jpeg(a) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG")
    return buf.getvalue()


def test_bad_pictures_name_the_file(tmp_path):
    good = jpeg(np.zeros((8, 8, 3), np.uint8))
    cases = {
        "corrupt": ({"a/1.jpg": good, "a/2.jpg": b"\xff\xd8\xff garbage"},
                    "a/2.jpg: not a readable image (UnidentifiedImageError: cannot identify image file "),
        "truncated": ({"a/1.jpg": good[: len(good) // 2]}, "a/1.jpg: not a readable image (OSError: "),
        "16-bit": ({"a/1.png": png(np.full((8, 8), 40000, np.uint16))},
                   "a/1.png: image mode 'I;16' is not an 8-bit grey or colour mode; convert the file to 8-bit RGB or grey first"),
    }
    for name, (files, msg) in cases.items():
        root = write_tree(tmp_path / name, files)
        with pytest.raises(ImageDataError) as e:
            ImageFolder(root, cache=False)
        assert str(e.value).startswith(f"{root}/{msg}"), (name, str(e.value))
    root = write_tree(tmp_path / "sizes", {"a/1.jpg": good, "b/1.jpg": jpeg(np.zeros((9, 8, 3), np.uint8))})
    with pytest.raises(ImageDataError) as e:
        ImageFolder(root, cache=False)
    assert str(e.value) == (f"{root}/b/1.jpg is 8x9 but {root}/a/1.jpg is 8x8: ImageFolder stores all pictures in one "
                            f"(N, H, W, 3) array, so they must share one size (resize them first)")


def test_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        ImageFolder(tmp_path / "nowhere", cache=False)
    assert str(e.value) == f"ImageFolder: {tmp_path / 'nowhere'} does not exist"
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "1.png").write_bytes(png(np.zeros((2, 2, 3), np.uint8)))
    with pytest.raises(FileNotFoundError) as e:
        ImageFolder(tmp_path / "flat", cache=False)
    assert str(e.value) == f"Couldn't find any class folder in {tmp_path / 'flat'}."
    root = write_tree(tmp_path / "empty", {"a/1.png": png(np.zeros((2, 2, 3), np.uint8)), "b/readme.txt": b""})
    with pytest.raises(FileNotFoundError) as e:
        ImageFolder(root, cache=False)
    assert str(e.value) == (f"Found no valid file for the classes b in {root}. Supported extensions are: "
                            ".jpg, .jpeg, .png, .ppm, .bmp, .pgm, .tif, .tiff, .webp")
    root = write_tree(tmp_path / "none", {"a/1.txt": b"", "b/2.txt": b""})
    with pytest.raises(FileNotFoundError) as e:
        ImageFolder(root, allow_empty=True, cache=False)
    assert str(e.value) == f"ImageFolder: no pictures in {root}"
    (tmp_path / "x.tar").write_bytes(b"not a zip")
    with pytest.raises(ImageDataError) as e:
        ImageFolder(tmp_path / "x.tar", cache=False)
    assert str(e.value) == f"ImageFolder: {tmp_path / 'x.tar'} is neither a folder nor a zip file"
    z = write_zip(tmp_path / "p.zip", {"train/a/1.png": png(np.zeros((2, 2, 3), np.uint8))})
    with pytest.raises(FileNotFoundError) as e:
        ImageFolder(z / "test", cache=False)
    assert str(e.value) == f"ImageFolder: {z} holds no folder 'test'"


# ---- CIFAR-10, binary version -----------------------------------------------------------------

def cifar_bin(n, seed):
    """(file bytes, images (n, 32, 32, 3) HWC, labels) of a CIFAR-10 binary file of n records."""
    r = np.random.default_rng(seed)
    labels = r.integers(0, 10, n).astype(np.uint8)
    planes = r.integers(0, 256, (n, 3, 1024), dtype=np.uint8)          # R, G, B planes, row-major
    raw = np.concatenate([labels[:, None], planes.reshape(n, -1)], axis=1).tobytes()
    hwc = np.stack([planes[:, c].reshape(n, 32, 32) for c in range(3)], axis=-1)
    return raw, hwc, labels.astype(np.int64)


def write_cifar_bin(folder: Path, sizes=(3, 2, 4, 1, 2), test=3):
    folder.mkdir(parents=True, exist_ok=True)
    parts = {}
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for seed, (name, n) in enumerate(zip(names, (*sizes, test))):
        raw, hwc, labels = cifar_bin(n, seed)
        (folder / name).write_bytes(raw)
        parts[name] = hwc, labels
    train = [parts[n] for n in names[:5]]
    return (np.concatenate([p[0] for p in train]), np.concatenate([p[1] for p in train])), parts["test_batch.bin"]


def test_cifar10_binary_records_are_channel_major(tmp_path):
    (x_train, y_train), (x_test, y_test) = write_cifar_bin(tmp_path / "cifar-10-batches-bin")
    raw = (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").read_bytes()
    assert raw[0] == y_test[0] and raw[1 + 1024 * 2 + 32 * 5 + 7] == x_test[0, 5, 7, 2]   # blue plane, row 5, col 7
    for root in (tmp_path, tmp_path / "cifar-10-batches-bin"):
        train, test = CIFAR10(root), CIFAR10(root, train=False)
        np.testing.assert_array_equal(train.data, x_train)
        np.testing.assert_array_equal(train.targets, y_train)
        np.testing.assert_array_equal(test.data, x_test)
        assert train.data.shape == (12, 32, 32, 3) and test.targets.dtype == np.int64 and len(test) == 3
        assert test.root == tmp_path / "cifar-10-batches-bin" and test.classes[0] == "airplane"
    assert repr(test) == f"CIFAR10(split='test', samples=3, root={str(tmp_path / 'cifar-10-batches-bin')!r})"


def test_cifar10_is_found_in_ember_data(tmp_path, monkeypatch):
    write_cifar_bin(tmp_path / "data" / "cifar10" / "cifar-10-batches-bin")
    monkeypatch.setenv("EMBER_DATA", str(tmp_path / "data"))
    assert len(CIFAR10(train=False)) == 3


def test_cifar10_bad_binary_files(tmp_path):
    write_cifar_bin(tmp_path)
    path = tmp_path / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ImageDataError) as e:
        CIFAR10(tmp_path, train=False)
    assert str(e.value) == (f"{path}: 9218 bytes is not a whole number of CIFAR-10 records (3073 bytes each: "
                            f"1 label byte + 3,072 pixel bytes); the file is truncated or not CIFAR-10's binary version")
    path.write_bytes(b"")
    with pytest.raises(ImageDataError, match="0 bytes is not a whole number"):
        read_cifar10_bin(path)
    raw, _, _ = cifar_bin(2, 0)
    path.write_bytes(raw[:3073] + bytes([12]) + raw[3074:])
    with pytest.raises(ImageDataError) as e:
        CIFAR10(tmp_path, train=False)
    assert str(e.value) == f"{path}: record 1 has label 12, but CIFAR-10's labels are 0..9"


def test_cifar10_not_found_names_the_folders(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        CIFAR10(tmp_path)
    assert str(e.value) == (f"CIFAR-10 not found in {tmp_path}, {tmp_path / 'cifar10'}: looked for cifar-10-batches-bin/ "
                            f"(the official binary version), train/ and test/ class folders of pictures, or a zip of "
                            f"them; set EMBER_DATA, pass root, or pass download=True")


# ---- CIFAR-10 download, against a server on 127.0.0.1 -------------------------------------------

def cifar_archive(folder: Path) -> bytes:
    write_cifar_bin(folder / "src" / "cifar-10-batches-bin")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder / "src" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    return buf.getvalue()


@pytest.fixture
def server(tmp_path):
    """A file server on 127.0.0.1 over tmp_path/www; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(www), **k)

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/", www
    srv.shutdown()
    srv.server_close()


def test_cifar10_download_checks_md5_and_unpacks(tmp_path, server, monkeypatch):
    base, www = server
    archive = cifar_archive(tmp_path)
    (www / "cifar-10-binary.tar.gz").write_bytes(archive)
    monkeypatch.setenv("EMBER_DATA_MIRROR", base)
    monkeypatch.setattr(CIFAR10, "md5", hashlib.md5(archive).hexdigest())
    ds = CIFAR10(tmp_path / "dl", train=False, download=True)
    assert len(ds) == 3 and (tmp_path / "dl" / "cifar-10-batches-bin" / "data_batch_5.bin").is_file()
    assert ds.root == tmp_path / "dl" / "cifar-10-batches-bin"
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["cifar-10-batches-bin", "cifar-10-binary.tar.gz"]


def test_cifar10_download_md5_mismatch(tmp_path, server, monkeypatch):
    base, www = server
    (www / "cifar-10-binary.tar.gz").write_bytes(cifar_archive(tmp_path))
    monkeypatch.setenv("EMBER_DATA_MIRROR", base)
    got = hashlib.md5((www / "cifar-10-binary.tar.gz").read_bytes()).hexdigest()
    with pytest.raises(RuntimeError) as e:
        CIFAR10(tmp_path / "dl", download=True)
    assert str(e.value) == (f"{base}cifar-10-binary.tar.gz: MD5 mismatch for cifar-10-binary.tar.gz: expected "
                            f"c32a1d4ab5d03f1284b67883e8d87530, got {got}; the download was deleted")
    assert list((tmp_path / "dl").iterdir()) == []


def test_cifar10_download_offline(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.delenv("EMBER_DATA_MIRROR", raising=False)
    with pytest.raises(DatasetNotFoundError) as e:
        CIFAR10(tmp_path, download=True)
    assert str(e.value) == (
        "CIFAR-10: could not download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz ([Errno -3] Temporary "
        "failure in name resolution); offline, fetch cifar-10-binary.tar.gz (MD5 c32a1d4ab5d03f1284b67883e8d87530) "
        f"elsewhere and unpack it into {tmp_path}, or pass root= a folder or zip of CIFAR-10 pictures")


# ---- CIFAR-10 as pictures -----------------------------------------------------------------------

def test_cifar10_from_picture_folders(tmp_path):
    files = {f"{split}/{c}/{i}.png": png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
             for split in ("train", "test") for c in CIFAR10.classes for i in range(2)}
    write_tree(tmp_path / "folder", files)
    z = write_zip(tmp_path / "any-name.zip", files)
    for root in (tmp_path / "folder", z, tmp_path):        # a folder, a zip, a folder holding a zip
        ds = CIFAR10(root, train=False, cache=False)
        assert ds.data.shape == (20, 32, 32, 3) and list(ds.targets) == [i // 2 for i in range(20)]
        np.testing.assert_array_equal(ds.data[0], Image.open(io.BytesIO(files["test/airplane/0.png"])))
    bad = write_tree(tmp_path / "bad", {"test/cat/1.png": files["test/cat/0.png"], "test/dog/1.png": files["test/dog/0.png"]})
    with pytest.raises(ImageDataError) as e:
        CIFAR10(bad, train=False, cache=False)
    assert str(e.value) == f"{bad / 'test'}: class folders ['cat', 'dog'] are not CIFAR-10's {CIFAR10.classes}"
    small = write_tree(tmp_path / "small", {f"test/{c}/1.png": png(np.zeros((8, 8, 3), np.uint8)) for c in CIFAR10.classes})
    with pytest.raises(ImageDataError) as e:
        CIFAR10(small, train=False, cache=False)
    assert str(e.value) == f"{small / 'test'}: pictures are 8x8, CIFAR-10's are 32x32"


@pytest.mark.skipif(not SHARED.is_file(), reason="the shared CIFAR-10 copy is not present")
def test_shared_cifar10_copy(tmp_path):
    """200 training and 100 test pictures of the shared zip, through ImageFolder and CIFAR10."""
    few = ImageFolder(SHARED / "train", is_valid_file=lambda p: int(Path(p).stem) < 20, cache=False)
    assert few.classes == CIFAR10.classes and few.data.shape == (200, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(few.targets), [20] * 10)
    assert few.samples[0] == (str(SHARED / "train" / "airplane" / "0000.jpg"), 0)
    with zipfile.ZipFile(SHARED) as src:
        names = [n for n in src.namelist() if n.endswith(".jpg") and int(n[-8:-4]) < (20 if "train/" in n else 10)]
        files = {n: src.read(n) for n in names}
    z = write_zip(tmp_path / "cifar10-jpeg.zip", files)
    train, test = CIFAR10(tmp_path, cache=False), CIFAR10(tmp_path, train=False, cache=False)
    np.testing.assert_array_equal(train.data, few.data)
    assert test.data.shape == (100, 32, 32, 3) and test.root == z / "test"
    x = cifar10_transform(train=False)(train.data).astype(np.float64)
    assert np.all(np.abs(x.mean(axis=(0, 2, 3))) < 0.25) and np.all(np.abs(x.std(axis=(0, 2, 3)) - 1) < 0.25)


# ---- batched RGB transforms ---------------------------------------------------------------------

def test_to_tensor_matches_torch_layout_and_scale():
    x = rng.integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    ref = torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255).numpy()
    np.testing.assert_array_equal(T.ToTensor()(x), ref)
    one = T.ToTensor()(x[1])
    assert one.shape == (3, 6, 5) and one.dtype == np.float32
    np.testing.assert_array_equal(one, ref[1])
    np.testing.assert_array_equal(T.ToTensor()(x[0, ..., 0]), ref[0, :1])            # (H, W) -> (1, H, W)
    f = rng.standard_normal((6, 5, 3))
    np.testing.assert_array_equal(T.ToTensor()(f), f.transpose(2, 0, 1))             # floats: not scaled
    assert isinstance(T.ToTensor()(ember.tensor(x)), ember.Tensor)
    with pytest.raises(ValueError, match=r"ToTensor: expected \(H, W\), \(H, W, C\) or \(N, H, W, C\), got shape \(2, 2, 2, 2, 2\)"):
        T.ToTensor()(np.zeros((2,) * 5, np.uint8))


def test_rgb_normalize_matches_torch_and_refuses_integers():
    x = rng.random((5, 3, 4, 4), dtype=np.float32)
    ref = ((torch.from_numpy(x) - torch.tensor(CIFAR10_MEAN)[:, None, None]) / torch.tensor(CIFAR10_STD)[:, None, None])
    np.testing.assert_allclose(T.Normalize(CIFAR10_MEAN, CIFAR10_STD)(x), ref.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(T.Normalize(CIFAR10_MEAN, CIFAR10_STD)(x[2]), ref.numpy()[2], rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="^Normalize: expected float images, got uint8; apply ToTensor first$"):
        T.Normalize(0.5, 0.5)(np.zeros((1, 3, 2, 2), np.uint8))


def test_cifar10_training_pipeline_is_crop_flip_normalize_per_image():
    x = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    ember.manual_seed(7)
    y = cifar10_transform(train=True)(x)
    ember.manual_seed(7)
    g = ember.random.default_generator()
    top, left = g.integers(0, 9, 64), g.integers(0, 9, 64)
    flip = g.random(64) < 0.5
    mean, std = np.array(CIFAR10_MEAN, np.float32)[:, None, None], np.array(CIFAR10_STD, np.float32)[:, None, None]
    for i in range(64):            # the definition, one picture at a time
        p = np.pad(x[i].transpose(2, 0, 1).astype(np.float32) / 255, ((0, 0), (4, 4), (4, 4)))
        crop = p[:, top[i]:top[i] + 32, left[i]:left[i] + 32]
        np.testing.assert_allclose(y[i], ((crop[..., ::-1] if flip[i] else crop) - mean) / std, rtol=1e-5, atol=1e-6)
    assert y.shape == (64, 3, 32, 32) and y.dtype == np.float32 and 10 < flip.sum() < 54
    one = T.RandomCrop(32, padding=4)(y[0])
    assert one.shape == (3, 32, 32)
