"""ember's one source of randomness.

Every random draw in ember (parameter initialisation, DataLoader shuffling, dropout,
augmentation, data splits) comes from one NumPy ``Generator`` held here, never from the
global ``np.random`` state, so ``ember.manual_seed(s)`` makes a whole run reproducible.
"""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)
_initial_seed = 0


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed ember's global generator, as ``torch.manual_seed`` does.

    Args:
        seed: a non-negative int.
    Returns:
        The reseeded ``np.random.Generator`` (PCG64).
    Raises:
        ValueError: if ``seed`` is negative or not an int.
    """
    global _generator, _initial_seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed expects a non-negative int, got {seed!r}")
    _generator, _initial_seed = np.random.default_rng(int(seed)), int(seed)
    return _generator


def seed() -> int:
    """Reseed ember's generator from the operating system's entropy and return the seed (torch.seed)."""
    s = int(np.random.SeedSequence().entropy % (1 << 63))
    manual_seed(s)
    return s


def initial_seed() -> int:
    """The seed of the latest manual_seed/seed (0 at start; torch.initial_seed)."""
    return _initial_seed


def default_generator() -> np.random.Generator:
    """Return the generator every ember random draw uses (reseeded by ``manual_seed``)."""
    return _generator


def get_rng_state() -> dict:
    """Return the generator's state as a JSON-serialisable dict (for checkpoints)."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by ``get_rng_state`` (or by ``ember.get_rng_state``: its uint8 tensor)."""
    if not isinstance(state, dict):                 # torch's form: a uint8 tensor of the state
        import json
        state = json.loads(np.asarray(getattr(state, "_data", state), np.uint8).tobytes().decode())
    _generator.bit_generator.state = state



class Generator(np.random.Generator):
    """torch.Generator: a random stream of its own for ``generator=`` arguments (DataLoader
    shuffling, ``random_split``, ``randperm``, the samplers). It *is* a NumPy ``Generator``
    (PCG64), so ember's functions take it as they take any NumPy generator; the numbers differ
    from PyTorch's for the same seed (docs/pytorch-compat.md, "Random streams").
    Args: device="cpu" (accepted, as torch's). Methods: manual_seed(seed) -> self, seed(),
    initial_seed(), get_state()/set_state(state) (a dict)."""

    def __init__(self, device="cpu"):
        super().__init__(np.random.PCG64(0))
        self._initial_seed = 0

    def manual_seed(self, seed: int) -> "Generator":
        """Reseed (as torch.Generator.manual_seed) and return self.
        Raises: ValueError for a negative or non-int seed."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"manual_seed expects a non-negative int, got {seed!r}")
        self.bit_generator.state = np.random.PCG64(int(seed)).state
        self._initial_seed = int(seed)
        return self

    def seed(self) -> int:
        """Reseed from the operating system's entropy; returns the new seed."""
        return self.manual_seed(int(np.random.SeedSequence().entropy % (1 << 63)))._initial_seed

    def initial_seed(self) -> int:
        return self._initial_seed

    def get_state(self) -> dict:
        return self.bit_generator.state

    def set_state(self, state: dict) -> "Generator":
        self.bit_generator.state = state
        return self
