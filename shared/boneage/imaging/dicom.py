"""DICOM ingest: parse with pydicom, check the header against our limits, decode, present.

Decoding goes through pydicom's pixel-data plugins (pylibjpeg-libjpeg, pylibjpeg-openjpeg,
pylibjpeg-rle, pyjpegls, Pillow) for every transfer syntax, with two exceptions that are worth
their code: a large single-component JPEG 2000 frame is decoded by OpenJPEG (through Pillow)
directly at the lowest resolution level that still covers ``target_long_side`` (T.800 resolution
reduction), which is ~20x cheaper than decoding at full size and then throwing pixels away; and a
grey unsigned JPEG-LS frame is decoded by CharLS straight into its array (``jpegls``), skipping
two 10 MB copies that cost ~10-15 ms of a ~110 ms decode.
"""

from __future__ import annotations

import io
import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom import uid as dcm_uid
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels import get_decoder
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi

from boneage.errors import Reason, Rejection
from boneage.imaging import codestream, jpegls, pixels
from boneage.imaging.limits import Limits
from boneage.imaging.metadata import (
    HEIGHT_RANGE_CM, AgeEvidence, parse_date, parse_patient_age, parse_sex,
)
from boneage.imaging.text import dicom_text, shown
from boneage.imaging.types import StudyMetadata

# Projection radiography. OT covers secondary captures of scanned films; anything cross-sectional
# (CT, MR, US, NM, PT), mammography or non-image objects are not hand radiographs.
ACCEPTED_MODALITIES = frozenset({"CR", "DX", "RG", "OT"})
GREY = ("MONOCHROME1", "MONOCHROME2")
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")
J2K_SYNTAXES = frozenset({dcm_uid.JPEG2000Lossless, dcm_uid.JPEG2000,
                          dcm_uid.HTJ2KLossless, dcm_uid.HTJ2KLosslessRPCL, dcm_uid.HTJ2K})
JPEG_LS_SYNTAXES = frozenset({dcm_uid.JPEGLSLossless, dcm_uid.JPEGLSNearLossless})
JPEG_SYNTAXES = frozenset({dcm_uid.JPEGBaseline8Bit, dcm_uid.JPEGExtended12Bit, dcm_uid.JPEGLossless,
                           dcm_uid.JPEGLosslessSV1}) | JPEG_LS_SYNTAXES
STUDY_DATE_TAGS = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
SPACING_TAGS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")
_PREAMBLE_FREE_GROUPS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


@dataclass
class DicomImage:
    pixels: np.ndarray
    meta: StudyMetadata
    age: AgeEvidence
    dataset: Dataset


def looks_like_dicom(data: bytes) -> bool:
    """Part 10 (preamble + 'DICM') or a bare dataset starting with a group 0002/0008 tag."""
    return data[128:132] == b"DICM" or data[:2] in _PREAMBLE_FREE_GROUPS


def _get(ds: Dataset, keyword: str, warnings: list[str]) -> Any:
    """An element's value, or None when absent or unreadable (a malformed value is the modality's
    problem; we note it and carry on)."""
    try:
        value = ds.get(keyword)
    except Exception:
        warnings.append(f"{keyword} is unreadable")
        return None
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _check_deflate(data: bytes, limits: Limits) -> None:
    """Deflated datasets are inflated whole by pydicom; bound that first (a zip bomb in DICOM
    clothing). The inflated size counts against ``max_file_bytes``."""
    head = data[:4096]
    if dcm_uid.DeflatedExplicitVRLittleEndian.encode() not in head:
        return
    try:
        # read_file_meta_info() only takes a path; these are the two calls it makes.
        fp = io.BytesIO(data)
        pydicom.filereader.read_preamble(fp, False)
        meta = pydicom.filereader._read_file_meta_info(fp)
        end = fp.tell()
    except Exception as exc:
        raise Rejection(Reason.NOT_AN_IMAGE, "the DICOM file meta header is unreadable") from exc
    if meta.get("TransferSyntaxUID") != dcm_uid.DeflatedExplicitVRLittleEndian:
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflater.decompress(data[end:], limits.max_file_bytes)
    except zlib.error as exc:
        raise Rejection(Reason.CORRUPT_PIXEL_DATA, "the deflated dataset does not inflate") from exc
    if inflater.unconsumed_tail:
        raise Rejection(Reason.TOO_LARGE,
                        f"the deflated dataset inflates to more than {limits.max_file_bytes} bytes")


