"""The DICOM gateway against DICOM software nobody here wrote: Orthanc as the hospital's PACS, dcmtk's
``echoscu``/``storescu`` as a modality, ``dciodvfy`` as the judge of what comes back.

One live local deployment (the emulator with ``template.yaml``, the function consuming its queue in
worker processes) serves the module; the hospital is onboarded in it, and ``boneage gateway run`` runs as
its own process with the hospital's credentials, reaching AWS only through a relay the tests can cut
(``boneage.devstack.pacs.PacsLoop``). Every test ends with the same invariant, checked from the outside
(the deployment's table, Orthanc's REST API and its receipts of each C-STORE): every instance a C-STORE
acknowledged is assessed exactly once (one completed record) and its Secondary Capture and Structured
Report are in Orthanc exactly once, in the source's study. The faults: S3 unreachable for a while, the
PACS down when the results arrive, the gateway SIGKILLed in the middle of a transfer, a study sent twice.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from boneage.devstack.dcmtk import echoscu
from boneage.devstack.local import LocalDeployment
from boneage.devstack.orthanc import DICOMWEB_PLUGIN, orthanc_binary
from boneage.devstack.pacs import GATEWAY_AET, GATEWAY_MODALITY, MODALITY_AET, PacsLoop
from boneage.devstack.studies import PhantomStudy, phantom_study

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSPITAL = "it-pacs"
RESULTS_TIMEOUT_S = 150


@pytest.fixture(scope="module")
def deployment() -> Iterator[LocalDeployment]:
    if orthanc_binary() is None:
        pytest.fail("Orthanc is not installed: `make system-deps` installs the Debian package orthanc")
    for tool in ("echoscu", "storescu", "dciodvfy"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: `make system-deps` installs dcmtk and dicom3tools")
    with LocalDeployment.start(port=0, stack_name="boneage-it-pacs", workers=1, hospitals=(),
                               retry_after_s=1) as live:
        yield live


@pytest.fixture(scope="module")
def loop(deployment: LocalDeployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PacsLoop]:
    with PacsLoop.start(deployment, tmp_path_factory.mktemp("pacs"), hospital_id=HOSPITAL) as pacs_loop:
        yield pacs_loop


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """The gateway's and Orthanc's logs end up in the report of a failing test (pytest shows a test's
    captured output only when it fails)."""
    yield
    if "loop" in request.fixturenames:
        pacs_loop: PacsLoop = request.getfixturevalue("loop")
        print(f"--- gateway log (tail) ---\n{pacs_loop.gateway.log_tail(80)}")
        print(f"--- orthanc log (tail) ---\n{pacs_loop.orthanc.log_tail(40)}")


def _dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (proc.stdout + proc.stderr).splitlines()
    return [ln for ln in lines if ln.startswith("Error")], [ln for ln in lines if ln.startswith("Warning")]


def _assert_exactly_once(loop: PacsLoop, study: PhantomStudy, sources: list[str] | None = None,
                         *, timeout_s: float = RESULTS_TIMEOUT_S, settle_s: float = 3.0) -> dict:
    sources = sources if sources is not None else study.sop_instance_uids
    found = loop.wait_for_results(study.study_instance_uid, sources, timeout_s=timeout_s, settle_s=settle_s)
    problems = loop.check_exactly_once(study.study_instance_uid, sources)
    assert problems == [], f"{problems}\nstatus: {loop.gateway.cli('status')}"
    return found


def _warnings_since(loop: PacsLoop, offset: int, logger: str) -> list[dict]:
    """The gateway's WARNING lines from ``logger`` written after ``offset`` (its log is JSON lines)."""
    found = []
    for line in loop.gateway.log_text()[offset:].splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("level") == "WARNING" and event.get("logger") == logger:
                found.append(event)
    return found


def _assert_no_phi(loop: PacsLoop, study: PhantomStudy) -> None:
    """None of the study's identifying strings in the gateway's log, its spool's names or any key we wrote."""
    places = {"gateway log": loop.gateway.log_text(), "spool names": "\n".join(loop.spool_names()),
              "object keys": "\n".join(loop.object_keys())}
    for where, text in places.items():
        leaked = [s for s in study.phi if s.lower() in text.lower()]
        assert leaked == [], f"{where} carries {leaked}"
    assert loop.object_keys(), "no object keys to check"


