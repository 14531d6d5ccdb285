"""The weights an artifact is built from, and where the engine meets ``boneage.model``.

``Weights`` is a checkpoint (``from_checkpoint``) or seeded random weights for a named config
(``random_weights``), with both stages in their deploy forms and calibration inputs for int8.
``build_stage`` and ``make_assessor`` are the two calls the loader makes into the model package.
Kept apart so the builders and the loader depend on the model package only through these few
functions (and tests can build artifacts from stand-in modules without it); the loader imports
this module, never the other way round.
"""

from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from boneage.engine.build import Inputs, StageSpec

CALIBRATION_SEED = 4242
CALIBRATION_IMAGES = 32
CALIBRATION_KINDS = ("left",) * 6 + ("right", "two_hands", "non_hand", "adult")


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


def calibration_inputs(model_config: dict[str, Any] | Any, n: int = CALIBRATION_IMAGES,
                       seed: int = CALIBRATION_SEED) -> dict[str, list[Inputs]]:
    """Representative inputs per stage for int8 calibration, made the way the service makes them.

    Seeded phantom films (mostly single left hands, some right, two-hand, non-hand and adult films,
    with the phantom's exposure, rotation and inversion nuisances) at the service's ingest size,
    letterboxed for the detector; for the regressor, the hand crops (and wrist patches, where the config
    has a wrist stage) around the phantom's own box of each single-hand film, turned upright and left
    as the pipeline turns them (``preprocess.upright_left``), with male, female and unknown sex. None
    of these images is in the evaluation sets (own seed).
    """
    import numpy as np

    from boneage.model.preprocess import letterbox, square_crop, upright_left, wrist_patch
    from boneage.model.regressor import sex_onehot
    from boneage.imaging.ingest import SERVICE_TARGET_LONG_SIDE
    from boneage.phantom import render_sample

    cfg = _config(model_config)
    rng = np.random.default_rng(seed)
    detector: list[Inputs] = []
    regressor: list[Inputs] = []
    for i in range(n):
        image, labels = render_sample(rng, kind=CALIBRATION_KINDS[i % len(CALIBRATION_KINDS)],
                                      size=SERVICE_TARGET_LONG_SIDE)
        boxed, _ = letterbox(image, cfg.detector.image_size)
        detector.append((boxed[None],))
        if len(labels["hand_boxes"]) != 1:          # the service rejects these before the regressor
            continue
        # What the pipeline hands the regressor: the film turned back if inverted, a right hand mirrored.
        prepared, box = upright_left(image, labels["hand_boxes"][0], labels["inverted"], labels["mirrored"])
        crop = square_crop(prepared, box, cfg.regressor.crop_margin, cfg.regressor.crop_size)
        inputs: Inputs = (crop[None], sex_onehot([("M", "F", None)[i % 3]]))
        if cfg.regressor.has_wrist:
            inputs += (wrist_patch(prepared, box, cfg.regressor.wrist_size)[None],)
        regressor.append(inputs)
    return {"detector": detector, "regressor": regressor}


def _stages(model_config: dict[str, Any] | Any, det: nn.Module, reg: nn.Module) -> dict[str, StageSpec]:
    """Both stages with their deploy forms and (lazily made, shared) calibration inputs."""
    from boneage.model.deploy import deploy_form
    from boneage.model.networks import example_inputs

    cfg = _config(model_config)
    ex = example_inputs(cfg, 1)
    calibration = functools.cache(lambda: calibration_inputs(cfg))
    per_stage: Callable[[str], Callable[[], list[Inputs]]] = lambda name: (lambda: calibration()[name])  # noqa: E731
    return {name: StageSpec(net.eval(), ex[name], deploy=deploy_form(net), calibration=per_stage(name))
            for name, net in (("detector", det), ("regressor", reg))}


@dataclass
class Weights:
    """The weights an artifact is built from: both stages, what they are, and where they came from."""

    config_name: str
    model_config: dict[str, Any]
    stages: dict[str, StageSpec]
    model_version: str
    weights_sha256: str
    demo: bool


def from_checkpoint(path: str | None = None) -> Weights:
    """A checkpoint file (None: the committed demo weights)."""
    from boneage.model.weights import load_checkpoint

    ckpt = load_checkpoint(path)
    det, reg = build_stage("detector", ckpt.cfg), build_stage("regressor", ckpt.cfg)
    det.load_state_dict(ckpt.detector_state)
    reg.load_state_dict(ckpt.regressor_state)
    return Weights(ckpt.cfg.name, ckpt.cfg.as_dict(), _stages(ckpt.cfg, det, reg),
                  ckpt.model_version, ckpt.sha256, ckpt.demo)


def random_weights(config_name: str, seed: int = 0) -> Weights:
    """Seeded random weights for a named config: the benchmark's clinical and seed-equivalent workloads.

    The model version and hash are those of the seeded state, so artifacts stay traceable.
    """
    from boneage.model.configs import CONFIGS

    cfg = CONFIGS[config_name]
    torch.manual_seed(seed)
    det, reg = build_stage("detector", cfg).eval(), build_stage("regressor", cfg).eval()
    buf = io.BytesIO()
    torch.save({"detector": det.state_dict(), "regressor": reg.state_dict()}, buf)
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    return Weights(config_name, cfg.as_dict(), _stages(cfg, det, reg), f"{config_name}-random{seed}-{sha[:8]}", sha, True)

