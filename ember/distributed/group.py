"""The default process group and its collectives: PyTorch's ``torch.distributed`` names on MPI.

One process per rank is started by an MPI launcher (``mpiexec -n 2 python train.py``); each
calls ``init_process_group()`` and learns its rank and the world size from MPI. A collective is
called by every rank in the same order and works in place on each rank's tensor:

    all_reduce  x_r <- op(x_0, ..., x_{W-1})      (SUM, AVG, MAX, MIN, PRODUCT)
    broadcast   x_r <- x_src
    all_gather  out_r[i] <- x_i  for every rank i
    barrier     no rank leaves before every rank has arrived

The transport is MPI through mpi4py (a well-kept binding; ember writes only this thin layer).
Without mpi4py, or when the launcher started one process, the group has one rank and every
collective is the identity, so a script written for N ranks runs unchanged in one process.

Faults: every collective (and ``init_process_group`` itself) is started non-blocking
(``Iallreduce``, ``Ibcast``, ``Idup``, ...) and polled against a deadline (``timeout``), so a
rank whose peer died or hangs does not wait forever: it raises ``DistBackendError`` naming the
ranks that are gone (for peers on the same host, read from /proc by the pid each rank sent at
start; for remote peers "not responding"). An uncaught exception on any rank aborts the whole job
(``MPI_Abort``, as ``python -m mpi4py`` does), so the launcher stops the other ranks at once
instead of leaving them in a collective. A rank killed outright is named by the host's sentinel
process (``sentinel.py``), since MPICH's launcher kills the survivors before they can say
anything; ``mpiexec -disable-auto-cleanup`` sends them SIGUSR1 instead, which the next wait
turns into ``DistBackendError``.
"""
from __future__ import annotations

import atexit
import datetime
import enum
import hashlib
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback

import numpy as np

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)  # PyTorch's default for CPU process groups


class DistBackendError(RuntimeError):
    """A collective failed or timed out (a rank died, hangs, or left); PyTorch's name."""


class ReduceOp(enum.Enum):
    """How ``all_reduce`` combines the ranks' tensors (``ember.distributed.ReduceOp.SUM``).

    AVG is SUM divided by the world size (floating-point tensors only), as NCCL's AVG.
    """
    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"


def _array(tensor) -> np.ndarray:
    """The raw ndarray under an ember Tensor (or an ndarray itself): the ONE place that knows
    where a Tensor keeps its storage (``Tensor._data``; ``Tensor.data`` is a Tensor, as in PyTorch)."""
    return tensor if isinstance(tensor, np.ndarray) else tensor._data


def _mpi():
    """Return mpi4py's MPI module, or None when mpi4py is not installed."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI


def _launched_ranks() -> int:
    """The world size an MPI launcher announced in the environment (1 if none did)."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 1


class _Group:
    """The default process group: the communicator, rank, size, timeout and the peers' pids."""

    def __init__(self, comm, rank, size, timeout, backend):
        self.comm, self.rank, self.size = comm, rank, size
        self.timeout, self.backend = timeout, backend
        self.spin = _spin_seconds()   # busy-polling before a waiting rank sleeps (see _wait)
        self.spin_miss, self.waits = 0.0, 0
        self.peers = [(socket.gethostname(), os.getpid())]
        self.broken = False
        self.peer_failed = False      # set by SIGUSR1: mpiexec -disable-auto-cleanup reports a failed rank
        self.sentinel = None          # (socket, address) of this host's sentinel process, see sentinel.py
        self.sentinel_process = None  # the Popen, on the rank that started it
        self.sentinel_link = None     # a stream socket to the sentinel, open while this rank lives

    def tell_sentinel(self, kind: str, text: str | None = None) -> None:
        """Send the host's sentinel ``bye R`` (ending on purpose), ``abort R`` (about to call
        MPI_Abort after reporting an error) or ``note TEXT``; never raises."""
        if self.sentinel is None:
            return
        sock, address = self.sentinel
        try:
            sock.sendto(f"{kind} {self.rank if text is None else text}".encode()[:60000], address)
        except OSError:
            pass

    def abort(self, code: int = 1) -> None:
        """MPI_Abort the job after this rank has said why (the sentinel stays quiet)."""
        self.broken = True
        self.tell_sentinel("abort")
        abort_job(self.comm, code)


