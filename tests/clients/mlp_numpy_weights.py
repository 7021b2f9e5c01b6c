"""A small classifier trained with nn.Sequential, cross-entropy and several optimizers, weights
given from NumPy, batches from a DataLoader over a TensorDataset (no shuffling)."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

rng = np.random.default_rng(6)
X = rng.standard_normal((120, 5)).astype(np.float32)
Y = (X @ rng.standard_normal((5, 3))).argmax(1)
W1, b1 = rng.uniform(-0.4, 0.4, (8, 5)), rng.uniform(-0.4, 0.4, 8)
W2, b2 = rng.uniform(-0.4, 0.4, (3, 8)), rng.uniform(-0.4, 0.4, 3)


def make_model():
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    model[0].weight = nn.Parameter(torch.tensor(W1.astype(np.float32)))
    model[0].bias = nn.Parameter(torch.tensor(b1.astype(np.float32)))
    model[2].weight = nn.Parameter(torch.tensor(W2.astype(np.float32)))
    model[2].bias = nn.Parameter(torch.tensor(b2.astype(np.float32)))
    return model


loader = DataLoader(TensorDataset(torch.tensor(X), torch.tensor(Y)), batch_size=16)
for name, make_opt in [("SGD", lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9, nesterov=True)),
                       ("Adam", lambda p: torch.optim.Adam(p, lr=0.02)),
                       ("Adamax", lambda p: torch.optim.Adamax(p, lr=0.05)),
                       ("NAdam", lambda p: torch.optim.NAdam(p, lr=0.02, weight_decay=1e-3)),
                       ("RAdam", lambda p: torch.optim.RAdam(p, lr=0.05)),
                       ("Adadelta", lambda p: torch.optim.Adadelta(p, lr=1.0))]:
    model = make_model()
    opt = make_opt(model.parameters())
    for epoch in range(4):
        total = 0.0
        for xb, yb in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(yb)
    with torch.no_grad():
        acc = (model(torch.tensor(X)).argmax(1) == torch.tensor(Y)).float().mean().item()
    print(f"{name:8s} last epoch loss {total / len(X):.5f} train accuracy {acc:.4f}")
