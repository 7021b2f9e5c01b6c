"""ember.summary / `ember summary`: deck 001's shape table and LeNet-5's 61,706 parameters."""
import numpy as np
import pytest

import ember
from ember import nn
from ember.models import get_model
from ember.nn.summary import deck001_example

from test_train import run_cli


def test_summary_lives_beside_nn():
    import ember.nn.summary as module
    assert ember.summary is module.summary


def test_deck001_table():
    s = ember.summary(deck001_example(), (100, 3, 256, 256))
    convs = [r.output_shape for r in s.rows if r.type == "Conv2d"]
    assert convs == [(100, 16, 250, 250), (100, 32, 125, 125), (100, 64, 125, 125), (100, 64, 125, 125)]
    assert [r.params for r in s.rows if r.type == "Conv2d"] == [3 * 16 * 49 + 16, 16 * 32 * 9 + 32, 32 * 64 * 9 + 64, 64 * 64 + 64]
    text = str(s)
    for shape in ("100×3×256×256", "100×16×250×250", "100×32×125×125", "100×64×125×125"):
        assert shape in text
    # input + 7 outputs, float32
    n = 100 * (3 * 256 * 256 + 2 * 16 * 250 * 250 + 2 * 32 * 125 * 125 + 3 * 64 * 125 * 125)
    assert s.activation_bytes == 4 * n


def test_lenet5_and_modes_restored():
    s = ember.summary(get_model("lenet5"), (64, 1, 28, 28))
    assert s.total_params == s.trainable_params == 61706
    assert [r.name for r in s.rows][:3] == ["0", "1", "2"] and s.rows[-1].output_shape == (64, 10)
    m = get_model("convnet-bn")
    m.train()
    before = m[1].running_mean.numpy().copy()
    s = ember.summary(m, (8, 1, 28, 28))
    assert m.training and all(c.training for c in m.modules())
    np.testing.assert_array_equal(m[1].running_mean.numpy(), before)   # eval mode: stats untouched
    assert "forward" not in m[0].__dict__
    assert any(r.type == "BatchNorm2d" and r.params == 32 for r in s.rows)


def test_errors():
    with pytest.raises(ValueError, match="input_shape must be positive ints"):
        ember.summary(get_model("lenet5"), (0, 1, 28, 28))
    with pytest.raises(nn.ShapeError, match=r"0 \(Conv2d\): expected input with 1 channels, got 3"):
        ember.summary(get_model("lenet5"), (1, 3, 28, 28))


def test_cli():
    r = run_cli("summary", "--model", "lenet5", "--input-shape", "64,1,28,28")
    assert r.returncode == 0, r.stderr
    assert "Total params: 61,706" in r.stdout and "64×10" in r.stdout
    r = run_cli("summary", "--model", "vgg")
    assert r.returncode == 1 and "valid models: cifar-convnet, convnet-bn, deck001-example, lenet5, lenet5-classic, mlp, resnet20" in r.stderr
