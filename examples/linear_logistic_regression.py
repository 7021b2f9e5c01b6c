"""Deck 001 "Basic ML models": linear and logistic regression trained by SGD.

Linear regression: f(x) = w·x (+ b), L(w) = ||Y − f(x)||², and the single-layer update rule
w ← w + η x [Y − w·x] (the gradient of the squared error, up to a factor 2). Logistic regression:
f(x) = σ(w·x), a probability, trained with the binary cross-entropy. Both use minibatches drawn
at random ("estimate ∇L(w) with only some of the data"; the number of points is the batch size).

Run: python examples/linear_logistic_regression.py
"""
import numpy as np

import ember
from ember import nn
from ember.nn import functional as F
from ember.optim import SGD


def sgd_fit(model, loss_fn, X, Y, lr, epochs, batch_size, rng):
    opt = SGD(model.parameters(), lr=lr)
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for i in range(0, len(X), batch_size):
            idx = order[i:i + batch_size]
            loss = loss_fn(model(ember.tensor(X[idx])), ember.tensor(Y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    with ember.no_grad():
        return loss_fn(model(ember.tensor(X)), ember.tensor(Y)).item()


def single_layer_update_rule(X, Y, lr=0.05, epochs=20, rng=None):
    """The deck's rule w ← w + η x [Y − w·x], one random point at a time, in plain NumPy."""
    w = np.zeros(X.shape[1])
    for _ in range(epochs):
        for k in rng.permutation(len(X)):
            w += lr * X[k] * (Y[k] - w @ X[k])
    return w


def main():
    ember.manual_seed(0)
    rng = np.random.default_rng(0)
    true_w, true_b = np.array([2.0, -3.0]), 0.5
    X = rng.uniform(-1, 1, (200, 2)).astype(np.float32)
    Y = (X @ true_w + true_b + rng.normal(0, 0.1, 200)).astype(np.float32)[:, None]
    lin = nn.Linear(2, 1)
    mse = sgd_fit(lin, F.mse_loss, X, Y, lr=0.1, epochs=30, batch_size=10, rng=rng)
    w, b = lin.weight.numpy()[0], lin.bias.numpy()[0]
    print(f"linear regression by SGD: w = [{w[0]:.3f}, {w[1]:.3f}], b = {b:.3f} "
          f"(true [2, -3], 0.5), mean squared error {mse:.4f}")
    Xb = np.hstack([X, np.ones((len(X), 1), np.float32)])   # bias as a constant input
    w_rule = single_layer_update_rule(Xb.astype(np.float64), Y[:, 0].astype(np.float64), rng=rng)
    print(f"the deck's update rule w += eta x [Y - w.x]: w = [{w_rule[0]:.3f}, {w_rule[1]:.3f}], b = {w_rule[2]:.3f}")

    labels = (X @ true_w + true_b > 0).astype(np.float32)[:, None]   # a linearly separable class
    logit = nn.Linear(2, 1)
    bce = sgd_fit(logit, F.binary_cross_entropy_with_logits, X, labels, lr=0.5, epochs=30, batch_size=10, rng=rng)
    with ember.no_grad():
        p = F.sigmoid(logit(ember.tensor(X))).numpy()
    acc = float(((p > 0.5) == (labels > 0.5)).mean())
    w = logit.weight.numpy()[0]
    print(f"logistic regression by SGD: accuracy {acc:.3f}, cross-entropy {bce:.4f}, "
          f"boundary direction w/|w| = [{w[0] / np.linalg.norm(w):.3f}, {w[1] / np.linalg.norm(w):.3f}] "
          f"(true [{2 / np.sqrt(13):.3f}, {-3 / np.sqrt(13):.3f}])")


if __name__ == "__main__":
    main()