def test_a_study_orthanc_sends_comes_back_as_sc_and_sr_in_the_same_study_and_passes_dciodvfy(loop, tmp_path):
    study = phantom_study(201, instances=2, modality="DX")
    loop.send_from_pacs(study)
    found = _assert_exactly_once(loop, study, settle_s=0)

    for source, results in found.items():
        for kind in ("SC", "SR"):
            data = loop.orthanc.instance_file(results[kind][0])
            ds = pydicom.dcmread(io.BytesIO(data))
            assert ds.StudyInstanceUID == study.study_instance_uid
            assert ds.SeriesInstanceUID != study.series_instance_uid      # a new series of the source study
            # The results go back to the hospital's archive, which files them by patient: its identity is in them.
            assert str(ds.PatientName) == study.patient_name and ds.PatientID == study.patient_id
            path = tmp_path / f"{kind}-{ds.SOPInstanceUID}.dcm"
            path.write_bytes(data)
            errors, warnings = _dciodvfy(path)
            assert errors == [], f"{kind} of {source}: {errors}"
            # Known and accepted (as in the report's own test): the SR's private coding scheme 99BONEAGE.
            assert all("99BONEAGE" in w for w in warnings), f"{kind}: unexpected warnings {warnings}"
            print(f"dciodvfy {kind}: no errors, {len(warnings)} warning(s): {sorted(set(warnings))}")
            print(f"{kind} in Orthanc: {loop.orthanc.url}/instances/{results[kind][0]}/file")
    _assert_no_phi(loop, study)


def test_echoscu_reaches_the_gateway_and_an_unknown_calling_ae_is_refused(loop):
    assert echoscu("127.0.0.1", loop.gateway.port, called_aet=GATEWAY_AET, calling_aet=MODALITY_AET)
    assert not echoscu("127.0.0.1", loop.gateway.port, called_aet=GATEWAY_AET, calling_aet="STRANGER")


def test_s3_unreachable_for_a_while_then_every_acknowledged_instance_is_assessed_once(loop, tmp_path):
    study = phantom_study(202, instances=3, modality="CR")
    offset = len(loop.gateway.log_text())
    loop.proxy.cut()
    try:
        sent = loop.push(study.write(tmp_path / "study"))
        # Acknowledged while AWS is unreachable: the spool holds them (fsync'd before the C-STORE success).
        assert sent.returncode == 0 and sent.unacknowledged == [], "\n".join(sent.log)
        time.sleep(4)       # several upload attempts fail against a refused connection
        assert not set(loop.records_by_instance()) & set(study.sop_instance_uids)
        status = loop.gateway.cli("status")
        assert status["pending_uploads"] >= 3, status
        # The gateway really tried and met a refused connection (not a quiet pause).
        failed = _warnings_since(loop, offset, "boneage.gateway.uploader")
        assert len(failed) >= 2 and {e.get("fault") for e in failed} == {"EndpointConnectionError"}, failed
    finally:
        loop.proxy.restore()
    _assert_exactly_once(loop, study)


def test_orthanc_down_when_results_arrive_then_they_are_delivered_once_it_is_back(loop, tmp_path):
    study = phantom_study(203, instances=2, modality="DX")
    offset = len(loop.gateway.log_text())
    loop.orthanc.stop()
    try:
        sent = loop.push(study.write(tmp_path / "study"))
        assert sent.returncode == 0 and sent.unacknowledged == [], "\n".join(sent.log)
        deadline = time.monotonic() + RESULTS_TIMEOUT_S
        while time.monotonic() < deadline:      # assessed, and the results reached the gateway
            rows = loop.records_by_instance()
            if all(len(rows.get(u, [])) == 1 and rows[u][0].get("status") == "completed"
                   for u in study.sop_instance_uids) and loop.gateway.cli("status")["pending_deliveries"] >= 2:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the results never reached the gateway: {loop.gateway.cli('status')}")
        time.sleep(2)       # delivery attempts fail against the closed port
        assert loop.gateway.cli("status")["pending_deliveries"] >= 2
        assert len(_warnings_since(loop, offset, "boneage.gateway.delivery")) >= 2
    finally:
        loop.orthanc.start()
    _assert_exactly_once(loop, study)


def test_the_gateway_sigkilled_in_the_middle_of_a_transfer_loses_nothing_it_acknowledged(loop, tmp_path):
    study = phantom_study(204, instances=10, modality="DX")
    files = study.write(tmp_path / "study")
    killed_after: list[int] = []

    def kill_on_third_ack(path: Path, count: int) -> None:
        if count == 3 and not killed_after:
            loop.gateway.kill()
            killed_after.append(count)

    first = loop.push(files, on_ack=kill_on_third_ack)
    assert killed_after and first.returncode != 0, "\n".join(first.log)
    assert 3 <= len(first.acknowledged) < len(files), "the kill did not land in the middle of the transfer"
    acknowledged = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in first.acknowledged}

    loop.gateway.start()
    # What the modality does: send again what it has no acknowledgement for.
    second = loop.push(first.unacknowledged)
    assert second.returncode == 0 and second.unacknowledged == [], "\n".join(second.log)
    _assert_exactly_once(loop, study)
    assert acknowledged <= set(loop.records_by_instance())


