"""Fashion-MNIST and MNIST, found offline in standard folders or downloaded and verified."""
from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ember.data.dataset import Dataset
from ember.data.idx import IDXError, read_idx
from ember.tensor import Tensor

_SPLITS = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
           False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are in none of the folders searched, or could not be downloaded."""


_DIGEST_NAMES = {"sha256": "SHA-256", "md5": "MD5"}


def _download_file(url: str, dest: Path, expected: str, algorithm: str = "sha256") -> None:
    """Download ``url`` to ``dest`` atomically (temp file in the same folder, then ``os.replace``),
    checking its digest (SHA-256, or ``algorithm="md5"`` where only an MD5 is published, as for
    CIFAR-10); a partial or bad download never stays on disk. A tqdm progress bar (bytes, speed,
    time left) shows on a terminal."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        digest = hashlib.new(algorithm)
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as response:
            size, length = 0, response.headers.get("Content-Length")
            with tqdm(total=int(length) if length else None, desc=dest.name, unit="B", unit_scale=True,
                      unit_divisor=1024, leave=False, disable=None) as bar:  # disable=None: off without a tty
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
            if length is not None and size != int(length):  # connection dropped mid-file
                raise http.client.IncompleteRead(b"", int(length) - size)
            f.flush()
            os.fsync(f.fileno())
        if digest.hexdigest() != expected:
            raise RuntimeError(f"{url}: {_DIGEST_NAMES[algorithm]} mismatch for {dest.name}: expected {expected}, "
                               f"got {digest.hexdigest()}; the download was deleted")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def dataset_folders(name: str, root=None, system_dir: str = "/usr/share/datasets") -> list[Path]:
    """The folders searched for data set ``name``, in order: ``[root, root/name]`` when ``root``
    is given, else ``$EMBER_DATA/name`` (when set), ``system_dir/name``, ``~/.cache/ember/name``.
    The last one is where ``download=True`` puts the files when ``root`` is None."""
    if root is not None:
        return [Path(root).expanduser(), Path(root).expanduser() / name]
    env = os.environ.get("EMBER_DATA")
    return ([Path(env).expanduser() / name] if env else []) + [
        Path(system_dir) / name, Path.home() / ".cache" / "ember" / name]


