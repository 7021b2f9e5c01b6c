"""``TrainConfig``: every setting of an ``ember train`` run, and the one source of its flags.

Each field carries, in its metadata, the help text of its command-line flag and, for names
(model, dataset, optimizer, schedule), the registry of valid choices. ``add_arguments`` turns the
fields into ``ember train``'s argparse options (``--batch-size`` for ``batch_size``; a bool field
gives ``--x`` / ``--no-x``), ``TrainConfig.from_args`` turns the parsed options back, and
``TrainConfig.validate`` / ``check_choice`` are the only places a bad value is refused. A new
setting is one new field here; nothing else lists the fields.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import typing

from ..data import datasets
from ..data.cifar import CIFAR10, CIFAR10_MEAN, CIFAR10_STD
from ..data.images import ImageFolder
from ..models import MODELS
from .schedules import OPTIMIZERS, SCHEDULES, onecycle_warmup_message

# Per-dataset class and pixel mean and std (of [0, 1]-scaled training images), for input normalisation.
DATASETS = {
    "fashion-mnist": (datasets.FashionMNIST, 0.2860, 0.3530),
    "mnist": (datasets.MNIST, 0.1307, 0.3081),
    "cifar10": (CIFAR10, CIFAR10_MEAN, CIFAR10_STD),   # one value per RGB channel
    "imagefolder": (ImageFolder, None, None),         # any --data-dir of class folders: measured (data.py)
}


def _option(default, help: str, choices=None, minimum=None, metavar=None, resume=None):
    """A dataclass field whose metadata describes its flag.

    help: the flag's help text ("{choices}" is replaced by the valid names; "(default: ...)" is
        appended unless the text already says "default"). choices: a function returning the
        valid names, in the order error messages list them. minimum: smallest valid int.
    resume: whether ``--resume`` may change it: None (safe: display, threads, --epochs to extend),
        "meaning" (changes the run's meaning: refused unless --allow-changed-flags) or "fixed"
        (the checkpoint cannot continue under another value: always refused).
    """
    meta = {"help": help, "choices": choices, "minimum": minimum, "metavar": metavar, "resume": resume}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a run (saved as the run folder's ``config.json``); the defaults are the
    README's figures. Build one directly, or from ``ember train``'s flags with ``from_args``.
    Each field's meaning is its help text below (``ember train --help`` prints them all).

    Raises (``validate``, ``check_choice``): ValueError naming the flag and the valid values.
    """
    model: str = _option("lenet5", "model: {choices}", choices=lambda: sorted(MODELS), resume="fixed")
    dataset: str = _option("fashion-mnist", "dataset: {choices}", choices=lambda: list(DATASETS),
                          resume="fixed")
    data_dir: str | None = _option(None, "folder holding the data set's files (IDX; CIFAR-10's binary files, "
                                   "pictures or their zip; for imagefolder, required: a folder or zip of "
                                   "class folders, or of train/ and test/ ones) (default: $EMBER_DATA/<name>, "
                                   "/usr/share/datasets/<name>, ~/.cache/ember/<name>)", metavar="DIR")
    test_split: float | None = _option(None, "--dataset imagefolder whose --data-dir has no train/ and test/ "
                                       "folders: fraction of each class held out as the test set (default: 0.2)",
                                       metavar="F", resume="fixed")
    download: bool = _option(False, "fetch the data set over the network (checksummed) if it is not found")
    epochs: int = _option(10, "passes over the training set", minimum=1)
    batch_size: int = _option(64, "images per optimizer step", minimum=1, resume="fixed")
    lr: float = _option(0.05, "peak learning rate", resume="meaning")
    momentum: float = _option(0.9, "momentum of sgd, in [0, 1) (onecycle cycles it between 0.85 and 0.95)",
                              resume="meaning")
    nesterov: bool = _option(True, "Nesterov momentum for sgd (off: classical momentum)", resume="meaning")
    weight_decay: float = _option(5e-4, "L2 penalty on weights, not biases", resume="meaning")
    seed: int = _option(0, "seed of ember's generator (initialisation, shuffling, dropout, augmentation)",
                        resume="fixed")
    out: str | None = _option(None, "run folder (default: a new runs/<model>-<dataset>/<YYYYmmdd-HHMMSS>; "
                              "a folder holding another run is refused without --resume or --overwrite)",
                              metavar="DIR")
    overwrite: bool = _option(False, "let --out be a folder that holds another run (its files are replaced)")
    progress: bool = _option(True, "a progress bar per epoch")
    detect_anomaly: bool = _option(False, "stop at the first op whose output or gradient is NaN/inf, "
                                   "naming it and its call site (slow; for debugging)")
    optimizer: str = _option("sgd", "optimizer: {choices} (try --lr 1e-3 for the adaptive ones)",
                             choices=lambda: list(OPTIMIZERS), resume="fixed")
    schedule: str = _option("cosine", "learning-rate schedule: {choices} (cosine: per step)",
                            choices=lambda: list(SCHEDULES), resume="fixed")
    warmup: float = _option(0.0, "epochs of linear learning-rate warm-up", resume="fixed")
    augment: bool = _option(False, "random shifts (crop with 2-pixel padding on 28×28, 4 on 32×32) and "
                            "horizontal flips", resume="meaning")
    val_split: float = _option(0.0, "fraction of the training set held out for validation", resume="fixed")
    patience: int = _option(0, "early stopping: stop after this many epochs without a better validation "
                            "loss (0: never; needs --val-split)", minimum=0)
    resume: str | None = _option(None, "continue the run saved in DIR, bit for bit, in DIR unless --out says "
                                 "otherwise, with the flags saved in DIR/config.json (a flag given here "
                                 "overrides its saved value); may change only the other flags ({safe}: "
                                 "--epochs to extend); a changed {meaning} needs --allow-changed-flags; {fixed} never change "
                                 "(default: start afresh)", metavar="DIR")
    allow_changed_flags: bool = _option(False, "with --resume: continue with a changed {meaning} (the new "
                                        "values apply from the resumed epoch on; metrics.json records them "
                                        "under resume_changes)")
    threads: int | None = _option(None, "ember's threads: BLAS and the ops that split large work (conv2d, ReLU, "
                                  "pooling) (default: NumPy's setting; under mpiexec: cores ÷ ranks)", minimum=1)
    subset: int | None = _option(None, "train and test on only N images of each split, a fixed "
                                 "random sample (smoke runs; default: all)", minimum=1, metavar="N",
                                 resume="fixed")
    timeout: float = _option(1800.0, "under mpiexec: seconds a rank waits for the others in a collective "
                             "before stopping with an error naming the lost rank")

    def check_choice(self, name: str) -> None:
        """Raise ValueError("unknown <name> <value>; valid <name>s: ...") if the named field
        (model, dataset, optimizer or schedule) holds a name its registry does not know."""
        valid = _FIELDS[name].metadata["choices"]()
        value = getattr(self, name)
        if value not in valid:
            raise ValueError(f"unknown {name} {value!r}; valid {name}s: {', '.join(valid)}")

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting (as its ``--flag``)."""
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if meta["choices"] is not None:
                self.check_choice(f.name)
            if meta["minimum"] is not None and value is not None and value < meta["minimum"]:
                raise ValueError(f"{_flag(f.name)} must be at least {meta['minimum']}, got {value}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if not math.isfinite(self.lr):
            raise ValueError(f"--lr must be finite, got {self.lr}")
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"--weight-decay must be non-negative and finite, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"--momentum must be in [0, 1), got {self.momentum}")
        if not 0 <= self.warmup <= self.epochs:
            raise ValueError(f"--warmup must be between 0 and --epochs ({self.epochs}), got {self.warmup}")
        if self.test_split is not None and (self.dataset != "imagefolder" or not 0 < self.test_split < 1):
            raise ValueError(f"--test-split must be in (0, 1), got {self.test_split}" if self.dataset == "imagefolder"
                             else f"--test-split applies to --dataset imagefolder only, not {self.dataset}")
        if not 0 <= self.val_split < 1:
            raise ValueError(f"--val-split must be in [0, 1), got {self.val_split}")
        if self.patience and not self.val_split:
            raise ValueError("--patience needs a validation set: pass --val-split (e.g. 0.1)")
        if not self.timeout > 0:
            raise ValueError(f"--timeout must be positive, got {self.timeout}")
        if self.resume is not None and not os.path.isdir(self.resume):
            raise ValueError(f"--resume {self.resume}: no such run folder")
        self._check_combinations()

    def _check_combinations(self) -> None:
        """Refuse flags that are each valid but cannot work together (the step-level rehearsal of
        the schedule, once the steps per epoch are known, is ``schedules.rehearse``)."""
        if self.schedule == "onecycle" and self.warmup >= self.epochs:
            raise ValueError(onecycle_warmup_message(self))

    def resume_changes(self, saved: dict) -> tuple[list[str], list[str]]:
        """Compare with the ``config.json`` dict of the run being resumed: (changes refused unless
        ``--allow-changed-flags``, changes always refused), each "--flag old -> new", from the
        fields' ``resume`` metadata ("meaning", "fixed"). Fields absent from ``saved`` are not compared."""
        out: dict = {"meaning": [], "fixed": []}
        for f in dataclasses.fields(self):
            kind, new = f.metadata["resume"], getattr(self, f.name)
            if kind and f.name in saved and saved[f.name] != new:
                out[kind].append(f"{_flag(f.name)} {saved[f.name]} -> {new}")
        return out["meaning"], out["fixed"]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainConfig:
        """The config of parsed ``ember train`` options (see ``add_arguments``); not validated,
        except that a flag given on the command line which the chosen optimizer or schedule would
        silently ignore is refused.

        With ``--resume DIR`` every flag not given on the command line takes its value from
        ``DIR/config.json`` (except the ones of this invocation: ``--out``, ``--overwrite``, the
        display flags, ``--download``), so ``ember train --resume DIR`` alone continues the run as
        it was started, as PyTorch scripts reload their own settings with the checkpoint.

        Raises: ValueError naming both flags (e.g. ``--momentum`` with ``--optimizer adam``).
        """
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
        given = getattr(args, "_given", set())
        if values["resume"] is not None:   # continue the run as it was started: its flags are the defaults
            values.update({k: v for k, v in _saved_flags(values["resume"]).items()
                           if k in _FIELDS and k not in given and k not in _PER_INVOCATION})
        cfg = cls(**values)
        for name in ("momentum", "nesterov"):
            flag = _flag(name) if name == "momentum" or cfg.nesterov else "--no-nesterov"
            if name in given and cfg.optimizer != "sgd":
                raise ValueError(f"{flag} applies to --optimizer sgd only, not --optimizer {cfg.optimizer} "
                                 f"(which uses PyTorch's defaults); drop {flag}")
        if "momentum" in given and cfg.schedule == "onecycle" and cfg.optimizer == "sgd":
            raise ValueError("--momentum is ignored by --schedule onecycle, which cycles the momentum between "
                             "0.95 and 0.85 itself; drop --momentum or choose another --schedule")
        return cfg

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        """The config saved as ``config.json``; keys this version does not know are ignored."""
        return cls(**{k: v for k, v in raw.items() if k in _FIELDS})


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# Flags of one invocation, not of the run: ``--resume`` never takes them from the saved config.
_PER_INVOCATION = ("out", "overwrite", "progress", "detect_anomaly", "download", "resume", "allow_changed_flags")


def _saved_flags(folder: str) -> dict:
    """``folder/config.json`` as a dict; {} when it is missing or unreadable (loading the
    checkpoint then reports what is wrong with the folder, naming the file)."""
    try:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class _Switch(argparse.Action):
    """``--x`` sets a bool field, ``--no-x`` clears it. Help shows only the spelling that changes
    the default (``--augment``, ``--no-nesterov``); the other one is still accepted, hidden."""

    def __init__(self, option_strings, dest, default=None, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, not option_string.startswith("--no-"))
        _mark_given(namespace, self.dest)


class _Store(argparse._StoreAction):
    """argparse's plain store, remembering that the flag was given (``TrainConfig.from_args``
    refuses flags the chosen optimizer or schedule would ignore)."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        _mark_given(namespace, self.dest)


def _mark_given(namespace, dest: str) -> None:
    namespace._given = getattr(namespace, "_given", set()) | {dest}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one option per ``TrainConfig`` field to ``parser``: its name with dashes, its default,
    its type (from the annotation; ``X | None`` takes an X), its help text and, for names, argparse
    ``choices`` (so ``--help`` and a typo's message list the valid names)."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        meta, kind = f.metadata, hints[f.name]
        text = meta["help"].replace("{choices}", ", ".join(meta["choices"]()) if meta["choices"] else "")
        for group in ("safe", "meaning", "fixed"):  # the flags of each kind of the ``resume`` metadata
            text = text.replace("{%s}" % group, ", ".join(_flag(n) for n, g in _FIELDS.items()
                                                          if (g.metadata["resume"] or "safe") == group
                                                          and n not in ("resume", "allow_changed_flags")))
        if "default" not in text:
            text += " (default: %(default)s)"
        if kind is bool:
            on, off = _flag(f.name), "--no-" + _flag(f.name)[2:]
            shown, hidden = (off, on) if f.default else (on, off)
            text = text.replace(" (default: %(default)s)", "")
            parser.add_argument(shown, action=_Switch, dest=f.name, default=f.default,
                                help=f"turn off (on by default): {text}" if f.default else text)
            parser.add_argument(hidden, action=_Switch, dest=f.name, default=f.default, help=argparse.SUPPRESS)
            continue
        kind = next(t for t in typing.get_args(kind) or (kind,) if t is not type(None))
        parser.add_argument(_flag(f.name), action=_Store, type=kind, default=f.default, help=text,
                            metavar=meta["metavar"] or ("NAME" if meta["choices"] else None),
                            choices=meta["choices"]() if meta["choices"] else None)
