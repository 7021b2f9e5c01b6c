"""Inspecting and steering autograd as PyTorch users do: print the backward graph by walking
grad_fn.next_functions, a Function with two outputs, hooks and retain_grad, torch.autograd.grad,
views that share storage (an in-place update through a slice), an einsum trace and exact GELU."""
import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(0)
x = torch.tensor(rng.standard_normal((3, 4)), requires_grad=True)
w = torch.tensor(rng.standard_normal((2, 4)), requires_grad=True)


def show(fn, depth=0):
    if fn is None:
        print("  " * depth + "None")
        return
    extra = f" variable {tuple(fn.variable.shape)}" if hasattr(fn, "variable") else ""
    print("  " * depth + fn.name() + extra)
    for child, _ in fn.next_functions:
        show(child, depth + 1)


h = torch.relu(x @ w.t())
loss = (h * h).sum() + x.exp().mean()
show(loss.grad_fn)


class SinCos(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t):
        ctx.save_for_backward(t)
        return t.sin(), t.cos()

    @staticmethod
    def backward(ctx, grad_sin, grad_cos):
        (t,) = ctx.saved_tensors
        return grad_sin * t.cos() - grad_cos * t.sin()


s, c = SinCos.apply(x)
print("two outputs share", s.grad_fn.name(), s.grad_fn is c.grad_fn)
(s * 2).sum().backward()                     # cos got no gradient: backward sees zeros
print("grad", x.grad.sum().item())
x.grad = None

h = x * 3
h.retain_grad()
h.register_hook(lambda g: g * 0.5)
(h ** 2).sum().backward()
print("retained", h.grad.sum().item(), "leaf", x.grad.sum().item())

gx, gw = torch.autograd.grad(F.gelu(x @ w.t()).sum(), [x, w])
print("autograd.grad", gx.abs().sum().item(), gw.abs().sum().item())

buf = torch.zeros(3, 4)
row = buf[1]
row.add_(torch.arange(4.0))
col = buf.t()[2]
col.mul_(10)
print("views", buf.sum().item(), buf._version, row._version, buf.tolist()[1])

m = torch.tensor(rng.standard_normal((4, 4)), requires_grad=True)
tr = torch.einsum("ii", m)
tr.backward()
print("trace", round(tr.item(), 6), m.grad.diagonal().tolist() if hasattr(m.grad, "diagonal") else m.grad.numpy().diagonal().tolist())
