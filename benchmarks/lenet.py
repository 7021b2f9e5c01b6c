"""LeNet-5 training and inference speed, ember against PyTorch: a script over ``ember.training.bench``.

    python benchmarks/lenet.py                 # full run (a few minutes), markdown report on stdout
    python benchmarks/lenet.py --tiny          # seconds: what CI runs so the benchmark cannot rot

The same as ``ember bench``; the method is in ``ember/training/bench.py``'s docstring.
"""
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see ember/training/bench.py)

from ember.training import bench  # noqa: E402

if __name__ == "__main__":
    sys.exit(bench.main())
