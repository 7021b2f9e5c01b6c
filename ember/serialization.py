"""Saving and loading without ever losing work: every file is written to a temp file in the
same folder, fsynced, then atomically renamed over the target (``os.replace``).

Weights are stored with safetensors (no pickle: loading a checkpoint never runs code). Each
file ember writes records in its header metadata a format version (``ember_format``), ember's
version (``ember_version``) and a SHA-256 of its tensors (``tensors_sha256``: names, dtypes,
shapes and bytes, in name order); ``load_state_dict`` recomputes it and refuses a truncated
or altered file with a ``CheckpointError`` naming the file and what is wrong.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load as _st_load, save as _st_save

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint folder or file that is missing, truncated or not ember's."""


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new one, never half."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    except OSError as e:  # read-only, no permission: name the file, not the temp name tried
        if not e.errno:
            raise
        raise OSError(e.errno, e.strerror, path) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # the umask's mode, as open() would give (mkstemp: always 0600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno and e.filename in (None, tmp):  # disk full: name the file
            raise OSError(e.errno, e.strerror, path) from None
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def json_safe(obj):
    """``obj`` with every NaN/inf float replaced by None, so that it is strict JSON (null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path, obj) -> None:
    """Write ``obj`` as indented strict JSON, atomically; NaN/inf floats become null (``json_safe``)."""
    atomic_write_bytes(path, (json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n").encode())


def tensors_sha256(state: dict) -> str:
    """SHA-256 (hex) of a name -> ndarray dict: for each name in sorted order, the name, dtype,
    shape and the little-endian C-order bytes. Equal for equal contents, whatever the layout."""
    h = hashlib.sha256()
    for k in sorted(state):
        a = np.asarray(state[k])
        a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"), copy=False))
        h.update(f"{k}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_state_dict(state: dict, path, metadata: dict | None = None) -> None:
    """Save name -> ndarray as a .safetensors file, atomically, with integrity metadata.

    Args: state (dict str -> np.ndarray), path, metadata (str -> str, stored in the header next
        to ``ember_format``, ``ember_version`` and ``tensors_sha256``).
    """
    from . import __version__
    # reshape: np.ascontiguousarray turns a 0-d array (BatchNorm's num_batches_tracked) into shape (1,)
    arrays = {k: np.ascontiguousarray(v).reshape(np.shape(v)) for k, v in state.items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    meta.update(ember_format=str(FORMAT_VERSION), ember_version=__version__,
                tensors_sha256=tensors_sha256(arrays))
    atomic_write_bytes(path, _st_save(arrays, metadata=meta))


def read_metadata(path) -> dict:
    """Return the header metadata (str -> str) of a .safetensors file; CheckpointError if unreadable."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(path, framework="numpy") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def load_state_dict(path, verify: bool = True) -> dict:
    """Load a .safetensors file into a dict name -> ndarray, checking its integrity.

    Files written by ember carry a SHA-256 of their tensors, recomputed here; files from
    elsewhere (no ``tensors_sha256``, e.g. exported from PyTorch) load without that check.
    Nothing is ever unpickled.
    Args: path; verify: recompute and compare the SHA-256 (default True).
    Raises: CheckpointError naming the file if it is missing, truncated, corrupt, altered
        (checksum mismatch) or written by a newer checkpoint format.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        raw = f.read()
    size = len(raw)
    if size < 8:
        raise CheckpointError(f"{path}: truncated checkpoint ({size} bytes; not a safetensors file)")
    n = int.from_bytes(raw[:8], "little")
    if n > size - 8:
        raise CheckpointError(f"{path}: truncated or not a safetensors file (header of {n} bytes "
                              f"announced, file has {size} bytes)")
    try:
        header = json.loads(raw[8:8 + n])
        meta = header.get("__metadata__") or {}
        end = max([v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"], default=0)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors header ({e})") from None
    if 8 + n + end != size:
        raise CheckpointError(f"{path}: truncated checkpoint (tensors need {8 + n + end} bytes, "
                              f"file has {size}); it was not written completely")
    try:
        state = _st_load(raw)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    fmt = meta.get("ember_format")
    if fmt is not None and (not fmt.isdigit() or int(fmt) > FORMAT_VERSION):
        raise CheckpointError(f"{path}: checkpoint format {fmt} (ember {meta.get('ember_version', '?')}) "
                              f"is newer than this ember reads (format {FORMAT_VERSION}); upgrade ember")
    want = meta.get("tensors_sha256")
    if verify and want is not None:
        got = tensors_sha256(state)
        if got != want:
            raise CheckpointError(f"{path}: checksum mismatch: the tensors' SHA-256 is {got[:16]}..., the "
                                  f"file records {want[:16]}...; the file was altered or corrupted")
    return state


def read_json(path) -> dict:
    """Read a JSON file; CheckpointError naming the file if missing or malformed."""
    path = os.fspath(path)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: malformed JSON ({e})") from None
    except (OSError, UnicodeDecodeError) as e:  # a folder, unreadable, binary
        raise CheckpointError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
