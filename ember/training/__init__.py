"""``ember.training``: the application behind ``ember train``, ``ember evaluate`` and ``ember bench``.

    config.py      TrainConfig: every setting, and the one source of ``ember train``'s flags
    loop.py        train(), evaluate(): the epoch loop, metrics, early stopping
    data.py        load_data(): the data sets (per-channel normalisation), --augment, model-fit check
    parallel.py    Ranks: the MPI glue of `mpiexec -n W ember train`
    schedules.py   the optimizer (sgd, adam, ...) and the learning-rate policy of a run
    checkpoint.py  the run folder: model/config/metrics files, load_checkpoint, resume.safetensors
    runs.py        which folder a run writes to (one per run, no silent overwrite), find_run
    log.py         steps.csv, epochs.csv and curves.png of a run
    safety.py      guards: --out probed before training, empty splits, SIGTERM, OS errors as one line
    bench.py       LeNet-5 timed against PyTorch in one process (``ember bench``)
"""
from .checkpoint import load_checkpoint, load_train_state, read_train_state, save_train_state
from .config import DATASETS, TrainConfig
from .loop import TrainingError, evaluate, load_data, train
from .schedules import OPTIMIZERS, SCHEDULES, Schedule, build_optimizer

__all__ = ["DATASETS", "OPTIMIZERS", "SCHEDULES", "Schedule", "TrainConfig", "TrainingError", "build_optimizer",
           "evaluate", "load_checkpoint", "load_data", "load_train_state", "read_train_state", "save_train_state",
           "train"]
