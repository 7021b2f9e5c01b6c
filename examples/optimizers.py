"""Deck 002 "SGD refinements": plain SGD, momentum, Nesterov, AdaGrad, RMSprop and Adam on a
long, narrow valley, and a learning-rate schedule.

The loss f(x, y) = ½(x² + 50 y²) is a bowl 50 times steeper across (y) than along (x), like the
badly conditioned losses the deck draws: plain SGD must keep its step small enough not to bounce
across the valley (η < 2/50), so it crawls along it (and Nesterov, which looks ahead, needs η below about 0.027 here); momentum builds up speed along the valley;
AdaGrad, RMSprop and Adam rescale each coordinate by its gradient history. Every optimizer is
ember.optim's, with PyTorch's update rules, driven by ember's autograd.

Run: python examples/optimizers.py
"""
import ember
from ember import optim
from ember.optim import lr_scheduler

START = (-10.0, 1.0)
STEPS = 100


def loss_fn(p):
    return 0.5 * (p[0] ** 2 + 50 * p[1] ** 2)


def run(make_opt, steps=STEPS, schedule=None):
    p = ember.tensor(START, dtype=ember.float64, requires_grad=True)
    opt = make_opt([p])
    sched = schedule(opt) if schedule else None
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(p)
        loss.backward()
        opt.step()
        if sched:
            sched.step()
    return loss_fn(p).item(), p.data.tolist()


OPTIMIZERS = {
    "SGD (lr 0.02)": lambda ps: optim.SGD(ps, lr=0.02),
    "SGD + momentum 0.9": lambda ps: optim.SGD(ps, lr=0.02, momentum=0.9),
    "SGD + Nesterov 0.9": lambda ps: optim.SGD(ps, lr=0.02, momentum=0.9, nesterov=True),
    "AdaGrad (lr 1)": lambda ps: optim.Adagrad(ps, lr=1.0),
    "RMSprop (lr 0.1)": lambda ps: optim.RMSprop(ps, lr=0.1),
    "Adam (lr 0.5)": lambda ps: optim.Adam(ps, lr=0.5),
}


def main():
    print(f"f(x, y) = (x^2 + 50 y^2) / 2 from {START}, f = {loss_fn(ember.tensor(START)).item():.2f}; "
          f"loss after {STEPS} steps:")
    for name, make in OPTIMIZERS.items():
        loss, (x, y) = run(make)
        print(f"  {name:20s} loss {loss:.3e}   at ({x:+.4f}, {y:+.4f})")
    loss, _ = run(OPTIMIZERS["Adam (lr 0.5)"], schedule=lambda o: lr_scheduler.StepLR(o, step_size=50, gamma=0.5))
    print(f"  {'Adam + StepLR(50, 0.5)':20s} loss {loss:.3e}   (halving the step after 50 steps: less rattling near the minimum)")


if __name__ == "__main__":
    main()
