"""Two-stage assessment with quality control: detector -> QC decisions -> crop -> regressor.

``TwoStageAssessor`` takes the two stages as plain callables on tensors, so the eager modules,
TorchScript, torch.export or AOTInductor artifacts all plug in the same way. QC (reason codes from
``boneage.errors.Reason``):
- no hand above the score threshold -> ``no_hand_found``; two or more -> ``multiple_hands`` (a second
  hand counts from ``second_hand_threshold``, fitted on a calibration set, once the first counts);
- a hand classified ``right_hand`` is mirrored to a left hand before regression (``qc["mirrored"]``);
- the detector's image-level ``inverted`` logit flags a negative, which is flipped back before
  regression (``qc["inverted"]``);
- maturity: the Greulich & Pyle standards end at 228 months (boys) and 216 months (girls), and a
  hand whose growth plates are closing still has a bone age there. Only a hand the ``mature`` logit
  (the wrist stage's, ``boneage.model.wrist``, when the config has one) puts past the end of the
  standards (``mature_threshold``, fitted on a calibration set of children and adults) is rejected as
  ``skeletally_mature``. A near-mature hand (``mature`` probability at or
  above ``near_mature_threshold``, or a bone age in the standards' last ``NEAR_MATURITY_MONTHS``) is
  assessed: its bone age and interval are capped at the top of the reference for the sex, and
  ``qc["near_skeletal_maturity"]`` is set for the report's warning. A wrist window with too few source
  pixels (``MIN_WRIST_WINDOW_PX``) cannot reject, nor can the wrist stage turn away a hand the regressor
  places before any growth plate fuses (``MATURITY_MIN_ESTIMATE_MONTHS``): ``qc["maturity_not_judged"]``.

Two documented injection points serve measurement, never the service: ``with_stages`` wraps or swaps
the two stage callables (the benchmark times them), and ``with_decisions`` rewrites what the networks
decided before QC reads it (``StageDecisions``; the benchmark's oracle lets random weights reach the
regressor and every later stage). Both return a new assessor and leave this one as it was.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import Reason
from .boxes import postprocess
from .configs import ModelConfig
from .preprocess import letterbox, square_crop, upright_left, wrist_cut
from .regressor import sex_onehot
from .types import Box, ModelOutput, QcRejection

TensorFn = Callable[..., Sequence[torch.Tensor]]
MAX_BONE_AGE_MONTHS = 240.0
# The last bone age of the Greulich & Pyle standards by sex (19 y boys, 18 y girls); unknown sex
# gets the later one, so a sex-agnostic estimate is never cut below what either standard allows.
REFERENCE_TOP_MONTHS = {"M": 228.0, "F": 216.0, None: 228.0}
# A bone age in the last year of the standards is near maturity, whatever the mature logit says.
NEAR_MATURITY_MONTHS = 12.0
# The wrist stage reads a physis 1.4-3.2 px wide on a 1024 px film, with at least 245 source pixels in
# its window's height in training. With fewer than this (a hand box under about 390 px tall) it sees
# open plates as fused: phantom children at 256-384 px were rejected 3-33 % by window height (0 % from
# 170 px up). Below it the wrist stage may not turn a hand away: the hand is assessed, near maturity
# flagged as usual, and ``qc["maturity_not_judged"]`` says why no rejection was possible.
MIN_WRIST_WINDOW_PX = 170.0
# No hand epiphysis starts to fuse before about 12 years of bone age (girls 12-18 years, boys 16-18;
# Gilsanz-Ratib, in the project's domain reference), so a hand the regressor places below this is not
# past the end of the standards, whatever the wrist stage says: it is assessed, its maturity is not
# judged (``qc["maturity_not_judged"] = "bone_age_estimate"``) and the wrist stage's probability does
# not flag it near maturity. Under the +-25 degree rotation of held-out seed 13919, infants of 3 and 9
# months on films tilted 55 degrees in all were taken for adults while the regressor put them at 7 and
# 15 months; adults the wrist stage rejects are estimated from about 190 months up.
MATURITY_MIN_ESTIMATE_MONTHS = 144.0
# Detections below this score are never looked at: ``qc["detection_score"]`` (the best detection's score,
# what calibration fits ``score_threshold`` on) and ``qc["second_hand_score"]`` (the best after it, what
# it fits ``second_hand_threshold`` on) are reported from here up.
SECOND_HAND_SCORE_FLOOR = 0.2


def maturity_decision_probability(out: ModelOutput, recorrect: Callable[[float], float] | None = None
                                  ) -> float | None:
    """The mature probability the maturity threshold acts on for ``out``: the wrist stage's, or 0.0
    where no threshold could reject the hand (its wrist window is too small, or the regressor places
    it below ``MATURITY_MIN_ESTIMATE_MONTHS``); None where the regressor did not run. Calibration fits
    ``mature_threshold`` on these, so that hands the threshold cannot reach do not hold it up; it
    passes ``recorrect`` to move the estimate made with the checkpoint's age correction to the one
    it is fitting, which serving will apply the 144-month rule to."""
    p = out.qc.get("mature_probability")
    if p is None:
        return None
    if out.qc.get("maturity_not_judged") == "wrist_resolution":
        return 0.0
    estimate = out.estimate_months
    if estimate is not None and recorrect is not None:
        estimate = recorrect(estimate)
    if estimate is not None and estimate < MATURITY_MIN_ESTIMATE_MONTHS:
        return 0.0
    return float(p)


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


class StageDecisions(Protocol):
    """Rewrites the networks' outputs after each stage ran and before QC reads them.

    ``detected`` gets the detector's outputs (class logits, box deltas, image-level logits) and
    ``regressed`` the regressor's (age, sigma, male logit, mature logit); each returns tensors of
    the same shapes. The stages' compute is unchanged; only their decisions are replaced, so every
    later stage runs as it would for a real result. For benchmarks on random weights
    (``boneage.bench.oracle.OracleDecisions``), never for serving."""

    def detected(self, outputs: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]: ...

    def regressed(self, outputs: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]: ...


class TwoStageAssessor:
    def __init__(self, cfg: ModelConfig, detector_fn: TensorFn, regressor_fn: TensorFn,
                 model_version: str, demo: bool, decisions: StageDecisions | None = None) -> None:
        self.cfg = cfg
        self.detector_fn = detector_fn
        self.regressor_fn = regressor_fn
        self.model_version = model_version
        self.demo = demo
        self.decisions = decisions

    def with_stages(self, detector_fn: TensorFn | None = None, regressor_fn: TensorFn | None = None
                    ) -> TwoStageAssessor:
        """A copy that runs these stage callables instead (``None`` keeps the current one), e.g. the
        same stages wrapped in a timer."""
        other = copy.copy(self)
        other.detector_fn = detector_fn or self.detector_fn
        other.regressor_fn = regressor_fn or self.regressor_fn
        return other

    def with_config(self, cfg: ModelConfig) -> TwoStageAssessor:
        """A copy that decides with this config (thresholds, calibration); the networks are unchanged."""
        other = copy.copy(self)
        other.cfg = cfg
        return other

    def with_decisions(self, decisions: StageDecisions | None) -> TwoStageAssessor:
        """A copy whose stage outputs pass through ``decisions`` before QC (see ``StageDecisions``)."""
        other = copy.copy(self)
        other.decisions = decisions
        return other

    @classmethod
    def from_checkpoint(cls, ckpt: Any) -> "TwoStageAssessor":
        """The eager assessor from a ``weights.Checkpoint``."""
        from .networks import build_detector, build_regressor

        det = build_detector(ckpt.cfg)
        det.load_state_dict(ckpt.detector_state)
        reg = build_regressor(ckpt.cfg)
        reg.load_state_dict(ckpt.regressor_state)
        det.eval()
        reg.eval()
        return cls(ckpt.cfg, det, reg, ckpt.model_version, ckpt.demo)

    def assess(self, image: np.ndarray, sex: str | None) -> ModelOutput:
        return self.assess_batch([image], [sex])[0]

    @torch.inference_mode()
    def assess_batch(self, images: Sequence[np.ndarray], sexes: Sequence[str | None]) -> list[ModelOutput]:
        cfg = self.cfg
        t0 = time.perf_counter()
        boxed = [letterbox(np.asarray(im, dtype=np.float32), cfg.detector.image_size) for im in images]
        detected = self.detector_fn(torch.stack([b[0] for b in boxed]))
        if self.decisions is not None:
            detected = self.decisions.detected(detected)
        cls_logits, deltas, image_logits = detected[:3]
        t_det = (time.perf_counter() - t0) * 1000 / max(len(images), 1)

        outputs: list[ModelOutput] = []
        pending: list[tuple[int, np.ndarray, np.ndarray]] = []   # (index, prepared image, source box)
        # Never above the hand threshold: a second detection that reaches it counts whatever else was fitted.
        second = cfg.score_threshold if cfg.second_hand_threshold is None else min(cfg.second_hand_threshold,
                                                                                   cfg.score_threshold)
        floor = min(cfg.score_threshold, second, SECOND_HAND_SCORE_FLOOR)
        for i, (image, (_, geo)) in enumerate(zip(images, boxed)):
            boxes, scores, labels = postprocess(cls_logits[i], deltas[i], cfg.detector,
                                                score_threshold=floor, nms_iou=cfg.nms_iou)
            # The best detection must reach the hand threshold; once it does, every other (NMS-separate)
            # one at or above the second-hand threshold counts as a hand too.
            counted = torch.zeros(len(scores), dtype=torch.bool)
            if len(scores) and scores[0] >= cfg.score_threshold:
                counted = scores >= second
                counted[0] = True
            p_inv = _sigmoid(float(image_logits[i, 0]))
            qc: dict[str, Any] = {"hand_count": int(counted.sum()), "inverted": p_inv >= cfg.inverted_threshold,
                                  "inverted_probability": round(p_inv, 4), "mirrored": False,
                                  "detection_score": round(float(scores[0]), 4) if len(scores) else None,
                                  "second_hand_score": round(float(scores[1]), 4) if len(scores) > 1 else None}
            boxes, scores, labels = boxes[counted], scores[counted], labels[counted]
            out = ModelOutput(None, None, None, model_version=self.model_version, qc=qc)
            outputs.append(out)
            src_boxes = [geo.to_source(b.tolist()) for b in boxes]
            for b, s, lab in zip(src_boxes, scores.tolist(), labels.tolist()):
                out.regions.append(Box(*(float(v) for v in b), score=float(s), label=cfg.detector.classes[lab]))
            if not len(boxes):
                out.rejection = QcRejection(Reason.NO_HAND_FOUND, "no hand was found in the image")
                continue
            if len(boxes) > 1:
                out.rejection = QcRejection(Reason.MULTIPLE_HANDS,
                                            f"{len(boxes)} hands were found; upload one left hand per image")
                continue
            box = np.clip(src_boxes[0], 0, [image.shape[1], image.shape[0]] * 2)
            qc["hand_score"] = round(float(scores[0]), 4)
            qc["hand_label"] = cfg.detector.classes[int(labels[0])]
            # The hand box is reported in the coordinates of the image as given, before mirroring.
            out.hand_box = Box(*(float(v) for v in box), score=float(scores[0]), label=qc["hand_label"])
            qc["mirrored"] = qc["hand_label"] == "right_hand"
            prepared, box = upright_left(image, box, qc["inverted"], qc["mirrored"])
            pending.append((i, prepared, box))

        t1 = time.perf_counter()
        if pending:
            crops = torch.stack([square_crop(p, b, cfg.regressor.crop_margin, cfg.regressor.crop_size)
                                 for _, p, b in pending])
            inputs = [crops, sex_onehot([sexes[i] for i, _, _ in pending])]
            window_px: list[float] = []
            if cfg.regressor.has_wrist:
                cuts = [wrist_cut(p, b, cfg.regressor.wrist_size) for _, p, b in pending]
                inputs.append(torch.stack([patch for patch, _ in cuts]))
                window_px = [height for _, height in cuts]
            regressed = self.regressor_fn(*inputs)
            if self.decisions is not None:
                regressed = self.decisions.regressed(regressed)
            age, sigma, male_logit, mature_logit = regressed[:4]
            for j, (i, _, _) in enumerate(pending):
                if cfg.regressor.has_wrist and window_px[j] < MIN_WRIST_WINDOW_PX:
                    outputs[i].qc["maturity_not_judged"] = "wrist_resolution"
                self._fill(outputs[i], sexes[i], float(age[j]), float(sigma[j]), float(male_logit[j]),
                           float(mature_logit[j]))
        t_reg = (time.perf_counter() - t1) * 1000 / max(len(pending), 1)
        for o in outputs:
            o.qc["timings_ms"] = {"detect": round(t_det, 2), "regress": round(t_reg, 2)}
        return outputs

    def _fill(self, out: ModelOutput, sex: str | None, age: float, sigma: float, male_logit: float,
              mature_logit: float) -> None:
        cfg = self.cfg
        p_mature = _sigmoid(mature_logit)
        out.qc["mature_probability"] = round(p_mature, 4)
        a, b = cfg.age_correction
        age = float(np.clip(a + b * age, 0.0, MAX_BONE_AGE_MONTHS))
        sigma = sigma * abs(b)
        out.qc["sigma_months"] = round(sigma, 3)
        half = cfg.interval_z * sigma * cfg.interval_scale
        out.sex_used = sex if sex in ("M", "F") else None
        if out.sex_used is None:
            p_male = _sigmoid(male_logit)
            out.predicted_sex = "M" if p_male >= 0.5 else "F"
            out.predicted_sex_probability_male = round(p_male, 4)
        below_fusion = age < MATURITY_MIN_ESTIMATE_MONTHS
        if below_fusion and p_mature >= cfg.mature_threshold:
            out.qc.setdefault("maturity_not_judged", "bone_age_estimate")
        if p_mature >= cfg.mature_threshold and "maturity_not_judged" not in out.qc:
            out.qc["bone_age_estimate_months"] = round(age, 1)
            out.rejection = QcRejection(Reason.SKELETALLY_MATURE,
                                        "the hand is skeletally mature (growth plates fused, past the end of the "
                                        "Greulich & Pyle standards): bone age is not defined")
            return
        top = REFERENCE_TOP_MONTHS[out.sex_used]
        near = (p_mature >= cfg.near_mature_threshold and not below_fusion) or age >= top - NEAR_MATURITY_MONTHS
        out.qc["near_skeletal_maturity"] = bool(near)
        if age > top:
            out.qc["bone_age_estimate_months"] = round(age, 1)
        # A capped estimate keeps the interval's lower half below the cap: the standards end there.
        out.bone_age_months = min(age, top)
        out.interval_months = (max(out.bone_age_months - half, 0.0), min(age + half, top))
