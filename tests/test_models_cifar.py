"""resnet20 and cifar-convnet: parameter counts and output/gradient parity with PyTorch
re-implementations written here, the same weights loaded through state_dict."""
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.models import MODELS, get_model, input_shape

torch = pytest.importorskip("torch")
tnn, tF = torch.nn, torch.nn.functional


class TorchBlock(tnn.Module):
    """He et al. 2016's basic block with the option-A shortcut, in PyTorch."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        out = tF.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        s = x[:, :, ::self.stride, ::self.stride]
        if self.extra:
            s = tF.pad(s, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return tF.relu(out + s)


class TorchResNet20(tnn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = tnn.Conv2d(3, 16, 3, 1, 1, bias=False), tnn.BatchNorm2d(16)
        cin, stages = 16, []
        for w, s in ((16, 1), (32, 2), (64, 2)):
            stages.append(tnn.Sequential(TorchBlock(cin, w, s), TorchBlock(w, w, 1), TorchBlock(w, w, 1)))
            cin = w
        self.layer1, self.layer2, self.layer3 = stages
        self.pool, self.fc = tnn.AdaptiveAvgPool2d(1), tnn.Linear(64, 10)

    def forward(self, x):
        x = tF.relu(self.bn1(self.conv1(x)))
        return self.fc(self.pool(self.layer3(self.layer2(self.layer1(x)))).flatten(1))


def torch_convnet():
    layers, cin = [], 3
    for w in (32, 64, 128):
        layers += [tnn.Conv2d(cin, w, 3, padding=1, bias=False), tnn.BatchNorm2d(w), tnn.ReLU(),
                   tnn.Conv2d(w, w, 3, padding=1, bias=False), tnn.BatchNorm2d(w), tnn.ReLU(), tnn.MaxPool2d(2)]
        cin = w
    return tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Dropout(0.3), tnn.Linear(cin, 10))


def randomise_bn(tmodel, seed=0):
    """Give BatchNorm non-trivial weights and running statistics, so eval mode is really checked."""
    g = torch.Generator().manual_seed(seed)
    for m in tmodel.modules():
        if isinstance(m, tnn.BatchNorm2d):
            n = m.num_features
            m.weight.data = 1 + 0.2 * torch.randn(n, generator=g)
            m.bias.data = 0.1 * torch.randn(n, generator=g)
            m.running_mean = 0.1 * torch.randn(n, generator=g)
            m.running_var = 1 + 0.3 * torch.rand(n, generator=g)


@pytest.mark.parametrize("name,make_torch", [("resnet20", TorchResNet20), ("cifar-convnet", torch_convnet)])
def test_parity_with_pytorch(name, make_torch):
    torch.manual_seed(0)
    tmodel, model = make_torch(), get_model(name)
    randomise_bn(tmodel)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in tmodel.parameters())
    assert sorted(model.state_dict()) == sorted(tmodel.state_dict())      # same keys (ember lists buffers last)
    model.load_state_dict({k: v.numpy() for k, v in tmodel.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
    model.eval(), tmodel.eval()
    with ember.no_grad():
        ye = model(ember.tensor(x)).numpy()
    np.testing.assert_allclose(ye, tmodel(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-4)
    model.train(), tmodel.train()
    if name == "cifar-convnet":                       # dropout draws differ between libraries
        model[-2].p = tmodel[-2].p = 0.0
    g = np.random.default_rng(2).standard_normal((4, 10)).astype(np.float32)
    xe, xt = ember.tensor(x, requires_grad=True), torch.from_numpy(x).requires_grad_()
    ye, yt = model(xe), tmodel(xt)
    np.testing.assert_allclose(ye.numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    (ye * ember.tensor(g)).sum().backward()
    (yt * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-3, atol=1e-5)
    tparams = dict(tmodel.named_parameters())
    for k, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[k].grad.numpy(), rtol=1e-3, atol=1e-4, err_msg=k)
    tbuf = dict(tmodel.named_buffers())
    for k, b in model.named_buffers():           # BatchNorm running statistics after one training step
        np.testing.assert_allclose(b.numpy(), tbuf[k].numpy(), rtol=1e-4, atol=1e-5, err_msg=k)


def test_resnet20_size_shapes_and_registry():
    model = get_model("resnet20")
    assert sum(p.numel() for p in model.parameters()) == 269_722        # He et al.'s "0.27M"
    assert "resnet20" in MODELS and "cifar-convnet" in MODELS
    assert input_shape("resnet20") == input_shape("cifar-convnet") == (1, 3, 32, 32)
    assert input_shape("lenet5") == (1, 1, 28, 28)
    s = ember.summary(model, (2, 3, 32, 32))
    assert s.total_params == 269_722
    shapes = {r.name: r.output_shape for r in s.rows}
    assert shapes["layer1.2.bn2"] == (2, 16, 32, 32) and shapes["layer2.0.conv1"] == (2, 32, 16, 16)
    assert shapes["layer3.2.bn2"] == (2, 64, 8, 8) and shapes["fc"] == (2, 10)
    ember.manual_seed(0)
    w = get_model("resnet20").layer2[1].conv1.weight.numpy()
    assert abs(w.std() - np.sqrt(2 / (32 * 9))) < 0.01                  # Kaiming normal, fan_out = 32*3*3


def test_cifar_torch_decays_the_parameters_ember_train_decays():
    """benchmarks/cifar_torch.py's recipe is ember train's: the same parameters (by state-dict name)
    in the weight-decay group, BatchNorm's weights included, and the same lr, momentum, Nesterov."""
    from ember.training.config import TrainConfig
    from ember.training.schedules import build_optimizer
    cifar_torch = _cifar_torch()
    tmodel = cifar_torch.ResNet20()
    topt = cifar_torch.make_optimizer(tmodel, 0.1, weight_decay=5e-4)
    tnames = {id(p): n for n, p in tmodel.named_parameters()}
    model = get_model("resnet20")
    eopt = build_optimizer(model, TrainConfig(model="resnet20", dataset="cifar10", lr=0.1, weight_decay=5e-4))
    enames = {id(p): n for n, p in model.named_parameters()}
    groups = lambda opt, names: [(g["weight_decay"], sorted(names[id(p)] for p in g["params"])) for g in opt.param_groups]  # noqa: E731
    assert groups(topt, tnames) == groups(eopt, enames)
    assert "bn1.weight" in groups(topt, tnames)[0][1]                  # BatchNorm's gamma is decayed
    for tg, eg in zip(topt.param_groups, eopt.param_groups):
        assert (tg["lr"], tg["momentum"], tg["nesterov"]) == (eg["lr"], eg["momentum"], eg["nesterov"])


