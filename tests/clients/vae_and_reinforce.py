"""Two idioms from PyTorch's examples: a variational autoencoder (the reparameterisation trick
with torch.randn_like replaced by a fixed ε so both libraries draw the same noise, BCE with
reduction='sum' plus the closed-form KL term, torch.distributions.Normal's kl_divergence and
log_prob as a check), and REINFORCE with torch.distributions.Categorical (log_prob of chosen
actions, discounted returns normalised with mean/std and eps, policy loss from torch.cat of the
per-step terms). Actions come from NumPy's seeded RNG through probs.detach().numpy()."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Categorical, Normal, kl_divergence

rng = np.random.default_rng(3)


def set_weights(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.tensor(rng.uniform(-0.3, 0.3, tuple(p.shape)).astype(np.float32)))


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 12)
        self.fc21 = nn.Linear(12, 2)
        self.fc22 = nn.Linear(12, 2)
        self.fc3 = nn.Linear(2, 12)
        self.fc4 = nn.Linear(12, 16)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar, eps):
        std = torch.exp(0.5 * logvar)
        return mu + eps * std

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x, eps):
        mu, logvar = self.encode(x.view(-1, 16))
        return self.decode(self.reparameterize(mu, logvar, eps)), mu, logvar


def loss_function(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 16), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld, kld


vae = VAE()
set_weights(vae)
opt = torch.optim.Adam(vae.parameters(), lr=1e-2)
data = torch.tensor((rng.random((32, 1, 4, 4)) > 0.5).astype(np.float32))
for epoch in range(4):
    total = 0.0
    for start in range(0, 32, 8):
        x = data[start:start + 8]
        eps = torch.tensor(rng.standard_normal((8, 2)).astype(np.float32))
        recon, mu, logvar = vae(x, eps)
        loss, kld = loss_function(recon, x, mu, logvar)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
    q = Normal(mu, torch.exp(0.5 * logvar))
    kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum()
    print(f"vae epoch {epoch} loss {total / 32:.5f} kld {kld.item():.5f} = {kl.item():.5f} "
          f"log q(z) {q.log_prob(mu + 0.1).sum().item():.5f}")

policy = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
set_weights(policy)
optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
gamma, eps = 0.99, np.finfo(np.float32).eps.item()
for episode in range(5):
    log_probs, rewards, entropies = [], [], []
    state = rng.standard_normal(4).astype(np.float32)
    for t in range(6):
        probs = F.softmax(policy(torch.tensor(state).unsqueeze(0)), dim=-1)
        m = Categorical(probs)
        p = probs.detach().numpy()[0].astype(np.float64)
        action = torch.tensor([int(rng.choice(3, p=p / p.sum()))])
        log_probs.append(m.log_prob(action))
        entropies.append(m.entropy())
        rewards.append(float(action.item() == 2) - 0.1 * t)
        state = (state + 0.1 * rng.standard_normal(4)).astype(np.float32)
    R, returns = 0.0, []
    for r in rewards[::-1]:
        R = r + gamma * R
        returns.insert(0, R)
    returns = torch.tensor(returns)
    returns = (returns - returns.mean()) / (returns.std() + eps)
    policy_loss = torch.cat([-lp * R for lp, R in zip(log_probs, returns)]).sum()
    optimizer.zero_grad()
    policy_loss.backward()
    optimizer.step()
    print(f"episode {episode} loss {policy_loss.item():.5f} entropy {torch.cat(entropies).mean().item():.5f} "
          f"return {sum(rewards):.2f}")