def parse(data: bytes, limits: Limits) -> Dataset:
    """Parse a DICOM file or bare dataset; ``Rejection(not_an_image)`` if it is not one."""
    preamble = data[128:132] == b"DICM"
    if preamble:
        _check_deflate(data, limits)
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=not preamble)
    except Exception as exc:
        raise Rejection(Reason.NOT_AN_IMAGE, "the file is not a readable DICOM dataset") from exc
    try:
        plausible = any(k in ds for k in ("PixelData", "SOPClassUID", "Rows", "Modality",
                                           "FloatPixelData", "DoubleFloatPixelData"))
    except Exception:
        plausible = False
    if not plausible:
        raise Rejection(Reason.NOT_AN_IMAGE, "the file is not a DICOM image")
    if "TransferSyntaxUID" not in ds.file_meta:
        # A bare dataset: record the encoding pydicom found so the pixel decoder knows it.
        implicit, little = getattr(ds, "original_encoding", (None, None))
        if little is False:
            ts = dcm_uid.ExplicitVRBigEndian
        else:
            ts = dcm_uid.ImplicitVRLittleEndian if implicit is not False else dcm_uid.ExplicitVRLittleEndian
        ds.file_meta.TransferSyntaxUID = ts
    return ds


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    try:
        value = ds.get(keyword, default)
        return None if value is None else int(value)
    except Exception:
        raise Rejection(Reason.CORRUPT_PIXEL_DATA, f"{keyword} is not a number") from None


def check_header(ds: Dataset, limits: Limits, warnings: list[str]) -> None:
    """Everything that can be refused without touching the pixel data."""
    modality = _text(_get(ds, "Modality", warnings))
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
    except Exception:
        raise Rejection(Reason.UNSUPPORTED_TRANSFER_SYNTAX,
                        f"transfer syntax {shown(ts, 'UI')} is not supported") from None
    if not decoder.is_available:
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
    photometric = _text(_get(ds, "PhotometricInterpretation", warnings))
    if photometric is None:
        raise Rejection(Reason.UNSUPPORTED_PHOTOMETRIC, "PhotometricInterpretation is missing")
    if photometric.upper() not in GREY + COLOUR:
        raise Rejection(Reason.UNSUPPORTED_PHOTOMETRIC,
                        f"photometric interpretation {shown(photometric)} is not supported")
    if ts in J2K_SYNTAXES or ts in JPEG_SYNTAXES:
        _check_frame_header(ds, ts, rows, columns, limits)


def _first_frame(ds: Dataset) -> bytes:
    return get_frame(ds.PixelData, 0, number_of_frames=1)


def _check_frame_header(ds: Dataset, ts: str, rows: int, columns: int, limits: Limits) -> None:
    try:
        frame = _first_frame(ds)
    except Exception as exc:
        raise Rejection(Reason.CORRUPT_PIXEL_DATA, "the encapsulated pixel data is malformed") from exc
    try:
        header = (codestream.j2k_frame_header(frame) if ts in J2K_SYNTAXES
                  else codestream.jpeg_frame_header(frame))
    except Exception as exc:
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


def _j2k_reduced(ds: Dataset, target_long_side: int | None) -> np.ndarray | None:
    """Decode a grey JPEG 2000 frame at a reduced resolution level, or None when that does not
    apply (small image, colour, signed, too few levels) or fails (the full decode then decides)."""
    if target_long_side is None:
        return None
    try:
        frame = _first_frame(ds)
        header = codestream.j2k_frame_header(frame)
        long_side = max(header.rows, header.columns)
        levels = header.levels or 0
        reduce = 0
        while reduce < levels and math.ceil(long_side / 2 ** (reduce + 1)) >= target_long_side:
            reduce += 1
        if reduce == 0 or header.components != 1 or header.signed or header.precision > 16:
            return None
        im = Image.open(io.BytesIO(frame), formats=["JPEG2000"])
        im.reduce = reduce
        im.load()
        arr = np.asarray(im)
        expected = (math.ceil(header.rows / 2 ** reduce), math.ceil(header.columns / 2 ** reduce))
        if arr.ndim != 2 or abs(arr.shape[0] - expected[0]) > 1 or abs(arr.shape[1] - expected[1]) > 1:
            return None
        if arr.dtype not in (np.uint8, np.uint16):
            return None
        # Pillow scales samples up to fill its mode (a 12-bit sample v comes back as v << 4).
        shift = 8 * arr.dtype.itemsize - header.precision
        return arr >> shift if shift > 0 else arr
    except Exception:
        return None


