"""The data sets of ``ember train``: arrays normalised per channel, the ``--augment`` pipeline, and
the check that a model fits the data's images.

``load_data`` reads a split once into memory as float32 (N, C, H, W), normalised by the
training set's per-channel mean and standard deviation (``config.DATASETS``): Fashion-MNIST and
MNIST (1×28×28 grayscale) and CIFAR-10 (3×32×32 RGB, from the official binary files or a folder
or zip of its pictures, ``ember.data.CIFAR10``). The full CIFAR-10 training split takes 614 MB as
float32. ``augmentation`` is torchvision's usual pipeline, applied to whole normalised batches, with
the padding filled by each channel's normalised black (so a padded border is what padding the
raw picture with zeros, as torchvision does, would give).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from ..data import transforms
from ..models import input_shape
from .config import DATASETS, TrainConfig


def _channel_stats(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of dataset ``name`` as float32 arrays of one value per channel."""
    _, mean, std = DATASETS[name]
    return np.atleast_1d(np.asarray(mean, np.float32)), np.atleast_1d(np.asarray(std, np.float32))


def load_data(name: str, data_dir: str | None, train: bool, subset: int | None = None,
              download: bool = False):
    """Return (images, labels) of one split of dataset ``name``.

    Args:
        name: a ``DATASETS`` key (fashion-mnist, mnist, cifar10).
        data_dir: where the files are (None: ``$EMBER_DATA/<name>``, ``/usr/share/datasets/<name>``,
            ``~/.cache/ember/<name>``); for cifar10 also a zip of its pictures.
        train: the training split, else the test split.
        subset: keep only ``subset`` images (smoke runs), a fixed random sample in the split's
            order (NumPy's default_rng(0), the same for every --seed); None keeps all.
        download: fetch the data set's files when they are not found (checksummed).
    Returns:
        images: float32 (N, C, H, W), (x / 255 - mean_c) / std_c per channel c;
        labels: int64 (N,) class indices.
    Raises:
        ValueError listing the valid names; ember.data.DatasetNotFoundError naming the folders
        searched; ember.data.ImageDataError for a bad file.
    """
    TrainConfig(dataset=name).check_choice("dataset")
    if subset is not None and subset < 1:
        raise ValueError(f"--subset must be at least 1, got {subset}")
    from ..data import DatasetNotFoundError
    cls = DATASETS[name][0]
    files = _idx_files(cls, data_dir, train)
    arrays = _load_decoded(files) if files else None
    if arrays is None:
        try:
            ds = cls(root=data_dir, train=train, download=download)
        except DatasetNotFoundError as e:       # the command-line user's words for download=True
            raise DatasetNotFoundError(str(e).replace("pass download=True", "pass --download")) from None
        arrays = ds.data, np.asarray(ds.targets, dtype=np.int64)
        if files or download:
            _save_decoded(files or _idx_files(cls, data_dir, train), *arrays)
    images, labels = arrays
    if subset is not None and subset < len(labels):   # picture folders are sorted by class: sample
        keep = np.sort(np.random.default_rng(0).permutation(len(labels))[:subset])
        images, labels = images[keep], labels[keep]
    chw = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)   # (N, C, H, W) view
    mean, std = _channel_stats(name)
    mean, std = mean[:, None, None], std[:, None, None]
    x = np.empty(chw.shape, np.float32)
    for i in range(0, len(x), 256):   # x = (x / 255 - mean) / std, 256 images at a time (in cache)
        block = x[i:i + 256]
        block[...] = chw[i:i + 256]
        block /= 255
        block -= mean
        block /= std
    return x, labels


# Decoded IDX arrays (Fashion-MNIST, MNIST) are kept as .npz in the user's cache folder: gunzipping
# Fashion-MNIST's training images takes ~0.3 s of CPU at every `ember train` (a third of its start-up
# with a warm JIT cache), reading the decoded copy ~0.02 s (benchmarks/RESULTS.md, issue 13).
ARRAY_CACHE = Path.home() / ".cache" / "ember" / "arrays"


