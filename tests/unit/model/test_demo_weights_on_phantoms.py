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



def test_near_mature_children_get_a_capped_bone_age_with_their_interval_and_the_flag(assessor):
    # Boys at bone age 224 months and girls at 212, 4 months before the end of their standards: growth
    # plates closing (the phantom keeps a thin physis at the distal radius and ulna). None is turned
    # away; each gets a bone age and interval within the reference. The wrist stage reads the open
    # physis (mature probability well below 0.5), so the flag follows the estimate: the boys, estimated
    # in their standards' last year, carry it; girls estimated more than a year before the end do not.
    flags = {}
    for male, age, top in ((True, 224.0, 228.0), (False, 212.0, 216.0)):
        images = [phantom.render_sample(np.random.default_rng(930 + i), kind="left", bone_age_months=age, male=male,
                                        size=512, nuisance=False)[0] for i in range(8)]
        flags[male] = 0
        for out in assessor.assess_batch(images, ["M" if male else "F"] * 8):
            assert out.rejection is None
            assert age - 30.0 <= out.bone_age_months <= top
            assert out.interval_months[0] < out.bone_age_months and out.interval_months[1] <= top
            assert out.qc["near_skeletal_maturity"] == (out.qc["mature_probability"] >= 0.5
                                                        or out.bone_age_months >= top - 12.0)
            flags[male] += bool(out.qc["near_skeletal_maturity"])
    assert flags[True] >= 6, flags


def test_children_on_small_films_are_assessed_not_turned_away_as_mature(assessor):
    # 256 px films (the PACS benchmark's): the wrist window holds 70-110 source pixels, too few to see an
    # open physis, so the wrist stage may not reject; the children get a bone age and the reason.
    outs = assessor.assess_batch([phantom.render_sample(np.random.default_rng(4100 + i), kind="left", size=256)[0]
                                  for i in range(12)], ["F"] * 12)
    assert all(o.rejection is None for o in outs), [o.rejection for o in outs]
    assert all(o.qc.get("maturity_not_judged") == "wrist_resolution" for o in outs)


def test_an_adult_hand_is_rejected_as_skeletally_mature(assessor):
    # A woman's hand past the end of the standards: every physis fused, the epiphyses merged.
    image, labels = phantom.render_sample(np.random.default_rng(921), kind="adult", male=False, size=512)
    assert labels["boneage"] > 216.0
    out = assessor.assess(image, "F")
    assert out.rejection is not None and out.rejection.reason == Reason.SKELETALLY_MATURE
    assert out.bone_age_months is None


def test_adult_hands_of_both_sexes_are_rejected_by_the_wrist_stage(assessor):
    # Fused hands past the end of the standards, on films the size of the service's working image (the
    # wrist stage judges a window of 170 source pixels or more); the maturity decision is the wrist's.
    assert assessor.cfg.regressor.has_wrist
    rng = np.random.default_rng(922)
    samples = [phantom.render_sample(rng, kind="adult", size=1024) for _ in range(8)]
    outs = assessor.assess_batch([im for im, _ in samples], ["M" if lab["male"] else "F" for _, lab in samples])
    rejected = [o.rejection is not None and o.rejection.reason == Reason.SKELETALLY_MATURE for o in outs]
    assert sum(rejected) >= 7, [o.qc.get("mature_probability") for o in outs]
