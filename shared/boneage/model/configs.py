"""Model sizes: one frozen dataclass per stage, three named configurations.

``demo`` is trained here on CPU in about an hour (narrow networks, detector at 128 px, regressor at
160 px crops). ``clinical`` is the efficient CPU class: RepVGG (Ding et al., CVPR 2021,
arXiv:2101.03697) detector at 320 px and regressor at 448 px crops, about 4.5 + 10.8 = 15.3 GFLOP
per image in deploy form (``boneage.model.deploy``; 16.9 GFLOP in training form), all of it dense
3x3 convolutions, the operator CPUs run closest to peak. RepVGG-A0 matches ResNet-18-class ImageNet
accuracy (72.4 % top-1) at a fraction of Inception-v4's cost. The crop size is set by the bone age
literature, not ImageNet: models there read 384-512 px hand images because bone age is read from
small structures, the physes, epiphyses and carpals (Deeplasia crops 1.15x the hand
box to 512 px, PMC10776485; the RSNA 2017 challenge winners used about 500 px, Halabi et al.,
Radiology 2019). ``seed_equivalent`` is the reference product's architecture (RetinaNet ResNet-50-FPN
at 512 px + Inception-v4 at 299 px, 128 GFLOP); it exists to be benchmarked with random weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

DETECTOR_CLASSES = ("left_hand", "right_hand")
IMAGE_LABELS = ("inverted",)
# The wrist patch (``preprocess.wrist_patch``): 0.44 x 0.84 of the hand box's height, so 192 x 368 px
# keeps it within about 2.3x of a 1024 px film, where the residual physis is 1.4-3.2 px wide.
WRIST_SIZE = (192, 368)
WRIST_WIDTHS = (16, 24, 32, 48, 64)


@dataclass(frozen=True)
class DetectorConfig:
    backbone: str                        # "small" | "repvgg" | "resnet50"
    image_size: int                      # square letterbox side
    widths: tuple[int, ...] = ()         # small / repvgg: widths at strides 2, 4, 8, 16, 32
    depths: tuple[int, ...] = ()         # repvgg only: blocks in the stride 4, 8, 16, 32 stages
    fpn_channels: int = 64
    strides: tuple[int, ...] = (16, 32, 64)   # pyramid levels used by the heads
    head_convs: int = 2
    anchor_sizes: tuple[float, ...] = (64.0, 128.0, 256.0)   # sqrt(area) per level, pixels
    anchor_scales: tuple[float, ...] = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
    anchor_aspects: tuple[float, ...] = (1.0, 1.5, 2.0)    # height / width: hands are tall
    classes: tuple[str, ...] = DETECTOR_CLASSES
    image_labels: tuple[str, ...] = IMAGE_LABELS

    @property
    def anchors_per_cell(self) -> int:
        return len(self.anchor_scales) * len(self.anchor_aspects)


@dataclass(frozen=True)
class RegressorConfig:
    backbone: str                        # "small" | "repvgg" | "inception_v4"
    crop_size: int
    widths: tuple[int, ...] = ()
    depths: tuple[int, ...] = ()
    hidden: int = 64
    crop_margin: float = 1.15            # square crop side = margin * longest box side (Deeplasia uses 1.15)
    age_center: float = 120.0            # months; output = center + scale * raw (keeps the head well scaled)
    age_scale: float = 60.0
    # Wrist maturity stage (``boneage.model.wrist``): a small network on the proximal part of the hand
    # box (distal radius, ulna, carpals) at close to the working resolution, whose logit replaces the
    # crop's mature head. (0, 0) = no wrist stage (the regressor then takes two inputs).
    wrist_size: tuple[int, int] = (0, 0)     # patch height, width in pixels
    wrist_widths: tuple[int, ...] = ()       # channels of its five conv layers
    # The wrist stage reads the patch's ranks (``wrist.rank_equalise``) instead of its standardised
    # values, so that no increasing change of grey levels (gamma, exposure) can move its verdict. Opt-in
    # (``boneage train --stage wrist --wrist-equalise``): a stage fine-tuned to it for 1,125 steps was
    # gamma-proof but told adults from the oldest children less well than the shipped one (model card).
    wrist_equalise: bool = False

    @property
    def has_wrist(self) -> bool:
        return self.wrist_size[0] > 0 and self.wrist_size[1] > 0


@dataclass(frozen=True)
class ModelConfig:
    name: str
    detector: DetectorConfig
    regressor: RegressorConfig
    score_threshold: float = 0.5         # a hand counts when its best class score reaches this
    # Once one hand counts, a second detection (NMS-separate) at or above this also counts, so the film
    # is rejected as ``multiple_hands``: a rotated second hand often scores just under
    # ``score_threshold``, which is fitted against non-hand films. None = ``score_threshold``.
    second_hand_threshold: float | None = None
    nms_iou: float = 0.4
    inverted_threshold: float = 0.5
    # Maturity (``pipeline``): reject as skeletally mature at or above ``mature_threshold``; assess
    # with the near-maturity warning at or above ``near_mature_threshold``. Both are probabilities of
    # the regressor's mature logit; checkpoints fit the first on a calibration set.
    mature_threshold: float = 0.5
    near_mature_threshold: float = 0.5
    interval_z: float = 1.6449           # two-sided 90 % Gaussian quantile
    interval_scale: float = 1.0          # calibration factor on sigma, fitted on held-out data
    # Post-hoc linear recalibration of the mean, age = a + b * raw, fitted on a calibration set; it
    # removes the regression-to-the-mean tilt (young hands over-, old hands under-estimated).
    age_correction: tuple[float, float] = (0.0, 1.0)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        def tup(x: dict[str, Any]) -> dict[str, Any]:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in x.items()}

        d = dict(d)
        det = DetectorConfig(**tup(d.pop("detector")))
        reg = RegressorConfig(**tup(d.pop("regressor")))
        return cls(detector=det, regressor=reg, **d)

    def with_wrist(self, size: tuple[int, int] = (0, 0), widths: tuple[int, ...] = (),
                   equalise: bool = False) -> "ModelConfig":
        """This config with the regressor's wrist stage set to ``size``/``widths``/``equalise`` (the
        defaults: none)."""
        return self.with_updates(regressor={**self.as_dict()["regressor"], "wrist_size": size, "wrist_widths": widths,
                                            "wrist_equalise": equalise})

    def with_updates(self, **kw: Any) -> "ModelConfig":
        d = self.as_dict()
        d.update(kw)
        return ModelConfig.from_dict(d)


CONFIGS: dict[str, ModelConfig] = {
    "demo": ModelConfig(
        # Sized for CPU training on two shared cores: hands fill most of the film, so 128 px finds
        # them; 160 px crops keep the epiphyses several pixels wide.
        name="demo",
        detector=DetectorConfig(backbone="small", image_size=128, widths=(16, 24, 32, 64, 96),
                                fpn_channels=48, strides=(8, 16, 32), head_convs=2,
                                anchor_sizes=(32.0, 64.0, 128.0)),
        regressor=RegressorConfig(backbone="small", crop_size=160, widths=(16, 32, 48, 96, 128), hidden=64,
                                  wrist_size=WRIST_SIZE, wrist_widths=WRIST_WIDTHS),
    ),
    "clinical": ModelConfig(
        # RepVGG throughout: deployed, both stages are dense 3x3 conv + ReLU stacks (about 15 GFLOP
        # per image, see the module docstring). Detector: RepVGG-A0 stem and stages to stride 16
        # with stage 3 cut to 8 blocks and a 384-wide C5 (finding a hand that fills most of the film
        # needs little depth), at 320 px; RetinaNet's anchors of 4x the stride on P4-P6 (64-406 px
        # sqrt-area across scales) cover hand boxes of 40-95 % of the side.
        name="clinical",
        detector=DetectorConfig(backbone="repvgg", image_size=320, widths=(48, 48, 96, 192, 384),
                                depths=(2, 4, 8, 1), fpn_channels=128, strides=(16, 32, 64), head_convs=2,
                                anchor_sizes=(64.0, 128.0, 256.0)),
        # Regressor: RepVGG-A0 as published (widths 48/48/96/192/1280, depths 1/2/4/14/1) on 448 px crops.
        regressor=RegressorConfig(backbone="repvgg", crop_size=448, widths=(48, 48, 96, 192, 1280),
                                  depths=(2, 4, 14, 1), hidden=256,
                                  wrist_size=WRIST_SIZE, wrist_widths=WRIST_WIDTHS),
    ),
    "seed_equivalent": ModelConfig(
        name="seed_equivalent",
        # RetinaNet as published: P3-P7, 256-channel FPN, four 3x3 convs per head.
        detector=DetectorConfig(backbone="resnet50", image_size=512, fpn_channels=256,
                                strides=(8, 16, 32, 64, 128), head_convs=4,
                                anchor_sizes=(32.0, 64.0, 128.0, 256.0, 512.0)),
        regressor=RegressorConfig(backbone="inception_v4", crop_size=299, hidden=256),
    ),
}
