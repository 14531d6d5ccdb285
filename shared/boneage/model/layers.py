"""Small building blocks shared by the backbones and heads (timm-style: conv + norm + activation)."""

from __future__ import annotations

import torch
from torch import nn


class ConvBnAct(nn.Sequential):
    """Conv2d without bias, BatchNorm, optional ReLU: the unit every backbone here is made of."""

    def __init__(self, cin: int, cout: int, k: int | tuple[int, int] = 3, stride: int = 1,
                 padding: int | tuple[int, int] | None = None, act: bool = True) -> None:
        if padding is None:
            padding = (k // 2) if isinstance(k, int) else (k[0] // 2, k[1] // 2)
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, padding, bias=False), nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with a projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBnAct(cin, cout, 3, stride)
        self.conv2 = ConvBnAct(cout, cout, 3, 1, act=False)
        self.short = None if (cin == cout and stride == 1) else ConvBnAct(cin, cout, 1, stride, 0, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x if self.short is None else self.short(x)
        return self.act(self.conv2(self.conv1(x)) + s)


def normalise_input(x: torch.Tensor) -> torch.Tensor:
    """Map [0, 1] pixels to roughly zero mean, unit spread inside the graph (so exports need no preprocessing)."""
    return (x - 0.5) * 4.0
