"""``ember export --checkpoint RUN --format onnx``, ``ember evaluate --onnx`` and
``ember summary --onnx`` (the ONNX commands live in ember/onnx/cli.py; ember/cli.py hooks them)."""
import json
import os

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import ember  # noqa: E402
import ember.models  # noqa: E402
import ember.onnx  # noqa: E402
from ember.cli import main  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
needs_data = pytest.mark.skipif(not os.path.isdir(DATA), reason="Fashion-MNIST not installed")


def save_state(state, path):
    from ember.serialization import save_state_dict
    save_state_dict(state, path)


@pytest.fixture
def run_folder(tmp_path):
    """A run folder as ``ember train`` writes it (weights + config), for an untrained LeNet-5."""
    ember.manual_seed(0)
    model = ember.models.get_model("lenet5")
    save_state(model.state_dict(), str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"model": "lenet5", "dataset": "fashion-mnist"}))
    return tmp_path, model


@needs_data
def test_export_evaluate_and_summary_from_the_command_line(run_folder, capsys):
    folder, model = run_folder
    out = folder / "lenet.onnx"
    assert main(["export", "--checkpoint", str(folder), "--format", "onnx", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"wrote {out} (") and lines[0].endswith("opset 17, dynamic batch axis)")
    assert lines[1].startswith("onnxruntime vs ember on 1000 fashion-mnist test images: max |Δ logit| ")
    assert lines[1].endswith("same class for 1000/1000")
    assert main(["evaluate", "--checkpoint", str(folder)]) == 0
    want = capsys.readouterr().out.split("accuracy ")[1].split()[0]
    for extra in ([], ["--onnxruntime"]):
        assert main(["evaluate", "--onnx", str(out), *extra]) == 0
        line = capsys.readouterr().out.strip()
        how = "onnxruntime" if extra else "ember"
        assert line.startswith(f"lenet.onnx ({how}) on fashion-mnist test set: loss ")
        assert line.split("accuracy ")[1].split()[0] == want
    assert main(["summary", "--onnx", str(out)]) == 0
    table = capsys.readouterr().out
    assert "Total params: 61,706" in table and "Conv2d" in table and "Linear" in table


def test_evaluate_needs_a_checkpoint_or_an_onnx_file(capsys):
    assert main(["evaluate"]) == 1
    assert capsys.readouterr().err.strip() == ("ember evaluate: error: give a run folder (RUN or --checkpoint RUN) "
                                                 "or --onnx MODEL.onnx")


def test_a_bad_onnx_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    assert main(["summary", "--onnx", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ember summary: error: {bad}: not ")


def test_export_of_a_missing_run_is_one_line(tmp_path, capsys):
    assert main(["export", "--checkpoint", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ember export: error: ")


def test_visualize_graph_of_an_onnx_file(run_folder, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    folder, model = run_folder
    onnx_path = tmp_path / "m.onnx"
    ember.onnx.export(model, ember.randn(1, 1, 28, 28), str(onnx_path))
    assert main(["visualize", "graph", "--onnx", str(onnx_path), "--out", str(tmp_path / "viz")]) == 0
    paths = capsys.readouterr().out.split()
    assert paths[:2] == [str(tmp_path / "viz" / "graph.dot"), str(tmp_path / "viz" / "graph.png")]
    dot = (tmp_path / "viz" / "graph.dot").read_text()
    assert "Conv2d" in dot and "0.weight" in dot