def test_the_same_study_sent_twice_is_assessed_once_and_its_results_are_in_the_pacs_once(loop, tmp_path):
    study = phantom_study(205, instances=2, modality="CR")
    loop.send_from_pacs(study)
    loop.send_from_pacs(study)      # at once: the first copy may still be in the spool
    _assert_exactly_once(loop, study, settle_s=0)
    # Later, from the modality this time (the same files, byte for byte).
    again = loop.push(study.write(tmp_path / "again"))
    assert again.returncode == 0 and again.unacknowledged == []
    time.sleep(6)       # long enough for a second assessment and delivery to show
    assert loop.check_exactly_once(study.study_instance_uid, study.sop_instance_uids) == []
    _assert_no_phi(loop, study)


def _object_of_the_study(study: PhantomStudy, sop_class: str, modality: str) -> bytes:
    """A non-image object a PACS keeps in a study (a presentation state, a key object selection): the
    header is all the gateway sees of it."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PatientName, ds.PatientID = study.patient_name, study.patient_id
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study.study_instance_uid, generate_uid(), modality
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_the_whole_study_sent_back_with_our_results_in_it_succeeds_and_nothing_is_assessed_again(loop):
    """A radiologist sends the whole study - which now holds our SC and SR, a presentation state and a key
    object selection - to the gateway: Orthanc's job succeeds (every object is accepted, none transcoded),
    only the radiograph is recognised as already uploaded, and the rest is acknowledged and never uploaded."""
    from pydicom.uid import GrayscaleSoftcopyPresentationStateStorage, KeyObjectSelectionDocumentStorage

    study = phantom_study(207, instances=1, modality="DX")
    loop.send_from_pacs(study)
    _assert_exactly_once(loop, study, settle_s=0)
    for sop_class, modality in ((GrayscaleSoftcopyPresentationStateStorage, "PR"),
                                (KeyObjectSelectionDocumentStorage, "KO")):
        loop.orthanc.upload(_object_of_the_study(study, sop_class, modality))
    assert len(loop.orthanc.study_instances(study.study_instance_uid)) == 5     # DX, SC, SR, PR, KO
    before, records_before = loop.gateway.cli("status"), len(loop.records())

    # Synchronous: raises (Orthanc's HTTP 500, "Cannot transcode ...") unless every instance was stored.
    loop.orthanc.send(GATEWAY_MODALITY, [loop.orthanc.study_id(study.study_instance_uid)])
    time.sleep(6)       # long enough for an upload, an assessment and a delivery to show

    after = loop.gateway.cli("status")
    assert len(loop.records()) == records_before, "something was assessed again"
    assert loop.check_exactly_once(study.study_instance_uid, study.sop_instance_uids) == []
    assert (after["uploaded"], after["pending_uploads"]) == (before["uploaded"], 0)
    gained = {k: v - before["ignored_by_reason"].get(k, 0) for k, v in after["ignored_by_reason"].items()}
    assert gained == {"own_result": 2, "not_a_radiograph": 2}, after
    _assert_no_phi(loop, study)


def test_results_go_back_by_dicomweb_stow_rs_when_the_gateway_is_configured_for_it(deployment, tmp_path):
    """The second destination: STOW-RS to Orthanc's DICOMweb plugin (Debian's orthanc-dicomweb), for another
    hospital with its own gateway and PACS on the same deployment."""
    if not DICOMWEB_PLUGIN.exists():
        pytest.fail("Orthanc's DICOMweb plugin is not installed: `make system-deps` installs orthanc-dicomweb")
    with PacsLoop.start(deployment, tmp_path / "stow", hospital_id=f"{HOSPITAL}-stow", stow=True) as stow_loop:
        assert "pacs" not in stow_loop.gateway.config and stow_loop.gateway.config["stow_url"].endswith("/studies")
        study = phantom_study(206, instances=1, modality="DX")
        sent = stow_loop.push(study.write(tmp_path / "study"))
        assert sent.returncode == 0 and sent.unacknowledged == []
        found = stow_loop.wait_for_results(study.study_instance_uid, study.sop_instance_uids,
                                           timeout_s=RESULTS_TIMEOUT_S)
        results = found.get(study.sop_instance_uids[0], {"SC": [], "SR": []})
        assert len(results["SC"]) == 1 and len(results["SR"]) == 1, (found, stow_loop.gateway.log_tail(30))
        # Stored by the DICOMweb plugin (Orthanc's RequestOrigin "Plugins"), not by a C-STORE.
        origins = {r["origin"] for r in stow_loop.orthanc.receipts()}
        assert origins == {"Plugins"}, origins
        records = stow_loop.records_by_instance()
        assert [r["status"] for r in records[study.sop_instance_uids[0]]] == ["completed"]
