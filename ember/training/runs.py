"""Where a run lives: one folder per run, never a silent overwrite, and how a folder is found again.

    ember train                       ->  runs/<model>-<dataset>/<YYYYmmdd-HHMMSS>/   (a new folder;
                                          -2, -3, ... appended if two runs start in the same second)
    ember train --out DIR             ->  DIR, refused if DIR holds another run's files
    ember train --out DIR --overwrite ->  DIR, its old run replaced
    ember train --resume DIR          ->  DIR, continued (or --out, if given)

``find_run`` is the rule ``ember evaluate`` and ``ember visualize`` use to read a path: a run
folder (it holds ``config.json``) is itself; any other folder means the newest run below it
(the one whose ``metrics.json`` was written last), so ``ember evaluate runs/lenet5-fashion-mnist``
evaluates the latest LeNet-5 run, as a tracker's "latest" does.
"""
from __future__ import annotations

import os
import time

RUN_FILES = ("config.json", "metrics.json", "model.safetensors", "resume.safetensors")


def default_folder(model: str, dataset: str, root: str = "runs", now: float | None = None) -> str:
    """A new run folder name ``root/<model>-<dataset>/<YYYYmmdd-HHMMSS>`` (local time), with
    ``-2``, ``-3``, ... appended when that folder already exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = os.path.join(root, f"{model}-{dataset}", stamp)
    folder, n = base, 1
    while os.path.exists(folder):
        n += 1
        folder = f"{base}-{n}"
    return folder


def holds_run(folder: str) -> bool:
    """Whether ``folder`` holds any file a run writes (``RUN_FILES``)."""
    return any(os.path.exists(os.path.join(folder, name)) for name in RUN_FILES)


def choose_folder(cfg) -> str:
    """The folder this run writes to (see the module docstring); sets nothing, creates nothing.

    Raises: ValueError naming --out, --resume and --overwrite when the folder holds another run.
    """
    if cfg.out is None:
        return cfg.resume if cfg.resume is not None else default_folder(cfg.model, cfg.dataset)
    continuing = cfg.resume is not None and os.path.realpath(cfg.resume) == os.path.realpath(cfg.out)
    if holds_run(cfg.out) and not continuing and not cfg.overwrite:
        found = ", ".join(n for n in RUN_FILES if os.path.exists(os.path.join(cfg.out, n)))
        raise ValueError(f"--out {cfg.out} holds another run ({found}); pass --resume {cfg.out} to continue it, "
                         f"--overwrite to replace it (at the end of the new run's first epoch), or another "
                         f"--out (without --out every run gets its own folder)")
    return cfg.out


def find_run(path: str) -> str:
    """The run folder ``path`` names: the folder of ``path`` when it is a file (``run/model.safetensors``),
    ``path`` itself if it holds ``config.json`` (whatever that is: reading it reports a bad one),
    else the run below it (any depth) whose ``metrics.json`` was written last.

    Raises: FileNotFoundError naming the path when there is no such folder or no run below it.
    """
    path = os.fspath(path)
    if os.path.isfile(path):     # `--checkpoint run/model.safetensors`: the run is its folder
        return os.path.dirname(path) or "."
    if os.path.exists(os.path.join(path, "config.json")):
        return path
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such run folder (one written by ember train, holding config.json)")
    runs = [root for root, _, files in os.walk(path) if "config.json" in files]
    if not runs:
        raise FileNotFoundError(f"{path}/config.json: no such file, and no run folder below {path} "
                                f"(a run folder holds config.json and model.safetensors)")

    def written(run):
        metrics = os.path.join(run, "metrics.json")
        return os.path.getmtime(metrics if os.path.exists(metrics) else os.path.join(run, "config.json"))
    return max(runs, key=lambda run: (written(run), run))
