"""The data sets of ``ember train``: arrays normalised per channel, the ``--augment`` pipeline, and
the check that a model fits the data's images.

``load_data`` reads a split once into memory as float32 (N, C, H, W), normalised by the
training set's per-channel mean and standard deviation (``config.DATASETS``): Fashion-MNIST and
MNIST (1×28×28 grayscale) and CIFAR-10 (3×32×32 RGB, from the official binary files or a folder
or zip of its pictures, ``ember.data.CIFAR10``). The full CIFAR-10 training split takes 614 MB as
float32. ``augmentation`` is torchvision's usual pipeline, applied to whole normalised batches, with
the padding filled by each channel's normalised black (so a padded border is what padding the
raw picture with zeros, as torchvision does, would give).

``--dataset imagefolder --data-dir PATH`` is any folder (or zip) of class folders, torchvision's
``ImageFolder`` layout (``ember.data.ImageFolder`` reads it). The split rule:

* ``PATH/train/<class>/...`` and ``PATH/test/<class>/...``, when PATH holds both folders (other
  folders beside them, such as ``val/``, are not read): they are the training and test splits, and
  must hold the same class folders;
* otherwise ``PATH/<class>/...`` is the whole set, and ``--test-split F`` (default 0.2) of each
  class's pictures, chosen by NumPy's ``default_rng(0)`` (the same for every ``--seed``, so that
  ``ember evaluate`` finds the same test set), is the test split; the rest, in folder order, trains.

There must be two classes or more (a single folder, such as a zip's one top folder that holds
the class folders, is refused, naming the --data-dir to give instead). All pictures must have one
size (else an error names two files of different sizes); colour pictures give 3 channels, and a
set whose pictures are all grayscale (R = G = B in every pixel of both splits) gives 1. The classes (sorted folder names), the input shape (C, H, W) and the
per-channel mean and standard deviation (of the training split's pixels in [0, 1], population std)
come from the data: ``data_spec``. Models are built for its channels and classes
(``ember.models.model_for``); a model's picture size H×W must be the data's.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from ..data import transforms
from ..models import MODELS, get_model, input_shape, model_for, model_kwargs_from_weights
from .config import DATASETS, TrainConfig

IMAGEFOLDER = "imagefolder"
DEFAULT_TEST_SPLIT = 0.2
_SHAPES = {"fashion-mnist": (1, 28, 28), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What a data set's pictures are, known before training: ``name`` (a ``DATASETS`` key),
    ``shape`` (C, H, W), ``classes`` (names, index order), ``mean`` and ``std`` (float32 (C,), of
    [0, 1]-scaled training pixels), ``where`` (for imagefolder, the --data-dir; else "")."""
    name: str
    shape: tuple
    classes: tuple
    mean: np.ndarray
    std: np.ndarray
    where: str = ""

    @property
    def title(self) -> str:
        """The data set as messages name it: ``cifar10``, ``imagefolder photos.zip``."""
        return f"{self.name} {self.where}" if self.where else self.name


def data_spec(name: str, data_dir: str | None = None, test_split: float | None = None,
              download: bool = False) -> DataSpec:
    """The ``DataSpec`` of data set ``name``: fixed for the built-in ones; for imagefolder read
    from the pictures in ``data_dir`` (decoded once per process and split, see ``load_data``).

    Raises: ValueError for an unknown name, imagefolder without ``data_dir``, with ``download``,
        or a ``test_split`` that the folder's layout does not use; ImageDataError /
        FileNotFoundError from the folder (a bad, missing or differently sized picture, an empty
        class folder), naming the file or folder.
    """
    TrainConfig(dataset=name).check_choice("dataset")
    if name == IMAGEFOLDER:
        return _read_folder(data_dir, test_split, download).spec
    _, mean, std = DATASETS[name]
    return DataSpec(name, _SHAPES[name], tuple(DATASETS[name][0].classes),
                    np.atleast_1d(np.asarray(mean, np.float32)), np.atleast_1d(np.asarray(std, np.float32)))


def spec_of(cfg) -> DataSpec:
    """``data_spec`` of a ``TrainConfig`` (its dataset, data_dir, test_split and download)."""
    return data_spec(cfg.dataset, cfg.data_dir, cfg.test_split, cfg.download)


