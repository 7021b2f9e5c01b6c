"""The CIFAR-10 ResNet-20 recipe in plain PyTorch (no torchvision), on the same copy of the data,
so that ember's accuracy and time per epoch can be put side by side with PyTorch's.

    python benchmarks/cifar_torch.py                          # 40 epochs on the shared zip (the documented recipe)
    python benchmarks/cifar_torch.py --epochs 1 --subset 5000 # a quick check
    python benchmarks/cifar_torch.py --data PATH.zip --json out.json

The recipe (He et al. 2016, section 4.2, with a cosine schedule instead of the paper's steps):
- ResNet-20 with option-A shortcuts (``ResNet20`` below, the same network as
  ``ember.models.resnet20``: 269,722 parameters, Kaiming-normal fan_out convolutions).
- SGD, momentum 0.9, Nesterov, peak lr 0.1 at batch 128, decayed to 0 by a per-step cosine
  (as ``ember train``'s default schedule), weight decay 5e-4 on every parameter whose name does
  not end in ``bias``: the conv and linear weights and BatchNorm's weights (gamma), not the
  biases nor BatchNorm's biases (beta) — ``ember train``'s rule
  (``ember.nn.utils.param_groups_no_bias_decay``). Until the tenth session this script left
  BatchNorm's weights undecayed while claiming to do as ``ember train``; a checkpoint of that
  recipe is refused (``RECIPE``).
- Augmentation: 4-pixel zero padding + random 32x32 crop, left-right flip with p = 0.5, drawn per
  image; inputs normalised per channel by ``ember.data.CIFAR10_MEAN`` / ``CIFAR10_STD`` (the
  training set's, measured on the shared copy; copied below so this script runs without ember).
- Data: the zip's ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``, decoded with Pillow into
  uint8 arrays once (classes sorted, as ImageFolder); ``--subset N`` trains on a seeded random
  N of the 50,000 training pictures (the test set is always whole).

Printed per epoch: training loss and accuracy, test accuracy, and the wall time of the training
pass and of the evaluation. Threads: ``torch.set_num_threads(--threads)`` (default 2).

``--checkpoint FILE`` saves, after every epoch, everything the run needs to go on (model,
optimizer, schedule, both random generators, the epochs so far; written to FILE.tmp, then
renamed, so a killed run never leaves half a file); started again with the same FILE and the same
flags, the run continues after the last saved epoch with the numbers it would have had (a long
run can be split over several sittings: ``--stop-after EPOCH`` ends a sitting early, or kill it).
Flags other than --json/--threads/--stop-after differing from the saved run's are refused.
"""
from __future__ import annotations

import os

# (no OMP_WAIT_POLICY: PyTorch runs at its defaults, issue 13)

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10" / "cifar10-jpeg.zip"
MEAN, STD = (0.4913, 0.4821, 0.4465), (0.2452, 0.2428, 0.2606)   # ember.data.CIFAR10_MEAN / CIFAR10_STD


class Block(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the parameter-free option-A shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, ((cout - cin) // 2, cout - cin - (cout - cin) // 2)

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, *self.pad)) if self.stride > 1 else x
        return F.relu(y + shortcut)


