"""Shared engine fixtures: small artifacts built once per session from seeded random demo weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ipex: needs torch 2.8 + intel-extension-for-pytorch (make test-ipex)")


@pytest.fixture(scope="session")
def demo_source():
    from boneage.engine import weights

    torch.set_num_threads(1)
    return weights.random_weights("demo", seed=3)


@pytest.fixture(scope="session")
def built_artifacts(tmp_path_factory: pytest.TempPathFactory, demo_source) -> Path:
    """torchscript-fp32 and eager-fp32 artifacts (seconds to build; AOTInductor is tested separately)."""
    from boneage.engine.build import build_artifact

    out = tmp_path_factory.mktemp("artifacts")
    for backend in ("torchscript", "eager"):
        build_artifact(demo_source.stages, out, backend=backend, precision="fp32",
                       config_name=demo_source.config_name, model_config=demo_source.model_config,
                       model_version=demo_source.model_version, weights_sha256=demo_source.weights_sha256,
                       demo=True, max_batch=4)
    return out
