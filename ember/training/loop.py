"""The training loop behind ``ember train``: LeNet-5 on Fashion-MNIST by default.

One epoch = shuffled minibatches of SGD (deck 001/002: minibatch SGD with momentum), with the
learning rate following a cosine decay from ``lr`` to 0 over the whole run (Loshchilov & Hutter
2017), then an evaluation on the test set. After every epoch the run folder gets, atomically:
``model.safetensors`` (weights, PyTorch's state-dict names), ``config.json``, ``metrics.json``
and ``resume.safetensors`` (``checkpoint.py``). The settings are a ``TrainConfig``
(``config.py``); the optimizer and learning-rate schedule are built in ``schedules.py``.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..data import DataLoader, TensorDataset, transforms
from ..models import get_model
from ..nn import functional as F
from ..random import default_generator, manual_seed
from ..tensor import Tensor
from ..viz import plots
from .checkpoint import load_train_state, save_run, save_train_state
from .config import DATASETS, TrainConfig
from .schedules import Schedule, build_optimizer


class TrainingError(RuntimeError):
    """Training stopped (e.g. a non-finite loss); the message says where and what was kept."""


def load_data(name: str, data_dir: str | None, train: bool):
    """Return (images, labels): float32 (N, 1, 28, 28) normalised by the training set's pixel
    mean and std (``DATASETS``), and int64 (N,) class indices.

    Args: name: a ``DATASETS`` key; data_dir: folder of the IDX files (None: the usual places);
        train: the training split, else the test split.
    Raises: ValueError listing the valid names; ember.data.DatasetNotFoundError.
    """
    TrainConfig(dataset=name).check_choice("dataset")
    cls, mean, std = DATASETS[name]
    ds = cls(root=data_dir, train=train)
    x = ((ds.data.astype(np.float32) / 255 - mean) / std).astype(np.float32)
    return x[:, None], ds.targets.astype(np.int64)


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1000):
    """Return (mean cross-entropy, accuracy in [0, 1]) of ``model`` on arrays x, y (no graph)."""
    model.eval()
    total_loss, correct = 0.0, 0
    with no_grad():
        for i in range(0, len(x), batch_size):
            logits = model(Tensor(x[i:i + batch_size]))
            yb = y[i:i + batch_size]
            total_loss += F.cross_entropy(logits, yb, reduction="sum").item()
            correct += int((logits._data.argmax(1) == yb).sum())
    return total_loss / len(x), correct / len(x)


def train(cfg: TrainConfig, log=print) -> dict:
    """Train ``cfg.model`` on ``cfg.dataset`` and return the metrics dict (also in metrics.json).

    Raises:
        ValueError: an invalid setting.
        ember.data.DatasetNotFoundError: the data folder is missing.
        TrainingError: the loss became NaN/inf (the last good checkpoint is kept).
        ember.autograd.AnomalyError: with ``cfg.detect_anomaly``, the first op whose output or
            gradient is NaN/inf (named with its call site).
    """
    from ..autograd.anomaly import detect_anomaly, is_anomaly_enabled
    if cfg.detect_anomaly and not is_anomaly_enabled():
        with detect_anomaly():
            return train(cfg, log)
    from tqdm import tqdm
    cfg.validate()
    manual_seed(cfg.seed)
    x_train, y_train = load_data(cfg.dataset, cfg.data_dir, train=True)
    x_test, y_test = load_data(cfg.dataset, cfg.data_dir, train=False)
    if cfg.threads is not None:
        from ..kernels.threads import set_num_threads
        set_num_threads(cfg.threads)
    model = get_model(cfg.model)
    x_val = y_val = None
    if cfg.val_split > 0:  # a seeded hold-out carved from the training set (after the init draws)
        order = default_generator().permutation(len(x_train))
        n_val = int(round(cfg.val_split * len(x_train)))
        x_val, y_val = x_train[order[:n_val]], y_train[order[:n_val]]
        x_train, y_train = x_train[order[n_val:]], y_train[order[n_val:]]
    opt = build_optimizer(model, cfg)
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
            correct += int((logits._data.argmax(1) == yb._data).sum())
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
        save_run(cfg.out, model, cfg, metrics)
        save_train_state(cfg.out, model, opt, schedule, {"epoch": epoch, "step": step, "metrics": metrics,
                                                  "early_stopping": best, "config": dataclasses.asdict(cfg)})
        plots.maybe_plot_curves(metrics, cfg.out)  # curves.png when matplotlib is installed
        log(f"epoch {epoch}/{cfg.epochs}  train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
            f"  test loss {test_loss:.4f} acc {test_acc:.4f}  {seconds:.1f}s  {seen / train_seconds:,.0f} img/s")
        if stop:
            log(f"early stopping: validation loss has not improved for {cfg.patience} epochs "
                f"(best {best['loss']:.4f} at epoch {best['epoch']})")
            break
    log(f"final test accuracy {metrics['test_accuracy']:.4f}; checkpoint in {cfg.out}")
    return metrics