class ResNet20(nn.Module):
    """He et al. 2016's CIFAR ResNet-20; the state-dict keys are ember.models.resnet20's."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
        widths = [(16, 16, 1), (16, 32, 2), (32, 64, 2)]
        self.layer1, self.layer2, self.layer3 = (
            nn.Sequential(Block(cin, cout, s), Block(cout, cout, 1), Block(cout, cout, 1)) for cin, cout, s in widths)
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x))))))
        return self.fc(self.pool(x).flatten(1))


def load_split(zip_path: Path, split: str):
    """(uint8 (N, 32, 32, 3), int64 (N,)) of ``split``/<class>/* in the zip, classes sorted."""
    from PIL import Image
    with zipfile.ZipFile(zip_path) as z:
        names = sorted((n for n in z.namelist() if n.startswith(split + "/") and not n.endswith("/")),
                       key=lambda n: tuple(n.rsplit("/", 1)))
        blobs = [z.read(n) for n in names]
    classes = sorted({n.split("/")[1] for n in names})
    labels = np.array([classes.index(n.split("/")[1]) for n in names], np.int64)

    def decode(b):
        with Image.open(io.BytesIO(b)) as im:
            return np.asarray(im.convert("RGB"))
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        images = np.stack(list(pool.map(decode, blobs, chunksize=256)))
    return images, labels


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (B, 32, 32, 3) -> float32 (B, 3, 32, 32): pad 4 + random crop, random flip, normalise."""
    b = len(x)
    x = np.pad(x.transpose(0, 3, 1, 2).astype(np.float32) / 255, ((0, 0), (0, 0), (4, 4), (4, 4)))
    top, left, flip = rng.integers(0, 9, b), rng.integers(0, 9, b), rng.random(b) < 0.5
    rows = (top[:, None] + np.arange(32))[:, None, :, None]
    cols = (left[:, None] + np.arange(32))
    cols = np.where(flip[:, None], cols[:, ::-1], cols)[:, None, None, :]
    x = x[np.arange(b)[:, None, None, None], np.arange(3)[None, :, None, None], rows, cols]
    return normalise(x)


def normalise(x: np.ndarray) -> np.ndarray:
    return (x - np.float32(MEAN)[:, None, None]) / np.float32(STD)[:, None, None]


def evaluate(model, images, labels, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(normalise(images[i:i + batch].transpose(0, 3, 1, 2).astype(np.float32) / 255))
            correct += (model(x).argmax(1).numpy() == labels[i:i + batch]).sum()
    return correct / len(images)


# what the flags do not say about the recipe, saved in every checkpoint and compared on resume
RECIPE = {"weight_decay_on": "every parameter not named bias (ember.nn.utils.param_groups_no_bias_decay)"}


def make_optimizer(model, lr, momentum=0.9, weight_decay=5e-4):
    """SGD with Nesterov momentum; weight_decay on the parameters whose name does not end in
    ``bias``, none on the others (ember train's two groups, in the same order)."""
    named = list(model.named_parameters())
    decay = [p for n, p in named if n.split(".")[-1] != "bias"]
    rest = [p for n, p in named if n.split(".")[-1] == "bias"]
    return torch.optim.SGD([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
                           lr=lr, momentum=momentum, nesterov=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=SHARED, help="zip of train/ and test/ class folders (default: the shared copy)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--subset", type=int, default=None, help="train on a seeded random N of the training pictures")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the per-epoch figures here (after every epoch)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="save the run here after every epoch and continue from it if it exists")
    p.add_argument("--stop-after", type=int, default=None, metavar="EPOCH",
                   help="end this sitting after epoch EPOCH (the schedule still spans --epochs); with --checkpoint")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    x_train, y_train = load_split(args.data, "train")
    x_test, y_test = load_split(args.data, "test")
    print(f"decoded {len(x_train)} + {len(x_test)} pictures in {time.perf_counter() - t:.1f} s", flush=True)
    if args.subset:
        keep = rng.permutation(len(x_train))[:args.subset]
        x_train, y_train = x_train[keep], y_train[keep]
    model = ResNet20()
    opt = make_optimizer(model, args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * math.ceil(len(x_train) / args.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    print(f"ResNet-20 ({sum(p.numel() for p in model.parameters()):,} parameters), {len(x_train)} training pictures, "
          f"batch {args.batch_size}, {args.epochs} epochs, {args.threads} threads", flush=True)
    history, first = [], 1
    recipe = {k: str(v) for k, v in vars(args).items() if k not in ("json", "threads", "checkpoint", "stop_after")}
    recipe.update(RECIPE)
    if args.checkpoint and args.checkpoint.exists():
        saved = torch.load(args.checkpoint, weights_only=False)
        if saved["recipe"] != recipe:
            raise SystemExit(f"cifar_torch.py: {args.checkpoint} holds a run with other flags or another recipe "
                             f"version: {saved['recipe']} (this script: {recipe})")
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["schedule"])
        torch.set_rng_state(saved["torch_rng"])
        rng.bit_generator.state = saved["numpy_rng"]
        history, first = saved["history"], saved["epoch"] + 1
        print(f"continuing {args.checkpoint} after epoch {saved['epoch']}", flush=True)
    for epoch in range(first, args.epochs + 1):
        model.train()
        t, cpu = time.perf_counter(), time.process_time()
        order, loss_sum, correct = rng.permutation(len(x_train)), 0.0, 0
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            x, y = torch.from_numpy(augment(x_train[idx], rng)), torch.from_numpy(y_train[idx])
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == y).sum().item()
        train_s, train_cpu = time.perf_counter() - t, time.process_time() - cpu
        t = time.perf_counter()
        acc = evaluate(model, x_test, y_test)
        row = dict(epoch=epoch, train_loss=loss_sum / len(order), train_acc=correct / len(order), test_acc=float(acc),
                   train_seconds=train_s, train_cpu_seconds=train_cpu, eval_seconds=time.perf_counter() - t)
        history.append(row)
        print(f"epoch {epoch:3d}  loss {row['train_loss']:.4f}  train acc {row['train_acc']:.4f}  "
              f"test acc {acc:.4f}  train {train_s:.1f} s (CPU {train_cpu:.1f} s)  eval {row['eval_seconds']:.1f} s", flush=True)
        if args.checkpoint:
            tmp = args.checkpoint.with_name(args.checkpoint.name + ".tmp")
            torch.save(dict(recipe=recipe, epoch=epoch, model=model.state_dict(), optimizer=opt.state_dict(),
                            schedule=sched.state_dict(), torch_rng=torch.get_rng_state(),
                            numpy_rng=rng.bit_generator.state, history=history), tmp)
            os.replace(tmp, args.checkpoint)
        if args.stop_after is not None and epoch >= args.stop_after:
            break
        if args.json:
            args.json.write_text(json.dumps(dict(args={k: str(v) for k, v in vars(args).items()}, epochs=history),
                                            indent=1))
    return history


if __name__ == "__main__":
    main()
