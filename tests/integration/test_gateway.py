"""The DICOM gateway on loopback: dcmtk's echoscu/storescu and pynetdicom as the modality, moto server
as S3 and SQS, pynetdicom's SCP and dcmtk's storescp as the PACS, ``boneage gateway run`` as a real
process where a crash is the point. Orthanc round trips are in the PACS tests (part 4)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom import uid as dcm_uid

from boneage.devstack.gateway import (
    GatewayAws, GatewayProcess, StorageSCP, dx_instance, free_port, gateway_cli, publish_result, wait_for,
    write_config,
)
from boneage.devstack.proxy import TcpProxy
from boneage.devstack.stack import EMULATOR_ENV, ROOT
from boneage.gateway.config import GatewayConfig
from boneage.gateway.runner import Gateway
from boneage.gateway.spool import Spool, ref_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DCMTK = shutil.which("storescu") is not None and shutil.which("echoscu") is not None
needs_dcmtk = pytest.mark.skipif(not DCMTK, reason="dcmtk (storescu, echoscu) is not installed")
STUDY = "1.2.826.0.1.3680043.8.498.7000"


@pytest.fixture(scope="module")
def aws():
    aws = GatewayAws.start()
    yield aws
    aws.stop()


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    for k, v in EMULATOR_ENV.items():
        monkeypatch.setenv(k, v)


def _uid(n: int) -> str:
    return f"{STUDY}.{n}"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# storescu proposes uncompressed syntaxes only unless told which compressed one to offer.
PROPOSE = {dcm_uid.JPEGLSLossless: "-xt", dcm_uid.RLELossless: "-xr", dcm_uid.JPEG2000Lossless: "-xv",
           dcm_uid.JPEGLosslessSV1: "-xs", dcm_uid.DeflatedExplicitVRLittleEndian: "-xd"}


def _storescu(port: int, *files: Path, calling: str = "MODALITY", called: str = "BONEAGE",
              ts: str | None = None) -> subprocess.CompletedProcess:
    flags = [PROPOSE[ts]] if ts in PROPOSE else []
    return subprocess.run(["storescu", *flags, "-aet", calling, "-aec", called, "127.0.0.1", str(port), *map(str, files)],
                          capture_output=True, text=True, timeout=60)


def _gateway(aws: GatewayAws, tmp_path: Path, **kw) -> tuple[Gateway, Path]:
    port = free_port()
    path = write_config(tmp_path / "gateway.json", aws.config(tmp_path / "spool", listen_port=port, **kw))
    return Gateway(GatewayConfig.load(path), config_path=str(path)), path


@needs_dcmtk
def test_echoscu_is_answered_and_a_calling_ae_not_allowed_is_rejected(aws, tmp_path):
    gateway, _ = _gateway(aws, tmp_path)
    with gateway:
        ok = subprocess.run(["echoscu", "-aet", "MODALITY", "-aec", "BONEAGE", "127.0.0.1", str(gateway.port)],
                            capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
        stranger = subprocess.run(["echoscu", "-aet", "INTRUDER", "-aec", "BONEAGE", "127.0.0.1", str(gateway.port)],
                                  capture_output=True, text=True, timeout=30)
        assert stranger.returncode != 0 and "Rejected" in stranger.stderr + stranger.stdout
        wrong_called = subprocess.run(["echoscu", "-aet", "MODALITY", "-aec", "SOMEONE", "127.0.0.1",
                                       str(gateway.port)], capture_output=True, text=True, timeout=30)
        assert wrong_called.returncode != 0
        data = dx_instance(1, sop_uid=_uid(1), study_uid=STUDY)
        rejected = _storescu(gateway.port, _write(tmp_path, "a.dcm", data), calling="INTRUDER")
        assert rejected.returncode != 0
        assert gateway.spool.status()["pending_uploads"] + gateway.spool.status()["uploaded"] == 0


def test_a_pynetdicom_caller_not_allowed_gets_an_association_rejection(aws, tmp_path):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    gateway, _ = _gateway(aws, tmp_path)
    with gateway:
        ae = AE(ae_title="INTRUDER")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", gateway.port, ae_title="BONEAGE")
        assert assoc.is_rejected and not assoc.is_established


@needs_dcmtk
@pytest.mark.parametrize("ts", [dcm_uid.ExplicitVRLittleEndian, dcm_uid.ImplicitVRLittleEndian,
                                dcm_uid.JPEGLSLossless, dcm_uid.RLELossless, dcm_uid.JPEG2000Lossless,
                                dcm_uid.JPEGLosslessSV1, dcm_uid.DeflatedExplicitVRLittleEndian])
def test_storescu_instances_are_uploaded_once_as_received_under_a_phi_free_key(aws, tmp_path, ts):
    n = 100 + sorted(dcm_uid.AllTransferSyntaxes).index(ts)
    data = dx_instance(n, sop_uid=_uid(n), study_uid=STUDY, ts=ts)
    path = _write(tmp_path, "x.dcm", data)
    gateway, _ = _gateway(aws, tmp_path)
    with gateway:
        sent = _storescu(gateway.port, path, ts=ts)
        assert sent.returncode == 0, sent.stderr
        again = _storescu(gateway.port, path, ts=ts)           # the same SOP Instance UID a second time
        assert again.returncode == 0, again.stderr
        ref = ref_for(_uid(n))
        entry = wait_for(lambda: gateway.spool.uploaded_entry(ref), timeout_s=30, what="the upload")
    key = f"incoming/st-mary/{ref}.dcm"
    assert entry["key"] == key and entry["study_instance_uid"] == STUDY and entry["upload_id"]
    assert aws.versions(key) == {key: 1}
    stored = aws.client("s3").get_object(Bucket=aws.upload_bucket, Key=key)["Body"].read()
    received, original = dcmread(io.BytesIO(stored)), dcmread(path)
    assert received.file_meta.TransferSyntaxUID == ts                    # not transcoded
    assert received.PixelData == original.PixelData and received.PatientName == original.PatientName
    for phi in ("PHANTOM", "PH0", STUDY, _uid(n)):
        assert phi not in key


def _relay_to(aws: GatewayAws) -> TcpProxy:
    """The gateway's way to the emulator, through a relay a test can cut."""
    host, port = aws.endpoint.split("//")[1].rsplit(":", 1)
    return TcpProxy(int(port), target_host=host).start()


