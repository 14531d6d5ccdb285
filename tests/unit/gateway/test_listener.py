"""The C-STORE handler: success only once the instance is on disk, an error status when it cannot be,
bytes stored as received; the accepted syntaxes cover everything ingest decodes."""

from __future__ import annotations

import os
from types import SimpleNamespace

from pydicom import uid as dcm_uid

from boneage.gateway.listener import (
    OUT_OF_RESOURCES, STORAGE_CLASSES, SUCCESS, TRANSFER_SYNTAXES, build_ae, make_store_handler,
)
from boneage.gateway.spool import Spool, ref_for

from .conftest import instance

UID = "1.2.826.0.1.3680043.8.498.101"


def _event(data: bytes, sop_uid: str = UID):
    return SimpleNamespace(
        assoc=SimpleNamespace(requestor=SimpleNamespace(ae_title="MODALITY", address="127.0.0.1")),
        request=SimpleNamespace(AffectedSOPInstanceUID=sop_uid),
        context=SimpleNamespace(transfer_syntax=dcm_uid.ExplicitVRLittleEndian),
        encoded_dataset=lambda include_meta=True: data)


def test_success_is_returned_after_the_bytes_are_on_disk_as_received(config):
    spool = Spool(config.spool_dir).create()
    woken = []
    data = instance(UID)
    assert make_store_handler(spool, lambda: woken.append(1))(_event(data)) == SUCCESS
    assert spool.inbox_path(ref_for(UID)).read_bytes() == data and woken == [1]
    assert make_store_handler(spool)(_event(data)) == SUCCESS          # a duplicate is acknowledged
    assert spool.inbox_refs() == [ref_for(UID)]


def test_a_spool_that_cannot_persist_answers_out_of_resources_not_success(config, monkeypatch):
    spool = Spool(config.spool_dir).create()

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert make_store_handler(spool)(_event(instance(UID))) == OUT_OF_RESOURCES
    assert spool.inbox_refs() == []


def test_every_transfer_syntax_ingest_decodes_is_accepted_without_transcoding():
    from boneage.imaging.dicom.decode import DECODERS
    from boneage.imaging.testing import NATIVE

    assert set(DECODERS) | set(NATIVE) <= set(TRANSFER_SYNTAXES)
    for sop in (dcm_uid.ComputedRadiographyImageStorage, dcm_uid.DigitalXRayImageStorageForPresentation,
                dcm_uid.DigitalXRayImageStorageForProcessing, dcm_uid.SecondaryCaptureImageStorage):
        assert sop in STORAGE_CLASSES


def test_the_ae_insists_on_its_title_and_the_allowed_callers(config):
    ae = build_ae(config)
    assert ae.require_called_aet is True
    assert ae.require_calling_aet == ["MODALITY", "PACS"]
    contexts = {c.abstract_syntax: c.transfer_syntax for c in ae.supported_contexts}
    assert set(contexts[dcm_uid.ComputedRadiographyImageStorage]) == set(TRANSFER_SYNTAXES)


def test_the_report_names_are_the_services():
    from boneage.gateway.results import REPORT_SC, REPORT_SR
    from boneage.report import REPORT_SC as SERVICE_SC, REPORT_SR as SERVICE_SR

    assert (REPORT_SC, REPORT_SR) == (SERVICE_SC, SERVICE_SR)


def test_the_results_schema_is_the_notifications():
    from boneage.gateway.results import SCHEMA
    from boneage.notification import SCHEMA as SERVICE_SCHEMA

    assert SCHEMA == SERVICE_SCHEMA
