"""``boneage train`` and ``boneage evaluate`` end to end on a tiny phantom set in the RSNA layout."""

from __future__ import annotations

import json

import pytest

from boneage.cli import main
from boneage.model.weights import DEMO_WEIGHTS, load_checkpoint

phantom = pytest.importorskip("boneage.phantom")


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return phantom.generate_dataset(tmp_path_factory.mktemp("rsna"), count=12, seed=7, size=256,
                                    mix={"left": 6, "right": 2, "two_hands": 2, "non_hand": 1, "adult": 1})


def test_train_then_evaluate_on_a_tiny_rsna_layout_set(tiny_set, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--config", "demo", "--data", str(tiny_set), "--out", str(out), "--epochs", "2",
               "--batch", "4", "--seed", "3", "--threads", "1", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 6                     # 12 detector images / batch 4, 2 epochs
    ck = load_checkpoint(out / "model.pt")
    assert ck.model_version == summary["model_version"] and ck.model_version.startswith("demo-")
    assert ck.meta["training_data"]["rsna_folders"] == [str(tiny_set)]
    assert ck.cfg.interval_scale > 0
    # Training from scratch never trains a wrist stage, so the checkpoint has none: its maturity decision
    # is the crop's mature head, not an untrained wrist network.
    assert not ck.cfg.regressor.has_wrist and not any(k.startswith("wrist.") for k in ck.regressor_state)

    rc = main(["evaluate", str(tiny_set), "--weights", str(out / "model.pt"), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip())
    assert report["images"] == 12 and report["model_version"] == ck.model_version
    assert sum(sum(v.values()) for v in report["qc"]["confusion"].values()) == 12
    assert {"n", "qc"} <= set(report)


def test_training_is_reproducible_for_a_seed(tiny_set, tmp_path, capsys):
    versions = []
    for name in ("a", "b"):
        main(["train", "--data", str(tiny_set), "--out", str(tmp_path / name), "--epochs", "1", "--batch", "4",
              "--seed", "5", "--threads", "1", "--json"])
        versions.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["model_version"])
    assert versions[0] == versions[1]


def test_bf16_training_runs_its_forward_passes_in_bf16_and_records_it(tiny_set, tmp_path, capsys):
    """``--precision bf16`` is autocast, not a label: the same seed gives other weights than fp32 (bf16
    rounding in every convolution), the losses stay finite, and the checkpoint says how it was trained."""
    import torch

    from boneage.model.training import autocast

    conv = torch.nn.Conv2d(1, 2, 3)
    x = torch.rand(1, 1, 8, 8)
    with autocast("bf16"):
        assert conv(x).dtype == torch.bfloat16
    with autocast("fp32"):
        assert conv(x).dtype == torch.float32
    with pytest.raises(ValueError, match="fp16"):
        autocast("fp16")
    from boneage.model.configs import CONFIGS
    from boneage.model.training import TrainOptions, train
    with pytest.raises(ValueError, match="fp16"):             # before the "no training data" check
        train(CONFIGS["demo"], TrainOptions(out=tmp_path / "none", precision="fp16"))

    states = {}
    for precision in ("fp32", "bf16"):
        rc = main(["train", "--data", str(tiny_set), "--out", str(tmp_path / precision), "--epochs", "1",
                   "--batch", "4", "--seed", "5", "--threads", "1", "--precision", precision, "--json"])
        assert rc == 0
        capsys.readouterr()
        ck = load_checkpoint(tmp_path / precision / "model.pt")
        assert ck.meta["precision"] == precision
        states[precision] = ck.regressor_state
    assert all(torch.isfinite(v).all() for v in states["bf16"].values() if v.is_floating_point())
    assert any(not torch.equal(v, states["bf16"][k]) for k, v in states["fp32"].items() if v.is_floating_point())
    with pytest.raises(SystemExit):
        main(["train", "--data", str(tiny_set), "--out", str(tmp_path / "x"), "--precision", "fp16"])


def test_training_without_data_is_refused(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "x"), "--epochs", "1"]) == 2
    assert "no training data" in capsys.readouterr().err


