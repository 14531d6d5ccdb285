"""QC decisions of TwoStageAssessor on synthetic cases.

The detector and regressor are replaced by callables that emit chosen raw outputs (logits and box
deltas for chosen boxes), so each test pins what the pipeline decides from those outputs: the
anchor decoding, NMS, letterbox geometry, mirroring, inversion and rejection logic all run for real.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from boneage.errors import Reason
from boneage.model.boxes import anchors, box_iou, encode
from boneage.model.configs import CONFIGS
from boneage.model.pipeline import TwoStageAssessor, maturity_decision_probability
from boneage.model.types import QcRejection
from boneage.model.preprocess import square_crop, wrist_patch

CFG = CONFIGS["demo"]
S = CFG.detector.image_size
IMG = 2 * S            # square source images: detector coordinates are source / 2


def fake_detector(hands: list[tuple], inverted: bool = False):
    """Detector emitting the given (source box, class[, logit]) hands, each on its best-matching anchor
    (logit 10 unless given)."""
    anc = anchors(CFG.detector)

    def fn(x: torch.Tensor):
        b = x.shape[0]
        cls = torch.full((b, anc.shape[0], len(CFG.detector.classes)), -10.0)
        deltas = torch.zeros(b, anc.shape[0], 4)
        for box, label, *logit in hands:
            det_box = torch.tensor([box]) / 2
            k = int(box_iou(det_box, anc)[0].argmax())
            cls[:, k, CFG.detector.classes.index(label)] = logit[0] if logit else 10.0
            deltas[:, k] = encode(det_box, anc[k:k + 1])[0]
        img = torch.full((b, 1), 10.0 if inverted else -10.0)
        return cls, deltas, img

    return fn


class FakeRegressor:
    def __init__(self, age=100.0, sigma=6.0, male_logit=2.0, mature_logit=-5.0):
        self.out = (age, sigma, male_logit, mature_logit)
        self.crops: list[torch.Tensor] = []
        self.sexes: list[torch.Tensor] = []
        self.wrists: list[torch.Tensor] = []

    def __call__(self, crop, sex, wrist=None):
        self.crops.append(crop)
        self.sexes.append(sex)
        self.wrists.append(wrist)
        return tuple(torch.full((crop.shape[0],), v) for v in self.out)


def image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((IMG, IMG), dtype=np.float32)


HAND = [60.0, 40.0, 180.0, 230.0]


def assessor(hands, inverted=False, **reg):
    r = FakeRegressor(**reg)
    return TwoStageAssessor(CFG, fake_detector(hands, inverted), r, "test-v", demo=True), r


def test_no_detection_is_rejected_as_no_hand_found():
    a, r = assessor([])
    out = a.assess(image(), "F")
    assert out.rejection == QcRejection(Reason.NO_HAND_FOUND, "no hand was found in the image")
    assert out.rejection.reason == "no_hand_found"       # the stable code, as a plain string compares
    assert out.bone_age_months is None and not r.crops


def test_two_separate_hands_are_rejected_as_multiple_hands():
    a, _ = assessor([([10.0, 20.0, 110.0, 220.0], "right_hand"), ([140.0, 30.0, 250.0, 240.0], "left_hand")])
    out = a.assess(image(), "M")
    assert out.rejection[0] == Reason.MULTIPLE_HANDS
    assert out.qc["hand_count"] == 2


def test_a_second_hand_counts_from_the_second_hand_threshold_once_the_first_reaches_the_hand_threshold():
    cfg = CFG.with_updates(score_threshold=0.8, second_hand_threshold=0.5)
    right, left = [10.0, 20.0, 110.0, 220.0], [140.0, 30.0, 250.0, 240.0]
    weak = float(np.log(0.6 / 0.4))                            # score 0.6: under 0.8, over 0.5
    for second_threshold, want in ((0.5, Reason.MULTIPLE_HANDS), (None, None), (0.7, None)):
        a = TwoStageAssessor(cfg.with_updates(second_hand_threshold=second_threshold),
                             fake_detector([(right, "right_hand"), (left, "left_hand", weak)]), FakeRegressor(),
                             "test-v", demo=True)
        out = a.assess(image(), "M")
        assert (out.rejection.reason if out.rejection else None) == want, second_threshold
        assert out.qc["second_hand_score"] == pytest.approx(0.6, abs=1e-3)
        assert out.qc["detection_score"] > 0.99                 # the best detection's, whatever counted
        assert out.qc["hand_count"] == (2 if want else 1) == len(out.regions)
    # A second-hand threshold above the hand threshold never hides a second hand that reaches the latter.
    strong = float(np.log(0.85 / 0.15))
    a = TwoStageAssessor(cfg.with_updates(second_hand_threshold=0.95),
                         fake_detector([(right, "right_hand"), (left, "left_hand", strong)]), FakeRegressor(),
                         "test-v", demo=True)
    assert a.assess(image(), "M").rejection.reason == Reason.MULTIPLE_HANDS
    # A weak detection alone is no hand, whatever the second-hand threshold.
    a = TwoStageAssessor(cfg, fake_detector([(left, "left_hand", weak)]), FakeRegressor(), "test-v", demo=True)
    assert a.assess(image(), "M").rejection.reason == Reason.NO_HAND_FOUND


def test_left_hand_is_assessed_with_box_in_source_pixels_and_90_percent_interval():
    a, r = assessor([(HAND, "left_hand")], age=100.0, sigma=6.0)
    out = a.assess(image(), "F")
    assert out.rejection is None and out.model_version == "test-v"
    assert out.bone_age_months == pytest.approx(100.0)
    half = CFG.interval_z * 6.0 * CFG.interval_scale
    assert out.interval_months == pytest.approx((100.0 - half, 100.0 + half))
    assert [out.hand_box.x0, out.hand_box.y0, out.hand_box.x1, out.hand_box.y1] == pytest.approx(HAND, abs=0.5)
    assert out.qc["mirrored"] is False and out.qc["inverted"] is False
    assert r.sexes[0].tolist() == [[0.0, 1.0, 0.0]]


def test_right_hand_is_mirrored_before_regression_and_flagged():
    img = image(1)
    a, r = assessor([(HAND, "right_hand")])
    out = a.assess(img, "M")
    assert out.qc["mirrored"] is True and out.rejection is None
    mirrored_box = [IMG - HAND[2], HAND[1], IMG - HAND[0], HAND[3]]
    want = square_crop(img[:, ::-1], mirrored_box, CFG.regressor.crop_margin, CFG.regressor.crop_size)
    torch.testing.assert_close(r.crops[0][0], want, atol=2e-3, rtol=0)
    # The wrist stage reads the same mirrored hand: the proximal part of its box.
    torch.testing.assert_close(r.wrists[0][0], wrist_patch(img[:, ::-1], mirrored_box, CFG.regressor.wrist_size),
                               atol=2e-3, rtol=0)


def test_inverted_image_is_flipped_back_before_regression_and_flagged():
    img = image(2)
    a, r = assessor([(HAND, "left_hand")], inverted=True)
    out = a.assess(img, "F")
    assert out.qc["inverted"] is True
    want = square_crop(1.0 - img, HAND, CFG.regressor.crop_margin, CFG.regressor.crop_size)
    torch.testing.assert_close(r.crops[0][0], want, atol=2e-3, rtol=0)
    torch.testing.assert_close(r.wrists[0][0], wrist_patch(1.0 - img, HAND, CFG.regressor.wrist_size),
                               atol=2e-3, rtol=0)


@pytest.fixture
def wrist_judged_at_any_size(monkeypatch):
    """These synthetic films are 256 px, their hands' wrist windows 84 px: let the maturity decision
    apply there (the resolution gate has its own test below)."""
    from boneage.model import pipeline

    monkeypatch.setattr(pipeline, "MIN_WRIST_WINDOW_PX", 0.0)


def test_a_wrist_window_with_too_few_pixels_cannot_turn_a_hand_away(monkeypatch):
    from boneage.model import pipeline

    window = 0.44 * (HAND[3] - HAND[1])                     # 83.6 source pixels
    for minimum, rejected in ((window - 1, True), (window + 1, False)):
        monkeypatch.setattr(pipeline, "MIN_WRIST_WINDOW_PX", minimum)
        a, _ = assessor([(HAND, "left_hand")], age=180.0, mature_logit=4.0)
        out = a.assess(image(), "M")
        assert (out.rejection is not None) is rejected
        if not rejected:
            assert out.qc["maturity_not_judged"] == "wrist_resolution" and out.bone_age_months == 180.0
            assert out.qc["near_skeletal_maturity"] is True           # its probability, 0.98, still warns
            assert maturity_decision_probability(out) == 0.0          # and no threshold could reject it
    # Both reasons at once: the resolution is named, and a hand placed before any fusion is not warned.
    monkeypatch.setattr(pipeline, "MIN_WRIST_WINDOW_PX", window + 1)
    a, _ = assessor([(HAND, "left_hand")], age=100.0, mature_logit=4.0)
    out = a.assess(image(), "M")
    assert out.rejection is None and out.qc["maturity_not_judged"] == "wrist_resolution"
    assert out.qc["near_skeletal_maturity"] is False
    # A config without a wrist stage decides on the crop at any size.
    no_wrist = CFG.with_wrist()
    a = TwoStageAssessor(no_wrist, fake_detector([(HAND, "left_hand")]), FakeRegressor(age=220.0, mature_logit=4.0),
                         "test-v", demo=True)
    assert a.assess(image(), "M").rejection.reason == Reason.SKELETALLY_MATURE


@pytest.mark.usefixtures("wrist_judged_at_any_size")
def test_mature_hand_is_rejected_as_skeletally_mature():
    a, _ = assessor([(HAND, "left_hand")], age=220.0, mature_logit=4.0)
    out = a.assess(image(), "M")
    assert out.rejection[0] == Reason.SKELETALLY_MATURE and out.bone_age_months is None
    assert out.qc["bone_age_estimate_months"] == pytest.approx(220.0)


@pytest.mark.usefixtures("wrist_judged_at_any_size")
@pytest.mark.parametrize("age", [7.0, 143.0])
def test_a_hand_the_regressor_places_before_any_fusion_is_assessed_whatever_the_wrist_stage_says(age):
    a, _ = assessor([(HAND, "left_hand")], age=age, mature_logit=4.0)
    out = a.assess(image(), "F")
    assert out.rejection is None and out.bone_age_months == pytest.approx(age)
    assert out.qc["maturity_not_judged"] == "bone_age_estimate"
    assert out.qc["near_skeletal_maturity"] is False      # an infant is not near maturity, whatever p says
    # From the earliest fusion on, the wrist stage decides again.
    a, _ = assessor([(HAND, "left_hand")], age=145.0, mature_logit=4.0)
    out = a.assess(image(), "F")
    assert out.rejection is not None and out.rejection.reason == Reason.SKELETALLY_MATURE
    assert "maturity_not_judged" not in out.qc
    # A hand the wrist stage does not call mature is untouched by the rule.
    a, _ = assessor([(HAND, "left_hand")], age=age, mature_logit=-4.0)
    assert "maturity_not_judged" not in a.assess(image(), "F").qc


@pytest.mark.usefixtures("wrist_judged_at_any_size")
def test_calibration_sees_the_probability_the_threshold_can_act_on():
    """A hand the 144-month rule or the wrist's resolution keeps from any rejection counts as 0.0 for
    the threshold's fit, at any threshold: a 100-month hand at p 0.6 could not be rejected by 0.5 either."""
    from boneage.model.evaluation import _children_maturity

    outs = {}
    for name, age, logit in (("young", 100.0, _logit(0.6)), ("old", 200.0, _logit(0.6)), ("fused", 220.0, 4.0),
                             ("young_fused_looking", 120.0, 4.0)):
        a, _ = assessor([(HAND, "left_hand")], age=age, mature_logit=logit)
        outs[name] = a.assess(image(), "M")
    assert outs["fused"].rejection is not None                     # a rejected hand keeps its probability
    got = {k: maturity_decision_probability(o) for k, o in outs.items()}
    assert got == {"young": 0.0, "old": pytest.approx(0.6, abs=1e-3), "fused": pytest.approx(0.982, abs=1e-3),
                   "young_fused_looking": 0.0}
    # Calibration moves the estimate to the age correction it is fitting: the rule follows it.
    assert maturity_decision_probability(outs["young_fused_looking"], lambda e: e + 30.0) == pytest.approx(0.982,
                                                                                                        abs=1e-3)
    assert maturity_decision_probability(outs["old"], lambda e: e - 60.0) == 0.0
    none, _ = assessor([])
    assert maturity_decision_probability(none.assess(image(), "M")) is None
    rows = [{"boneage": "110"}, {"boneage": "205"}, {"boneage": ""}]
    assert _children_maturity(rows, [outs["young"], outs["old"], outs["old"]]) == ([110.0, 205.0], [0.0, got["old"]])


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def near_mature_assessor(age: float, p_mature: float):
    """Maturity decided above 0.9, near maturity flagged from 0.5: the fake regressor's probability
    falls between them or beyond."""
    r = FakeRegressor(age=age, mature_logit=_logit(p_mature))
    cfg = CFG.with_updates(mature_threshold=0.9, near_mature_threshold=0.5)
    return TwoStageAssessor(cfg, fake_detector([(HAND, "left_hand")]), r, "test-v", demo=True)


