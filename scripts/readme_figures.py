#!/usr/bin/env python
"""Record the README's training figures from real runs, so they cannot drift silently.

Reads each run folder's ``config.json`` and ``metrics.json`` (as ``ember train`` writes them) and
writes ``docs/readme-figures.json``: one row per run (epochs, seed, final test accuracy and loss,
seconds of every epoch) plus the machine it ran on. ``tests/test_readme.py`` rebuilds the
README's table cells from that file with ``readme_cells`` and checks that the README holds them.

Usage:
    ember train --epochs 1 --seed 0 --out /tmp/r/e1-s0     # ... and more seeds, and 10 epochs
    python scripts/readme_figures.py --machine "shared 2-core VM, load average 3-9" /tmp/r/*
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURES = os.path.join(ROOT, "docs", "readme-figures.json")


def read_run(folder: str) -> dict:
    """One run folder -> {"epochs", "seed", "model", "dataset", "test_accuracy", "test_loss", "seconds"}."""
    try:
        with open(os.path.join(folder, "config.json")) as f:
            cfg = json.load(f)
        with open(os.path.join(folder, "metrics.json")) as f:
            rows = json.load(f)["epochs"]
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{folder}: not a finished ember run folder ({e})") from None
    if len(rows) != cfg["epochs"]:
        raise ValueError(f"{folder}: {len(rows)} of {cfg['epochs']} epochs recorded; the run is not finished")
    return {"epochs": cfg["epochs"], "seed": cfg["seed"], "model": cfg["model"], "dataset": cfg["dataset"],
            "test_accuracy": rows[-1]["test_accuracy"], "test_loss": rows[-1]["test_loss"],
            "seconds": [r["seconds"] for r in rows]}


def _span(values, decimals: int) -> str:
    """"lo–hi" rounded outwards (lo down, hi up), so every measured value lies inside the printed range."""
    scale = 10 ** decimals
    lo = math.floor(round(min(values) * scale, 6)) / scale
    hi = math.ceil(round(max(values) * scale, 6)) / scale
    lo, hi = f"{lo:.{decimals}f}", f"{hi:.{decimals}f}"
    return lo if lo == hi else f"{lo}–{hi}"


def _seeds(seeds) -> str:
    seeds = sorted(seeds)
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def readme_cells(figures: dict) -> dict:
    """The README's table cells for each number of epochs: {epochs: (accuracy cell, seconds cell)}.

    Accuracy: "87.1–88.5% over seeds 0–2" (final test accuracies in percent, the range rounded
    outwards; "90.78% (seed 0)" for a single run); seconds: "17–98 s" (single epochs' wall times over those runs, rounded outwards).
    """
    out = {}
    for epochs in sorted({r["epochs"] for r in figures["runs"]}):
        runs = [r for r in figures["runs"] if r["epochs"] == epochs]
        if len(runs) == 1:
            acc = f"{100 * runs[0]['test_accuracy']:.2f}% (seed {runs[0]['seed']})"
        else:
            acc = _span([100 * r["test_accuracy"] for r in runs], 1) + f"% over {_seeds(r['seed'] for r in runs)}"
        secs = _span([s for r in runs for s in r["seconds"]], 0) + " s"
        out[epochs] = (acc, secs)
    return out


def main(argv=None) -> int:
    """Write docs/readme-figures.json from the run folders given; print the README cells."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders written by ember train")
    p.add_argument("--machine", required=True, help="where and under what load the runs were made")
    p.add_argument("--out", default=FIGURES, help="JSON file to write (default: docs/readme-figures.json)")
    args = p.parse_args(argv)
    try:
        runs = [read_run(folder) for folder in args.runs]
    except ValueError as e:
        print(f"readme_figures: error: {e}", file=sys.stderr)
        return 1
    runs.sort(key=lambda r: (r["epochs"], r["seed"]))
    figures = {"machine": args.machine, "runs": runs}
    with open(args.out, "w") as f:
        json.dump(figures, f, indent=1, ensure_ascii=False)
        f.write("\n")
    for epochs, (acc, secs) in readme_cells(figures).items():
        print(f"{epochs} epoch(s): {acc}; {secs} per epoch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
