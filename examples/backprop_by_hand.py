"""Deck 000 "Backpropagation": a sigmoid MLP trained with the δ recursion written out by hand,
checked against ember's autograd to 1e-10 (float64).

The slides' algorithm, for layers l = 1..L+1 with a bias unit a_0 = 1 in every layer but the last:
    forward:  a(1) = x,  z(l+1) = Θ(l) a(l),  a(l+1) = g(z(l+1)),  g(z) = 1/(1 + e^(−z))
    output:   δ(L+1) = a(L+1) − y
    recursion δ(l) = a(l)(1 − a(l)) Σ_k δ_k(l+1) Θ_{k,i}(l)         (bias row dropped)
    gradient: Δ(l) += δ(l+1) a(l)ᵀ   for each training instance
    average:  D(l) = Δ(l)/n + λΘ(l)  for j ≠ 0,   D(l) = Δ(l)/n  for the bias column j = 0
Sign: the deck's L = y log ŷ + (1−y) log(1−ŷ) is a log-likelihood with ∂L/∂z(L+1) = y − a(L+1)
(its "δ = y − a" slide); we *minimise* J = −(1/n) Σ L + (λ/2) Σ_{j≠0} Θ², whose gradient is D,
so the algorithm slide's δ(L+1) = a(L+1) − y is the one to use.

Run: python examples/backprop_by_hand.py
"""
import numpy as np

import ember
from ember.nn import functional as F

LAYERS = (2, 4, 4, 1)       # inputs, two hidden layers, one sigmoid output
LAMBDA = 1e-3


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def with_bias(a):
    return np.concatenate([[1.0], a])


def backprop_loop(thetas, X, Y, lam=LAMBDA):
    """The slide's algorithm, one training instance at a time. Returns (J, [D(1), ..., D(L)])."""
    deltas_acc = [np.zeros_like(t) for t in thetas]           # Δ(l) = 0
    n, J = len(X), 0.0
    for x, y in zip(X, Y):
        acts = [x]                                            # a(1) = x
        for t in thetas:
            acts.append(sigmoid(t @ with_bias(acts[-1])))     # a(l+1) = g(Θ(l) a(l))
        yhat = acts[-1]
        J -= float(np.sum(y * np.log(yhat) + (1 - y) * np.log(1 - yhat))) / n
        delta = yhat - y                                      # δ(L+1) = a(L+1) − y
        for l in range(len(thetas) - 1, -1, -1):
            deltas_acc[l] += np.outer(delta, with_bias(acts[l]))        # Δ(l) += δ(l+1) a(l)ᵀ
            if l > 0:
                a = acts[l]
                delta = a * (1 - a) * (thetas[l][:, 1:].T @ delta)      # δ(l) = a(1−a) Σ_k δ_k Θ_k,i
    D = []
    for t, acc in zip(thetas, deltas_acc):
        d = acc / n
        d[:, 1:] += lam * t[:, 1:]                            # no penalty on the bias column
        D.append(d)
        J += lam / 2 * float(np.sum(t[:, 1:] ** 2))
    return J, D


def backprop(thetas, X, Y, lam=LAMBDA):
    """The same recursion with the loop over instances done as matrix products (rows = instances)."""
    n = len(X)
    ones = np.ones((n, 1))
    acts = [X]
    for t in thetas:
        acts.append(sigmoid(np.hstack([ones, acts[-1]]) @ t.T))
    yhat = acts[-1]
    J = -float(np.sum(Y * np.log(yhat) + (1 - Y) * np.log(1 - yhat))) / n
    delta, D = yhat - Y, [None] * len(thetas)
    for l in range(len(thetas) - 1, -1, -1):
        D[l] = delta.T @ np.hstack([ones, acts[l]]) / n       # Δ(l)/n
        D[l][:, 1:] += lam * thetas[l][:, 1:]
        J += lam / 2 * float(np.sum(thetas[l][:, 1:] ** 2))
        if l > 0:
            delta = acts[l] * (1 - acts[l]) * (delta @ thetas[l][:, 1:])
    return J, D


def autograd(thetas, X, Y, lam=LAMBDA):
    """J and ∂J/∂Θ by ember's reverse-mode autodiff (float64): the reference for the hand code."""
    ts = [ember.tensor(t, requires_grad=True) for t in thetas]
    a = ember.tensor(X)
    ones = ember.ones(len(X), 1, dtype=ember.float64)
    for t in ts:
        a = (ember.cat([ones, a], dim=1) @ t.T).sigmoid()
    J = F.binary_cross_entropy(a, ember.tensor(Y)) * Y.shape[1]
    for t in ts:
        J = J + lam / 2 * (t[:, 1:] ** 2).sum()
    J.backward()
    return J.item(), [t.grad.numpy() for t in ts]


def init(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1.0, (n_out, n_in + 1)) for n_in, n_out in zip(LAYERS[:-1], LAYERS[1:])]


def xor_data(n=40, seed=1):
    """Points in [−1, 1]²; label 1 where x1·x2 > 0 (not linearly separable: needs a hidden layer)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    return X, (X[:, :1] * X[:, 1:] > 0).astype(np.float64)


def max_diff(A, B):
    return max(float(np.max(np.abs(a - b))) for a, b in zip(A, B))


def main():
    X, Y = xor_data()
    thetas = init()
    J_loop, D_loop = backprop_loop(thetas, X, Y)
    J_vec, D_vec = backprop(thetas, X, Y)
    J_auto, D_auto = autograd(thetas, X, Y)
    print(f"network {LAYERS}, sigmoid units, n = {len(X)} XOR points, lambda = {LAMBDA}")
    print(f"at initialisation: J = {J_loop:.10f} (autograd {J_auto:.10f})")
    print(f"max |D_loop - D_autograd| = {max_diff(D_loop, D_auto):.3e}")
    print(f"max |D_matrix - D_autograd| = {max_diff(D_vec, D_auto):.3e}")
    lr, worst = 2.0, 0.0
    for step in range(1, 3001):                               # gradient descent with the hand-made D
        J, D = backprop(thetas, X, Y)
        if step % 500 == 0:
            worst = max(worst, max_diff(D, autograd(thetas, X, Y)[1]))
        thetas = [t - lr * d for t, d in zip(thetas, D)]
    J, _ = backprop(thetas, X, Y)
    a = X
    for t in thetas:
        a = sigmoid(np.hstack([np.ones((len(a), 1)), a]) @ t.T)
    acc = float(((a > 0.5) == (Y > 0.5)).mean())
    print(f"during training (checked every 500 steps): max |D_hand - D_autograd| = {worst:.3e}")
    print(f"after 3000 gradient-descent steps (lr {lr}): J = {J:.4f}, training accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