_group: _Group | None = None


def say(text: str, out=None) -> None:
    """Write ``text`` and a newline to ``out`` (default stderr) in one ``write``, then flush.

    The ranks share the launcher's stderr. Under ``PYTHONUNBUFFERED`` (write-through: each
    ``write`` is its own system call) ``print`` writes the newline apart from the text, and the
    default excepthook writes an exception's last line in pieces (module, name, ": ", message), so
    two ranks failing at once interleaved mid-line: in one CI run neither rank's message line
    came out whole. A pipe takes one write of at most ``PIPE_BUF`` (4 KiB) bytes whole, so a text
    that long goes in one write; a longer one goes line by line, each line whole.
    """
    out = sys.stderr if out is None else out
    text = text if text.endswith("\n") else text + "\n"
    for piece in ([text] if len(text.encode(errors="replace")) <= 4096 else text.splitlines(keepends=True)):
        out.write(piece)
    out.flush()


def abort_job(comm, code: int = 1, patience: float = 2.0) -> None:
    """``comm.Abort(code)``, once the launcher has read what this rank wrote to stderr.

    Hydra's ``mpiexec`` kills every rank and exits as soon as it handles the abort; a line still
    in the pipe to its proxy is then lost, so the job ends with status 1 and no message at all
    (seen once in CI, on a loaded machine). So wait, up to ``patience`` seconds, until the pipe
    under stderr is empty (``FIONREAD``; a file or terminal has nothing unread and passes at once).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    give_up = time.monotonic() + patience
    try:
        import array
        import fcntl
        import termios
        unread = array.array("i", [0])
        while time.monotonic() < give_up:
            fcntl.ioctl(sys.stderr.fileno(), termios.FIONREAD, unread, True)
            if unread[0] == 0:
                break
            time.sleep(0.005)
    except (OSError, ValueError, AttributeError, ImportError):   # no fd, no ioctl: abort at once
        pass
    comm.Abort(code)


def is_available() -> bool:
    """True: ember's distributed package is always importable (one rank without mpi4py)."""
    return True


def is_mpi_available() -> bool:
    """True when mpi4py can be imported, so ``backend="mpi"`` can run more than one rank."""
    return _mpi() is not None


def is_initialized() -> bool:
    """True between ``init_process_group()`` and ``destroy_process_group()``."""
    return _group is not None


def _seconds(timeout) -> float:
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    s = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)
    if not s > 0:
        raise ValueError(f"init_process_group: timeout must be positive, got {timeout!r}")
    return s


