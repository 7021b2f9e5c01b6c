"""Deck 003 "A toy ConvNet: X's and O's", with ember's conv2d, ReLU and max pooling.

Part 1 reproduces the deck's numbers: the 9×9 ±1 picture of an X, filtered with the deck's three
3×3 features ("line up the feature and the image patch, multiply, add them up, divide by the
number of pixels": a cross-correlation with weights/9) gives the printed 7×7 maps (0.77, −0.11,
0.11, 0.33, 0.55, ... and 1.00 down the diagonal); 2×2 max pooling with stride 2 shrinks them to
the printed 4×4 maps; ReLU zeroes the negatives. The deck prints values truncated to two decimals
(5/9 = 0.5556 appears as 0.55), and so does this script.

Part 2 trains a small convnet from scratch (SGD, cross-entropy) on thin X's and O's at the
centre of the picture, then tests it on X's and O's it never saw: shifted, and drawn thicker.

Run: python examples/x_vs_o.py
"""
import math

import numpy as np

import ember
from ember import nn
from ember.nn import functional as F
from ember.optim import SGD

X_IMAGE = np.array([
    [-1, -1, -1, -1, -1, -1, -1, -1, -1],
    [-1, 1, -1, -1, -1, -1, -1, 1, -1],
    [-1, -1, 1, -1, -1, -1, 1, -1, -1],
    [-1, -1, -1, 1, -1, 1, -1, -1, -1],
    [-1, -1, -1, -1, 1, -1, -1, -1, -1],
    [-1, -1, -1, 1, -1, 1, -1, -1, -1],
    [-1, -1, 1, -1, -1, -1, 1, -1, -1],
    [-1, 1, -1, -1, -1, -1, -1, 1, -1],
    [-1, -1, -1, -1, -1, -1, -1, -1, -1]], dtype=np.float32)

FEATURES = np.array([
    [[1, -1, -1], [-1, 1, -1], [-1, -1, 1]],     # "\" diagonal
    [[1, -1, 1], [-1, 1, -1], [1, -1, 1]],       # small x
    [[-1, -1, 1], [-1, 1, -1], [1, -1, -1]],     # "/" diagonal
], dtype=np.float32)


def trunc2(v: float) -> str:
    """Format as the deck does: truncated (not rounded) to two decimals."""
    return f"{math.trunc(round(float(v) * 100, 4)) / 100:5.2f}"


def print_map(name, m):
    print(name)
    for row in m:
        print("  " + " ".join(trunc2(v) for v in row))


def deck_feature_maps():
    """Filter, pool (2×2, stride 2, the 7th row/column pooled alone) and ReLU the deck's X."""
    x = ember.tensor(X_IMAGE[None, None])                                # (1, 1, 9, 9)
    w = ember.tensor(FEATURES[:, None] / 9)                             # (3, 1, 3, 3)
    maps = F.conv2d(x, w)                                               # (1, 3, 7, 7)
    padded = F.pad(maps, (0, 1, 0, 1), value=-math.inf)                 # 7 -> 8: the edge window is 1 wide
    pooled = F.max_pool2d(padded, 2, 2)                                 # (1, 3, 4, 4)
    return maps.numpy()[0], pooled.numpy()[0], F.relu(maps).numpy()[0]


# ---- part 2: data ------------------------------------------------------------------------------
def draw_x(size, r0, c0, thick):
    img = -np.ones((9, 9), np.float32)
    for i in range(size):
        for dc in range(1 + thick):
            img[r0 + i, min(c0 + i + dc, 8)] = 1
            img[r0 + i, max(c0 + size - 1 - i - dc, 0)] = 1
    return img


def draw_o(size, r0, c0, thick):
    img = -np.ones((9, 9), np.float32)
    for t in range(1 + thick):
        top, left, n = r0 + t, c0 + t, size - 2 * t
        for i in range(1, n - 1):                                      # a ring without its corners
            img[top, left + i] = img[top + n - 1, left + i] = 1
            img[top + i, left] = img[top + i, left + n - 1] = 1
    return img


def dataset(shifted: bool, thick: int):
    """All X's and O's of sizes 6..8 at centred (or all other) positions; labels 0 = X, 1 = O."""
    xs, ys = [], []
    for size in (6, 7, 8):
        free = 9 - size
        centre = {(free // 2, free // 2), ((free + 1) // 2, (free + 1) // 2)}
        for r0 in range(free + 1):
            for c0 in range(free + 1):
                if ((r0, c0) in centre) == shifted:
                    continue
                xs += [draw_x(size, r0, c0, thick), draw_o(size, r0, c0, thick)]
                ys += [0, 1]
    return np.stack(xs)[:, None], np.array(ys)


def noisy(x, rng, flips=2):
    """Flip a few random pixels of each training picture (data augmentation, deck 000)."""
    x = x.copy()
    n = len(x)
    for _ in range(flips):
        r, c = rng.integers(0, 9, n), rng.integers(0, 9, n)
        x[np.arange(n), 0, r, c] *= -1
    return x


def convnet():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3),            # (N, 8, 7, 7)  features, learned instead of hand-made
        nn.ReLU(),
        nn.MaxPool2d(7),               # (N, 8, 1, 1)  "this filter had a high response somewhere"
        nn.Flatten(),                  # (N, 8)
        nn.Linear(8, 2),               # votes for X and O
    )


def train_from_scratch(seed=0, steps=300):
    ember.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_train, y_train = dataset(shifted=False, thick=0)
    model = convnet()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        loss = F.cross_entropy(model(ember.tensor(noisy(np.repeat(x_train, 4, 0), rng))), np.repeat(y_train, 4))
        opt.zero_grad()
        loss.backward()
        opt.step()
    results = {}
    with ember.no_grad():
        for name, (x, y) in {"train (centred, thin)": (x_train, y_train),
                             "test: shifted, thin": dataset(shifted=True, thick=0),
                             "test: centred, thick": dataset(shifted=False, thick=1),
                             "test: shifted, thick": dataset(shifted=True, thick=1)}.items():
            pred = model(ember.tensor(x)).numpy().argmax(1)
            results[name] = (float((pred == y).mean()), len(y))
    return loss.item(), results


def main():
    maps, pooled, relu = deck_feature_maps()
    print("Part 1: the deck's X filtered with its three features (values / 9), truncated to 2 decimals")
    for k, name in enumerate(["diagonal \\", "x", "diagonal /"]):
        print_map(f"feature map {k} ({name}), 7x7:", maps[k])
    print("diagonal of feature map 0:", " ".join(trunc2(v).strip() for v in np.diag(maps[0])))
    for k in range(3):
        print_map(f"max pooled map {k} (2x2, stride 2), 4x4:", pooled[k])
    print_map("ReLU of feature map 0:", relu[0])
    print()
    print("Part 2: a convnet trained from scratch (Conv2d 1->8 3x3, ReLU, global max pool, Linear 8->2)")
    loss, results = train_from_scratch()
    print(f"final training loss {loss:.4f}")
    for name, (acc, n) in results.items():
        print(f"accuracy on {name}: {acc:.3f} ({n} images)")


if __name__ == "__main__":
    main()
