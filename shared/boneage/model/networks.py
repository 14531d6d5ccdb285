"""Builders the rest of the service uses: networks from a config, example inputs, FLOP counts."""

from __future__ import annotations

import torch
from torch import nn

from .configs import ModelConfig
from .detector import HandDetector
from .regressor import BoneAgeRegressor


def build_detector(cfg: ModelConfig) -> nn.Module:
    return HandDetector(cfg.detector)


def build_regressor(cfg: ModelConfig) -> nn.Module:
    return BoneAgeRegressor(cfg.regressor)


def example_inputs(cfg: ModelConfig, batch: int = 1) -> dict[str, tuple[torch.Tensor, ...]]:
    """Fixed-shape inputs for tracing/export: detector (image,), regressor (crop, sex one-hot) and,
    with a wrist stage, the wrist patch third."""
    g = torch.Generator().manual_seed(0)
    s, c = cfg.detector.image_size, cfg.regressor.crop_size
    sex = torch.zeros(batch, 3)
    sex[:, 2] = 1.0
    regressor: tuple[torch.Tensor, ...] = (torch.rand(batch, 1, c, c, generator=g), sex)
    if cfg.regressor.has_wrist:
        regressor += (torch.rand(batch, 1, *cfg.regressor.wrist_size, generator=g),)
    return {"detector": (torch.rand(batch, 1, s, s, generator=g),), "regressor": regressor}


def gflops(cfg: ModelConfig, deploy: bool = False) -> dict[str, float]:
    """Forward GFLOP per image (multiply-add = 2 FLOP) of each stage, counted by torch's FlopCounterMode.

    ``deploy`` counts the deploy form (``boneage.model.deploy``: RepVGG blocks as single 3x3 convs),
    which is what inference runs; the training form counts every branch.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from .deploy import deploy_form

    ex = example_inputs(cfg, 1)
    out = {}
    for name, net in (("detector", build_detector(cfg)), ("regressor", build_regressor(cfg))):
        net = deploy_form(net) if deploy else net.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            net(*ex[name])
        out[name] = fc.get_total_flops() / 1e9
    out["total"] = out["detector"] + out["regressor"]
    return out
