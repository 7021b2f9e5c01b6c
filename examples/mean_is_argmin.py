"""Deck 003 "From data to model: how many M&Ms in a bag?": the loss picks the answer.

With d = n_actual − n_guess, the cost of being off by d can be d², |d| or √|d| (the deck's table:
off by 1, 2, 4, 8 costs 1, 4, 16, 64 under d²). Summed over the bags we counted, the best guess
under d² is the mean (gradient descent finds it: dJ/dg = −2 Σ d = 0 ⇔ g = mean), under |d| the
median, and under √|d| a guess pulled towards the most common count. The bag counts below are
made up (the deck's figures were lost); any counts show the same thing.

Run: python examples/mean_is_argmin.py
"""
import numpy as np

import ember

BAGS = np.array([55, 56, 56, 57, 57, 57, 58, 59, 61, 64], dtype=np.float64)
COSTS = {"d^2": lambda d: d ** 2, "|d|": np.abs, "sqrt|d|": lambda d: np.sqrt(np.abs(d))}


def main():
    print("cost of being off by   1     2     4     8")
    for name, cost in COSTS.items():
        print(f"  {name:8s}          " + " ".join(f"{cost(np.float64(d)):5.2f}" for d in (1, 2, 4, 8)))
    print(f"bag counts: {BAGS.astype(int).tolist()}  mean {BAGS.mean():.2f}  median {np.median(BAGS):.1f}")

    g = ember.tensor(50.0, dtype=ember.float64, requires_grad=True)   # gradient descent on Σ d²
    for _ in range(200):
        g.grad = None
        loss = ((ember.tensor(BAGS) - g) ** 2).mean()
        loss.backward()
        with ember.no_grad():
            g.data -= 0.1 * g.grad.data
    print(f"gradient descent on mean squared error: best guess {g.item():.4f} (the mean is {BAGS.mean():.4f})")

    guesses = np.arange(50, 70.001, 0.01)                              # exhaustive search for each cost
    for name, cost in COSTS.items():
        total = cost(BAGS[None, :] - guesses[:, None]).sum(1)
        print(f"exhaustive search, cost {name:8s}: best guess {guesses[total.argmin()]:.2f}")


if __name__ == "__main__":
    main()