# Where pydicom has more than one plugin, the one to try first (measured on a 2500x2048 12-bit
# image): CharLS (pyjpegls) decodes JPEG-LS ~3x faster than libjpeg and is BSD/MIT rather than GPL;
# pylibjpeg-rle (Rust) decodes RLE ~14x faster than pydicom's numpy decoder; for JPEG 2000
# pylibjpeg-openjpeg beats pydicom's Pillow route at full size; libjpeg-turbo (Pillow) for 8-bit JPEG.
PREFERRED_PLUGIN = {
    dcm_uid.JPEGLSLossless: "pyjpegls", dcm_uid.JPEGLSNearLossless: "pyjpegls",
    dcm_uid.JPEG2000Lossless: "pylibjpeg", dcm_uid.JPEG2000: "pylibjpeg",
    dcm_uid.JPEGBaseline8Bit: "pillow", dcm_uid.RLELossless: "pylibjpeg",
}


def _decode_frame(ds: Dataset) -> np.ndarray:
    """Frame 0 through pydicom's decoders (YBR converted to RGB), preferred plugin first; a grey
    unsigned JPEG-LS frame goes to CharLS directly when it can (``jpegls``: ~10-15 ms cheaper)."""
    ts = ds.file_meta.TransferSyntaxUID
    if ts in JPEG_LS_SYNTAXES:
        direct = _jpeg_ls_direct(ds)
        if direct is not None:
            return direct
    decoder = get_decoder(ts)
    plugin = PREFERRED_PLUGIN.get(ts)
    if plugin and plugin in decoder.available_plugins:
        try:
            return decoder.as_array(ds, index=0, decoding_plugin=plugin)[0]
        except BaseException as exc:
            if not isinstance(exc, Exception) and not _is_panic(exc):
                raise
            # the other plugins may cope (e.g. Pillow's JPEG with odd markers)
    return decoder.as_array(ds, index=0)[0]


def _jpeg_ls_direct(ds: Dataset) -> np.ndarray | None:
    """What pydicom's pyjpegls route would return, for the cases where that is just the samples:
    one unsigned component (signed JPEG-LS needs pydicom's sign correction). None otherwise."""
    if _safe_int(ds, "SamplesPerPixel") != 1 or _safe_int(ds, "PixelRepresentation") != 0:
        return None
    bits_allocated = _safe_int(ds, "BitsAllocated")
    if bits_allocated is None:
        return None
    return jpegls.decode(_first_frame(ds), int(ds.Rows), int(ds.Columns), bits_allocated)


def _is_panic(exc: BaseException) -> bool:
    """Rust decoders (pylibjpeg-rle) turn a panic on corrupt input into pyo3's PanicException,
    a BaseException rather than an Exception (found by the fuzz test)."""
    return type(exc).__name__ == "PanicException"


def decode(ds: Dataset, target_long_side: int | None, warnings: list[str]) -> tuple[np.ndarray, float]:
    """Decode and present the single frame; returns (float32 image in [0, 1], decode_scale)."""
    ts = ds.file_meta.TransferSyntaxUID
    rows, columns = int(ds.Rows), int(ds.Columns)
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    stored = _j2k_reduced(ds, target_long_side) if ts in J2K_SYNTAXES and photometric in GREY else None
    if stored is None:
        try:
            stored = _decode_frame(ds)
        except MemoryError as exc:
            raise Rejection(Reason.TOO_LARGE, "the pixel data does not fit in memory") from exc
        except Exception as exc:
            raise Rejection(Reason.CORRUPT_PIXEL_DATA,
                            f"the pixel data cannot be decoded ({type(exc).__name__})") from exc
        except BaseException as exc:
            if not _is_panic(exc):
                raise
            raise Rejection(Reason.CORRUPT_PIXEL_DATA, "the pixel data cannot be decoded (decoder panic)") from None
    if photometric == "PALETTE COLOR":
        try:
            stored = apply_color_lut(stored, ds)
        except Exception as exc:
            raise Rejection(Reason.UNSUPPORTED_PHOTOMETRIC, "the palette colour LUT is unreadable") from exc
    if stored.ndim == 3:
        if stored.shape[-1] != 3:
            raise Rejection(Reason.UNSUPPORTED_PHOTOMETRIC, f"unexpected pixel array shape {stored.shape}")
        # pydicom converts YBR to RGB; OpenJPEG undoes ICT/RCT: what is left is RGB, at
        # BitsStored (a palette LUT's output fills its dtype instead).
        full_scale = float(np.iinfo(stored.dtype).max) if stored.dtype.kind in "ui" else 1.0
        bits_stored = _safe_int(ds, "BitsStored") or 0
        if photometric != "PALETTE COLOR" and 0 < bits_stored < 8 * stored.dtype.itemsize:
            full_scale = float(2 ** bits_stored - 1)
        grey = pixels.luma(stored).astype(np.float32)
        transform = pixels.GreyTransform(full_scale=full_scale)
        if photometric in GREY:
            warnings.append(f"{photometric} image decoded with colour samples; converted to grey")
    elif stored.ndim == 2:
        grey = stored
        transform = grey_transform(ds, photometric, warnings) if photometric in GREY else \
            pixels.GreyTransform(full_scale=float(np.iinfo(stored.dtype).max)
                                 if stored.dtype.kind in "ui" else None)
    else:
        raise Rejection(Reason.CORRUPT_PIXEL_DATA, f"unexpected pixel array shape {stored.shape}")
    # The output size follows the *stored* size, so a reduced JPEG 2000 decode ends at the same
    # size as a full decode of the same image.
    out_rows, out_cols = pixels.target_size(rows, columns, target_long_side)
    if target_long_side is None:
        out_rows, out_cols = grey.shape[0], grey.shape[1]
    small = pixels.downscale(grey, out_rows, out_cols)
    image = pixels.present(small, transform, warnings)
    return image, max(rows, columns) / max(image.shape)


