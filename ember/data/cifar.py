"""CIFAR-10 (Krizhevsky 2009): 60,000 32x32 colour pictures in 10 classes, from the official binary
files (downloaded and checked on request) or from any folder or zip of its pictures."""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import zipfile
from pathlib import Path

import numpy as np

from ember.data.datasets import DatasetNotFoundError, _download_file, dataset_folders
from ember.data.images import ArrayImageDataset, ImageDataError, ImageFolder
from ember.data.transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, ToTensor

# Per-channel mean and standard deviation (R, G, B) of the 50,000 training pictures, in [0, 1],
# over all pixels (population std). Measured on the shared JPEG copy (../shared/data/cifar10/
# cifar10-jpeg.zip, train/): ImageFolder(...).data / 255, then .mean / .std over (N, H, W) in
# float64. They differ from the official binary files' widely quoted (0.4914, 0.4822, 0.4465) /
# (0.2470, 0.2435, 0.2616) in the std's third digit: JPEG smooths the pictures a little.
CIFAR10_MEAN = (0.4913, 0.4821, 0.4465)
CIFAR10_STD = (0.2452, 0.2428, 0.2606)

_RECORD = 1 + 3 * 32 * 32   # one label byte, then 1,024 red, 1,024 green, 1,024 blue bytes (row-major)


