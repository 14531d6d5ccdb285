"""The assessment use case end to end, in process: real ingest, real demo model, real interpretation."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from boneage.engine import load_engine
from boneage.phantom import render_sample
from boneage.result import COMPLETED, REJECTED
from boneage.service import AssessmentService


@pytest.fixture(scope="module")
def service() -> AssessmentService:
    torch.set_num_threads(1)
    engine = load_engine(None, backend="eager")  # the committed demo weights, no artifact folder
    return AssessmentService(engine.assessor, target_long_side=512)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((image * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _child(seed: int, bone_age: float = 96.0, male: bool = False, size: int = 1024):
    image, labels = render_sample(np.random.default_rng(seed), kind="left", bone_age_months=bone_age,
                                  male=male, size=size, nuisance=False)
    return image, labels


def test_png_with_metadata_completes_with_interpretation_and_names_the_model(service):
    image, labels = _child(11, bone_age=96.0, male=False)
    result, reports = service.assess(_png(image), source="girl.png",
                                     metadata={"sex": "F", "age-months": "100", "height-cm": "128"})
    assert result.status == COMPLETED, result
    assert result.sex == "F" and result.sex_source == "metadata"
    assert result.chronological_age_months == pytest.approx(100.0)
    low, high = result.bone_age_interval_months
    assert low <= result.bone_age_months <= high
    assert result.sds is not None and result.interpretation in {"delayed", "advanced", "within_normal_limits"}
    assert result.predicted_adult_height_cm is not None and result.predicted_adult_height_cm > 128
    assert result.model_version and result.demo_model is True
    assert "demonstration" in result.message
    assert set(reports) == {"report.png"} and reports["report.png"].startswith(b"\x89PNG")
    assert result.report_files == ["report.png"]


def test_hand_box_is_reported_in_the_source_image_pixels(service):
    # The service hands the model a 512 px image; the box it records must be in the 1024 px file's pixels.
    image, labels = _child(12, bone_age=120.0, male=True, size=1024)
    result, _ = service.assess(_png(image), source="boy.png", metadata={"sex": "M"}, want_reports=False)
    assert result.status == COMPLETED, result
    truth = np.array(labels["hand_boxes"][0])
    found = np.array(result.hand_box)
    centre_error = np.abs((found[:2] + found[2:]) / 2 - (truth[:2] + truth[2:]) / 2)
    assert centre_error.max() < 0.1 * 1024, (found, truth)


def test_unknown_sex_gives_an_estimate_without_sds_and_says_so(service):
    image, _ = _child(13, bone_age=84.0, male=True)
    result, _ = service.assess(_png(image), source="unknown.png", metadata={"age-months": "80"}, want_reports=False)
    assert result.status == COMPLETED, result
    assert result.sex is None and result.bone_age_months is not None
    assert result.sds is None and result.sds_reason
    assert any("sex unknown" in w for w in result.warnings)


def test_bad_bytes_are_rejected_with_a_reason_code_and_no_model_output(service):
    result, reports = service.assess(b"this is not an image", source="notes.txt")
    assert result.status == REJECTED and result.reason == "not_an_image"
    assert result.message and result.bone_age_months is None and reports == {}


def test_non_hand_film_is_rejected_by_quality_control(service):
    image, _ = render_sample(np.random.default_rng(14), kind="non_hand", size=512, nuisance=False)
    result, _ = service.assess(_png(image), source="foot.png", want_reports=False)
    assert result.status == REJECTED and result.reason == "no_hand_found", result


def test_a_batch_gives_the_same_results_as_one_at_a_time(service):
    items = []
    for seed, age in ((21, 60.0), (22, 130.0)):
        image, _ = _child(seed, bone_age=age)
        items.append((_png(image), f"{seed}.png", {"sex": "F"}))
    items.append((b"\x00" * 10, "junk.bin", None))
    batch = service.assess_many(items, want_reports=False)
    single = [service.assess(data, source=src, metadata=meta, want_reports=False) for data, src, meta in items]
    assert [r.status for r, _ in batch] == [r.status for r, _ in single] == [COMPLETED, COMPLETED, REJECTED]
    for (b, _), (s, _) in zip(batch[:2], single[:2]):
        assert b.bone_age_months == pytest.approx(s.bone_age_months, abs=0.2)


class _WristSaysFused:
    """Stage decisions that keep every network output but the wrist stage's, which calls every hand fused."""

    def detected(self, outputs):
        return outputs

    def regressed(self, outputs):
        age, sigma, male, mature = outputs[:4]
        return age, sigma, male, torch.full_like(mature, 10.0)


def test_a_child_the_wrist_stage_calls_fused_is_assessed_with_a_warning_when_its_bone_age_is_before_any_fusion(
        service):
    from boneage.clinical.text import MATURITY_DISAGREEMENT_TEXT

    # At full size: a 512 px working image leaves the wrist window too few pixels to judge maturity at all.
    fused = AssessmentService(service.assessor.with_decisions(_WristSaysFused()), target_long_side=1024)
    image, _ = _child(14, bone_age=96.0)
    result, _ = fused.assess(_png(image), source="girl.png", metadata={"sex": "F"}, want_reports=False)
    assert result.status == COMPLETED, result
    assert result.bone_age_months < 144 and MATURITY_DISAGREEMENT_TEXT in result.warnings
    assert not result.near_skeletal_maturity
    # Past the earliest fusion the wrist stage's call stands.
    image, _ = _child(15, bone_age=200.0, male=True)
    result, _ = fused.assess(_png(image), source="boy.png", metadata={"sex": "M"}, want_reports=False)
    assert result.status == REJECTED and result.reason == "skeletally_mature"
    assert MATURITY_DISAGREEMENT_TEXT not in result.warnings
