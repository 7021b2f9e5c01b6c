"""Deck 003 "How neural networks work": the four-pixel camera.

A 2×2 grey camera (pixel brightness −1 = black .. +1 = white) sees pictures that are solid,
vertical, diagonal or horizontal; "simple rules can't do it" (the same class comes in both
colourings). A neuron is a weighted sum, squashed (the deck's example: .50×−.2 + 0×0 + −.75×.8 +
.75×−.5 = −1.075). A small network of such neurons, with a ReLU layer and an output layer, learns
the four categories with SGD.

Run: python examples/four_pixel_camera.py
"""
import numpy as np

import ember
from ember import nn
from ember.nn import functional as F
from ember.optim import SGD

CLASSES = ["solid", "vertical", "diagonal", "horizontal"]
# Sign patterns of the 2×2 picture [[p0, p1], [p2, p3]] (and their negatives) for each class.
PATTERNS = {0: [1, 1, 1, 1], 1: [1, -1, 1, -1], 2: [1, -1, -1, 1], 3: [1, 1, -1, -1]}


def the_deck_neuron():
    pixels = np.array([0.50, 0.00, -0.75, 0.75])
    weights = np.array([-0.2, 0.0, 0.8, -0.5])
    s = float(ember.tensor(pixels) @ ember.tensor(weights))
    return s, float(ember.tensor(s).tanh())          # the deck's squash stays within −1 .. 1


def pictures(n_per_class, rng):
    """Random-brightness pictures: pattern · sign · brightness in [0.3, 1], plus a little noise."""
    xs, ys = [], []
    for label, pattern in PATTERNS.items():
        sign = rng.choice([-1, 1], size=(n_per_class, 1))
        bright = rng.uniform(0.3, 1.0, size=(n_per_class, 4))
        xs.append(np.array(pattern) * sign * bright + rng.normal(0, 0.05, (n_per_class, 4)))
        ys.append(np.full(n_per_class, label))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def main():
    s, squashed = the_deck_neuron()
    print(f"the deck's neuron: .50*-.2 + 0.00*0.0 + -.75*.8 + .75*-.5 = {s:.3f}, squashed (tanh) = {squashed:.3f}")
    ember.manual_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train = pictures(100, rng)
    x_test, y_test = pictures(50, rng)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(),      # sum-and-squash neurons: receptive fields
                          nn.Linear(8, 8), nn.ReLU(),      # "repeat with a variation": ReLUs
                          nn.Linear(8, 4))                 # output layer, one neuron per category
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    xt, yt = ember.tensor(x_train), ember.tensor(y_train)
    for _ in range(200):
        loss = F.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with ember.no_grad():
        pred = model(ember.tensor(x_test)).numpy().argmax(1)
    print(f"final training loss {loss.item():.4f}")
    print(f"test accuracy {float((pred == y_test).mean()):.3f} on {len(y_test)} new pictures")
    for label, name in enumerate(CLASSES):
        print(f"  {name:10s} {float((pred[y_test == label] == label).mean()):.3f}")


if __name__ == "__main__":
    main()