def read_cifar10_bin(path) -> tuple[np.ndarray, np.ndarray]:
    """Read one file of CIFAR-10's binary version (e.g. ``data_batch_1.bin``).

    Each record is 3,073 bytes: the label (0..9), then the 32x32 red, green and blue planes,
    each row-major (the layout described on https://www.cs.toronto.edu/~kriz/cifar.html).

    Returns: images uint8 (N, 32, 32, 3) (HWC, as torchvision's ``CIFAR10.data``), labels
        int64 (N,); N = 10,000 in the official files.
    Raises: ImageDataError naming the file when its length is not a positive multiple of
        3,073 bytes or a label is above 9.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _RECORD:
        raise ImageDataError(f"{path}: {raw.size} bytes is not a whole number of CIFAR-10 records "
                             f"({_RECORD} bytes each: 1 label byte + 3,072 pixel bytes); the file is truncated "
                             f"or not CIFAR-10's binary version")
    records = raw.reshape(-1, _RECORD)                                       # (N, 3073)
    labels = records[:, 0].astype(np.int64)                                  # (N,)
    if labels.max() > 9:
        i = int(np.argmax(labels > 9))
        raise ImageDataError(f"{path}: record {i} has label {labels[i]}, but CIFAR-10's labels are 0..9")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)    # (N, 32, 32, 3)
    return np.ascontiguousarray(images), labels


def _zip_has(path: Path, folder: str) -> bool:
    with zipfile.ZipFile(path) as z:
        return any(n.startswith(folder + "/") for n in z.namelist())


class CIFAR10(ArrayImageDataset):
    """CIFAR-10, as ``torchvision.datasets.CIFAR10`` but reading the official BINARY version (never
    the pickled one) or a folder/zip of its pictures.

    Args:
        root: where to look (``root`` itself, then ``root/cifar10``); None searches
            ``$EMBER_DATA/cifar10``, ``/usr/share/datasets/cifar10`` and ``~/.cache/ember/cifar10``
            (as ``FashionMNIST`` does). In each folder, in this order: ``cifar-10-batches-bin/``
            (or its ``.bin`` files directly), an image folder ``train/<class>/``, ``test/<class>/``,
            a ``*.zip`` holding that layout (such as the shared ``cifar10-jpeg.zip``). ``root`` may
            also be such a zip.
        train: the 50,000 training pictures (``data_batch_1..5.bin`` or ``train/``) if True, else
            the 10,000 test pictures (``test_batch.bin`` or ``test/``).
        transform, target_transform: see ``ArrayImageDataset``; ``cifar10_transform`` gives the
            usual pipeline.
        download: if not found, fetch ``cifar-10-binary.tar.gz`` (162 MB) from
            ``$EMBER_DATA_MIRROR`` (a base URL) or else the official site into ``root`` (or
            ``~/.cache/ember/cifar10``), check its MD5 (c32a1d4ab5d03f1284b67883e8d87530) and
            unpack ``cifar-10-batches-bin/`` there.
        cache: passed to ``ImageFolder`` when reading pictures (the decoded-array disk cache).

    Attributes: data uint8 (N, 32, 32, 3) RGB; targets int64 (N,); classes (CIFAR-10's order,
        which is alphabetical); class_to_idx; root (the folder, file or zip path read); train.

    Raises:
        DatasetNotFoundError: not found and ``download`` is False (names every folder searched);
            the download failed (offline: says what to fetch and where to put it).
        RuntimeError: the downloaded archive's MD5 is wrong (it is deleted).
        ImageDataError: a ``.bin`` file of the wrong length or with a label above 9; a picture
            folder whose classes are not CIFAR-10's or whose pictures are not 32x32; a bad picture.
    """

    name, title = "cifar10", "CIFAR-10"
    base_folder = "cifar-10-batches-bin"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    filename = "cifar-10-binary.tar.gz"
    md5 = "c32a1d4ab5d03f1284b67883e8d87530"
    train_list = [f"data_batch_{i}.bin" for i in range(1, 6)]
    test_list = ["test_batch.bin"]
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def __init__(self, root=None, train: bool = True, transform=None, target_transform=None,
                 download: bool = False, *, cache=True):
        self.train, self.transform, self.target_transform = bool(train), transform, target_transform
        folders = dataset_folders(self.name, root)
        found = next((f for f in map(self._find, folders) if f is not None), None)
        if found is None and download:
            target = folders[0] if root is not None else folders[-1]
            self._download(target)
            found = self._find(target)
        if found is None:
            raise DatasetNotFoundError(
                f"{self.title} not found in {', '.join(map(str, folders))}: looked for {self.base_folder}/ "
                f"(the official binary version), train/ and test/ class folders of pictures, or a zip of them; "
                f"set EMBER_DATA, pass root, or pass download=True")
        kind, self.root = found
        if kind == "bin":
            parts = [read_cifar10_bin(self.root / f) for f in (self.train_list if self.train else self.test_list)]
            self.data = np.concatenate([p[0] for p in parts])
            self.targets = np.concatenate([p[1] for p in parts])
        else:
            self._read_pictures(cache)

    def _find(self, folder: Path):
        """("bin", folder of .bin files) or ("images", ImageFolder root) for this split, or None."""
        split = "train" if self.train else "test"
        files = self.train_list if self.train else self.test_list
        if folder.is_file():
            return ("images", folder / split) if zipfile.is_zipfile(folder) and _zip_has(folder, split) else None
        if not folder.is_dir():
            return None
        for d in (folder / self.base_folder, folder):
            if all((d / f).is_file() for f in files):
                return "bin", d
        if (folder / split).is_dir():
            return "images", folder / split
        zips = [z for z in sorted(folder.glob("*.zip")) if zipfile.is_zipfile(z) and _zip_has(z, split)]
        return ("images", zips[0] / split) if zips else None

    def _read_pictures(self, cache) -> None:
        pictures = ImageFolder(self.root, cache=cache)
        if pictures.classes != self.classes:
            raise ImageDataError(f"{self.root}: class folders {pictures.classes} are not CIFAR-10's {self.classes}")
        if pictures.data.shape[1:] != (32, 32, 3):
            h, w = pictures.data.shape[1:3]
            raise ImageDataError(f"{self.root}: pictures are {w}x{h}, CIFAR-10's are 32x32")
        self.data, self.targets = pictures.data, pictures.targets

    def _download(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        archive = folder / self.filename
        mirror = os.environ.get("EMBER_DATA_MIRROR")
        url = f"{mirror.rstrip('/')}/{self.filename}" if mirror else self.url
        if archive.is_file():                       # left by an earlier run: check it all the same
            got = hashlib.md5(archive.read_bytes()).hexdigest()
            if got != self.md5:
                raise RuntimeError(f"{archive}: MD5 mismatch: expected {self.md5}, got {got}; delete it and retry")
        else:
            try:
                _download_file(url, archive, self.md5, algorithm="md5")
            except (OSError, http.client.HTTPException) as e:
                why = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", None) or repr(e)
                raise DatasetNotFoundError(
                    f"{self.title}: could not download {url} ({why}); offline, fetch {self.filename} "
                    f"(MD5 {self.md5}) elsewhere and unpack it into {folder}, or pass root= a folder or zip "
                    f"of CIFAR-10 pictures") from None
        tmp = Path(tempfile.mkdtemp(prefix=".cifar10-", dir=folder))
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(self.base_folder + "/")
                           and ".." not in m.name.split("/")]
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=members, **kwargs)
            if not (folder / self.base_folder).exists():
                os.replace(tmp / self.base_folder, folder / self.base_folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"CIFAR10(split={split!r}, samples={len(self)}, root={str(self.root)!r})"


def cifar10_transform(train: bool = True) -> Compose:
    """The usual CIFAR-10 pipeline on uint8 (B, 32, 32, 3) batches -> float32 (B, 3, 32, 32):
    ``ToTensor``, then for training 4-pixel-padded random 32x32 crops and left-right flips (He
    et al. 2016, section 4.2), then ``Normalize(CIFAR10_MEAN, CIFAR10_STD)``."""
    augment = [RandomCrop(32, padding=4), RandomHorizontalFlip()] if train else []
    return Compose([ToTensor(), *augment, Normalize(CIFAR10_MEAN, CIFAR10_STD)])


__all__ = ["CIFAR10", "CIFAR10_MEAN", "CIFAR10_STD", "cifar10_transform", "read_cifar10_bin"]
