"""torch.backends.cudnn for a CPU-only library: settable flags that change nothing."""
enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available() -> bool:
    """False: ember runs on the CPU only."""
    return False


def version():
    """None: no cuDNN."""
    return None
