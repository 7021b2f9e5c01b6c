"""Folders of pictures as a data set: ``ImageFolder``, torchvision's layout, from a folder or a zip.

The layout (torchvision's ``ImageFolder``): one sub-folder per class, the pictures inside it
(at any depth)::

    root/cat/0001.jpg   root/cat/more/0002.png   root/dog/0001.jpg   ...

``root`` may also be a ``.zip`` holding that layout, or a folder inside a zip written as a path
through it: ``cifar10-jpeg.zip/train`` reads the entries ``train/<class>/...`` of the zip. Every
picture is decoded once, with Pillow (the ``images`` extra), into ONE uint8 array (N, H, W, 3),
so later epochs index memory instead of decoding again; the array is also cached on disk (see
``ImageFolder``) so that the next process does not decode either.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ember.data.dataset import Dataset

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# 8-bit modes with a faithful RGB conversion in Pillow (alpha is dropped, as torchvision's
# loader does); 16-bit and float modes ("I;16", "I", "F") would be clipped, so they are refused.
_8BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"}
_CACHE_VERSION = 1


class ImageDataError(ValueError):
    """A picture or a data file is not what the data set expects (corrupt, wrong mode, wrong
    size, wrong length); the message names the file."""


def default_cache_dir() -> Path:
    """Where decoded image arrays are cached: ``~/.cache/ember/images``."""
    return Path.home() / ".cache" / "ember" / "images"


class _Source:
    """The files under one folder, on disk or inside a zip: ``names`` (paths relative to the
    folder, '/'-separated), ``dirs`` (the first-level folders), ``read(name)`` -> bytes,
    ``show(name)`` -> the path used in messages and passed to ``is_valid_file``."""

    def __init__(self, root):
        root = Path(root).expanduser()
        self.root, self.zip, self.inner = root, None, ""
        if root.is_dir():
            self.dirs = sorted(e.name for e in os.scandir(root) if e.is_dir())
            return
        head = root
        while not head.exists() and head.parent != head:
            head = head.parent
        if not head.exists() or head.is_dir():
            raise FileNotFoundError(f"ImageFolder: {root} does not exist")
        if not zipfile.is_zipfile(head):
            raise ImageDataError(f"ImageFolder: {head} is neither a folder nor a zip file")
        inner = root.relative_to(head).as_posix()
        self.zip, self.inner = head, "" if inner == "." else inner
        prefix = self.inner + "/" if self.inner else ""
        with zipfile.ZipFile(head) as z:
            entries = [n[len(prefix):] for n in z.namelist()
                       if n.startswith(prefix) and not n.startswith("__MACOSX/")]
        if self.inner and not entries:
            raise FileNotFoundError(f"ImageFolder: {head} holds no folder {self.inner!r}")
        self._files = sorted(n for n in entries if not n.endswith("/"))
        self.dirs = sorted({n.split("/", 1)[0] for n in entries if "/" in n})

    def files(self, d: str) -> list[str]:
        """Files under first-level folder ``d``, in torchvision's order (folders sorted, then
        the file names in each)."""
        if self.zip is None:
            return [os.path.relpath(os.path.join(top, f), self.root).replace(os.sep, "/")
                    for top, _, names in sorted(os.walk(self.root / d, followlinks=True)) for f in sorted(names)]
        return sorted((n for n in self._files if n.startswith(d + "/")), key=lambda n: tuple(n.rpartition("/")[::2]))

    def show(self, name: str) -> str:
        return str(self.zip / self.inner / name) if self.zip is not None else str(self.root / name)

    def key(self, names: list[str]) -> str:
        """A digest naming the decoded array: the source's path, size and mtime (each file's for
        a folder) and the list of files."""
        if self.zip is not None:
            st = self.zip.stat()
            stats = [str(self.zip.resolve()), self.inner, st.st_size, st.st_mtime_ns]
        else:
            stats = [str(self.root.resolve())] + [(s.st_size, s.st_mtime_ns) for s in
                                                   (os.stat(self.root / n) for n in names)]
        blob = json.dumps([_CACHE_VERSION, stats, names]).encode()
        return hashlib.sha256(blob).hexdigest()[:32]

    def read_all(self, names: list[str]) -> list[bytes]:
        if self.zip is None:
            return [(self.root / n).read_bytes() for n in names]
        prefix = self.inner + "/" if self.inner else ""
        with zipfile.ZipFile(self.zip) as z:
            return [z.read(prefix + n) for n in names]


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode one picture file's bytes with Pillow into uint8 (H, W, 3) RGB.

    Grey, palette, CMYK and alpha images are converted to RGB as torchvision's default loader
    does (alpha dropped). Raises ImageDataError naming ``name`` for a file that is not a
    readable image (including a truncated one) or whose mode is not 8-bit ('I;16', 'F', ...).
    """
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading pictures needs Pillow: pip install 'ember[images]'") from None
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as e:       # Pillow raises UnidentifiedImageError, OSError, SyntaxError, ...
        raise ImageDataError(f"{name}: not a readable image ({type(e).__name__}: {e})") from None
    if im.mode not in _8BIT_MODES:
        raise ImageDataError(f"{name}: image mode {im.mode!r} is not an 8-bit grey or colour mode; "
                             f"convert the file to 8-bit RGB or grey first")
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


