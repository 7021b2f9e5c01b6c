"""Helpers shared by the API modules: device checks and dtype defaults."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor


def check_device(device) -> None:
    """Accept ``device=None``, ``"cpu"``, ``"cpu:0"`` or an object whose ``.type`` is "cpu"
    (``ember.device("cpu")``); raise RuntimeError for "cuda"/"mps"/... (ember runs on the CPU
    only) and for a string that is no device at all."""
    if device is None:
        return
    name = str(getattr(device, "type", device))
    kind = name.split(":")[0]
    if kind == "cpu":
        return
    if kind in ("cuda", "mps", "xpu", "meta", "xla", "hip", "mtia", "privateuseone"):
        raise RuntimeError(f"ember runs on the CPU only: device {name!r} is not available (use 'cpu')")
    raise RuntimeError(f"Expected one of cpu, cuda, mps, ... device type at start of device string: {name}")


def as_tensor_arg(x, name: str) -> Tensor:
    """``x`` as a Tensor, or TypeError naming the argument (torch's functions take tensors)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: argument 'input' must be Tensor, not {type(x).__name__}")
    return x


def float_dtype(dtype, default=np.float32) -> np.dtype:
    """``dtype`` as an np.dtype (default float32: ember's default dtype, as torch's)."""
    return np.dtype(default if dtype is None else dtype)


def finish(arr: np.ndarray, requires_grad: bool) -> Tensor:
    """Wrap a freshly made array (never shared with the caller) as a leaf Tensor."""
    return Tensor(np.ascontiguousarray(arr), requires_grad=requires_grad)
