"""LeNet-5 training and inference speed, ember against PyTorch: a script over ``ember.training.bench``.

    python benchmarks/lenet.py                 # full run (a few minutes), markdown report on stdout
    python benchmarks/lenet.py --tiny          # seconds: what CI runs so the benchmark cannot rot

The same as ``ember bench``; the method is in ``ember/training/bench.py``'s docstring.
"""
import sys

from ember.training import bench

if __name__ == "__main__":
    sys.exit(bench.main())
