"""Builders: every backend gives fp32-in/fp32-out callables that agree with eager, and count FLOPs right."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from boneage.engine.build import PrecisionWrapper, build_artifact, count_gflop, prepare
from boneage.engine.loader import CompiledStage, discover, load_stages


class StandIn(nn.Module):
    """A tiny two-input network with the detector/regressor interface (tensors in, tuple out)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.head = nn.Linear(16 + 3, 2)

    def forward(self, image: torch.Tensor, sex: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(image).mean((2, 3))
        out = self.head(torch.cat([f, sex], 1))
        return out[:, 0], out[:, 1]


def _stand_in() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(11)
    net = StandIn().eval()
    with torch.no_grad():   # non-trivial BN statistics, so folding them at freeze time is exercised
        net.features[1].running_mean.uniform_(-0.5, 0.5)
        net.features[1].running_var.uniform_(0.5, 2.0)
    sex = torch.tensor([[0.0, 0.0, 1.0]])
    return net, (torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1)), sex)


def test_flop_count_of_a_convolution_is_two_per_multiply_add() -> None:
    conv = nn.Conv2d(4, 8, 3, padding=1, bias=False)
    # 8 out channels x 16x16 positions x (4 x 3 x 3) multiply-adds x 2
    assert count_gflop(conv, (torch.rand(1, 4, 16, 16),)) == pytest.approx(2 * 8 * 256 * 36 / 1e9)


def test_bf16_wrapper_keeps_the_fp32_interface_and_leaves_the_original_alone() -> None:
    net, inputs = _stand_in()
    wrapped = prepare(net, "bf16")
    assert isinstance(wrapped, PrecisionWrapper)
    outs = wrapped(*inputs)
    assert all(o.dtype == torch.float32 for o in outs)
    assert next(net.parameters()).dtype == torch.float32
    for a, b in zip(outs, net(*inputs)):
        torch.testing.assert_close(a, b, rtol=0.05, atol=0.05)


def _stages(tmp_path: Path, backend: str, precision: str = "fp32") -> tuple[nn.Module, tuple, Path]:
    from boneage.engine.build import StageSpec

    net, inputs = _stand_in()
    stages = {"detector": StageSpec(net, inputs), "regressor": StageSpec(net, inputs)}
    build_artifact(stages, tmp_path, backend=backend, precision=precision, config_name="stand-in",
                   model_config={}, model_version="stand-in-1", weights_sha256="0" * 64, demo=True, max_batch=4)
    return net, inputs, tmp_path


@pytest.mark.parametrize("backend", ["torchscript", "aoti"])
def test_compiled_stage_matches_eager_at_batch_one_and_three(tmp_path: Path, backend: str) -> None:
    torch.set_num_threads(1)
    net, inputs, folder = _stages(tmp_path, backend)
    (cand,) = discover(folder)
    assert cand.manifest.gflop_per_image["total"] > 0
    det, _ = load_stages(cand)
    image = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    sex = torch.eye(3)
    with torch.no_grad():
        want = net(image, sex)
    for got, ref in zip(det(image, sex), want):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    for got, ref in zip(det(image[:1], sex[:1]), want):
        torch.testing.assert_close(got, ref[:1], rtol=1e-4, atol=1e-4)


def test_aoti_manifest_names_the_isa_it_was_compiled_for() -> None:
    from boneage.engine.build import aoti_cpu_features
    from boneage.engine.host import ISA_LEVELS

    level, features = aoti_cpu_features()
    assert level in ISA_LEVELS
    assert set(features) == set(ISA_LEVELS[level])


def test_split_batches_are_joined_in_order() -> None:
    calls = []

    def fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(x.shape[0])
        return x * 2, x.sum((1, 2, 3))

    stage = CompiledStage(fn, "s", max_batch=2)
    x = torch.arange(5 * 4, dtype=torch.float32).reshape(5, 1, 2, 2)
    doubled, sums = stage(x)
    assert calls == [2, 2, 1]
    torch.testing.assert_close(doubled, x * 2)
    torch.testing.assert_close(sums, x.sum((1, 2, 3)))
