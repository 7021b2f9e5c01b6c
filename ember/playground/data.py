"""The playground's 2-D data sets, input features and CSV reader (plain NumPy, no ember state).

Every point lives in the square [−6, 6]² (TensorFlow Playground's domain, deck 001). Classification
labels are class indices 0..C−1 (int64); regression targets are float32 values in about [−1, 1].
All randomness comes from ``np.random.default_rng((seed, 0xDA7A))``, a stream of its own, so a data
set depends only on its name, size, noise and seed, never on what the model drew before.
"""
from __future__ import annotations

import math

import numpy as np

DOMAIN = 6.0
CLASSIFICATION = ("circle", "xor", "gauss", "spiral", "spirals")
REGRESSION = ("reg-plane", "reg-gauss")
DATASETS = CLASSIFICATION + REGRESSION + ("custom",)
FEATURES = {  # name -> f(x1, x2); the order is the order of the network's inputs
    "x1": lambda a, b: a,
    "x2": lambda a, b: b,
    "x1sq": lambda a, b: a * a,
    "x2sq": lambda a, b: b * b,
    "x1x2": lambda a, b: a * b,
    "sinx1": lambda a, b: np.sin(a),
    "sinx2": lambda a, b: np.sin(b),
}
FEATURE_LABELS = {"x1": "x₁", "x2": "x₂", "x1sq": "x₁²", "x2sq": "x₂²", "x1x2": "x₁x₂",
                  "sinx1": "sin x₁", "sinx2": "sin x₂"}
MAX_CSV_BYTES = 1 << 20
MAX_POINTS = 10_000
MAX_CLASSES = 8


class DataError(ValueError):
    """Bad data: an unknown set, a malformed CSV line, too many points, a label out of range."""


def data_rng(seed: int) -> np.random.Generator:
    """The generator behind a data set: independent of ember's model/shuffle generator."""
    return np.random.default_rng((int(seed), 0xDA7A))


def _circle(n, noise, rng):
    r = DOMAIN - 1  # 5: inner disc radius < 2.5 is class 1, ring 3.5..5 is class 0
    k = n // 2
    radius = np.concatenate([rng.uniform(0, 0.5 * r, k), rng.uniform(0.7 * r, r, n - k)])
    angle = rng.uniform(0, 2 * math.pi, n)
    xy = np.stack([radius * np.sin(angle), radius * np.cos(angle)], 1)
    y = np.concatenate([np.ones(k, np.int64), np.zeros(n - k, np.int64)])
    return xy + rng.uniform(-r, r, (n, 2)) * noise, y


def _xor(n, noise, rng):
    xy = rng.uniform(-5, 5, (n, 2))
    xy += np.where(xy > 0, 0.3, -0.3)  # keep points off the axes, as TF Playground does
    y = (xy[:, 0] * xy[:, 1] >= 0).astype(np.int64)
    return xy + rng.uniform(-5, 5, (n, 2)) * noise, y


def _gauss(n, noise, rng):
    std = 0.5 + 3.5 * noise  # noise widens the two clouds until they overlap
    k = n // 2
    xy = np.concatenate([rng.normal(2, std, (k, 2)), rng.normal(-2, std, (n - k, 2))])
    y = np.concatenate([np.ones(k, np.int64), np.zeros(n - k, np.int64)])
    return xy, y


