"""Bone age regressor on the hand crop, with sex as an input.

Inputs: crop [B, 1, S, S] in [0, 1] and a sex one-hot [B, 3] (male, female, unknown). With "unknown"
the network gives a sex-agnostic estimate: training drops the sex to unknown at random so that input
is learned, never defaulted. Outputs (tensors only, exportable):
  bone_age_months [B], sigma_months [B] (Gaussian spread: the 90 % interval is mean +- 1.645 sigma
  times a calibration factor), male_logit [B] (predicted sex from the image alone),
  mature_logit [B] (skeletally mature: all growth plates fused, bone age not defined).
With a wrist stage in the config (``RegressorConfig.has_wrist``), a third input, the wrist patch
[B, 1, H, W] (``preprocess.wrist_patch``), feeds ``boneage.model.wrist`` and mature_logit is that
network's. The crop's own mature head is then not served; it stays as an auxiliary training target
of the regressor stage, which trains on crops alone (``forward`` without a patch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import build_backbone
from .configs import RegressorConfig
from .layers import normalise_input
from .wrist import WristMaturityNet

SEX_INDEX = {"M": 0, "F": 1, None: 2}


def sex_onehot(sexes: list[str | None]) -> torch.Tensor:
    idx = torch.tensor([SEX_INDEX.get(s if s in ("M", "F") else None, 2) for s in sexes])
    return F.one_hot(idx, 3).float()


class BoneAgeRegressor(nn.Module):
    def __init__(self, cfg: RegressorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone, chans = build_backbone(cfg.backbone, cfg.widths, cfg.depths)
        c = chans[2]
        self.sex_head = nn.Linear(c, 1)
        self.mature_head = nn.Linear(c, 1)
        self.fc = nn.Sequential(nn.Linear(c + 3, cfg.hidden), nn.ReLU(inplace=True), nn.Linear(cfg.hidden, 2))
        self.wrist = WristMaturityNet(cfg.wrist_widths, equalise=cfg.wrist_equalise) if cfg.has_wrist else None

    def forward(self, crop: torch.Tensor, sex: torch.Tensor, wrist: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.backbone(normalise_input(crop))[2].mean((2, 3))
        out = self.fc(torch.cat([f, sex], 1))
        age = self.cfg.age_center + self.cfg.age_scale * out[:, 0]
        sigma = F.softplus(out[:, 1]) * 10.0 + 0.5    # months; floor keeps the NLL finite
        mature = self.mature_head(f)[:, 0] if wrist is None or self.wrist is None else self.wrist(wrist)
        return age, sigma, self.sex_head(f)[:, 0], mature
