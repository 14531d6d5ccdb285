"""The gateway with the real service: a DICOM instance C-STOREd to the gateway is uploaded, assessed by
the deployed function (real engine), notified through the results topic to the hospital's filtered
queue, and its SC and SR arrive at the PACS in the source's study, once."""

from __future__ import annotations

import io

import pytest
from pydicom import dcmread
from pydicom import uid as dcm_uid

from boneage.adapters.runtime import build_processor
from boneage.config import Settings
from boneage.devstack import sample_uploads
from boneage.devstack.gateway import GatewayAws, StorageSCP, free_port, wait_for
from boneage.gateway.config import GatewayConfig
from boneage.gateway.runner import Gateway
from boneage.gateway.spool import ref_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

HOSPITAL = "it-gateway"


def _hospital(stack) -> tuple[GatewayAws, dict]:
    """The hospital as onboarding makes it (its role's credentials: the function checks who put an
    upload), or, on a stack without onboarding, a results queue subscribed with the hospital's filter."""
    try:
        from boneage.devstack.hospitals import onboard
    except ImportError:
        queue = stack.subscribe_queue(f"gateway-results-{HOSPITAL}", filter_policy={"hospital_id": [HOSPITAL]})
        return GatewayAws.on(stack, queue), {}
    access = onboard(stack, HOSPITAL)
    return GatewayAws.for_hospital(access), {"s3": access.client("s3"), "sqs": access.client("sqs")}


def test_a_dicom_instance_comes_back_to_the_pacs_as_sc_and_sr_in_its_own_study(stack, handler, real_service, tmp_path):
    from pynetdicom import AE

    handler.init(build_processor(Settings.from_env(), real_service))
    aws, clients = _hospital(stack)
    (girl,) = [u for u in sample_uploads(hospitals=(HOSPITAL, "it-gateway-other")) if u.filename.endswith(".dcm")]
    source = dcmread(io.BytesIO(girl.body))
    pacs = StorageSCP().start()
    config = GatewayConfig.from_dict(aws.config(tmp_path / "spool", listen_port=free_port(), hospital_id=HOSPITAL,
                                                pacs=pacs.as_pacs()))
    try:
        with Gateway(config, **clients) as gateway:
            ae = AE(ae_title="MODALITY")
            ae.add_requested_context(source.SOPClassUID, source.file_meta.TransferSyntaxUID)
            assoc = ae.associate("127.0.0.1", gateway.port, ae_title="BONEAGE")
            assert assoc.send_c_store(source).Status == 0x0000
            assoc.release()
            entry = wait_for(lambda: gateway.spool.uploaded_entry(ref_for(source.SOPInstanceUID)), timeout_s=30,
                             what="the upload")
            assert stack.drain(handler.handler) >= 1
            wait_for(lambda: gateway.spool.status()["delivered"] == 1, timeout_s=60, what="the delivery")
            assert gateway.spool.status()["rejections_and_failures"] == 0
    finally:
        pacs.stop()
    assert entry["key"] == f"incoming/{HOSPITAL}/{ref_for(source.SOPInstanceUID)}.dcm"
    assert sorted(r[2] for r in pacs.received) == sorted([dcm_uid.SecondaryCaptureImageStorage,
                                                          dcm_uid.ComprehensiveSRStorage])
    assert {r[1] for r in pacs.received} == {source.StudyInstanceUID}
    assert source.SOPInstanceUID not in {r[0] for r in pacs.received}
