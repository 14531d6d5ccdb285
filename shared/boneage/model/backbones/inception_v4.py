"""Inception-v4 (Szegedy et al., AAAI 2017, arXiv:1602.07261): the clinical regressor's backbone.

Layer layout follows the paper's figures 3-8 (stem, 4x Inception-A, Reduction-A, 7x Inception-B,
Reduction-B, 3x Inception-C); 1 input channel since radiographs are grey.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import ConvBnAct as C


class _Cat(nn.Module):
    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


def _seq(*m: nn.Module) -> nn.Sequential:
    return nn.Sequential(*m)


def _pool_proj(cin: int, cout: int) -> nn.Sequential:
    return _seq(nn.AvgPool2d(3, 1, 1, count_include_pad=False), C(cin, cout, 1))


def inception_a() -> _Cat:
    return _Cat(C(384, 96, 1), _seq(C(384, 64, 1), C(64, 96, 3)),
                _seq(C(384, 64, 1), C(64, 96, 3), C(96, 96, 3)), _pool_proj(384, 96))


def reduction_a() -> _Cat:
    return _Cat(C(384, 384, 3, 2, 0), _seq(C(384, 192, 1), C(192, 224, 3), C(224, 256, 3, 2, 0)),
                nn.MaxPool2d(3, 2))


def inception_b() -> _Cat:
    return _Cat(C(1024, 384, 1),
                _seq(C(1024, 192, 1), C(192, 224, (1, 7)), C(224, 256, (7, 1))),
                _seq(C(1024, 192, 1), C(192, 192, (7, 1)), C(192, 224, (1, 7)), C(224, 224, (7, 1)),
                     C(224, 256, (1, 7))),
                _pool_proj(1024, 128))


def reduction_b() -> _Cat:
    return _Cat(_seq(C(1024, 192, 1), C(192, 192, 3, 2, 0)),
                _seq(C(1024, 256, 1), C(256, 256, (1, 7)), C(256, 320, (7, 1)), C(320, 320, 3, 2, 0)),
                nn.MaxPool2d(3, 2))


class InceptionC(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b0 = C(1536, 256, 1)
        self.b1 = C(1536, 384, 1)
        self.b1a, self.b1b = C(384, 256, (1, 3)), C(384, 256, (3, 1))
        self.b2 = _seq(C(1536, 384, 1), C(384, 448, (3, 1)), C(448, 512, (1, 3)))
        self.b2a, self.b2b = C(512, 256, (1, 3)), C(512, 256, (3, 1))
        self.b3 = _pool_proj(1536, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.b1(x)
        x2 = self.b2(x)
        return torch.cat([self.b0(x), self.b1a(x1), self.b1b(x1), self.b2a(x2), self.b2b(x2), self.b3(x)], 1)


class InceptionV4(nn.Module):
    def __init__(self, in_chans: int = 1) -> None:
        super().__init__()
        self.stem = _seq(
            C(in_chans, 32, 3, 2, 0), C(32, 32, 3, 1, 0), C(32, 64, 3),
            _Cat(nn.MaxPool2d(3, 2), C(64, 96, 3, 2, 0)),                                     # 160
            _Cat(_seq(C(160, 64, 1), C(64, 96, 3, 1, 0)),
                 _seq(C(160, 64, 1), C(64, 64, (1, 7)), C(64, 64, (7, 1)), C(64, 96, 3, 1, 0))),  # 192
            _Cat(C(192, 192, 3, 2, 0), nn.MaxPool2d(3, 2)),                                   # 384
        )
        self.stage_a = _seq(*[inception_a() for _ in range(4)])
        self.stage_b = _seq(reduction_a(), *[inception_b() for _ in range(7)])
        self.stage_c = _seq(reduction_b(), *[InceptionC() for _ in range(3)])
        self.out_channels = (384, 1024, 1536)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.stage_a(self.stem(x))
        c4 = self.stage_b(c3)
        c5 = self.stage_c(c4)
        return [c3, c4, c5]
