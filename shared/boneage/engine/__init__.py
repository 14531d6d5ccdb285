"""Pre-compiled inference: builds artifacts (AOTInductor, TorchScript, IPEX, eager) and loads the best one.

``load_engine(artifact_dir, backend=None) -> Engine`` is what the service calls at init; it checks
each artifact's manifest against the host and falls back in a documented order (see ``loader``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported only when the engine is used
    from boneage.engine.loader import Engine

__all__ = ["Engine", "load_engine"]


def load_engine(*args: Any, **kwargs: Any) -> "Engine":
    from boneage.engine.loader import load_engine as _load

    return _load(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from boneage.engine.loader import Engine

        return Engine
    raise AttributeError(name)
