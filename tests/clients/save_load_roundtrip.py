"""Save and load: a state_dict round trip with torch.save/torch.load(weights_only=True), and a
checkpoint dict holding the epoch, the model and the optimizer, resumed to the same numbers."""
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn

rng = np.random.default_rng(3)
X = torch.tensor(rng.standard_normal((64, 5)).astype(np.float32))
Y = torch.tensor(rng.standard_normal((64, 1)).astype(np.float32))


def make_model():
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    for p in model.parameters():
        p.data = torch.tensor(rng.uniform(-0.3, 0.3, tuple(p.shape)).astype(np.float32))
    return model


def train(model, opt, steps):
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(X), Y)
        loss.backward()
        opt.step()
    return loss.item()


model = make_model()
opt = torch.optim.Adam(model.parameters(), lr=0.01)
print(f"loss after 10 steps {train(model, opt, 10):.6f}")

folder = tempfile.mkdtemp()
path = os.path.join(folder, "weights.pt")
torch.save(model.state_dict(), path)
copy = make_model()
copy.load_state_dict(torch.load(path, weights_only=True))
print("same outputs after load:", bool(torch.allclose(model(X), copy(X))))
print("keys", list(copy.state_dict().keys()))

ckpt = os.path.join(folder, "checkpoint.pt")
torch.save({"epoch": 3, "model": model.state_dict(), "optimizer": opt.state_dict(), "note": "adam"}, ckpt)
state = torch.load(ckpt, weights_only=True)
resumed = make_model()
resumed.load_state_dict(state["model"])
opt2 = torch.optim.Adam(resumed.parameters(), lr=0.01)
opt2.load_state_dict(state["optimizer"])
print("epoch", state["epoch"], state["note"])
print(f"continued {train(model, opt, 5):.6f} resumed {train(resumed, opt2, 5):.6f}")
