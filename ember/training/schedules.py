"""The optimizer and the learning-rate policy of an ``ember train`` run.

``OPTIMIZERS`` and ``SCHEDULES`` are the names ``--optimizer`` and ``--schedule`` accept (the CLI
lists them from here, through ``TrainConfig``'s field metadata); ``TrainConfig.check_choice``
is where a bad name is refused.
"""
from __future__ import annotations

import math

from ..nn.utils import param_groups_no_bias_decay
from ..optim import SGD, Adagrad, Adam, AdamW, RMSprop, lr_scheduler

OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}
SCHEDULES = ("none", "step", "cosine", "onecycle", "plateau")


def build_optimizer(model, cfg):
    """The optimizer ``cfg.optimizer`` over two groups: weights with ``cfg.weight_decay``, biases
    without (deck 000: D = Δ/n + λΘ with no penalty on the bias terms). SGD also takes
    ``momentum`` and ``nesterov``; the others use PyTorch's defaults for everything but lr and
    weight decay (AdamW's decay is decoupled).

    Args: model (ember.nn.Module); cfg (TrainConfig).
    Raises: ValueError listing the valid names for an unknown optimizer.
    """
    cfg.check_choice("optimizer")
    groups = param_groups_no_bias_decay(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    return OPTIMIZERS[cfg.optimizer](groups, lr=cfg.lr)


def onecycle_warmup_message(cfg) -> str:
    """The error for a onecycle warm-up that leaves no annealing phase (OneCycleLR would divide by
    zero at the run's last step, as torch's does)."""
    return (f"--schedule onecycle needs --warmup below --epochs (the warm-up is its rising phase, the rest of "
            f"the run anneals), got --warmup {cfg.warmup:g} --epochs {cfg.epochs}")


class Schedule:
    """The learning-rate policy of a run: ``after_step()`` after every optimizer step,
    ``after_epoch(metric)`` after every epoch. Building it sets the lr of step 0.

    Schedules (``cfg.schedule``; T = epochs·steps_per_epoch steps, W = warmup·steps_per_epoch):
        none      constant lr
        step      lr·0.1^⌊epoch / max(1, epochs // 3)⌋ (StepLR-style, three drops per run)
        cosine    lr·(1 + cos(π t/T))/2 per step (``lr_scheduler.cosine_factor``; Loshchilov &
                  Hutter 2017; the default)
        onecycle  OneCycleLR(max_lr=lr, total_steps=T, pct_start=W/T or 0.3) (Smith & Topin 2017)
        plateau   ReduceLROnPlateau(factor=0.1, patience=2) on the validation loss
                  (the training loss without --val-split)
    ``warmup`` > 0 multiplies the first W steps by (t + 1)/W (linear warm-up; for onecycle it
    sets the rising phase instead). All built on ``ember.optim.lr_scheduler``.

    Args: optimizer; cfg (TrainConfig: schedule, epochs, warmup, lr, optimizer);
        steps_per_epoch (int ≥ 1).
    Raises: ValueError listing the valid names for an unknown schedule.
    """

    def __init__(self, optimizer, cfg, steps_per_epoch: int):
        cfg.check_choice("schedule")
        total = cfg.epochs * steps_per_epoch
        warm = int(round(cfg.warmup * steps_per_epoch))
        if cfg.warmup > 0 and warm == 0:
            raise ValueError(f"--warmup {cfg.warmup:g} is less than one step ({steps_per_epoch} steps per epoch "
                             f"at --batch-size {cfg.batch_size}); pass at least {1 / steps_per_epoch:.2g} or 0")
        if cfg.schedule == "onecycle" and warm >= total:
            raise ValueError(onecycle_warmup_message(cfg))
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
                return w * lr_scheduler.cosine_factor(t, total)
            if cfg.schedule == "step":
                return w * 0.1 ** (t // drop_every)
            return w
        self.per_step = lr_scheduler.LambdaLR(optimizer, factor) if cfg.schedule != "plateau" or warm else None
        if cfg.schedule == "plateau":
            self.plateau = lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=2)

    def after_step(self) -> None:
        """Advance the per-step schedule (during warm-up only, for plateau)."""
        if self.per_step is not None and (self.plateau is None or self.per_step.last_epoch < self.warm):
            self.per_step.step()

    def after_epoch(self, metric: float) -> None:
        """Give plateau the epoch's monitored loss (no-op for the other schedules)."""
        if self.plateau is not None:
            self.plateau.step(metric)

    def state_dict(self) -> dict:
        """JSON-able state of both schedulers (for ``resume.safetensors``)."""
        def plain(sd):  # JSON-able values only (OneCycleLR keeps its annealing function)
            return None if sd is None else {k: v for k, v in sd.items() if not callable(v)}
        return {"per_step": plain(self.per_step and self.per_step.state_dict()),
                "plateau": plain(self.plateau and self.plateau.state_dict())}

    def load_state_dict(self, sd: dict) -> None:
        """Restore a ``state_dict()``."""
        for name in ("per_step", "plateau"):
            if getattr(self, name) is not None and sd.get(name) is not None:
                getattr(self, name).load_state_dict(sd[name])


def rehearse(cfg, steps_per_epoch: int) -> None:
    """Check that ``cfg``'s optimizer and schedule can run the whole run before any training:
    build them on a one-unit model and step the schedule through every step and epoch
    (milliseconds; no data, no gradients). Every learning rate must be a finite number ≥ 0.

    Raises: ValueError naming the flags (--optimizer, --schedule, --warmup, --epochs) and the step
        where the schedule failed, instead of a crash after a whole epoch of training.
    """
    from ..nn import Linear
    flags = (f"--optimizer {cfg.optimizer} --schedule {cfg.schedule} --warmup {cfg.warmup:g} "
             f"--epochs {cfg.epochs}")
    opt = build_optimizer(Linear(1, 1), cfg)
    schedule = Schedule(opt, cfg, steps_per_epoch)  # its own ValueErrors already name the flags
    step, total = 0, cfg.epochs * steps_per_epoch
    try:
        for _ in range(cfg.epochs):
            for _ in range(steps_per_epoch):
                lrs = [g["lr"] for g in opt.param_groups]
                if not all(math.isfinite(lr) and lr >= 0 for lr in lrs):
                    raise ValueError(f"learning rate {lrs[0]}")
                schedule.after_step()
                step += 1
            schedule.after_epoch(1.0)
    except (ArithmeticError, ValueError) as e:
        raise ValueError(f"{flags}: the learning-rate schedule fails at step {step} of {total} "
                         f"({type(e).__name__}: {e}); change one of these flags") from None
