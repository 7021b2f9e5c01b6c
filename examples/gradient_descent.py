"""Deck 001 "Minimize some function": gradient descent on f(x) = e^(−x) + x².

The slides evaluate f and f′ = −e^(−x) + 2x by hand at x = −0.5, 0 and 0.5 ("gradient is neg,
make x bigger!") and conclude the minimum lies between 0 and 0.5. Here ember's autograd computes
f′ (x.backward()), and the update x ← x − η f′(x) walks from each of the decks' starting points
to argmin f ≈ 0.3517 (where e^(−x) = 2x).

Run: python examples/gradient_descent.py
"""
import ember


def f(x):
    return (-x).exp() + x * x


def value_and_grad(x0: float):
    x = ember.tensor(x0, dtype=ember.float64, requires_grad=True)
    y = f(x)
    y.backward()
    return y.item(), x.grad.item()


def gradient_descent(x0: float, lr: float = 0.1, steps: int = 100):
    """x ← x − η ∇f(x), 'until converged' (|step| < 1e-12) or `steps` updates."""
    x = ember.tensor(x0, dtype=ember.float64, requires_grad=True)
    for step in range(1, steps + 1):
        x.grad = None
        f(x).backward()
        with ember.no_grad():
            delta = lr * x.grad.item()
            x.data -= delta
        if abs(delta) < 1e-12:
            break
    return x.item(), step


def main():
    print("f(x) = e^(-x) + x^2,  f'(x) = -e^(-x) + 2x  (f' by ember autograd)")
    for x0 in (-0.51, -0.5, -0.49, 0.0, 0.5):
        fx, gx = value_and_grad(x0)
        print(f"f({x0:+.2f}) = {fx:.5f}   f'({x0:+.2f}) = {gx:+.5f}")
    for x0 in (-0.5, 0.0, 0.5):
        x, steps = gradient_descent(x0)
        fx, gx = value_and_grad(x)
        print(f"gradient descent from x = {x0:+.1f} (lr 0.1): argmin x = {x:.4f} after {steps} steps, "
              f"f = {fx:.5f}, f' = {gx:+.1e}")


if __name__ == "__main__":
    main()