def init_process_group(backend: str | None = None, init_method: str | None = None, timeout=None,
                       world_size: int = -1, rank: int = -1) -> None:
    """Create the default process group (PyTorch's ``torch.distributed.init_process_group``).

    The rank and world size come from the MPI launcher (``mpiexec -n W``); started without a
    launcher, or without mpi4py installed, the group has one rank and collectives are identities.

    Args:
        backend: "mpi" (or None, the same). "gloo" is accepted as a synonym, so CPU scripts
            written for PyTorch run unchanged: ember's only CPU transport is MPI. "nccl" and
            anything else raise ValueError (ember has no GPU).
        init_method: None or "env://" (the launcher already did the rendezvous); others raise.
        timeout: datetime.timedelta or seconds for every collective (default 30 min, PyTorch's);
            a collective not finished by then raises DistBackendError naming the lost ranks.
        world_size, rank: optional; when given they must equal what the launcher says.
    Raises:
        RuntimeError: called twice without destroy_process_group(); or the launcher started
            several ranks but mpi4py is missing (training N unsynchronised copies is never wanted).
        ValueError: unknown backend or init_method, world_size/rank different from the launcher's,
            non-positive timeout.
    """
    global _group
    if _group is not None:
        raise RuntimeError("trying to initialize the default process group twice!")
    name = "mpi" if backend is None else str(backend).lower()
    if name not in ("mpi", "gloo"):
        raise ValueError(f"init_process_group: backend {backend!r} is not supported by ember; use 'mpi' "
                         f"('gloo' is accepted as a synonym; ember has no GPU, so no 'nccl')")
    if init_method not in (None, "env://"):
        raise ValueError(f"init_process_group: init_method {init_method!r} is not supported: start the "
                         f"ranks with an MPI launcher (mpiexec -n N ...), which does the rendezvous")
    seconds = _seconds(timeout)
    _spin_seconds()   # a bad EMBER_DIST_SPIN_MS fails here, on every rank alike
    MPI = _mpi()
    if MPI is None:
        if _launched_ranks() > 1:
            raise RuntimeError(f"init_process_group: the launcher started {_launched_ranks()} ranks but "
                               f"mpi4py is not installed: pip install 'ember[distributed]'")
        comm, r, w = None, 0, 1
    else:
        r, w = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
        if w > 1:   # our own communicator (no clash with the user's MPI calls), made under the timeout
            comm, request = MPI.COMM_WORLD.Idup()
            _wait(_Group(comm, r, w, seconds, name), request, "init_process_group")
        else:
            comm = MPI.COMM_WORLD.Dup()
        comm.Set_errhandler(MPI.ERRORS_RETURN)
    for given, actual, what in ((world_size, w, "world_size"), (rank, r, "rank")):
        if given not in (-1, None) and given != actual:
            raise ValueError(f"init_process_group: {what}={given} but the launcher started this process "
                             f"as {what} {actual}")
    group = _Group(comm, r, w, seconds, name)
    if w > 1:
        group.peers = [tuple(json.loads(t)) for t in
                       _allgather_text(group, json.dumps(group.peers[0]), "init_process_group")]
        _install_fault_handlers(group)
        _start_sentinel(group)
        _wait(group, comm.Ibarrier(), "init_process_group")   # every host's sentinel is listening
        _link_sentinel(group)
    _group = group


def destroy_process_group() -> None:
    """Leave the default process group (after this, ``is_initialized()`` is False)."""
    global _group
    g, _group = _require("destroy_process_group"), None
    g.tell_sentinel("bye")
    if g.sentinel_link is not None:   # (after the bye: the sentinel reads every message first)
        g.sentinel_link.close()
        g.sentinel_link = None
    if g.comm is not None and not g.broken:
        g.comm.Free()


def _require(what: str) -> _Group:
    if _group is None:
        raise ValueError(f"{what}: Default process group has not been initialized, please make sure "
                         f"to call init_process_group.")
    return _group


def get_rank() -> int:
    """This process's rank, 0 ... world size - 1. Raises ValueError before init_process_group."""
    return _require("get_rank").rank


def get_world_size() -> int:
    """The number of ranks. Raises ValueError before init_process_group."""
    return _require("get_world_size").size


def get_backend() -> str:
    """The backend name given to init_process_group ("mpi" or "gloo")."""
    return _require("get_backend").backend


# ---- faults ---------------------------------------------------------------------------------

def report_uncaught(kind, value, tb, previous=None) -> None:
    """Print an uncaught exception as Python does, but in one ``say`` (whole lines, see there)
    when ``previous`` is Python's own excepthook; a hook the user installed is called as it is."""
    if previous is None or previous is sys.__excepthook__:
        say("".join(traceback.format_exception(kind, value, tb)))
    else:
        previous(kind, value, tb)
        sys.stderr.flush()


def _install_fault_handlers(group: _Group) -> None:
    """Abort the job on an uncaught exception; never call MPI_Finalize after a fault (it would
    wait for the dead rank): exit with status 1 instead."""
    previous = sys.excepthook

    def abort_on_exception(kind, value, tb):
        report_uncaught(kind, value, tb, previous)
        if _group is group and group.comm is not None:
            group.abort(1)

    def exit_without_finalize():
        group.tell_sentinel("bye")
        if group.broken:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)

    def peer_failed(signum, frame):   # collectives notice it in _wait
        group.peer_failed = True

    sys.excepthook = abort_on_exception
    atexit.register(exit_without_finalize)   # runs before mpi4py's MPI_Finalize (LIFO)
    # mpiexec -disable-auto-cleanup tells the survivors of a failed rank with SIGUSR1, whose
    # default action would kill them silently; MPICH itself installs no handler for it.
    if signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, peer_failed)


