"""Integration tests: moto in server mode on 127.0.0.1 with the real template.yaml deployed (once per session).

Everything reaches the emulator over HTTP with boto3, the S3 -> SQS notification included; the
handler is called in-process with the real SQS event shape by ``LocalStack.drain`` (moto cannot run
an image function). Tests share the stack and keep apart by hospital id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from boneage.devstack import LocalStack, load_handler

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    with LocalStack.start(stack_name="boneage-it") as s:
        yield s


@pytest.fixture(autouse=True)
def _function_environment(request: pytest.FixtureRequest) -> Iterator[None]:
    """The function's environment (endpoint, table, topic ...) around each test that uses the stack only,
    so nothing leaks into the rest of the session."""
    if "stack" not in request.fixturenames:
        yield
        return
    with request.getfixturevalue("stack").environment():
        yield


@pytest.fixture(scope="session")
def real_service(stack: LocalStack) -> Any:
    """The real assessment service on the real engine (the artifact `make model` built, else demo weights)."""
    from boneage.engine import load_engine
    from boneage.service import AssessmentService

    engine = load_engine(stack.handler_env["MODEL_DIR"] or None, threads=1)
    return AssessmentService(engine.assessor)


@pytest.fixture
def handler(stack: LocalStack) -> Iterator[Any]:
    """The deployed function's handler module; tests inject their processor with ``app.init(...)``."""
    app = load_handler()
    yield app
    app._processor = None
