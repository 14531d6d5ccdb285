"""The two-stage bone age model: hand detector + regressor, their configs, weights and QC pipeline.

Submodules import torch; ``boneage.model.types`` does not, so callers that only need the result
shapes stay light. The builders are re-exported lazily for the same reason.
"""

from __future__ import annotations

from typing import Any

_LAZY = {"build_detector", "build_regressor", "example_inputs", "gflops"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import networks
        return getattr(networks, name)
    if name == "CONFIGS":
        from .configs import CONFIGS
        return CONFIGS
    raise AttributeError(name)