def _start_sentinel(group: _Group) -> None:
    """Start this host's sentinel (``sentinel.py``) on its lowest rank; every rank of the host
    opens a socket to it. A rank killed outright is then named by rank, which MPICH's launcher,
    killing the other ranks at once, does not do. Best effort: without Unix sockets or when the
    process cannot start, the job runs on without it."""
    host = group.peers[group.rank][0]
    local = [(r, pid) for r, (h, pid) in enumerate(group.peers) if h == host]
    address = f"\0ember-sentinel-{host}-{local[0][1]}"
    try:
        if local[0][0] == group.rank:
            import subprocess
            config = {"host": host, "ranks": local, "world": group.size, "address": address[1:]}
            path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sentinel.py")
            proc = subprocess.Popen([sys.executable, "-I", "-S", path, json.dumps(config)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    start_new_session=True)   # the launcher's clean-up leaves it alone
            ready = proc.stdout.readline()
            proc.stdout.close()
            if ready.strip() != b"ready":
                return
            group.sentinel_process = proc
        group.sentinel = (socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM), address)
    except OSError:
        group.sentinel = None


def _link_sentinel(group: _Group) -> None:
    """Connect this rank to its host's sentinel and say which rank it is. The sentinel sees the link
    close when this process's files are released, which orders the deaths of two ranks (see
    ``sentinel._links``). A forked child (a DataLoader worker) closes its copy at once, so the
    link closes when this rank's files are. Best effort, as the sentinel itself."""
    if group.sentinel is None:
        return
    try:
        link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        link.settimeout(2.0)
        link.connect(group.sentinel[1] + "-link")
        link.sendall(str(group.rank).encode())
        group.sentinel_link = link
    except OSError:
        pass


def _close_link_in_child() -> None:
    g = _group
    if g is not None and g.sentinel_link is not None:
        try:
            g.sentinel_link.close()
        except OSError:
            pass
        g.sentinel_link = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_link_in_child)


def _peer_state(host: str, pid: int) -> str:
    """'exited', 'stopped' or 'alive' for a process on this host; 'unknown' for another host."""
    if host != socket.gethostname():
        return "unknown"
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "exited"
    return {"Z": "exited", "X": "exited", "T": "stopped", "t": "stopped"}.get(state, "alive")


def _lost_ranks_message(group: _Group, patience: float = 0.0) -> str:
    """Name the ranks on this host that have exited or stopped (from /proc, by the pids the ranks
    exchanged at start), looking again for up to ``patience`` seconds while none has: a killed
    process takes a moment to tear down after mpiexec has noticed it."""
    if len(group.peers) != group.size:   # still in init_process_group: the pids are not known yet
        return (f"rank(s) {', '.join(str(r) for r in range(group.size) if r != group.rank)} did not join "
                f"(started by the launcher, but not calling init_process_group, or hung or dead before it)")
    give_up = time.monotonic() + patience
    while True:
        lost = []
        for r, (host, pid) in enumerate(group.peers):
            state = "alive" if r == group.rank else _peer_state(host, pid)
            if state in ("exited", "stopped"):
                lost.append(f"rank {r} (pid {pid} on {host}) has {state}")
        if lost or time.monotonic() > give_up:
            break
        time.sleep(0.05)
    if lost:
        return "lost " + "; ".join(lost)
    return ("no rank on this host has exited; a rank on another host or one that is still running "
            "did not take part: " + ", ".join(f"rank {r} on {h}" for r, (h, _) in enumerate(group.peers)
                                              if r != group.rank))


def _fail(group: _Group, what: str, why: str):
    group.broken = True
    raise DistBackendError(f"ember.distributed: rank {group.rank}: {what} {why}: "
                           f"{_lost_ranks_message(group, 1.0 if group.peer_failed else 0.0)}") from None


