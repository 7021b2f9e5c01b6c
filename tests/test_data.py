"""Tests for ember.data: IDX files, datasets, DataLoader, offline lookup and verified download."""
import functools
import gzip
import hashlib
import http.server
import os
import re
import shutil
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from ember.data import (MNIST, DataLoader, Dataset, DatasetNotFoundError, FashionMNIST, IDXError, Subset,
                        TensorDataset, random_split, read_idx, write_idx)
from ember.random import default_generator, manual_seed
from ember.tensor import Tensor

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
needs_fmnist = pytest.mark.skipif(not all((FMNIST_DIR / f"{f}.gz").is_file() for f in FILES),
                                  reason=f"Fashion-MNIST not installed in {FMNIST_DIR} (apt-get install dataset-fashion-mnist)")


# ---------------------------------------------------------------- IDX files
@pytest.mark.parametrize("dtype", ["uint8", "int8", ">i2", ">i4", ">f4", ">f8", "<i4", "<f8"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 1, 3, 2)])
def test_idx_round_trip(tmp_path, dtype, suffix, shape):
    a = (np.arange(np.prod(shape)) - 3).reshape(shape).astype(dtype)
    p = tmp_path / f"a.idx{suffix}"
    write_idx(p, a)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    b = read_idx(p)
    assert b.shape == shape and b.dtype == np.dtype(dtype).newbyteorder("=") and b.dtype.isnative
    np.testing.assert_array_equal(a, b)
    b[...] = 0  # writable


def test_idx_reads_hand_written_big_endian_bytes(tmp_path):
    p = tmp_path / "h"
    p.write_bytes(bytes([0, 0, 0x0B, 2]) + struct.pack(">II", 2, 2) + struct.pack(">hhhh", 1, -2, 300, -32768))
    np.testing.assert_array_equal(read_idx(p), np.array([[1, -2], [300, -32768]], np.int16))
    p.write_bytes(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 3) + bytes([0, 128, 255]))
    assert read_idx(str(p)).tolist() == [0, 128, 255]


def test_gzip_is_detected_by_magic_bytes_not_suffix(tmp_path):
    blob = bytes([0, 0, 8, 1]) + struct.pack(">I", 2) + b"\x05\x06"
    (tmp_path / "plain.gz").write_bytes(blob)
    (tmp_path / "packed.idx").write_bytes(gzip.compress(blob))
    assert read_idx(tmp_path / "plain.gz").tolist() == read_idx(tmp_path / "packed.idx").tolist() == [5, 6]


def _err(path, blob):
    path.write_bytes(blob)
    with pytest.raises(IDXError) as e:
        read_idx(path)
    return str(e.value)


