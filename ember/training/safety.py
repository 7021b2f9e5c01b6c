"""Guards of an ``ember train`` run that fail early and clearly instead of late and obscurely.

    prepare_out          the run folder exists, is a folder and is writable (a probe file is
                         created and removed) BEFORE any data is loaded or any step trained;
                         hidden temporaries left by a killed save are removed
    check_split_sizes    no empty training, validation or test split (no ZeroDivisionError
                         after a whole epoch)
    sigterm_as_interrupt SIGTERM ends training as Ctrl-C does: the save in progress is
                         abandoned cleanly (atomic writes), the last checkpoint stays, exit 143;
                         a SIGTERM or Ctrl-C that lands in numba's compiler, or whose exception
                         was swallowed, stops the next step
    check_out_file       an output picture path that is not a folder and not under a file
    os_error_message     an OSError as one line naming the path
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
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
    so that ``kill`` stops training as Ctrl-C does; SIGINT (Ctrl-C) still raises KeyboardInterrupt.

    Both handlers record the signal, and raise only where that is safe: a signal that lands
    while the main thread runs numba's or llvmlite's Python code (compiling or loading a kernel,
    or an llvmlite object's ``__del__``) is not raised there, and neither is one whose exception
    Python swallows (in a ``__del__`` or weakref callback); the training loop raises it at its
    next step or before it saves (``check_terminated``). Raised inside llvmlite's lock
    ``__enter__``, the exception left that lock held: a kernel thread then waited for it forever,
    and so did interpreter exit (``ember train`` hung after printing "terminated by SIGTERM";
    seen in CI and reproduced here, 1 run in 7). A SIGINT that was ignored (SIG_IGN: a job
    started without job control) stays ignored. Elsewhere than the main thread: does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        global _pending
        make = (lambda: Terminated("terminated by SIGTERM")) if signum == signal.SIGTERM else KeyboardInterrupt
        _pending = make()
        if not _in_compiler(frame):
            raise make()
    global _pending
    _pending = None
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, handler)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        _pending = None


def _in_compiler(frame) -> bool:
    """Whether ``frame`` or a frame that called it runs numba's or llvmlite's Python code."""
    roots = tuple(os.path.dirname(m.__file__) + os.sep for m in map(sys.modules.get, ("numba", "llvmlite"))
                  if m is not None and getattr(m, "__file__", None))
    while roots and frame is not None:
        if frame.f_code.co_filename.startswith(roots):
            return True
        frame = frame.f_back
    return False


# Set by the handlers above: the exception of a signal that was not raised, or whose exception
# may have been swallowed (a weakref callback or __del__, e.g. inside an import or numba's
# compile: seen in CI for SIGTERM and for Ctrl-C). The training loop checks it once per step,
# after an epoch's last step and before it saves (``check_terminated``), and stops there.
_pending: KeyboardInterrupt | None = None


def check_terminated() -> None:
    """Raise the ``Terminated`` or ``KeyboardInterrupt`` of a SIGTERM or SIGINT that arrived inside
    ``sigterm_as_interrupt`` and was not raised, or whose exception was swallowed (see above);
    otherwise nothing."""
    global _pending
    if _pending is not None:
        e, _pending = _pending, None
        raise e