def grey_transform(ds: Dataset, photometric: str, warnings: list[str]) -> pixels.GreyTransform:
    """Modality LUT, VOI (LUT sequence preferred over window, as pydicom does) and inversion."""
    t = pixels.GreyTransform()
    try:
        if ds.get("ModalityLUTSequence") or (
                ds.get("RescaleSlope") is not None and ds.get("RescaleIntercept") is not None):
            slope = 1.0 if ds.get("ModalityLUTSequence") else float(ds.RescaleSlope)
            if slope == 0.0 or not math.isfinite(slope):
                warnings.append("RescaleSlope is 0 or not finite; rescale ignored")
            else:
                t.modality = lambda a: apply_modality_lut(a, ds)
                t.modality(np.arange(2, dtype=np.uint16))    # fail here, not mid-pipeline
    except Exception:
        t.modality = None
        warnings.append("Modality LUT / rescale is unreadable; ignored")
    try:
        seq = ds.get("VOILUTSequence")
        if seq and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None:
            t.voi_lut = lambda a: apply_voi(a, ds)
            t.voi_lut(np.arange(2, dtype=np.float64))
            t.full_range = True
    except Exception:
        t.voi_lut = None
        warnings.append("VOI LUT Sequence is unreadable; ignored")
    if t.voi_lut is None:
        t.window = _window(ds, warnings)
    bits_stored = _safe_int(ds, "BitsStored") or 0
    if t.voi_lut is None and t.window is None and t.modality is None and 0 < bits_stored <= 8:
        # 8-bit values without any LUT are display-ready (a secondary capture of a film): taken
        # as displayed, exactly like an 8-bit PNG of the same picture. Deeper data get percentiles.
        t.full_scale = float(2 ** bits_stored - 1)
    shape = _text(ds.get("PresentationLUTShape")) if "PresentationLUTShape" in ds else None
    # DX/MG (PS3.3 C.8.11.6.1.2): INVERSE "shall be used" with MONOCHROME1, i.e. it restates that
    # one inversion; with MONOCHROME2 it asks for an inversion of its own. Never invert twice.
    t.invert = photometric == "MONOCHROME1" or (shape or "").upper() == "INVERSE"
    return t


def _window(ds: Dataset, warnings: list[str]) -> pixels.Window | None:
    try:
        if ds.get("WindowCenter") is None or ds.get("WindowWidth") is None:
            return None
        centre, width = ds.WindowCenter, ds.WindowWidth
        centre = centre[0] if isinstance(centre, (list, pydicom.multival.MultiValue)) else centre
        width = width[0] if isinstance(width, (list, pydicom.multival.MultiValue)) else width
        function = (_text(ds.get("VOILUTFunction")) or "LINEAR").upper()
        window = pixels.Window(float(centre), float(width), function)
    except Exception:
        warnings.append("Window Center/Width is unreadable; ignored")
        return None
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID") or not window.valid:
        warnings.append("Window Center/Width is invalid; ignored")
        return None
    return window


