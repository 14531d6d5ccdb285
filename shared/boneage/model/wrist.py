"""Wrist maturity network: is this hand past the end of the Greulich & Pyle standards?

The last physes to close are the distal radius and ulna (domain brief, "Fusion"); in the standards'
last months a thin lucent line, about 0.5 mm, is left there. The regressor's crop sees the whole hand
at about 1.7 mm per pixel, where that line is a third of a pixel, so its mature head cannot tell the
last months of the standards from just past them. This network reads the wrist patch
(``preprocess.wrist_patch``) at about 2x below the working resolution instead: five 3x3 conv layers
(the first at full patch resolution, then four at stride 2), global average pooling and one logit.

Each patch is standardised to zero mean and unit spread first, so exposure, gamma and inversion
residues change its input little. A probe of this shape on oracle wrist boxes scored every adult
phantom above every child aged 168 months or more (model card).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBnAct


class WristMaturityNet(nn.Module):
    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for i, c in enumerate(widths):
            layers.append(ConvBnAct(cin, c, 3, 1 if i == 0 else 2))
            cin = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 1)

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] patch in [0, 1] -> [B] mature logit."""
        mean = patch.mean((2, 3), keepdim=True)
        std = (patch - mean).square().mean((2, 3), keepdim=True).add(1e-6).sqrt()
        f = self.features((patch - mean) / (std + 1e-3)).mean((2, 3))
        return self.head(f)[:, 0]