def _decode_all(blobs: list[bytes], shown: list[str]) -> np.ndarray:
    """Decode every blob (threads: Pillow releases the GIL while decoding) into one uint8
    (N, H, W, 3) array; all pictures must share the first one's size."""
    from tqdm import tqdm
    n = len(blobs)
    first = decode_image(blobs[0], shown[0])
    out = np.empty((n,) + first.shape, np.uint8)

    def work(i):
        img = first if i == 0 else decode_image(blobs[i], shown[i])
        if img.shape != first.shape:
            raise ImageDataError(f"{shown[i]} is {img.shape[1]}x{img.shape[0]} but {shown[0]} is "
                                 f"{first.shape[1]}x{first.shape[0]}: ImageFolder stores all pictures in one "
                                 f"(N, H, W, 3) array, so they must share one size (resize them first)")
        out[i] = img

    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool, \
            tqdm(total=n, desc="decoding images", unit="img", leave=False, disable=None if n > 2000 else True) as bar:
        for start in range(0, n, 1024):
            list(pool.map(work, range(start, min(n, start + 1024))))   # re-raises the first error in order
            bar.update(min(n, start + 1024) - start)
    return out


def _load_cached(path: Path, n: int) -> np.ndarray | None:
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return a if a.dtype == np.uint8 and a.ndim == 4 and a.shape[0] == n and a.shape[3] == 3 else None


