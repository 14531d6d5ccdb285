"""Oracle decisions for end-to-end runs on random weights: a ``StageDecisions`` for the assessor's
injection point (``TwoStageAssessor.with_decisions``, ``boneage.model.pipeline``); benchmark only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from boneage.model.boxes import anchors, box_iou, encode


class OracleDecisions:
    """Random weights find no hand, so quality control would stop every upload before the regressor,
    the interpretation and the reports, and the end-to-end time would leave them out. For random-weight
    artifacts the bench keeps every network's compute and replaces only its *decisions*: the detector's
    outputs are overwritten to put one left hand at the phantom's true box, and the regressor's
    'skeletally mature' logit to 'not mature'. Every later stage then runs as for a real upload.

    Use: ``assessor.with_decisions(OracleDecisions(assessor.cfg))``, then ``next_box`` before each upload."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.anchors = anchors(cfg.detector)
        self.box = torch.zeros(4)

    def next_box(self, box_px: list[float], image_side: int) -> None:
        """The next upload's hand box, in pixels of its square ``image_side`` film."""
        self.box = torch.tensor(box_px, dtype=torch.float32) * (self.cfg.detector.image_size / image_side)

    def detected(self, outputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        cls, deltas, image_logits = (t.clone() for t in outputs[:3])
        k = int(box_iou(self.box[None], self.anchors)[0].argmax())
        cls.fill_(-20.0)
        cls[:, k, self.cfg.detector.classes.index("left_hand")] = 20.0
        deltas[:, k] = encode(self.box[None], self.anchors[k:k + 1])[0]
        return cls, deltas, torch.full_like(image_logits, -20.0)

    def regressed(self, outputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        age, sigma, male, mature = outputs[:4]
        return age, sigma, male, mature.clone().fill_(-20.0)
