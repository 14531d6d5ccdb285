"""The C-STORE handler: success only once the instance is on disk, an error status when it cannot be,
bytes stored as received; the accepted syntaxes cover everything ingest decodes."""

from __future__ import annotations

import os
from types import SimpleNamespace

from pydicom import uid as dcm_uid

from boneage.gateway.listener import (
    NOT_ASSESSED, OUT_OF_RESOURCES, OWN_RESULT, STORAGE_CLASSES, SUCCESS, TRANSFER_SYNTAXES, build_ae,
    make_store_handler,
)
from boneage.gateway.spool import Spool, ref_for

from .conftest import instance

UID = "1.2.826.0.1.3680043.8.498.101"


def _event(data: bytes, sop_uid: str = UID, sop_class: str = dcm_uid.DigitalXRayImageStorageForPresentation):
    return SimpleNamespace(
        assoc=SimpleNamespace(requestor=SimpleNamespace(ae_title="MODALITY", address="127.0.0.1")),
        request=SimpleNamespace(AffectedSOPInstanceUID=sop_uid, AffectedSOPClassUID=sop_class),
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


NOT_IMAGES = (dcm_uid.ComprehensiveSRStorage, dcm_uid.EnhancedSRStorage,
              dcm_uid.GrayscaleSoftcopyPresentationStateStorage, dcm_uid.KeyObjectSelectionDocumentStorage)


def test_objects_a_pacs_keeps_in_a_study_are_acknowledged_counted_and_never_spooled(config, caplog):
    spool = Spool(config.spool_dir).create()
    handler = make_store_handler(spool)
    for n, sop_class in enumerate(NOT_IMAGES):
        uid = f"{UID}.{n}"
        data = instance(uid, sop_class=sop_class, patient="DOE^JANE")
        with caplog.at_level("INFO", logger="boneage.gateway.listener"):
            assert handler(_event(data, uid, sop_class)) == SUCCESS
            assert handler(_event(data, uid, sop_class)) == SUCCESS       # sent again: counted once
    assert spool.inbox_refs() == []
    status = spool.status()
    assert status["ignored"] == len(NOT_IMAGES) and status["ignored_by_reason"] == {NOT_ASSESSED: len(NOT_IMAGES)}
    assert status["pending_uploads"] == 0 and status["spool_depth"] == 0
    lines = [r for r in caplog.records if r.getMessage() == "instance acknowledged, not uploaded"]
    assert len(lines) == len(NOT_IMAGES) and {r.reason for r in lines} == {NOT_ASSESSED}
    text = caplog.text + "".join(str(vars(r)) for r in caplog.records)
    assert "DOE" not in text and "MRN-0001" not in text and UID not in text


def test_our_own_results_are_never_spooled_whether_known_by_uid_or_by_manufacturer(config):
    from boneage.result import MANUFACTURER

    spool = Spool(config.spool_dir).create()
    handler = make_store_handler(spool)
    sc = dcm_uid.SecondaryCaptureImageStorage
    ours = instance(f"{UID}.1", sop_class=sc, manufacturer=MANUFACTURER)
    assert handler(_event(ours, f"{UID}.1", sc)) == SUCCESS
    delivered = instance(f"{UID}.2", sop_class=sc)              # no Manufacturer, but we delivered it
    spool.mark_own_result(ref_for(f"{UID}.2"))
    assert handler(_event(delivered, f"{UID}.2", sc)) == SUCCESS
    sr = dcm_uid.ComprehensiveSRStorage
    assert handler(_event(instance(f"{UID}.3", sop_class=sr, manufacturer=MANUFACTURER), f"{UID}.3", sr)) == SUCCESS
    assert spool.inbox_refs() == []
    assert spool.status()["ignored_by_reason"] == {OWN_RESULT: 3}
    # Someone else's secondary capture (a scanned film, say) is a radiograph to assess.
    theirs = instance(f"{UID}.4", sop_class=sc, manufacturer="ACME scanners")
    assert handler(_event(theirs, f"{UID}.4", sc)) == SUCCESS
    assert spool.inbox_refs() == [ref_for(f"{UID}.4")]


def test_every_storage_class_is_accepted_the_assessed_ones_without_transcoding(config):
    from pynetdicom import ALL_TRANSFER_SYNTAXES

    contexts = {c.abstract_syntax: c.transfer_syntax for c in build_ae(config).supported_contexts}
    for sop_class in NOT_IMAGES:
        assert set(contexts[sop_class]) == set(ALL_TRANSFER_SYNTAXES)
    for sop_class in STORAGE_CLASSES:
        assert set(contexts[sop_class]) == set(TRANSFER_SYNTAXES)


def test_the_names_the_gateway_reads_are_the_services():
    from boneage.gateway.results import DICOM_REPORTS, unwrap
    from boneage.notification import SCHEMA
    from boneage.report import REPORT_SC, REPORT_SR

    assert DICOM_REPORTS == (REPORT_SC, REPORT_SR)
    assert unwrap('{"schema": "%s", "upload_id": "u"}' % SCHEMA) is not None