def test_idx_error_messages(tmp_path):
    p = tmp_path / "f"
    assert issubclass(IDXError, ValueError)
    assert _err(p, b"\x01\x02\x08\x03" + bytes(12)) == \
        f"{p}: not an IDX file (magic bytes 0x01020803, expected 0x0000 then a type code)"
    assert _err(p, b"\0\0") == f"{p}: not an IDX file (2 bytes, shorter than the 4-byte magic number)"
    assert _err(p, bytes([0, 0, 7, 1, 0, 0, 0, 0])) == \
        f"{p}: unknown IDX type code 0x07 (expected one of 0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e)"
    assert _err(p, bytes([0, 0, 8, 3, 0, 0, 0, 1])) == f"{p}: truncated header: 3 dimensions need 16 bytes, file has 8"
    header = bytes([0, 0, 8, 3]) + struct.pack(">III", 60000, 28, 28)
    assert _err(p, header + bytes(1234)) == \
        f"{p}: truncated: header says 60000x28x28 uint8 = 47040000 bytes of data, file has 1234"
    assert _err(p, bytes([0, 0, 0x0C, 2]) + struct.pack(">II", 2, 3) + bytes(23)) == \
        f"{p}: truncated: header says 2x3 int32 = 24 bytes of data, file has 23"
    ok = bytes([0, 0, 8, 2]) + struct.pack(">II", 2, 3) + bytes(6)
    assert _err(p, ok + bytes(16)) == f"{p}: 16 extra bytes after the data"
    gz = gzip.compress(ok + bytes(1000))
    assert re.fullmatch(rf"{re.escape(str(p))}: corrupt gzip stream \(.+\)", _err(p, gz[: len(gz) // 2]))
    bad = bytearray(gzip.compress(ok, mtime=0))
    bad[-8] ^= 0xFF  # CRC
    assert re.fullmatch(rf"{re.escape(str(p))}: corrupt gzip stream \(.*CRC.*\)", _err(p, bytes(bad)))


def test_idx_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.gz"))):
        read_idx(tmp_path / "nope.gz")


# ---------------------------------------------------------------- Dataset, TensorDataset, random_split
def test_tensor_dataset_items_and_mismatch():
    x, y = Tensor(np.arange(12, dtype=np.float32).reshape(4, 3)), np.array([3, 1, 2, 0])
    ds = TensorDataset(x, y)
    assert len(ds) == 4 and ds.tensors[0] is x
    xi, yi = ds[2]   # Tensors, as torch's TensorDataset
    assert isinstance(xi, Tensor) and isinstance(yi, Tensor) and xi.dtype == np.float32 and yi.dtype == np.int64
    np.testing.assert_array_equal(xi.numpy(), [6, 7, 8])
    assert yi.item() == 2
    xb, yb = ds.__getitems__(np.array([3, 0]))
    np.testing.assert_array_equal(xb, [[9, 10, 11], [0, 1, 2]])
    assert yb.tolist() == [0, 3]
    with pytest.raises(ValueError, match=re.escape(
            "Size mismatch between tensors: TensorDataset needs the same first dimension in every tensor, "
            "got shapes (4, 3), (5,)")):
        TensorDataset(x, np.zeros(5))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()


def test_random_split_lengths_fractions_and_reproducibility():
    ds = TensorDataset(np.arange(11))
    a, b = random_split(ds, [8, 3], generator=np.random.default_rng(1))
    assert isinstance(a, Subset) and (len(a), len(b)) == (8, 3)
    got = sorted(int(a[i][0]) for i in range(8)) + sorted(int(b[i][0]) for i in range(3))
    assert sorted(got) == list(range(11)) and a.indices.tolist() != list(range(8))
    assert [len(s) for s in random_split(ds, [0.5, 0.5])] == [6, 5]  # remainder dealt round-robin
    assert [len(s) for s in random_split(ds, [0.1, 0.2, 0.7])] == [2, 2, 7]  # as torch
    assert [len(s) for s in random_split(TensorDataset(np.arange(10)), [0.33, 0.33, 0.34])] == [4, 3, 3]
    again = random_split(ds, [8, 3], generator=np.random.default_rng(1))
    assert again[0].indices.tolist() == a.indices.tolist()
    manual_seed(3); first = random_split(ds, [5, 6])[0].indices.tolist()
    manual_seed(3); assert random_split(ds, [5, 6])[0].indices.tolist() == first
    np.testing.assert_array_equal(b.__getitems__(np.array([2, 0]))[0], b.indices[[2, 0]])
    with pytest.raises(ValueError, match=r"Sum of input lengths \[5, 5\] does not equal the length of the input dataset \(11\)"):
        random_split(ds, [5, 5])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        random_split(ds, [1.5, -0.5])


# ---------------------------------------------------------------- DataLoader
class ItemOnly(Dataset):
    """Per-item dataset (no __getitems__): sample i is (float64 image filled with i, int i)."""
    def __init__(self, n): self.n, self.calls = n, 0
    def __len__(self): return self.n
    def __getitem__(self, i):
        self.calls += 1
        return np.full((1, 2, 2), i, np.float32), i


class Batched(ItemOnly):
    def __init__(self, n): super().__init__(n); self.batch_calls = []
    def __getitems__(self, idx):
        self.batch_calls.append(idx.tolist())
        return np.broadcast_to(idx[:, None, None, None], (len(idx), 1, 2, 2)).astype(np.float32), idx


def _labels(loader):
    return [b[1].numpy().tolist() for b in loader]


@pytest.mark.parametrize("cls", [ItemOnly, Batched])
def test_dataloader_batches_len_drop_last(cls):
    ds = cls(10)
    loader = DataLoader(ds, batch_size=4)
    assert len(loader) == 3 and _labels(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    x, y = next(iter(loader))
    assert isinstance(x, Tensor) and isinstance(y, Tensor)
    assert x.shape == (4, 1, 2, 2) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x.numpy()[:, 0, 0, 0], [0, 1, 2, 3])
    dl = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(dl) == 2 and _labels(dl) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(DataLoader(ds, batch_size=5, drop_last=True)) == 2 and len(DataLoader(ds, batch_size=11)) == 1
    assert len(DataLoader(ds, batch_size=11, drop_last=True)) == 0 == len(list(DataLoader(ds, 11, drop_last=True)))


def test_dataloader_uses_getitems_fast_path():
    ds = Batched(10)
    list(DataLoader(ds, batch_size=4))
    assert ds.calls == 0 and ds.batch_calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_dataloader_shuffle_reproducible_and_new_each_epoch():
    ds = TensorDataset(np.zeros((50, 3), np.float32), np.arange(50, dtype=np.int32))
    loader = DataLoader(ds, batch_size=8, shuffle=True)
    manual_seed(7); e1, e2 = _labels(loader), _labels(loader)
    manual_seed(7); assert _labels(loader) == e1 and _labels(loader) == e2
    flat1 = sum(e1, [])
    assert sorted(flat1) == list(range(50)) and flat1 != list(range(50)) and e1 != e2
    manual_seed(8); assert _labels(loader) != e1
    assert next(iter(loader))[1].dtype == np.int64  # int32 labels come out int64
    state = default_generator().bit_generator.state
    own = _labels(DataLoader(ds, batch_size=8, shuffle=True, generator=np.random.default_rng(0)))
    assert own == _labels(DataLoader(ds, batch_size=8, shuffle=True, generator=np.random.default_rng(0)))
    assert default_generator().bit_generator.state == state  # an explicit generator leaves the global one alone


@pytest.mark.parametrize("bs", [0, -1, 2.5, True])   # None is valid: no batching, as torch
def test_dataloader_batch_size_must_be_positive_int(bs):
    with pytest.raises(ValueError, match=re.escape(f"batch_size should be a positive integer value, but got batch_size={bs}")):
        DataLoader(TensorDataset(np.zeros(3)), batch_size=bs)


def test_dataloader_custom_collate_and_subset():
    seen = []
    dl = DataLoader(ItemOnly(5), batch_size=2, collate_fn=lambda samples: seen.append(samples) or len(samples))
    assert list(dl) == [2, 2, 1] and [s[1] for s in seen[0]] == [0, 1]
    sub = Subset(ItemOnly(10), [9, 2, 5])
    assert _labels(DataLoader(sub, batch_size=2)) == [[9, 2], [5]]
    assert _labels(DataLoader(Subset(Batched(10), [9, 2, 5]), batch_size=3)) == [[9, 2, 5]]


# ---------------------------------------------------------------- real Fashion-MNIST
@pytest.fixture(scope="module")
def fmnist():
    return FashionMNIST(train=True), FashionMNIST(train=False)


@needs_fmnist
def test_fashion_mnist_real_files(fmnist, monkeypatch):
    train, test = fmnist
    assert train.root == FMNIST_DIR or os.environ.get("EMBER_DATA")
    for ds, n in ((train, 60000), (test, 10000)):
        assert len(ds) == n and ds.data.shape == (n, 28, 28) and ds.data.dtype == np.uint8
        assert ds.targets.shape == (n,) and ds.targets.dtype == np.int64
        assert np.bincount(ds.targets).tolist() == [n // 10] * 10
        assert ds.data.min() == 0 and ds.data.max() == 255
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot" and len(train.classes) == 10
    img, label = train[0]   # a Tensor, as torchvision's with ToTensor()
    assert isinstance(img, Tensor) and not img.requires_grad
    assert img.shape == (1, 28, 28) and img.dtype == np.float32 and type(label) is int and label == 9
    img = img.numpy()
    np.testing.assert_allclose(img[0], train.data[0] / 255.0, rtol=1e-6)
    assert 0 <= img.min() and img.max() <= 1
    xb, yb = train.__getitems__(np.array([0, 5, 59999]))
    assert xb.shape == (3, 1, 28, 28) and xb.dtype == np.float32 and yb.dtype == np.int64
    np.testing.assert_array_equal(xb[1], train[5][0].numpy())
    assert yb.tolist() == [train[i][1] for i in (0, 5, 59999)]
    loader = DataLoader(test, batch_size=256)
    batches = list(loader)
    assert len(loader) == len(batches) == 40 and batches[-1][0].shape == (16, 1, 28, 28)
    assert sum(int(np.sum(b[1].numpy() == 3)) for b in batches) == 1000
    monkeypatch.delenv("EMBER_DATA", raising=False)
    for root in (FMNIST_DIR.parent, FMNIST_DIR):  # root itself or root/<name>
        ds = FashionMNIST(root=root, train=False, transform=lambda a: a * 2, target_transform=lambda t: t + 100)
        assert ds.root == FMNIST_DIR and np.array_equal(ds.targets, test.targets)
        x, y = ds[3]
        np.testing.assert_allclose(x.numpy(), test[3][0].numpy() * 2)
        assert y == test[3][1] + 100
        xb, yb = ds.__getitems__([3, 4])
        np.testing.assert_allclose(xb, np.stack([test[3][0].numpy(), test[4][0].numpy()]) * 2)
        assert yb.tolist() == [test[3][1] + 100, test[4][1] + 100]


# ---------------------------------------------------------------- lookup, download
def _fake_files(folder, n_train=12, n_test=6, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{split}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}-labels-idx1-ubyte"] = rng.integers(0, 10, n, dtype=np.uint8)
    for name, a in arrays.items():
        write_idx(folder / f"{name}.gz", a)
    return arrays


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No EMBER_DATA, no system folder, HOME in tmp, no proxies; returns tmp_path."""
    for var in ("EMBER_DATA", "EMBER_DATA_MIRROR", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(FashionMNIST, "system_dir", str(tmp_path / "sys"))
    monkeypatch.setattr(MNIST, "system_dir", str(tmp_path / "sys"))
    return tmp_path


def test_missing_dataset_message_names_every_folder(isolated, monkeypatch):
    t = isolated
    monkeypatch.setenv("EMBER_DATA", str(t / "x"))
    with pytest.raises(DatasetNotFoundError) as e:
        FashionMNIST()
    assert isinstance(e.value, FileNotFoundError)
    assert str(e.value) == (f"Fashion-MNIST not found in {t}/x/fashion-mnist, {t}/sys/fashion-mnist, "
                            f"{t}/home/.cache/ember/fashion-mnist; install it with 'sudo apt-get install "
                            f"dataset-fashion-mnist', set EMBER_DATA, or pass download=True")
    with pytest.raises(DatasetNotFoundError) as e:
        MNIST(root=t / "r")
    assert str(e.value) == (f"MNIST not found in {t}/r, {t}/r/mnist; put the IDX files in one of them, "
                            f"set EMBER_DATA, or pass download=True")


def test_lookup_order_and_count_check(isolated, monkeypatch):
    t = isolated
    sys_arrays = _fake_files(t / "sys" / "mnist", seed=1)
    assert np.array_equal(MNIST(train=False).data, sys_arrays["t10k-images-idx3-ubyte"])
    env_arrays = _fake_files(t / "env" / "mnist", seed=2)
    monkeypatch.setenv("EMBER_DATA", str(t / "env"))
    ds = MNIST()
    assert ds.root == t / "env" / "mnist" and np.array_equal(ds.targets, env_arrays["train-labels-idx1-ubyte"])
    write_idx(t / "env" / "mnist" / "train-labels-idx1-ubyte", np.zeros(11, np.uint8))  # raw beats .gz
    with pytest.raises(IDXError, match=r"has 12 images but .*train-labels-idx1-ubyte has 11 labels$"):
        MNIST()


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/short/"):  # promises 1000 bytes, sends 10, hangs up
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def mirror(isolated, monkeypatch):
    """An HTTP server on 127.0.0.1 serving fake Fashion-MNIST gz files; FashionMNIST.sha256 patched."""
    served = isolated / "served"
    arrays = _fake_files(served)
    monkeypatch.setattr(FashionMNIST, "sha256", {f"{k}.gz": hashlib.sha256((served / f"{k}.gz").read_bytes()).hexdigest()
                                                 for k in arrays})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", arrays
    server.shutdown()
    server.server_close()


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def test_download_success_to_cache_and_root(mirror, monkeypatch):
    url, arrays = mirror
    monkeypatch.setenv("EMBER_DATA_MIRROR", url)
    renames, real_replace = [], os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: renames.append((Path(src), Path(dst))) or real_replace(src, dst))
    ds = FashionMNIST(download=True)
    cache = Path(os.environ["HOME"]) / ".cache" / "ember" / "fashion-mnist"
    assert sorted(dst.name for _, dst in renames) == sorted(f"{f}.gz" for f in FILES)
    assert all(src.parent == dst.parent == cache and src.name.startswith(f".{dst.name}.") and src.suffix == ".part"
               for src, dst in renames)  # written to a temp file beside the target, then renamed atomically
    assert ds.root == cache and sorted(os.listdir(cache)) == sorted(f"{f}.gz" for f in FILES)
    assert np.array_equal(ds.data, arrays["train-images-idx3-ubyte"]) and len(ds) == 12
    monkeypatch.delenv("EMBER_DATA_MIRROR")
    assert len(FashionMNIST(train=False)) == 6  # found offline in the cache now, no download
    monkeypatch.setattr(FashionMNIST, "mirrors", [_closed_port_url(), url])  # falls through to the 2nd mirror
    root = cache.parent.parent / "elsewhere"
    ds = FashionMNIST(root=root, train=False, download=True)
    assert ds.root == root and np.array_equal(ds.targets, arrays["t10k-labels-idx1-ubyte"])


def test_download_checksum_mismatch_leaves_no_file(mirror, monkeypatch):
    url, _ = mirror
    monkeypatch.setenv("EMBER_DATA_MIRROR", url)
    good = FashionMNIST.sha256["train-labels-idx1-ubyte.gz"]
    monkeypatch.setitem(FashionMNIST.sha256, "train-labels-idx1-ubyte.gz", "0" * 64)
    root = Path(os.environ["HOME"]) / "data"
    with pytest.raises(RuntimeError) as e:
        FashionMNIST(root=root, download=True)
    assert str(e.value) == (f"{url}train-labels-idx1-ubyte.gz: SHA-256 mismatch for train-labels-idx1-ubyte.gz: "
                            f"expected {'0' * 64}, got {good}; the download was deleted")
    assert os.listdir(root) == ["train-images-idx3-ubyte.gz"]  # the verified one stays, no temp file


def test_download_failures_are_one_clear_line(mirror, monkeypatch):
    url, _ = mirror
    dead = _closed_port_url()
    monkeypatch.setenv("EMBER_DATA_MIRROR", dead)
    with pytest.raises(DatasetNotFoundError) as e:
        FashionMNIST(download=True)
    msg = str(e.value)
    assert "\n" not in msg and re.fullmatch(
        rf"Fashion-MNIST: could not download {re.escape(dead)}train-images-idx3-ubyte\.gz \(.*refused.*\); offline, "
        r"install it with 'sudo apt-get install dataset-fashion-mnist' or put the files in \$EMBER_DATA/fashion-mnist", msg)
    monkeypatch.setenv("EMBER_DATA_MIRROR", url + "short/")
    with pytest.raises(DatasetNotFoundError, match=r"could not download .*short/train-images-idx3-ubyte\.gz \("):
        FashionMNIST(download=True)
    monkeypatch.setenv("EMBER_DATA_MIRROR", url + "missing/")
    with pytest.raises(DatasetNotFoundError, match=r"missing/train-images-idx3-ubyte\.gz \(.*404"):
        MNIST(download=True)
    cache = Path(os.environ["HOME"]) / ".cache" / "ember"
    assert os.listdir(cache / "fashion-mnist") == [] and os.listdir(cache / "mnist") == []


def test_published_hashes_look_right():
    for cls in (FashionMNIST, MNIST):
        assert sorted(cls.sha256) == sorted(f"{f}.gz" for f in FILES)
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in cls.sha256.values())