def test_near_mature_hand_gets_a_bone_age_with_its_interval_and_the_flag():
    out = near_mature_assessor(200.0, 0.7).assess(image(), "M")
    assert out.rejection is None and out.bone_age_months == pytest.approx(200.0)
    assert out.qc["near_skeletal_maturity"] is True
    assert out.interval_months[0] < 200.0 < out.interval_months[1]


@pytest.mark.parametrize("sex, top", [("M", 228.0), ("F", 216.0), (None, 228.0)])
def test_bone_age_and_interval_are_capped_at_the_end_of_the_standards(sex, top):
    out = near_mature_assessor(235.0, 0.2).assess(image(), sex)
    assert out.rejection is None and out.bone_age_months == top
    assert out.interval_months[1] == top and out.interval_months[0] < top
    assert out.qc["near_skeletal_maturity"] is True and out.qc["bone_age_estimate_months"] == pytest.approx(235.0)


def test_bone_age_in_the_last_year_of_the_standards_is_near_maturity_whatever_the_mature_logit():
    assert near_mature_assessor(206.0, 0.01).assess(image(), "F").qc["near_skeletal_maturity"] is True
    assert near_mature_assessor(200.0, 0.01).assess(image(), "F").qc["near_skeletal_maturity"] is False


@pytest.mark.usefixtures("wrist_judged_at_any_size")
def test_only_a_hand_past_the_standards_is_rejected_as_skeletally_mature():
    out = near_mature_assessor(226.0, 0.95).assess(image(), "M")
    assert out.rejection is not None and out.rejection.reason == Reason.SKELETALLY_MATURE
    assert out.bone_age_months is None and "Greulich & Pyle" in out.rejection.message


