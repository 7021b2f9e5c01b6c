"""The pieces of ``ember train`` beyond the loop: optimizer and schedule choice, and the resumable
training state (``--resume``).

A run folder holds, after every epoch: ``model.safetensors``, ``config.json``, ``metrics.json``
(see ``ember.train``) plus ``resume.safetensors``: ONE file, written atomically, holding everything
``--resume`` needs — the weights (``model.*``), the optimizer's per-parameter arrays
(``optimizer.<index>.<name>``) and, as a JSON byte array under ``train_state``, the epoch, global
step, optimizer hyper-parameters and scalars, schedule state, early-stopping state, metrics and
ember's RNG state. Being one file, a kill at any moment leaves either the old epoch's state or the
new one, never a mix, and its SHA-256 (``ember.io``) covers all of it. Restoring it at an epoch
boundary makes the continued run bit-for-bit the uninterrupted one: same weights, same data
order, same dropout and augmentation draws.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from . import io
from .nn.utils import param_groups_no_bias_decay
from .optim import SGD, Adagrad, Adam, AdamW, RMSprop, lr_scheduler
from .random import get_rng_state, set_rng_state

OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}
SCHEDULES = ("none", "step", "cosine", "onecycle", "plateau")
RESUME_FILE = "resume.safetensors"


def build_optimizer(model, cfg):
    """The optimizer ``cfg.optimizer`` over two groups: weights with ``cfg.weight_decay``, biases
    without (deck 000). SGD also takes ``momentum`` and ``nesterov``; the others use PyTorch's
    defaults for everything but lr and weight decay (AdamW's decay is decoupled).

    Raises: ValueError listing the valid names for an unknown optimizer.
    """
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; valid optimizers: {', '.join(OPTIMIZERS)}")
    groups = param_groups_no_bias_decay(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    return OPTIMIZERS[cfg.optimizer](groups, lr=cfg.lr)


class Schedule:
    """The learning-rate policy of a run: ``after_step()`` after every optimizer step,
    ``after_epoch(metric)`` after every epoch.

    Schedules (``cfg.schedule``; T = epochs·steps_per_epoch steps, W = warmup·steps_per_epoch):
        none      constant lr
        step      lr·0.1^⌊epoch / max(1, epochs // 3)⌋ (StepLR-style, three drops per run)
        cosine    lr·(1 + cos(π t/T))/2 per step (Loshchilov & Hutter 2017; the default)
        onecycle  OneCycleLR(max_lr=lr, total_steps=T, pct_start=W/T or 0.3) (Smith & Topin 2017)
        plateau   ReduceLROnPlateau(factor=0.1, patience=2) on the validation loss
                  (the training loss without --val-split)
    ``warmup`` > 0 multiplies the first W steps by (t + 1)/W (linear warm-up; for onecycle it
    sets the rising phase instead). All built on ``ember.optim.lr_scheduler``.
    Raises: ValueError listing the valid names for an unknown schedule.
    """

    def __init__(self, optimizer, cfg, steps_per_epoch: int):
        if cfg.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {cfg.schedule!r}; valid schedules: {', '.join(SCHEDULES)}")
        total = cfg.epochs * steps_per_epoch
        warm = int(round(cfg.warmup * steps_per_epoch))
        self.warm, self.plateau, self.name = warm, None, cfg.schedule
        if cfg.schedule == "onecycle":
            self.per_step = lr_scheduler.OneCycleLR(
                optimizer, max_lr=cfg.lr, total_steps=total, pct_start=warm / total if warm else 0.3,
                cycle_momentum=cfg.optimizer in ("sgd", "adam", "adamw"))
            return
        drop_every = max(1, cfg.epochs // 3) * steps_per_epoch

        def factor(t):
            w = min(1.0, (t + 1) / warm) if warm else 1.0
            if cfg.schedule == "cosine":
                return w * (0.5 * (1 + math.cos(math.pi * t / total)))
            if cfg.schedule == "step":
                return w * 0.1 ** (t // drop_every)
            return w
        self.per_step = lr_scheduler.LambdaLR(optimizer, factor) if cfg.schedule != "plateau" or warm else None
        if cfg.schedule == "plateau":
            self.plateau = lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=2)

    def after_step(self) -> None:
        if self.per_step is not None and (self.plateau is None or self.per_step.last_epoch < self.warm):
            self.per_step.step()

    def after_epoch(self, metric: float) -> None:
        if self.plateau is not None:
            self.plateau.step(metric)

    def state_dict(self) -> dict:
        def plain(sd):  # JSON-able values only (OneCycleLR keeps its annealing function)
            return None if sd is None else {k: v for k, v in sd.items() if not callable(v)}
        return {"per_step": plain(self.per_step and self.per_step.state_dict()),
                "plateau": plain(self.plateau and self.plateau.state_dict())}

    def load_state_dict(self, sd: dict) -> None:
        for name in ("per_step", "plateau"):
            if getattr(self, name) is not None and sd.get(name) is not None:
                getattr(self, name).load_state_dict(sd[name])


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
    io.save_state_dict(arrays, os.path.join(folder, RESUME_FILE))


def read_train_state(folder) -> tuple[dict, dict]:
    """Read ``resume.safetensors`` (SHA-256 verified): (the JSON state, the arrays by name).

    Raises: ember.io.CheckpointError naming the file if it is missing, truncated or altered.
    """
    arrays = io.load_state_dict(os.path.join(folder, RESUME_FILE))
    if "train_state" not in arrays:
        raise io.CheckpointError(f"{os.path.join(folder, RESUME_FILE)}: no train_state in this file")
    return json.loads(arrays.pop("train_state").tobytes()), arrays


def load_train_state(folder, cfg, model, optimizer, schedule) -> dict:
    """Restore model, optimizer, schedule and RNG from a run folder; return the saved extras
    (epoch, step, metrics, early-stopping state).

    Raises: ember.io.CheckpointError naming the missing file, or — for a checkpoint of another
        model or optimizer — the keys and shapes that differ.
    """
    state, arrays = read_train_state(folder)
    saved_cfg = state.get("config", {})
    weights = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except (KeyError, ValueError) as e:
        msg = e.args[0] if e.args else e  # (a KeyError's str() adds quotes)
        raise io.CheckpointError(f"--resume {folder}: the checkpoint (model {saved_cfg.get('model')!r}) does not fit "
                                 f"model {cfg.model!r}: {msg}") from None
    if saved_cfg.get("optimizer", "sgd") != cfg.optimizer:
        raise io.CheckpointError(f"--resume {folder}: the checkpoint was trained with optimizer "
                                 f"{saved_cfg.get('optimizer')!r}, not {cfg.optimizer!r}")
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
        raise io.CheckpointError(f"--resume {folder}: the optimizer state does not fit: {e}") from None
    schedule.load_state_dict(state["schedule"])
    set_rng_state(state["rng"])
    return state
