"""A regression script's idioms: nn.init.xavier_uniform_ in ``apply``, AdamW with a LambdaLR
warm-up, gradient accumulation over micro-batches (loss / steps), clip_grad_value_, early
stopping that keeps ``copy.deepcopy(model.state_dict())`` of the best epoch and loads it back,
MSELoss and L1Loss, torch.stack / torch.cat of predictions, ``torch.inference_mode``-free
evaluation under ``torch.no_grad()`` with ``model.eval()``, and ``.tolist()`` of a tensor."""
import copy

import numpy as np
import torch
import torch.nn as nn

rng = np.random.default_rng(13)
X = rng.standard_normal((96, 5)).astype(np.float32)
y = (X @ np.array([0.5, -1.0, 2.0, 0.0, 0.3], np.float32) + 0.1 * np.sin(3 * X[:, 0])).astype(np.float32)[:, None]
Xtr, ytr, Xva, yva = torch.tensor(X[:64]), torch.tensor(y[:64]), torch.tensor(X[64:]), torch.tensor(y[64:])

model = nn.Sequential(nn.Linear(5, 16), nn.GELU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))


def init(m):
    if isinstance(m, nn.Linear):
        with torch.no_grad():
            m.weight.copy_(torch.tensor(rng.uniform(-0.4, 0.4, tuple(m.weight.shape)).astype(np.float32)))
        nn.init.constant_(m.bias, 0.01)


model.apply(init)
optimizer = torch.optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.01)
warmup = 4
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
mse, l1 = nn.MSELoss(), nn.L1Loss()
accumulation = 2
best, best_state, bad = float("inf"), None, 0
for epoch in range(12):
    model.train()
    optimizer.zero_grad()
    for i, start in enumerate(range(0, 64, 8)):
        loss = mse(model(Xtr[start:start + 8]), ytr[start:start + 8]) / accumulation
        loss.backward()
        if (i + 1) % accumulation == 0:
            nn.utils.clip_grad_value_(model.parameters(), 0.5)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
    model.eval()
    with torch.no_grad():
        preds = torch.cat([model(Xva[j:j + 8]) for j in range(0, 32, 8)])
        val = mse(preds, yva).item()
        mae = l1(preds, yva).item()
    if val < best - 1e-4:
        best, best_state, bad = val, copy.deepcopy(model.state_dict()), 0
    else:
        bad += 1
    print(f"epoch {epoch:2d} val mse {val:.6f} mae {mae:.6f} lr {scheduler.get_last_lr()[0]:.5f}")
    if bad >= 3:
        print("early stop at epoch", epoch)
        break

model.load_state_dict(best_state)
model.eval()
with torch.no_grad():
    stacked = torch.stack([model(Xva[:4]).squeeze(1), yva[:4].squeeze(1)], dim=0)
print("best", f"{best:.6f}", "restored", f"{mse(model(Xva), yva).item():.6f}")
print("first predictions and targets", [[round(v, 4) for v in row] for row in stacked.tolist()])
