"""What ``ember train`` writes to its run folder, and how ``ember evaluate`` and ``--resume`` read it.

A run folder holds, after every epoch: ``model.safetensors`` (the weights, PyTorch's state-dict
names), ``config.json`` (the ``TrainConfig``), ``metrics.json`` (``save_run``) plus
``resume.safetensors``: ONE file, written atomically, holding everything
``--resume`` needs — the weights (``model.*``), the optimizer's per-parameter arrays
(``optimizer.<index>.<name>``) and, as a JSON byte array under ``train_state``, the epoch, global
step, optimizer hyper-parameters and scalars, schedule state, early-stopping state, metrics and
ember's RNG state. Being one file, a kill at any moment leaves either the old epoch's state or the
new one, never a mix, and its SHA-256 (``ember.serialization``) covers all of it. Restoring it at an epoch
boundary makes the continued run bit-for-bit the uninterrupted one: same weights, same data
order, same dropout and augmentation draws.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np

from ..serialization import CheckpointError, atomic_write_json, load_state_dict, read_json, save_state_dict
from ..models import get_model
from ..random import get_rng_state, set_rng_state
from .config import TrainConfig
from .data import saved_model_kwargs
from .runs import find_run

RESUME_FILE = "resume.safetensors"


class NonFiniteError(CheckpointError):
    """Weights or optimizer state hold NaN/inf: such a model is never saved, and never evaluated."""


def non_finite(arrays: dict) -> list[str]:
    """The names of the floating-point arrays of a name -> ndarray dict that hold a NaN or an inf."""
    return [k for k, v in arrays.items()
            if np.issubdtype(np.asarray(v).dtype, np.floating) and not np.isfinite(v).all()]


def save_epoch(folder, model, optimizer, schedule, cfg, metrics: dict, extra: dict, weights: bool = True) -> None:
    """The one save path of ``ember train``: refuse non-finite weights or optimizer state, then
    write ``resume.safetensors`` and ``save_run``'s files. Nothing is written when the check fails,
    so the previous epoch's good checkpoint stays. ``weights`` as in ``save_run``.

    Raises: NonFiniteError naming the first tensors that hold NaN/inf.
    """
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optimizer.{i}.{k}": v for i, s in optimizer.state_dict()["state"].items()
                   for k, v in s.items() if isinstance(v, (np.ndarray, float, np.floating))})
    bad = non_finite(arrays)
    if bad:
        raise NonFiniteError(f"non-finite values in {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}")
    save_train_state(folder, model, optimizer, schedule, extra)  # first: a failure in it leaves the epoch before whole
    save_run(folder, model, cfg, metrics, weights=weights)


def save_run(folder, model, cfg, metrics: dict, weights: bool = True) -> None:
    """Write ``model.safetensors`` (unless ``weights`` is False: an epoch worse than the best
    keeps the best epoch's file), ``config.json`` and ``metrics.json`` into ``folder``, each atomically.

    ``metrics.json`` is strict JSON: a NaN/inf metric is written as null, and its ``status`` says
    which ("ok" when every value is finite).
    """
    if weights:
        save_state_dict(model.state_dict(), os.path.join(folder, "model.safetensors"),
                        metadata={"model": cfg.model, "dataset": cfg.dataset})
    atomic_write_json(os.path.join(folder, "config.json"), dataclasses.asdict(cfg))
    bad = [f"epochs[{i}].{k}" for i, row in enumerate(metrics.get("epochs", []))
           for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
    status = f"non-finite values written as null: {', '.join(bad)}" if bad else "ok"
    atomic_write_json(os.path.join(folder, "metrics.json"), dict(metrics, status=status))


def read_config(folder: str) -> TrainConfig:
    """The ``TrainConfig`` of a run folder's ``config.json``, its model and dataset checked.

    Raises: CheckpointError naming config.json if it is missing, unreadable (e.g. a folder), not a
        JSON object, or names a model or data set this ember does not know.
    """
    path = os.path.join(folder, "config.json")
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object of train settings, got a {type(raw).__name__}")
    try:
        cfg = TrainConfig.from_dict(raw)
        cfg.check_choice("model")
        cfg.check_choice("dataset")
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: {e}") from None
    return cfg


def load_checkpoint(folder: str):
    """Rebuild the model saved in a run folder; returns (model in eval mode, TrainConfig).
    ``folder`` may also be a folder of runs: the newest run in it is loaded (``runs.find_run``).

    ``folder`` may also be the run folder's ``model.safetensors`` itself.
    Raises: ember.serialization.CheckpointError naming the missing or corrupt file, or saying
        that the weights do not fit the model named in config.json, or that they hold NaN/inf;
        FileNotFoundError when there is no run folder there.
    """
    folder = find_run(folder)   # also `run/model.safetensors` itself
    cfg = read_config(folder)
    path = os.path.join(folder, "model.safetensors")
    state = load_state_dict(path)
    model = get_model(cfg.model, **saved_model_kwargs(cfg, state))   # imagefolder: its channels and classes
    bad = non_finite(state)
    if bad:
        raise NonFiniteError(f"{path}: the weights hold NaN/inf ({', '.join(bad[:3])}); this model diverged "
                             f"and cannot be evaluated")
    try:
        model.load_state_dict(state)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{folder}: weights do not fit model {cfg.model!r}: {e}") from None
    return model.eval(), cfg


def save_train_state(folder, model, optimizer, schedule, extra: dict) -> None:
    """Write ``resume.safetensors``: weights, optimizer arrays and the JSON state, one atomic file."""
    sd = optimizer.state_dict()
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    scalars = {}
    for i, s in sd["state"].items():
        for k, v in s.items():
            if isinstance(v, np.ndarray):
                arrays[f"optimizer.{i}.{k}"] = v
            else:
                scalars.setdefault(str(i), {})[k] = v.item() if isinstance(v, np.generic) else v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    state = dict(extra, optimizer_groups=groups, optimizer_scalars=scalars, schedule=schedule.state_dict(),
                 rng=get_rng_state())
    arrays["train_state"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    save_state_dict(arrays, os.path.join(folder, RESUME_FILE))


def read_train_state(folder) -> tuple[dict, dict]:
    """Read ``resume.safetensors`` (SHA-256 verified): (the JSON state, the arrays by name).

    Raises: ember.serialization.CheckpointError naming the file if it is missing, truncated or altered.
    """
    arrays = load_state_dict(os.path.join(folder, RESUME_FILE))
    if "train_state" not in arrays:
        raise CheckpointError(f"{os.path.join(folder, RESUME_FILE)}: no train_state in this file")
    return json.loads(arrays.pop("train_state").tobytes()), arrays


def load_train_state(folder, cfg, model, optimizer, schedule) -> dict:
    """Restore model, optimizer, schedule and RNG from a run folder; return the saved extras
    (epoch, step, metrics, early-stopping state).

    Raises: ember.serialization.CheckpointError naming the missing file, or — for a checkpoint of another
        model or optimizer — the keys and shapes that differ.
    """
    state, arrays = read_train_state(folder)
    saved_cfg = state.get("config", {})
    weights = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except (KeyError, ValueError) as e:
        msg = e.args[0] if e.args else e  # (a KeyError's str() adds quotes)
        raise CheckpointError(f"--resume {folder}: the checkpoint (model {saved_cfg.get('model')!r}) does not fit "
                                 f"model {cfg.model!r}: {msg}") from None
    meaning, fixed = cfg.resume_changes(saved_cfg)
    if fixed or (meaning and not cfg.allow_changed_flags):
        hint = "start a new run" if fixed else "pass --allow-changed-flags to continue with them anyway"
        raise CheckpointError(f"--resume {folder}: the run was saved with other flags "
                              f"({'; '.join(fixed + meaning)}); {hint}")
    per_param: dict = {}
    for key, v in arrays.items():
        if key.startswith("optimizer."):
            i, k = key[len("optimizer."):].split(".", 1)
            per_param.setdefault(int(i), {})[k] = v
    for i, s in state["optimizer_scalars"].items():
        per_param.setdefault(int(i), {}).update(s)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    bad = [f"optimizer state {i}.{k}: checkpoint shape {tuple(v.shape)}, parameter shape {tuple(params[i].shape)}"
           for i, s in per_param.items() if i < len(params)
           for k, v in s.items() if isinstance(v, np.ndarray) and v.shape != params[i].shape]
    try:
        if bad:
            raise ValueError("; ".join(bad))
        optimizer.load_state_dict({"state": per_param, "param_groups": state["optimizer_groups"]})
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"--resume {folder}: the optimizer state does not fit: {e}") from None
    schedule.load_state_dict(state["schedule"])
    set_rng_state(state["rng"])
    if meaning:
        _apply_changed_flags(cfg, saved_cfg, optimizer, schedule)
        state["metrics"].setdefault("resume_changes", []).append({"after_epoch": state["epoch"], "flags": meaning})
    return state


def _apply_changed_flags(cfg, saved_cfg: dict, optimizer, schedule) -> None:
    """With --allow-changed-flags: put the new --lr (scaling the schedule's base rates), --momentum,
    --nesterov and --weight-decay into the restored optimizer (--augment is read by the loop).

    Raises: ValueError for --weight-decay when the saved run had none (its decayed and undecayed
    parameter groups cannot be told apart, so the new value could not be applied: refused, never ignored)."""
    if saved_cfg.get("weight_decay", cfg.weight_decay) == 0 and cfg.weight_decay != 0:
        raise ValueError(f"--weight-decay {cfg.weight_decay}: the resumed run was trained without weight decay, "
                         f"which cannot be turned on when resuming; start a new run instead")
    scale = cfg.lr / saved_cfg.get("lr", cfg.lr)
    for group in optimizer.param_groups:
        for key in ("lr", "initial_lr", "max_lr", "min_lr"):
            if key in group:
                group[key] *= scale
        if "momentum" in group and cfg.optimizer == "sgd":
            group.update(momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
        if group.get("weight_decay"):
            group["weight_decay"] = cfg.weight_decay
    per_step = schedule.per_step
    if per_step is not None and hasattr(per_step, "base_lrs"):
        per_step.base_lrs = [b * scale for b in per_step.base_lrs]
