"""Reading and writing IDX files, the format MNIST and Fashion-MNIST ship in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values, big-endian, row-major.
Files may be gzip-compressed; that is detected by the gzip magic bytes, not the suffix.
"""
from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

# IDX type code -> big-endian NumPy dtype.
_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {dt.name: code for code, dt in _TYPES.items()}


class IDXError(ValueError):
    """A file is not a valid IDX file; the message names the file and the problem."""


def read_idx(path) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed.

    Args:
        path: str or PathLike of the file.
    Returns:
        A new writable ndarray in native byte order, shape given by the header, dtype
        uint8, int8, int16, int32, float32 or float64 (by the header's type code).
    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        IDXError: corrupt gzip stream, bad magic number, unknown type code, short header,
            truncated data ("file has N" counts the data bytes after the header) or
            extra bytes after the data.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise IDXError(f"{path}: corrupt gzip stream ({e})") from None
    if len(raw) < 4:
        raise IDXError(f"{path}: not an IDX file ({len(raw)} bytes, shorter than the 4-byte magic number)")
    if raw[:2] != b"\0\0":
        raise IDXError(f"{path}: not an IDX file (magic bytes 0x{raw[:4].hex()}, expected 0x0000 then a type code)")
    if raw[2] not in _TYPES:
        known = ", ".join(f"0x{c:02x}" for c in _TYPES)
        raise IDXError(f"{path}: unknown IDX type code 0x{raw[2]:02x} (expected one of {known})")
    dtype, ndim = _TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path}: truncated header: {ndim} dimensions need {header} bytes, file has {len(raw)}")
    dims = [int(d) for d in np.frombuffer(raw, ">u4", ndim, 4)]
    need, have = int(np.prod(dims, dtype=object)) * dtype.itemsize, len(raw) - header
    if have < need:
        shape = "x".join(map(str, dims)) or "scalar"
        raise IDXError(f"{path}: truncated: header says {shape} {dtype.name} = {need} bytes of data, file has {have}")
    if have > need:
        raise IDXError(f"{path}: {have - need} extra bytes after the data")
    return np.frombuffer(raw, dtype, need // dtype.itemsize, header).astype(dtype.newbyteorder("="))\
        .reshape(dims)


def write_idx(path, array) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``.

    Args:
        path: str or PathLike destination.
        array: array-like of dtype uint8, int8, int16, int32, float32 or float64, any shape
            with at most 255 dimensions.
    Raises:
        ValueError: the dtype has no IDX type code.
    """
    a = np.asarray(array)
    if a.dtype.name not in _CODES:
        raise ValueError(f"IDX cannot store dtype {a.dtype}; use one of {', '.join(_CODES)}")
    code = _CODES[a.dtype.name]
    blob = (bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
            + np.ascontiguousarray(a, _TYPES[code]).tobytes())
    with open(path, "wb") as f:
        f.write(gzip.compress(blob) if os.fspath(path).endswith(".gz") else blob)
