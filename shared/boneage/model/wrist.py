"""Wrist maturity network: is this hand past the end of the Greulich & Pyle standards?

The last physes to close are the distal radius and ulna (domain brief, "Fusion"); in the standards'
last months a thin lucent line, about 0.5 mm, is left there. The regressor's crop sees the whole hand
at about 1.7 mm per pixel, where that line is a third of a pixel, so its mature head cannot tell the
last months of the standards from just past them. This network reads the wrist patch
(``preprocess.wrist_patch``) at about 2x below the working resolution instead: five 3x3 conv layers
(the first at full patch resolution, then four at stride 2), global average pooling and one logit.

Each patch is standardised to zero mean and unit spread first. Standardising is linear, so gamma
still reshapes the patch: gamma 0.6 compresses the bright end where bone lies and fades the lucent
line, and on held-out seed 14111 it turned three children of 16-18 years into "mature" (p 0.38 ->
0.93 for one of them). With ``equalise`` (``RegressorConfig.wrist_equalise``, opt-in) the network
reads each pixel's rank within its patch instead (``rank_equalise``): any increasing change of grey
levels (gamma, exposure) leaves the ranks, and so the verdict, as they were, up to the patch's
resampling, its grey-level binning and where it clips. A stage fine-tuned to ranks was gamma-proof on
development seed 13709 but told adults from the oldest children less well than the shipped one (model
card). A probe of this shape on oracle wrist boxes scored every adult phantom above every child aged 168
months or more (model card).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBnAct


# Grey levels are binned this finely for the ranks: 1/16383 of the [0, 1] range, far below the contrast
# of a physis line, and a histogram of fixed size keeps the ranks one pass over the patch (static
# shapes for export) instead of a sort, which cost 20-40 ms a patch.
RANK_LEVELS = 16384


def rank_equalise(patch: torch.Tensor) -> torch.Tensor:
    """[B, 1, H, W] in [0, 1] -> the same shape, each pixel replaced by its mid-rank within its own
    patch, in (0, 1): (pixels below + pixels at or below) / (2 x pixels), with grey levels binned to
    ``RANK_LEVELS``. Ties (the zero fill beyond the film's edge) share one value."""
    flat = torch.nan_to_num(patch.float().flatten(1))        # a NaN would index past the histogram
    level = (flat.clamp(0, 1) * (RANK_LEVELS - 1)).round().long()
    counts = torch.zeros(flat.shape[0], RANK_LEVELS, dtype=torch.float32, device=patch.device)
    counts = counts.scatter_add(1, level, torch.ones_like(flat))
    mid = counts.cumsum(1) - counts / 2
    return (mid.gather(1, level) / flat.shape[1]).to(patch.dtype).view_as(patch)


class WristMaturityNet(nn.Module):
    def __init__(self, widths: tuple[int, ...], *, equalise: bool = False) -> None:
        super().__init__()
        self.equalise = equalise
        layers: list[nn.Module] = []
        cin = 1
        for i, c in enumerate(widths):
            layers.append(ConvBnAct(cin, c, 3, 1 if i == 0 else 2))
            cin = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 1)

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] patch in [0, 1] -> [B] mature logit."""
        if self.equalise:
            patch = rank_equalise(patch)
        mean = patch.mean((2, 3), keepdim=True)
        std = (patch - mean).square().mean((2, 3), keepdim=True).add(1e-6).sqrt()
        f = self.features((patch - mean) / (std + 1e-3)).mean((2, 3))
        return self.head(f)[:, 0]