def test_combine_takes_the_detector_of_one_run_and_the_regressor_of_another(tiny_set, tmp_path, capsys):
    import torch

    for name, seed in (("det", "1"), ("reg", "2")):
        main(["train", "--data", str(tiny_set), "--out", str(tmp_path / name), "--epochs", "1", "--batch", "4",
              "--seed", seed, "--threads", "1", "--stage", "detector" if name == "det" else "regressor"])
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "both"), "--combine", str(tmp_path / "det" / "model.pt"),
                 str(tmp_path / "reg" / "model.pt")]) == 0
    both = load_checkpoint(tmp_path / "both" / "model.pt")
    det, reg = load_checkpoint(tmp_path / "det" / "model.pt"), load_checkpoint(tmp_path / "reg" / "model.pt")
    for k, v in both.detector_state.items():
        assert torch.equal(v, det.detector_state[k])
    for k, v in both.regressor_state.items():
        assert torch.equal(v, reg.regressor_state[k])
    assert both.cfg.interval_scale == reg.cfg.interval_scale


def test_fine_tuning_a_checkpoint_with_a_wrist_stage_carries_it_over_unchanged(tiny_set, tmp_path, capsys):
    import torch

    from boneage.model.configs import CONFIGS
    from boneage.model.weights import save_checkpoint
    from boneage.model.wrist_training import with_wrist

    # The init's wrist stage reads the other kind of input than the config's (``wrist_equalise``): a flag
    # without weights of its own, which the fine-tuned checkpoint must carry over with the weights.
    ck = load_checkpoint(DEMO_WEIGHTS)
    flag = not CONFIGS[ck.cfg.name].regressor.wrist_equalise
    init = tmp_path / "init.pt"
    save_checkpoint(init, *with_wrist(ck, equalise=flag), demo=True, date="20261201")
    main(["train", "--data", str(tiny_set), "--out", str(tmp_path / "ft"), "--epochs", "1", "--batch", "4",
          "--seed", "4", "--threads", "1", "--stage", "regressor", "--init", str(init)])
    capsys.readouterr()
    shipped, tuned = load_checkpoint(init), load_checkpoint(tmp_path / "ft" / "model.pt")
    assert shipped.cfg.regressor.has_wrist and tuned.cfg.regressor.has_wrist
    assert tuned.cfg.regressor.wrist_equalise is flag
    assert tuned.meta["init"]["model_version"] == shipped.model_version and tuned.meta["stages"] == ["regressor"]
    wrist = [k for k in shipped.regressor_state if k.startswith("wrist.")]
    assert wrist and all(torch.equal(tuned.regressor_state[k], shipped.regressor_state[k]) for k in wrist)
    assert not torch.equal(tuned.regressor_state["fc.0.weight"], shipped.regressor_state["fc.0.weight"])


def test_calibrate_fits_the_maturity_and_detector_thresholds_on_children_adults_and_non_hands(tmp_path, capsys):
    folder = phantom.generate_dataset(tmp_path / "cal", count=48, seed=8101, size=256,
                                      mix={"left": 0.5, "right": 0.1, "adult": 0.15, "non_hand": 0.15,
                                           "two_hands": 0.1})
    rc = main(["train", "--out", str(tmp_path / "cal-out"), "--init", str(DEMO_WEIGHTS), "--calibrate", str(folder),
               "--threads", "1"])
    assert rc == 0
    fit = json.loads(capsys.readouterr().out.strip())["calibration"]
    ck = load_checkpoint(tmp_path / "cal-out" / "model.pt")
    assert ck.cfg.mature_threshold == fit["maturity"]["mature_threshold"] >= 0.5
    assert fit["maturity"]["target_met"]
    assert max(fit["maturity"]["children_rejected_by_age_band"].values()) <= fit["maturity"]["target"]
    # ... and under each stress perturbation (the valid hands' perturbed runs of the detector fit).
    assert fit["maturity"]["children_rejected_worst_perturbed"] <= fit["maturity"]["target"]
    assert ck.cfg.score_threshold == fit["detector"]["score_threshold"] >= 0.5
    assert set(fit["detector"]["valid_lost"]) == {"clean", "rotation_25", "mirror", "inversion", "gamma_0.6",
                                                  "gamma_1.6", "noise_0.05", "off_centre_crop"}
    second = fit["second_hand"]
    assert ck.cfg.second_hand_threshold == second["second_hand_threshold"] <= ck.cfg.score_threshold
    assert set(second["valid_as_two_hands"]) == set(fit["detector"]["valid_lost"])
    assert max(second["valid_as_two_hands"].values()) == 0.0           # no calibration hand split
    assert second["highest_valid_second"] < second["second_hand_threshold"]
    assert ck.meta["pipeline_calibration"]["from"] == load_checkpoint(DEMO_WEIGHTS).model_version
