"""The upload use case wired to in-memory fakes of its ports (``boneage.fakes``): no emulator, no sockets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from boneage.config import Settings
from boneage.fakes import (
    FakeAssessmentService,
    FakeClock,
    InMemoryObjects,
    InMemoryReports,
    InMemoryResultStore,
    RecordingPublisher,
)
from boneage.processor import UploadProcessor
from boneage.upload import StoredRecord, Upload

BUCKET = "in-bucket"


@dataclass
class World:
    settings: Settings = field(default_factory=lambda: Settings(max_receive_count=3, lease_seconds=60))
    objects: InMemoryObjects = field(default_factory=InMemoryObjects)
    store: InMemoryResultStore = field(default_factory=InMemoryResultStore)
    reports: InMemoryReports = field(default_factory=InMemoryReports)
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)
    service: FakeAssessmentService = field(default_factory=FakeAssessmentService)
    clock: FakeClock = field(default_factory=FakeClock)

    def put(self, key: str, data: bytes = b"IMG boy", metadata: dict[str, str] | None = None) -> Upload:
        """Upload an object; the event names the version, as S3's does for a versioned bucket."""
        return Upload(BUCKET, key, self.objects.put(BUCKET, key, data, metadata))

    def processor(self, service: Any = None) -> UploadProcessor:
        return UploadProcessor(settings=self.settings, objects=self.objects, service=service or self.service,
                               store=self.store, reports=self.reports, publisher=self.publisher, clock=self.clock)

    def record(self, upload: Upload) -> StoredRecord:
        record = self.store.read(upload.upload_id)
        assert record is not None
        return record

    def notified(self) -> list[tuple[str, str]]:
        """(upload_id, status) of every message published, in order."""
        return [(m.attributes["upload_id"], m.attributes["status"]) for m in self.publisher.messages]

    def bodies(self) -> list[dict[str, Any]]:
        """The JSON body machine subscribers get, per message."""
        return [json.loads(json.loads(m.message)["sqs"]) for m in self.publisher.messages]


@pytest.fixture
def world() -> World:
    return World()
