"""ember.viz and ``ember visualize``: PNG files and pixel sizes, graph DOT text, errors, train hook."""
import dataclasses
import os
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

from ember import Tensor, manual_seed, nn, serialization, viz  # noqa: E402
from ember.cli import main  # noqa: E402
from ember.data import DatasetNotFoundError  # noqa: E402
from ember.models import MODELS, lenet5  # noqa: E402
from ember.training import TrainConfig, load_data  # noqa: E402
from ember.training import loop as train_mod  # noqa: E402
from ember.viz import plots  # noqa: E402


def _checkpoint(folder, model_name="lenet5", model=None):
    """A run folder as ember train writes it (untrained weights; enough for pictures)."""
    manual_seed(0)
    model = model or MODELS[model_name]()
    os.makedirs(folder, exist_ok=True)
    serialization.save_state_dict(model.state_dict(), os.path.join(folder, "model.safetensors"))
    serialization.atomic_write_json(os.path.join(folder, "config.json"),
                                    dataclasses.asdict(TrainConfig(model=model_name, out=str(folder))))
    return str(folder)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("run") / "lenet")


@pytest.fixture(scope="module")
def have_data():
    try:
        load_data("fashion-mnist", None, train=False)
    except DatasetNotFoundError:
        pytest.skip("Fashion-MNIST is not installed")


