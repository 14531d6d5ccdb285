"""The DICOM gateway: the hospital's on-premises node between its PACS/modalities and the service.

- ``config``   ``GatewayConfig``: one JSON file (hospital, AE titles, spool, AWS, PACS, retries).
- ``spool``    the durable local spool: received instances (fsync'd before C-STORE success), the
               dedupe ledger, deliveries pending / done / dead-lettered, and the rejections kept for
               the operator. Everything is one file per item, written to a temporary file, fsync'd,
               renamed and the directory fsync'd, so a SIGKILL leaves either the old or the new state.
- ``retry``    capped, jittered exponential back-off.
- ``listener`` the C-ECHO / C-STORE SCP (pynetdicom); stores radiographs as received, no transcoding;
               acknowledges the rest of a study (SR, GSPS, KOS, our own results) without uploading it.
- ``uploader`` spool -> ``incoming/<hospital_id>/<sha256(SOP Instance UID)>.dcm`` (conditional put: once).
- ``results``  the hospital's results queue -> deliveries recorded in the spool.
- ``delivery`` deliveries -> PACS (C-STORE SCU, or DICOMweb STOW-RS).
- ``runner``   the process: all of the above as threads, graceful on SIGTERM/SIGINT.

On-premises and light: pynetdicom, pydicom (headers only) and boto3; never torch, numpy or the
Lambda code (``tests/unit/test_architecture.py`` holds it to that).
"""
