"""Rank 0 writes one line to stderr and aborts the job while its launcher proxy is paused (SIGSTOP
for 0.5 s, as a loaded machine can delay it), so the line is still in the pipe when the abort
arrives. Rank 1 just waits. Used by test_distributed.py: the line must reach mpiexec's stderr."""
import os
import signal
import subprocess
import sys
import time

from mpi4py import MPI

from ember.distributed.group import abort_job

if MPI.COMM_WORLD.Get_rank() == 0:
    proxy = os.getppid()   # Hydra's hydra_pmi_proxy: it reads the rank's stderr pipe
    subprocess.Popen(["sh", "-c", f"sleep 0.5; kill -CONT {proxy}"])
    os.kill(proxy, signal.SIGSTOP)
    print("rank 0: the line that must not be lost", file=sys.stderr, flush=True)
    abort_job(MPI.COMM_WORLD, 1)
else:
    time.sleep(30)
