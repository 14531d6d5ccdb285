"""The manifest check refuses artifacts that would crash or misbehave on this host, saying why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boneage.engine.manifest import Manifest, ManifestError, check_compatible, sha256_file

HOST_AVX2 = frozenset({"sse2", "avx", "avx2", "fma", "f16c"})


def _artifact(tmp_path: Path, **overrides) -> tuple[Manifest, Path]:
    folder = tmp_path / "aoti-fp32"
    folder.mkdir()
    (folder / "detector.pt2").write_bytes(b"detector")
    fields = dict(backend="aoti", precision="fp32", config="demo", model_version="demo-x", weights_sha256="0" * 64,
                  torch_version="2.13.0+cpu", cpu_features=["avx", "avx2", "f16c", "fma"], isa="avx2",
                  files={"detector": {"path": "detector.pt2", "sha256": sha256_file(folder / "detector.pt2")}})
    fields.update(overrides)
    manifest = Manifest(**fields)
    manifest.write(folder)
    return manifest, folder


def _check(manifest: Manifest, folder: Path, *, torch_version: str = "2.13.0+cpu", flags=HOST_AVX2, ipex=None) -> None:
    check_compatible(manifest, folder, torch_version=torch_version, ipex_version=ipex, host_flags=flags)


def test_manifest_round_trips_through_json(tmp_path: Path) -> None:
    manifest, folder = _artifact(tmp_path, gflop_per_image={"total": 1.5}, input_shapes={"detector": [[1, 1, 8, 8]]})
    assert Manifest.read(folder) == manifest
    data = json.loads((folder / "manifest.json").read_text())
    for key in ("model_version", "weights_sha256", "torch_version", "ipex_version", "precision",
                "cpu_features", "input_shapes", "gflop_per_image"):
        assert key in data


def test_matching_host_is_accepted(tmp_path: Path) -> None:
    _check(*_artifact(tmp_path))


def test_aoti_needs_the_exact_torch_release(tmp_path: Path) -> None:
    manifest, folder = _artifact(tmp_path)
    with pytest.raises(ManifestError, match="torch 2.13.0"):
        _check(manifest, folder, torch_version="2.13.1")


def test_torchscript_tolerates_a_patch_release_but_not_a_minor_one(tmp_path: Path) -> None:
    manifest, folder = _artifact(tmp_path, backend="torchscript", cpu_features=[], isa="default")
    _check(manifest, folder, torch_version="2.13.1")
    with pytest.raises(ManifestError, match="minor release"):
        _check(manifest, folder, torch_version="2.8.0")


def test_missing_cpu_flag_is_named(tmp_path: Path) -> None:
    manifest, folder = _artifact(tmp_path, cpu_features=["avx2", "avx512f"], isa="avx512")
    with pytest.raises(ManifestError, match="avx512f"):
        _check(manifest, folder)


def test_ipex_artifact_needs_ipex(tmp_path: Path) -> None:
    manifest, folder = _artifact(tmp_path, backend="ipex", torch_version="2.8.0", ipex_version="2.8.0", cpu_features=[])
    with pytest.raises(ManifestError, match="intel_extension_for_pytorch"):
        _check(manifest, folder, torch_version="2.8.0")
    _check(manifest, folder, torch_version="2.8.0", ipex="2.8.0+cpu")


def test_missing_or_replaced_file_is_refused(tmp_path: Path) -> None:
    manifest, folder = _artifact(tmp_path)
    (folder / "detector.pt2").write_bytes(b"tampered")
    with pytest.raises(ManifestError, match="sha256"):
        _check(manifest, folder)
    (folder / "detector.pt2").unlink()
    with pytest.raises(ManifestError, match="missing artifact file"):
        _check(manifest, folder)


def test_unreadable_manifest_raises_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no manifest.json"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="unreadable"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": 99}))
    with pytest.raises(ManifestError, match="schema"):
        Manifest.read(tmp_path)
