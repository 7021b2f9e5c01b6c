"""An MLP trained with nn.Module, an optimizer and a DataLoader, on whatever device is there
(the everyday training-loop idiom, with .to(device) and model.train()/eval())."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

device = "cuda" if torch.cuda.is_available() else "cpu"
rng = np.random.default_rng(2)
X = rng.standard_normal((256, 4)).astype(np.float32)
labels = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.int64) + (X[:, 3] > 1).astype(np.int64)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


model = Net()
for name, p in model.named_parameters():  # the same start in both libraries
    p.data = torch.tensor(rng.uniform(-0.5, 0.5, tuple(p.shape)).astype(np.float32))
model = model.to(device)

loader = DataLoader(TensorDataset(torch.tensor(X), torch.tensor(labels)), batch_size=32, shuffle=False)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()

for epoch in range(5):
    model.train()
    total, correct, running = 0, 0, 0.0
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        out = model(xb)
        loss = loss_fn(out, yb)
        loss.backward()
        optimizer.step()
        running += loss.item() * xb.size(0)
        correct += (out.argmax(dim=1) == yb).sum().item()
        total += yb.size(0)
    print(f"epoch {epoch} loss {running / total:.5f} accuracy {correct / total:.4f}")

model.eval()
with torch.no_grad():
    logits = model(torch.tensor(X[:5]).to(device))
    print("first predictions", logits.argmax(1).cpu().tolist())
