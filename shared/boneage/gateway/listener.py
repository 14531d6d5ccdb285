"""The inbound DICOM node: C-ECHO and C-STORE SCP (pynetdicom), storing what it receives as received.

Accepted: the storage SOP classes of projection radiographs and their secondary captures
(``STORAGE_CLASSES``) in every transfer syntax the service's ingest decodes (``TRANSFER_SYNTAXES``;
``tests/unit/gateway/test_listener.py`` pins it to ``boneage.imaging``'s decoder table). The dataset
is written with the file meta pynetdicom builds from the negotiated context, bytes untouched: no
transcoding, the transfer syntax preserved.

A C-STORE gets success (0x0000) only after the instance is durably in the spool (``Spool.receive``:
fsync of file and directory); a spool that cannot write answers 0xA700 (out of resources), so the
sender keeps the image and retries. Calling AE titles not in ``allowed_calling_aets`` are rejected at
association, as is a call to any AE title but ours.

Every other storage SOP class (structured reports, presentation states, key object selections ... in any
transfer syntax) is accepted too, so that a PACS sending a whole study - which by then holds our own
results - succeeds. Those, and our own results coming back (known by the SOP Instance UIDs this gateway
delivered, ``Spool.mark_own_result``, or by the Manufacturer the service writes, ``boneage.result.
MANUFACTURER``), are acknowledged and never uploaded: only a small ``ignored`` entry is written (no bytes
kept), one PHI-free log line says why, and ``boneage gateway status`` counts them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

from pydicom import uid as dcm_uid
from pydicom import dcmread
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import (
    ComputedRadiographyImageStorage, DigitalXRayImageStorageForPresentation, DigitalXRayImageStorageForProcessing,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage, MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage, SecondaryCaptureImageStorage, Verification,
)

from boneage.gateway.config import GatewayConfig
from boneage.gateway.spool import DUPLICATE, Spool, ref_for
from boneage.result import MANUFACTURER

logger = logging.getLogger("boneage.gateway.listener")

STORAGE_CLASSES = (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,     # single-frame instances of these are read too
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
)

# Native and deflated (pydicom), T.81 JPEG (libjpeg-turbo), JPEG-LS (CharLS), JPEG 2000 and HTJ2K
# (OpenJPEG), RLE: boneage.imaging.dicom.decode.DECODERS plus the syntaxes pydicom reads itself.
TRANSFER_SYNTAXES = (
    dcm_uid.ExplicitVRLittleEndian, dcm_uid.ImplicitVRLittleEndian, dcm_uid.DeflatedExplicitVRLittleEndian,
    dcm_uid.ExplicitVRBigEndian,
    dcm_uid.JPEGBaseline8Bit, dcm_uid.JPEGExtended12Bit, dcm_uid.JPEGLossless, dcm_uid.JPEGLosslessSV1,
    dcm_uid.JPEGLSLossless, dcm_uid.JPEGLSNearLossless,
    dcm_uid.JPEG2000Lossless, dcm_uid.JPEG2000,
    dcm_uid.HTJ2KLossless, dcm_uid.HTJ2KLosslessRPCL, dcm_uid.HTJ2K,
    dcm_uid.RLELossless,
)

# Why an acknowledged instance is not uploaded (the ``reason`` of its ``ignored`` entry and log line).
OWN_RESULT = "own_result"                   # an SC or SR the service wrote, sent back by the PACS
NOT_ASSESSED = "not_a_radiograph"           # a storage class the service does not assess (SR, GSPS, KOS ...)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700           # Part 4 B.2.3: "Refused: Out of Resources" - the sender retries
CANNOT_UNDERSTAND = 0xC000          # "Error: Cannot understand" - no SOP Instance UID to file it under


def _made_by_us(data: bytes) -> bool:
    """Whether the header says the service wrote this object (its Manufacturer)."""
    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True, force=True, specific_tags=["Manufacturer"])
    except Exception:                   # unreadable: not ours to recognise; the service rejects it, typed
        return False
    return str(ds.get("Manufacturer", "") or "").strip() == MANUFACTURER


def ignore_reason(spool: Spool, sop_uid: str, sop_class: str, data: bytes) -> str | None:
    """Why this instance is acknowledged but not uploaded, or None to upload it."""
    if spool.is_own_result(ref_for(sop_uid)) or _made_by_us(data):
        return OWN_RESULT
    if sop_class not in STORAGE_CLASSES:
        return NOT_ASSESSED
    return None


def make_store_handler(spool: Spool, on_received: Callable[[], None] | None = None) -> Callable[[Any], int]:
    def handle_store(event: Any) -> int:
        calling = event.assoc.requestor.ae_title
        sop_uid = str(event.request.AffectedSOPInstanceUID or "").strip()
        if not sop_uid:
            logger.warning("C-STORE without a SOP Instance UID refused", extra={"calling_aet": calling})
            return CANNOT_UNDERSTAND
        sop_class = str(event.request.AffectedSOPClassUID or "").strip()
        try:
            data = event.encoded_dataset(include_meta=True)
            reason = ignore_reason(spool, sop_uid, sop_class, data)
            if reason is not None:
                ref = ref_for(sop_uid)
                first = spool.ignore(ref, {"reason": reason, "sop_class_uid": sop_class})
                logger.info("instance acknowledged, not uploaded" if first else "ignored instance acknowledged again",
                            extra={"ref": ref, "calling_aet": calling, "reason": reason, "sop_class_uid": sop_class})
                return SUCCESS
            outcome, ref = spool.receive(sop_uid, data)
        except Exception as exc:        # the disk is full, read-only, gone: the sender must keep the image
            logger.error("instance not stored: the spool cannot persist it",
                         extra={"calling_aet": calling, "fault": type(exc).__name__,
                                "errno": getattr(exc, "errno", None)})
            return OUT_OF_RESOURCES
        logger.info("instance received" if outcome != DUPLICATE else "duplicate instance acknowledged, not stored",
                    extra={"ref": ref, "calling_aet": calling, "bytes": len(data),
                           "transfer_syntax": str(event.context.transfer_syntax)})
        if on_received is not None and outcome != DUPLICATE:
            on_received()
        return SUCCESS
    return handle_store


def _handle_echo(event: Any) -> int:
    return SUCCESS


def _handle_rejected(event: Any) -> None:
    logger.warning("association rejected", extra={"calling_aet": event.assoc.requestor.ae_title,
                                                  "address": event.assoc.requestor.address})


def build_ae(config: GatewayConfig) -> AE:
    ae = AE(ae_title=config.ae_title)
    ae.require_calling_aet = list(config.allowed_calling_aets)
    ae.require_called_aet = True
    ae.maximum_pdu_size = config.max_pdu
    for sop_class in STORAGE_CLASSES:
        ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
    # The rest of a study, acknowledged and not uploaded (``ignore_reason``): any syntax, nothing is read.
    for cx in AllStoragePresentationContexts:
        if cx.abstract_syntax not in STORAGE_CLASSES:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    return ae


def start_listener(config: GatewayConfig, spool: Spool, on_received: Callable[[], None] | None = None) -> Any:
    """Start the SCP in its own threads; returns the server (``.shutdown()`` stops it)."""
    ae = build_ae(config)
    handlers = [(evt.EVT_C_STORE, make_store_handler(spool, on_received)), (evt.EVT_C_ECHO, _handle_echo),
                (evt.EVT_REJECTED, _handle_rejected)]
    return ae.start_server((config.listen_host, config.listen_port), block=False, evt_handlers=handlers)
