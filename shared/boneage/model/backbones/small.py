"""A narrow ResNet-like backbone for the demo model: cheap enough to train on two CPU cores."""

from __future__ import annotations

import torch
from torch import nn

from ..layers import BasicBlock, ConvBnAct


class SmallNet(nn.Module):
    """Stem to stride 4, then three stages of two basic blocks each (strides 8, 16, 32)."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 96, 128), in_chans: int = 1) -> None:
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        self.stem = nn.Sequential(ConvBnAct(in_chans, w0, 3, 2), ConvBnAct(w0, w1, 3, 2), BasicBlock(w1, w1))
        self.s3 = nn.Sequential(BasicBlock(w1, w2, 2), BasicBlock(w2, w2))
        self.s4 = nn.Sequential(BasicBlock(w2, w3, 2), BasicBlock(w3, w3))
        self.s5 = nn.Sequential(BasicBlock(w3, w4, 2), BasicBlock(w4, w4))
        self.out_channels = (w2, w3, w4)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.s3(self.stem(x))
        c4 = self.s4(c3)
        c5 = self.s5(c4)
        return [c3, c4, c5]
