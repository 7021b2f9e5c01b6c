"""The training loop behind ``ember train``: LeNet-5 on Fashion-MNIST by default.

One epoch = shuffled minibatches of SGD (deck 001/002: minibatch SGD with momentum), with the
learning rate following a cosine decay from ``lr`` to 0 over the whole run (Loshchilov & Hutter
2017), then an evaluation on the test set. After every epoch the run folder gets, atomically:
``model.safetensors`` (weights, PyTorch's state-dict names), ``config.json`` and ``metrics.json``.
Options (``TrainConfig``; the pieces live in ``ember.train_state``): the optimizer (sgd, adam,
adamw, rmsprop, adagrad), the schedule (none, step, cosine, onecycle, plateau) with linear
warm-up, batch augmentation (``ember.data.transforms``), a validation split with early stopping,
BLAS threads, and ``resume``: ``resume.safetensors`` (one atomic file: weights, optimizer,
schedule, epoch, metrics and RNG state) lets a run continue bit for bit after an interruption.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time

import numpy as np

from . import io, nn, viz
from .autograd import no_grad
from .data import DataLoader, TensorDataset, datasets
from .models import get_model
from .nn import functional as F
from .data import transforms
from .random import default_generator, manual_seed
from .tensor import Tensor
from .train_state import OPTIMIZERS, SCHEDULES, Schedule, build_optimizer, load_train_state, save_train_state

# Per-dataset pixel mean and std (of [0, 1]-scaled training images), for input normalisation.
DATASETS = {
    "fashion-mnist": (datasets.FashionMNIST, 0.2860, 0.3530),
    "mnist": (datasets.MNIST, 0.1307, 0.3081),
}


class TrainingError(RuntimeError):
    """Training stopped (e.g. a non-finite loss); the message says where and what was kept."""


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a run (saved as ``config.json``). Defaults are the README's figures."""
    model: str = "lenet5"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    seed: int = 0
    out: str = "runs/lenet5-fashion-mnist"
    progress: bool = True
    detect_anomaly: bool = False
    optimizer: str = "sgd"           # one of train_state.OPTIMIZERS
    schedule: str = "cosine"         # one of train_state.SCHEDULES (per-step cosine decay by default)
    warmup: float = 0.0              # epochs of linear learning-rate warm-up
    augment: bool = False            # random 2-pixel shifts and horizontal flips
    val_split: float = 0.0           # fraction of the training set held out for validation
    patience: int = 0                # early stopping: epochs without a better val loss (0: off)
    resume: str | None = None        # run folder to continue from (see train_state)
    threads: int | None = None       # BLAS threads (ember.threads.set_num_threads)

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; valid datasets: {', '.join(DATASETS)}")
        get_model(self.model)  # raises ValueError listing valid models
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"--momentum must be in [0, 1), got {self.momentum}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid optimizers: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid schedules: {', '.join(SCHEDULES)}")
        if not 0 <= self.warmup <= self.epochs:
            raise ValueError(f"--warmup must be between 0 and --epochs ({self.epochs}), got {self.warmup}")
        if not 0 <= self.val_split < 1:
            raise ValueError(f"--val-split must be in [0, 1), got {self.val_split}")
        if self.patience < 0:
            raise ValueError(f"--patience must be at least 0, got {self.patience}")
        if self.patience and not self.val_split:
            raise ValueError("--patience needs a validation set: pass --val-split (e.g. 0.1)")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {self.threads}")
        if self.resume is not None and not os.path.isdir(self.resume):
            raise ValueError(f"--resume {self.resume}: no such run folder")


def load_data(name: str, data_dir: str | None, train: bool):
    """Return (images, labels): normalised float32 (N, 1, 28, 28) and int64 (N,) arrays."""
    cls, mean, std = DATASETS[name]
    ds = cls(root=data_dir, train=train)
    x = ((ds.data.astype(np.float32) / 255 - mean) / std).astype(np.float32)
    return x[:, None], ds.targets.astype(np.int64)


def cosine_lr(base_lr: float, step: int, total_steps: int) -> float:
    """lr_t = base_lr · (1 + cos(π t / T)) / 2: from base_lr at t = 0 to 0 at t = T."""
    return base_lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1000):
    """Return (mean cross-entropy, accuracy in [0, 1]) of ``model`` on arrays x, y (no graph)."""
    model.eval()
    total_loss, correct = 0.0, 0
    with no_grad():
        for i in range(0, len(x), batch_size):
            logits = model(Tensor(x[i:i + batch_size]))
            yb = y[i:i + batch_size]
            total_loss += F.cross_entropy(logits, yb, reduction="sum").item()
            correct += int((logits.data.argmax(1) == yb).sum())
    return total_loss / len(x), correct / len(x)


def _save(model, cfg, metrics, out):
    io.save_state_dict(model.state_dict(), os.path.join(out, "model.safetensors"),
                       metadata={"model": cfg.model, "dataset": cfg.dataset})
    io.atomic_write_json(os.path.join(out, "config.json"), dataclasses.asdict(cfg))
    io.atomic_write_json(os.path.join(out, "metrics.json"), metrics)


