"""Saving and loading without ever losing work: every file is written to a temp file in the
same folder, fsynced, then atomically renamed over the target (``os.replace``).

Weights are stored with safetensors (no pickle: loading a checkpoint never runs code).
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save as _st_save


class CheckpointError(RuntimeError):
    """A checkpoint folder or file that is missing, truncated or not ember's."""


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new one, never half."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def save_state_dict(state: dict, path, metadata: dict | None = None) -> None:
    """Save name -> ndarray as a .safetensors file, atomically.

    Args: state (dict str -> np.ndarray), path, metadata (str -> str, stored in the header).
    """
    arrays = {k: np.ascontiguousarray(v) for k, v in state.items()}
    atomic_write_bytes(path, _st_save(arrays, metadata={k: str(v) for k, v in (metadata or {}).items()}))


def load_state_dict(path) -> dict:
    """Load a .safetensors file into a dict name -> ndarray.

    Raises: CheckpointError naming the file if it is missing, truncated or corrupt.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


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
