"""ember.onnx on whole models and real data (the issue's "must be true" list):

* LeNet-5 and convnet-bn trained by ember on Fashion-MNIST, exported: onnx.checker passes with
  full_check, and ONNX Runtime's logits on 1,000 test images match ember's within 1e-5 of the
  logits' scale, with identical predicted classes.
* LeNet-5 and a BatchNorm network exported by torch.onnx.export (the TorchScript exporter,
  dynamo=False, which needs no extra package) load in ember with identical predictions and
  logits within 1e-5 of PyTorch's; one SGD step on the loaded model matches PyTorch's step on
  the original within 1e-6 (parameters and BatchNorm running statistics).
"""
import functools
import io
import os
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import ember  # noqa: E402
import ember.data  # noqa: E402
import ember.models  # noqa: E402
import ember.nn.functional as F  # noqa: E402
from ember.onnx import export, load_model  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
needs_data = pytest.mark.skipif(not os.path.isdir(DATA), reason="Fashion-MNIST not installed "
                                "(apt-get install dataset-fashion-mnist)")
MEAN, STD = 0.2860, 0.3530   # Fashion-MNIST's training-set mean and standard deviation


@functools.lru_cache(maxsize=2)
def _split(train):
    return ember.data.FashionMNIST(root=DATA, train=train)


def images(train, n):
    """The first n images of a split, normalised as ``ember train`` does: (n, 1, 28, 28) float32."""
    ds = _split(train)
    x = ((ds.data[:n].astype(np.float32) / 255 - MEAN) / STD)[:, None]
    return x.astype(np.float32), ds.targets[:n]


def train_ember(model, steps, batch=64, lr=0.05):
    x, y = images(True, steps * batch)
    opt = ember.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for i in range(steps):
        loss = F.cross_entropy(model(ember.tensor(x[i * batch:(i + 1) * batch])), y[i * batch:(i + 1) * batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def check_ort_matches(model, tmp_path):
    x_test, _ = images(False, 1000)
    path = tmp_path / "model.onnx"
    export(model, ember.tensor(x_test[:8]), str(path), input_names=["image"], output_names=["logits"],
           dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    assert model.training, "export must leave the model in training mode"
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"image": x_test})[0]
    model.eval()
    with ember.no_grad():
        want = model(ember.tensor(x_test)).numpy()
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 1e-5 * scale, f"max |ort - ember| {np.abs(got - want).max()} (scale {scale})"
    assert (got.argmax(1) == want.argmax(1)).all()
    return path


@needs_data
def test_trained_lenet5_runs_in_onnxruntime(tmp_path):
    ember.manual_seed(0)
    model = train_ember(ember.models.get_model("lenet5"), steps=40)
    check_ort_matches(model, tmp_path)


@needs_data
def test_trained_convnet_bn_runs_in_onnxruntime_in_eval_mode(tmp_path):
    ember.manual_seed(0)
    model = train_ember(ember.models.get_model("convnet-bn"), steps=25, lr=0.1)
    path = check_ort_matches(model, tmp_path)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("BatchNormalization") == 4 and "Dropout" not in ops


# ---- models exported by PyTorch ------------------------------------------------------------
torch = pytest.importorskip("torch")
tnn = torch.nn


def torch_lenet5():
    return tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5),
                          tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(),
                          tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))


def torch_bn_net():
    return tnn.Sequential(tnn.Conv2d(1, 8, 3, padding=1, bias=False), tnn.BatchNorm2d(8), tnn.ReLU(),
                          tnn.MaxPool2d(2), tnn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False),
                          tnn.BatchNorm2d(16), tnn.ReLU(), tnn.AdaptiveAvgPool2d(1), tnn.Flatten(),
                          tnn.Linear(16, 32, bias=False), tnn.BatchNorm1d(32), tnn.ReLU(), tnn.Linear(32, 10))


