"""The weights artifacts are built from: deploy forms for compiled backends, calibration for int8."""

from __future__ import annotations

import torch

from boneage.engine import weights
from boneage.model.configs import CONFIGS


def test_calibration_inputs_are_shaped_like_the_service_inputs_and_vary() -> None:
    cfg = CONFIGS["demo"]
    cal = weights.calibration_inputs(cfg, n=10)
    assert len(cal["detector"]) == 10
    assert all(x.shape == (1, 1, cfg.detector.image_size, cfg.detector.image_size) for (x,) in cal["detector"])
    # one crop per film with a hand (the non-hand film has none)
    assert 8 <= len(cal["regressor"]) <= 10
    for crop, sex, wrist in cal["regressor"]:                                 # demo has a wrist stage
        assert crop.shape == (1, 1, cfg.regressor.crop_size, cfg.regressor.crop_size)
        assert wrist.shape == (1, 1, *cfg.regressor.wrist_size)
        for x in (crop, wrist):
            assert -1e-5 <= float(x.min()) and float(x.max()) <= 1.0 + 1e-5      # resampling rounding
        assert sex.shape == (1, 3) and float(sex.sum()) == 1.0
    assert len({int(s.argmax()) for _, s, _ in cal["regressor"]}) == 3        # male, female, unknown
    no_wrist = weights.calibration_inputs(CONFIGS["seed_equivalent"], n=2)["regressor"]
    assert [len(x) for x in no_wrist] == [2, 2]                               # crop, sex only
    means = [float(x.mean()) for (x,) in cal["detector"]]
    assert max(means) - min(means) > 0.02                                     # not one film repeated
    again = weights.calibration_inputs(cfg, n=10)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(cal["detector"], again["detector"]))   # seeded


def test_random_weight_sources_carry_an_equivalent_deploy_form() -> None:
    torch.set_num_threads(1)
    src = weights.random_weights("demo", seed=3)
    for name, spec in src.stages.items():
        assert spec.deploy is not None and spec.deploy is not spec.module
        with torch.no_grad():
            for a, b in zip(spec.deploy(*spec.inputs), spec.module(*spec.inputs)):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_calibration_crops_are_turned_upright_as_the_pipeline_turns_them() -> None:
    # Every tenth phantom film is inverted (bright background); the pipeline turns it back before the
    # regressor, so a calibration crop must show a dark background too, or int8 ranges are fitted to
    # pixels the service never feeds.
    cal = weights.calibration_inputs(CONFIGS["demo"], n=40)["regressor"]
    assert len(cal) == 32                                                     # the single-hand films
    for crop, *_ in cal:
        c = crop[0, 0]
        corners = torch.cat([c[:8, :8].flatten(), c[:8, -8:].flatten(), c[-8:, :8].flatten(), c[-8:, -8:].flatten()])
        assert float(corners.median()) < 0.3
