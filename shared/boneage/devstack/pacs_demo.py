"""``make demo``'s PACS loop: Orthanc -> ``boneage gateway`` -> the live local deployment -> Orthanc.

A phantom DX study (fake patient) is stored in Orthanc, which sends it to the gateway as a radiologist's
"send to" would; the gateway spools and uploads it with the hospital's credentials, the function
assesses it, and the gateway fetches the Secondary Capture and Structured Report and C-STOREs them back
into the same study. The demo prints where they are in Orthanc (REST URLs of the instances, the study in
Orthanc Explorer). Skipped, with a line saying so, when Orthanc is not installed.

Orthanc's storage and config stay under ``workdir/orthanc``: ``Orthanc <workdir>/orthanc/orthanc.json``
serves the same URLs again after the demo has stopped.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .orthanc import orthanc_binary


def pacs_demo(workdir: Path, *, seed: int = 7, keep: bool = False, say: Callable[[str], None] = print) -> int:
    """Run the loop once; 0 when the study's SC and SR came back exactly once, 1 otherwise."""
    if orthanc_binary() is None:
        say("\nPACS loop skipped: Orthanc is not installed (Debian: apt-get install orthanc; `make system-deps`).")
        return 0
    from .local import LocalDeployment
    from .pacs import GATEWAY_AET, PacsLoop
    from .studies import phantom_study

    shutil.rmtree(workdir, ignore_errors=True)      # a fresh spool and PACS each run
    say("\nPACS loop: Orthanc (the hospital's PACS) -> boneage gateway -> the service -> Orthanc")
    say("starting a live local deployment (emulator, template.yaml, the function consuming its queue) ...")
    t0 = time.monotonic()
    deployment = LocalDeployment.start(port=0, stack_name="boneage-demo-pacs", workers=1, hospitals=(),
                                       retry_after_s=1)
    try:
        with PacsLoop.start(deployment, workdir, hospital_id="st-mary", proxy=False) as loop:
            o = loop.orthanc
            say(f"up in {time.monotonic() - t0:.1f} s: Orthanc {o.url} (AE {o.aet}, DICOM port {o.dicom_port}); "
                f"gateway AE {GATEWAY_AET} on port {loop.gateway.port} (config {loop.gateway.config_path}, "
                f"log {loop.gateway.log_path}), onboarded as hospital {loop.hospital_id}")
            study = phantom_study(seed, instances=1, modality="DX", size=512)
            source = study.sop_instance_uids[0]
            t1 = time.monotonic()
            loop.send_from_pacs(study)
            say(f"Orthanc sent a phantom DX study to {GATEWAY_AET} (C-STORE acknowledged in "
                f"{time.monotonic() - t1:.1f} s); waiting for the results ...")
            found = loop.wait_for_results(study.study_instance_uid, [source], timeout_s=180)
            problems = loop.check_exactly_once(study.study_instance_uid, [source])
            results = found.get(source, {"SC": [], "SR": []})
            if not (results["SC"] and results["SR"]):
                say(f"FAIL: no results in Orthanc after {time.monotonic() - t1:.0f} s; gateway log:\n"
                    f"{loop.gateway.log_tail(30)}")
                return 1
            record = loop.records_by_instance().get(source, [{}])[0]
            say(f"results back in Orthanc {time.monotonic() - t1:.1f} s after the send, in the source's study "
                f"(bone age {record.get('bone_age_months')} months, status {record.get('status')}):")
            study_id = o.study_id(study.study_instance_uid)
            for kind, name in (("SC", "Secondary Capture (report image)"), ("SR", "Structured Report")):
                for oid in results[kind]:
                    say(f"  {name}: {o.url}/instances/{oid}/file  (tags: {o.url}/instances/{oid}/simplified-tags)")
            say(f"  the study in Orthanc Explorer: {o.url}/app/explorer.html#study?uuid={study_id}")
            if problems:
                say(f"FAIL: {problems}")
                return 1
            if keep:
                say("Orthanc, the gateway and the service stay up; Ctrl-C stops them.")
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
    finally:
        deployment.stop()
    say(f"OK: the SC and SR came back once each. Orthanc has stopped; `{orthanc_binary()} "
        f"{workdir / 'orthanc' / 'orthanc.json'}` serves those URLs again.")
    return 0