@dataclasses.dataclass
class _Folder:
    spec: DataSpec
    train: tuple        # (uint8 (N, H, W) or (N, H, W, 3), int64 (N,))
    test: tuple


_LAST_FOLDER: dict = {}     # the last folder read in this process: {key: _Folder}


def _read_folder(data_dir, test_split, download) -> _Folder:
    """Read and split an imagefolder data set (see the module docstring); the last one read is kept
    in memory, keyed by the path, its modification time and ``test_split``."""
    from ..data.images import ImageDataError, ImageFolder, _Source
    if download:
        raise ValueError("--download: --dataset imagefolder reads the pictures in --data-dir; there is nothing "
                         "to download")
    if data_dir is None:
        raise ValueError("--dataset imagefolder needs --data-dir: a folder (or .zip) of class folders "
                         "(torchvision's ImageFolder layout: DIR/<class>/<picture>, or DIR/train/<class>/... "
                         "and DIR/test/<class>/...)")
    if test_split is not None and not 0 < test_split < 1:
        raise ValueError(f"--test-split must be in (0, 1), got {test_split}")
    source = _Source(data_dir)                  # FileNotFoundError / ImageDataError for a bad path
    stamp = (source.zip or source.root).stat().st_mtime_ns
    key = (str((source.zip or source.root).resolve()), source.inner, stamp, test_split)
    if key in _LAST_FOLDER:
        return _LAST_FOLDER[key]
    where = str(data_dir)
    splits = {"train", "test"} & set(source.dirs)
    if splits == {"train", "test"}:
        if test_split is not None:
            raise ValueError(f"--test-split {test_split}: {where} has train/ and test/ folders, which give the "
                             f"test split; drop --test-split")
        train, test = (ImageFolder(os.path.join(where, s)) for s in ("train", "test"))
        if train.classes != test.classes:
            raise ImageDataError(f"{where}: the class folders of train/ ({', '.join(train.classes)}) and test/ "
                                 f"({', '.join(test.classes)}) differ; they must be the same")
        if train.data.shape[1:] != test.data.shape[1:]:
            (a, _), (b, _) = train.samples[0], test.samples[0]
            raise ImageDataError(f"{b} is {_wh(test.data)} but {a} is {_wh(train.data)}: all pictures must "
                                 f"share one size (resize them first)")
        classes, (xtr, ytr), (xte, yte) = train.classes, (train.data, train.targets), (test.data, test.targets)
    elif splits:
        (have,), (missing,) = splits, {"train", "test"} - splits
        raise ImageDataError(f"{where} has a {have}/ folder but no {missing}/ folder: give both train/<class>/ "
                             f"and test/<class>/ folders, or only class folders (then --test-split holds out "
                             f"a fraction of each class)")
    else:
        every = ImageFolder(where)
        classes, fraction = every.classes, DEFAULT_TEST_SPLIT if test_split is None else test_split
        held = _held_out(every.targets, len(classes), fraction)
        if not held.any() or held.all():
            raise ValueError(f"--test-split {fraction} of the {len(held)} pictures in {where} leaves "
                             f"{'no test' if not held.any() else 'no training'} picture ({held.sum()} held out, "
                             f"round(fraction × pictures) of each class); change --test-split")
        (xtr, ytr), (xte, yte) = ((every.data[m], every.targets[m]) for m in (~held, held))
    if len(classes) < 2:                                # e.g. a zip of one folder that holds the classes
        raise ImageDataError(f"{where} has one class folder, {classes[0]}/: a classifier needs two or more; if the "
                             f"class folders are inside it, give --data-dir {os.path.join(where, classes[0])}")
    if (xtr[..., :1] == xtr[..., 1:]).all() and (xte[..., :1] == xte[..., 1:]).all():
        xtr, xte = xtr[..., 0], xte[..., 0]             # grayscale: one channel
    mean, std = _pixel_stats(xtr)
    if not std.all():
        c = int(np.argmin(std))
        raise ImageDataError(f"{where}: every training pixel has the value {mean[c] * 255:.0f} in channel {c}; "
                             f"such pictures cannot be normalised (nothing to learn from)")
    shape = (1,) + xtr.shape[1:3] if xtr.ndim == 3 else (3,) + xtr.shape[1:3]
    spec = DataSpec(IMAGEFOLDER, shape, tuple(classes), mean, std, where)
    _LAST_FOLDER.clear()
    _LAST_FOLDER[key] = _Folder(spec, (xtr, ytr), (xte, yte))
    return _LAST_FOLDER[key]


