"""Shared engine fixtures: small artifacts built once per session from seeded random demo weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ipex: needs torch 2.8 + intel-extension-for-pytorch (make test-ipex)")


@pytest.fixture(scope="session")
def demo_source():
    from boneage.engine import weights

    torch.set_num_threads(1)
    return weights.random_weights("demo", seed=3)


@pytest.fixture(scope="session")
def built_artifacts(tmp_path_factory: pytest.TempPathFactory, demo_source) -> Path:
    """torchscript-fp32 and eager-fp32 artifacts (seconds to build; AOTInductor is tested separately)."""
    from boneage.engine.build import build_artifact

    out = tmp_path_factory.mktemp("artifacts")
    for backend in ("torchscript", "eager"):
        build_artifact(demo_source.stages, out, backend=backend, precision="fp32",
                       config_name=demo_source.config_name, model_config=demo_source.model_config,
                       model_version=demo_source.model_version, weights_sha256=demo_source.weights_sha256,
                       demo=True, max_batch=4)
    return out


def _without_wrist(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith("wrist.")}


def make_no_wrist_checkpoint(path: Path) -> Path:
    """The committed demo weights without their wrist stage (the regressor takes two inputs and its
    crop's mature head serves), as checkpoints trained before the wrist stage are."""
    from boneage.model.networks import build_detector, build_regressor
    from boneage.model.weights import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(None)
    cfg = ckpt.cfg.with_wrist()
    det, reg = build_detector(cfg), build_regressor(cfg)
    det.load_state_dict(ckpt.detector_state)
    reg.load_state_dict(_without_wrist(ckpt.regressor_state))
    save_checkpoint(path, cfg, det, reg, demo=True, date="20261201", meta=dict(ckpt.meta, wrist="removed, test only"))
    return path


def make_wrist_checkpoint(path: Path, seed: int = 13) -> Path:
    """The committed demo weights with a seeded random wrist stage (``boneage.model.wrist``) in place of
    theirs, as a checkpoint file: a wrist logit that moves with the patch in a known way, with the
    demo's trained detector and regressor so a phantom still reaches the regressor."""
    from boneage.model.configs import CONFIGS
    from boneage.model.networks import build_detector, build_regressor
    from boneage.model.weights import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(None)
    want = CONFIGS["demo"].regressor
    cfg = ckpt.cfg.with_wrist(want.wrist_size, want.wrist_widths)
    torch.manual_seed(seed)
    det, reg = build_detector(cfg), build_regressor(cfg)
    det.load_state_dict(ckpt.detector_state)
    missing, unexpected = reg.load_state_dict(_without_wrist(ckpt.regressor_state), strict=False)
    assert not unexpected and missing and all(k.startswith("wrist.") for k in missing)
    reg.eval()
    with torch.no_grad():
        # A random net gives nearly the same logit for every patch (-0.118 +- 2e-4 here): global means of
        # random features hardly move, and any compare of it drowns in rounding. So channel 0 of every
        # layer passes channel 0 on (centre tap 1, identity BatchNorm): its pooled feature is the mean
        # of the standardised patch's positive part, which does move from wrist to wrist. The head reads
        # it so the patches below spread around logit -3.5 (sd 1), which puts phantom wrists around 0
        # (sd 1.4). The other channels stay random, with random BatchNorm statistics, so folding and
        # int8 quantisation still see a full network.
        for block in reg.wrist.features:
            conv, bn = block[0], block[1]
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            conv.weight[0].zero_()
            conv.weight[0, 0, 1, 1] = 1.0
            bn.running_mean[0], bn.running_var[0], bn.weight[0], bn.bias[0] = 0.0, 1.0, 1.0, 0.0
        # Patches of blurred noise at gammas from 0.3 to 3 (skewed one way and the other); no phantom,
        # whose package needs pydicom, which the IPEX venv lacks.
        g = torch.Generator().manual_seed(seed)
        noise = torch.nn.functional.avg_pool2d(torch.rand(16, 1, *cfg.regressor.wrist_size, generator=g), 9, 1, 4)
        lo, hi = noise.amin((2, 3), keepdim=True), noise.amax((2, 3), keepdim=True)
        patches = ((noise - lo) / (hi - lo)).pow(torch.linspace(0.3, 3.0, 16)[:, None, None, None])
        head = reg.wrist.head
        head.weight[0, 0] = 0.0
        base = reg.wrist(patches)
        head.weight[0, 0] = 1.0
        f0 = reg.wrist(patches) - base
        head.weight[0, 0] = 1.0 / float(f0.std())
        logits = reg.wrist(patches)
        head.bias -= float(logits.mean()) + 3.5
    save_checkpoint(path, cfg, det, reg, demo=True, date="20261201", meta=dict(ckpt.meta, wrist="random, test only"))
    return path


@pytest.fixture(scope="session")
def no_wrist_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_no_wrist_checkpoint(tmp_path_factory.mktemp("no-wrist") / "demo-no-wrist.pt")


@pytest.fixture(scope="session")
def wrist_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_wrist_checkpoint(tmp_path_factory.mktemp("wrist") / "demo-wrist.pt")


@pytest.fixture(scope="session")
def ranks_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed checkpoint with its trained wrist stage reading ranks (``wrist.rank_equalise``)
    instead of standardised values: an opt-in input, with weights whose logit moves from hand to hand."""
    from boneage.model.weights import load_checkpoint, save_checkpoint
    from boneage.model.wrist_training import with_wrist

    ckpt = load_checkpoint(None)
    assert ckpt.cfg.regressor.has_wrist
    cfg, det, reg = with_wrist(ckpt, equalise=True)
    path = tmp_path_factory.mktemp("ranks") / "demo-ranks.pt"
    save_checkpoint(path, cfg, det, reg, demo=True, date="20261201",
                    meta=dict(ckpt.meta, wrist="reads ranks, test only"))
    return path
