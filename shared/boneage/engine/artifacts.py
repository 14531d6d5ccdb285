"""Which built artifacts in an output folder are current (``make model`` / ``scripts/build_model.py``).

A rebuild keeps an artifact only when it would come out the same (``up_to_date``) and removes those
built from other weights (``retire_stale``), whichever venv built them.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path


def retire_stale(out: Path, weights_sha256: str) -> None:
    """Remove artifacts in ``out`` built from other weights, whichever venv built them.

    Without this an IPEX or bf16 artifact of yesterday's weights stays beside today's fp32 ones,
    and the loader (or the benchmark) picks it up with the old model's answers."""
    from boneage.engine.manifest import Manifest, ManifestError

    if not out.is_dir():
        return
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        try:
            built_from = Manifest.read(folder).weights_sha256
        except ManifestError:
            continue
        if built_from != weights_sha256:
            print(f"removing {folder}: built from other weights ({built_from[:8]})", file=sys.stderr)
            shutil.rmtree(folder)


def up_to_date(folder: Path, *, weights_sha256: str, model_config: dict, ipex: str | None) -> bool:
    """An artifact this run would rebuild identically: same weights, architecture, torch (and IPEX),
    manifest schema, and every file present with its recorded hash."""
    import torch

    from boneage.engine.manifest import Manifest, ManifestError, sha256_file

    try:
        m = Manifest.read(folder)
    except ManifestError:
        return False
    same = (m.weights_sha256 == weights_sha256 and m.model_config == json.loads(json.dumps(model_config))
            and m.torch_version == torch.__version__ and (m.backend != "ipex" or m.ipex_version == ipex))
    return same and all((folder / f["path"]).is_file() and sha256_file(folder / f["path"]) == f["sha256"]
                        for f in m.files.values())
