"""ember.data.transforms: batch-vectorised augmentation, checked against per-image loops."""
import numpy as np
import pytest

import ember
from ember.data import transforms as T

rng = np.random.default_rng(0)


def batch(n=6, c=2, h=7, w=5, dtype=np.float32):
    return rng.standard_normal((n, c, h, w)).astype(dtype)


def test_random_crop_matches_per_image_reference():
    x = batch()
    ember.manual_seed(3)
    y = T.RandomCrop((7, 5), padding=2, fill=-1.0)(x)
    ember.manual_seed(3)
    g = ember.random.default_generator()
    top, left = g.integers(0, 5, 6), g.integers(0, 5, 6)
    xp = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    ref = np.stack([xp[i, :, top[i]:top[i] + 7, left[i]:left[i] + 5] for i in range(6)])
    np.testing.assert_array_equal(y, ref)
    assert y.dtype == np.float32 and len({(a, b) for a, b in zip(top, left)}) > 1  # per-image offsets
    assert T.RandomCrop(3)(x).shape == (6, 2, 3, 3)
    with pytest.raises(ValueError, match=r"crop size \(9, 9\) is larger than the padded image 7x5"):
        T.RandomCrop(9)(x)


def test_horizontal_flip_per_image_and_tensor_in_tensor_out():
    x = batch(n=200)
    ember.manual_seed(1)
    y = T.RandomHorizontalFlip()(ember.tensor(x))
    assert isinstance(y, ember.Tensor)
    flipped = np.array([np.array_equal(y.numpy()[i], x[i, :, :, ::-1]) for i in range(200)])
    kept = np.array([np.array_equal(y.numpy()[i], x[i]) for i in range(200)])
    assert np.all(flipped ^ kept) and 70 < flipped.sum() < 130
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x), x[..., ::-1])


def test_normalize_and_compose():
    x = batch(c=3)
    y = T.Normalize([0.0, 1.0, 2.0], [1.0, 2.0, 4.0])(x)
    np.testing.assert_allclose(y[:, 2], (x[:, 2] - 2) / 4, rtol=1e-6)
    assert y.dtype == np.float32
    with pytest.raises(ValueError, match="3 channels but mean/std have 2/2 values"):
        T.Normalize([0, 0], [1, 1])(x)
    c = T.Compose([T.Normalize(1.0, 2.0), T.RandomHorizontalFlip(p=1.0)])
    np.testing.assert_allclose(c(x), ((x - 1) / 2)[..., ::-1], rtol=1e-6)
    with pytest.raises(ValueError, match=r"batches of shape \(N, C, H, W\) or images of shape \(C, H, W\), got shape \(7, 5\)"):
        c(x[0, 0])


def test_random_affine_identity_rotation_and_shift():
    x = batch(h=6, w=6)
    np.testing.assert_allclose(T.RandomAffine(0)(x), x, atol=1e-6)
    # a 90° rotation of a square image is a pure permutation of its pixels
    y = T.RandomAffine((90, 90))(x)
    candidates = [np.rot90(x, k, axes=(2, 3)) for k in (1, 3)]
    assert any(np.allclose(y, c, atol=1e-5) for c in candidates)
    # an integer shift moves the image and fills the border
    ember.manual_seed(0)
    big = T.RandomAffine(0, translate=(0.5, 0.5), fill=9.0)(x)
    assert np.any(big == 9.0) and big.dtype == np.float32


def test_random_transforms_are_reproducible_from_ember_seed():
    x = batch()
    aug = T.Compose([T.RandomCrop((7, 5), padding=1), T.RandomHorizontalFlip(), T.RandomAffine(10, (0.1, 0.1), (0.9, 1.1))])
    ember.manual_seed(5)
    a = aug(x)
    ember.manual_seed(5)
    np.testing.assert_array_equal(aug(x), a)
