"""Training the wrist maturity stage: patches cut by serving's own assessor, only the wrist network
learns, and the saved checkpoint serves with its wrist stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from boneage.cli import main
from boneage.model.configs import CONFIGS
from boneage.model.pipeline import TwoStageAssessor
from boneage.model.preprocess import wrist_patch
from boneage.model.weights import DEMO_WEIGHTS, load_checkpoint
from boneage.model.wrist_training import (
    WristOptions, WristPatches, record_patches, sample_weights, train_wrist, with_wrist,
)

phantom = pytest.importorskip("boneage.phantom")
pytestmark = pytest.mark.skipif(not DEMO_WEIGHTS.exists(), reason="demo weights not committed yet")


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return phantom.generate_dataset(tmp_path_factory.mktemp("wrist"), count=6, seed=11, size=512,
                                    mix={"left": 3, "right": 1, "adult": 2})


@pytest.fixture(scope="module")
def no_wrist_init(tmp_path_factory):
    """The shipped detector and regressor without a wrist stage: what the wrist training adds one to."""
    from boneage.model.networks import build_detector, build_regressor
    from boneage.model.weights import save_checkpoint

    ck = load_checkpoint(DEMO_WEIGHTS)
    cfg = ck.cfg.with_wrist()
    det, reg = build_detector(cfg), build_regressor(cfg)
    det.load_state_dict(ck.detector_state)
    reg.load_state_dict({k: v for k, v in ck.regressor_state.items() if not k.startswith("wrist.")})
    path = tmp_path_factory.mktemp("init") / "init.pt"
    save_checkpoint(path, cfg, det, reg, demo=True, date="20261201")
    return path


@pytest.fixture(scope="module")
def init_assessor():
    ck = load_checkpoint(DEMO_WEIGHTS)
    cfg, det, reg = with_wrist(ck)
    return TwoStageAssessor(cfg, det, reg, ck.model_version, ck.demo)


def test_recorded_patch_is_the_one_serving_cuts_around_the_detected_box(init_assessor):
    rng = np.random.default_rng(5)
    images, kinds = [], ("left", "right", "non_hand")
    for kind in kinds:
        images.append(phantom.render_sample(rng, kind=kind, size=512)[0])
    patches = record_patches(init_assessor, images, ["F"] * 3)
    outs = init_assessor.assess_batch(images, ["F"] * 3)
    assert patches[2] is None and outs[2].qc["hand_count"] == 0
    for image, patch, out in zip(images[:2], patches[:2], outs[:2]):
        assert out.qc["hand_count"] == 1 and patch.shape == (1, *CONFIGS["demo"].regressor.wrist_size)
        prepared = 1.0 - image if out.qc["inverted"] else image
        b = out.hand_box
        box = [b.x0, b.y0, b.x1, b.y1]
        if out.qc["mirrored"]:
            prepared = prepared[:, ::-1]
            w = image.shape[1]
            box = [w - b.x1, b.y0, w - b.x0, b.y1]
        torch.testing.assert_close(patch, wrist_patch(np.asarray(prepared, np.float32), box, (192, 368)))
    assert outs[1].qc["mirrored"]


def test_rotated_copies_stay_within_the_rotation_limit():
    from boneage.model.wrist_training import random_perturbation

    rng = np.random.default_rng(0)
    names = [random_perturbation(rng, 45.0)[0] for _ in range(300)]
    degs = [abs(float(n.split("_")[1])) for n in names if n.startswith("rotation_")]
    assert degs and max(degs) <= 45.0 and max(degs) > 30.0
    assert {n.split("_")[0] for n in names} == {"rotation", "off", "gamma", "noise", "mirror", "inversion"}


def test_hard_children_weigh_more_and_the_classes_balance():
    d = WristPatches(torch.zeros(6, 1, 4, 4), torch.tensor([1.0, 1, 0, 0, 0, 0]),
                     torch.tensor([250.0, 260, 50, 100, 170, 200]), ["clean"] * 6)
    w = sample_weights(d, 168.0, 4.0)
    assert w[4] == pytest.approx(4 * w[2]) and w[5] == pytest.approx(w[4]) and w[3] == pytest.approx(w[2])
    assert w[:2].sum() == pytest.approx(w[2:].sum())


def test_only_the_wrist_network_trains_and_the_checkpoint_serves_with_it(tiny_set, no_wrist_init, tmp_path):
    opts = WristOptions(init=no_wrist_init, out=tmp_path, data=[tiny_set], seed=3, copies=1, steps=2, batch=4,
                        threads=1)
    torch.manual_seed(opts.seed)
    _, _, fresh = with_wrist(load_checkpoint(no_wrist_init))     # the wrist stage train_wrist starts from
    summary = train_wrist(opts, log=lambda m: None)
    assert summary["steps"] == 2 and summary["patches"] >= 8      # 6 films, clean and one perturbed copy

    init, ck = load_checkpoint(no_wrist_init), load_checkpoint(tmp_path / "model.pt")
    assert not init.cfg.regressor.has_wrist
    assert ck.model_version == summary["model_version"]
    assert ck.cfg.regressor.wrist_size == CONFIGS["demo"].regressor.wrist_size
    assert ck.cfg.regressor.wrist_widths == CONFIGS["demo"].regressor.wrist_widths
    for k, v in init.detector_state.items():
        assert torch.equal(ck.detector_state[k], v), k
    wrist_keys = {k for k in ck.regressor_state if k.startswith("wrist.")}
    assert wrist_keys and set(ck.regressor_state) - wrist_keys == set(init.regressor_state)
    for k, v in init.regressor_state.items():
        assert torch.equal(ck.regressor_state[k], v), k
    fresh_state = fresh.state_dict()
    assert any(not torch.equal(ck.regressor_state[k], fresh_state[k]) for k in wrist_keys if "weight" in k)
    assert ck.meta["wrist_training"]["init"] == init.model_version

    served = TwoStageAssessor.from_checkpoint(ck)
    image = phantom.render_sample(np.random.default_rng(8), kind="left", size=512)[0]
    out = served.assess(image, "M")
    assert "mature_probability" in out.qc
    patch = record_patches(served, [image], ["M"])[0]
    with torch.no_grad():
        want = torch.sigmoid(served.regressor_fn.wrist(patch[None]))[0]
    assert out.qc["mature_probability"] == pytest.approx(float(want), abs=1e-4)


def test_wrist_stage_through_the_train_command(tiny_set, tmp_path, capsys):
    assert main(["train", "--stage", "wrist", "--out", str(tmp_path / "x"), "--data", str(tiny_set)]) == 2
    assert "--init" in capsys.readouterr().err
    rc = main(["train", "--stage", "wrist", "--init", str(DEMO_WEIGHTS), "--data", str(tiny_set), "--out",
               str(tmp_path / "run"), "--wrist-steps", "1", "--wrist-copies", "0", "--batch", "2", "--seed", "1",
               "--threads", "1", "--precision", "bf16", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ck = load_checkpoint(tmp_path / "run" / "model.pt")
    assert summary["steps"] == 1 and ck.cfg.regressor.has_wrist
    assert ck.meta["wrist_training"]["precision"] == "bf16"


@pytest.fixture(scope="module")
def standardised_init(tmp_path_factory):
    """The committed checkpoint with its wrist stage reading standardised values, as checkpoints saved
    before ``wrist_equalise`` existed do."""
    from boneage.model.weights import save_checkpoint

    path = tmp_path_factory.mktemp("standardised") / "init.pt"
    save_checkpoint(path, *with_wrist(load_checkpoint(DEMO_WEIGHTS), equalise=False), demo=True, date="20261201")
    return path


def test_the_train_command_can_switch_an_init_wrist_stage_to_ranks(tiny_set, standardised_init, tmp_path, capsys):
    """An init whose wrist stage reads standardised values keeps it that way unless told."""
    assert not load_checkpoint(standardised_init).cfg.regressor.wrist_equalise
    base = ["train", "--stage", "wrist", "--init", str(standardised_init), "--data", str(tiny_set), "--wrist-steps",
            "1", "--wrist-copies", "0", "--batch", "2", "--seed", "1", "--threads", "1", "--json"]
    assert main([*base, "--out", str(tmp_path / "ranks"), "--wrist-equalise"]) == 0
    assert main([*base, "--out", str(tmp_path / "kept")]) == 0
    capsys.readouterr()
    ranks, kept = (load_checkpoint(tmp_path / d / "model.pt") for d in ("ranks", "kept"))
    assert ranks.cfg.regressor.wrist_equalise and ranks.meta["wrist_training"]["equalise"] is True
    assert not kept.cfg.regressor.wrist_equalise
    served = TwoStageAssessor.from_checkpoint(ranks)
    assert served.regressor_fn.wrist.equalise
