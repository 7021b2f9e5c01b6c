"""Fine-tuning and checkpointing as training scripts write them: a backbone frozen with
``requires_grad = False`` and an optimizer over ``filter(lambda p: p.requires_grad, ...)``, then
unfrozen with a second param group of its own learning rate (``add_param_group``), heads in a
ModuleDict and layers in a ModuleList, ``model.apply(init_fn)``, a multi-label loss with
BCEWithLogitsLoss(pos_weight=...), MultiStepLR, ReduceLROnPlateau, the checkpoint dict of
epoch/model/optimizer/scheduler state saved with torch.save and resumed into fresh objects,
``zero_grad(set_to_none=True)``, ``named_modules()`` and ``parameters_to_vector``."""
import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils import parameters_to_vector

rng = np.random.default_rng(7)
X = torch.tensor(rng.standard_normal((48, 6)).astype(np.float32))
Y = torch.tensor((rng.standard_normal((48, 3)) + np.asarray(X[:, :3]) > 0.3).astype(np.float32))   # 3 labels


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.ModuleList([nn.Linear(6, 12), nn.Linear(12, 12)])
        self.heads = nn.ModuleDict({"labels": nn.Linear(12, 3), "aux": nn.Linear(12, 1)})
        self.act = nn.Tanh()

    def forward(self, x):
        for layer in self.backbone:
            x = self.act(layer(x))
        return self.heads["labels"](x), self.heads["aux"](x)


def init_fn(m):
    if isinstance(m, nn.Linear):
        with torch.no_grad():
            m.weight.copy_(torch.tensor(rng.uniform(-0.6, 0.6, tuple(m.weight.shape)).astype(np.float32)))
            nn.init.zeros_(m.bias)


def make():
    model = Net()
    model.apply(init_fn)
    return model


model = make()
print("modules", [name for name, _ in model.named_modules()])
for p in model.backbone.parameters():
    p.requires_grad = False
optimizer = torch.optim.SGD(filter(lambda p: p.requires_grad, model.parameters()), lr=0.2, momentum=0.9)
criterion = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, 2.0, 0.5]))
scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2, 4], gamma=0.5)


def epoch(model, optimizer):
    total = 0.0
    for i in range(0, 48, 16):
        optimizer.zero_grad(set_to_none=True)
        logits, aux = model(X[i:i + 16])
        loss = criterion(logits, Y[i:i + 16]) + 0.1 * aux.pow(2).mean()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / 3


for e in range(3):
    loss = epoch(model, optimizer)
    scheduler.step()
    print(f"frozen epoch {e}: loss {loss:.6f} lr {optimizer.param_groups[0]['lr']:.4f} "
          f"backbone grad {model.backbone[0].weight.grad}")

for p in model.backbone.parameters():                  # unfreeze, with a smaller learning rate
    p.requires_grad = True
optimizer.add_param_group({"params": list(model.backbone.parameters()), "lr": 0.05})
for e in range(2):
    loss = epoch(model, optimizer)
    scheduler.step()
    print(f"tuned epoch {e}: loss {loss:.6f} lrs {[round(g['lr'], 4) for g in optimizer.param_groups]}")

torch.save({"epoch": 5, "model_state_dict": model.state_dict(), "optimizer_state_dict": optimizer.state_dict(),
            "scheduler_state_dict": scheduler.state_dict(), "loss": loss}, "checkpoint.pt")
reference = [epoch(model, optimizer) for _ in range(2)]     # what continuing would give

checkpoint = torch.load("checkpoint.pt", weights_only=True)
model2 = make()
model2.load_state_dict(checkpoint["model_state_dict"])
optimizer2 = torch.optim.SGD([p for n, p in model2.named_parameters() if not n.startswith("backbone")], lr=0.2,
                             momentum=0.9)
optimizer2.add_param_group({"params": list(model2.backbone.parameters()), "lr": 0.05})
optimizer2.load_state_dict(checkpoint["optimizer_state_dict"])
scheduler2 = torch.optim.lr_scheduler.MultiStepLR(optimizer2, milestones=[2, 4], gamma=0.5)
scheduler2.load_state_dict(checkpoint["scheduler_state_dict"])
resumed = [epoch(model2, optimizer2) for _ in range(2)]
print("resumed from epoch", checkpoint["epoch"], "same as continuing:",
      all(abs(a - b) < 1e-6 for a, b in zip(reference, resumed)), [f"{v:.6f}" for v in resumed])

plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer2, mode="min", factor=0.5, patience=1)
for metric in [1.0, 0.9, 0.95, 0.97, 0.99, 0.5]:
    plateau.step(metric)
    print("plateau lrs", [round(g["lr"], 5) for g in optimizer2.param_groups])
vec = parameters_to_vector(model2.parameters())
print("parameters", vec.numel(), f"{vec.abs().sum().item():.5f}")
