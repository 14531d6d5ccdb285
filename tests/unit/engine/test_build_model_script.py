"""scripts/build_model.py (``boneage.engine.artifacts``): artifacts built from other weights do not survive a rebuild."""

from __future__ import annotations

import shutil

from boneage.engine import artifacts


def test_rebuild_retires_artifacts_of_other_weights_and_keeps_matching_ones(tmp_path, built_artifacts, demo_source):
    out = tmp_path / "model"
    shutil.copytree(built_artifacts, out)
    artifacts.retire_stale(out, demo_source.weights_sha256)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["eager-fp32", "torchscript-fp32"]

    artifacts.retire_stale(out, "0" * 64)        # new weights: yesterday's artifacts must go
    assert [p for p in out.iterdir() if p.is_dir()] == []


def test_an_artifact_is_up_to_date_only_for_the_same_weights_architecture_and_intact_files(
        tmp_path, built_artifacts, demo_source):
    out = tmp_path / "model"
    shutil.copytree(built_artifacts, out)
    folder = out / "torchscript-fp32"
    kw = dict(model_config=demo_source.model_config, ipex=None)
    assert artifacts.up_to_date(folder, weights_sha256=demo_source.weights_sha256, **kw)
    assert not artifacts.up_to_date(folder, weights_sha256="0" * 64, **kw)
    other = dict(demo_source.model_config, score_threshold=0.9)
    assert not artifacts.up_to_date(folder, weights_sha256=demo_source.weights_sha256, model_config=other, ipex=None)
    (folder / "detector.ts").write_bytes(b"truncated")
    assert not artifacts.up_to_date(folder, weights_sha256=demo_source.weights_sha256, **kw)