def _cifar_torch():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import cifar_torch
    finally:
        sys.path.pop(0)
    return cifar_torch


def test_cifar_torch_trains_as_ember_train_does():
    """Issue 16 compares ember's run with benchmarks/cifar_torch.py's: in float64, from the same
    weights and on the same batches, four steps of ember train's optimizer and per-step cosine
    (two epochs of two steps) and four of the script's (its SGD groups, CosineAnnealingLR) give
    the same losses, learning rates, weights and BatchNorm statistics (1e-10). Fails on any
    difference of weight decay, momentum, Nesterov, schedule or the model's training math.
    (float32 would not do: one ReLU input within rounding of 0 flips in one library only.)"""
    from ember.training.config import TrainConfig
    from ember.training.schedules import Schedule, build_optimizer
    cifar_torch = _cifar_torch()
    ember.manual_seed(0)
    model = get_model("resnet20").double()
    tmodel = cifar_torch.ResNet20().double()
    tmodel.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
    cfg = TrainConfig(model="resnet20", dataset="cifar10", lr=0.1, weight_decay=5e-4, epochs=2)
    opt, topt = build_optimizer(model, cfg), cifar_torch.make_optimizer(tmodel, 0.1, weight_decay=5e-4)
    schedule, tsched = Schedule(opt, cfg, 2), torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=4)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x, y = rng.standard_normal((4, 3, 32, 32)), rng.integers(0, 10, 4)
        loss = ember.nn.functional.cross_entropy(model(ember.tensor(x)), ember.tensor(y))
        opt.zero_grad(), loss.backward(), opt.step(), schedule.after_step()
        tloss = tF.cross_entropy(tmodel(torch.from_numpy(x)), torch.from_numpy(y))
        topt.zero_grad(), tloss.backward(), topt.step(), tsched.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-10)
        assert opt.param_groups[0]["lr"] == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
    tsd = tmodel.state_dict()
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(np.array(v), tsd[k].numpy(), rtol=1e-10, atol=1e-12, err_msg=k)


def test_benchmark_scripts_run(tmp_path):
    """benchmarks/cifar_torch.py on a 40-picture zip built here, and resnet20_step.py at batch 4
    (seconds: so the scripts cannot rot; their timings are not tested)."""
    Image = pytest.importorskip("PIL.Image")
    repo = Path(__file__).resolve().parents[1]
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(tmp_path / "tiny.zip", "w") as z:
        for split, n in (("train", 3), ("test", 1)):
            for c in range(10):
                for i in range(n):
                    buf = io.BytesIO()
                    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
                    z.writestr(f"{split}/class{c}/{i}.png", buf.getvalue())
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.run([sys.executable, str(repo / "benchmarks" / "cifar_torch.py"), "--data", str(tmp_path / "tiny.zip"),
                           "--epochs", "2", "--batch-size", "8", "--threads", "1", "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "r.json").read_text())["epochs"]
    assert [r["epoch"] for r in rows] == [1, 2] and all(0 <= r["test_acc"] <= 1 for r in rows)
    assert "decoded 30 + 10 pictures" in proc.stdout and "269,722 parameters" in proc.stdout
    # the same 2 epochs in two sittings through --checkpoint: epoch 2 comes out the same
    base = [sys.executable, str(repo / "benchmarks" / "cifar_torch.py"), "--data", str(tmp_path / "tiny.zip"),
            "--batch-size", "8", "--threads", "1", "--checkpoint", str(tmp_path / "run.pt"), "--epochs", "2"]
    for sitting in (["--stop-after", "1"], []):
        split = subprocess.run(base + sitting + ["--json", str(tmp_path / "s.json")],
                               capture_output=True, text=True, timeout=300, env=env)
        assert split.returncode == 0, split.stderr[-2000:]
    assert "continuing" in split.stdout and not (tmp_path / "run.pt.tmp").exists()
    again = json.loads((tmp_path / "s.json").read_text())["epochs"]
    assert [(r["epoch"], r["train_loss"], r["test_acc"]) for r in again] == \
        [(r["epoch"], r["train_loss"], r["test_acc"]) for r in rows]
    other = subprocess.run(base + ["--lr", "0.05"], capture_output=True, text=True, timeout=300, env=env)
    assert other.returncode != 0 and "holds a run with other flags" in other.stderr
    proc = subprocess.run([sys.executable, str(repo / "benchmarks" / "resnet20_step.py"), "--batch-size", "4",
                           "--steps", "1", "--repeats", "1", "--threads", "1"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ratio ember/PyTorch" in proc.stdout
