"""The deploy form (re-parameterised RepVGG, folded BatchNorm, unshared heads) computes what eval() does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from boneage.model import build_detector, build_regressor, example_inputs, gflops
from boneage.model.backbones.repvgg import RepVGGBlock
from boneage.model.configs import CONFIGS
from boneage.model.deploy import deploy_form
from boneage.model.detector import UnsharedHead, _Head
from boneage.model.weights import DEMO_WEIGHTS

BUILD = {"detector": build_detector, "regressor": build_regressor}


def _with_random_bn_statistics(net: nn.Module, seed: int = 1) -> nn.Module:
    """Non-trivial BN statistics and affine params, so a wrong fold shows (fresh BN is the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return net.eval()


def _small_inputs(stage: str, batch: int = 2) -> tuple[torch.Tensor, ...]:
    # The networks are fully convolutional: small inputs exercise every layer and keep the
    # ResNet-50 / Inception-v4 configs fast.
    g = torch.Generator().manual_seed(0)
    if stage == "detector":
        return (torch.rand(batch, 1, 128, 128, generator=g),)
    return torch.rand(batch, 1, 160, 160, generator=g), torch.eye(3)[[0, 2]][:batch]


def _assert_same(want: tuple[torch.Tensor, ...], got: tuple[torch.Tensor, ...]) -> None:
    assert len(want) == len(got)
    for w, g in zip(want, got):
        assert w.shape == g.shape
        assert float((w - g).abs().max()) <= 1e-4 * max(1.0, float(w.abs().max()))


@pytest.mark.parametrize("stage", ["detector", "regressor"])
@pytest.mark.parametrize("config", ["demo", "clinical", "seed_equivalent"])
def test_deploy_form_has_the_eval_outputs_and_only_plain_layers(config, stage):
    torch.manual_seed(0)
    net = _with_random_bn_statistics(BUILD[stage](CONFIGS[config]))
    x = _small_inputs(stage)
    dep = deploy_form(net)
    with torch.no_grad():
        _assert_same(net(*x), dep(*x))
    assert not dep.training and net.training is False
    kinds = {type(m) for m in dep.modules()}
    assert not kinds & {nn.BatchNorm2d, RepVGGBlock, _Head}
    assert any(isinstance(m, RepVGGBlock) for m in net.modules()) == (config == "clinical")
    if config == "clinical":   # re-parameterised: the backbone is 3x3 convs with bias only
        convs = [m for m in dep.backbone.modules() if isinstance(m, nn.Conv2d)]
        assert convs and all(c.kernel_size == (3, 3) and c.bias is not None for c in convs)
    if stage == "detector":
        assert isinstance(dep.cls_head, UnsharedHead) and len(dep.cls_head.levels) == len(CONFIGS[config].detector.strides)


def test_deploy_form_leaves_the_training_network_untouched():
    net = _with_random_bn_statistics(build_detector(CONFIGS["clinical"]))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    deploy_form(net)
    after = net.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_demo_deploy_detector_traces_exports_and_prepares_for_x86_int8():
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq

    net = _with_random_bn_statistics(build_detector(CONFIGS["demo"]))
    ex = example_inputs(CONFIGS["demo"])["detector"]
    dep = deploy_form(net)
    with torch.no_grad():
        want = net(*ex)
        exported = torch.export.export(dep, ex)
        _assert_same(want, torch.jit.trace(dep, ex)(*ex))
        _assert_same(want, exported.module()(*ex))
    convs = [n for n in exported.graph.nodes if n.target == torch.ops.aten.conv2d.default]
    weights = [n.args[1] for n in convs]
    assert len(set(weights)) == len(weights)   # each conv weight has one call site
    q = xiq.X86InductorQuantizer()
    q.set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported.module(), q)   # raises on a head shared across levels
    with torch.no_grad():
        prepared(*ex)


@pytest.mark.skipif(not DEMO_WEIGHTS.exists(), reason="demo weights not committed yet")
def test_demo_weights_in_deploy_form_assess_a_phantom_the_same():
    phantom = pytest.importorskip("boneage.phantom")
    from boneage.model.pipeline import TwoStageAssessor
    from boneage.model.weights import load_checkpoint

    ckpt = load_checkpoint()
    eager = TwoStageAssessor.from_checkpoint(ckpt)
    deployed = TwoStageAssessor(ckpt.cfg, deploy_form(eager.detector_fn), deploy_form(eager.regressor_fn),
                                ckpt.model_version, ckpt.demo)
    image, _ = phantom.render_sample(np.random.default_rng(901), kind="left", bone_age_months=100.0,
                                     male=False, size=512)
    a, b = eager.assess(image, "F"), deployed.assess(image, "F")
    assert a.rejection == b.rejection and a.rejection is None
    assert b.bone_age_months == pytest.approx(a.bone_age_months, abs=1e-3)
    assert b.interval_months == pytest.approx(a.interval_months, abs=1e-3)


def test_clinical_deploy_form_is_in_the_efficient_cpu_budget():
    # 14-18 GFLOP per image as deployed (about 0.1 s of a 2-vCPU AVX2 host's ~180 GFLOP/s fp32
    # peak); the training form is ~10 % dearer (the 1x1 branches).
    f, training = gflops(CONFIGS["clinical"], deploy=True), gflops(CONFIGS["clinical"])
    assert 14.0 <= f["total"] <= 18.0
    assert 3.5 <= f["detector"] <= 5.5 and 9.5 <= f["regressor"] <= 12.5
    assert f["detector"] < training["detector"] and f["regressor"] < training["regressor"]
