"""Networks for 32x32 colour pictures (CIFAR-10): ResNet-20 (He et al. 2016, section 4.2) and a
small VGG-style ``cifar-convnet``.

Paper: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
https://arxiv.org/abs/1512.03385 (section 4.2, "CIFAR-10 and Analysis").
"""
from __future__ import annotations

from .. import nn
from ..nn import functional as F


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut: y = relu(bn2(conv2(relu(bn1(conv1(x))))) + s(x)).

    Args: in_planes, planes: channels in and out; stride: 1, or 2 at the first block of a stage.
    Shortcut (the paper's option A, parameter-free): the identity when shapes agree, else x
    subsampled by ``stride`` (x[:, :, ::2, ::2]) with (planes - in_planes) zero channels, half
    before and half after, as the widely used re-implementation of the paper's option A does.
    Shape: (N, in_planes, H, W) -> (N, planes, H / stride, W / stride).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride, self.extra = stride, planes - in_planes

    def shortcut(self, x):
        """Option A: subsample by ``stride`` and zero-pad the channels (no parameters).

        When x is stored batch-innermost (CHWN, as ember's conv kernels write it), the same
        slicing and padding run on its (C, H, W, N) view, so the result keeps that memory order
        and ``out + shortcut(x)`` adds two arrays of one layout (adding a CHWN array to an NCHW
        one costs ~13x as much in NumPy, and the NCHW sum then makes the next conv convert it).
        The values are the same either way."""
        if self.stride == 1 and not self.extra:
            return x
        chwn = x._data.ndim == 4 and x._data.transpose(1, 2, 3, 0).flags.c_contiguous
        if chwn:
            x = x.permute(1, 2, 3, 0)                                      # (C_in, H, W, N) view
        s, e = self.stride, (0, 0) if chwn else ()                        # e: no padding of N
        x = x[:, ::s, ::s] if chwn else x[:, :, ::s, ::s]                  # (.., H/2, W/2, ..)
        if self.extra:                                                     # zero channels, half on each side
            x = F.pad(x, e + (0, 0, 0, 0) + (self.extra // 2, self.extra - self.extra // 2))
        return x.permute(3, 0, 1, 2) if chwn else x                        # (N, planes, H/2, W/2)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet of depth 6n + 2: a 3x3 conv to 16 channels, three stages of n
    ``BasicBlock`` at 16, 32, 64 channels on 32x32, 16x16, 8x8 maps (the first block of stages 2
    and 3 has stride 2), global average pooling and a fully connected layer.

    Shape: (N, 3, 32, 32) -> (N, num_classes) logits (any H, W divisible by 4 work).
    Parameters: n = 3 (ResNet-20): 269,722 (the paper's "0.27M"); state-dict keys conv1, bn1,
        layer1.0.conv1, ..., layer3.2.bn2, fc.
    Init: convolutions Kaiming-normal (He et al. 2015, fan_out, as torchvision's ResNets), BN
        weight 1 and bias 0, the fc layer at PyTorch's default.
    """

    def __init__(self, n: int = 3, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes, stages = 16, []
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(planes, width, stride if i == 0 else 1))
                planes = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages        # (N, 16, 32, 32), (N, 32, 16, 16), (N, 64, 8, 8)
        self.pool = nn.AdaptiveAvgPool2d(1)                   # (N, 64, 1, 1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x).flatten(1))


def resnet20(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """ResNet-20 for CIFAR-10 (He et al. 2016, section 4.2, n = 3): 19 conv layers + fc, option-A
    shortcuts, 269,722 parameters. Shape: (N, 3, 32, 32) -> (N, num_classes)."""
    return CifarResNet(3, num_classes, in_channels)


def cifar_convnet(num_classes: int = 10, in_channels: int = 3, widths=(32, 64, 128), dropout: float = 0.3) -> nn.Sequential:
    """A small VGG-style network (Simonyan & Zisserman 2015: stacks of 3x3 convolutions, then
    pooling) for 32x32 pictures: three stages of two conv-BN-ReLU layers and a 2x2 max-pool,
    global average pooling, dropout and one linear layer.

    Shape: (N, in_channels, 32, 32) -> (N, num_classes); maps 32 -> 16 -> 8 -> 4.
    Parameters: 288,746 with the defaults (convolutions have no bias: BN's beta replaces it).
    """
    layers, cin = [], in_channels
    for w in widths:                       # (N, 32, 16, 16), (N, 64, 8, 8), (N, 128, 4, 4)
        layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                   nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
        cin = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                         nn.Linear(cin, num_classes))
