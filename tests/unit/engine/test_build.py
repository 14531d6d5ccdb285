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


def _calibration(n: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(5)
    return [(torch.rand(1, 1, 32, 32, generator=g), torch.eye(3)[i % 3][None]) for i in range(n)]


def test_int8_artifact_is_quantised_and_close_to_fp32(tmp_path: Path) -> None:
    """PT2E static int8 through AOTInductor: loads without torchao, answers close to fp32, and the
    graph really runs quantised convolutions (except the one-channel stem, kept in fp32)."""
    pytest.importorskip("torchao")
    from boneage.engine.build import StageSpec, quantize_int8

    torch.set_num_threads(1)
    net, inputs = _stand_in()
    spec = StageSpec(net, inputs, calibration=_calibration)
    manifest = build_artifact({"detector": spec, "regressor": spec}, tmp_path, backend="aoti", precision="int8",
                              config_name="stand-in", model_config={}, model_version="stand-in-1",
                              weights_sha256="0" * 64, demo=True)
    assert manifest.name == "aoti-int8" and "avx2" in manifest.cpu_features
    det, _ = load_stages(discover(tmp_path)[0])
    image, sex = torch.cat([c[0] for c in _calibration(3)]), torch.eye(3)
    with torch.no_grad():
        want = net(image, sex)
    got = det(image, sex)
    for a, b in zip(got, want):
        assert (a - b).abs().max() <= 0.05 * b.abs().max() + 1e-3
        assert not torch.equal(a, b)                    # not silently fp32

    graph = quantize_int8(prepare(net, "int8"), inputs, _calibration())
    convs = [n for n in graph.graph.nodes if n.op == "call_function" and "conv2d" in str(n.target)]
    fed_int8 = ["dequantize" in str(getattr(n.args[0], "target", "")) for n in convs]
    assert fed_int8 == [False, True]                    # stem (1 input channel) fp32, the rest int8


def test_int8_is_refused_for_backends_without_an_int8_path(tmp_path: Path) -> None:
    from boneage.engine.build import StageSpec

    net, inputs = _stand_in()
    with pytest.raises(ValueError, match="int8"):
        build_artifact({"detector": StageSpec(net, inputs)}, tmp_path, backend="torchscript", precision="int8",
                       config_name="s", model_config={}, model_version="s", weights_sha256="0" * 64, demo=True)


def test_compiled_backends_build_the_deploy_form_and_eager_the_training_graph(tmp_path: Path) -> None:
    """The eager artifact is the stock baseline (the network as trained, NCHW); compiled backends get
    the deploy form, and each manifest counts the FLOPs of what it runs."""
    from boneage.engine.build import StageSpec

    torch.set_num_threads(1)
    net, inputs = _stand_in()
    lean = StandIn().eval()
    lean.features = nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.ReLU(), nn.Conv2d(4, 16, 3, 2, 1), nn.ReLU())
    spec = StageSpec(net, inputs, deploy=lean)
    kw = dict(config_name="s", model_config={}, model_version="s", weights_sha256="0" * 64, demo=True)
    eager = build_artifact({"detector": spec}, tmp_path, backend="eager", precision="fp32", **kw)
    ts = build_artifact({"detector": spec}, tmp_path, backend="torchscript", precision="fp32", **kw)
    assert eager.gflop_per_image["detector"] == pytest.approx(count_gflop(net, inputs), abs=1e-6)
    assert ts.gflop_per_image["detector"] == pytest.approx(count_gflop(lean, inputs), abs=1e-6)
    assert ts.gflop_per_image["detector"] < eager.gflop_per_image["detector"]
    traced = torch.jit.load(str(tmp_path / "torchscript-fp32" / ts.files["detector"]["path"]))
    with torch.no_grad():
        for a, b in zip(traced(*inputs), lean(*inputs)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_eager_baseline_runs_in_pytorchs_default_layout() -> None:
    net, _ = _stand_in()
    stock = prepare(net, "fp32", channels_last=False)
    assert all(p.is_contiguous() for p in stock.parameters())
    tuned = prepare(net, "fp32")
    conv = tuned.module.features[3].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def test_aoti_packages_load_without_importing_the_compiler(tmp_path: Path) -> None:
    """Cold start: the loader runs AOTInductor packages through torch's C++ loader; importing
    torch._inductor (and torch._dynamo) would add ~1.5 s to every cold start."""
    import subprocess
    import sys

    _stages(tmp_path, "aoti")
    code = ("import sys, torch; from pathlib import Path; from boneage.engine.loader import discover, load_stages; "
            f"det, _ = load_stages(discover(Path({str(tmp_path)!r}))[0]); "
            "out = det(torch.rand(2, 1, 32, 32), torch.eye(3)[:2]); assert out[0].shape == (2,); "
            "print(sorted(m for m in ('torch._inductor', 'torch._dynamo') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