@pytest.mark.parametrize("sex", [None, "", "O", "U"])
def test_unknown_sex_gives_a_sex_agnostic_estimate_and_a_predicted_sex(sex):
    a, r = assessor([(HAND, "left_hand")], male_logit=-3.0)
    out = a.assess(image(), sex)
    assert out.sex_used is None
    assert out.predicted_sex == "F" and out.predicted_sex_probability_male < 0.1
    assert r.sexes[0].tolist() == [[0.0, 0.0, 1.0]]


def test_known_sex_is_used_and_not_predicted():
    a, _ = assessor([(HAND, "left_hand")])
    out = a.assess(image(), "M")
    assert out.sex_used == "M" and out.predicted_sex is None


def test_batch_keeps_order_and_regresses_only_accepted_images():
    a, r = assessor([(HAND, "left_hand")])
    outs = a.assess_batch([image(3), image(4), image(5)], ["M", None, "F"])
    assert [o.rejection for o in outs] == [None, None, None]
    assert r.crops[0].shape[0] == 3
    assert outs[1].sex_used is None and outs[0].sex_used == "M"


def test_non_square_image_box_maps_back_through_the_letterbox():
    img = np.zeros((IMG, IMG // 2), np.float32)     # portrait: padded left and right in the letterbox
    box = [20.0, 50.0, 100.0, 200.0]
    # The fake detector works in square-source/2 coordinates; shift the box by the letterbox pad.
    pad = (S - S // 2) // 2 * 2
    a, _ = assessor([([box[0] + pad, box[1], box[2] + pad, box[3]], "left_hand")])
    out = a.assess(img, "F")
    assert [out.hand_box.x0, out.hand_box.y0, out.hand_box.x1, out.hand_box.y1] == pytest.approx(box, abs=1.0)


def test_age_correction_and_interval_scale_from_the_config_are_applied():
    cfg = CFG.with_updates(age_correction=(-10.0, 1.2), interval_scale=1.5)
    a = TwoStageAssessor(cfg, fake_detector([(HAND, "left_hand")]), FakeRegressor(age=100.0, sigma=5.0), "v", True)
    out = a.assess(image(), "M")
    assert out.bone_age_months == pytest.approx(110.0)
    half = CFG.interval_z * 5.0 * 1.2 * 1.5
    assert out.interval_months == pytest.approx((110.0 - half, 110.0 + half))


class MatureDecisions:
    """A ``StageDecisions`` that keeps the detector's outputs and calls every hand skeletally mature (and
    old enough for that to be possible)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def detected(self, outputs):
        self.calls.append("detected")
        return outputs

    def regressed(self, outputs):
        self.calls.append("regressed")
        age, sigma, male, mature = outputs[:4]
        return torch.full_like(age, 220.0), sigma, male, torch.full_like(mature, 10.0)


@pytest.mark.usefixtures("wrist_judged_at_any_size")
def test_injected_decisions_rewrite_stage_outputs_before_qc_in_a_copy_of_the_assessor():
    base = TwoStageAssessor(CFG, fake_detector([(HAND, "left_hand")]), FakeRegressor(), "test", demo=True)
    decisions = MatureDecisions()
    injected = base.with_decisions(decisions)
    out = injected.assess(image(), "F")
    assert out.rejection is not None and out.rejection[0] == Reason.SKELETALLY_MATURE
    assert decisions.calls == ["detected", "regressed"]
    assert base.decisions is None and base.assess(image(), "F").rejection is None    # the original is untouched


def test_with_stages_swaps_only_the_stages_given():
    reg = FakeRegressor()
    base = TwoStageAssessor(CFG, fake_detector([(HAND, "left_hand")]), reg, "test", demo=True)
    seen: list[int] = []

    def counted(*args):
        seen.append(args[0].shape[0])
        return base.detector_fn(*args)

    timed = base.with_stages(detector_fn=counted)
    assert timed.regressor_fn is reg and base.detector_fn is not counted
    assert timed.assess(image(), "F").rejection is None and seen == [1]
