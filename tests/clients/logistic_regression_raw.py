"""Logistic regression on raw tensors: weights updated in place with add_/sub_ on .data,
gradients cleared with zero_(), accuracy from comparisons and type conversions."""
import numpy as np
import torch

rng = np.random.default_rng(1)
n, features = 200, 3
X_np = rng.standard_normal((n, features)).astype(np.float32)
true_w = np.array([1.5, -2.0, 0.5], dtype=np.float32)
y_np = (X_np @ true_w + 0.3 * rng.standard_normal(n) > 0).astype(np.float32)

X = torch.from_numpy(X_np)
y = torch.tensor(y_np).unsqueeze(1)
w = torch.zeros(features, 1, requires_grad=True)
b = torch.zeros(1, requires_grad=True)

lr = 0.5
for epoch in range(60):
    logits = X @ w + b
    p = torch.sigmoid(logits)
    loss = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    loss.backward()
    w.data.sub_(lr * w.grad.data)
    b.data.add_(b.grad.data, alpha=-lr)
    w.grad.zero_()
    b.grad.zero_()
    if epoch % 10 == 0:
        acc = ((p > 0.5).float() == y).float().mean()
        print(f"epoch {epoch:2d} loss {loss.item():.6f} acc {acc.item():.4f}")

with torch.no_grad():
    pred = (torch.sigmoid(X @ w + b) > 0.5).int()
    print("weights", [round(v, 5) for v in w.squeeze().tolist()], "bias", round(b.item(), 5))
    print("positives predicted", pred.sum().item(), "of", int(y.sum().item()))
