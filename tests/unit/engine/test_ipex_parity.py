"""The IPEX path (ipex.optimize + trace + freeze) gives eager's outputs, in torch 2.8 + IPEX 2.8 only.

Run by ``make test-ipex`` in ``.venv-ipex``; skipped elsewhere (IPEX exits the process when
imported with any other torch, so it is never imported here unless torch is 2.8.*).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.ipex

if not torch.__version__.startswith("2.8."):
    pytest.skip("IPEX needs torch 2.8.* (make test-ipex)", allow_module_level=True)
pytest.importorskip("intel_extension_for_pytorch")

from boneage.engine.build import StageSpec, build_artifact  # noqa: E402
from boneage.engine.loader import discover, load_engine, load_stages  # noqa: E402


@pytest.fixture(scope="module")
def ipex_artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from boneage.engine import weights

    torch.set_num_threads(1)
    src = weights.random_weights("demo", seed=3)
    out = tmp_path_factory.mktemp("ipex")
    for backend, precision in (("ipex", "fp32"), ("ipex", "bf16"), ("eager", "fp32")):
        build_artifact(src.stages, out, backend=backend, precision=precision, config_name=src.config_name,
                       model_config=src.model_config, model_version=src.model_version,
                       weights_sha256=src.weights_sha256, demo=True, max_batch=4)
    return out, src


def _stage_outputs(folder: Path, name: str, inputs: dict[str, tuple[torch.Tensor, ...]]) -> list[torch.Tensor]:
    (cand,) = [c for c in discover(folder) if c.manifest.name == name]
    det, reg = load_stages(cand)
    return [*det(*inputs["detector"]), *reg(*inputs["regressor"])]


def _inputs(src) -> dict[str, tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(9)
    return {stage: tuple(torch.rand([2, *t.shape[1:]], generator=g) if t.dim() == 4 else t.expand(2, -1)
                         for t in spec.inputs) for stage, spec in src.stages.items()}


def test_ipex_fp32_matches_eager(ipex_artifacts) -> None:
    folder, src = ipex_artifacts
    inputs = _inputs(src)
    for got, want in zip(_stage_outputs(folder, "ipex-fp32", inputs), _stage_outputs(folder, "eager-fp32", inputs)):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)


def test_ipex_bf16_is_close_to_eager(ipex_artifacts) -> None:
    folder, src = ipex_artifacts
    inputs = _inputs(src)
    for got, want in zip(_stage_outputs(folder, "ipex-bf16", inputs), _stage_outputs(folder, "eager-fp32", inputs)):
        scale = float(want.abs().max()) + 1e-6
        assert float((got - want).abs().max()) <= 0.05 * scale


def test_loader_picks_ipex_when_it_can_import_it(ipex_artifacts) -> None:
    folder, _ = ipex_artifacts
    engine = load_engine(folder, backend="ipex-fp32", threads=1, warm_up=True)
    assert (engine.backend, engine.precision) == ("ipex", "fp32")
    assert engine.manifest["ipex_version"].startswith("2.8")
