"""A user-defined autograd.Function (ReLU and a clipped exponential), used inside a tiny
regression and checked against the built-in ops' gradients."""
import numpy as np
import torch


class MyReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return input.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        grad_input = grad_output.clone()
        grad_input[input < 0] = 0
        return grad_input


class ScaledExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        out = torch.exp(x.clamp(max=5.0)) * scale
        ctx.save_for_backward(out, x)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad_output):
        out, x = ctx.saved_tensors
        grad = grad_output * out * (x <= 5.0).float()
        return grad, None


rng = np.random.default_rng(4)
x = torch.tensor(rng.standard_normal((6, 3)), requires_grad=True)
w = torch.tensor(rng.standard_normal((3, 2)), requires_grad=True)

y = MyReLU.apply(x @ w)
z = ScaledExp.apply(y, 0.5).sum()
z.backward()
print(f"z {z.item():.8f}")
print("x.grad", np.round(x.grad.numpy(), 8).tolist())
print("w.grad", np.round(w.grad.numpy(), 8).tolist())

x2 = x.detach().clone().requires_grad_(True)
w2 = w.detach().clone().requires_grad_(True)
(torch.exp(torch.relu(x2 @ w2)) * 0.5).sum().backward()
print("matches built-ins:", bool(torch.allclose(x.grad, x2.grad)), bool(torch.allclose(w.grad, w2.grad)))
