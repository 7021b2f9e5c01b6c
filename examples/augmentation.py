"""Deck 000 "Real networks: data augmentation?": more training pictures for free.

Shifted, mirrored and slightly rotated copies of a training image are still the same class, so a
network trained on them learns that the class does not depend on position or angle (deck 003's
"trickier cases": translation, rotation). ember.data.transforms draws one random shift, flip or
rotation per image of a batch; here they are applied to four copies of deck 003's X.

Run: python examples/augmentation.py
"""
import numpy as np

import ember
from ember.data import transforms as T

X_IMAGE = -np.ones((9, 9), np.float32)
for i in range(1, 8):
    X_IMAGE[i, i] = X_IMAGE[i, 8 - i] = 1


def ascii_art(batch):
    """Print the pictures of a (N, 1, 9, 9) batch side by side: '#' bright, '+' half, '.' dark."""
    for r in range(batch.shape[2]):
        print("   ".join("".join("#" if v > 0 else "+" if v > -0.6 else "." for v in img[0, r]) for img in batch))


def main():
    ember.manual_seed(0)
    batch = np.repeat(X_IMAGE[None, None], 4, axis=0)                 # (4, 1, 9, 9)
    pipelines = {
        "RandomCrop(9, padding=2): random shifts by up to 2 pixels": T.RandomCrop(9, padding=2, fill=-1.0),
        "RandomAffine(degrees=30): random rotations": T.RandomAffine(degrees=30, fill=-1.0),
    }
    print("the original X, four times:")
    ascii_art(batch)
    for name, t in pipelines.items():
        out = t(batch)
        changed = int((np.abs(out - batch).reshape(4, -1).max(1) > 1e-6).sum())
        print(f"{name} ({changed} of 4 copies changed):")
        ascii_art(out)


if __name__ == "__main__":
    main()
