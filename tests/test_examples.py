"""Every script in examples/ runs (in well under 60 s) and prints the decks' worked numbers."""
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def run_example(name: str, limit: float = 60.0) -> str:
    """Run examples/<name> as a user would; return its stdout. Fails on error or > limit seconds."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, os.path.join(EXAMPLES, name)], capture_output=True, text=True,
                       timeout=limit * 2, cwd=ROOT)
    elapsed = time.perf_counter() - t0
    assert r.returncode == 0, f"{name} failed:\n{r.stderr}"
    assert elapsed < limit, f"{name} took {elapsed:.1f} s (limit {limit} s)"
    return r.stdout


def numbers(line: str) -> list:
    return [float(v) for v in re.findall(r"-?\d+\.?\d*(?:e[-+]\d+)?", line)]


def block(out: str, title: str, rows: int) -> np.ndarray:
    """The `rows` lines of numbers printed under the line starting with `title`."""
    lines = out.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(title))
    return np.array([numbers(line) for line in lines[i + 1:i + 1 + rows]])


def test_every_example_has_a_test():
    scripts = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py"))
    tested = {m.group(1) for m in re.finditer(r'run_example\("([\w.]+)"', open(__file__).read())}
    assert scripts and set(scripts) <= tested, f"untested examples: {sorted(set(scripts) - tested)}"


def test_gradient_descent():
    out = run_example("gradient_descent.py")
    vals = {}
    for line in out.splitlines():
        m = re.match(r"f\(([+-][\d.]+)\) = ([\d.]+)\s+f'\([+-][\d.]+\) = ([+-][\d.]+)", line)
        if m:
            vals[float(m.group(1))] = (float(m.group(2)), float(m.group(3)))
    # deck 001: f(-.50) = 1.8987, f(-.51) = 1.9254, f(-.49) = 1.8724, f'(-.5) = -2.64872,
    # f(0) = 1, f'(0) = -1, f(0.5) = 0.85653, f'(0.5) = 0.39347
    assert round(vals[-0.5][0], 4) == 1.8987 and vals[-0.5][1] == -2.64872
    assert round(vals[-0.51][0], 4) == 1.9254 and round(vals[-0.49][0], 4) == 1.8724
    assert vals[0.0] == (1.0, -1.0)
    assert vals[0.5] == (0.85653, 0.39347)
    argmins = re.findall(r"gradient descent from x = ([+-][\d.]+) .*argmin x = ([\d.]+)", out)
    assert [(float(a), float(b)) for a, b in argmins] == [(-0.5, 0.3517), (0.0, 0.3517), (0.5, 0.3517)]


DECK_MAP0 = [[0.77, -0.11, 0.11, 0.33, 0.55, -0.11, 0.33],
             [-0.11, 1.00, -0.11, 0.33, -0.11, 0.11, -0.11],
             [0.11, -0.11, 1.00, -0.33, 0.11, -0.11, 0.55],
             [0.33, 0.33, -0.33, 0.55, -0.33, 0.33, 0.33],
             [0.55, -0.11, 0.11, -0.33, 1.00, -0.11, 0.11],
             [-0.11, 0.11, -0.11, 0.33, -0.11, 1.00, -0.11],
             [0.33, -0.11, 0.55, 0.33, 0.11, -0.11, 0.77]]
DECK_MAP1 = [[0.33, -0.55, 0.11, -0.11, 0.11, -0.55, 0.33],
             [-0.55, 0.55, -0.55, 0.33, -0.55, 0.55, -0.55],
             [0.11, -0.55, 0.55, -0.77, 0.55, -0.55, 0.11],
             [-0.11, 0.33, -0.77, 1.00, -0.77, 0.33, -0.11],
             [0.11, -0.55, 0.55, -0.77, 0.55, -0.55, 0.11],
             [-0.55, 0.55, -0.55, 0.33, -0.55, 0.55, -0.55],
             [0.33, -0.55, 0.11, -0.11, 0.11, -0.55, 0.33]]
DECK_POOLED = [[[1.00, 0.33, 0.55, 0.33], [0.33, 1.00, 0.33, 0.55], [0.55, 0.33, 1.00, 0.11], [0.33, 0.55, 0.11, 0.77]],
               [[0.55, 0.33, 0.55, 0.33], [0.33, 1.00, 0.55, 0.11], [0.55, 0.55, 0.55, 0.11], [0.33, 0.11, 0.11, 0.33]],
               [[0.33, 0.55, 1.00, 0.77], [0.55, 0.55, 1.00, 0.33], [1.00, 1.00, 0.11, 0.55], [0.77, 0.33, 0.55, 0.33]]]


def test_x_vs_o():
    out = run_example("x_vs_o.py")
    np.testing.assert_array_equal(block(out, "feature map 0", 7), DECK_MAP0)
    np.testing.assert_array_equal(block(out, "feature map 1", 7), DECK_MAP1)
    np.testing.assert_array_equal(block(out, "feature map 2", 7), np.fliplr(DECK_MAP0))   # the mirror feature
    for k in range(3):
        np.testing.assert_array_equal(block(out, f"max pooled map {k}", 4), DECK_POOLED[k])
    np.testing.assert_array_equal(block(out, "ReLU of feature map 0", 7), np.maximum(DECK_MAP0, 0))
    diag = next(line for line in out.splitlines() if line.startswith("diagonal of feature map 0"))
    assert numbers(diag.split(":")[1]) == [0.77, 1.00, 1.00, 0.55, 1.00, 1.00, 0.77]
    acc = {m.group(1): float(m.group(2)) for m in re.finditer(r"accuracy on (.+): ([\d.]+)", out)}
    assert acc["train (centred, thin)"] == 1.0
    assert acc["test: shifted, thin"] >= 0.95
    assert acc["test: centred, thick"] >= 0.7 and acc["test: shifted, thick"] >= 0.7


def test_backprop_by_hand_matches_autograd():
    out = run_example("backprop_by_hand.py")
    for label in ("D_loop - D_autograd", "D_matrix - D_autograd", "D_hand - D_autograd"):
        line = next(line for line in out.splitlines() if label in line)
        assert float(line.rsplit("=", 1)[1]) < 1e-10, line
    m = re.search(r"J = ([\d.]+) \(autograd ([\d.]+)\)", out)
    assert abs(float(m.group(1)) - float(m.group(2))) < 1e-10
    m = re.search(r"after 3000 gradient-descent steps .*: J = ([\d.]+), training accuracy ([\d.]+)", out)
    assert float(m.group(1)) < float(re.search(r"at initialisation: J = ([\d.]+)", out).group(1))
    assert float(m.group(2)) >= 0.85


def test_four_pixel_camera():
    out = run_example("four_pixel_camera.py")
    assert "= -1.075, squashed" in out
    assert float(re.search(r"test accuracy ([\d.]+)", out).group(1)) >= 0.95


def test_linear_logistic_regression():
    out = run_example("linear_logistic_regression.py")
    w1, w2, b = numbers(re.search(r"linear regression by SGD: (.*?) \(true", out).group(1))
    assert abs(w1 - 2) < 0.1 and abs(w2 + 3) < 0.1 and abs(b - 0.5) < 0.1
    r1, r2, rb = numbers(re.search(r"update rule .*?: (.*)", out).group(1))
    assert abs(r1 - 2) < 0.15 and abs(r2 + 3) < 0.15 and abs(rb - 0.5) < 0.15
    assert float(re.search(r"logistic regression by SGD: accuracy ([\d.]+)", out).group(1)) >= 0.95


def test_mean_is_argmin():
    out = run_example("mean_is_argmin.py")
    assert numbers(next(line for line in out.splitlines() if line.strip().startswith("d^2"))) == [2, 1, 4, 16, 64]
    m = re.search(r"best guess ([\d.]+) \(the mean is ([\d.]+)\)", out)
    assert m.group(1) == m.group(2) == "58.0000"
    assert "cost d^2     : best guess 58.00" in out and "cost |d|     : best guess 57.00" in out


def test_exhaustive_vs_gradient():
    out = run_example("exhaustive_vs_gradient.py")
    assert "smooth curve: exhaustive search -> 62.0 C" in out and "bumpy curve: exhaustive search -> 62.0 C" in out
    assert "smooth curve: gradient descent from 30 C -> 62.0 C" in out
    stuck = float(re.search(r"bumpy curve: gradient descent from 30 C -> ([\d.]+) C", out).group(1))
    assert 33 < stuck < 40                                      # stopped in the local dip
    assert "bumpy curve: gradient descent from 90 C -> 62.0 C" in out


def test_conv_shapes_table():
    out = run_example("conv_shapes.py")
    for row in ("(100 x 3 x 256 x 256)    (3 x 16 x 7 x 7) Pad 0 Stride 1  (100 x 16 x 250 x 250)",
                "(100 x 16 x 250 x 250)   (16 x 32 x 3 x 3) Pad 1 Stride 2 (100 x 32 x 125 x 125)",
                "(100 x 32 x 125 x 125)   (32 x 64 x 3 x 3) Pad 1 Stride 1 (100 x 64 x 125 x 125)",
                "(100 x 64 x 125 x 125)   (64 x 64 x 1 x 1) Pad 0 Stride 1 (100 x 64 x 125 x 125)"):
        assert row in out


def test_convolution_by_hand():
    out = run_example("convolution_by_hand.py")
    assert block(out, "deck 000 1-D", 1).tolist() == [[2, 1, 1]]
    assert block(out, "deck 000 2-D", 3).tolist() == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    assert block(out, "deck 002 box filter", 8)[0].tolist() == [0, 10, 20, 30, 30, 30, 20, 10]
    assert block(out, "deck 002 impulse response, convolution", 3).tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert block(out, "deck 002 impulse response, correlation", 3).tolist() == [[9, 8, 7], [6, 5, 4], [3, 2, 1]]
    assert block(out, "deck 001 max pooling", 4).tolist() == [[6, 7, 10, 10], [2, 8, 9, 7], [10, 9, 10, 10],
                                                            [8, 7, 4, 10]]


@pytest.mark.parametrize("name", ["gradient_descent.py"])
def test_examples_run_from_any_folder(name, tmp_path):
    r = subprocess.run([sys.executable, os.path.join(EXAMPLES, name)], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr


def test_convolution_by_hand_average_pooling():
    out = run_example("convolution_by_hand.py")
    x = np.array([[-7, 6, -1, 3, 9, 9, 6, -9], [3, -8, 0, 7, 10, 8, -3, 10], [-4, 2, -6, 4, -7, 5, 5, 7],
                  [-3, -9, 1, 8, -8, 9, -1, -5], [-7, 10, -9, -5, 9, -8, -7, 10], [-5, 5, 9, 4, 10, -8, 7, 6],
                  [-3, 8, 0, 2, 2, -3, -2, 5], [4, -6, 7, -3, 1, 4, 10, 0]])
    expected = x.reshape(4, 2, 4, 2).mean(axis=(1, 3))
    np.testing.assert_array_equal(block(out, "deck 001 average pooling", 4), expected)


def test_optimizers():
    out = run_example("optimizers.py")
    loss = {m.group(1).strip(): float(m.group(2)) for m in re.finditer(r"^  (.+?)\s+loss ([\d.e+-]+)", out, re.M)}
    assert set(loss) == {"SGD (lr 0.02)", "SGD + momentum 0.9", "SGD + Nesterov 0.9", "AdaGrad (lr 1)",
                         "RMSprop (lr 0.1)", "Adam (lr 0.5)", "Adam + StepLR(50, 0.5)"}
    assert all(v < 75 for v in loss.values())                        # every optimizer went downhill
    assert loss["SGD + momentum 0.9"] < loss["SGD (lr 0.02)"] / 100  # momentum crosses the valley floor
    assert loss["SGD + Nesterov 0.9"] < loss["SGD (lr 0.02)"] / 100
    assert loss["Adam + StepLR(50, 0.5)"] < loss["Adam (lr 0.5)"]


def test_augmentation():
    out = run_example("augmentation.py")
    assert "(4 of 4 copies changed)" in out
    grids = [line for line in out.splitlines() if set(line) <= set(".#+ ") and line]
    assert len(grids) == 27 and grids[4] == "....#....   ....#....   ....#....   ....#...."