def test_a_cut_resets_the_connections_open_through_it_and_refuses_new_ones(aws):
    """A client holding a connection open (a pooled keep-alive one, a blocked read) sees the cut at once:
    the relay shuts its sockets down rather than only closing them, which on Linux would not wake the
    relay's own reads, so the connection would live on through the cut."""
    import socket
    import time

    import boto3
    from botocore.config import Config
    from botocore.exceptions import EndpointConnectionError

    from boneage.devstack.stack import REGION

    proxy = _relay_to(aws)
    s3 = boto3.client("s3", endpoint_url=proxy.url, region_name=REGION,     # credentials: the autouse fixture's
                      config=Config(retries={"total_max_attempts": 1}))
    try:
        s3.head_bucket(Bucket=aws.upload_bucket)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as held:
            wait_for(lambda: proxy.connections == 2, timeout_s=10, what="the held connection")
            proxy.cut()
            started = time.monotonic()
            try:
                data = held.recv(1)
            except ConnectionResetError:
                data = b""
            assert data == b"" and time.monotonic() - started < 5      # reset now, not a timeout
        with pytest.raises(EndpointConnectionError):
            s3.head_bucket(Bucket=aws.upload_bucket)
        proxy.restore()
        s3.head_bucket(Bucket=aws.upload_bucket)
        assert proxy.connections == 3
    finally:
        proxy.stop()


def test_uploads_wait_while_s3_is_unreachable_and_go_once_when_it_is_back(aws, tmp_path):
    from pynetdicom import AE

    proxy = _relay_to(aws)
    proxy.cut()
    gateway, _ = _gateway(aws, tmp_path, endpoint_url=proxy.url)
    try:
        with gateway:
            ae = AE(ae_title="MODALITY")
            ae.add_requested_context(dcm_uid.DigitalXRayImageStorageForPresentation, dcm_uid.ExplicitVRLittleEndian)
            assoc = ae.associate("127.0.0.1", gateway.port, ae_title="BONEAGE")
            assert assoc.is_established
            data = dx_instance(7, sop_uid=_uid(7), study_uid=STUDY)
            status = assoc.send_c_store(dcmread(io.BytesIO(data)))
            assoc.release()
            assert status.Status == 0x0000
            wait_for(lambda: gateway.uploader.failures >= 2, timeout_s=30, what="failed upload attempts")
            assert gateway.spool.status()["pending_uploads"] == 1 and proxy.connections == 0
            proxy.restore()
            wait_for(lambda: gateway.spool.status()["pending_uploads"] == 0, timeout_s=30, what="the upload")
    finally:
        proxy.stop()
    key = f"incoming/st-mary/{ref_for(_uid(7))}.dcm"
    assert aws.versions(key) == {key: 1}


