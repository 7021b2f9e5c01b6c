"""The training loop behind ``ember train``: LeNet-5 on Fashion-MNIST by default.

One epoch = shuffled minibatches of SGD (deck 001/002: minibatch SGD with momentum), with the
learning rate following a cosine decay from ``lr`` to 0 over the whole run (Loshchilov & Hutter
2017), then an evaluation on the test set. After every epoch the run folder gets, atomically:
``model.safetensors`` (weights, PyTorch's state-dict names; with a validation split, the best
epoch's), ``config.json``, ``metrics.json`` and ``resume.safetensors`` (``checkpoint.py``), plus
``steps.csv``, ``epochs.csv`` and ``curves.png`` (``log.py``), in the run's own folder
(``runs.py``). The settings are a ``TrainConfig`` (``config.py``); the optimizer and learning-rate schedule are built in ``schedules.py``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import os
import time

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..data import DataLoader, TensorDataset
from ..nn import functional as F
from ..random import default_generator, manual_seed
from ..tensor import Tensor
from .checkpoint import NonFiniteError, load_train_state, save_epoch
from .config import TrainConfig
from .data import augmentation, build_model, check_model_fits, load_data, spec_of
from .log import RunLog
from .parallel import Ranks
from .runs import choose_folder
from .safety import check_split_sizes, check_terminated, os_error_message, prepare_out
from .schedules import Schedule, build_optimizer, rehearse


def _first_batch_done(path: str) -> None:
    """Append "<time.monotonic()> <time.process_time()> <children's CPU s>" to ``path``: the end of
    the run's first batch (the third: CPU of reaped child processes, the prewarm helper's).

    Only when ``$EMBER_FIRST_BATCH_FILE`` names a file (benchmarks/startup.py times the start-up
    with it: the clock is system-wide, so the launcher compares it with its launch time).
    """
    with open(path, "a") as f:
        c = os.times()   # + the CPU of reaped child processes (the prewarm helper)
        f.write(f"{time.monotonic():.6f} {time.process_time():.6f} {c.children_user + c.children_system:.3f}\n")


class TrainingError(RuntimeError):
    """Training stopped (e.g. a non-finite loss); the message says where and what was kept."""


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


def _kept(out: str, epoch: int) -> str:
    return f"the checkpoint of epoch {epoch} is kept in {out}" if epoch > 0 else "no checkpoint was written"


def _save_or_stop(cfg, epoch, model, opt, schedule, metrics, state, weights: bool = True) -> None:
    """Save the epoch (``checkpoint.save_epoch``), or stop with a TrainingError saying why and what is kept:
    NaN/inf weights are never written over a good checkpoint; an OS error (disk full, read-only) names the file."""
    try:
        save_epoch(cfg.out, model, opt, schedule, cfg, metrics, state, weights=weights)
    except NonFiniteError as e:
        raise TrainingError(f"the weights became non-finite in epoch {epoch} ({e}); stopping "
                            f"({_kept(cfg.out, epoch - 1)}); try a smaller --lr") from None
    except OSError as e:  # the resume file and the model are written first: a failure there keeps epoch - 1
        done = epoch - (os.path.basename(e.filename or "") in ("resume.safetensors", "model.safetensors"))
        raise TrainingError(f"cannot save epoch {epoch}: {os_error_message(e)}; stopping "
                            f"({_kept(cfg.out, done)})") from None


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
    cfg.validate()
    check_model_fits(cfg.model, cfg.dataset, spec_of(cfg))  # imagefolder: reads the pictures
    with Ranks(cfg) as ranks, _frozen_gc():   # one rank, or W under mpiexec (parallel.py); only rank 0 logs and writes
        return _run(cfg, log if ranks.main else (lambda message: None), ranks)


@contextlib.contextmanager
def _frozen_gc():
    """Training with the objects that exist at its start (modules, numba's and NumPy's ~110,000)
    moved out of the garbage collector's sight (``gc.freeze()``, again after each epoch's first
    step; ``gc.unfreeze()`` after training).

    A training step creates Tensors and graph nodes, so Python's collector runs often; now and
    then it runs a full collection, which walked every object of the process: 170 ms once per
    epoch measured on the loaded machine (the step itself ~3-6 ms). Under mpiexec the other rank
    waits for it at the next gradient sum, and each rank has its own (issue 17). Frozen objects
    are never collected, so each freeze comes after a collection (the first walks everything,
    once per run; the later ones only what is not frozen yet): no garbage is kept frozen.
    Nothing computed changes.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _run(cfg: TrainConfig, log, ranks: Ranks) -> dict:
    """The body of ``train`` on one rank of ``ranks`` (a validated config).

    A cold kernel cache: ``ember.kernels.prewarm`` compiles the backward kernels in a helper
    process while this one compiles the forward; it is ended after the first step, or here on
    any exit (error, Ctrl-C, SIGTERM), so none is left behind.
    """
    helpers = []
    try:
        return _train_loop(cfg, log, ranks, helpers)
    finally:
        for h in helpers:
            h.close()


