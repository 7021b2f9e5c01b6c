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
from collections import OrderedDict

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
    return _parse(raw, path, verify)[0]


def _parse(raw: bytes, path: str, verify: bool = True) -> tuple[dict, dict]:
    """(name -> ndarray, header metadata) of safetensors bytes, with load_state_dict's checks."""
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
    return state, meta


# ---- ember.save / ember.load: torch.save's API without pickle ---------------------------------------
# The object tree goes into the header metadata as JSON (key "ember_object"); each tensor or array in
# it is a safetensors entry "t0", "t1", ... referred to by a tagged JSON node. Tags keep every Python
# type that JSON would blur: tuples, non-string dict keys, OrderedDict, NumPy scalars.
_OBJECT_KEY = "ember_object"


def _encode(obj, arrays: dict, memo: dict, where: str):
    """The JSON node for ``obj``; tensors/arrays are added to ``arrays`` (one entry per object)."""
    from .tensor import Tensor
    if obj is None or isinstance(obj, (bool, str)) or type(obj) in (int, float):
        return obj
    if isinstance(obj, (Tensor, np.ndarray)):
        if id(obj) not in memo:                            # the same object saved twice is stored once
            memo[id(obj)] = (f"t{len(arrays)}", obj)
            arrays[memo[id(obj)][0]] = obj.numpy() if isinstance(obj, Tensor) else obj
        key = memo[id(obj)][0]
        if isinstance(obj, np.ndarray):
            return {"__ndarray__": key}
        return {"__tensor__": key, "requires_grad": bool(obj.requires_grad)}
    if isinstance(obj, np.generic):
        arrays[f"t{len(arrays)}"] = np.asarray(obj)
        return {"__numpy_scalar__": f"t{len(arrays) - 1}"}
    if isinstance(obj, (int, float)):                       # bool/int/float subclasses: plain values
        return int(obj) if isinstance(obj, int) else float(obj)
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays, memo, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, arrays, memo, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        tag = "__odict__" if isinstance(obj, OrderedDict) else "__dict__"
        return {tag: [[_encode(k, arrays, memo, f"{where} key"), _encode(v, arrays, memo, f"{where}[{k!r}]")]
                      for k, v in obj.items()]}
    from .nn.module import Module
    if isinstance(obj, Module):
        raise TypeError(f"ember.save: {where or 'the object'} is a whole Module ({type(obj).__name__}); ember saves "
                        "no pickled code: save its state_dict() instead, ember.save(model.state_dict(), f), "
                        "and load it with model.load_state_dict(ember.load(f))")
    raise TypeError(f"ember.save: cannot save {where or 'the object'} of type {type(obj).__name__}: only tensors, "
                    "NumPy arrays, numbers, strings, None and dicts/lists/tuples of them are saved")


def _decode(node, arrays: dict, made: dict):
    from .tensor import Tensor
    if isinstance(node, list):
        return [_decode(v, arrays, made) for v in node]
    if not isinstance(node, dict):
        return node
    (tag, value), = list(node.items())[:1]
    if tag == "__tensor__":
        if value not in made:
            made[value] = Tensor(arrays[value], requires_grad=node.get("requires_grad", False))
        return made[value]
    if tag == "__ndarray__":
        return made.setdefault(value, arrays[value])
    if tag == "__numpy_scalar__":
        return arrays[value][()]
    if tag == "__tuple__":
        return tuple(_decode(v, arrays, made) for v in value)
    pairs = ((_decode(k, arrays, made), _decode(v, arrays, made)) for k, v in value)
    return OrderedDict(pairs) if tag == "__odict__" else dict(pairs)


def save(obj, f) -> None:
    """Save ``obj`` to ``f`` (a path or a binary file object) as ONE safetensors file, without
    pickle (torch.save's ``(obj, f)`` signature): tensors and NumPy arrays become safetensors
    entries, everything else (nested dicts, lists, tuples, numbers, strings, None) JSON in the
    header metadata. Model and optimizer state_dicts and checkpoint dicts such as
    ``{"epoch": 3, "model": model.state_dict(), "optimizer": opt.state_dict()}`` round-trip
    exactly through ``ember.load`` (types, dtypes, shapes, key order, shared tensors). A path is
    written atomically.

    Raises:
        TypeError: for a whole Module (pointing to ``state_dict()``) or any other object
            (a lambda, a class instance), naming where in ``obj`` it is.
    """
    from . import __version__
    arrays: dict = {}
    tree = json.dumps(_encode(obj, arrays, {}, ""), allow_nan=True)
    arrays = {k: np.ascontiguousarray(v).reshape(np.shape(v)) for k, v in arrays.items()}
    meta = {_OBJECT_KEY: tree, "ember_format": str(FORMAT_VERSION), "ember_version": __version__,
            "tensors_sha256": tensors_sha256(arrays)}
    data = _st_save(arrays, metadata=meta)
    if hasattr(f, "write"):
        f.write(data)
    else:
        atomic_write_bytes(f, data)


def load(f, map_location=None, weights_only=True, mmap=None, **kwargs):
    """Load what ``ember.save`` wrote (torch.load's signature). Nothing is unpickled, so
    ``weights_only`` (True or False) changes nothing; ``map_location`` may be None, "cpu", a
    device, a dict or a callable (ember runs on the CPU: everything loads there). A safetensors
    file written by something else loads as a dict name -> Tensor.

    Raises:
        CheckpointError: a missing, truncated, corrupt or altered file (naming it).
        RuntimeError: a ``map_location`` naming a device other than the CPU.
        TypeError: unknown keyword arguments (pickle_module, ...).
    """
    from ._api._common import check_device
    from .tensor import Tensor
    if kwargs:
        raise TypeError(f"ember.load() got unexpected keyword arguments {sorted(kwargs)} (no pickle is used)")
    if isinstance(map_location, str) or hasattr(map_location, "type"):
        check_device(map_location)
    if hasattr(f, "read"):
        raw, name = f.read(), getattr(f, "name", "<file object>")
    else:
        name = os.fspath(f)
        if not os.path.isfile(name):
            raise CheckpointError(f"{name}: no such file")
        with open(name, "rb") as fh:
            raw = fh.read()
    arrays, meta = _parse(raw, str(name))
    if _OBJECT_KEY not in meta:
        return {k: Tensor(v) for k, v in arrays.items()}
    return _decode(json.loads(meta[_OBJECT_KEY]), arrays, {})


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