# How long a waiting rank polls its request without pausing before it starts to sleep between
# polls (environment variable EMBER_DIST_SPIN_MS, milliseconds, read by init_process_group).
# MPICH has no progress thread: a non-blocking collective advances only inside MPI calls (here
# ``Test``), so a rank that sleeps stalls its peer too (the 241 KiB allreduce of LeNet-5 is a few
# shared-memory hand-shakes, each needing both ranks). Busy-polling for a few ms, as MPICH's
# blocking calls do, covers the normal imbalance of a training step; the sleep keeps a long wait
# (rank 0 writing a checkpoint, a dead peer) from burning a core. On a machine with more runnable
# processes than cores spinning takes CPU from the peer instead, so _wait stops spinning while
# most spins fail; EMBER_DIST_SPIN_MS=0 never spins.
SPIN_SECONDS = 0.002


def _spin_seconds() -> float:
    text = os.environ.get("EMBER_DIST_SPIN_MS")
    if text is None:
        return SPIN_SECONDS
    try:
        ms = float(text)
    except ValueError:
        ms = -1.0
    if not 0 <= ms < float("inf"):
        raise ValueError(f"init_process_group: EMBER_DIST_SPIN_MS must be a number of milliseconds >= 0, "
                         f"got {text!r}")
    return ms / 1000


def _wait(group: _Group, request, what: str) -> None:
    """Poll a non-blocking MPI request until it completes or the group's timeout passes.

    Busy-polls (``Test``) for up to ``group.spin`` seconds, then sleeps between polls with a
    growing pause of at most 1 ms, so a long wait leaves the CPU to the others. The spinning is
    adaptive: ``group.spin_miss``, a moving average of how often a wait outlasted its spin, turns
    it off above 1/2 (a machine with more runnable processes than cores, where spinning only takes
    CPU from the peer: measured 0.66-0.85x against 0.94-1.22x without it, load 9) and every 16th
    wait spins again to see whether it pays once more.
    Raises DistBackendError naming the lost ranks on a timeout or an MPI error.
    """
    MPI = _mpi()
    test = request.Test
    try:
        if test():
            return
        now = time.perf_counter
        start = now()
        group.waits += 1
        spin = group.spin if group.spin_miss < 0.5 or group.waits % 16 == 0 else 0.0
        spin_end, deadline, pause = start + spin, start + group.timeout, 0.0
        while not test():
            t = now()
            if t > spin_end:
                if group.peer_failed:
                    _fail(group, what, "stopped: mpiexec reports a failed rank")
                if t > deadline:
                    _fail(group, what, f"timed out after {group.timeout:g} s")
                pause = min(1e-3, pause + 1e-5)
                time.sleep(pause)
        if spin > 0:
            group.spin_miss = 0.8 * group.spin_miss + 0.2 * (pause > 0)
    except MPI.Exception as e:
        _fail(group, what, f"failed ({e.Get_error_string()})")


# ---- collectives ----------------------------------------------------------------------------

def _buffer(tensor, what: str) -> np.ndarray:
    if not hasattr(tensor, "shape"):
        raise TypeError(f"{what}: expected a Tensor, got {type(tensor).__name__}")
    return _array(tensor)


def _collective(fn, tensor, what, *args):
    """Run ``fn(comm, contiguous_buffer, *args)`` (a non-blocking MPI call) on the tensor's
    array in place; a non-contiguous tensor goes through a contiguous copy written back."""
    g = _require(what)
    a = _buffer(tensor, what)
    if g.size == 1:
        return g, a
    buf = a if a.flags.c_contiguous else a.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)
    _wait(g, fn(g.comm, buf, *args), what)
    if buf is not a:
        a[...] = buf
    return g, a


