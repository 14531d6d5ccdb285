"""The manifest every engine artifact carries, and the check of a manifest against the running host.

An artifact is a folder ``<backend>-<precision>/`` holding the compiled files and ``manifest.json``.
The manifest says what the artifact is (model version, weights hash, config, backend, precision),
what it was built with (torch and IPEX versions) and what it needs (CPU flags, input shapes), so the
loader can refuse an artifact that would crash or silently misbehave on this host.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# 2: compiled backends hold the deploy form (re-parameterised, BN folded, heads unshared), int8 exists,
# eager is the stock NCHW baseline. Older artifacts are refused (and rebuilt by make model / make bench).
SCHEMA_VERSION = 2
MANIFEST_NAME = "manifest.json"
BACKENDS = ("aoti", "ipex", "torchscript", "eager")
PRECISIONS = ("fp32", "bf16", "int8")


@dataclass
class Manifest:
    backend: str                                   # one of BACKENDS
    precision: str                                 # one of PRECISIONS
    config: str                                    # model config name (demo / clinical / seed_equivalent)
    model_version: str
    weights_sha256: str                            # of the checkpoint the artifact was built from
    torch_version: str                             # torch.__version__ at build time
    ipex_version: str | None = None
    cpu_features: list[str] = field(default_factory=list)   # flags the compiled code executes (must be present)
    isa: str = "default"                           # ISA level the code was compiled for (host.ISA_LEVELS)
    input_shapes: dict[str, list[list[int]]] = field(default_factory=dict)  # stage -> shapes at batch 1
    dynamic_batch: int = 1                         # largest batch one call accepts (dim 0); larger ones are split
    gflop_per_image: dict[str, float] = field(default_factory=dict)        # stage -> GFLOP, plus "total"
    files: dict[str, dict[str, str]] = field(default_factory=dict)         # stage -> {"path", "sha256"}
    demo: bool = True
    model_config: dict[str, Any] = field(default_factory=dict)  # ModelConfig.as_dict() the assessor needs
    schema: int = SCHEMA_VERSION
    built_at: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MANIFEST_NAME
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """Raises ``ManifestError`` when the manifest is missing or unreadable."""
        path = Path(folder) / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ManifestError(f"no {MANIFEST_NAME} in {folder}") from exc
        except (OSError, ValueError) as exc:
            raise ManifestError(f"unreadable manifest {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION:
            raise ManifestError(f"{path}: schema {data.get('schema') if isinstance(data, dict) else '?'} != {SCHEMA_VERSION}")
        try:
            return cls.from_dict(data)
        except TypeError as exc:
            raise ManifestError(f"{path}: {exc}") from exc

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.precision}"


class ManifestError(Exception):
    """The artifact cannot be used here; the message says why (it goes into the fallback warning)."""


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _release(version: str) -> tuple[int, ...]:
    """'2.13.0+cpu' -> (2, 13, 0): local tags (+cpu, +cu128) do not change the ABI on CPU."""
    parts = version.split("+", 1)[0].split(".")
    out = []
    for p in parts[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def check_compatible(
    manifest: Manifest,
    folder: Path,
    *,
    torch_version: str,
    ipex_version: str | None,
    host_flags: frozenset[str],
    verify_files: bool = True,
) -> None:
    """Raise ``ManifestError`` saying why ``manifest`` cannot run on this host; return if it can.

    AOTInductor packages are compiled C++ against one torch release's ABI and one ISA, so they need
    the exact torch release and every CPU flag they were compiled for (else: load error or SIGILL).
    TorchScript needs the same major.minor (newer readers usually cope, older ones do not). IPEX
    artifacts need IPEX itself, which imports only with torch 2.8.*.
    """
    if manifest.backend not in BACKENDS:
        raise ManifestError(f"unknown backend {manifest.backend!r}")
    if manifest.precision not in PRECISIONS:
        raise ManifestError(f"unknown precision {manifest.precision!r}")
    built, running = _release(manifest.torch_version), _release(torch_version)
    if manifest.backend == "aoti" and built != running:
        raise ManifestError(f"built with torch {manifest.torch_version}, running {torch_version} (AOTInductor needs the same release)")
    if manifest.backend in ("torchscript", "ipex") and built[:2] != running[:2]:
        raise ManifestError(f"built with torch {manifest.torch_version}, running {torch_version} (TorchScript needs the same minor release)")
    if manifest.backend == "ipex":
        if ipex_version is None:
            raise ManifestError("intel_extension_for_pytorch is not importable here")
        if manifest.ipex_version and _release(manifest.ipex_version)[:2] != _release(ipex_version)[:2]:
            raise ManifestError(f"built with IPEX {manifest.ipex_version}, running {ipex_version}")
    missing = sorted(set(manifest.cpu_features) - host_flags)
    if missing:
        raise ManifestError(f"host CPU lacks {', '.join(missing)} (artifact compiled for {manifest.isa})")
    for stage, entry in manifest.files.items():
        path = Path(folder) / entry["path"]
        if not path.is_file():
            raise ManifestError(f"missing artifact file {entry['path']} for {stage}")
        if verify_files and entry.get("sha256") and sha256_file(path) != entry["sha256"]:
            raise ManifestError(f"artifact file {entry['path']} does not match its sha256 (corrupt or replaced)")
