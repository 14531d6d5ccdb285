"""Everything a DICOM object can be refused for from its header, before any pixel is decoded:
modality, pixel data present, transfer syntax supported, one frame, size within the ``Limits``,
photometric interpretation, and a compressed frame whose own header agrees with the dataset's."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder

from boneage.errors import Reason, Rejection
from boneage.imaging import codestream
from boneage.imaging.dicom.attributes import ELEMENT_ERRORS, get_value, text
from boneage.imaging.dicom.decode import (
    CODESTREAM_ERRORS, FRAME_ERRORS, J2K_SYNTAXES, JPEG_LS_SYNTAXES, JPEG_SYNTAXES, JPEG_T81_SYNTAXES,
    decoder_missing, first_frame,
)
from boneage.imaging.limits import Limits
from boneage.imaging.text import shown

# Projection radiography. OT covers secondary captures of scanned films; anything cross-sectional
# (CT, MR, US, NM, PT), mammography or non-image objects are not hand radiographs.
ACCEPTED_MODALITIES = frozenset({"CR", "DX", "RG", "OT"})
GREY = ("MONOCHROME1", "MONOCHROME2")
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    try:
        value = ds.get(keyword, default)
        return None if value is None else int(value)
    except ELEMENT_ERRORS:
        raise Rejection(Reason.CORRUPT_PIXEL_DATA, f"{keyword} is not a number") from None


def check_header(ds: Dataset, limits: Limits, warnings: list[str]) -> None:
    """Everything that can be refused without touching the pixel data. An element read directly
    here that pydicom cannot convert raises one of ``ELEMENT_ERRORS`` (``read`` maps it)."""
    modality = text(get_value(ds, "Modality", warnings))
    if modality is None:
        warnings.append("Modality is missing; assumed to be a radiograph")
    elif modality.upper() not in ACCEPTED_MODALITIES:
        raise Rejection(Reason.UNSUPPORTED_MODALITY,
                        f"modality {shown(modality)} is not a projection radiograph (accepted: "
                        f"{', '.join(sorted(ACCEPTED_MODALITIES))})")
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise Rejection(Reason.MISSING_PIXEL_DATA, "the DICOM object has no pixel data")
    ts = ds.file_meta.get("TransferSyntaxUID")
    try:
        decoder = get_decoder(ts)
    except (NotImplementedError, TypeError, ValueError):    # no decoder for it; not a UID at all
        raise Rejection(Reason.UNSUPPORTED_TRANSFER_SYNTAX,
                        f"transfer syntax {shown(ts, 'UI')} is not supported") from None
    missing = decoder_missing(ts)
    if missing is not None:
        raise Rejection(Reason.UNSUPPORTED_TRANSFER_SYNTAX,
                        f"the decoder for transfer syntax {shown(ts, 'UI')} ({missing}) is not installed")
    # T.81 JPEG is ours (libjpeg-turbo), whatever pydicom's own plugins for it are.
    if ts not in JPEG_T81_SYNTAXES and not decoder.is_available:
        raise Rejection(Reason.UNSUPPORTED_TRANSFER_SYNTAX,
                        f"no decoder is installed for transfer syntax {shown(ts, 'UI')}")
    rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
    if rows is None or columns is None:
        raise Rejection(Reason.CORRUPT_PIXEL_DATA, "Rows or Columns is missing")
    if rows <= 0 or columns <= 0:
        raise Rejection(Reason.EMPTY_IMAGE, f"the image is {rows}x{columns} pixels")
    frames = _int(ds, "NumberOfFrames", 1) or 1
    if frames > 1:
        raise Rejection(Reason.MULTI_FRAME,
                        f"the object has {frames} frames; send one radiograph per file")
    samples = _int(ds, "SamplesPerPixel", 1) or 1
    if rows * columns > limits.max_pixels or samples not in (1, 3):
        raise Rejection(Reason.TOO_LARGE if samples in (1, 3) else Reason.UNSUPPORTED_PHOTOMETRIC,
                        f"{rows}x{columns} pixels x {samples} samples is over the limit of "
                        f"{limits.max_pixels} pixels" if samples in (1, 3)
                        else f"{samples} samples per pixel is not supported")
    bits = _int(ds, "BitsAllocated", 0) or 0
    if "PixelData" in ds and bits not in (1, 8, 16, 32):
        raise Rejection(Reason.CORRUPT_PIXEL_DATA, f"BitsAllocated {bits} is not valid")
    photometric = text(get_value(ds, "PhotometricInterpretation", warnings))
    if photometric is None:
        raise Rejection(Reason.UNSUPPORTED_PHOTOMETRIC, "PhotometricInterpretation is missing")
    if photometric.upper() not in GREY + COLOUR:
        raise Rejection(Reason.UNSUPPORTED_PHOTOMETRIC,
                        f"photometric interpretation {shown(photometric)} is not supported")
    if ts in J2K_SYNTAXES or ts in JPEG_SYNTAXES:
        _check_frame_header(ds, ts, rows, columns, limits)


def _check_frame_header(ds: Dataset, ts: str, rows: int, columns: int, limits: Limits) -> None:
    try:
        frame = first_frame(ds)
    except FRAME_ERRORS as exc:
        raise Rejection(Reason.CORRUPT_PIXEL_DATA, "the encapsulated pixel data is malformed") from exc
    try:
        header = (codestream.j2k_frame_header(frame) if ts in J2K_SYNTAXES
                  else codestream.jpeg_frame_header(frame))
    except CODESTREAM_ERRORS as exc:
        raise Rejection(Reason.CORRUPT_PIXEL_DATA, "the compressed frame has no readable header") from exc
    if ts in JPEG_LS_SYNTAXES and not frame.rstrip(b"\x00").endswith(b"\xff\xd9"):
        # CharLS 2.4 spends ~15 s (whatever the image size) failing on a JPEG-LS stream cut short;
        # found by the fuzz test. A stream without its end-of-image marker is incomplete anyway.
        raise Rejection(Reason.CORRUPT_PIXEL_DATA, "the JPEG-LS frame is truncated (no end-of-image marker)")
    # A JPEG frame may leave Y=0 until a DNL marker (T.81 B.2.5); otherwise sizes must agree.
    # Rows x Columns is already within the limit, so agreeing sizes are too.
    if header.columns != columns or header.rows not in (rows, 0):
        raise Rejection(Reason.CORRUPT_PIXEL_DATA,
                        f"the compressed frame is {header.rows}x{header.columns} but the header "
                        f"says {rows}x{columns}")
