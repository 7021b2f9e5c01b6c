"""The training loop behind ``ember train``: LeNet-5 on Fashion-MNIST by default.

One epoch = shuffled minibatches of SGD (deck 001/002: minibatch SGD with momentum), with the
learning rate following a cosine decay from ``lr`` to 0 over the whole run (Loshchilov & Hutter
2017), then an evaluation on the test set. After every epoch the run folder gets, atomically:
``model.safetensors`` (weights, PyTorch's state-dict names), ``config.json`` and ``metrics.json``.
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
from .optim import SGD
from .random import default_generator, manual_seed
from .tensor import Tensor

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
    model = get_model(cfg.model)
    decay, no_decay = [], []  # deck 000: D = Δ/n + λΘ with no penalty on the bias terms
    for name, p in model.named_parameters():
        (no_decay if name.endswith("bias") else decay).append(p)
    opt = SGD([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
              lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=cfg.batch_size, shuffle=True,
                        generator=default_generator())
    total_steps, step = cfg.epochs * len(loader), 0
    metrics = {"test_accuracy": None, "epochs": []}
    os.makedirs(cfg.out, exist_ok=True)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False,
                   disable=not cfg.progress, dynamic_ncols=True)
        for i, (xb, yb) in enumerate(bar, 1):
            for g in opt.param_groups:
                g["lr"] = cosine_lr(cfg.lr, step, total_steps)
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
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
               "test_loss": test_loss, "test_accuracy": test_acc, "seconds": round(seconds, 3)}
        metrics["epochs"].append(row)
        metrics["test_accuracy"] = test_acc
        _save(model, cfg, metrics, cfg.out)
        viz.maybe_plot_curves(metrics, cfg.out)  # curves.png when matplotlib is installed
        log(f"epoch {epoch}/{cfg.epochs}  train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
            f"  test loss {test_loss:.4f} acc {test_acc:.4f}  {seconds:.1f}s  {seen / train_seconds:,.0f} img/s")
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
