"""The uploader check: an upload is assessed only when the principal that put it is registered for the
hospital whose folder it is in; otherwise it is refused, never read, and never told to that hospital."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from boneage.errors import TransientFault
from boneage.fakes import InMemoryUploaderRegistry
from boneage.processor import UploadProcessor
from boneage.upload import UNKNOWN_HOSPITAL_ID, Upload, principal_unique_id

from .conftest import World

A_ROLE, B_ROLE = "AROAHOSPITALAROLE0001", "AROAHOSPITALBROLE0002"


def _processor(world: World, registry: InMemoryUploaderRegistry) -> UploadProcessor:
    return UploadProcessor(settings=world.settings, objects=world.objects, service=world.service,
                           store=world.store, reports=world.reports, publisher=world.publisher,
                           uploaders=registry, clock=world.clock)


def _by(upload: Upload, principal: str | None) -> Upload:
    return dataclasses.replace(upload, principal_id=principal)


@pytest.fixture
def registry() -> InMemoryUploaderRegistry:
    return InMemoryUploaderRegistry({"hosp-a": {A_ROLE}, "hosp-b": {B_ROLE}})


@pytest.mark.parametrize(("principal", "unique"), [
    ("AWS:AROAHOSPITALAROLE0001:gateway-1", A_ROLE),       # an assumed role's session
    ("AWS:AIDAUSER0000000001", "AIDAUSER0000000001"),      # an IAM user
    ("AROAX:session", "AROAX"), ("", None), (None, None), ("AWS:", None),
])
def test_the_unique_id_is_read_from_the_events_principal(principal: str | None, unique: str | None) -> None:
    assert principal_unique_id(principal) == unique


def test_a_hospitals_own_role_is_assessed(world: World, registry: InMemoryUploaderRegistry) -> None:
    upload = _by(world.put("incoming/hosp-a/hand.png", b"IMG boy"), f"AWS:{A_ROLE}:gateway")
    outcome = _processor(world, registry).process(upload)
    assert (outcome.outcome, outcome.hospital_id, outcome.reason) == ("completed", "hosp-a", None)
    assert world.record(upload).hospital_id == "hosp-a"


@pytest.mark.parametrize("principal", [f"AWS:{A_ROLE}:gateway", "AWS:AIDAOPERATOR0000001", "123456789012", None])
def test_a_put_into_another_hospitals_folder_is_refused_unread_and_never_told_to_that_hospital(
        world: World, registry: InMemoryUploaderRegistry, principal: str | None, caplog) -> None:
    upload = _by(world.put("incoming/hosp-b/Doe^Jane.png", b"IMG girl"), principal)
    with caplog.at_level(logging.WARNING, logger="boneage.processor"):
        outcome = _processor(world, registry).process(upload)
    assert (outcome.outcome, outcome.reason) == ("rejected", "uploader_mismatch")
    assert world.objects.fetches == 0 and world.service.calls == []      # never read, never assessed
    record = world.record(upload)
    assert record.result is not None and (record.status, record.result.reason) == ("rejected", "uploader_mismatch")
    assert record.hospital_id == UNKNOWN_HOSPITAL_ID                      # off hosp-b's worklist
    # One notification, routed to no hospital: no hospital id can match "_unknown" (HOSPITAL_ID_PATTERN).
    [message] = world.publisher.messages
    assert message.attributes["hospital_id"] == UNKNOWN_HOSPITAL_ID
    assert "hosp-b" not in message.message
    # The operator's line: the upload, the folder's hospital and who put it; no key (it may carry a name).
    [line] = [r for r in caplog.records if r.getMessage().startswith("upload refused")]
    assert (line.upload_id, line.hospital_id, line.reason) == (upload.upload_id, "hosp-b", "uploader_mismatch")
    assert line.principal == (principal_unique_id(principal) or "none")
    assert "Doe" not in caplog.text


def test_a_stale_cached_entry_is_read_again_before_refusing(world: World) -> None:
    class Stale(InMemoryUploaderRegistry):
        def principals(self, hospital_id: str, *, fresh: bool = False) -> frozenset[str] | None:
            got = super().principals(hospital_id, fresh=fresh)
            return got if fresh else frozenset({"AROAOLDROLE"})

    registry = Stale({"hosp-a": {A_ROLE}})
    upload = _by(world.put("incoming/hosp-a/hand.png"), f"AWS:{A_ROLE}:gw")
    assert _processor(world, registry).process(upload).outcome == "completed"
    assert registry.lookups == [("hosp-a", False), ("hosp-a", True)]


def test_a_hospital_without_a_registry_entry_is_an_unknown_hospital(world: World,
                                                                   registry: InMemoryUploaderRegistry) -> None:
    upload = _by(world.put("incoming/hosp-c/hand.png"), f"AWS:{A_ROLE}:gw")
    outcome = _processor(world, registry).process(upload)
    assert (outcome.outcome, outcome.reason) == ("rejected", "unknown_hospital")
    assert world.objects.fetches == 0


def test_a_key_outside_any_hospital_folder_needs_no_lookup(world: World, registry: InMemoryUploaderRegistry) -> None:
    upload = _by(world.put("incoming/loose.png"), f"AWS:{A_ROLE}:gw")
    assert _processor(world, registry).process(upload).reason == "unknown_hospital"
    assert registry.lookups == []


def test_the_registry_down_is_a_fault_retried_not_a_verdict(world: World, registry: InMemoryUploaderRegistry) -> None:
    registry.down.add("principals")
    upload = _by(world.put("incoming/hosp-a/hand.png"), f"AWS:{A_ROLE}:gw")
    with pytest.raises(TransientFault):
        _processor(world, registry).process(upload, attempt=1)
    assert world.store.records == [] and world.publisher.messages == []
    registry.down.clear()
    assert _processor(world, registry).process(upload, attempt=2).outcome == "completed"


def test_a_refused_upload_failing_on_its_last_attempt_is_still_kept_off_the_folders_hospital(
        world: World, registry: InMemoryUploaderRegistry) -> None:
    world.store.down.add("finish")
    upload = _by(world.put("incoming/hosp-b/hand.png"), f"AWS:{A_ROLE}:gw")
    with pytest.raises(TransientFault):
        _processor(world, registry).process(upload, attempt=world.settings.max_receive_count)
    record = world.record(upload)
    assert (record.status, record.hospital_id) == ("failed", UNKNOWN_HOSPITAL_ID)
    assert all(m.attributes["hospital_id"] == UNKNOWN_HOSPITAL_ID for m in world.publisher.messages)
