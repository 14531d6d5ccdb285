"""Where the engine meets ``boneage.model``: networks, checkpoints and the assessor, in one place.

Kept apart so the builders and the loader depend on the model package only through these few
functions (and tests can build artifacts from stand-in modules without it).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from boneage.engine.build import StageSpec, prepare


def _config(model_config: dict[str, Any] | Any) -> Any:
    from boneage.model.configs import ModelConfig

    return model_config if isinstance(model_config, ModelConfig) else ModelConfig.from_dict(model_config)


def build_stage(stage: str, model_config: dict[str, Any] | Any) -> nn.Module:
    from boneage.model.networks import build_detector, build_regressor

    cfg = _config(model_config)
    return {"detector": build_detector, "regressor": build_regressor}[stage](cfg)


def make_assessor(model_config: dict[str, Any] | Any, detector_fn: Any, regressor_fn: Any,
                  model_version: str, demo: bool) -> Any:
    from boneage.model.pipeline import TwoStageAssessor

    return TwoStageAssessor(_config(model_config), detector_fn, regressor_fn, model_version, demo)


@dataclass
class Source:
    """The weights an artifact is built from."""

    config_name: str
    model_config: dict[str, Any]
    stages: dict[str, StageSpec]
    model_version: str
    weights_sha256: str
    demo: bool


def from_checkpoint(path: str | None = None) -> Source:
    """A checkpoint file (None: the committed demo weights)."""
    from boneage.model.networks import example_inputs
    from boneage.model.weights import load_checkpoint

    ckpt = load_checkpoint(path)
    det, reg = build_stage("detector", ckpt.cfg), build_stage("regressor", ckpt.cfg)
    det.load_state_dict(ckpt.detector_state)
    reg.load_state_dict(ckpt.regressor_state)
    ex = example_inputs(ckpt.cfg, 1)
    return Source(ckpt.cfg.name, ckpt.cfg.as_dict(),
                  {"detector": StageSpec(det.eval(), ex["detector"]), "regressor": StageSpec(reg.eval(), ex["regressor"])},
                  ckpt.model_version, ckpt.sha256, ckpt.demo)


def random_weights(config_name: str, seed: int = 0) -> Source:
    """Seeded random weights for a named config: the benchmark's clinical and seed-equivalent workloads.

    The model version and hash are those of the seeded state, so artifacts stay traceable.
    """
    from boneage.model.configs import CONFIGS
    from boneage.model.networks import example_inputs

    cfg = CONFIGS[config_name]
    torch.manual_seed(seed)
    det, reg = build_stage("detector", cfg).eval(), build_stage("regressor", cfg).eval()
    buf = io.BytesIO()
    torch.save({"detector": det.state_dict(), "regressor": reg.state_dict()}, buf)
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    ex = example_inputs(cfg, 1)
    return Source(config_name, cfg.as_dict(),
                  {"detector": StageSpec(det, ex["detector"]), "regressor": StageSpec(reg, ex["regressor"])},
                  f"{config_name}-random{seed}-{sha[:8]}", sha, True)


def demo_engine(*, threads: int, fallbacks: list[str]) -> Any:
    """The last resort: eager fp32 on the committed demo weights (channels-last, no compilation)."""
    from boneage.engine.loader import CompiledStage, Engine

    src = from_checkpoint(None)
    det = CompiledStage(prepare(src.stages["detector"].module, "fp32"), "detector")
    reg = CompiledStage(prepare(src.stages["regressor"].module, "fp32"), "regressor")
    manifest = {"backend": "eager", "precision": "fp32", "config": src.config_name,
                "model_version": src.model_version, "weights_sha256": src.weights_sha256,
                "torch_version": torch.__version__, "demo": src.demo, "model_config": src.model_config,
                "input_shapes": {k: [list(t.shape) for t in s.inputs] for k, s in src.stages.items()},
                "files": {}, "fallback": True}
    return Engine(assessor=make_assessor(src.model_config, det, reg, src.model_version, src.demo),
                  manifest=manifest, backend="eager", precision="fp32", model_version=src.model_version,
                  detector_fn=det, regressor_fn=reg, artifact=None, threads=threads, fallbacks=fallbacks)