def train_torch(model, x, y, steps=20, batch=64):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for i in range(steps):
        loss = tnn.functional.cross_entropy(model(torch.from_numpy(x[i * batch:(i + 1) * batch])),
                                            torch.from_numpy(y[i * batch:(i + 1) * batch]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def torch_export(model, x, **kw):
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (torch.from_numpy(x),), f, dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, **kw)
    return f.getvalue()


def check_loaded_matches_torch(tmodel, data, x_test, x_step, y_step):
    model = load_model(data).eval()
    tmodel.eval()
    with torch.no_grad():
        want = tmodel(torch.from_numpy(x_test)).numpy()
    got = model(ember.tensor(x_test)).numpy()
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 1e-5 * scale, f"max |ember - torch| {np.abs(got - want).max()} (scale {scale})"
    assert (got.argmax(1) == want.argmax(1)).all()
    # one SGD step in training mode on both
    model.train()
    tmodel.train()
    opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=0.9)
    loss = F.cross_entropy(model(ember.tensor(x_step)), y_step)
    opt.zero_grad()
    loss.backward()
    opt.step()
    tloss = tnn.functional.cross_entropy(tmodel(torch.from_numpy(x_step)), torch.from_numpy(y_step))
    topt.zero_grad()
    tloss.backward()
    topt.step()
    assert abs(loss.item() - tloss.item()) <= 1e-5 * abs(tloss.item())
    ours, theirs = model.state_dict(), {k: v.numpy() for k, v in tmodel.state_dict().items()}
    assert set(ours) == set(theirs), f"state-dict keys differ: {sorted(set(ours) ^ set(theirs))}"
    for k, v in theirs.items():
        if k.endswith("num_batches_tracked"):     # not part of ONNX; only momentum=None reads it
            continue
        np.testing.assert_allclose(ours[k], v, rtol=0, atol=1e-6, err_msg=f"{k} after one SGD step")
    return model


@needs_data
def test_lenet5_exported_by_torch_loads_predicts_and_fine_tunes_as_torch():
    torch.manual_seed(0)
    x, y = images(True, 20 * 64 + 64)
    tmodel = train_torch(torch_lenet5(), x, y)
    data = torch_export(tmodel.eval(), x[:4])
    x_test, _ = images(False, 1000)
    model = check_loaded_matches_torch(tmodel, data, x_test, x[-64:], y[-64:])
    assert isinstance(model, ember.nn.Sequential)
    assert [type(m).__name__ for m in model] == [type(m).__name__ for m in tmodel]
    assert ember.summary(model, (1, 1, 28, 28)).total_params == 61_706


@needs_data
def test_batchnorm_net_exported_by_torch_loads_predicts_and_fine_tunes_as_torch():
    torch.manual_seed(0)
    x, y = images(True, 20 * 64 + 64)
    tmodel = train_torch(torch_bn_net(), x, y)
    x_test, _ = images(False, 1000)
    # PyTorch folds each BatchNorm into the conv before it unless constant folding is off: the
    # folded file predicts the same, but only the unfolded one has the original parameters.
    folded = load_model(torch_export(tmodel.eval(), x[:4])).eval()
    ops = {type(m).__name__ for m in folded.modules()}
    assert "BatchNorm2d" not in ops and "BatchNorm1d" in ops
    with torch.no_grad():
        want = tmodel(torch.from_numpy(x_test)).numpy()
    got = folded(ember.tensor(x_test)).numpy()
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max() and (got.argmax(1) == want.argmax(1)).all()
    data = torch_export(tmodel.eval(), x[:4], do_constant_folding=False)
    model = check_loaded_matches_torch(tmodel, data, x_test, x[-64:], y[-64:])
    assert [type(m).__name__ for m in model] == [type(m).__name__ for m in tmodel]


class TorchResidual(tnn.Module):
    """A residual block with a concatenation: a graph that is not a chain (loads as OnnxGraph)."""

    def __init__(self):
        super().__init__()
        self.stem = tnn.Conv2d(3, 4, 3, padding=1)
        self.conv1 = tnn.Conv2d(4, 4, 3, padding=1)
        self.bn1 = tnn.BatchNorm2d(4)
        self.conv2 = tnn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.pool = tnn.AdaptiveAvgPool2d(1)
        self.fc = tnn.Linear(8, 5)

    def forward(self, x):
        s = tnn.functional.relu(self.stem(x))
        r = tnn.functional.relu(s + self.conv2(tnn.functional.relu(self.bn1(self.conv1(s)))))
        return self.fc(torch.flatten(torch.cat([self.pool(r), self.pool(s)], 1), 1))