@needs_dcmtk
def test_sigkill_after_c_store_success_and_before_upload_then_restart_uploads_exactly_once(aws, tmp_path):
    proxy = _relay_to(aws)
    proxy.cut()                                         # acknowledged, but cannot be uploaded yet
    listen = free_port()
    config = write_config(tmp_path / "gateway.json",
                          aws.config(tmp_path / "spool", listen_port=listen, endpoint_url=proxy.url))
    files = [_write(tmp_path, f"k{i}.dcm", dx_instance(20 + i, sop_uid=_uid(20 + i), study_uid=STUDY))
             for i in range(3)]
    try:
        with GatewayProcess(config).start(ready_port=listen) as first:
            sent = _storescu(listen, *files)
            assert sent.returncode == 0, sent.stderr
            wait_for(lambda: any(line["message"] == "upload failed; retrying" for line in first.logs()),
                     timeout_s=30, what="a failed upload attempt while cut")
            first.kill()                                # SIGKILL: no shutdown of any kind
            assert first.proc.returncode == -9
        spool = Spool(tmp_path / "spool")
        assert len(spool.inbox_refs()) == 3             # what was acknowledged survived
        assert proxy.connections == 0
        proxy.restore()
        with GatewayProcess(config).start(ready_port=listen) as second:
            wait_for(lambda: spool.status()["uploaded"] == 3, timeout_s=60, what="the uploads after the restart")
            assert second.terminate() == 0              # SIGTERM: a clean exit
        assert any(line["message"] == "gateway stopped" for line in second.logs())
        text = first.log_path.read_text()
        assert text.count("instance received") == 3
        for phi in ("PHANTOM", "PH0000", "A0000", STUDY):          # names, IDs, accession numbers, UIDs
            assert phi not in text
    finally:
        proxy.stop()
    for i in range(3):
        key = f"incoming/st-mary/{ref_for(_uid(20 + i))}.dcm"
        assert aws.versions(key) == {key: 1}