def _png_size(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert np.asarray(im.convert("L")).std() > 5, f"{path} looks blank"
        return im.size


def test_visualize_filters(ckpt, tmp_path, capsys):
    assert main(["visualize", "filters", "--checkpoint", ckpt, "--out", str(tmp_path)]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(tmp_path / "filters.png")
    assert _png_size(path) == (1080, 230)                       # 6 kernels in one row + colour bar


def test_visualize_filters_default_folder(ckpt, capsys):
    assert main(["visualize", "filters", "--checkpoint", ckpt]) == 0
    assert capsys.readouterr().out.strip() == os.path.join(ckpt, "viz", "filters.png")


def test_visualize_activations(ckpt, have_data, tmp_path, capsys):
    assert main(["visualize", "activations", "--checkpoint", ckpt, "--index", "3", "--out", str(tmp_path)]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(tmp_path / "activations-3.png")
    assert _png_size(path) == (2320, 835)                       # input row + 4 layers, label, 16 channels, bar


def test_visualize_activations_index_out_of_range(ckpt, have_data, capsys):
    assert main(["visualize", "activations", "--checkpoint", ckpt, "--index", "10000"]) == 1
    assert capsys.readouterr().err == ("ember visualize: error: --index 10000 is out of range: "
                                       "the test set has 10000 images\n")


def test_visualize_confusion(ckpt, have_data, tmp_path, capsys):
    assert main(["visualize", "confusion", "--checkpoint", ckpt, "--limit", "300", "--out", str(tmp_path)]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(tmp_path / "confusion.png")
    assert _png_size(path) == (850, 760)


def test_visualize_graph_without_dot(ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["visualize", "graph", "--checkpoint", ckpt, "--out", str(tmp_path)]) == 0
    paths = capsys.readouterr().out.split()
    assert paths == [str(tmp_path / "graph.dot"), str(tmp_path / "graph.png")]
    assert not (tmp_path / "graph.svg").exists()
    dot = (tmp_path / "graph.dot").read_text()
    assert dot.startswith("digraph ember {") and dot.rstrip().endswith("}")
    for label in ("Conv2d\\n1×6×28×28", "MaxPool2d\\n1×16×5×5", "Linear\\n1×10", "CrossEntropy\\nscalar",
                  "0.weight\\n6×1×5×5", "11.bias\\n10", "input\\n1×1×28×28"):
        assert label in dot
    assert dot.count(" -> ") == 12 + 10 + 1                      # 12 op-to-op edges, 10 params, 1 input
    assert _png_size(tmp_path / "graph.png") == (750, 1115)


def test_visualize_graph_with_dot_writes_svg(tmp_path, monkeypatch, capsys):
    """A stand-in `dot` on PATH proves the SVG step runs `dot -Tsvg graph.dot -o graph.svg`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text(f"#!{sys.executable}\nimport sys\nargs = sys.argv[1:]\nassert args[0] == '-Tsvg'\n"
                    "src = open(args[1]).read()\nopen(args[3], 'w').write('<svg>' + str(len(src)) + '</svg>')\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert main(["visualize", "graph", "--model", "lenet5", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split()[-1] == str(tmp_path / "graph.svg")
    assert (tmp_path / "graph.svg").read_text().startswith("<svg>")


def test_visualize_filters_without_conv_layers(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(MODELS, "tiny-mlp", lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))
    ckpt = _checkpoint(tmp_path / "mlp", "tiny-mlp")
    assert main(["visualize", "filters", "--checkpoint", ckpt]) == 1
    assert capsys.readouterr().err == ("ember visualize: error: model has no Conv2d layer to show filters of "
                                       "(its layers: Flatten, Linear)\n")


def test_visualize_missing_checkpoint(tmp_path, capsys):
    assert main(["visualize", "filters", "--checkpoint", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ember visualize: error: ") and "config.json" in err


def test_visualize_without_matplotlib_gives_install_hint(ckpt, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["visualize", "filters", "--checkpoint", ckpt]) == 1
    assert capsys.readouterr().err == ("ember visualize: error: matplotlib is not installed; install the viz "
                                       "extra: pip install 'ember[viz]'\n")
    assert main(["filter", "--demo"]) == 1
    assert "pip install 'ember[viz]'" in capsys.readouterr().err


def _figure_of(monkeypatch, draw):
    """Run ``draw()`` and return the matplotlib figure it would have saved."""
    kept = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: kept.append(fig) or str(path))
    draw()
    return kept[0]


def _colorbars(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def test_item15_5_value_scale_is_diverging_and_centred_for_signed_data():
    assert plots.value_scale(np.array([-0.5, 2.0])) == {"cmap": "RdBu_r", "vmin": -2.0, "vmax": 2.0}
    assert plots.value_scale(np.array([0.0, 3.0])) == {"cmap": "viridis", "vmin": 0.0, "vmax": 3.0}
    assert plots.value_scale(np.array([0.0, 3.0]), signed=True)["vmin"] == -3.0
    assert plots.value_scale(np.zeros(4)) == {"cmap": "viridis", "vmin": 0.0, "vmax": 1.0}   # never an empty range


def test_item15_5_filters_have_one_colour_bar_and_a_scale_centred_on_zero(monkeypatch):
    manual_seed(0)
    model = lenet5()
    fig = _figure_of(monkeypatch, lambda: viz.plot_filters(model, "unused.png"))
    (bar,) = _colorbars(fig)
    assert bar.get_ylabel() == "weight"
    images = [im for ax in fig.axes if ax not in (bar,) for im in ax.get_images()]
    assert len(images) == 6
    lim = float(np.abs(model[0].weight.data).max())
    for im in images:                                   # one shared, symmetric, diverging scale
        assert im.get_cmap().name == "RdBu_r" and im.get_clim() == pytest.approx((-lim, lim))


def test_item15_5_filters_of_a_three_channel_first_layer(monkeypatch):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    fig = _figure_of(monkeypatch, lambda: viz.plot_filters(model, "unused.png"))
    assert len(_colorbars(fig)) == 0                   # RGB kernels: one colour picture each, mid-grey = 0
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert titles == ["0", "1", "2", "3"] and all(ax.get_images()[0].get_array().ndim == 3
                                                  for ax in fig.axes if ax.get_images())
    fig = _figure_of(monkeypatch, lambda: viz.plot_activations(model, np.ones((3, 6, 6), np.float32), "unused.png"))
    assert len(_colorbars(fig)) == 1 and len([ax for ax in fig.axes if ax.get_title().startswith("ch ")]) == 4


def _dead_constant_live_model():
    """A conv whose channel 0 is all zeros (dead), channel 1 constant 0.5, channel 2 an edge detector."""
    conv = nn.Conv2d(1, 3, 3)
    w = np.zeros((3, 1, 3, 3), np.float32)
    w[2, 0] = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    conv.weight.data[...] = w
    conv.bias.data[...] = [0.0, 0.5, 0.0]
    return nn.Sequential(conv)


@pytest.mark.parametrize("shared", [False, True])
def test_item15_5_activations_have_colour_bars_and_dead_differs_from_constant(monkeypatch, shared):
    x = np.zeros((1, 1, 8, 8), np.float32)
    x[..., 2:5] = 1.0                                                      # a bright bar: edges of both signs
    fig = _figure_of(monkeypatch, lambda: viz.plot_activations(_dead_constant_live_model(), x, "unused.png",
                                                                 shared_scale=shared))
    assert len(_colorbars(fig)) == 1                                       # one per layer row
    panels = [ax for ax in fig.axes if ax.get_title().startswith("ch ")]
    assert len(panels) == 3
    rgba = [p.get_images()[0].to_rgba(p.get_images()[0].get_array())[0, 0] for p in panels]
    assert panels[2].get_images()[0].get_cmap().name == "RdBu_r"           # signed row: diverging map
    if shared:
        assert not np.allclose(rgba[0], rgba[1])                           # dead and constant look different
        assert [p.get_title() for p in panels] == ["ch 0", "ch 1", "ch 2"]
    else:                                                                  # own scales, with m printed
        assert [p.get_title() for p in panels] == ["ch 0  m=0", "ch 1  m=0.5", "ch 2  m=4"]


def test_item15_5_cli_activations_shared_scale(ckpt, have_data, tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(plots, "plot_activations", lambda *a, **kw: seen.append(kw) or "p.png")
    assert main(["visualize", "activations", "--checkpoint", ckpt, "--shared-scale", "--out", str(tmp_path)]) == 0
    assert seen == [{"shared_scale": True}]
    capsys.readouterr()


# ---- library functions ------------------------------------------------------------------------
ROWS = [{"epoch": e, "train_loss": 1 / e, "train_accuracy": 1 - 0.3 / e, "test_loss": 1.2 / e,
         "test_accuracy": 1 - 0.4 / e} for e in (1, 2, 3)]


def test_plot_curves_and_hook(tmp_path, monkeypatch):
    assert viz.maybe_plot_curves({"epochs": ROWS}, str(tmp_path)) == str(tmp_path / "curves.png")
    assert _png_size(tmp_path / "curves.png") == (1000, 400)
    with pytest.raises(ValueError, match="plot_curves: metrics has no epochs to plot"):
        viz.plot_curves({"epochs": []}, tmp_path / "x.png")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert viz.maybe_plot_curves({"epochs": ROWS}, str(tmp_path / "none")) is None
    assert not (tmp_path / "none").exists()


def test_plot_curves_with_validation_rows(tmp_path):
    rows = [dict(r, val_loss=r["test_loss"] * 0.9, val_accuracy=r["test_accuracy"]) for r in ROWS]
    path = viz.plot_curves({"epochs": rows}, tmp_path / "c.png")
    assert _png_size(path) == (1000, 400)
    plain = np.asarray(Image.open(viz.plot_curves({"epochs": ROWS}, tmp_path / "p.png")).convert("RGB"))
    assert not np.array_equal(np.asarray(Image.open(path).convert("RGB")), plain)   # a third curve drawn


def test_train_writes_curves_after_each_epoch(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    monkeypatch.setattr(train_mod, "load_data", lambda *a, **k: (x, y))
    written = []
    real = viz.maybe_plot_curves
    monkeypatch.setattr(plots, "maybe_plot_curves",
                        lambda m, out, steps: written.append((len(m["epochs"]), len(steps))) or real(m, out, steps))
    train_mod.train(TrainConfig(epochs=2, batch_size=32, out=str(tmp_path), progress=False), log=lambda *a: None)
    assert written == [(1, 2), (2, 4)]                      # epochs so far, steps so far (2 per epoch)
    assert _png_size(tmp_path / "curves.png") == (1500, 400)    # with the learning-rate panel


def test_confusion_matrix_counts():
    cm = viz.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert cm.dtype == np.int64
    with pytest.raises(ValueError, match=r"y_true \(2,\) and y_pred \(3,\) differ in shape"):
        viz.confusion_matrix([0, 1], [0, 1, 1], 2)


def test_feature_maps_of_lenet_and_patch_removed():
    manual_seed(0)
    model = lenet5().eval()
    x = np.random.default_rng(0).normal(size=(2, 1, 28, 28)).astype(np.float32)
    maps = viz.feature_maps(model, x)
    assert [(n, k, m.shape) for n, k, m in maps] == [
        ("0", "Conv2d", (6, 28, 28)), ("2", "MaxPool2d", (6, 14, 14)),
        ("3", "Conv2d", (16, 10, 10)), ("5", "MaxPool2d", (16, 5, 5))]
    conv_out = model[0](Tensor(x)).numpy()[0]
    np.testing.assert_array_equal(maps[0][2], conv_out)
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_graph_dot_of_a_small_expression():
    w = nn.Parameter(np.ones((2, 3), dtype=np.float32))
    x = Tensor(np.ones((3,), dtype=np.float32))
    out = ((w @ x).relu()).sum()
    dot = viz.graph_dot(out, {"w": w})
    assert 'label="w\\n2×3"' in dot and 'label="input\\n3"' in dot
    assert "MatMul\\n2" in dot and "ReLU\\n2" in dot and "Sum\\nscalar" in dot
    assert dot.count(" -> ") == 4
    with pytest.raises(ValueError, match="graph_dot: the tensor has no recorded graph"):
        viz.graph_dot(x)
