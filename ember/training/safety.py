"""Guards of an ``ember train`` run that fail early and clearly instead of late and obscurely.

    prepare_out          the run folder exists, is a folder and is writable (a probe file is
                         created and removed) BEFORE any data is loaded or any step trained;
                         hidden temporaries left by a killed save are removed
    check_split_sizes    no empty training, validation or test split (no ZeroDivisionError
                         after a whole epoch)
    sigterm_as_interrupt SIGTERM ends training as Ctrl-C does: the save in progress is
                         abandoned cleanly (atomic writes), the last checkpoint stays, exit 143
    check_out_file       an output picture path that is not a folder and not under a file
    os_error_message     an OSError as one line naming the path
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import tempfile
import threading


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM inside ``sigterm_as_interrupt``; ``exit_status`` is 143."""

    exit_status = 128 + signal.SIGTERM


def os_error_message(e: OSError) -> str:
    """One line for an OSError: "<path>: <reason>" (the reason alone if no path is known)."""
    reason = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        reason = "no space left on the device"
    return f"{e.filename}: {reason}" if e.filename else reason


def prepare_out(folder: str, flag: str = "--out") -> None:
    """Create the run folder if needed, prove it writable and remove stale temporaries.

    Raises: ValueError naming ``flag`` and the path: a file where the folder should be, a file
        above it, or a folder that cannot be written (read-only, no permission, disk full).
    """
    try:
        os.makedirs(folder, exist_ok=True)
    except FileExistsError:
        raise ValueError(f"{flag} {folder}: is a file, not a folder") from None
    except NotADirectoryError:
        raise ValueError(f"{flag} {folder}: a part of this path is a file, not a folder") from None
    except OSError as e:
        raise ValueError(f"{flag} {folder}: cannot create the folder ({os_error_message(e)})") from None
    if not os.path.isdir(folder):
        raise ValueError(f"{flag} {folder}: is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".ember-write-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"{flag} {folder}: the folder is not writable ({e.strerror or e})") from None
    for name in os.listdir(folder):  # ".model.safetensors.<random>.tmp": a save that was killed
        if name.startswith(".") and name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))


def check_out_file(path: str, flag: str = "--out") -> None:
    """Refuse an output file path that is a folder or lies under a file, naming ``flag`` and the path.

    Raises: ValueError ("--out X: is a folder; give a file name such as X/picture.png", ...).
    """
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path}: is a folder; give a file name such as {os.path.join(path, 'picture.png')}")
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if os.path.isfile(parent):
        raise ValueError(f"{flag} {path}: {parent} is a file, not a folder")


def check_split_sizes(n_train: int, n_test: int, n_val: int | None, val_split: float) -> None:
    """Refuse an empty split before training (``n_val`` None: no validation split).

    Raises: ValueError naming the split, its size and the flag to change.
    """
    if n_val is not None and n_train == 0:
        raise ValueError(f"--val-split {val_split} leaves no training images (all {n_val} are held out for "
                         f"validation); use a smaller fraction")
    if n_val == 0:
        raise ValueError(f"--val-split {val_split} holds out no image of the {n_train} training images; "
                         f"use at least {1 / max(n_train, 1):.2g}")
    if n_train == 0:
        raise ValueError("the training set is empty (0 images): check --data-dir and --dataset")
    if n_test == 0:
        raise ValueError("the test set is empty (0 images): check --data-dir and --dataset")


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises ``Terminated`` (a KeyboardInterrupt) in the main thread,
    so that ``kill`` stops training as Ctrl-C does. Elsewhere than the main thread: does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        global _sigterm_pending
        _sigterm_pending = True
        raise Terminated("terminated by SIGTERM")
    global _sigterm_pending
    _sigterm_pending = False
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# Set by the SIGTERM handler. Its exception can be swallowed when the signal lands where Python
# ignores exceptions (a weakref callback or __del__, e.g. inside an import: seen in CI), so the
# training loop also checks this once per step (``check_terminated``) and stops there.
_sigterm_pending = False


def check_terminated() -> None:
    """Raise ``Terminated`` if SIGTERM arrived and its exception was swallowed (see above)."""
    global _sigterm_pending
    if _sigterm_pending:
        _sigterm_pending = False
        raise Terminated("terminated by SIGTERM")