def _upload_one(aws, gateway, tmp_path, n: int) -> dict:
    from pynetdicom import AE

    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(dcm_uid.DigitalXRayImageStorageForPresentation, dcm_uid.ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", gateway.port, ae_title="BONEAGE")
    status = assoc.send_c_store(dcmread(io.BytesIO(dx_instance(n, sop_uid=_uid(n), study_uid=STUDY))))
    assoc.release()
    assert status.Status == 0x0000
    return wait_for(lambda: gateway.spool.uploaded_entry(ref_for(_uid(n))), timeout_s=30, what="the upload")


def test_a_completed_result_reaches_the_pacs_in_the_source_study_once_despite_redelivery(aws, tmp_path):
    pacs = StorageSCP().start()
    gateway, _ = _gateway(aws, tmp_path, pacs=pacs.as_pacs())
    try:
        with gateway:
            entry = _upload_one(aws, gateway, tmp_path, 40)
            for envelope in (True, False, True):        # SNS envelope, raw delivery, a redelivery
                publish_result(aws, upload_id=entry["upload_id"], object_key=entry["key"], study_uid=STUDY,
                               envelope=envelope)
            wait_for(lambda: gateway.spool.status()["delivered"] == 1, timeout_s=30, what="the delivery")
            wait_for(lambda: aws.client("sqs").get_queue_attributes(
                QueueUrl=aws.queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"] == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"},
                timeout_s=30, what="every message deleted")
    finally:
        pacs.stop()
    assert len(pacs.received) == 2
    assert {r[1] for r in pacs.received} == {STUDY}
    assert {r[2] for r in pacs.received} == {dcm_uid.SecondaryCaptureImageStorage, dcm_uid.ComprehensiveSRStorage}


def test_a_rejection_is_kept_for_the_operator_and_nothing_goes_to_the_pacs(aws, tmp_path):
    pacs = StorageSCP().start()
    gateway, path = _gateway(aws, tmp_path, pacs=pacs.as_pacs())
    try:
        with gateway:
            entry = _upload_one(aws, gateway, tmp_path, 41)
            publish_result(aws, upload_id=entry["upload_id"], object_key=entry["key"], study_uid=STUDY,
                           status="rejected", reason="unsupported_modality")
            wait_for(lambda: gateway.spool.status()["rejections_and_failures"] == 1, timeout_s=30, what="the outcome")
    finally:
        pacs.stop()
    assert pacs.received == []
    status = _cli("status", path)
    assert status["outcomes"] == [{"upload_id": entry["upload_id"], "ref": ref_for(_uid(41)), "status": "rejected",
                                   "reason": "unsupported_modality"}]


def _cli(action: str, config: Path) -> dict:
    return gateway_cli(config, action, env={"PATH": "/usr/bin:/bin"})      # no AWS credentials needed


def test_pacs_down_dead_letters_after_the_maximum_age_and_resend_delivers_once_it_is_back(aws, tmp_path):
    pacs = StorageSCP(port=free_port())                 # not started: the PACS is down
    gateway, path = _gateway(aws, tmp_path, pacs=pacs.as_pacs(), retry={
        "initial_backoff_s": 0.1, "max_backoff_s": 0.5, "max_delivery_attempts": 4, "max_delivery_age_s": 2})
    with gateway:
        entry = _upload_one(aws, gateway, tmp_path, 42)
        publish_result(aws, upload_id=entry["upload_id"], object_key=entry["key"], study_uid=STUDY)
        wait_for(lambda: gateway.spool.status()["dead_letters"] == 1, timeout_s=60, what="the dead letter")
        status = _cli("status", path)
        assert status["running"] is True and status["dead_letters"] == 1 and status["pending_deliveries"] == 0
        second = subprocess.run([sys.executable, "-m", "boneage.cli", "gateway", "run", "--config", str(path)],
                                capture_output=True, text=True, timeout=60, cwd=ROOT,
                                env={"PYTHONPATH": str(ROOT / "shared"), "PATH": "/usr/bin:/bin", **EMULATOR_ENV})
        assert second.returncode == 1 and "another gateway is running" in second.stderr     # one per spool
        dead = status["dead"][0]
        assert dead["last_error"] == "pacs_unreachable" and dead["dead_reason"] == "max_age"
        assert dead["attempts"] >= 2 and dead["refusals"] == 0         # an outage is not a refusal
        pacs.start()
        try:
            assert _cli("resend", path)["moved"] == 1
            gateway.deliverer.wake.set()
            wait_for(lambda: gateway.spool.status()["delivered"] == 1, timeout_s=30, what="the resent delivery")
        finally:
            pacs.stop()
    assert len(pacs.received) == 2 and {r[1] for r in pacs.received} == {STUDY}
    assert _cli("status", path)["running"] is False


@pytest.mark.skipif(shutil.which("storescp") is None, reason="dcmtk's storescp is not installed")
def test_results_are_stored_by_dcmtk_storescp(aws, tmp_path):
    port = free_port()
    out = tmp_path / "pacs"
    out.mkdir()
    scp = subprocess.Popen(["storescp", "-aet", "PACS", "-od", str(out), "+xa", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        gateway, _ = _gateway(aws, tmp_path, pacs={"host": "127.0.0.1", "port": port, "ae_title": "PACS"})
        with gateway:
            entry = _upload_one(aws, gateway, tmp_path, 43)
            publish_result(aws, upload_id=entry["upload_id"], object_key=entry["key"], study_uid=STUDY)
            wait_for(lambda: gateway.spool.status()["delivered"] == 1, timeout_s=30, what="the delivery")
    finally:
        scp.terminate()
        scp.wait(10)
    stored = [dcmread(p) for p in out.iterdir()]
    assert len(stored) == 2 and {ds.StudyInstanceUID for ds in stored} == {STUDY}


def test_stow_rs_posts_both_reports_in_one_multipart_request_and_reads_failures_from_a_200(tmp_path):
    import http.server
    import threading

    from boneage.gateway.delivery import StowSender

    from boneage.gateway.delivery import DeliveryError

    received: list[tuple[str, bytes]] = []
    replies = [b"{}", b'{"00081198": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3"]}}]}}']

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):      # noqa: N802
            received.append((self.headers["Content-Type"], self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.end_headers()
            self.wfile.write(replies[len(received) - 1])

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    files = [_write(tmp_path, n, n.encode() * 10) for n in ("report_sc.dcm", "report_sr.dcm")]
    sender = StowSender(f"http://127.0.0.1:{server.server_address[1]}/dicom-web/studies")
    try:
        sent = sender.send(files)
        with pytest.raises(DeliveryError, match="stow_failed_sop"):      # a 200 that lists a failed instance
            sender.send(files)
    finally:
        server.shutdown()
    assert sent == files
    content_type, body = received[0]
    assert content_type.startswith('multipart/related; type="application/dicom"; boundary=')
    boundary = content_type.rsplit("=", 1)[1]
    assert body.count(f"--{boundary}".encode()) == 3 and b"report_sc.dcm" * 10 in body


def test_a_pacs_that_refuses_the_reports_syntax_is_a_named_failure_not_a_crash(aws, tmp_path):
    """A PACS that takes no syntax at all for the SC/SR (not even uncompressed) is a refusal with a named
    error, dead-lettered after max_delivery_attempts refusals."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title="PACS")
    ae.add_supported_context(Verification)                  # accepts associations, stores nothing
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, lambda e: 0)])
    gateway, _ = _gateway(aws, tmp_path, pacs={"host": "127.0.0.1", "port": port, "ae_title": "PACS"})
    try:
        with gateway:
            entry = _upload_one(aws, gateway, tmp_path, 44)
            publish_result(aws, upload_id=entry["upload_id"], object_key=entry["key"], study_uid=STUDY)
            wait_for(lambda: gateway.spool.status()["dead_letters"] == 1, timeout_s=60, what="the dead letter")
    finally:
        server.shutdown()
    dead = gateway.spool.status()["dead"][0]
    assert dead["last_error"] == "presentation_context_not_accepted" and dead["dead_reason"] == "refused"
    assert dead["attempts"] == dead["refusals"] == 4                    # the config's max_delivery_attempts


def _uncompressed_only_scp(syntax: str):
    """A pynetdicom SCP that accepts the SC and SR in ``syntax`` only and keeps what it receives."""
    from pynetdicom import AE, evt

    received = []

    def on_store(event):
        received.append((event.context.transfer_syntax, event.dataset))
        return 0x0000

    ae = AE(ae_title="PACS")
    for sop_class in (dcm_uid.SecondaryCaptureImageStorage, dcm_uid.ComprehensiveSRStorage):
        ae.add_supported_context(sop_class, [syntax])
    port = free_port()
    return ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]), port, received


def _report_files(tmp_path: Path) -> tuple[list[Path], Any]:
    from boneage.devstack.gateway import _report_dataset, jpegls_secondary_capture

    sc, pixels = jpegls_secondary_capture(11, study_uid=STUDY)
    sr = _report_dataset(dcm_uid.ComprehensiveSRStorage, study_uid=STUDY, source_sop="")
    return [_write(tmp_path, "report_sc.dcm", sc), _write(tmp_path, "report_sr.dcm", sr)], pixels


@pytest.mark.parametrize("syntax", [dcm_uid.ExplicitVRLittleEndian, dcm_uid.ImplicitVRLittleEndian])
def test_a_pacs_that_takes_only_uncompressed_data_receives_the_jpegls_sc_with_identical_pixels(tmp_path, syntax):
    import numpy as np

    from boneage.gateway.delivery import CStoreSender

    server, port, received = _uncompressed_only_scp(syntax)
    files, pixels = _report_files(tmp_path)
    config = GatewayConfig.from_dict(_config_dict(tmp_path, port))
    try:
        stored = CStoreSender(config, timeout_s=10).send(files)
    finally:
        server.shutdown()
    assert stored == files and [ts for ts, _ in received] == [syntax, syntax]
    sc = received[0][1]
    sc.file_meta = dcmread(files[0], stop_before_pixels=True).file_meta
    sc.file_meta.TransferSyntaxUID = syntax
    assert np.array_equal(sc.pixel_array, pixels)
    assert sc.SOPInstanceUID == dcmread(files[0], stop_before_pixels=True).SOPInstanceUID


def test_a_pacs_that_takes_jpegls_receives_the_sc_as_it_is(tmp_path):
    from boneage.gateway.delivery import CStoreSender, DeliveryError

    server, port, received = _uncompressed_only_scp(dcm_uid.JPEGLSLossless)
    files, _ = _report_files(tmp_path)
    config = GatewayConfig.from_dict(_config_dict(tmp_path, port))
    try:
        with pytest.raises(DeliveryError) as refused:   # the SR has no JPEG-LS: a refusal, nothing sent
            CStoreSender(config, timeout_s=10).send(files[::-1])
        stored = CStoreSender(config, timeout_s=10).send(files[:1])
    finally:
        server.shutdown()
    assert refused.value.code == "presentation_context_not_accepted" and refused.value.permanent
    assert stored == files[:1] and [ts for ts, _ in received] == [dcm_uid.JPEGLSLossless]


@pytest.mark.skipif(shutil.which("storescp") is None, reason="dcmtk's storescp is not installed")
@pytest.mark.parametrize("options", [[], ["+xi"]], ids=["storescp-uncompressed", "storescp-implicit-only"])
def test_dcmtk_storescp_without_jpegls_stores_the_sc_with_identical_pixels(tmp_path, options):
    import numpy as np

    from boneage.gateway.delivery import CStoreSender

    port = free_port()
    out = tmp_path / "pacs"
    out.mkdir()
    # storescp's default accepts only the uncompressed syntaxes; +xi only Implicit VR Little Endian.
    scp = subprocess.Popen(["storescp", "-aet", "PACS", "-od", str(out), *options, str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    files, pixels = _report_files(tmp_path)
    config = GatewayConfig.from_dict(_config_dict(tmp_path, port))
    try:
        wait_for(lambda: _port_open(port), timeout_s=10, what="storescp")
        stored = CStoreSender(config, timeout_s=10).send(files)
    finally:
        scp.terminate()
        scp.wait(10)
    assert stored == files
    by_class = {ds.SOPClassUID: ds for ds in (dcmread(p) for p in out.iterdir())}
    sc = by_class[dcm_uid.SecondaryCaptureImageStorage]
    assert not sc.file_meta.TransferSyntaxUID.is_compressed
    assert np.array_equal(sc.pixel_array, pixels) and sc.StudyInstanceUID == STUDY
    assert dcm_uid.ComprehensiveSRStorage in by_class


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _config_dict(tmp_path: Path, port: int) -> dict:
    return {"hospital_id": "st-mary", "ae_title": "BONEAGE", "allowed_calling_aets": ["PACS"],
            "spool_dir": str(tmp_path / "spool"),
            "aws": {"upload_bucket": "u", "results_bucket": "r", "results_queue_url": "http://127.0.0.1:1/q"},
            "pacs": {"host": "127.0.0.1", "port": port, "ae_title": "PACS"}}


def test_stow_rs_answered_415_sends_the_sc_again_uncompressed_with_identical_pixels(tmp_path):
    import http.server
    import threading
    from email import message_from_bytes

    import numpy as np

    from boneage.gateway.delivery import DeliveryError, StowSender

    received: list[list[tuple[str, bytes]]] = []
    statuses = [415, 200, 400]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):      # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            message = message_from_bytes(f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body)
            received.append([(p["Content-Type"], p.get_payload(decode=True)) for p in message.get_payload()])
            self.send_response(statuses[len(received) - 1])
            self.send_header("Content-Type", "application/dicom+json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    files, pixels = _report_files(tmp_path)
    sender = StowSender(f"http://127.0.0.1:{server.server_address[1]}/dicom-web/studies")
    try:
        sent = sender.send(files)
        with pytest.raises(DeliveryError) as refused:           # a 400 is a refusal, not retried uncompressed
            sender.send(files)
    finally:
        server.shutdown()
    assert sent == files and refused.value.permanent and len(received) == 3
    assert [ct for ct, _ in received[0]] == ["application/dicom", "application/dicom"]
    assert received[0][0][1] == files[0].read_bytes()                      # first as it is
    assert [ct for ct, _ in received[1]] == [f"application/dicom; transfer-syntax={dcm_uid.ExplicitVRLittleEndian}"] * 2
    sc = dcmread(io.BytesIO(received[1][0][1]))
    assert sc.file_meta.TransferSyntaxUID == dcm_uid.ExplicitVRLittleEndian and np.array_equal(sc.pixel_array, pixels)
    assert sc.SOPInstanceUID == dcmread(files[0], stop_before_pixels=True).SOPInstanceUID
    assert received[1][1][1] == files[1].read_bytes()                      # the SR was uncompressed already


@pytest.mark.parametrize(("reply", "outcome"), [
    ({"00081198": {"vr": "SQ", "Value": [{"00081197": {"vr": "US", "Value": [0xA700]}}]}}, "transient"),
    ({"00081198": {"vr": "SQ", "Value": [{"00081197": {"vr": "US", "Value": [0xC000]}}]}}, "refused"),
    ({"00081198": {"vr": "SQ", "Value": [{"00081150": {"vr": "UI", "Value": ["1.2.3"]}}]}}, "refused"),
    ({"00081199": {"vr": "SQ", "Value": [{"00081197": {"vr": "US", "Value": [0xC000]}}]}}, "stored"),
])
def test_stow_rs_200_listing_failed_sops_waits_out_resource_shortages_and_refuses_the_rest(tmp_path, reply, outcome):
    import http.server
    import threading

    from boneage.gateway.delivery import DeliveryError, StowSender

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):      # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    files, _ = _report_files(tmp_path)
    try:
        sender = StowSender(f"http://127.0.0.1:{server.server_address[1]}/dicom-web/studies")
        if outcome == "stored":                          # only a Referenced SOP Sequence: all stored
            assert sender.send(files) == files
            return
        with pytest.raises(DeliveryError) as failed:
            sender.send(files)
    finally:
        server.shutdown()
    # PS3.4 Annex B: 0xA7xx "out of resources" is retried; any other reason, or none, is a refusal.
    assert failed.value.code == "stow_failed_sop" and failed.value.permanent is (outcome == "refused")


def _refusal(tmp_path: Path, port: int, files: list[Path]) -> Any:
    """The DeliveryError a C-STORE of ``files`` to the SCP on ``port`` ends in."""
    from boneage.gateway.delivery import CStoreSender, DeliveryError

    with pytest.raises(DeliveryError) as failed:
        CStoreSender(GatewayConfig.from_dict(_config_dict(tmp_path, port)), timeout_s=10).send(files)
    return failed.value


@pytest.mark.parametrize(("status", "code", "permanent"), [
    (0xA700, "cstore_status_0xA700", False), (0xA900, "cstore_status_0xA900", True),
    (0xC000, "cstore_status_0xC000", True)])
def test_a_pynetdicom_pacs_out_of_resources_is_transient_and_its_refusals_permanent(tmp_path, status, code, permanent):
    from pynetdicom import AE, evt

    ae = AE(ae_title="PACS")
    for sop_class in (dcm_uid.SecondaryCaptureImageStorage, dcm_uid.ComprehensiveSRStorage):
        ae.add_supported_context(sop_class, [dcm_uid.JPEGLSLossless, dcm_uid.ExplicitVRLittleEndian])
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, lambda e: status)])
    files, _ = _report_files(tmp_path)
    try:
        failed = _refusal(tmp_path, port, files)
    finally:
        server.shutdown()
    assert (failed.code, failed.permanent) == (code, permanent)


def test_an_association_rejected_permanently_is_a_refusal_and_a_pacs_down_is_not(tmp_path):
    from pynetdicom import AE

    ae = AE(ae_title="PACS")
    ae.add_supported_context(dcm_uid.SecondaryCaptureImageStorage, dcm_uid.ExplicitVRLittleEndian)
    ae.require_calling_aet = ["SOMEONE"]                # the PACS does not know our AE title: rejected-permanent
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False)
    files, _ = _report_files(tmp_path)
    try:
        rejected = _refusal(tmp_path, port, files)
    finally:
        server.shutdown()
    down = _refusal(tmp_path, port, files)             # nothing listens there any more
    assert (rejected.code, rejected.permanent) == ("association_rejected_permanent", True)
    assert (down.code, down.permanent) == ("pacs_unreachable", False)
