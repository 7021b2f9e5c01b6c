"""The README's figures, recipes and commands hold: figures against the recorded runs, the PyTorch
recipe run as written, the filter commands run as written, and every path the docs cite exists."""
import json
import os
import re
import shlex
import shutil
import sys

import numpy as np
import pytest

from ember.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import readme_figures  # noqa: E402


@pytest.fixture(scope="module")
def figures():
    with open(readme_figures.FIGURES, encoding="utf-8") as f:
        return json.load(f)


# ---- item 3: the table and the evaluate example against docs/readme-figures.json ---------------------
def test_item15_3_recorded_runs_are_default_lenet5_runs_over_several_seeds(figures):
    runs = figures["runs"]
    assert {(r["model"], r["dataset"]) for r in runs} == {("lenet5", "fashion-mnist")}
    one = sorted(r["seed"] for r in runs if r["epochs"] == 1)
    assert len(one) >= 3 and len(set(one)) == len(one)
    assert any(r["epochs"] == 10 and r["seed"] == 0 for r in runs)
    assert all(len(r["seconds"]) == r["epochs"] and 0.5 < r["test_accuracy"] < 1 for r in runs)
    assert "2-core" in figures["machine"] and "load" in figures["machine"]


def test_item15_3_readme_table_is_the_recorded_figures(figures):
    cells = readme_figures.readme_cells(figures)
    assert f"| `ember train --epochs 1` | {cells[1][0]} | {cells[1][1]} |" in README
    assert f"| `ember train` (10 epochs, the default) | {cells[10][0]} | {cells[10][1]} |" in README


def test_item15_3_evaluate_example_is_the_tables_seed_0_run(figures):
    run = next(r for r in figures["runs"] if r["epochs"] == 10 and r["seed"] == 0)
    line = (f"lenet5 on fashion-mnist test set: loss {run['test_loss']:.4f}, "
            f"accuracy {run['test_accuracy']:.4f} (10000 images)")
    assert line in README


def test_readme_cells_round_ranges_outwards():
    runs = [{"epochs": 1, "seed": s, "test_accuracy": a, "seconds": [t]}
            for s, a, t in ((0, 0.8719, 17.2), (1, 0.8845, 20.4), (2, 0.8770, 31.5))]
    runs.append({"epochs": 10, "seed": 0, "test_accuracy": 0.9078, "seconds": [9.0] * 10})
    assert readme_figures.readme_cells({"runs": runs}) == {
        1: ("87.1–88.5% over seeds 0–2", "17–32 s"), 10: ("90.78% (seed 0)", "9 s")}


def test_readme_figures_script_refuses_an_unfinished_run(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 10, "seed": 0, "model": "lenet5",
                                                      "dataset": "fashion-mnist"}))
    (tmp_path / "metrics.json").write_text(json.dumps({"epochs": [{"test_accuracy": 0.8, "test_loss": 0.5,
                                                                   "seconds": 9.0}]}))
    assert readme_figures.main(["--machine", "m", "--out", str(tmp_path / "f.json"), str(tmp_path)]) == 1
    assert "1 of 10 epochs recorded; the run is not finished" in capsys.readouterr().err


# ---- item 10: the PyTorch recipe, run as written ----------------------------------------------------
def _recipe():
    block = README.split("## Weights to and from PyTorch", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    setup, rest = block.split("# ember -> PyTorch\n")
    to_torch, rest = rest.split("# PyTorch -> ember\n")
    to_ember, check = rest.split("\n\n", 1)
    return setup, to_torch, to_ember, check


def test_item15_10_readme_recipe_moves_weights_both_ways(tmp_path, monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors.torch")
    import ember
    monkeypatch.chdir(tmp_path)
    setup, to_torch, to_ember, check = _recipe()
    ns = {}
    ember.manual_seed(0)
    torch.manual_seed(1)
    exec(setup, ns)
    x = torch.randn(5, 1, 28, 28)

    def gap():
        with torch.no_grad():
            theirs = ns["net"](x).numpy()
        return float(np.abs(theirs - ns["model"](ember.from_numpy(x.numpy())).numpy()).max())

    assert gap() > 1e-2                               # two different random initialisations
    exec(to_torch, ns)                                # ember -> PyTorch
    assert gap() < 1e-5
    for p in ns["net"].parameters():                  # new weights in PyTorch ...
        torch.nn.init.normal_(p, std=0.1)
    assert gap() > 1e-2
    exec(to_ember, ns)                                # ... carried back to ember
    assert gap() < 1e-5
    capsys.readouterr()
    exec(check, ns)                                   # the README's own check prints the difference
    assert float(capsys.readouterr().out) < 1e-5


# ---- items 5 and 8: the README's picture commands, as written -----------------------------------------
FILTER_COMMANDS = [line[2:].split("#")[0].strip() for line in README.splitlines() if line.startswith("$ ember filter")]


def test_readme_has_the_filter_commands():
    assert FILTER_COMMANDS == ["ember filter --demo",
                               "ember filter ember/viz/test-picture.png --kernel sobel-x --mode convolve --out edges.png"]


@pytest.mark.parametrize("command", FILTER_COMMANDS)
def test_item15_8_readme_filter_commands_run_as_written(command, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("PIL")
    os.makedirs(tmp_path / "ember" / "viz")
    shutil.copy(os.path.join(ROOT, "ember", "viz", "test-picture.png"), tmp_path / "ember" / "viz")
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(command)[1:]) == 0
    written = capsys.readouterr().out.split()
    assert written and all(os.path.isfile(p) for p in written)
    if "--out" not in command:
        assert all(p.startswith(os.path.join("runs", "filters", "")) for p in written)   # nothing stray


# ---- item 8: stale text --------------------------------------------------------------------------------
def test_item15_8_threads_wording_is_the_help_text(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    said = "BLAS and the ops that split large work"
    assert said in help_text and said in " ".join(README.split())


PATH = re.compile(r"(?<![\w/.])((?:\.ci|scripts|docs|examples|benchmarks|tests)/[\w./-]*\w)")


def test_item15_8_every_path_the_docs_and_tests_cite_exists():
    sources = ["README.md"] + [os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs"))
                               if f.endswith(".md")]
    sources += [os.path.join("tests", f) for f in os.listdir(os.path.join(ROOT, "tests")) if f.endswith(".py")]
    missing = []
    for src in sources:
        with open(os.path.join(ROOT, src), encoding="utf-8") as f:
            for path in PATH.findall(f.read()):
                if "NAME" in path or path.startswith("tests/artifacts"):   # placeholders, test output
                    continue
                if not os.path.exists(os.path.join(ROOT, path)):
                    missing.append(f"{src}: {path}")
    assert not missing, missing
    with open(os.path.join(ROOT, "docs", "lectures.md"), encoding="utf-8") as f:
        assert "shared/seeds" not in f.read()                                 # decks cited by name
