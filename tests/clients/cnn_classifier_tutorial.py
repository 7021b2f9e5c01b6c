"""A small colour-image CNN classifier in the idiom of PyTorch's "Training a classifier" tutorial:
an nn.Module with Conv2d/MaxPool2d/Linear layers and F.relu, torch.flatten(x, 1), CrossEntropyLoss,
SGD with momentum, the running loss every few mini-batches, torch.max(outputs, 1), a state_dict
saved with torch.save and loaded into a new net, tuple indexing with label tensors, and per-class
accuracy under torch.no_grad(). The pictures are random 3×32×32 arrays with a class-dependent
colour offset (no torchvision: the data is built here, the same in both libraries)."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

rng = np.random.default_rng(5)
classes = ("plane", "car", "bird", "cat")


def pictures(n):
    x = rng.standard_normal((n, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, len(classes), n)
    for i, c in enumerate(y):
        x[i, c % 3] += 0.4 * (1 + c // 3)           # a class's colour channel is brighter
    return torch.tensor(x), torch.tensor(y)


trainset, testset = TensorDataset(*pictures(96)), TensorDataset(*pictures(32))
trainloader = DataLoader(trainset, batch_size=4, shuffle=False)
testloader = DataLoader(testset, batch_size=4, shuffle=False)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, len(classes))

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)  # flatten all dimensions except batch
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


net = Net()
with torch.no_grad():                                 # the same start in both libraries
    for name, p in net.named_parameters():
        bound = 1 / np.sqrt(p.shape[1] * (p[0, 0].numel() if p.dim() == 4 else 1)) if p.dim() > 1 else 0.05
        p.copy_(torch.tensor(rng.uniform(-bound, bound, tuple(p.shape)).astype(np.float32)))

criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

for epoch in range(3):
    running_loss = 0.0
    for i, data in enumerate(trainloader, 0):
        inputs, labels = data
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        if i % 8 == 7:
            print(f"[{epoch + 1}, {i + 1:5d}] loss: {running_loss / 8:.6f}")
            running_loss = 0.0
print("Finished Training")

PATH = "./cifar_net.pth"
torch.save(net.state_dict(), PATH)
net = Net()
net.load_state_dict(torch.load(PATH, weights_only=True))

dataiter = iter(testloader)
images, labels = next(dataiter)
print("GroundTruth: ", " ".join(f"{classes[labels[j]]:5s}" for j in range(4)))
outputs = net(images)
_, predicted = torch.max(outputs, 1)
print("Predicted: ", " ".join(f"{classes[predicted[j]]:5s}" for j in range(4)))

correct = 0
total = 0
with torch.no_grad():
    for data in testloader:
        images, labels = data
        outputs = net(images)
        _, predicted = torch.max(outputs.data, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()
print(f"Accuracy of the network on the {total} test images: {100 * correct // total} %")

correct_pred = {classname: 0 for classname in classes}
total_pred = {classname: 0 for classname in classes}
with torch.no_grad():
    for data in testloader:
        images, labels = data
        outputs = net(images)
        _, predictions = torch.max(outputs, 1)
        for label, prediction in zip(labels, predictions):
            if label == prediction:
                correct_pred[classes[label]] += 1
            total_pred[classes[label]] += 1
for classname, correct_count in correct_pred.items():
    accuracy = 100 * float(correct_count) / total_pred[classname]
    print(f"Accuracy for class: {classname:5s} is {accuracy:.1f} %")
print("fc3 weight sum", f"{net.fc3.weight.sum().item():.6f}")
