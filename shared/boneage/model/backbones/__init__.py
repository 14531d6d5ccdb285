"""Feature extractors. Each returns a list of feature maps at strides 8, 16 and 32 (C3, C4, C5)."""

from __future__ import annotations

from torch import nn


def build_backbone(name: str, widths: tuple[int, ...] = (), depths: tuple[int, ...] = ()
                   ) -> tuple[nn.Module, tuple[int, int, int]]:
    """Return (module, channels of C3/C4/C5)."""
    if name == "small":
        from .small import SmallNet
        m = SmallNet(widths)
    elif name == "repvgg":
        from .repvgg import RepVGG
        m = RepVGG(widths, depths)
    elif name == "resnet50":
        from .resnet import ResNet50
        m = ResNet50()
    elif name == "inception_v4":
        from .inception_v4 import InceptionV4
        m = InceptionV4()
    else:
        raise ValueError(f"unknown backbone {name!r}")
    return m, m.out_channels
