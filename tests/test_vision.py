"""ember.viz.filters and ``ember filter``: the decks' worked filtering numbers, modes, padding, errors."""
import os

import numpy as np
import pytest

from ember import Tensor
from ember.viz import filters
from ember.cli import main
from ember.nn import functional as F


# ---- the decks' worked numbers ----------------------------------------------------------------
def test_deck000_1d_example():
    """Deck 000: [1,1,1,0,0] ⋆ [1,0,1] = [2,1,1]."""
    out = filters.filter1d([1, 1, 1, 0, 0], [1, 0, 1])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [2, 1, 1])


def test_deck000_2d_example_first_output_is_4():
    """Deck 000: the 5×5 binary image ⋆ the 3×3 'X' filter; the first output is 4."""
    image = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])
    kernel = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])
    out = filters.filter2d(image, kernel)
    assert out[0, 0] == 4
    np.testing.assert_array_equal(out, [[4, 3, 4], [2, 4, 3], [2, 3, 4]])


BOX_F = np.zeros((10, 10))
BOX_F[2:7, 3:8] = 90
BOX_F[5, 4] = 0
BOX_F[8, 2] = 90
# Deck 002 "Image filtering", g = h * f with the 1/9 box (valid part), as printed on the slide.
BOX_G = [[0, 10, 20, 30, 30, 30, 20, 10],
         [0, 20, 40, 60, 60, 60, 40, 20],
         [0, 30, 60, 90, 90, 90, 60, 30],
         [0, 30, 50, 80, 80, 90, 60, 30],
         [0, 30, 50, 80, 80, 90, 60, 30],
         [0, 20, 30, 50, 50, 60, 40, 20],
         [10, 20, 30, 30, 30, 30, 20, 10],
         [10, 10, 10, 0, 0, 0, 0, 0]]


@pytest.mark.parametrize("mode", ["correlate", "convolve"])
def test_deck002_box_filter_10x10(mode):
    out = filters.filter2d(BOX_F, "box-3", mode=mode)
    np.testing.assert_allclose(out[0], [0, 10, 20, 30, 30, 30, 20, 10], atol=1e-4)   # the slide's first row
    np.testing.assert_allclose(out, BOX_G, atol=1e-4)
    same = filters.filter2d(BOX_F, "box-3", padding="same")
    assert same.shape == (10, 10)
    np.testing.assert_allclose(same[1:-1, 1:-1], BOX_G, atol=1e-4)


def test_deck002_impulse_response_copy_vs_flip():
    """Convolution copies the filter into the output; correlation flips it (deck 002)."""
    impulse = np.zeros((7, 7))
    impulse[3, 3] = 1
    K = np.arange(1, 10).reshape(3, 3)
    conv = filters.filter2d(impulse, K, mode="convolve")
    corr = filters.filter2d(impulse, K, mode="correlate")
    expect_conv = np.zeros((5, 5))
    expect_conv[1:4, 1:4] = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    np.testing.assert_array_equal(conv, expect_conv)
    np.testing.assert_array_equal(corr[1:4, 1:4], [[9, 8, 7], [6, 5, 4], [3, 2, 1]])


def test_deck001_maxpool_8x8():
    x = np.array([[-7, 6, -1, 3, 9, 9, 6, -9],
                  [3, -8, 0, 7, 10, 8, -3, 10],
                  [-4, 2, -6, 4, -7, 5, 5, 7],
                  [-3, -9, 1, 8, -8, 9, -1, -5],
                  [-7, 10, -9, -5, 9, -8, -7, 10],
                  [-5, 5, 9, 4, 10, -8, 7, 6],
                  [-3, 8, 0, 2, 2, -3, -2, 5],
                  [4, -6, 7, -3, 1, 4, 10, 0]], dtype=np.float32)
    out = F.max_pool2d(Tensor(x[None, None]), 2, 2).numpy()[0, 0]
    np.testing.assert_array_equal(out, [[6, 7, 10, 10], [2, 8, 9, 7], [10, 9, 10, 10], [8, 7, 4, 10]])


def test_deck002_shift_kernel_right_under_convolution_left_under_correlation():
    img = np.arange(36, dtype=np.float32).reshape(6, 6)
    right = filters.filter2d(img, "shift", mode="convolve", padding="same")
    left = filters.filter2d(img, "shift", mode="correlate", padding="same")
    np.testing.assert_array_equal(right[:, 1:], img[:, :-1])
    np.testing.assert_array_equal(right[:, 0], 0)
    np.testing.assert_array_equal(left[:, :-1], img[:, 1:])


