"""The sentinel: names a rank that was killed, which nothing inside the job can do.

When a rank dies without warning (SIGKILL, the out-of-memory killer, a crash in C code), MPICH's
launcher (Hydra's ``mpiexec``) kills the other ranks at once with SIGKILL and prints
``BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES ... PID 1234``, naming a pid, not a rank;
the survivors get no chance to say anything. (With ``mpiexec -disable-auto-cleanup`` it sends
them SIGUSR1 instead, which ``group.py`` turns into a ``DistBackendError``.)

So the lowest rank on each host starts this small process (standard library only; run by its
path, without importing ember) in a session of its own, which the launcher's clean-up does not
touch. It holds a pidfd of every rank on the host, a stream connection from each (its "link":
a rank ends, for the sentinel, when its link closes or its pidfd fires, whichever comes first;
see ``_links`` for why the link orders two deaths rightly) and a datagram socket on which ranks
say ``bye R`` before they end on purpose (the end of the run, ``destroy_process_group``, exit)
and ``abort R`` before ``MPI_Abort`` (an error they report themselves), and rank 0 says ``note
TEXT`` (what ``ember train`` has saved). The first rank that ends without having said either is
the lost one; the sentinel prints, on the stderr it shares with the job (so ``mpiexec`` shows it):

    ember: rank 1 (PID 1234 on vm) was lost: it ended without finishing or reporting an error
    (killed, or crashed); the other ranks are stopped (last checkpoint: epoch 3 in runs/x)

and exits once every rank of its host has ended (``mpiexec`` waits for it: it holds the stderr
pipe). It prints nothing after a clean end, after a rank's own ``abort``, or for the ranks the
launcher stops after the first loss.

Limits: a sentinel sees only its own host. On several hosts the host of the lost rank names it;
the other hosts' sentinels see their ranks killed by the launcher, cannot tell that from a loss,
and print the same line for their first rank with "(the first on HOST to end so)" added:
mpiexec's PID names the rank that failed first. On a loaded machine the sentinel may wake only
after the launcher has killed the other ranks too; it then names all of them as ended at once
and points to mpiexec's PID. Needs Linux >= 5.3 (``os.pidfd_open``); elsewhere, it polls
``/proc`` every 20 ms.

Protocol: ``python sentinel.py JSON`` with JSON = {"host": str, "ranks": [[rank, pid], ...],
"world": int, "address": str (abstract socket name, without the leading NUL; the links connect to
``address + "-link"`` and send their rank)}.
"""
from __future__ import annotations

import json
import os
import select
import socket
import sys


def _watchers(ranks):
    """({fd: rank}, [ranks already gone]): a pidfd per rank's pid, or, without pidfds, a negative
    key meaning "poll /proc for this rank"."""
    fds, gone = {}, []
    for rank, pid in ranks:
        try:
            fds[os.pidfd_open(pid)] = rank
        except (AttributeError, OSError):
            if not os.path.exists(f"/proc/{pid}"):
                gone.append(rank)
            else:   # no pidfd here (old kernel): polled through /proc
                fds[-1 - rank] = rank
    return fds, gone


def main(config: dict) -> int:
    host, world = config["host"], config["world"]
    pids = {rank: pid for rank, pid in config["ranks"]}
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + config["address"])
    sock.setblocking(False)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + config["address"] + "-link")
    listener.listen(256)
    listener.setblocking(False)
    print("ready", flush=True)   # to the rank that started it: messages now arrive
    sys.stdout.close()
    try:   # wake before the launcher's clean-up when both wait for the CPU (best effort; needs root)
        os.nice(-5)
    except OSError:
        pass
    fds, ended = _watchers(config["ranks"])
    poll = select.poll()
    poll.register(sock.fileno(), select.POLLIN)
    poll.register(listener.fileno(), select.POLLIN)
    for fd in fds:
        if fd >= 0:
            poll.register(fd, select.POLLIN)
    said: dict = {}          # rank -> "bye" | "abort"
    links: dict = {}         # a rank's link (socket) -> its rank, None until the rank has said which
    note, reported, aborted = "", False, False
    while len(ended) < len(pids):
        proc_polled = [fd for fd in fds if fd < 0]
        events = poll.poll(20 if proc_polled else None)
        for fd in proc_polled:
            if not os.path.exists(f"/proc/{pids[fds[fd]]}"):
                events.append((fd, select.POLLIN))
        gone = _links(events, listener, links, poll)   # ranks whose files closed: they end first
        while True:   # every message first: a rank's "bye" is queued before its pidfd fires
            try:
                kind, _, text = sock.recv(65536).decode(errors="replace").partition(" ")
            except BlockingIOError:
                break
            if kind == "note":
                note = text
            elif kind in ("bye", "abort") and text.isdigit():
                said[int(text)] = kind
                aborted |= kind == "abort"
        lost = []
        for fd, _ in events:
            if fd in fds:
                gone.append(fds.pop(fd))
                if fd >= 0:
                    poll.unregister(fd)
                    os.close(fd)
        for rank in gone:
            if rank in ended:   # its link closed first, then its pidfd fired
                continue
            ended.append(rank)
            if rank not in said and not reported and not aborted:
                lost.append(rank)
        if lost:
            reported = True
            # one write, so the line stays whole beside the ranks' own (see group.say)
            sys.stderr.write(_message(sorted(lost), pids, host, len(pids) < world, note) + "\n")
            sys.stderr.flush()
    return 0


def _links(events, listener, links: dict, poll) -> list:
    """Accept the ranks' links and read them (each sends its rank once); return the ranks whose link
    has closed. A link closes when its rank's open files are released, which the kernel does
    before the rank's pidfd fires and before the launcher, seeing the same close on the rank's
    stdio pipes, kills the other ranks: so the rank killed first closes first. (The pidfds alone
    could fire the other way round on a loaded machine: the second rank to die may finish dying
    first; CI then named the survivor rank 0 as lost.)"""
    gone = []
    for fd, _ in events:
        if fd == listener.fileno():
            while True:
                try:
                    conn, _ = listener.accept()
                except (BlockingIOError, OSError):
                    break
                conn.setblocking(False)
                links[conn.fileno()] = [conn, None]
                poll.register(conn.fileno(), select.POLLIN)
        elif fd in links:
            conn, rank = links[fd]
            try:
                data = conn.recv(64)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data and rank is None and data.strip().isdigit():
                links[fd][1] = int(data)
            elif not data:
                poll.unregister(fd)
                del links[fd]
                conn.close()
                if rank is not None:
                    gone.append(rank)
    return gone


def _message(lost: list, pids: dict, host: str, several_hosts: bool, note: str) -> str:
    """The report of the rank(s) that ended first without saying why. Two or more at once: this
    process woke up only after the launcher had already killed the others (a loaded machine),
    so it cannot tell which was first; mpiexec's "BAD TERMINATION ... PID" line can."""
    kept = f" ({note})" if note else ""
    where = f" (the first on {host} to end so)" if several_hosts else ""
    if len(lost) == 1:
        return (f"ember: rank {lost[0]} (PID {pids[lost[0]]} on {host}) was lost{where}: it ended without "
                f"finishing or reporting an error (killed, or crashed); the other ranks are stopped{kept}")
    names = ", ".join(f"rank {r} (PID {pids[r]})" for r in lost)
    return (f"ember: {names} on {host} ended at once without finishing or reporting an error: one was killed "
            f"or crashed and mpiexec stopped the others (its BAD TERMINATION line names the PID that "
            f"failed first){kept}")


    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(json.loads(sys.argv[1])))
    except KeyboardInterrupt:
        sys.exit(0)
