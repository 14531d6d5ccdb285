"""Shapes, export-ability and compute of the networks each config builds."""

from __future__ import annotations

import pytest
import torch

from boneage.model import build_detector, build_regressor, example_inputs, gflops
from boneage.model.boxes import anchors
from boneage.model.configs import CONFIGS, ModelConfig

DEMO = CONFIGS["demo"]


def test_demo_detector_outputs_one_row_per_anchor():
    det = build_detector(DEMO).eval()
    (x,) = example_inputs(DEMO, batch=2)["detector"]
    cls, box, img = det(x)
    a = anchors(DEMO.detector).shape[0]
    assert cls.shape == (2, a, len(DEMO.detector.classes))
    assert box.shape == (2, a, 4)
    assert img.shape == (2, len(DEMO.detector.image_labels))


def test_demo_regressor_outputs_age_spread_and_flags_per_image():
    reg = build_regressor(DEMO).eval()
    age, sigma, male, mature = reg(*example_inputs(DEMO, batch=3)["regressor"])
    assert age.shape == sigma.shape == male.shape == mature.shape == (3,)
    assert bool((sigma > 0).all())


def test_regressor_uses_the_sex_input():
    torch.manual_seed(0)
    reg = build_regressor(DEMO).eval()
    crop, _, wrist = example_inputs(DEMO)["regressor"]
    ages = [float(reg(crop, torch.eye(3)[i:i + 1], wrist)[0]) for i in range(3)]
    assert len({round(a, 5) for a in ages}) == 3


def test_mature_logit_comes_from_the_wrist_patch_when_the_config_has_a_wrist_stage():
    torch.manual_seed(0)
    reg = build_regressor(DEMO).eval()
    crop, sex, wrist = example_inputs(DEMO, batch=2)["regressor"]
    with torch.no_grad():
        base = reg(crop, sex, wrist)
        other = reg(crop, sex, torch.rand_like(wrist))
        torch.testing.assert_close(base[0], other[0])          # age reads the crop only
        assert not torch.allclose(base[3], other[3])          # maturity reads the wrist
        torch.testing.assert_close(base[3], reg.wrist(wrist))
    assert example_inputs(CONFIGS["seed_equivalent"])["regressor"][-1].shape == (1, 3)   # no wrist stage there


@pytest.mark.parametrize("stage", ["detector", "regressor"])
def test_demo_modules_trace_and_export_with_the_same_outputs(stage):
    net = (build_detector if stage == "detector" else build_regressor)(DEMO).eval()
    ex = example_inputs(DEMO)[stage]
    with torch.no_grad():
        ref = net(*ex)
        traced = torch.jit.trace(net, ex)
        exported = torch.export.export(net, ex)
        for got in (traced(*ex), exported.module()(*ex)):
            for r, g in zip(ref, got):
                torch.testing.assert_close(r, g, rtol=1e-4, atol=1e-4)


def test_demo_modules_run_channels_last():
    det = build_detector(DEMO).eval().to(memory_format=torch.channels_last)
    (x,) = example_inputs(DEMO)["detector"]
    ref = build_detector(DEMO)
    ref.load_state_dict(det.state_dict())
    with torch.no_grad():
        got = det(x.contiguous(memory_format=torch.channels_last))
        want = ref.eval()(x)
    torch.testing.assert_close(got[0], want[0], rtol=1e-3, atol=1e-3)


def test_seed_equivalent_matches_the_reference_products_compute():
    # domain.md: RetinaNet-R50-FPN @512 with 2 classes is 103.8 GFLOP, Inception-v4 @299 is 24.5.
    f = gflops(CONFIGS["seed_equivalent"])
    assert f["detector"] == pytest.approx(103.8, rel=0.03)
    assert f["regressor"] == pytest.approx(24.5, rel=0.03)


def test_clinical_is_in_the_efficient_cpu_class_and_demo_is_far_cheaper():
    # Efficient CPU class (configs.py): RepVGG stages, i.e. dense 3x3 convs once re-parameterised,
    # about 15 GFLOP per image deployed; the regressor reads crops of at least 384 px, the low end
    # of bone age models in the literature (Deeplasia 512 px, RSNA 2017 challenge winners ~500 px).
    clinical = CONFIGS["clinical"]
    assert clinical.detector.backbone == clinical.regressor.backbone == "repvgg"
    assert clinical.regressor.crop_size >= 384 and clinical.detector.image_size >= 320
    assert gflops(DEMO)["total"] < 1.0   # the clinical GFLOP budget: test_deploy.py


def test_clinical_anchors_span_the_hand_boxes_a_320_px_letterbox_holds():
    # Hands span about 40-95 % of the letterboxed side, tall (height / width 1.5-2).
    det = CONFIGS["clinical"].detector
    a = anchors(det)
    w, h = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    side = det.image_size
    for frac in (0.4, 0.95):
        for aspect in (1.5, 2.0):
            gh = frac * side
            gw = gh / aspect
            # best IoU of a centred box of that shape with any anchor shape (centres are 16-64 px apart)
            inter = torch.minimum(w, torch.tensor(gw)) * torch.minimum(h, torch.tensor(gh))
            iou = inter / (w * h + gw * gh - inter)
            assert float(iou.max()) >= 0.6, (frac, aspect)


def test_config_round_trips_through_a_dict():
    for cfg in CONFIGS.values():
        assert ModelConfig.from_dict(cfg.as_dict()) == cfg