def _idx_files(cls, data_dir, train: bool) -> list[Path] | None:
    """The image and label files dataset class ``cls`` would read, found as it finds them (the first
    folder holding both); None for a data set that is not IDX files, or when they are not found."""
    from ..data.datasets import _SPLITS, MNIST, FashionMNIST, dataset_folders
    if cls not in (FashionMNIST, MNIST):
        return None
    for folder in dataset_folders(cls.name, data_dir, cls.system_dir):
        files = [cls._file(folder, stem) for stem in _SPLITS[bool(train)]]
        if all(files):
            return files
    return None


def _decoded_path(files) -> Path:
    """The cache file of IDX ``files``: named by their absolute paths, sizes and modification times."""
    stats = [(str(Path(f).resolve()), os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]
    return ARRAY_CACHE / f"idx-{hashlib.sha256(repr(stats).encode()).hexdigest()[:24]}.npz"


def _load_decoded(files):
    """(images uint8 (N, H, W), labels int64 (N,)) from the cache, or None (absent, unreadable, stale)."""
    try:
        with np.load(_decoded_path(files)) as z:
            images, labels = z["images"], z["labels"]
    except Exception:   # no copy yet (or a damaged one): the IDX files are read
        return None
    if images.dtype != np.uint8 or images.ndim != 3 or labels.dtype != np.int64 or labels.shape != images.shape[:1]:
        return None
    return images, labels


def _save_decoded(files, images, labels) -> None:
    """Keep the decoded arrays (written atomically); quietly nothing when the cache is not writable."""
    if not files:
        return
    try:
        path = _decoded_path(files)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".idx-", suffix=".npz.part", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, images=images, labels=labels)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass


def augmentation(name: str) -> transforms.Compose:
    """The ``--augment`` pipeline for dataset ``name``, on normalised (N, C, H, W) batches:
    random shifts (``RandomCrop`` of the image size after padding by 2 pixels for 28×28 pictures,
    4 for 32×32 ones, as He et al. 2016 do for CIFAR-10) and left–right flips. The padding is the
    normalised value of a black pixel in each channel."""
    mean, std = _channel_stats(name)
    size = input_size(name)
    pad = 4 if size[1] >= 32 else 2
    return transforms.Compose([transforms.RandomCrop(size[1:], padding=pad, fill=-mean / std),
                               transforms.RandomHorizontalFlip()])


def input_size(name: str) -> tuple[int, int, int]:
    """(C, H, W) of one image of dataset ``name``: (3, 32, 32) for cifar10, else (1, 28, 28)."""
    return (3, 32, 32) if name == "cifar10" else (1, 28, 28)


def check_model_fits(model: str, dataset: str) -> None:
    """Raise ValueError when model ``model`` is built for other images than ``dataset``'s.

    Models are built for one input size (``ember.models.input_shape``): the message names both
    sizes, the models that do fit and the data sets that fit the model, e.g. ``model resnet20
    takes 3×32×32 images but fashion-mnist has 1×28×28 ones; models for 1×28×28: convnet-bn,
    lenet5, ... (or --dataset cifar10)``.
    """
    want, have = tuple(input_shape(model)[1:]), input_size(dataset)
    if want != have:
        from ..models import MODELS
        fits = sorted(m for m in MODELS if tuple(input_shape(m)[1:]) == have)
        data = [d for d in DATASETS if input_size(d) == want]
        raise ValueError(f"model {model} takes {_size(want)} images but {dataset} has {_size(have)} ones; "
                         f"models for {_size(have)}: {', '.join(fits) or 'none'}"
                         + (f" (or --dataset {' / '.join(data)})" if data else ""))


def _size(chw) -> str:
    return "×".join(map(str, chw))


__all__ = ["augmentation", "check_model_fits", "input_size", "load_data"]
