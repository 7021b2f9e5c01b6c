"""The idioms of PyTorch's classic MNIST example: a Net with F.max_pool2d, torch.flatten and
F.log_softmax, F.nll_loss for training and ``reduction='sum'`` for the test loss, Adadelta with
StepLR, ``train(model, device, loader, optimizer, epoch)`` / ``test(...)`` functions with the
``len(loader.dataset)`` progress line, ``output.argmax(dim=1, keepdim=True)`` and
``pred.eq(target.view_as(pred)).sum().item()``, DataLoader(drop_last=True). 1×12×12 random
pictures with a class pattern instead of MNIST; Dropout at p=0 (the two libraries' masks
differ), so both see the same numbers."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset

rng = np.random.default_rng(21)


def digits(n):
    x = rng.standard_normal((n, 1, 12, 12)).astype(np.float32) * 0.5
    y = rng.integers(0, 4, n)
    for i, c in enumerate(y):
        x[i, 0, 3 * c:3 * c + 3, :] += 1.0                     # a bright band per class
    return TensorDataset(torch.tensor(x), torch.tensor(y))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.conv2 = nn.Conv2d(4, 8, 3, 1)
        self.dropout1 = nn.Dropout(0.0)
        self.fc1 = nn.Linear(8 * 4 * 4, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def train(model, device, train_loader, optimizer, epoch, log_interval=4):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % log_interval == 0:
            print("Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}".format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # get the index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    print("Test set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)".format(
        test_loss, correct, len(test_loader.dataset), 100. * correct / len(test_loader.dataset)))


device = torch.device("cpu")
train_loader = DataLoader(digits(70), batch_size=8, shuffle=False, drop_last=True)
test_loader = DataLoader(digits(30), batch_size=10)
model = Net().to(device)
with torch.no_grad():                                 # the same start in both libraries
    for p in model.parameters():
        p.copy_(torch.tensor(rng.uniform(-0.3, 0.3, tuple(p.shape)).astype(np.float32)))
optimizer = optim.Adadelta(model.parameters(), lr=1.0)
scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
for epoch in range(1, 4):
    train(model, device, train_loader, optimizer, epoch)
    test(model, device, test_loader)
    scheduler.step()
print("lr", optimizer.param_groups[0]["lr"], "batches", len(train_loader))