def test_identity_and_sharpen_is_highpass_plus_identity():
    """Deck 002 'no change'; deck 001 'sharpen = highpass + identity'."""
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (9, 11)).astype(np.float32)
    np.testing.assert_array_equal(filters.filter2d(img, "identity", padding="same"), img)
    np.testing.assert_array_equal(filters.get_kernel("sharpen"),
                                  filters.get_kernel("highpass") + filters.get_kernel("identity"))
    np.testing.assert_allclose(filters.filter2d(img, "sharpen"),
                               filters.filter2d(img, "highpass") + img[1:-1, 1:-1], rtol=1e-5, atol=1e-3)


def test_sobel_on_a_vertical_step_edge():
    img = np.zeros((5, 6), dtype=np.float32)
    img[:, 3:] = 10                                                  # dark | bright
    gx = filters.filter2d(img, "sobel-x")
    gy = filters.filter2d(img, "sobel-y")
    np.testing.assert_array_equal(gx, [[0, 40, 40, 0]] * 3)          # (1+2+1) * 10 at the edge
    np.testing.assert_array_equal(gy, 0)
    np.testing.assert_array_equal(filters.sobel_magnitude(img), np.abs(gx))
    mag = filters.sobel_magnitude(img.T)                              # a horizontal edge: same magnitude
    np.testing.assert_array_equal(mag, np.abs(gx).T)


# ---- against direct loops and torch -------------------------------------------------------------
def _reference(img, k, mode, padding):
    """Direct double loop: correlation of the (zero-padded) image with k (flipped for convolve)."""
    k = k[::-1, ::-1] if mode == "convolve" else k
    KH, KW = k.shape
    if padding == "same":
        t, l = (KH - 1) // 2, (KW - 1) // 2
        img = np.pad(img, ((t, KH - 1 - t), (l, KW - 1 - l)) + ((0, 0),) * (img.ndim - 2))
    OH, OW = img.shape[0] - KH + 1, img.shape[1] - KW + 1
    out = np.zeros((OH, OW) + img.shape[2:])
    for i in range(OH):
        for j in range(OW):
            patch = img[i:i + KH, j:j + KW]
            out[i, j] = np.tensordot(k, patch, axes=([0, 1], [0, 1]))
    return out


@pytest.mark.parametrize("mode", ["correlate", "convolve"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("kshape", [(3, 3), (2, 4), (5, 1)])
@pytest.mark.parametrize("channels", [None, 3])
def test_filter2d_matches_direct_loops(mode, padding, kshape, channels):
    rng = np.random.default_rng(1)
    img = rng.normal(size=(7, 8) + ((channels,) if channels else ())).astype(np.float64)
    k = rng.normal(size=kshape)
    out = filters.filter2d(img, k, mode=mode, padding=padding)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, _reference(img, k, mode, padding), rtol=1e-12, atol=1e-12)
    if padding == "same":
        assert out.shape == img.shape


def test_filter2d_matches_torch_and_gradients_flow():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    img = rng.normal(size=(6, 7))
    k = rng.normal(size=(3, 2))
    x = Tensor(img, requires_grad=True)
    y = filters.filter2d(x, k, padding="same", mode="convolve")
    assert isinstance(y, Tensor)
    g = rng.normal(size=y.shape)
    y.backward(Tensor(g))
    tx = torch.tensor(img, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx[None, None], torch.tensor(k[::-1, ::-1].copy())[None, None], padding="same")[0, 0]
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_dtypes_stay_float32_unless_float64():
    assert filters.filter2d(np.ones((4, 4), np.uint8), "box-3").dtype == np.float32
    assert filters.filter2d(np.ones((4, 4), np.float32), "sobel-x").dtype == np.float32
    assert filters.filter2d(np.ones((4, 4), np.float64), "sobel-x").dtype == np.float64
    assert filters.sobel_magnitude(np.ones((4, 4), np.float32)).dtype == np.float32


def test_brightness_kernels_and_fractions_for_printing():
    assert [n for n in filters.kernel_names() if filters.preserves_brightness(n)] == [
        "identity", "shift", "box-3", "box-7", "gaussian", "sharpen"]
    d, numbers = filters.kernel_fraction(filters.get_kernel("gaussian"))
    assert d == 16 and numbers.tolist() == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    assert filters.kernel_fraction(filters.get_kernel("box-7"))[0] == 49
    assert filters.kernel_fraction(filters.get_kernel("sobel-x"))[0] == 1
    d, k = filters.kernel_fraction([[0.1234567]])
    assert d == 1 and k[0, 0] == pytest.approx(0.1234567)


def test_demo_image_has_every_feature():
    img = filters.demo_image(128)
    assert img.shape == (128, 128) and img.dtype == np.float32
    assert img.min() >= 0 and img.max() == 255


# ---- errors -----------------------------------------------------------------------------------
def test_unknown_kernel_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown kernel 'blurr'; valid kernels: identity, shift, box-3, .*sobel-x, "
                                         r"sobel-y, sobel-magnitude"):
        filters.get_kernel("blurr")


