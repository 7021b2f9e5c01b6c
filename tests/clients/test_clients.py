"""Client programs in everyday PyTorch idiom, each run twice in a subprocess: once with real
``torch`` and once with ``ember`` imported as ``torch`` (``shim/torch`` first on the path: only
the import names change). Both runs start from the same values (data and weights made with
NumPy's seeded RNG and ``torch.tensor``), and must print the same text with the same numbers
(|a - b| ≤ 1e-5·max(1, |b|)).

A program that needs PyTorch API ember does not have yet is marked ``xfail(strict=True)`` with
the missing items as its reason: when ember gains them the test passes, strict xfail fails, and
the mark must go.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|nan|inf")

# program -> the PyTorch API it needs that ember lacks today (None: runs now)
PROGRAMS = {
    "mlp_numpy_weights.py": None,
    "poly_fit_manual_grad.py": None,
    "logistic_regression_raw.py": None,
    "mlp_loader_train.py": None,
    "save_load_roundtrip.py": None,
    "custom_autograd_function.py": None,
    "tensor_manipulation.py": None,
    "autograd_graph_and_views.py": None,
    "cnn_classifier_tutorial.py": None,
    "resnet_block_schedule.py": None,
    "finetune_checkpoint.py": None,
    "mnist_example_idioms.py": None,
    "regression_adamw_warmup.py": None,
    "sequence_models.py": None,
    "dcgan_tutorial.py": None,
    "transformer_tutorial.py": None,
    "vae_and_reinforce.py": None,
}


def _run(program: str, as_ember: bool, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    paths = [str(HERE / "shim"), str(ROOT)] if as_ember else [str(ROOT)]
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, str(HERE / program)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _compare(ours: str, theirs: str) -> list[str]:
    """Differences between two outputs: text with numbers masked, then each number."""
    problems = []
    if NUMBER.sub("#", ours) != NUMBER.sub("#", theirs):
        problems.append(f"text differs:\n--- torch\n{theirs}\n--- ember\n{ours}")
        return problems
    for i, (a, b) in enumerate(zip(NUMBER.findall(ours), NUMBER.findall(theirs))):
        x, y = float(a), float(b)
        if not (x == y or abs(x - y) <= 1e-5 * max(1.0, abs(y)) or (x != x and y != y)):  # nan prints alike
            problems.append(f"number {i}: ember {a}, torch {b}")
    return problems


def test_shim_is_ember_itself():
    out = subprocess.run([sys.executable, "-c", "import torch, torch.nn, torch.utils.data as d, ember; "
                          "print(torch is ember, torch.nn is ember.nn, d.DataLoader is ember.data.DataLoader)"],
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE / "shim"), str(ROOT)])),
                         capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["True", "True", "True"], out.stderr


def test_compare_catches_differences():
    assert _compare("loss 0.1234567 acc 3", "loss 0.1234568 acc 3") == []
    assert _compare("loss 0.1235 acc 3", "loss 0.1234 acc 3") != []
    assert _compare("loss 12346.0", "loss 12345.0") != [] and _compare("loss 123450.1", "loss 123450.2") == []
    assert _compare("loss 1", "cost 1") != []
    assert _compare("min nan", "min nan") == [] and _compare("min nan", "min 0.5") != []
    assert _compare("weights [1.0, 2.0]", "weights [1.0, 2.0, 3.0]") != []


@pytest.mark.parametrize("program", [
    pytest.param(name, marks=[] if why is None else pytest.mark.xfail(strict=True, reason=f"needs {why}"))
    for name, why in PROGRAMS.items()])
def test_client_program_prints_the_same_under_torch_and_ember(program, tmp_path):
    theirs = _run(program, as_ember=False, cwd=tmp_path)
    assert theirs.returncode == 0, f"{program} fails under torch itself:\n{theirs.stderr}"
    assert theirs.stdout.strip(), f"{program} printed nothing"
    ours = _run(program, as_ember=True, cwd=tmp_path)
    assert ours.returncode == 0, f"{program} fails under ember:\n{ours.stderr[-3000:]}"
    problems = _compare(ours.stdout, theirs.stdout)
    assert not problems, f"{program}:\n" + "\n".join(problems)


def test_every_program_is_listed():
    on_disk = {p.name for p in HERE.glob("*.py") if not p.name.startswith("test_")}
    assert on_disk == set(PROGRAMS)
