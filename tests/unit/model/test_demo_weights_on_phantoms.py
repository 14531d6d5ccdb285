"""The committed demo weights on a few seeded phantoms: the QC decisions and a sane bone age.

A small smoke check of behaviour (the acceptance figures come from ``boneage evaluate`` on a
1,000-image held-out set, recorded in MODEL_CARD.md); thresholds are loose enough for 12 images.
"""

from __future__ import annotations

import numpy as np
import pytest

from boneage.errors import Reason
from boneage.model.weights import DEMO_WEIGHTS

pytestmark = pytest.mark.skipif(not DEMO_WEIGHTS.exists(), reason="demo weights not committed yet")
phantom = pytest.importorskip("boneage.phantom")


@pytest.fixture(scope="module")
def assessor():
    from boneage.model.pipeline import TwoStageAssessor
    from boneage.model.weights import load_checkpoint

    return TwoStageAssessor.from_checkpoint(load_checkpoint())


def _render(kind: str, n: int, seed: int):
    rng = np.random.default_rng(seed)
    return [phantom.render_sample(rng, kind=kind, size=512) for _ in range(n)]


def test_left_hands_are_found_and_aged_within_two_years(assessor):
    samples = _render("left", 6, 901)
    outs = assessor.assess_batch([im for im, _ in samples], ["M" if lab["male"] else "F" for _, lab in samples])
    assert sum(o.rejection is None for o in outs) >= 5
    errs = [abs(o.bone_age_months - lab["boneage"]) for o, (_, lab) in zip(outs, samples) if o.rejection is None]
    assert float(np.mean(errs)) < 24
    assert all(o.interval_months[0] <= o.bone_age_months <= o.interval_months[1] for o in outs if o.rejection is None)


def test_two_hands_and_non_hands_are_rejected(assessor):
    two = assessor.assess_batch([im for im, _ in _render("two_hands", 3, 902)], [None] * 3)
    none = assessor.assess_batch([im for im, _ in _render("non_hand", 3, 903)], [None] * 3)
    assert sum(o.rejection is not None and o.rejection[0] == Reason.MULTIPLE_HANDS for o in two) >= 2
    assert sum(o.rejection is not None and o.rejection[0] == Reason.NO_HAND_FOUND for o in none) >= 2


def test_right_hands_are_mirrored(assessor):
    outs = assessor.assess_batch([im for im, _ in _render("right", 3, 904)], ["F"] * 3)
    assert sum(bool(o.qc.get("mirrored")) for o in outs) >= 2



@pytest.fixture(scope="module")
def recalibrated(assessor):
    """The demo networks at the operating point ``boneage train --calibrate`` fitted on calibration seed
    8101 (children first; MODEL_CARD.md, "Near maturity"): the shipped checkpoint keeps threshold 0.5."""
    import copy

    other = copy.copy(assessor)
    other.cfg = assessor.cfg.with_updates(mature_threshold=0.7219, score_threshold=0.8037)
    return other


def test_a_near_mature_child_gets_a_capped_bone_age_with_its_interval_and_the_flag(recalibrated):
    # A boy at bone age 224 months, 4 months before the end of the standards: growth plates closing.
    image, _ = phantom.render_sample(np.random.default_rng(934), kind="left", bone_age_months=224.0, male=True,
                                     size=512, nuisance=False)
    out = recalibrated.assess(image, "M")
    assert out.rejection is None and out.qc["near_skeletal_maturity"] is True
    assert 200.0 <= out.bone_age_months <= 228.0
    assert out.interval_months[0] < out.bone_age_months and out.interval_months[1] <= 228.0


def test_an_adult_hand_is_rejected_as_skeletally_mature(assessor, recalibrated):
    image, labels = phantom.render_sample(np.random.default_rng(921), kind="adult", male=False, size=512)
    assert labels["boneage"] > 216.0
    for model in (assessor, recalibrated):
        out = model.assess(image, "F")
        assert out.rejection is not None and out.rejection.reason == Reason.SKELETALLY_MATURE
        assert out.bone_age_months is None