def extract_metadata(ds: Dataset, warnings: list[str]) -> tuple[StudyMetadata, AgeEvidence]:
    """The non-PHI facts the service needs, plus the dates used only to compute the age."""
    ts = ds.file_meta.get("TransferSyntaxUID")
    meta = StudyMetadata(source_format="dicom", warnings=warnings)
    meta.rows = _safe_int(ds, "Rows")
    meta.columns = _safe_int(ds, "Columns")
    meta.transfer_syntax = str(ts) if ts else None
    meta.transfer_syntax_name = ts.name if ts else None
    meta.photometric = dicom_text(ds, "PhotometricInterpretation", warnings)
    meta.bits_stored = _safe_int(ds, "BitsStored")
    meta.modality = dicom_text(ds, "Modality", warnings)
    meta.body_part = dicom_text(ds, "BodyPartExamined", warnings)
    for keyword in ("ImageLaterality", "Laterality"):
        value = (dicom_text(ds, keyword, warnings) or "").upper()
        if value in ("L", "R"):
            meta.laterality, meta.laterality_source = value, keyword
            break
    sex = dicom_text(ds, "PatientSex", warnings)
    if sex is not None:
        try:
            meta.sex = parse_sex(sex)
        except ValueError:
            warnings.append("PatientSex is not M, F or O; sex unknown")
        if meta.sex is not None:
            meta.sex_source = "PatientSex"
    for keyword in SPACING_TAGS:
        value = _get(ds, keyword, warnings)
        try:
            spacing = (float(value[0]), float(value[1])) if value is not None and len(value) == 2 else None
        except Exception:
            spacing = None
        if spacing and all(math.isfinite(s) and s > 0 for s in spacing):
            meta.pixel_spacing_mm, meta.pixel_spacing_source = spacing, keyword
            break
    size = _get(ds, "PatientSize", warnings)
    try:
        height_cm = float(size) * 100.0 if size not in (None, "") else None
    except Exception:
        height_cm = None
    if height_cm is not None:
        if HEIGHT_RANGE_CM[0] <= height_cm <= HEIGHT_RANGE_CM[1]:
            meta.patient_height_cm = round(height_cm, 1)
        else:
            warnings.append("PatientSize is outside 0.3-2.5 m; ignored")
    for attr, keyword in (("study_instance_uid", "StudyInstanceUID"), ("series_instance_uid", "SeriesInstanceUID"),
                          ("sop_instance_uid", "SOPInstanceUID"), ("sop_class_uid", "SOPClassUID"),
                          ("accession_number", "AccessionNumber")):
        setattr(meta, attr, dicom_text(ds, keyword, warnings))
    return meta, _age_evidence(ds, warnings)


def _safe_int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value is None else int(value)
    except Exception:
        return None


def _age_evidence(ds: Dataset, warnings: list[str]) -> AgeEvidence:
    ev = AgeEvidence()
    birth = _text(_get(ds, "PatientBirthDate", warnings))
    if birth:
        try:
            ev.birth, ev.birth_source = parse_date(birth), "PatientBirthDate"
        except ValueError:
            ev.problems.append("PatientBirthDate is not a valid date")
    for keyword in STUDY_DATE_TAGS:
        value = _text(_get(ds, keyword, warnings))
        if not value:
            continue
        try:
            ev.study, ev.study_source = parse_date(value), keyword
            break
        except ValueError:
            ev.problems.append(f"{keyword} is not a valid date")
    age = _text(_get(ds, "PatientAge", warnings))
    if age:
        try:
            ev.patient_age_months = parse_patient_age(age)
        except ValueError:
            ev.problems.append("PatientAge is not in nnnD/W/M/Y form")
    return ev


def read(data: bytes, limits: Limits, target_long_side: int | None) -> DicomImage:
    warnings: list[str] = []
    ds = parse(data, limits)
    try:
        check_header(ds, limits, warnings)
    except Rejection:
        raise
    except Exception as exc:
        raise Rejection(Reason.CORRUPT_PIXEL_DATA,
                        f"the image header is malformed ({type(exc).__name__})") from exc
    meta, age = extract_metadata(ds, warnings)
    image, scale = decode(ds, target_long_side, warnings)
    meta.decode_scale = scale
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in ds:
            del ds[keyword]         # the dataset travels on for PACS results; the pixels do not
    return DicomImage(image, meta, age, ds)
