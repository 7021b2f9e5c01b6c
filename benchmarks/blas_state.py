"""OpenBLAS's single-threaded sgemm for LeNet-5's Linear shapes: fast or ~2.3× slower by its history.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/blas_state.py

Found in the eighteenth session (benchmarks/RESULTS.md), on OpenBLAS 0.3.31 (NumPy 2.4's wheel,
"Haswell" kernels) on a Zen 1 EPYC: in a fresh process with NumPy's BLAS at one thread,
(64, 400) @ (400, 120), the Linear(400, 120) forward at batch 64, took ~0.40 ms a call however
often it ran; after ONE call of another shape (e.g. (16, 300) @ (300, 16), or any 2-thread
GEMM) the same product took ~0.19 ms, for the rest of the process. At batch 1000: 6.3 → 2.7 ms.
A second GEMM run at the same time, from another thread (ember's row blocks on its worker
thread), was slow again until a GEMM of the "switching" kind had also run concurrently: which
suggests per-buffer state inside OpenBLAS (each concurrent call takes its own work buffer). The
cause is not known (not the values: a product of zeros switches it too; results are bit for
bit the same in both states). A training step's first backward runs such a product anyway;
since the eighteenth session ``ember.kernels.threads._wake_openblas`` runs one at ember's first
GEMM, so a process that only runs inference is fast too. This script uses NumPy alone (no
ember), each case in a fresh process, every run printed. Not a test; figures go in
benchmarks/RESULTS.md.
"""
from __future__ import annotations

import subprocess
import sys

CHILD = r"""
import sys, time, threading
import numpy as np
from threadpoolctl import ThreadpoolController
blas = ThreadpoolController().select(user_api="blas").lib_controllers[0]
blas.set_num_threads(1)
rng = np.random.default_rng(0)
a = rng.standard_normal((64, 400)).astype(np.float32)
b = rng.standard_normal((120, 400)).astype(np.float32).T     # weight.T, as Linear passes it

def probe():
    for _ in range(5):
        np.dot(a, b)
    t0 = time.perf_counter()
    for _ in range(1000):
        np.dot(a, b)
    return (time.perf_counter() - t0)            # ms per call (1000 calls)

case = sys.argv[1]
before = probe()
if case == "switch":
    np.dot(np.ones((16, 300), np.float32), np.ones((300, 16), np.float32))
elif case == "same-shape":
    np.dot(a, b)
elif case == "two-threads":
    blas.set_num_threads(2)
    np.dot(np.ones((512, 512), np.float32), np.ones((512, 512), np.float32))
    blas.set_num_threads(1)
print(f"{case:12s} (64,400)@(400,120), 1 BLAS thread: {before:.3f} ms a call before, {probe():.3f} ms after")
"""


def main() -> int:
    info = subprocess.run([sys.executable, "-c", "import numpy, threadpoolctl, pprint; "
                           "pprint.pprint([(i['internal_api'], i['version'], i.get('architecture')) "
                           "for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas'])"],
                          capture_output=True, text=True)
    print("BLAS:", info.stdout.strip())
    for case in ("same-shape", "switch", "two-threads"):
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", CHILD, case], capture_output=True, text=True)
            print(out.stdout.strip() or out.stderr.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