def _spirals(n, noise, rng, arms):
    per = [n // arms + (1 if i < n % arms else 0) for i in range(arms)]
    xs, ys = [], []
    for c, m in enumerate(per):
        t = np.arange(m) / max(m, 1)
        radius = 5 * t
        angle = 1.75 * t * 2 * math.pi + 2 * math.pi * c / arms
        xy = np.stack([radius * np.sin(angle), radius * np.cos(angle)], 1)
        xs.append(xy + rng.uniform(-1, 1, (m, 2)) * noise * 2.5)
        ys.append(np.full(m, c, np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def _reg_plane(n, noise, rng):
    xy = rng.uniform(-DOMAIN, DOMAIN, (n, 2))
    y = (xy[:, 0] + xy[:, 1]) / (2 * DOMAIN)
    return xy, y + rng.uniform(-1, 1, n) * noise


_BUMPS = [(-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1)]


def reg_gauss_target(xy: np.ndarray) -> np.ndarray:
    """Six signed Gaussian bumps: f(p) = the bump value of largest magnitude at p, in [−1, 1]."""
    best = np.zeros(len(xy))
    for cx, cy, sign in _BUMPS:
        v = sign * np.exp(-((xy[:, 0] - cx) ** 2 + (xy[:, 1] - cy) ** 2) / 2.0)
        best = np.where(np.abs(v) > np.abs(best), v, best)
    return best


def _reg_gauss(n, noise, rng):
    xy = rng.uniform(-DOMAIN, DOMAIN, (n, 2))
    return xy, reg_gauss_target(xy) + rng.uniform(-1, 1, n) * noise


def make_dataset(name: str, n: int, noise: float, seed: int, arms: int = 3):
    """Generate a named data set.

    Args:
        name: one of ``DATASETS`` except "custom" (circle, xor, gauss, spiral: 2 classes;
            spirals: ``arms`` classes; reg-plane, reg-gauss: regression).
        n: number of points (≥ 2). noise: 0..0.5. seed: int ≥ 0. arms: 3..5 for "spirals".
    Returns:
        (xy float32 (n, 2), y) with y int64 (n,) class indices, or float32 (n,) targets.
    Raises:
        DataError: for an unknown name.
    """
    rng = data_rng(seed)
    makers = {"circle": _circle, "xor": _xor, "gauss": _gauss, "reg-plane": _reg_plane,
              "reg-gauss": _reg_gauss, "spiral": lambda n, e, r: _spirals(n, e, r, 2),
              "spirals": lambda n, e, r: _spirals(n, e, r, arms)}
    if name not in makers:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(makers)} or custom")
    xy, y = makers[name](n, noise, rng)
    y = y.astype(np.int64) if name in CLASSIFICATION else y.astype(np.float32)
    return np.clip(xy, -DOMAIN, DOMAIN).astype(np.float32), y


def split(n: int, train_ratio: float, seed: int):
    """Shuffle 0..n−1 with the data generator and cut it: (train indices, test indices).
    Both parts keep at least one point."""
    perm = np.random.default_rng((int(seed), 0x5B11)).permutation(n)
    k = min(max(int(round(n * train_ratio)), 1), n - 1)
    return perm[:k], perm[k:]


def features(xy: np.ndarray, names) -> np.ndarray:
    """Stack the chosen input features of points xy (N, 2) -> float32 (N, len(names))."""
    a, b = xy[:, 0], xy[:, 1]
    return np.stack([FEATURES[f](a, b) for f in names], 1).astype(np.float32)


def check_points(points, regression: bool):
    """Validate user points (clicked or uploaded): a list of [x1, x2, label].

    Returns: (xy float32 (N, 2), y) as ``make_dataset``; classification labels must be ints
        0..7 (−1 is read as class 0, so TF Playground's ±1 labels work).
    Raises: DataError naming the first bad point.
    """
    if not isinstance(points, list):
        raise DataError("points must be a list of [x1, x2, label] triples")
    if len(points) > MAX_POINTS:
        raise DataError(f"too many points: {len(points)} (at most {MAX_POINTS})")
    if len(points) < 4:
        raise DataError(f"a custom data set needs at least 4 points, got {len(points)}")
    arr = np.empty((len(points), 3), np.float64)
    for i, p in enumerate(points):
        if (not isinstance(p, (list, tuple)) or len(p) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)):
            raise DataError(f"point {i}: expected [x1, x2, label] numbers, got {p!r}"[:200])
        arr[i] = p
    if not np.isfinite(arr).all():
        raise DataError("points must be finite numbers (no NaN or infinity)")
    if np.abs(arr[:, :2]).max() > DOMAIN:
        raise DataError(f"point coordinates must lie in [-{DOMAIN:g}, {DOMAIN:g}]")
    xy = arr[:, :2].astype(np.float32)
    if regression:
        if np.abs(arr[:, 2]).max() > 1e6:
            raise DataError("regression targets must lie in [-1e6, 1e6]")
        return xy, arr[:, 2].astype(np.float32)
    lab = arr[:, 2]
    if not np.all(lab == np.round(lab)) or lab.min() < -1 or lab.max() >= MAX_CLASSES:
        raise DataError(f"classification labels must be integers 0..{MAX_CLASSES - 1} (or -1/1)")
    lab = np.where(lab < 0, 0, lab).astype(np.int64)
    if len(np.unique(lab)) < 2:
        raise DataError("a classification data set needs points of at least two classes")
    return xy, lab


def parse_csv(text: str):
    """Read ``x1,x2,label`` lines (an optional header line, blank lines and # comments skipped).

    Returns: (list of [x1, x2, label] floats, task, reason) — task "classification" when every
        label is an integer in −1..7, else "regression"; reason says why in one sentence (e.g. that
        integer labels 0..8 name 9 classes, more than the 8 allowed, so they were read as targets).
    Raises: DataError with the line number of the first malformed line, or for > 10,000 points.
    """
    points, header_seen = [], False
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cells = [c.strip() for c in line.replace(";", ",").replace("\t", ",").split(",")]
        if len(cells) != 3:
            raise DataError(f"line {lineno}: expected 3 columns x1,x2,label, got {len(cells)}")
        try:
            vals = [float(c) for c in cells]
        except ValueError:
            if not points and not header_seen:  # one header line before the data
                header_seen = True
                continue
            raise DataError(f"line {lineno}: not a number in {line[:60]!r}") from None
        if not all(math.isfinite(v) for v in vals):
            raise DataError(f"line {lineno}: values must be finite")
        points.append(vals)
        if len(points) > MAX_POINTS:
            raise DataError(f"too many points: more than {MAX_POINTS}")
    if not points:
        raise DataError("the CSV holds no data lines (expected x1,x2,label)")
    return (points, *guess_task(np.array([p[2] for p in points])))


def guess_task(labels: np.ndarray):
    """("classification" | "regression", the reason in words) for a column of CSV labels."""
    lo, hi = float(labels.min()), float(labels.max())
    if not np.all(labels == np.round(labels)):
        return "regression", "labels are not all integers, so they were read as regression targets"
    if lo >= -1 and hi < MAX_CLASSES:
        return "classification", (f"labels are integers {lo:g}..{hi:g}, so they were read as class indices"
                                  + (" (-1 as class 0)" if lo < 0 else ""))
    return "regression", (f"labels are integers {lo:g}..{hi:g}: classification allows classes 0..{MAX_CLASSES - 1} "
                          f"only, so they were read as regression targets")
