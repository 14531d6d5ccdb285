"""A batch is fetched and assessed in groups bounded by bytes, not by count: ten uploads at the size limit
must not sit in memory at once (``ingest.max_batch_bytes``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from boneage.config import IngestSettings, Settings
from boneage.upload import FetchedObject, Upload

from .conftest import World

LIMIT = 100


class _Watched:
    """The object reader, counting the bytes fetched and not yet let go of when each assessment starts."""

    def __init__(self, inner: Any, log: list[tuple[str, int]]) -> None:
        self.inner, self.log = inner, log

    def current_version(self, bucket: str, key: str) -> str | None:
        return self.inner.current_version(bucket, key)

    def fetch(self, bucket: str, key: str, version_id: str | None) -> FetchedObject:
        fetched = self.inner.fetch(bucket, key, version_id)
        self.log.append(("fetch", len(fetched.data)))
        return fetched


def _world(log: list[tuple[str, int]]) -> tuple[World, Any]:
    world = World(settings=Settings(max_receive_count=3, lease_seconds=60,
                                    ingest=IngestSettings(max_file_bytes=150, max_batch_bytes=LIMIT)))
    processor = world.processor()
    processor.objects = _Watched(world.objects, log)
    inner = processor.service.assess_many

    def assess_many(items: list, **kw: Any) -> Any:
        log.append(("assess", len(items)))
        return inner(items, **kw)

    processor.service.assess_many = assess_many
    return world, processor


def _put(world: World, i: int, size: int, *, sized: bool = True) -> Upload:
    upload = world.put(f"incoming/st-mary/big-{i}.dcm", b"IMG" + bytes([i]) * (size - 3))
    return dataclasses.replace(upload, size=size if sized else None)


def test_large_uploads_are_assessed_in_groups_that_fit_the_byte_bound_and_each_gets_its_record() -> None:
    log: list[tuple[str, int]] = []
    world, processor = _world(log)
    uploads = [_put(world, i, 40) for i in range(5)]        # 200 bytes in all, 100 allowed at once
    outcomes = processor.process_many(uploads, [1] * 5)
    assert [o.outcome for o in outcomes] == ["completed"] * 5
    assert log == [("fetch", 40), ("fetch", 40), ("assess", 2), ("fetch", 40), ("fetch", 40), ("assess", 2),
                   ("fetch", 40), ("assess", 1)]
    assert sorted(world.notified()) == sorted((u.upload_id, "completed") for u in uploads)


def test_an_upload_larger_than_the_bound_is_assessed_alone() -> None:
    log: list[tuple[str, int]] = []
    world, processor = _world(log)
    uploads = [_put(world, 0, 30), _put(world, 1, 150), _put(world, 2, 30), _put(world, 3, 30)]
    outcomes = processor.process_many(uploads, [1] * 4)
    assert [o.outcome for o in outcomes] == ["completed"] * 4
    assert [n for kind, n in log if kind == "assess"] == [1, 1, 2]


def test_without_sizes_in_the_events_the_bytes_read_bound_the_group() -> None:
    log: list[tuple[str, int]] = []
    world, processor = _world(log)
    uploads = [_put(world, i, 60, sized=False) for i in range(3)]
    outcomes = processor.process_many(uploads, [1] * 3)
    assert [o.outcome for o in outcomes] == ["completed"] * 3
    # Each group is assessed once the next upload's bytes would take it past the bound.
    assert [n for kind, n in log if kind == "assess"] == [1, 1, 1]
    assert len(world.store.records) == 3 and len(world.notified()) == 3


def test_small_uploads_still_share_one_model_batch() -> None:
    log: list[tuple[str, int]] = []
    world, processor = _world(log)
    uploads = [_put(world, i, 10) for i in range(10)]
    processor.process_many(uploads, [1] * 10)
    assert [entry for entry in log if entry[0] == "assess"] == [("assess", 10)]