def _wh(data) -> str:
    return f"{data.shape[2]}x{data.shape[1]}"


def _held_out(targets: np.ndarray, n_classes: int, fraction: float) -> np.ndarray:
    """Bool (N,): round(fraction × n_c) pictures of each class c (halves up), drawn by
    ``default_rng(0)`` class by class."""
    rng, held = np.random.default_rng(0), np.zeros(len(targets), bool)
    for c in range(n_classes):
        idx = np.flatnonzero(targets == c)
        held[rng.permutation(idx)[:int(np.floor(fraction * len(idx) + 0.5))]] = True
    return held


def _pixel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and population std of uint8 pictures (N, H, W[, C]) scaled to [0, 1], as
    float32 (C,): exact, from each channel's 256-bin histogram (in float64)."""
    planes = [x] if x.ndim == 3 else [x[..., c] for c in range(x.shape[-1])]
    values, mean, std = np.arange(256) / 255.0, [], []
    for p in planes:
        hist = np.bincount(p.ravel(), minlength=256).astype(np.float64)
        m = hist @ values / hist.sum()
        mean.append(m)
        std.append(np.sqrt(hist @ (values - m) ** 2 / hist.sum()))
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


def load_data(name: str, data_dir: str | None, train: bool, subset: int | None = None,
              download: bool = False, test_split: float | None = None):
    """Return (images, labels) of one split of dataset ``name``.

    Args:
        name: a ``DATASETS`` key (fashion-mnist, mnist, cifar10, imagefolder).
        data_dir: where the files are (None: ``$EMBER_DATA/<name>``, ``/usr/share/datasets/<name>``,
            ``~/.cache/ember/<name>``); for cifar10 also a zip of its pictures; for imagefolder (required)
            a folder or zip of class folders, split as the module docstring says.
        train: the training split, else the test split.
        subset: keep only ``subset`` images (smoke runs), a fixed random sample in the split's
            order (NumPy's default_rng(0), the same for every --seed); None keeps all.
        download: fetch the data set's files when they are not found (checksummed).
        test_split: imagefolder without train/ and test/ folders: the fraction of each class held
            out as the test split (None: 0.2).
    Returns:
        images: float32 (N, C, H, W), (x / 255 - mean_c) / std_c per channel c;
        labels: int64 (N,) class indices.
    Raises:
        ValueError listing the valid names; ember.data.DatasetNotFoundError naming the folders
        searched; ember.data.ImageDataError for a bad file; see ``data_spec`` for imagefolder.
    """
    TrainConfig(dataset=name).check_choice("dataset")
    if subset is not None and subset < 1:
        raise ValueError(f"--subset must be at least 1, got {subset}")
    if name == IMAGEFOLDER:
        folder = _read_folder(data_dir, test_split, download)
        (images, labels), spec = folder.train if train else folder.test, folder.spec
    else:
        from ..data import DatasetNotFoundError
        spec = data_spec(name)
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
    mean, std = spec.mean[:, None, None], spec.std[:, None, None]
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


def load_run_data(cfg, data_dir: str | None = None, train: bool = False, subset: int | None = None,
                  download: bool = False, model=None):
    """``load_data`` for a saved run's ``TrainConfig`` (``ember evaluate``, ``ember visualize``):
    its data set and split rule, from ``data_dir`` or else the run's ``--data-dir``. With ``model``,
    check that its output has one logit per class of the data.

    Raises: as ``load_data``; ValueError when the model's classes and the data's differ in number.
    """
    x, y = load_data(cfg.dataset, data_dir or cfg.data_dir, train=train, subset=subset, download=download,
                     test_split=getattr(cfg, "test_split", None))
    if model is not None and cfg.dataset == IMAGEFOLDER:
        spec = data_spec(cfg.dataset, data_dir or cfg.data_dir, getattr(cfg, "test_split", None))
        from ..nn import Linear
        out = [m for m in model.modules() if isinstance(m, Linear)][-1].out_features
        if out != len(spec.classes):
            raise ValueError(f"the model was trained on {out} classes but {spec.where} has {len(spec.classes)} "
                             f"({', '.join(spec.classes)}): not the run's pictures (give --data-dir)")
    return x, y