def all_reduce(tensor, op: ReduceOp = ReduceOp.SUM, group=None, async_op: bool = False) -> None:
    """Combine ``tensor`` across all ranks in place; every rank ends with the same result.

    Args:
        tensor: an ember Tensor (any shape; same shape and dtype on every rank).
        op: ReduceOp.SUM (default), AVG (floating-point only: SUM / world size), PRODUCT, MIN, MAX.
        group, async_op: PyTorch's arguments; only the default group and blocking calls exist.
    Raises:
        ValueError: before init_process_group, or AVG on an integer tensor.
        DistBackendError: a rank died or the timeout passed.
    """
    _check_group(group, async_op, "all_reduce")
    if not isinstance(op, ReduceOp):
        raise TypeError(f"all_reduce: op must be an ember.distributed.ReduceOp, got {op!r}")
    a = _buffer(tensor, "all_reduce")
    if op is ReduceOp.AVG and a.dtype.kind not in "fc":
        raise ValueError(f"all_reduce: ReduceOp.AVG needs a floating-point tensor, got dtype {a.dtype}")
    MPI = _mpi()
    mpi_op = None if MPI is None else {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM,
                                       ReduceOp.PRODUCT: MPI.PROD, ReduceOp.MIN: MPI.MIN,
                                       ReduceOp.MAX: MPI.MAX}[op]
    g, a = _collective(lambda comm, buf: comm.Iallreduce(MPI.IN_PLACE, buf, mpi_op), tensor, "all_reduce")
    if op is ReduceOp.AVG and g.size > 1:
        a /= g.size


def broadcast(tensor, src: int, group=None, async_op: bool = False) -> None:
    """Copy rank ``src``'s tensor into ``tensor`` on every rank, in place.

    Raises:
        ValueError: src is not a rank of the group, or before init_process_group.
        DistBackendError: a rank died or the timeout passed.
    """
    _check_group(group, async_op, "broadcast")
    g = _require("broadcast")
    if not isinstance(src, int) or not 0 <= src < g.size:
        raise ValueError(f"broadcast: src must be a rank in [0, {g.size - 1}], got {src!r}")
    _collective(lambda comm, buf: comm.Ibcast(buf, root=src), tensor, "broadcast")


def all_gather(tensor_list: list, tensor, group=None, async_op: bool = False) -> None:
    """Fill ``tensor_list[i]`` (in place) with rank i's ``tensor``, on every rank.

    Args:
        tensor_list: world-size tensors, each of ``tensor``'s shape and dtype.
        tensor: this rank's contribution.
    Raises:
        ValueError: wrong list length, or a list entry of another shape or dtype.
        DistBackendError: a rank died or the timeout passed.
    """
    _check_group(group, async_op, "all_gather")
    g = _require("all_gather")
    a = _buffer(tensor, "all_gather")
    if len(tensor_list) != g.size:
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} tensors, expected one per "
                         f"rank ({g.size})")
    for i, t in enumerate(tensor_list):
        b = _buffer(t, "all_gather")
        if b.shape != a.shape or b.dtype != a.dtype:
            raise ValueError(f"all_gather: tensor_list[{i}] has shape {b.shape} and dtype {b.dtype}, "
                             f"expected {a.shape} and {a.dtype}")
    out = np.empty((g.size,) + a.shape, a.dtype)
    if g.size == 1:
        out[0] = a
    else:
        _wait(g, g.comm.Iallgather(a if a.flags.c_contiguous else a.copy(order="C"), out), "all_gather")
    for t, row in zip(tensor_list, out):
        _array(t)[...] = row


def barrier(group=None, async_op: bool = False) -> None:
    """Return only once every rank has called barrier(). Raises DistBackendError on a fault."""
    _check_group(group, async_op, "barrier")
    g = _require("barrier")
    if g.size > 1:
        _wait(g, g.comm.Ibarrier(), "barrier")


def _check_group(group, async_op, what):
    if group is not None:
        raise ValueError(f"{what}: ember has only the default process group; pass group=None")
    if async_op:
        raise ValueError(f"{what}: async_op=True is not supported by ember; collectives are blocking")


# ---- consistency check ----------------------------------------------------------------------

