"""torch.backends.mps for a CPU-only library."""


def is_available() -> bool:
    """False: ember runs on the CPU only."""
    return False


def is_built() -> bool:
    """False: ember has no Metal backend."""
    return False
