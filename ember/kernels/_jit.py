"""numba, if it can be imported, with its on-disk cache in a writable place; else nothing.

``AVAILABLE`` says whether the compiled kernels can run. Without numba (or with a numba that
fails to import, e.g. against a newer NumPy) ``njit`` returns the Python function unchanged and
``prange`` is ``range``, so the kernel modules still import; the Functions then use the NumPy path.

Compiled code is cached on disk (``cache=True``): next to the source when the package folder is
writable (numba's default, ``__pycache__``), else in ``$XDG_CACHE_HOME/ember/numba`` (usually
``~/.cache/ember/numba``). When neither is writable numba warns once and compiles in memory; that
warning is silenced here, since the kernels still work (the first call of each is just slower).
"""
import os
import warnings

_HERE = os.path.dirname(os.path.abspath(__file__))


def _cache_dir():
    """A user cache folder for numba when the package folder is not writable (None: keep numba's)."""
    if os.environ.get("NUMBA_CACHE_DIR") or os.access(_HERE, os.W_OK):
        return None
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(root, "ember", "numba")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


try:
    _dir = _cache_dir()
    if _dir is not None:
        os.environ["NUMBA_CACHE_DIR"] = _dir
    import numba
    from numba import prange
    if _dir is not None and numba.config.CACHE_DIR != _dir:   # numba was imported before us
        numba.config.CACHE_DIR = _dir
    warnings.filterwarnings("ignore", category=numba.NumbaWarning, message=".*cach")
    AVAILABLE = True
except Exception:  # not installed, or broken against this NumPy: the NumPy path is used
    numba, prange, AVAILABLE = None, range, False


def njit(*args, **kwargs):
    """``numba.njit`` when numba is there, else a decorator that returns the function itself."""
    if AVAILABLE:
        return numba.njit(*args, **kwargs)
    if args and callable(args[0]):
        return args[0]
    return lambda f: f
