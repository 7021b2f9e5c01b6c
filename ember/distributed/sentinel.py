"""The sentinel: names a rank that was killed, which nothing inside the job can do.

When a rank dies without warning (SIGKILL, the out-of-memory killer, a crash in C code), MPICH's
launcher (Hydra's ``mpiexec``) kills the other ranks at once with SIGKILL and prints
``BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES ... PID 1234``, naming a pid, not a rank;
the survivors get no chance to say anything. (With ``mpiexec -disable-auto-cleanup`` it sends
them SIGUSR1 instead, which ``group.py`` turns into a ``DistBackendError``.)

So the lowest rank on each host starts this small process (standard library only; run by its
path, without importing ember) in a session of its own, which the launcher's clean-up does not
touch. It holds a pidfd of every rank on the host and a datagram socket on which ranks say
``bye R`` before they end on purpose (the end of the run, ``destroy_process_group``, exit) and
``abort R`` before ``MPI_Abort`` (an error they report themselves), and rank 0 says ``note TEXT``
(what ``ember train`` has saved). The first rank that ends without having said either is the
lost one; the sentinel prints, on the stderr it shares with the job (so ``mpiexec`` shows it):

    ember: rank 1 (PID 1234 on vm) was lost: it ended without finishing or reporting an error
    (killed, or crashed); the other ranks are stopped (last checkpoint: epoch 3 in runs/x)

and exits once every rank of its host has ended (``mpiexec`` waits for it: it holds the stderr
pipe). It prints nothing after a clean end, after a rank's own ``abort``, or for the ranks the
launcher stops after the first loss.

Limits: a sentinel sees only its own host. On several hosts the host of the lost rank names it;
the other hosts' sentinels see their ranks killed by the launcher, cannot tell that from a loss,
and print the same line for their first rank with "(first on this host)" added: mpiexec's PID
names the rank that failed first. Needs Linux >= 5.3 (``os.pidfd_open``); elsewhere, it polls
``/proc`` every 20 ms.

Protocol: ``python sentinel.py JSON`` with JSON = {"host": str, "ranks": [[rank, pid], ...],
"world": int, "address": str (abstract socket name, without the leading NUL)}.
"""
from __future__ import annotations

import json
import os
import select
import socket
import sys
import time


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
    print("ready", flush=True)   # to the rank that started it: messages now arrive
    sys.stdout.close()
    fds, ended = _watchers(config["ranks"])
    poll = select.poll()
    poll.register(sock.fileno(), select.POLLIN)
    for fd in fds:
        if fd >= 0:
            poll.register(fd, select.POLLIN)
    said: dict = {}          # rank -> "bye" | "abort"
    note, reported, aborted = "", False, False
    while len(ended) < len(pids):
        proc_polled = [fd for fd in fds if fd < 0]
        events = poll.poll(20 if proc_polled else None)
        for fd in proc_polled:
            if not os.path.exists(f"/proc/{pids[fds[fd]]}"):
                events.append((fd, select.POLLIN))
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
        for fd, _ in events:
            if fd == sock.fileno() or fd not in fds:
                continue
            rank = fds.pop(fd)
            if fd >= 0:
                poll.unregister(fd)
                os.close(fd)
            ended.append(rank)
            if rank in said or reported or aborted:
                continue
            reported = True
            where = "" if len(pids) == world else f" (the first on {host} to end so)"
            kept = f" ({note})" if note else ""
            print(f"ember: rank {rank} (PID {pids[rank]} on {host}) was lost{where}: it ended without "
                  f"finishing or reporting an error (killed, or crashed); the other ranks are stopped{kept}",
                  file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(json.loads(sys.argv[1])))
    except KeyboardInterrupt:
        sys.exit(0)
