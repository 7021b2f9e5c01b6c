"""The machine-readable log of a run: ``steps.csv`` and ``epochs.csv`` in the run folder, and
``curves.png`` drawn from them.

    steps.csv    step, epoch, loss, lr, seconds      one row per optimizer step (the batch's loss,
                                                      the lr it was taken with, its wall seconds)
    epochs.csv   epoch, train_loss, train_accuracy, val_loss, val_accuracy, test_loss,
                 test_accuracy, lr, seconds           one row per epoch (val_* empty without --val-split)

Both are plain CSV with a header (pandas.read_csv, a spreadsheet). They are appended to at every epoch
end (with the checkpoint); on ``--resume`` the rows after the resumed epoch (those of an interrupted epoch) are dropped,
so the files of a resumed run equal an uninterrupted run's, apart from the seconds.
"""
from __future__ import annotations

import csv
import os
import types

from ..viz import plots

STEP_COLUMNS = ("step", "epoch", "loss", "lr", "seconds")
EPOCH_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
                 "test_accuracy", "lr", "seconds")


def _read(path: str, last_epoch: int) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if int(row["epoch"]) <= last_epoch]


class RunLog:
    """Writes ``steps.csv`` and ``epochs.csv`` into ``folder`` and redraws ``curves.png``.

    Step rows are kept in memory and appended at the epoch's end, with the checkpoint, so the
    files never hold a half epoch that the checkpoint does not.

    Args:
        folder: the run folder (exists).
        resume_from: the folder of the run being resumed (None: a fresh run; the files start empty).
        last_epoch: with ``resume_from``, the last finished epoch; its rows and earlier ones are kept.
    """

    def __init__(self, folder: str, resume_from: str | None = None, last_epoch: int = 0):
        self.folder, self.pending = folder, []
        self.paths = {"steps": os.path.join(folder, "steps.csv"), "epochs": os.path.join(folder, "epochs.csv")}
        self.columns = {"steps": STEP_COLUMNS, "epochs": EPOCH_COLUMNS}
        kept = {name: _read(os.path.join(resume_from, os.path.basename(path)), last_epoch) if resume_from else []
                for name, path in self.paths.items()}
        for name in self.paths:
            self._write(name, kept[name], "w")
        self.steps = [(int(r["epoch"]), float(r["loss"]), float(r["lr"])) for r in kept["steps"]]

    @staticmethod
    def null():
        """A stand-in that writes nothing (ranks other than 0 under mpiexec)."""
        return types.SimpleNamespace(step=lambda *args: None, epoch=lambda *args: None)

    def _write(self, name: str, rows: list, mode: str) -> None:
        with open(self.paths[name], mode, newline="") as f:
            writer = csv.DictWriter(f, self.columns[name], restval="")
            if mode == "w":
                writer.writeheader()
            writer.writerows(rows)

    def step(self, step: int, epoch: int, loss: float, lr: float, seconds: float) -> None:
        """Record one optimizer step (``step`` counts from 1 over the whole run)."""
        self.pending.append({"step": step, "epoch": epoch, "loss": f"{loss:.6g}", "lr": f"{lr:.6g}",
                             "seconds": f"{seconds:.4f}"})
        self.steps.append((epoch, loss, lr))

    def epoch(self, row: dict, lr: float, metrics: dict) -> str | None:
        """Append the epoch's steps and its metrics ``row`` (as in metrics.json) with the lr at
        its end, and redraw ``curves.png``; returns the picture's path (None without matplotlib)."""
        self._write("steps", self.pending, "a")
        self.pending = []
        self._write("epochs", [{k: row.get(k, "") for k in EPOCH_COLUMNS} | {"lr": f"{lr:.6g}"}], "a")
        return plots.maybe_plot_curves(metrics, self.folder, steps=self.steps)