def build_model(cfg, spec: DataSpec | None = None):
    """The model of ``cfg`` for its data: ``get_model(cfg.model)`` for the built-in data sets; for
    imagefolder ``model_for`` the data's channels and classes (``spec``, read when not given)."""
    if cfg.dataset != IMAGEFOLDER:
        return get_model(cfg.model)
    spec = spec or spec_of(cfg)
    return model_for(cfg.model, spec.shape, len(spec.classes))


def saved_model_kwargs(cfg, weights: dict) -> dict:
    """Keyword arguments rebuilding a saved run's model from its weights (``load_checkpoint``):
    none for the built-in data sets; for imagefolder the channels and classes the weights were
    trained for (``ember.models.model_kwargs_from_weights``), so the pictures need not be read."""
    return model_kwargs_from_weights(cfg.model, weights) if cfg.dataset == IMAGEFOLDER else {}


def class_names(cfg, data_dir: str | None = None) -> list:
    """The class names of a run's data set (``ember visualize``)."""
    return list(data_spec(cfg.dataset, data_dir or cfg.data_dir, getattr(cfg, "test_split", None)).classes)


def augmentation(name: str, spec: DataSpec | None = None) -> transforms.Compose:
    """The ``--augment`` pipeline for dataset ``name`` (``spec``: its ``DataSpec``, needed for
    imagefolder), on normalised (N, C, H, W) batches: random shifts (``RandomCrop`` of the image
    size after padding by 4 pixels for pictures at least 32 high, as He et al. 2016 do for
    CIFAR-10, else 2) and left–right flips. The padding is the normalised value of a black pixel
    in each channel."""
    spec = spec or data_spec(name)
    size = spec.shape
    pad = 4 if size[1] >= 32 else 2
    return transforms.Compose([transforms.RandomCrop(size[1:], padding=pad, fill=-spec.mean / spec.std),
                               transforms.RandomHorizontalFlip()])


def input_size(name: str) -> tuple[int, int, int]:
    """(C, H, W) of one image of the built-in dataset ``name``: (3, 32, 32) for cifar10, else
    (1, 28, 28). Raises ValueError for imagefolder, whose size comes from its pictures (``data_spec``)."""
    if name == IMAGEFOLDER:
        raise ValueError("the picture size of --dataset imagefolder comes from its pictures: use data_spec")
    return _SHAPES.get(name, (1, 28, 28))


def check_model_fits(model: str, dataset: str, spec: DataSpec | None = None) -> None:
    """Raise ValueError when model ``model`` is built for other images than ``dataset``'s
    (``spec``: its ``DataSpec``, needed for imagefolder).

    Models are built for one input size (``ember.models.input_shape``); for imagefolder they
    are built for the data's channels, so only H×W must agree. The message names both sizes,
    the models that do fit and the built-in data sets that fit the model, e.g. ``model resnet20
    takes 3×32×32 images but fashion-mnist has 1×28×28 ones; models for 1×28×28: convnet-bn,
    lenet5, ... (or --dataset cifar10)``.
    """
    spec = spec or data_spec(dataset)
    have, free = spec.shape, spec.name == IMAGEFOLDER    # free: the channels follow the data

    def takes(m):
        c, h, w = input_shape(m)[1:]
        return (have[0] if free else c, h, w)
    want = takes(model)
    if want != have:
        fits = sorted(m for m in MODELS if takes(m) == have)
        data = [] if free else [d for d in _SHAPES if _SHAPES[d] == want]
        raise ValueError(f"model {model} takes {_size(want)} images but {spec.title} has {_size(have)} ones; "
                         f"models for {_size(have)}: {', '.join(fits) or 'none'}"
                         + (f" (or --dataset {' / '.join(data)})" if data else ""))


def _size(chw) -> str:
    return "×".join(map(str, chw))


__all__ = ["DEFAULT_TEST_SPLIT", "DataSpec", "IMAGEFOLDER", "augmentation", "build_model", "check_model_fits",
           "class_names", "data_spec", "input_size", "load_data", "load_run_data", "saved_model_kwargs", "spec_of"]
