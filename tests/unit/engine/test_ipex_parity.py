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


@pytest.fixture(scope="module", params=["random-demo", "no-wrist", "wrist"])
def ipex_artifacts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """Three sources: seeded random demo weights (with the wrist stage the demo config has), the
    committed checkpoint without its wrist stage (the regressor takes two inputs) and with a seeded
    one in place of its own (three inputs, mature_logit from the wrist net)."""
    from boneage.engine import weights

    torch.set_num_threads(1)
    if request.param == "random-demo":
        src = weights.random_weights("demo", seed=3)
    elif request.param == "no-wrist":
        src = weights.from_checkpoint(str(request.getfixturevalue("no_wrist_checkpoint")))
        assert len(src.stages["regressor"].inputs) == 2
    else:
        src = weights.from_checkpoint(str(request.getfixturevalue("wrist_checkpoint")))
        assert len(src.stages["regressor"].inputs) == 3
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


def test_ipex_assessor_passes_every_regressor_input_and_agrees_with_eager(ipex_artifacts) -> None:
    """A phantom through the loaded IPEX engine: the same maturity probability and bone age as the eager
    artifact (for the wrist checkpoint the probability is the wrist stage's, read from the patch)."""
    import numpy as np

    from boneage.phantom import render_sample

    folder, _ = ipex_artifacts
    rng = np.random.default_rng(2026)
    films = [render_sample(rng, kind="left", size=512)[0] for _ in range(3)]
    ipex_out = load_engine(folder, backend="ipex-fp32", threads=1).assessor.assess_batch(films, ["M", "F", None])
    eager_out = load_engine(folder, backend="eager-fp32", threads=1).assessor.assess_batch(films, ["M", "F", None])
    for a, b in zip(ipex_out, eager_out):
        assert a.qc["hand_count"] == b.qc["hand_count"] and (a.rejection is None) == (b.rejection is None)
        if "mature_probability" in b.qc:
            assert abs(a.qc["mature_probability"] - b.qc["mature_probability"]) <= 2e-3
            if b.bone_age_months is not None:
                assert abs(a.bone_age_months - b.bone_age_months) <= 0.1