def test_residual_net_exported_by_torch_loads_as_a_graph_and_fine_tunes_as_torch():
    torch.manual_seed(0)
    tmodel = TorchResidual()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3, 9, 7)).astype(np.float32)
    y = rng.integers(0, 5, size=16)
    tmodel.bn1.running_mean.uniform_(-0.5, 0.5)
    tmodel.bn1.running_var.uniform_(0.5, 2.0)
    data = torch_export(tmodel.eval(), x[:2], do_constant_folding=False)
    model = check_loaded_matches_torch(tmodel, data, x, x, y)
    assert type(model).__name__ == "OnnxGraph"
    assert {"Concat", "Binary", "Conv2d", "BatchNorm2d", "AdaptiveAvgPool2d", "Linear"} <= \
        {type(m).__name__ for m in model.modules()}


def test_mlp_exported_by_torch_loads():
    torch.manual_seed(0)
    tmodel = tnn.Sequential(tnn.Flatten(), tnn.Linear(784, 100), tnn.Sigmoid(), tnn.Linear(100, 10))
    x = np.random.default_rng(0).normal(size=(32, 1, 28, 28)).astype(np.float32)
    model = check_loaded_matches_torch(tmodel, torch_export(tmodel.eval(), x[:2]), x, x, np.arange(32) % 10)
    assert [type(m).__name__ for m in model] == ["Flatten", "Linear", "Sigmoid", "Linear"]


@needs_data
def test_lenet5_from_torchs_default_dynamo_exporter_loads():
    """torch 2.13's default exporter (dynamo=True, needs onnxscript) writes Flatten as a
    Reshape with allowzero=1 and opset 20; ember loads that too, with identical predictions."""
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    x, y = images(True, 10 * 64)
    tmodel = train_torch(torch_lenet5(), x, y, steps=10).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(tmodel, (torch.from_numpy(x[:2]),), dynamo=True, verbose=False,
                                    input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    x_test, _ = images(False, 1000)
    check_loaded_matches_torch(tmodel, program.model_proto.SerializeToString(), x_test, x[-64:], y[-64:])


class OptionABlock(ember.nn.Module):
    """He et al.'s CIFAR residual block with the parameter-free option-A shortcut (strided
    slice + zero channels), written as the CIFAR models write it."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        nn = ember.nn
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        s = x[:, :, ::self.stride, ::self.stride] if self.stride != 1 else x
        s = F.pad(s, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2)) if self.extra else s
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + s)


def cifar_models():
    """The registry's CIFAR models when this checkout has them, and an option-A residual net."""
    nn = ember.nn
    found = [(name, lambda name=name: ember.models.get_model(name)) for name in ("resnet20", "cifar-convnet")
             if name in ember.models.MODELS]
    return found + [("option-a-resnet", lambda: nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), OptionABlock(4, 4, 1),
        OptionABlock(4, 8, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)))]


@pytest.mark.parametrize("name, build", cifar_models(), ids=[n for n, _ in cifar_models()])
def test_cifar_style_models_export_run_in_onnxruntime_and_reload_for_fine_tuning(name, build):
    ember.manual_seed(0)
    model = build()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, size=16)
    for _ in range(2):                     # non-trivial running statistics
        model(ember.tensor(x))
    f = io.BytesIO()
    export(model, ember.tensor(x[:2]), f, input_names=["x"], output_names=["y"], dynamic_axes={"x": [0], "y": [0]})
    onnx.checker.check_model(onnx.load_from_string(f.getvalue()), full_check=True)
    model.eval()
    want = model(ember.tensor(x)).numpy()
    got = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max() and (got.argmax(1) == want.argmax(1)).all()
    loaded = load_model(f.getvalue())
    np.testing.assert_array_equal(loaded.eval()(ember.tensor(x)).numpy(), want)
    # one SGD step in training mode: the loaded model's parameters move as the original's
    for m in (model, loaded):
        m.train()
        for d in m.modules():              # an evaluation-mode export has no Dropout nodes
            if isinstance(d, ember.nn.Dropout):
                d.eval()
        opt = ember.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        loss = F.cross_entropy(m(ember.tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # the loaded modules are named after the original's paths, dots as underscores
    ours = {k.rsplit(".", 1)[0].replace(".", "_") + "." + k.rsplit(".", 1)[1]: p.numpy()
            for k, p in model.named_parameters()}
    theirs = {k: p.numpy() for k, p in loaded.named_parameters()}
    assert set(ours) == set(theirs)
    for k, v in ours.items():
        np.testing.assert_allclose(theirs[k], v, rtol=0, atol=1e-6, err_msg=k)