def test_bad_mode_padding_and_shapes():
    with pytest.raises(ValueError, match="mode must be one of 'correlate', 'convolve', got 'conv'"):
        filters.filter2d(np.ones((4, 4)), "box-3", mode="conv")
    with pytest.raises(ValueError, match="padding must be one of 'valid', 'same', got 'full'"):
        filters.filter2d(np.ones((4, 4)), "box-3", padding="full")
    with pytest.raises(ValueError, match=r"image 2x5 is smaller than the kernel 3x3 \(use padding='same'\)"):
        filters.filter2d(np.ones((2, 5)), "box-3")
    with pytest.raises(ValueError, match=r"image must have shape \(H, W\) or \(H, W, C\), got \(4,\)"):
        filters.filter2d(np.ones(4), "box-3")
    with pytest.raises(ValueError, match=r"kernel must be 2-D \(KH, KW\), got shape \(3,\)"):
        filters.filter2d(np.ones((4, 4)), [1, 0, 1])


# ---- ember filter -----------------------------------------------------------------------------
@pytest.fixture
def Image():
    return pytest.importorskip("PIL.Image")


def _png(path, array):
    from PIL import Image
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return str(path)


def test_cli_filter_grey_image(Image, tmp_path, capsys):
    img = (filters.demo_image(40)).astype(np.uint8)
    src = _png(tmp_path / "in.png", img)
    out, values = tmp_path / "out.png", tmp_path / "out.npy"
    assert main(["filter", src, "--kernel", "identity", "--out", str(out), "--values", str(values)]) == 0
    assert capsys.readouterr().out.split() == [str(out), str(values)]
    np.testing.assert_array_equal(np.load(values), img)                   # identity: the same pixels
    assert main(["filter", src, "--kernel", "sobel-x", "--padding", "valid", "--out", str(out),
                 "--values", str(values)]) == 0
    edges = np.load(values)
    assert edges.shape == (38, 38) and edges.dtype == np.float32
    np.testing.assert_array_equal(edges, filters.filter2d(img, "sobel-x"))
    with Image.open(out) as im:                                          # input | kernel | response + bar
        assert im.format == "PNG" and im.size == (1200, 420)


def test_item15_5_filter_shows_signed_responses_that_differ_between_modes(Image, tmp_path, capsys):
    """Sobel-x correlated vs convolved: opposite signs, different pictures, the reference conv numbers."""
    src = filters.TEST_PICTURE
    img = np.asarray(Image.open(src), dtype=np.float64)
    got = {}
    for mode in filters.MODES:
        png, npy = tmp_path / f"{mode}.png", tmp_path / f"{mode}.npy"
        assert main(["filter", src, "--kernel", "sobel-x", "--mode", mode, "--out", str(png), "--values", str(npy)]) == 0
        got[mode] = np.load(npy), np.asarray(Image.open(png).convert("RGB"))
        np.testing.assert_allclose(got[mode][0], _reference(img, filters.get_kernel("sobel-x", np.float64), mode, "same"),
                                   rtol=1e-6, atol=1e-3)
    corr, conv = got["correlate"][0], got["convolve"][0]
    assert corr.min() < -100 and corr.max() > 100                          # signed, not |response|
    np.testing.assert_array_equal(conv, -corr)                              # flipping Sobel-x negates it
    assert not np.array_equal(got["correlate"][1], got["convolve"][1])     # and the pictures show it
    capsys.readouterr()


