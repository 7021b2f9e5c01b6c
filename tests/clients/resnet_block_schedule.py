"""A small residual network trained the way CIFAR training scripts do it: a custom Dataset
subclass, Subset for a hold-out split, a BasicBlock with BatchNorm2d and a 1×1 downsample
Sequential, weights initialised in a ``for m in self.modules()`` loop with nn.init, SGD with
Nesterov momentum and weight decay, CosineAnnealingLR stepped per batch, label smoothing,
gradient clipping, flip and pad-and-crop augmentation written with tensor ops, torch.cat,
x.view(x.size(0), -1), model.train()/eval() (BatchNorm's running statistics), softmax
probabilities and .detach().numpy(). No random numbers are drawn by the library (no shuffle,
no dropout), so both libraries see the same batches and start from the same weights."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

rng = np.random.default_rng(11)


class Pictures(Dataset):
    def __init__(self, n):
        self.x = rng.standard_normal((n, 3, 16, 16)).astype(np.float32)
        self.y = rng.integers(0, 3, n)
        for i, c in enumerate(self.y):
            self.x[i, c] += 0.5

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return torch.from_numpy(self.x[i]), int(self.y[i])


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class SmallResNet(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.layer1 = BasicBlock(8, 8)
        self.layer2 = BasicBlock(8, 16, stride=2)
        self.fc = nn.Linear(16 * 2, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        avg = F.adaptive_avg_pool2d(x, 1)
        peak = F.adaptive_max_pool2d(x, 1)
        x = torch.cat([avg, peak], dim=1)
        return self.fc(x.view(x.size(0), -1))


model = SmallResNet()
with torch.no_grad():                                 # the same start in both libraries
    for name, p in model.named_parameters():
        if p.dim() > 1:
            p.copy_(torch.tensor(rng.normal(0, 0.3, tuple(p.shape)).astype(np.float32)))
    model.fc.bias.zero_()

data = Pictures(80)
train_set, val_set = Subset(data, range(0, 64)), Subset(data, range(64, 80))
train_loader = DataLoader(train_set, batch_size=16, shuffle=False)
val_loader = DataLoader(val_set, batch_size=8)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
epochs = 3
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(train_loader))
criterion = nn.CrossEntropyLoss(label_smoothing=0.1)

for epoch in range(epochs):
    model.train()
    total_loss, seen = 0.0, 0
    for step, (x, y) in enumerate(train_loader):
        if step % 2 == 1:                             # flip every other batch left-right
            x = torch.flip(x, dims=[3])
        x = F.pad(x, (2, 2, 2, 2))[:, :, 1:17, 3:19]  # pad by 2, crop back to 16×16 (shifted)
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * x.size(0)
        seen += x.size(0)
    print(f"epoch {epoch}: loss {total_loss / seen:.6f}, last grad norm {float(norm):.5f}, "
          f"lr {scheduler.get_last_lr()[0]:.6f}, {optimizer.param_groups[0]['lr']:.6f}")

model.eval()
correct = 0
probs = []
with torch.no_grad():
    for x, y in val_loader:
        out = model(x)
        correct += (out.argmax(1) == y).sum().item()
        probs.append(F.softmax(out, dim=1))
probs = torch.cat(probs).detach().numpy()
print("validation accuracy", correct / len(val_set))
print("probabilities of the first two", np.round(probs[:2], 5).tolist())
print("bn1 running mean", np.round(model.layer1.bn1.running_mean.numpy()[:4], 5).tolist())
print("bn1 running var", np.round(model.layer1.bn1.running_var.numpy()[:4], 5).tolist())
print("batches tracked", int(model.layer1.bn1.num_batches_tracked))
