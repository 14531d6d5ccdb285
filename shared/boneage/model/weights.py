"""Checkpoint files: both stages' weights, the config they were built with, and the model version.

A checkpoint is one ``torch.save`` dict (loaded with ``weights_only=True``: no pickled code runs).
The model version is ``<config>-<YYYYMMDD>-<sha8>`` where sha8 is the first 8 hex digits of the
SHA-256 of the checkpoint file, so every result names the exact weights that produced it.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .configs import ModelConfig

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEMO_WEIGHTS = WEIGHTS_DIR / "demo.pt"
FORMAT = "boneage-checkpoint/1"


@dataclass
class Checkpoint:
    cfg: ModelConfig
    detector_state: dict[str, torch.Tensor]
    regressor_state: dict[str, torch.Tensor]
    model_version: str
    demo: bool = True
    sha256: str = ""
    meta: dict[str, Any] = field(default_factory=dict)   # training data, date, metrics


def save_checkpoint(path: Path, cfg: ModelConfig, detector: torch.nn.Module, regressor: torch.nn.Module, *,
                    demo: bool, date: str, meta: dict[str, Any] | None = None, half: bool = False) -> str:
    """Write a checkpoint; returns its model version. ``half`` stores float tensors as fp16 (smaller file)."""
    def state(m: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
                for k, v in m.state_dict().items()}

    blob = {"format": FORMAT, "config": cfg.as_dict(), "detector": state(detector),
            "regressor": state(regressor), "demo": demo, "date": date, "meta": meta or {}}
    buf = io.BytesIO()
    torch.save(blob, buf)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = buf.getvalue()
    path.write_bytes(data)
    return f"{cfg.name}-{date}-{hashlib.sha256(data).hexdigest()[:8]}"


def load_checkpoint(path: str | Path | None = None) -> Checkpoint:
    """Load a checkpoint; ``None`` means the committed demo weights."""
    path = Path(path) if path is not None else DEMO_WEIGHTS
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    cfg = ModelConfig.from_dict(blob["config"])

    def full(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}

    return Checkpoint(cfg=cfg, detector_state=full(blob["detector"]), regressor_state=full(blob["regressor"]),
                      model_version=f"{cfg.name}-{blob['date']}-{sha[:8]}", demo=bool(blob["demo"]),
                      sha256=sha, meta=dict(blob.get("meta") or {}))
