"""The loader's fallbacks: a mismatched host never crashes the service, it falls back with a warning.

Order (``boneage.engine.loader``): asked-for backend, the benchmark's default, aoti > ipex >
torchscript > eager, then eager on the committed demo weights.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from boneage.engine import host, loader
from boneage.engine.manifest import Manifest, sha256_file


@pytest.fixture()
def artifacts(tmp_path: Path, built_artifacts: Path) -> Path:
    """A private copy each test may break."""
    out = tmp_path / "model"
    shutil.copytree(built_artifacts, out)
    return out


def _edit_manifest(folder: Path, **changes) -> None:
    data = json.loads((folder / "manifest.json").read_text())
    data.update(changes)
    (folder / "manifest.json").write_text(json.dumps(data))


def _fake_aoti(artifacts: Path, cpu_features: list[str]) -> Path:
    """An AOTInductor artifact folder whose manifest needs ``cpu_features`` (files are placeholders:
    the check must refuse it before anything is loaded)."""
    src = Manifest.read(artifacts / "torchscript-fp32")
    folder = artifacts / "aoti-fp32"
    folder.mkdir()
    files = {}
    for stage in ("detector", "regressor"):
        (folder / f"{stage}.pt2").write_bytes(b"placeholder")
        files[stage] = {"path": f"{stage}.pt2", "sha256": sha256_file(folder / f"{stage}.pt2")}
    src.backend, src.files, src.cpu_features, src.isa = "aoti", files, cpu_features, "avx512"
    src.write(folder)
    return folder


def _load(artifacts: Path | None, **kw) -> loader.Engine:
    return loader.load_engine(artifacts, threads=1, warm_up=False, **kw)


def test_aoti_is_preferred_then_torchscript_then_eager(built_artifacts: Path) -> None:
    order = loader.fallback_order(loader.discover(built_artifacts), preferred=None, default=None, bf16_native=False)
    assert [c.manifest.name for c in order] == ["torchscript-fp32", "eager-fp32"]


def test_requested_backend_is_loaded(artifacts: Path) -> None:
    engine = _load(artifacts, backend="eager")
    assert (engine.backend, engine.precision) == ("eager", "fp32")
    assert engine.fallbacks == []


def test_benchmark_default_wins_over_built_in_order(artifacts: Path) -> None:
    (artifacts / loader.DEFAULT_CHOICE).write_text(json.dumps({"backend": "eager", "precision": "fp32"}))
    assert _load(artifacts).backend == "eager"


def test_wrong_torch_version_falls_back_with_a_warning(artifacts: Path, caplog: pytest.LogCaptureFixture) -> None:
    _edit_manifest(artifacts / "torchscript-fp32", torch_version="2.11.0")
    with caplog.at_level(logging.WARNING, logger="boneage.engine.loader"):
        engine = _load(artifacts, backend="torchscript")
    assert engine.backend == "eager"
    assert any("torchscript-fp32" in f and "2.11.0" in f for f in engine.fallbacks)
    assert any("falling back from torchscript-fp32" in r.getMessage() for r in caplog.records)


def test_missing_cpu_flag_falls_back(artifacts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_aoti(artifacts, ["avx", "avx2", "fma", "f16c", "avx512f", "avx512bw"])
    # The host as Lambda documents it: AVX2, no AVX-512.
    monkeypatch.setattr(host, "effective_flags", lambda *a, **k: frozenset(host.ISA_LEVELS["avx2"]))
    engine = _load(artifacts)
    assert engine.backend == "torchscript"
    assert any("aoti-fp32" in f and "avx512f" in f for f in engine.fallbacks)


def test_artifact_that_fails_to_load_falls_back(artifacts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The flags match, so the loader really tries the placeholder package and must survive its failure.
    _fake_aoti(artifacts, [])
    engine = _load(artifacts)
    assert engine.backend == "torchscript"
    assert any(f.startswith("aoti-fp32: failed to load or run") for f in engine.fallbacks)


def test_missing_artifact_file_falls_back(artifacts: Path) -> None:
    (artifacts / "torchscript-fp32" / "regressor.ts").unlink()
    engine = _load(artifacts)
    assert engine.backend == "eager"
    assert any("missing artifact file regressor.ts" in f for f in engine.fallbacks)


def test_ipex_artifact_without_ipex_falls_back(artifacts: Path) -> None:
    shutil.copytree(artifacts / "torchscript-fp32", artifacts / "ipex-fp32")
    _edit_manifest(artifacts / "ipex-fp32", backend="ipex", ipex_version="2.8.0", torch_version="2.8.0")
    engine = _load(artifacts, backend="ipex")
    assert engine.backend != "ipex"
    assert any(f.startswith("ipex-fp32:") for f in engine.fallbacks)


@pytest.mark.skipif(not Path(__file__).resolve().parents[3].joinpath("shared/boneage/weights/demo.pt").exists(),
                    reason="the demo weights are not committed yet")
def test_no_artifact_at_all_runs_the_committed_demo_weights(tmp_path: Path) -> None:
    engine = _load(tmp_path / "nothing-here")
    assert (engine.backend, engine.precision, engine.artifact) == ("eager", "fp32", None)
    assert any("no artifact found" in f for f in engine.fallbacks)
    out = engine.assessor.assess(np.zeros((300, 200), np.float32), None)
    assert out.model_version == engine.model_version


def test_compiled_and_eager_assessors_agree(artifacts: Path) -> None:
    rng = np.random.default_rng(7)
    images = [rng.random((320, 256), dtype=np.float32) for _ in range(3)]
    ts, eager = _load(artifacts, backend="torchscript"), _load(artifacts, backend="eager")
    x = torch.from_numpy(images[0])[None, None]
    x = torch.nn.functional.interpolate(x, size=(ts.manifest["input_shapes"]["detector"][0][2],) * 2)
    for a, b in zip(ts.detector_fn(x), eager.detector_fn(x)):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
    batch_ts = ts.assessor.assess_batch(images, ["M", "F", None])
    batch_eager = eager.assessor.assess_batch(images, ["M", "F", None])
    assert [o.rejection for o in batch_ts] == [o.rejection for o in batch_eager]
    assert [o.qc["hand_count"] for o in batch_ts] == [o.qc["hand_count"] for o in batch_eager]


def test_batch_matches_one_by_one(artifacts: Path) -> None:
    engine = _load(artifacts, backend="torchscript")
    shape = engine.manifest["input_shapes"]["detector"][0]
    x = torch.rand([3, *shape[1:]], generator=torch.Generator().manual_seed(5))
    together = engine.detector_fn(x)
    for i in range(3):
        for a, b in zip(engine.detector_fn(x[i:i + 1]), together):
            torch.testing.assert_close(a[0], b[i], rtol=1e-4, atol=1e-4)


def test_warm_up_runs_each_stage_and_records_time(artifacts: Path) -> None:
    engine = _load(artifacts, backend="torchscript")
    assert engine.warm_up(iterations=1) > 0
    assert engine.init_ms["warm_up"] > 0


def _candidates(*names: str) -> list[loader.Candidate]:
    out = []
    for name in names:
        backend, precision = name.rsplit("-", 1)
        m = Manifest(backend=backend, precision=precision, config="demo", model_version="v", weights_sha256="0" * 64,
                     torch_version=torch.__version__, ipex_version=None, cpu_features=[], isa="default",
                     input_shapes={}, dynamic_batch=1, gflop_per_image={}, files={}, demo=True, model_config={})
        out.append(loader.Candidate(Path(name), m))
    return out


def test_int8_is_tried_after_fp32_unless_the_benchmark_chose_it() -> None:
    cands = _candidates("eager-fp32", "aoti-int8", "aoti-fp32", "aoti-bf16")
    order = [c.manifest.name for c in loader.fallback_order(cands, preferred=None, default=None, bf16_native=False)]
    assert order == ["aoti-fp32", "aoti-int8", "aoti-bf16", "eager-fp32"]
    chosen = loader.fallback_order(cands, preferred=None, default={"backend": "aoti", "precision": "int8"},
                                   bf16_native=False)
    assert chosen[0].manifest.name == "aoti-int8"
    native = [c.manifest.name for c in loader.fallback_order(cands, preferred=None, default=None, bf16_native=True)]
    assert native[0] == "aoti-bf16"
