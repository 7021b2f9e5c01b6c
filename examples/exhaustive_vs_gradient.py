"""Deck 003 "How optimization for machine learning works": tea drinking temperature.

How much do we dislike tea at temperature T? Exhaustive search tries every temperature and picks
the lowest point: few assumptions, robust, but it costs one evaluation per candidate. Gradient
descent lets the marble roll downhill, needing no grid, but it assumes a smooth bowl; on a
bumpy curve it stops in whichever dip it starts above (sensitive). The dislike curves are made
up (the deck's plot was lost): a smooth bowl with its minimum at 62 °C, and the same with a dip.

Run: python examples/exhaustive_vs_gradient.py
"""
import numpy as np

import ember


def smooth(t):
    return ((t - 62.0) / 20.0) ** 2


def bumpy(t):
    """The bowl plus a local dip at 35 °C (lukewarm tea is not so bad either)."""
    dip = -(((t - 35.0) / 5.0) ** 2)
    return smooth(t) - 1.5 * (dip.exp() if isinstance(dip, ember.Tensor) else np.exp(dip))


def exhaustive(f, lo=20.0, hi=100.0, step=0.5):
    temps = np.arange(lo, hi + step / 2, step)
    values = f(temps)
    return float(temps[values.argmin()]), len(temps)


def gradient_descent(f, t0, lr=10.0, tol=1e-6, max_steps=1000):
    t = ember.tensor(t0, dtype=ember.float64, requires_grad=True)
    for step in range(1, max_steps + 1):
        t.grad = None
        f(t).backward()
        with ember.no_grad():
            move = lr * t.grad.item()
            t.data -= move
        if abs(move) < tol:
            break
    return t.item(), step


def main():
    for name, f in (("smooth", smooth), ("bumpy", bumpy)):
        best, n = exhaustive(f)
        print(f"{name} curve: exhaustive search -> {best:.1f} C after {n} evaluations")
        for t0 in (30.0, 90.0):
            t, steps = gradient_descent(f, t0)
            print(f"{name} curve: gradient descent from {t0:.0f} C -> {t:.1f} C after {steps} gradient steps")


if __name__ == "__main__":
    main()
