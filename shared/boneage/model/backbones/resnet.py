"""ResNet-50 (He et al. 2016, bottleneck v1.5: stride on the 3x3 conv) for the clinical detectors."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import ConvBnAct


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = ConvBnAct(cin, width, 1, 1, 0)
        self.conv2 = ConvBnAct(width, width, 3, stride)
        self.conv3 = ConvBnAct(width, cout, 1, 1, 0, act=False)
        self.short = None if (cin == cout and stride == 1) else ConvBnAct(cin, cout, 1, stride, 0, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x if self.short is None else self.short(x)
        return self.act(self.conv3(self.conv2(self.conv1(x))) + s)


def _stage(cin: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(cin, width, stride)]
    layers += [Bottleneck(width * 4, width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet50(nn.Module):
    def __init__(self, in_chans: int = 1, layers: tuple[int, int, int, int] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvBnAct(in_chans, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
        self.layer1 = _stage(64, 64, layers[0], 1)
        self.layer2 = _stage(256, 128, layers[1], 2)
        self.layer3 = _stage(512, 256, layers[2], 2)
        self.layer4 = _stage(1024, 512, layers[3], 2)
        self.out_channels = (512, 1024, 2048)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c2 = self.layer1(self.stem(x))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c3, c4, c5]
