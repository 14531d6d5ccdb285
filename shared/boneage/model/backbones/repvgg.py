"""RepVGG (Ding et al., CVPR 2021, arXiv:2101.03697): a plain stack of 3x3 convolutions at inference.

Each training-time block sums a 3x3 conv+BN, a 1x1 conv+BN and (when the shape is kept) an identity
BN, then applies ReLU. All three branches are linear, so ``RepVGGBlock.reparameterized()`` folds
them into one 3x3 conv with bias: the deployed network is dense 3x3 convolutions and ReLUs only,
the operator oneDNN runs closest to peak on CPU. Stages follow the paper: a stride-2 first block,
then stride-2 stages 1-4 whose first block downsamples; stages 2-4 give C3/C4/C5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvBnAct


def _fold_bn(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of conv(weight) followed by ``bn`` in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return weight * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class RepVGGBlock(nn.Module):
    """3x3 conv+BN + 1x1 conv+BN (+ identity BN), summed, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv3 = ConvBnAct(cin, cout, 3, stride, act=False)
        self.conv1 = ConvBnAct(cin, cout, 1, stride, 0, act=False)
        self.identity = nn.BatchNorm2d(cout) if (cin == cout and stride == 1) else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(x) + self.conv1(x)
        if self.identity is not None:
            y = y + self.identity(x)
        return self.act(y)

    @torch.no_grad()
    def reparameterized(self) -> nn.Sequential:
        """The equivalent deploy block (eval-mode BN statistics): one 3x3 conv with bias, then ReLU."""
        conv3, conv1 = self.conv3[0], self.conv1[0]
        k, b = _fold_bn(conv3.weight, self.conv3[1])
        k1, b1 = _fold_bn(conv1.weight, self.conv1[1])
        k, b = k + F.pad(k1, [1, 1, 1, 1]), b + b1
        if self.identity is not None:
            eye = torch.zeros_like(k)
            eye[torch.arange(k.shape[0]), torch.arange(k.shape[0]), 1, 1] = 1.0
            ki, bi = _fold_bn(eye, self.identity)
            k, b = k + ki, b + bi
        conv = nn.Conv2d(conv3.in_channels, conv3.out_channels, 3, conv3.stride, 1, bias=True)
        conv.weight.copy_(k)
        conv.bias.copy_(b)
        return nn.Sequential(conv, nn.ReLU(inplace=True))


def _stage(cin: int, cout: int, depth: int) -> nn.Sequential:
    return nn.Sequential(RepVGGBlock(cin, cout, 2), *(RepVGGBlock(cout, cout) for _ in range(depth - 1)))


class RepVGG(nn.Module):
    """``widths`` = (stage 0 .. stage 4) channels, ``depths`` = blocks in stages 1-4 (stage 0 has one).

    RepVGG-A0 is widths (48, 48, 96, 192, 1280), depths (2, 4, 14, 1).
    """

    def __init__(self, widths: tuple[int, ...], depths: tuple[int, ...], in_chans: int = 1) -> None:
        super().__init__()
        if len(widths) != 5 or len(depths) != 4:
            raise ValueError(f"repvgg needs 5 widths and 4 depths, got {widths} and {depths}")
        w0, w1, w2, w3, w4 = widths
        d1, d2, d3, d4 = depths
        self.stage0 = RepVGGBlock(in_chans, w0, 2)
        self.stage1 = _stage(w0, w1, d1)
        self.stage2 = _stage(w1, w2, d2)
        self.stage3 = _stage(w2, w3, d3)
        self.stage4 = _stage(w3, w4, d4)
        self.out_channels = (w2, w3, w4)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.stage2(self.stage1(self.stage0(x)))
        c4 = self.stage3(c3)
        c5 = self.stage4(c4)
        return [c3, c4, c5]
