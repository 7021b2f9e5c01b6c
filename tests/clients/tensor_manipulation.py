"""Everyday tensor manipulation: creation, indexing, reshaping, joining, reductions, comparisons,
broadcasting, dtype conversion and in-place edits, printed as plain numbers."""
import numpy as np
import torch

a = torch.arange(12).reshape(3, 4)
print("shape", tuple(a.shape), "dtype is int64:", a.dtype == torch.int64, "numel", a.numel())
b = a.float() / 2
print("b[1]", b[1].tolist(), "b[:, 2]", b[:, 2].tolist(), "b[-1, -1]", b[-1, -1].item())
print("sum", b.sum().item(), "sum dim0", b.sum(dim=0).tolist(), "mean dim1", b.mean(1).tolist())
values, indices = b.max(dim=1)
print("max", values.tolist(), indices.tolist(), "argmin", b.argmin().item())
print("std", round(b.std().item(), 6), "var", round(b.var(dim=0).tolist()[0], 6), "prod", b[0, 1:].prod().item())
c = torch.cat([b, b * 2], dim=0)
s = torch.stack([b, b], dim=0)
print("cat", tuple(c.shape), "stack", tuple(s.shape), "view", tuple(b.view(2, 6).shape), "t", tuple(b.t().shape))
print("permute", tuple(s.permute(2, 0, 1).shape), "unsqueeze", tuple(b.unsqueeze(0).shape),
      "squeeze", tuple(torch.zeros(1, 3, 1).squeeze().shape), "flatten", tuple(s.flatten(1).shape))
mask = b > 2
print("masked", b[mask].tolist(), "where", torch.where(mask, b, torch.zeros_like(b)).sum().item())
print("any", bool(mask.any()), "all", bool(mask.all()), "nonzero count", int(mask.sum()))
rng = np.random.default_rng(5)
m = torch.tensor(rng.standard_normal((3, 3)))
v = torch.tensor(rng.standard_normal(3))
print("matmul", np.round((m @ v).numpy(), 8).tolist(), "mm", round(torch.mm(m, m).trace().item(), 8))
print("broadcast", (b[:, :1] + torch.tensor([10.0, 20.0, 30.0, 40.0])).tolist()[0])
print("clamp", b.clamp(1, 3)[0].tolist(), "abs", torch.tensor([-1.5, 2.0]).abs().tolist(),
      "exp", round(torch.exp(torch.tensor(1.0)).item(), 6), "sqrt", torch.sqrt(torch.tensor([4.0, 9.0])).tolist())
sorted_vals, order = torch.sort(torch.tensor([3.0, 1.0, 2.0]), descending=True)
print("sort", sorted_vals.tolist(), order.tolist(), "topk", torch.tensor([5, 1, 4]).topk(2).values.tolist())
print("cumsum", torch.arange(5).cumsum(0).tolist(), "linspace", torch.linspace(0, 1, 5).tolist())
e = torch.zeros(2, 3)
e[0, 1] = 5.0
e[1] += 1
e.mul_(2).add_(1)
print("in place", e.tolist(), "ones_like", torch.ones_like(e).sum().item(), "full", torch.full((2,), 7.0).tolist())
print("eye", torch.eye(2).tolist(), "repeat", torch.tensor([1, 2]).repeat(2).tolist(),
      "expand", tuple(torch.tensor([[1], [2]]).expand(2, 3).shape))
print("chunk", [t.tolist() for t in torch.arange(6).chunk(3)], "split", [t.shape[0] for t in torch.arange(5).split(2)])
print("int", torch.tensor([1.7, -1.7]).int().tolist(), "long", torch.tensor([2.9]).long().item(),
      "bool", torch.tensor([0, 2]).bool().tolist(), "isnan", torch.isnan(torch.tensor([float("nan"), 1.0])).tolist())
print(f"format {torch.tensor(3.14159):.3f} index {['a', 'b', 'c'][torch.tensor(2)]} len {len(b)}")