class _IDXImageDataset(Dataset):
    """Shared code of ``FashionMNIST`` and ``MNIST``: 28x28 grey images in 10 classes.

    Args:
        root: folder holding the IDX files (``root`` itself or ``root/<name>``). ``None``
            searches ``$EMBER_DATA/<name>``, ``/usr/share/datasets/<name>`` and
            ``~/.cache/ember/<name>``, in that order.
        train: the 60000-image training split if True, else the 10000-image test split.
        download: if the files are not found, download all four into ``root`` (or
            ``~/.cache/ember/<name>`` when ``root`` is None) from ``$EMBER_DATA_MIRROR`` or
            else each of ``mirrors`` in turn, checking their SHA-256.
        transform: callable on image arrays: float32 (1, 28, 28) in ``__getitem__`` (an
            ndarray it returns is wrapped in a Tensor), float32 (B, 1, 28, 28) in ``__getitems__``.
        target_transform: callable on the label: an int in ``__getitem__``, an int64 (B,)
            array in ``__getitems__``.

    Attributes:
        data: uint8 ndarray (N, 28, 28). targets: int64 ndarray (N,). classes: list of the
        10 class names. root: the folder the files were read from.

    Files are ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``, raw or with ``.gz``.

    Raises:
        DatasetNotFoundError: not found and ``download`` is False (one line naming every
            folder searched and how to get the data), or no mirror could be reached.
        RuntimeError: a downloaded file's SHA-256 is wrong (the file is deleted).
        IDXError: a file is corrupt, or images and labels disagree in count.
    """

    name: str  # folder name
    title: str  # name in messages
    classes: list[str]
    mirrors: list[str]  # base URLs, tried in order
    sha256: dict[str, str]  # SHA-256 of each .gz file as served by the mirrors
    apt: str | None = None  # Debian package holding the files
    system_dir = "/usr/share/datasets"

    def __init__(self, root=None, train: bool = True, download: bool = False, transform=None,
                 target_transform=None):
        self.train, self.transform, self.target_transform = bool(train), transform, target_transform
        folders = self._candidates(root)
        found = [d for d in folders if all(self._file(d, s) for s in _SPLITS[self.train])]
        if found:
            self.root = found[0]
        elif download:
            self.root = folders[0] if root is not None else folders[-1]
            self._download(self.root)
        else:
            how = f"install it with 'sudo apt-get install {self.apt}', " if self.apt else "put the IDX files in one of them, "
            raise DatasetNotFoundError(f"{self.title} not found in {', '.join(map(str, folders))}; "
                                       f"{how}set EMBER_DATA, or pass download=True")
        image_file, label_file = (self._file(self.root, s) for s in _SPLITS[self.train])
        images, labels = read_idx(image_file), read_idx(label_file)
        if images.dtype != np.uint8 or images.ndim != 3:
            raise IDXError(f"{image_file}: expected uint8 images (N, rows, cols), got {images.dtype} {images.shape}")
        if labels.ndim != 1:
            raise IDXError(f"{label_file}: expected a 1-D array of labels, got shape {labels.shape}")
        if len(labels) != len(images):
            raise IDXError(f"{image_file} has {len(images)} images but {label_file} has {len(labels)} labels")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise IDXError(f"{label_file}: labels must lie in 0..{len(self.classes) - 1}, "
                           f"found {labels.min()}..{labels.max()}")
        self.data, self.targets = images, labels.astype(np.int64)

    def _candidates(self, root) -> list[Path]:
        return dataset_folders(self.name, root, self.system_dir)

    @staticmethod
    def _file(folder: Path, stem: str) -> Path | None:
        return next((p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()), None)

    def _download(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        env = os.environ.get("EMBER_DATA_MIRROR")
        mirrors = [env] if env else list(self.mirrors)
        for stem in (*_SPLITS[True], *_SPLITS[False]):
            if self._file(folder, stem):
                continue
            failures = []
            for base in mirrors:
                url = f"{base.rstrip('/')}/{stem}.gz"
                try:
                    _download_file(url, folder / f"{stem}.gz", self.sha256[f"{stem}.gz"])
                    break
                except (OSError, http.client.HTTPException) as e:
                    why = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", None) or repr(e)
                    failures.append(f"{url} ({why})")
            else:
                apt = f"install it with 'sudo apt-get install {self.apt}' or " if self.apt else ""
                raise DatasetNotFoundError(f"{self.title}: could not download {'; '.join(failures)}; "
                                           f"offline, {apt}put the files in $EMBER_DATA/{self.name}")

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        """Return ``(image, label)``: a float32 Tensor (1, 28, 28) in [0, 1] (torchvision's
        ``ToTensor()`` image) and an int, after the transforms."""
        image, target = self.data[index][None].astype(np.float32) / np.float32(255), int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if isinstance(image, np.ndarray):
            image = Tensor(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __getitems__(self, indices):
        """Return ``(images, labels)`` for an index array: float32 (B, 1, 28, 28) in [0, 1] and
        int64 (B,), after the transforms (applied once to the whole batch)."""
        indices = np.asarray(indices, dtype=np.int64)
        images = self.data[indices][:, None].astype(np.float32) / np.float32(255)
        targets = self.targets[indices]
        if self.transform is not None:
            images = self.transform(images)
        if self.target_transform is not None:
            targets = self.target_transform(targets)
        return images, targets

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}(split={split!r}, samples={len(self)}, root={str(self.root)!r})"


class FashionMNIST(_IDXImageDataset):
    """Zalando's Fashion-MNIST: 28x28 grey images of clothes in 10 classes (see ``_IDXImageDataset``).

    The SHA-256 values are those of the official gzip files as served by the mirror (their
    MD5s are torchvision's). Debian's ``dataset-fashion-mnist`` holds the same data
    recompressed (gzip header without the file name), so its .gz files hash differently;
    they are read, never checked against these values.
    """

    name, title = "fashion-mnist", "Fashion-MNIST"
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    sha256 = {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    }
    apt = "dataset-fashion-mnist"


class MNIST(_IDXImageDataset):
    """LeCun's MNIST handwritten digits, 28x28 grey images of 0-9 (see ``_IDXImageDataset``).

    The SHA-256 values are the widely published ones of the official gzip files (the
    files torchvision downloads from the same mirror); they could not be checked here.
    """

    name, title = "mnist", "MNIST"
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
               "7 - seven", "8 - eight", "9 - nine"]
    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/"]
    sha256 = {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    }
