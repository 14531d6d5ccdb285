"""Checkpoints: round trip, version naming, and the committed demo weights."""

from __future__ import annotations

import re

import pytest
import torch

from boneage.model import build_detector, build_regressor, example_inputs
from boneage.model.configs import CONFIGS
from boneage.model.pipeline import TwoStageAssessor
from boneage.model.weights import DEMO_WEIGHTS, load_checkpoint, save_checkpoint

DEMO = CONFIGS["demo"]


def test_checkpoint_round_trip_reproduces_outputs_and_names_the_file_hash(tmp_path):
    torch.manual_seed(1)
    det, reg = build_detector(DEMO).eval(), build_regressor(DEMO).eval()
    version = save_checkpoint(tmp_path / "m.pt", DEMO, det, reg, demo=True, date="20260101", meta={"x": 1})
    ck = load_checkpoint(tmp_path / "m.pt")
    assert ck.model_version == version and re.fullmatch(r"demo-20260101-[0-9a-f]{8}", version)
    assert ck.sha256.startswith(version[-8:]) and ck.demo and ck.meta["x"] == 1 and ck.cfg == DEMO
    a = TwoStageAssessor.from_checkpoint(ck)
    ex = example_inputs(DEMO)
    with torch.no_grad():
        for want, got in zip(reg(*ex["regressor"]), a.regressor_fn(*ex["regressor"])):
            torch.testing.assert_close(want, got)


def test_a_changed_weight_changes_the_model_version(tmp_path):
    det, reg = build_detector(DEMO), build_regressor(DEMO)
    v1 = save_checkpoint(tmp_path / "a.pt", DEMO, det, reg, demo=True, date="20260101")
    with torch.no_grad():
        next(reg.parameters()).add_(1.0)
    v2 = save_checkpoint(tmp_path / "b.pt", DEMO, det, reg, demo=True, date="20260101")
    assert v1 != v2


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    torch.save({"format": "something else"}, tmp_path / "x.pt")
    with pytest.raises(ValueError):
        load_checkpoint(tmp_path / "x.pt")


@pytest.mark.skipif(not DEMO_WEIGHTS.exists(), reason="demo weights not committed yet")
def test_committed_demo_weights_load_are_small_and_flagged_demo():
    assert DEMO_WEIGHTS.stat().st_size <= 25 * 1024 * 1024
    ck = load_checkpoint()
    assert ck.demo and ck.model_version.startswith("demo-") and ck.cfg.name == "demo"
    assert 0.3 < ck.cfg.interval_scale < 5