def test_item15_5_filter_signed_response_equals_torch_conv(Image, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    img = np.asarray(Image.open(filters.TEST_PICTURE), dtype=np.float32)
    npy = tmp_path / "v.npy"
    assert main(["filter", filters.TEST_PICTURE, "--kernel", "sobel-y", "--mode", "convolve", "--padding", "valid",
                 "--out", str(tmp_path / "v.png"), "--values", str(npy)]) == 0
    k = torch.tensor(filters.get_kernel("sobel-y")[::-1, ::-1].copy())[None, None]   # convolution = flipped kernel
    ref = torch.nn.functional.conv2d(torch.tensor(img)[None, None], k)[0, 0].numpy()
    np.testing.assert_allclose(np.load(npy), ref, rtol=1e-6, atol=1e-3)
    capsys.readouterr()


def test_cli_filter_rgb_image_and_convolve(Image, tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (12, 15, 3)).astype(np.uint8)
    src = _png(tmp_path / "rgb.png", img)
    monkeypatch.chdir(tmp_path)
    assert main(["filter", src, "--kernel", "shift", "--mode", "convolve", "--values", "shift.npy"]) == 0
    out = capsys.readouterr().out.split()
    assert out == [os.path.join("runs", "filters", "rgb-shift-convolve.png"), "shift.npy"]
    assert (tmp_path / out[0]).is_file()
    shifted = np.load(tmp_path / "shift.npy")
    assert shifted.shape == (12, 15, 3)
    np.testing.assert_array_equal(shifted[:, 1:], img[:, :-1])             # moved one pixel right
    assert main(["filter", src, "--kernel", "sobel-x"]) == 0               # signed kernel on colour: no error
    assert capsys.readouterr().out.strip() == os.path.join("runs", "filters", "rgb-sobel-x-correlate.png")


def test_item15_8_filter_demo_writes_under_runs_filters_not_the_current_folder(Image, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert main(["filter", "--demo", "--mode", "convolve"]) == 0
    path = capsys.readouterr().out.strip()
    assert path == os.path.join("runs", "filters", "demo-convolve.png")
    assert sorted(os.listdir(tmp_path)) == ["runs"]                         # nothing stray in the folder
    with Image.open(tmp_path / path) as im:
        assert im.format == "PNG" and im.size == (1840, 1160)
        assert np.asarray(im.convert("L")).std() > 20                    # not a blank sheet


def test_test_picture_is_the_generated_demo_image(Image):
    np.testing.assert_array_equal(np.asarray(Image.open(filters.TEST_PICTURE)),
                                  filters.demo_image(128).astype(np.uint8))


def test_cli_filter_errors(Image, tmp_path, capsys):
    assert main(["filter", str(tmp_path / "missing.png"), "--kernel", "sobel-x"]) == 1
    err = capsys.readouterr().err
    assert err == f"ember filter: error: image file not found: {tmp_path / 'missing.png'}\n"
    src = _png(tmp_path / "in.png", np.zeros((5, 5)))
    assert main(["filter", src, "--kernel", "sobel"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ember filter: error: unknown kernel 'sobel'; valid kernels: identity, shift, ")
    assert "sobel-x, sobel-y, sobel-magnitude" in err and err.count("\n") == 1
    assert main(["filter", src]) == 1
    assert "--kernel is required; valid kernels: identity" in capsys.readouterr().err
    assert main(["filter"]) == 1
    assert "give an IMAGE file to filter, or --demo" in capsys.readouterr().err
    (tmp_path / "bad.png").write_text("not an image")
    assert main(["filter", str(tmp_path / "bad.png"), "--kernel", "box-3"]) == 1
    assert f"cannot read {tmp_path / 'bad.png'} as an image" in capsys.readouterr().err
    assert main(["filter", src, "--kernel", "box-3", "--mode", "flip"]) == 1
    assert "--mode must be one of 'correlate', 'convolve', got 'flip'" in capsys.readouterr().err
    assert main(["filter", src, "--kernel", "box-3", "--values", "x.txt"]) == 1
    assert capsys.readouterr().err == "ember filter: error: --values must name a .npy file, got 'x.txt'\n"
    assert main(["filter", "--demo", "--values", "x.npy"]) == 1
    assert "cannot be combined with --demo" in capsys.readouterr().err


def test_cli_filter_without_pillow_gives_install_hint(Image, tmp_path, monkeypatch, capsys):
    src = _png(tmp_path / "in.png", np.zeros((5, 5)))
    monkeypatch.setitem(__import__("sys").modules, "PIL", None)
    assert main(["filter", src, "--kernel", "box-3"]) == 1
    assert capsys.readouterr().err == ("ember filter: error: Pillow is not installed; install the viz extra: "
                                       "pip install 'ember[viz]'\n")
