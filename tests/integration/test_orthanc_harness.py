"""The PACS harness itself, against DICOM software nobody here wrote: Orthanc (the hospital's PACS) and
dcmtk (``echoscu``/``storescu`` as a modality, ``storescp`` as a bare receiver).

Before the gateway tests rely on it, this shows that the harness starts Orthanc from its own config on
free loopback ports, that a modality can push a phantom study into it, that Orthanc's C-STORE SCU reaches
a declared modality, that a restart on the same storage keeps what was stored, that a port taken between
picking and binding is retried, and that the phantom studies are valid CR/DX objects (``dciodvfy``).
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
from pathlib import Path

import pydicom
import pytest

from boneage.devstack import orthanc as orthanc_mod
from boneage.devstack.dcmtk import StoreSCP, echoscu, storescu
from boneage.devstack.orthanc import Modality, Orthanc, OrthancError, orthanc_binary
from boneage.devstack.studies import phantom_study

pytestmark = [pytest.mark.integration]


def _require_tools() -> None:
    if orthanc_binary() is None:
        pytest.fail("Orthanc is not installed: `make system-deps` installs the Debian package orthanc")
    for tool in ("echoscu", "storescu", "storescp", "dciodvfy"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: `make system-deps` installs dcmtk and dicom3tools")


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory):
    _require_tools()
    server = Orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        server.start()
    except OrthancError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


def _dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (proc.stdout + proc.stderr).splitlines()
    return [ln for ln in lines if ln.startswith("Error")], [ln for ln in lines if ln.startswith("Warning")]


@pytest.mark.parametrize("modality", ["CR", "DX"])
def test_phantom_studies_are_valid_cr_and_dx_objects_with_fake_identity(tmp_path, modality):
    study = phantom_study(101, instances=2, modality=modality)
    files = study.write(tmp_path)
    for path in files:
        errors, warnings = _dciodvfy(path)
        assert errors == [], f"{path.name}: {errors}"
        ds = pydicom.dcmread(path)
        assert ds.Modality == modality and ds.StudyInstanceUID == study.study_instance_uid
        assert str(ds.PatientName) == study.patient_name and ds.AccessionNumber == study.accession_number
        print(f"{modality} {path.name}: dciodvfy warnings {warnings}")
    # One study, distinct instances, and the same seed gives the same bytes (the "sent twice" fault).
    assert len(set(study.sop_instance_uids)) == 2
    assert phantom_study(101, instances=2, modality=modality).instances == study.instances
    # What a leak check looks for is specific enough not to match by chance.
    assert all(len(s) >= 6 for s in study.phi)


def test_echoscu_and_storescu_reach_orthanc_and_its_rest_api_lists_the_study(pacs, tmp_path):
    assert echoscu("127.0.0.1", pacs.dicom_port, called_aet=pacs.aet)
    study = phantom_study(102, instances=3)
    files = study.write(tmp_path / "study")
    result = storescu(files, "127.0.0.1", pacs.dicom_port, called_aet=pacs.aet)
    assert result.returncode == 0, "\n".join(result.log)
    assert result.acknowledged == files and result.unacknowledged == []

    found = pacs.study_instances(study.study_instance_uid)
    assert sorted(i["SOPInstanceUID"] for i in found) == sorted(study.sop_instance_uids)
    assert {i["SOPClassUID"] for i in found} == {study.instances[0].sop_class_uid}
    stored = pydicom.dcmread(io.BytesIO(pacs.instance_file(found[0]["ID"])))
    assert stored.StudyInstanceUID == study.study_instance_uid

    # Orthanc keeps one copy of an instance sent twice; its receipts count both, so a test can tell a
    # result delivered twice from one delivered once.
    again = storescu(files[:1], "127.0.0.1", pacs.dicom_port, called_aet=pacs.aet, calling_aet="RESENDER")
    assert again.acknowledged == files[:1]
    assert len(pacs.study_instances(study.study_instance_uid)) == 3
    receipts = [r for r in pacs.receipts() if r["SOPInstanceUID"] in study.sop_instance_uids]
    assert [(r["SOPInstanceUID"], r["remote_aet"]) for r in receipts] == \
        [(u, "MODALITY") for u in study.sop_instance_uids] + [(study.sop_instance_uids[0], "RESENDER")]


def test_a_study_orthanc_sends_to_a_declared_modality_arrives_there(pacs, tmp_path):
    study = phantom_study(103, instances=2)
    for inst in study:
        assert pacs.upload(inst.data)["Status"] in ("Success", "AlreadyStored")
    receiver = StoreSCP(tmp_path / "received", aet="RECEIVER").start()
    try:
        pacs.add_modality("receiver", Modality(receiver.aet, "127.0.0.1", receiver.port))
        assert pacs.echo("receiver")
        pacs.send("receiver", [pacs.study_id(study.study_instance_uid)])
        got = {pydicom.dcmread(p).SOPInstanceUID for p in receiver.received()}
    finally:
        receiver.stop()
    assert got == set(study.sop_instance_uids)


def test_a_restart_on_the_same_storage_keeps_the_ports_and_what_was_stored(tmp_path):
    _require_tools()
    server = Orthanc(tmp_path / "pacs")
    study = phantom_study(104)
    with server:
        server.upload(study.instances[0].data)
        ports = (server.http_port, server.dicom_port)
    assert not server.running
    with pytest.raises(OrthancError):
        server.get("/system", timeout_s=2)
    with server.start():
        assert (server.http_port, server.dicom_port) == ports
        assert [i["SOPInstanceUID"] for i in server.study_instances(study.study_instance_uid)] == \
            study.sop_instance_uids
    assert "Orthanc has stopped" in server.log_tail()


def test_a_port_taken_between_picking_and_binding_is_retried_on_fresh_ports(tmp_path, monkeypatch):
    _require_tools()
    squatter = socket.socket()
    squatter.bind(("", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real = orthanc_mod.free_port
    picks = iter([real(), taken])        # the first attempt's DICOM port is taken ...
    monkeypatch.setattr(orthanc_mod, "free_port", lambda: next(picks, None) or real())
    server = Orthanc(tmp_path / "pacs")
    try:
        with server:
            assert taken not in (server.http_port, server.dicom_port)      # ... the second fresh ones
            assert server.get("/system")["DicomAet"] == server.aet
        assert "already in use" in server.log_path.read_text()
    finally:
        squatter.close()


def test_a_start_on_fixed_ports_that_are_taken_fails_with_orthancs_log(tmp_path):
    _require_tools()
    squatter = socket.socket()
    squatter.bind(("", 0))
    squatter.listen()
    try:
        # Fixed ports (a restart) are never swapped for others: the gateway's config points at them.
        server = Orthanc(tmp_path / "pacs", http_port=orthanc_mod.free_port(), dicom_port=squatter.getsockname()[1])
        with pytest.raises(OrthancError, match="already in use"):
            server.start(timeout_s=15)
        assert not server.running
    finally:
        squatter.close()


def test_the_proxy_relays_refuses_while_cut_and_comes_back_on_the_same_port(pacs):
    import urllib.error
    import urllib.request

    from boneage.devstack.proxy import TcpProxy

    relay = TcpProxy(pacs.http_port).start()
    try:
        def system() -> dict:
            with urllib.request.urlopen(f"{relay.url}/system", timeout=5) as resp:
                return json.loads(resp.read())

        assert system()["DicomAet"] == pacs.aet
        port = relay.port
        relay.cut()
        with pytest.raises(urllib.error.URLError) as refused:
            system()
        assert isinstance(refused.value.reason, ConnectionRefusedError)
        relay.restore()
        assert relay.port == port and system()["DicomAet"] == pacs.aet
        assert relay.connections == 2
    finally:
        relay.stop()