def check_same(obj, what: str = "config", describe=None) -> str:
    """Check that ``obj`` is identical on every rank; return its SHA-256 (hex).

    Call it at start with the training flags and the model's parameter shapes (see
    ``parameter_signature``): a rank started with other flags or another model would otherwise
    train silently wrong or hang in a collective of another size. The ranks compare hashes (one
    32-byte allgather); only when they differ are the objects themselves gathered, so that the
    error can say what differs.

    Args:
        obj: anything JSON-serialisable (dicts are compared with sorted keys); other objects are
            compared through ``repr``.
        what: the name used in the error ("config", "model").
        describe: ``describe(key, value) -> str`` words one differing entry (a dict key and its
            value; for a list, the entry itself with key None). Default: ``key=value``, or the
            entry's repr.
    Raises:
        MismatchError (a RuntimeError): naming, for every rank whose ``obj`` differs from rank
            0's, the first differences (every differing key of a dict, the first differing entry
            of a list), e.g. ``the config differs between ranks: rank 1 has lr=0.05 but rank 0
            has lr=0.1``. ``.differences`` holds ``(rank, key, value there, value on rank 0)``.
        DistBackendError: a rank died or the timeout passed.
    """
    text = json.dumps(obj, sort_keys=True, default=repr)
    digest = hashlib.sha256(text.encode()).digest()
    g = _require("check_same")
    if g.size == 1:
        return digest.hex()
    mine = np.frombuffer(digest, np.uint8).copy()
    everyone = np.empty((g.size, mine.size), np.uint8)
    _wait(g, g.comm.Iallgather(mine, everyone), f"check_same({what})")
    bad = [r for r in range(1, g.size) if not np.array_equal(everyone[r], everyone[0])]
    if bad:
        texts = _allgather_text(g, text, f"check_same({what})")
        objs = [json.loads(t) for t in texts]
        found = [(r, *d) for r in bad for d in _differences(objs[r], objs[0])]
        say = describe or (lambda k, v: repr(v) if k is None else f"{k}={v!r}")
        raise MismatchError(
            f"ember.distributed: the {what} differs between ranks: "
            + "; ".join(f"rank {r} has {say(k, a)} but rank 0 has {say(k, b)}" for r, k, a, b in found)
            + "; start every rank with the same flags and model", found)
    return digest.hex()


class MismatchError(RuntimeError):
    """``check_same`` found ranks whose object differs from rank 0's; ``.differences`` lists
    ``(rank, key, value on that rank, value on rank 0)``."""

    def __init__(self, message: str, differences: list):
        super().__init__(message)
        self.differences = differences


_MISSING = "<missing>"


def _differences(a, b) -> list:
    """(key, a's value, b's value) of what differs: every differing key of two dicts (sorted;
    ``<missing>`` where one lacks it); the first differing entry of two lists (key None; an entry
    past the end of the shorter list is ``<missing>``); else the two objects whole."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [(k, a.get(k, _MISSING), b.get(k, _MISSING)) for k in sorted(set(a) | set(b), key=str)
                if a.get(k, _MISSING) != b.get(k, _MISSING)]
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            x, y = (a[i] if i < len(a) else _MISSING), (b[i] if i < len(b) else _MISSING)
            if x != y:
                return [(None, x, y)]
        return []
    return [(None, a, b)]


def _allgather_text(g: _Group, text: str, what: str) -> list[str]:
    """Every rank's ``text`` (strings of any length), through the group's timed collectives."""
    data = np.frombuffer(text.encode(), np.uint8).copy()
    sizes = np.empty(g.size, np.int64)
    _wait(g, g.comm.Iallgather(np.array([data.size], np.int64), sizes), what)
    MPI = _mpi()
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    out = np.empty(int(sizes.sum()), np.uint8)
    _wait(g, g.comm.Iallgatherv(data, [out, sizes.tolist(), offsets.tolist(), MPI.BYTE]), what)
    return [bytes(out[o:o + n]).decode() for o, n in zip(offsets, sizes)]


def parameter_signature(module) -> list:
    """[(name, shape, dtype), ...] of a module's parameters and buffers: what ``check_same``
    compares so that ranks holding different models stop at start with a clear error."""
    items = list(module.named_parameters()) + list(module.named_buffers())
    return [(n, list(_array(t).shape), str(_array(t).dtype)) for n, t in items]