def _save_cached(path: Path, a: np.ndarray) -> None:
    """Write atomically (temp file, then rename); quietly skipped where the folder is not writable."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.save(f, a, allow_pickle=False)
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


class ArrayImageDataset(Dataset):
    """Pictures held as one uint8 array: the shared item access of ``ImageFolder`` and ``CIFAR10``.

    Attributes: data: uint8 (N, H, W, 3), RGB, HWC as torchvision's ``CIFAR10.data``;
    targets: int64 (N,) class indices (torchvision keeps a list of ints); classes: the class
    names; class_to_idx: {name: index}; transform, target_transform.

    ``ds[i]`` is ``(image, target)``: image uint8 (H, W, 3) (the analogue of torchvision's PIL
    image), or ``transform(image)``; target an int, or ``target_transform(target)``.
    ``ds.__getitems__(indices)`` gives the whole batch at once: uint8 (B, H, W, 3) (or
    ``transform`` of it, applied once to the batch: ember's transforms are batched, e.g.
    ``Compose([ToTensor(), Normalize(mean, std)])`` gives float32 (B, 3, H, W)) and int64 (B,).
    Without a transform the DataLoader turns the uint8 batch into an int64 tensor, so compose
    ``ToTensor`` as with torchvision.
    """

    data: np.ndarray
    targets: np.ndarray
    classes: list
    transform = target_transform = None

    @property
    def class_to_idx(self) -> dict:
        return {c: i for i, c in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        image, target = self.data[index], int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __getitems__(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        images, targets = self.data[indices], self.targets[indices]
        if self.transform is not None:
            images = self.transform(images)
        if self.target_transform is not None:
            targets = self.target_transform(targets)
        return images, targets


class ImageFolder(ArrayImageDataset):
    """A folder of class folders of pictures, as ``torchvision.datasets.ImageFolder``.

    Args:
        root: a folder of class folders; a ``.zip`` of one; or a folder inside a zip, written as
            a path through it (``.../cifar10-jpeg.zip/train``).
        transform: callable on the uint8 image(s), see ``ArrayImageDataset``.
        target_transform: callable on the class index(es).
        is_valid_file: callable on a file's path (for a zip: ``zip path/inner path``) saying
            whether to read it; default: its extension is in ``IMG_EXTENSIONS`` (any case).
            Other files are skipped, as torchvision does.
        allow_empty: if True, a class folder with no valid file is kept (with no samples)
            instead of raising.
        cache: where to keep the decoded array between processes: True (the default) for
            ``~/.cache/ember/images``, a folder, or False for none. The file is named by a
            digest of the source's path, size and modification time (each picture's for a
            folder) and of the file list, written atomically, and skipped quietly when the
            folder is not writable; a changed source gets a new file (old ones are not removed).

    Attributes (torchvision's): classes: sorted class-folder names; class_to_idx;
        samples (alias imgs): list of (path, class index) in reading order; targets: int64
        (N,); data: uint8 (N, H, W, 3), every picture converted to RGB; root.

    Raises:
        FileNotFoundError: ``root`` does not exist or (inside a zip) is not there; no class
            folder; a class folder with no valid file ("Found no valid file for the classes
            ..."), unless ``allow_empty``; no picture at all.
        ImageDataError: ``root`` is a file but not a zip; a file that is not a readable image
            or not 8-bit (names the file); pictures of different sizes (names both).
        ImportError: Pillow is not installed.

    Everything is held in memory (N x H x W x 3 bytes: 154 MB for CIFAR-10's 50,000 training
    pictures), which suits CIFAR-sized sets, not folders of large photos; torchvision's per-item
    ``loader`` argument (decode on every access) is not offered. Decoding runs in threads over
    one read of the files. On this project's 2-core machine,
    loaded by other jobs, the 50,000 32x32 JPEGs of the shared CIFAR-10 copy (train/) took
    about 11 s to decode (12 s CPU) and a second construction, from the disk cache, 1.6 s.
    """

    def __init__(self, root, transform=None, target_transform=None, is_valid_file=None,
                 allow_empty: bool = False, *, cache=True):
        self.root, self.transform, self.target_transform = root, transform, target_transform
        source = _Source(root)
        if not source.dirs:
            raise FileNotFoundError(f"Couldn't find any class folder in {source.show('')}.")
        valid = is_valid_file or (lambda p: p.lower().endswith(IMG_EXTENSIONS))
        names, targets, empty = [], [], []
        for idx, d in enumerate(source.dirs):
            chosen = [n for n in source.files(d) if valid(source.show(n))]
            if not chosen:
                empty.append(d)
            names += chosen
            targets += [idx] * len(chosen)
        if empty and not allow_empty:
            msg = f"Found no valid file for the classes {', '.join(empty)} in {source.show('')}. "
            msg += ("Supported extensions are: " + ", ".join(IMG_EXTENSIONS)) if is_valid_file is None else \
                "is_valid_file accepted none of their files"
            raise FileNotFoundError(msg)
        if not names:
            raise FileNotFoundError(f"ImageFolder: no pictures in {source.show('')}")
        self.classes = list(source.dirs)
        self.samples = [(source.show(n), t) for n, t in zip(names, targets)]
        self.imgs = self.samples
        self.targets = np.asarray(targets, dtype=np.int64)
        folder = default_cache_dir() if cache is True else (Path(cache).expanduser() if cache else None)
        path = folder / f"{source.key(names)}.npy" if folder is not None else None
        data = _load_cached(path, len(names)) if path is not None else None
        if data is None:
            data = _decode_all(source.read_all(names), [s for s, _ in self.samples])
            if path is not None:
                _save_cached(path, data)
        self.data = data

    def __repr__(self) -> str:
        h, w = self.data.shape[1:3]
        return f"ImageFolder(root={str(self.root)!r}, samples={len(self)}, classes={len(self.classes)}, size={h}x{w})"


__all__ = ["ArrayImageDataset", "IMG_EXTENSIONS", "ImageDataError", "ImageFolder", "decode_image", "default_cache_dir"]