def train(cfg: TrainConfig, log=print) -> dict:
    """Train ``cfg.model`` on ``cfg.dataset`` and return the metrics dict (also in metrics.json).

    Raises:
        ValueError: an invalid setting.
        ember.data.DatasetNotFoundError: the data folder is missing.
        TrainingError: the loss became NaN/inf (the last good checkpoint is kept).
        ember.autograd.AnomalyError: with ``cfg.detect_anomaly``, the first op whose output or
            gradient is NaN/inf (named with its call site).
    """
    from .anomaly import detect_anomaly, is_anomaly_enabled
    if cfg.detect_anomaly and not is_anomaly_enabled():
        with detect_anomaly():
            return train(cfg, log)
    from tqdm import tqdm
    cfg.validate()
    manual_seed(cfg.seed)
    x_train, y_train = load_data(cfg.dataset, cfg.data_dir, train=True)
    x_test, y_test = load_data(cfg.dataset, cfg.data_dir, train=False)
    if cfg.threads is not None:
        from .kernels.threads import set_num_threads
        set_num_threads(cfg.threads)
    model = get_model(cfg.model)
    x_val = y_val = None
    if cfg.val_split > 0:  # a seeded hold-out carved from the training set (after the init draws)
        order = default_generator().permutation(len(x_train))
        n_val = int(round(cfg.val_split * len(x_train)))
        x_val, y_val = x_train[order[:n_val]], y_train[order[:n_val]]
        x_train, y_train = x_train[order[n_val:]], y_train[order[n_val:]]
    opt = build_optimizer(model, cfg)  # deck 000: D = Δ/n + λΘ with no penalty on the bias terms
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=cfg.batch_size, shuffle=True,
                        generator=default_generator())
    schedule = Schedule(opt, cfg, len(loader))  # sets the lr of step 0
    _, mean, std = DATASETS[cfg.dataset]
    augment = transforms.default_augmentation(fill=-mean / std) if cfg.augment else None
    metrics = {"test_accuracy": None, "epochs": []}
    start, step, best = 1, 0, {"loss": math.inf, "epoch": 0, "bad": 0}
    os.makedirs(cfg.out, exist_ok=True)
    if cfg.resume:
        saved = load_train_state(cfg.resume, cfg, model, opt, schedule)
        start, step, metrics, best = saved["epoch"] + 1, saved["step"], saved["metrics"], saved["early_stopping"]
        log(f"resuming {cfg.resume} after epoch {saved['epoch']}")
    for epoch in range(start, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False,
                   disable=not cfg.progress, dynamic_ncols=True)
        for i, (xb, yb) in enumerate(bar, 1):
            if augment is not None:
                xb = augment(xb)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            value = loss.item()
            if not math.isfinite(value):
                bar.close()
                kept = (f"the checkpoint of epoch {epoch - 1} is kept in {cfg.out}" if epoch > 1
                        else "no checkpoint was written")
                raise TrainingError(f"loss became {value} at epoch {epoch}, step {i}; stopping "
                                    f"({kept}); try a smaller --lr")
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.after_step()
            step += 1
            n = len(yb)
            seen += n
            loss_sum += value * n
            correct += int((logits.data.argmax(1) == yb.data).sum())
            if i % 25 == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
        bar.close()
        train_seconds = time.perf_counter() - t0
        test_loss, test_acc = evaluate(model, x_test, y_test)
        row = {"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
               "test_loss": test_loss, "test_accuracy": test_acc}
        monitor = row["train_loss"]
        if x_val is not None:
            monitor, row["val_accuracy"] = evaluate(model, x_val, y_val)
            row["val_loss"] = monitor
            if monitor < best["loss"]:
                best = {"loss": monitor, "epoch": epoch, "bad": 0}
            else:
                best["bad"] += 1
            metrics["best_epoch"] = best["epoch"]
        seconds = time.perf_counter() - t0
        row["seconds"] = round(seconds, 3)
        metrics["epochs"].append(row)
        metrics["test_accuracy"] = test_acc
        schedule.after_epoch(monitor)
        stop = bool(cfg.patience) and best["bad"] >= cfg.patience
        if stop:
            metrics["stopped_early"] = epoch
        _save(model, cfg, metrics, cfg.out)
        save_train_state(cfg.out, model, opt, schedule, {"epoch": epoch, "step": step, "metrics": metrics,
                                                  "early_stopping": best, "config": dataclasses.asdict(cfg)})
        viz.maybe_plot_curves(metrics, cfg.out)  # curves.png when matplotlib is installed
        log(f"epoch {epoch}/{cfg.epochs}  train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
            f"  test loss {test_loss:.4f} acc {test_acc:.4f}  {seconds:.1f}s  {seen / train_seconds:,.0f} img/s")
        if stop:
            log(f"early stopping: validation loss has not improved for {cfg.patience} epochs "
                f"(best {best['loss']:.4f} at epoch {best['epoch']})")
            break
    log(f"final test accuracy {metrics['test_accuracy']:.4f}; checkpoint in {cfg.out}")
    return metrics


def load_checkpoint(folder: str):
    """Rebuild the model saved in a run folder; returns (model in eval mode, TrainConfig).

    Raises: ember.io.CheckpointError naming the missing or corrupt file.
    """
    raw = io.read_json(os.path.join(folder, "config.json"))
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in raw.items() if k in fields})
    model = get_model(cfg.model)
    state = io.load_state_dict(os.path.join(folder, "model.safetensors"))
    try:
        model.load_state_dict(state)
    except (KeyError, ValueError) as e:
        raise io.CheckpointError(f"{folder}: weights do not fit model {cfg.model!r}: {e}") from None
    return model.eval(), cfg
