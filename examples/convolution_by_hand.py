"""Decks 000, 001, 002: the worked convolution and pooling numbers, computed by ember.

  * deck 000, 1-D: (θ * x)_i = Σ_j θ_j x_{i+j} with x = [1,1,1,0,0], θ = [1,0,1] gives [2,1,1];
  * deck 000, 2-D: the 5×5 binary image and the 3×3 filter give a 3×3 map starting with 4;
  * deck 002, the 10×10 image of a box filtered by the 1/9 mean filter (rows 0 10 20 30 30 ...);
  * deck 002, the impulse response: convolution copies the filter, correlation flips it;
  * deck 001, 2×2 max pooling with stride 2 of the 8×8 example (and average pooling of it).

Every number comes from ember.viz.filters.filter2d (which runs ember.nn.functional.conv2d) or
F.max_pool2d. Run: python examples/convolution_by_hand.py
"""
import numpy as np

import ember
from ember.viz import filters
from ember.nn import functional as F


def show(title, m):
    print(title)
    for row in np.atleast_2d(m):
        print("  " + " ".join(f"{v:g}" for v in row))


def main():
    show("deck 000 1-D: [1,1,1,0,0] * [1,0,1] =", filters.filter1d([1, 1, 1, 0, 0], [1, 0, 1]))
    image = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])
    show("deck 000 2-D: image * [[1,0,1],[0,1,0],[1,0,1]] =",
         filters.filter2d(image, [[1, 0, 1], [0, 1, 0], [1, 0, 1]]))
    f = np.zeros((10, 10))
    f[2:7, 3:8] = 90
    f[5, 4] = 0
    f[8, 2] = 90
    show("deck 002 box filter: g = (1/9) ones(3,3) * f =", np.rint(filters.filter2d(f, "box-3")))
    impulse = np.zeros((7, 7))
    impulse[3, 3] = 1
    K = np.arange(1, 10).reshape(3, 3)
    show("deck 002 impulse response, convolution (a copy of the filter):",
         filters.filter2d(impulse, K, mode="convolve")[1:4, 1:4])
    show("deck 002 impulse response, correlation (the filter flipped):",
         filters.filter2d(impulse, K, mode="correlate")[1:4, 1:4])
    x = np.array([[-7, 6, -1, 3, 9, 9, 6, -9], [3, -8, 0, 7, 10, 8, -3, 10],
                  [-4, 2, -6, 4, -7, 5, 5, 7], [-3, -9, 1, 8, -8, 9, -1, -5],
                  [-7, 10, -9, -5, 9, -8, -7, 10], [-5, 5, 9, 4, 10, -8, 7, 6],
                  [-3, 8, 0, 2, 2, -3, -2, 5], [4, -6, 7, -3, 1, 4, 10, 0]], dtype=np.float32)
    show("deck 001 max pooling 2x2, stride 2:", F.max_pool2d(ember.tensor(x[None, None]), 2, 2).numpy()[0, 0])
    show("deck 001 average pooling 2x2, stride 2 (same input):",
         F.avg_pool2d(ember.tensor(x[None, None]), 2, 2).numpy()[0, 0])


if __name__ == "__main__":
    main()
