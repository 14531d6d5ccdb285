"""RetinaNet-style hand detector (Lin et al., ICCV 2017): backbone, FPN, class and box heads.

forward() takes a fixed-size letterboxed image batch [B, 1, S, S] in [0, 1] and returns tensors only
(anchor decoding and NMS live in ``boxes.py``) so the module exports with torch.export / jit.trace.
Outputs: per-anchor class logits [B, A, C] (left_hand, right_hand), per-anchor box deltas [B, A, 4]
and image-level logits [B, L] (``inverted``: the image is a negative and must be flipped back).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import build_backbone
from .configs import DetectorConfig
from .layers import normalise_input


class FPN(nn.Module):
    """Top-down pyramid over C3-C5 plus extra stride-2 levels; returns the levels named in ``strides``."""

    def __init__(self, in_channels: tuple[int, int, int], ch: int, strides: tuple[int, ...]) -> None:
        super().__init__()
        self.strides = strides
        self.lateral = nn.ModuleList(nn.Conv2d(c, ch, 1) for c in in_channels)
        self.smooth = nn.ModuleList(nn.Conv2d(ch, ch, 3, padding=1) for _ in in_channels)
        n_extra = sum(1 for s in strides if s > 32)
        self.extra = nn.ModuleList(
            nn.Conv2d(in_channels[2] if i == 0 else ch, ch, 3, 2, 1) for i in range(n_extra))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        c3, c4, c5 = feats
        p5 = self.lateral[2](c5)
        p4 = self.lateral[1](c4) + F.interpolate(p5, size=c4.shape[-2:], mode="nearest")
        levels = {16: self.smooth[1](p4), 32: self.smooth[2](p5)}
        if 8 in self.strides:   # the stride-8 level is the costliest; small configs skip it
            p3 = self.lateral[0](c3) + F.interpolate(p4, size=c3.shape[-2:], mode="nearest")
            levels[8] = self.smooth[0](p3)
        x = c5
        for i, conv in enumerate(self.extra):
            x = conv(x if i == 0 else F.relu(x))
            levels[64 * 2 ** i] = x
        return [levels[s] for s in self.strides]


class _Head(nn.Module):
    def __init__(self, ch: int, n_convs: int, out_per_anchor: int, anchors: int, prior: float | None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(n_convs):
            # GroupNorm instead of none (paper) so small-batch CPU training is stable.
            layers += [nn.Conv2d(ch, ch, 3, padding=1), nn.GroupNorm(8, ch), nn.ReLU(inplace=True)]
        self.tower = nn.Sequential(*layers)
        self.out = nn.Conv2d(ch, anchors * out_per_anchor, 3, padding=1)
        self.k = out_per_anchor
        nn.init.normal_(self.out.weight, std=0.01)
        # Focal-loss prior (paper section 4.1): start with every anchor at p=0.01 foreground.
        nn.init.constant_(self.out.bias, -math.log((1 - prior) / prior) if prior else 0.0)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        return _anchor_rows([self.out(self.tower(x)) for x in levels], self.k)

    def unshared(self, n_levels: int) -> "UnsharedHead":
        """The same head as one copy per pyramid level (see ``UnsharedHead``)."""
        return UnsharedHead([copy.deepcopy(nn.Sequential(self.tower, self.out)) for _ in range(n_levels)], self.k)


class UnsharedHead(nn.Module):
    """Deploy form of ``_Head``: level i runs its own copy of the tower and output conv (same weights).

    Same outputs as the shared head, but every conv in an exported graph has one call site; the PT2E
    X86InductorQuantizer rejects a conv module called once per level ("conv partition has more than
    one output node").
    """

    def __init__(self, per_level: list[nn.Module], k: int) -> None:
        super().__init__()
        self.levels = nn.ModuleList(per_level)
        self.k = k

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        return _anchor_rows([head(x) for head, x in zip(self.levels, levels)], self.k)


def _anchor_rows(maps: list[torch.Tensor], k: int) -> torch.Tensor:
    """Per-level head maps [B, A*k, H, W] to [B, anchors, k] in level, row, column, anchor order."""
    return torch.cat([y.permute(0, 2, 3, 1).reshape(y.shape[0], -1, k) for y in maps], 1)


class HandDetector(nn.Module):
    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone, chans = build_backbone(cfg.backbone, cfg.widths, cfg.depths)
        self.fpn = FPN(chans, cfg.fpn_channels, cfg.strides)
        a = cfg.anchors_per_cell
        self.cls_head = _Head(cfg.fpn_channels, cfg.head_convs, len(cfg.classes), a, prior=0.01)
        self.box_head = _Head(cfg.fpn_channels, cfg.head_convs, 4, a, prior=None)
        self.image_head = nn.Linear(chans[2], len(cfg.image_labels))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.backbone(normalise_input(image))
        levels = self.fpn(feats)
        image_logits = self.image_head(feats[2].mean((2, 3)))
        return self.cls_head(levels), self.box_head(levels), image_logits