def _train_loop(cfg: TrainConfig, log, ranks: Ranks, helpers: list) -> dict:
    """``_run``'s work; a prewarm helper it starts goes into ``helpers`` (closed by ``_run``)."""
    from tqdm import tqdm
    cfg = dataclasses.replace(cfg, out=choose_folder(cfg))  # a new folder per run unless --out/--resume
    if ranks.main:
        prepare_out(cfg.out)  # a bad --out fails now, not after an epoch (issue 14 item 6)
    manual_seed(cfg.seed)
    x_train, y_train = load_data(cfg.dataset, cfg.data_dir, train=True, subset=cfg.subset, download=cfg.download,
                                 test_split=cfg.test_split)
    x_test, y_test = load_data(cfg.dataset, cfg.data_dir, train=False, subset=cfg.subset, download=cfg.download,
                               test_split=cfg.test_split)
    if cfg.threads is not None:
        from ..kernels.threads import set_num_threads
        set_num_threads(cfg.threads)
    model = build_model(cfg)   # imagefolder: the data's channels and classes
    if ranks.world == 1:   # cold cache: backward kernels compiled meanwhile in a helper (issue 13)
        from ..kernels import prewarm
        direct = ["cross_entropy", "cross_entropy_backward"] + (["sgd"] if cfg.optimizer == "sgd" else [])
        helpers += [h for h in [prewarm.start(model, direct)] if h is not None]
    net = ranks.wrap(model)   # DistributedDataParallel on several ranks: forward through it
    x_val = y_val = None
    if cfg.val_split > 0:  # a seeded hold-out carved from the training set (after the init draws)
        order = default_generator().permutation(len(x_train))
        n_val = int(round(cfg.val_split * len(x_train)))
        x_val, y_val = x_train[order[:n_val]], y_train[order[:n_val]]
        x_train, y_train = x_train[order[n_val:]], y_train[order[n_val:]]
    check_split_sizes(len(x_train), len(x_test), None if x_val is None else len(x_val), cfg.val_split)
    opt = build_optimizer(model, cfg)
    loader = DataLoader(ranks.dataset(TensorDataset(x_train, y_train)), batch_size=cfg.batch_size,
                        shuffle=True, generator=default_generator())  # under mpiexec: this rank's rows
    rehearse(cfg, len(loader))  # a schedule that cannot finish the run fails now, not after an epoch
    schedule = Schedule(opt, cfg, len(loader))  # sets the lr of step 0
    augment = augmentation(cfg.dataset, spec_of(cfg)) if cfg.augment else None
    metrics = {"test_accuracy": None, "epochs": []}
    start, step, best = 1, 0, {"loss": math.inf, "epoch": 0, "bad": 0}
    log(f"run folder: {cfg.out}")
    if cfg.resume:
        saved = load_train_state(cfg.resume, cfg, model, opt, schedule)
        start, step, metrics, best = saved["epoch"] + 1, saved["step"], saved["metrics"], saved["early_stopping"]
        ranks.check_resume(saved, cfg.resume)
        log(f"resuming {cfg.resume} after epoch {saved['epoch']}")
    run_log = RunLog(cfg.out, cfg.resume, start - 1) if ranks.main else RunLog.null()  # steps.csv, epochs.csv
    first_batch_file = os.environ.get("EMBER_FIRST_BATCH_FILE") if ranks.main else None  # start-up timing
    for epoch in range(start, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False,
                   disable=not (cfg.progress and ranks.main), dynamic_ncols=True)
        for i, (xb, yb) in enumerate(bar, 1):
            check_terminated()   # a SIGTERM or Ctrl-C whose exception was swallowed stops here
            t_step, lr = time.perf_counter(), opt.param_groups[0]["lr"]
            if augment is not None:
                xb = augment(xb)
            xb, yb, weight = ranks.shard(xb, yb)   # this rank's rows of the global batch
            logits = net(xb)
            loss = F.cross_entropy(logits, yb)
            value = loss.item()
            if weight != 1.0:
                loss = loss * weight
            if not math.isfinite(value):
                bar.close()
                raise TrainingError(f"loss became {value} at epoch {epoch}, step {i}; stopping "
                                    f"({_kept(cfg.out, epoch - 1)}); try a smaller --lr")
            opt.zero_grad()
            loss.backward()
            opt.step()
            for h in helpers:   # every kernel of a step has run: a helper still busy is not needed
                h.close()
            helpers.clear()
            schedule.after_step()
            step += 1
            n = len(yb)
            seen += n
            loss_sum += value * n
            run_log.step(step, epoch, value, lr, time.perf_counter() - t_step)
            correct += int((logits._data.argmax(1) == yb._data).sum())
            if first_batch_file:
                _first_batch_done(first_batch_file)
                first_batch_file = None
            if i == 1:   # also what the first step made (numba's kernels, loaded at their first call); the
                gc.collect()   # collection first, so no garbage is frozen (it walks only what is not frozen yet)
                gc.freeze()
            if i % 25 == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
        bar.close()
        check_terminated()   # ... or during the epoch's last step: the epoch is not evaluated or saved
        loss_sum, correct, seen = ranks.sum(loss_sum, correct, seen)
        correct, seen = int(correct), int(seen)
        train_seconds = time.perf_counter() - t0
        test_loss, test_acc = ranks.evaluate(evaluate, model, x_test, y_test)
        row = {"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
               "test_loss": test_loss, "test_accuracy": test_acc}
        monitor, improved, val_text = row["train_loss"], True, ""
        if x_val is not None:
            monitor, row["val_accuracy"] = ranks.evaluate(evaluate, model, x_val, y_val)
            row["val_loss"] = monitor
            improved = monitor < best["loss"]
            best = {"loss": monitor, "epoch": epoch, "bad": 0} if improved else dict(best, bad=best["bad"] + 1)
            val_text = f"  val loss {monitor:.4f} acc {row['val_accuracy']:.4f}{' *' if improved else ''}"
        seconds = time.perf_counter() - t0
        row["seconds"] = round(seconds, 3)
        metrics["epochs"].append(row)
        if improved:  # with --val-split, the saved model is the best epoch's (Keras' restore_best_weights)
            metrics["test_accuracy"] = test_acc
        if x_val is not None:
            metrics["best_epoch"] = best["epoch"]
            metrics["saved_model"] = f"epoch {best['epoch']}: the lowest validation loss ({best['loss']:.4f})"
        schedule.after_epoch(monitor)
        stop = bool(cfg.patience) and best["bad"] >= cfg.patience
        if stop:
            metrics["stopped_early"] = epoch
        check_terminated()   # ... or during the evaluation: the epoch is not saved
        if ranks.main:
            _save_or_stop(cfg, epoch, model, opt, schedule, metrics,
                          {"epoch": epoch, "step": step, "metrics": metrics, "early_stopping": best,
                           "config": dataclasses.asdict(cfg), "world_size": ranks.world}, weights=improved)
            ranks.saved(epoch, cfg.out)   # under mpiexec: what the fault report names as kept
            run_log.epoch(row, opt.param_groups[0]["lr"], metrics)  # epochs.csv, steps.csv, curves.png
        log(f"epoch {epoch}/{cfg.epochs}  train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
            f"{val_text}  test loss {test_loss:.4f} acc {test_acc:.4f}  {seconds:.1f}s  "
            f"{seen / train_seconds:,.0f} img/s")
        if stop:
            log(f"early stopping: validation loss has not improved for {cfg.patience} epochs; "
                f"model.safetensors holds epoch {best['epoch']} (the best, val loss {best['loss']:.4f})")
            break
    check_terminated()   # ... or during the last save, which is complete: still reported as an interrupt
    kept = (f"epoch {metrics['best_epoch']}'s weights, the best validation loss" if "best_epoch" in metrics
            else "the last weights")
    log(f"final test accuracy {metrics['test_accuracy']:.4f} ({kept}); checkpoint in {cfg.out}")
    return metrics
