"""Test doubles for the serverless tests: a fast fake assessor and a fault injector at the boto3 level.

The fake assessor stands in for the model ONLY in fault and volume tests (the main integration path
uses the real engine). Faults are injected on botocore's ``before-call`` event, so the real adapters
see a real ``ClientError`` with an AWS error code, exactly as a throttled or unavailable service
would answer; the decision is drawn from a seeded generator, so a run is reproducible.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from boneage.model.types import Box, ModelOutput


class FakeAssessor:
    """Deterministic bone age from the image content; raises ``RuntimeError`` with probability ``fail_rate``."""

    model_version = "fake-assessor"
    demo = True

    def __init__(self, *, fail_rate: float = 0.0, seed: int = 0) -> None:
        self.fail_rate = fail_rate
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self.calls = 0
        self.failures = 0

    def assess(self, image: np.ndarray, sex: str | None) -> ModelOutput:
        with self._lock:
            self.calls += 1
            fail = self._rng.random() < self.fail_rate
            self.failures += fail
        if fail:
            raise RuntimeError("injected model fault")
        h, w = image.shape
        months = float(24 + 168 * float(image.mean()))
        return ModelOutput(
            bone_age_months=months, interval_months=(months - 9.0, months + 9.0), sex_used=sex,
            hand_box=Box(0.1 * w, 0.1 * h, 0.9 * w, 0.9 * h, 0.99),
            qc={"hand_count": 1, "mirrored": False, "inverted": False}, model_version=self.model_version,
        )

    def assess_batch(self, images: list[np.ndarray], sexes: list[str | None]) -> list[ModelOutput]:
        return [self.assess(i, s) for i, s in zip(images, sexes)]


class _Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}


@dataclass
class FaultInjector:
    """Fails chosen AWS operations: always (``down``) or at a rate, drawn from a seeded generator."""

    rates: dict[str, float] = field(default_factory=dict)   # "dynamodb" or "dynamodb.PutItem" -> probability
    down: set[str] = field(default_factory=set)             # service or service.Operation names always failing
    seed: int = 0
    injected: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._lock = threading.Lock()

    def attach(self, clients: Iterable[Any]) -> FaultInjector:
        for client in clients:
            client.meta.events.register("before-call", self._before_call)
        return self

    def _before_call(self, model: Any, **_: Any) -> tuple[_Response, dict[str, Any]] | None:
        service = model.service_model.service_name
        names = (service, f"{service}.{model.name}")
        with self._lock:
            rate = max((self.rates.get(n, 0.0) for n in names), default=0.0)
            fail = any(n in self.down for n in names) or (rate > 0 and self._rng.random() < rate)
            if fail:
                self.injected[names[1]] = self.injected.get(names[1], 0) + 1
        if not fail:
            return None
        return _Response(503), {
            "Error": {"Code": "ServiceUnavailable", "Message": "injected fault"},
            "ResponseMetadata": {"HTTPStatusCode": 503},
        }


class SpyAssessor(FakeAssessor):
    """The fake model, recording the size of every batch it is given; with ``fail_batches`` a batch of
    several images raises (as a model running out of memory on a large batch would) while single images pass."""

    def __init__(self, *, fail_batches: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.fail_batches = fail_batches
        self.batches: list[int] = []

    def assess_batch(self, images: list[np.ndarray], sexes: list[str | None]) -> list[ModelOutput]:
        self.batches.append(len(images))
        if self.fail_batches and len(images) > 1:
            raise RuntimeError("injected batch fault")
        return super().assess_batch(images, sexes)
