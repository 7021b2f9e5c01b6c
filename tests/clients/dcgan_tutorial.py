"""The DCGAN tutorial's idioms, scaled down: a generator of ConvTranspose2d (bias=False) +
BatchNorm2d + ReLU ending in Tanh, a discriminator of Conv2d + LeakyReLU(0.2, inplace=True) +
BatchNorm2d ending in Sigmoid, the ``weights_init`` applied with ``model.apply`` (classname
checks, nn.init.normal_/constant_ on BatchNorm), BCELoss with real/fake label tensors made by
``torch.full``, Adam with betas=(0.5, 0.999), ``fake.detach()`` for the discriminator step, and a
fixed noise batch evaluated under no_grad. Noise comes from NumPy's seeded RNG so that both
libraries see the same numbers."""
import numpy as np
import torch
import torch.nn as nn

rng = np.random.default_rng(5)
nz, ngf, ndf, nc = 8, 8, 8, 1


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False),     # 1x1 -> 4x4
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),    # -> 8x8
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),         # -> 16x16
            nn.Tanh(),
        )

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),                 # 16 -> 8
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),            # -> 4
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),              # -> 1
            nn.Sigmoid(),
        )

    def forward(self, input):
        return self.main(input).view(-1, 1).squeeze(1)


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        with torch.no_grad():
            m.weight.copy_(torch.tensor(rng.normal(0.0, 0.02, tuple(m.weight.shape)).astype(np.float32)))
    elif classname.find("BatchNorm") != -1:
        with torch.no_grad():
            m.weight.copy_(torch.tensor(rng.normal(1.0, 0.02, tuple(m.weight.shape)).astype(np.float32)))
        nn.init.constant_(m.bias.data, 0)


netG, netD = Generator(), Discriminator()
netG.apply(weights_init)
netD.apply(weights_init)
print(netG.main[0], netG.main[3])
criterion = nn.BCELoss()
fixed_noise = torch.tensor(rng.standard_normal((4, nz, 1, 1)).astype(np.float32))
real_label, fake_label = 1.0, 0.0
optimizerD = torch.optim.Adam(netD.parameters(), lr=0.0002 * 10, betas=(0.5, 0.999))
optimizerG = torch.optim.Adam(netG.parameters(), lr=0.0002 * 10, betas=(0.5, 0.999))
data = np.tanh(rng.standard_normal((48, nc, 16, 16))).astype(np.float32)     # "real" images in [-1, 1]
for i, start in enumerate(range(0, 48, 16)):
    real = torch.tensor(data[start:start + 16])
    b_size = real.size(0)
    # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
    netD.zero_grad()
    label = torch.full((b_size,), real_label, dtype=torch.float)
    output = netD(real).view(-1)
    errD_real = criterion(output, label)
    errD_real.backward()
    D_x = output.mean().item()
    noise = torch.tensor(rng.standard_normal((b_size, nz, 1, 1)).astype(np.float32))
    fake = netG(noise)
    label.fill_(fake_label)
    output = netD(fake.detach()).view(-1)
    errD_fake = criterion(output, label)
    errD_fake.backward()
    errD = errD_real + errD_fake
    optimizerD.step()
    # (2) Update G: maximize log(D(G(z)))
    netG.zero_grad()
    label.fill_(real_label)
    output = netD(fake).view(-1)
    errG = criterion(output, label)
    errG.backward()
    optimizerG.step()
    print(f"[{i}] Loss_D: {errD.item():.5f} Loss_G: {errG.item():.5f} D(x): {D_x:.5f} "
          f"D(G(z)): {output.mean().item():.5f} fake {tuple(fake.shape)}")
with torch.no_grad():
    sample = netG(fixed_noise).detach()
print("fixed", tuple(sample.shape), f"{sample.mean().item():.5f} {sample.abs().max().item():.5f}")
