"""``ember.amp``: torch.amp's names for a library without mixed precision.

``autocast`` is accepted as a context manager or decorator and runs every op in its tensors' own
dtype (with ``enabled=True`` it warns once that nothing is cast). ``GradScaler`` is torch's
dynamic loss scaling, exactly (scale, unscale_, step skipped on inf/NaN gradients, update's
backoff and growth, state_dict), so a script written for it trains the same here; with float32
gradients on a CPU it is not needed, and ``enabled=False`` (the usual ``enabled=use_amp``) makes
every method a pass-through, as torch's. Source: torch.amp.autocast / torch.amp.GradScaler.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np

_warned = False


class autocast:
    """torch.autocast(device_type, dtype=None, enabled=True, cache_enabled=None): a no-op here;
    with enabled=True it warns once that ops keep their tensors' dtypes."""

    def __init__(self, device_type: str = "cpu", dtype=None, enabled: bool = True, cache_enabled=None):
        global _warned
        self.device_type, self.fast_dtype, self.enabled = device_type, dtype, enabled
        if enabled and not _warned:
            warnings.warn("ember has no mixed precision: autocast runs every op in its tensors' own dtype",
                          UserWarning, stacklevel=2)
            _warned = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)
        return wrapper


class GradScaler:
    """Dynamic loss scaling, as torch.amp.GradScaler: ``scale(loss)`` multiplies by the scale S;
    ``unscale_(opt)`` divides the gradients by S once per step and notes any inf/NaN; ``step(opt)``
    unscales if needed and skips the step when one was found; ``update()`` multiplies S by
    backoff_factor after a skipped step, by growth_factor after growth_interval clean ones.
    Args: device="cpu", init_scale=2**16, growth_factor=2.0, backoff_factor=0.5,
    growth_interval=2000, enabled=True.
    Raises: RuntimeError for unscale_ twice before update() (torch's message)."""

    def __init__(self, device: str = "cpu", init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True):
        self.device, self._enabled = device, enabled
        self._scale, self._growth_factor, self._backoff_factor = float(init_scale), growth_factor, backoff_factor
        self._growth_interval, self._growth_tracker = growth_interval, 0
        self._per_optimizer = {}

    def is_enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> float:
        return self._scale if self._enabled else 1.0

    def scale(self, outputs):
        """outputs × S (a tensor, or each of a list/tuple of them); outputs as given when disabled."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        return outputs * self._scale

    def unscale_(self, optimizer) -> None:
        """Divide optimizer's gradients by S in place (once per step) and note any inf/NaN."""
        if not self._enabled:
            return
        state = self._per_optimizer.setdefault(id(optimizer), {"unscaled": False, "found_inf": False})
        if state["unscaled"]:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        inv = np.float32(1.0 / self._scale)
        found = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    g = p.grad._data
                    g *= g.dtype.type(inv)
                    found = found or not np.isfinite(g).all()
        state.update(unscaled=True, found_inf=found)

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step() unless an inf/NaN gradient was found (then nothing; None returned)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        state = self._per_optimizer.get(id(optimizer))
        if state is None or not state["unscaled"]:
            self.unscale_(optimizer)
            state = self._per_optimizer[id(optimizer)]
        return None if state["found_inf"] else optimizer.step(*args, **kwargs)

    def update(self, new_scale=None) -> None:
        """Back off after a skipped step, grow after growth_interval clean ones (or set new_scale)."""
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = float(new_scale)
        elif any(s["found_inf"] for s in self._per_optimizer.values()):
            self._scale *= self._backoff_factor
            self._growth_tracker = 0
        else:
            self._growth_tracker += 1
            if self._growth_tracker == self._growth_interval:
                self._scale *= self._growth_factor
                self._growth_tracker = 0
        self._per_optimizer = {}

    def state_dict(self) -> dict:
        if not self._enabled:
            return {}
        return {"scale": self._scale, "growth_factor": self._growth_factor, "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state: dict) -> None:
        if not self._enabled:
            return
        if not state:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        self._scale, self._growth_factor = float(state["scale"]), state["growth_factor"]
        self._backoff_factor, self._growth_interval = state["backoff_factor"], state["growth_interval"]
        self._growth_tracker = state["_growth_tracker"]
