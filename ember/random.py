"""ember's one source of randomness.

Every random draw in ember (parameter initialisation, DataLoader shuffling, dropout,
augmentation, data splits) comes from one NumPy ``Generator`` held here, never from the
global ``np.random`` state, so ``ember.manual_seed(s)`` makes a whole run reproducible.
"""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed ember's global generator, as ``torch.manual_seed`` does.

    Args:
        seed: a non-negative int.
    Returns:
        The reseeded ``np.random.Generator`` (PCG64).
    Raises:
        ValueError: if ``seed`` is negative or not an int.
    """
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed expects a non-negative int, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator() -> np.random.Generator:
    """Return the generator every ember random draw uses (reseeded by ``manual_seed``)."""
    return _generator


def get_rng_state() -> dict:
    """Return the generator's state as a JSON-serialisable dict (for checkpoints)."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by ``get_rng_state``."""
    _generator.bit_generator.state = state
