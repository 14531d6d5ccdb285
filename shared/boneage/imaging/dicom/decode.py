"""Frame 0 of the pixel data -> its stored samples (a numpy array), or a typed Rejection.

Which decoder reads which transfer syntax is a table (``DECODERS``), not an order of attempts.
DICOM's JPEG syntaxes (baseline, extended 12-bit, lossless process 14 and SV1) are decoded by
libjpeg-turbo 3 through imagecodecs (``imaging.jpeg``; an 8-bit grey frame DCT-scaled towards the
target first); when imagecodecs is not installed they are rejected as
``unsupported_transfer_syntax``, never handed to a slower plugin. The rest go through pydicom's
pixel-data plugins (pylibjpeg-openjpeg, pylibjpeg-rle, pyjpegls, Pillow), with two exceptions that
are worth their code: a large single-component JPEG 2000 frame is decoded by OpenJPEG (through Pillow)
directly at the lowest resolution level that still covers ``target_long_side`` (T.800 resolution
reduction), which is ~20x cheaper than decoding at full size and then throwing pixels away; and a
grey unsigned JPEG-LS frame is decoded by CharLS straight into its array (``jpegls``), skipping
two 10 MB copies that cost ~10-15 ms of a ~110 ms decode.
"""

from __future__ import annotations

import io
import math
import struct

import numpy as np
from PIL import Image
from pydicom import uid as dcm_uid
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels import get_decoder
from pydicom.pixels.processing import convert_color_space

from boneage.errors import Reason, Rejection
from boneage.imaging import codestream, jpeg, jpegls
from boneage.imaging.dicom.attributes import ELEMENT_ERRORS, safe_int

J2K_SYNTAXES = frozenset({dcm_uid.JPEG2000Lossless, dcm_uid.JPEG2000,
                          dcm_uid.HTJ2KLossless, dcm_uid.HTJ2KLosslessRPCL, dcm_uid.HTJ2K})
JPEG_LS_SYNTAXES = frozenset({dcm_uid.JPEGLSLossless, dcm_uid.JPEGLSNearLossless})
YBR_FULL = ("YBR_FULL", "YBR_FULL_422")
JPEG_T81_SYNTAXES = frozenset({dcm_uid.JPEGBaseline8Bit, dcm_uid.JPEGExtended12Bit, dcm_uid.JPEGLossless,
                               dcm_uid.JPEGLosslessSV1})
JPEG_LOSSLESS_SYNTAXES = frozenset({dcm_uid.JPEGLossless, dcm_uid.JPEGLosslessSV1})
JPEG_SYNTAXES = JPEG_T81_SYNTAXES | JPEG_LS_SYNTAXES

# pydicom's encapsulation parser (``pydicom.encaps``): ValueError for a bad item tag, length or
# offset table, struct.error for a truncated item header, AttributeError when there is no
# PixelData (Float/DoubleFloatPixelData only), and reading PixelData's value (ELEMENT_ERRORS).
FRAME_ERRORS: tuple[type[BaseException], ...] = (ValueError, struct.error, AttributeError) + ELEMENT_ERRORS
# Our frame-header reader (``codestream``): ValueError for a missing marker, struct.error or
# IndexError for a header cut short.
CODESTREAM_ERRORS: tuple[type[BaseException], ...] = (ValueError, struct.error, IndexError)
# Pillow's JPEG 2000 route (OpenJPEG): OSError (UnidentifiedImageError included) for a stream it
# cannot open or decode, ValueError for bad parameters, DecompressionBombError for a claimed size.
PILLOW_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, Image.DecompressionBombError)
# pydicom's pixel pipeline (``Decoder.as_array``): RuntimeError when every plugin failed (it wraps
# the plugins' own errors) or none is usable, ValueError / AttributeError from its checks of the
# pixel module (a missing or inconsistent element), NotImplementedError for a layout it does not
# handle, and the encapsulation and value errors above for a damaged frame.
PYDICOM_DECODE_ERRORS: tuple[type[BaseException], ...] = (RuntimeError,) + FRAME_ERRORS

# Where pydicom has more than one plugin, the one to try first (measured on a 2500x2048 12-bit
# image): CharLS (pyjpegls) decodes JPEG-LS ~3x faster than libjpeg and is BSD/MIT rather than GPL;
# pylibjpeg-rle (Rust) decodes RLE ~14x faster than pydicom's numpy decoder; for JPEG 2000
# pylibjpeg-openjpeg beats pydicom's Pillow route at full size.
PREFERRED_PLUGIN = {
    dcm_uid.JPEGLSLossless: "pyjpegls", dcm_uid.JPEGLSNearLossless: "pyjpegls",
    dcm_uid.JPEG2000Lossless: "pylibjpeg", dcm_uid.JPEG2000: "pylibjpeg",
    dcm_uid.RLELossless: "pylibjpeg",
}


# The decoder of each transfer syntax we read compressed: "libjpeg-turbo" is ``imaging.jpeg``
# (imagecodecs), "charls" is ``imaging.jpegls`` (pyjpegls' CharLS) before pydicom's pyjpegls plugin,
# the rest name the pydicom plugin that decodes it. Native and deflated syntaxes are pydicom's own.
DECODERS = {
    dcm_uid.JPEGBaseline8Bit: "libjpeg-turbo", dcm_uid.JPEGExtended12Bit: "libjpeg-turbo",
    dcm_uid.JPEGLossless: "libjpeg-turbo", dcm_uid.JPEGLosslessSV1: "libjpeg-turbo",
    dcm_uid.JPEGLSLossless: "charls", dcm_uid.JPEGLSNearLossless: "charls",
    dcm_uid.JPEG2000Lossless: "openjpeg", dcm_uid.JPEG2000: "openjpeg",
    dcm_uid.HTJ2KLossless: "openjpeg", dcm_uid.HTJ2KLosslessRPCL: "openjpeg", dcm_uid.HTJ2K: "openjpeg",
    dcm_uid.RLELossless: "rle",
}


def decoder_name(ts: str) -> str:
    """What decodes ``ts`` here (``DECODERS``), "pydicom" for the native and deflated syntaxes."""
    return DECODERS.get(ts, "pydicom")


def decoder_missing(ts: str) -> str | None:
    """The package a transfer syntax's chosen decoder needs when it is not installed, else None."""
    if decoder_name(ts) == "libjpeg-turbo" and not jpeg.available():
        return "imagecodecs (libjpeg-turbo >= 3)"
    return None


def first_frame(ds: Dataset) -> bytes:
    return get_frame(ds.PixelData, 0, number_of_frames=1)


def is_panic(exc: BaseException) -> bool:
    """Rust decoders (pylibjpeg-rle) turn a panic on corrupt input into pyo3's PanicException,
    a BaseException rather than an Exception (found by the fuzz test)."""
    return type(exc).__name__ == "PanicException"


def stored_samples(ds: Dataset, reduce_to: int | None) -> np.ndarray:
    """Frame 0's stored samples (YBR converted to RGB). ``reduce_to``: the long side a grey JPEG
    2000 frame may be decoded down to (None: full size). ``Rejection`` when it cannot be decoded."""
    ts = ds.file_meta.TransferSyntaxUID
    missing = decoder_missing(ts)
    if missing is not None:
        raise Rejection(Reason.UNSUPPORTED_TRANSFER_SYNTAX,
                        f"the decoder for transfer syntax {ts} ({missing}) is not installed")
    stored = j2k_reduced(ds, reduce_to) if ts in J2K_SYNTAXES else None
    if stored is not None:
        return stored
    try:
        if ts in JPEG_T81_SYNTAXES:
            return jpeg_frame(ds, reduce_to)
        return _decode_frame(ds)
    except MemoryError as exc:
        raise Rejection(Reason.TOO_LARGE, "the pixel data does not fit in memory") from exc
    except PYDICOM_DECODE_ERRORS + jpeg.ERRORS as exc:
        raise Rejection(Reason.CORRUPT_PIXEL_DATA,
                        f"the pixel data cannot be decoded ({type(exc).__name__})") from exc
    except BaseException as exc:
        if not is_panic(exc):
            raise
        raise Rejection(Reason.CORRUPT_PIXEL_DATA, "the pixel data cannot be decoded (decoder panic)") from None


def j2k_reduced(ds: Dataset, target_long_side: int | None) -> np.ndarray | None:
    """Decode a grey JPEG 2000 frame at a reduced resolution level, or None when that does not
    apply (small image, colour, signed, too few levels) or fails (the full decode then decides)."""
    if target_long_side is None:
        return None
    try:
        frame = first_frame(ds)
        header = codestream.j2k_frame_header(frame)
    except FRAME_ERRORS + CODESTREAM_ERRORS:
        return None
    long_side = max(header.rows, header.columns)
    levels = header.levels or 0
    reduce = 0
    while reduce < levels and math.ceil(long_side / 2 ** (reduce + 1)) >= target_long_side:
        reduce += 1
    if reduce == 0 or header.components != 1 or header.signed or header.precision > 16:
        return None
    try:
        im = Image.open(io.BytesIO(frame), formats=["JPEG2000"])
        im.reduce = reduce
        im.load()
        arr = np.asarray(im)
    except PILLOW_ERRORS:
        return None
    expected = (math.ceil(header.rows / 2 ** reduce), math.ceil(header.columns / 2 ** reduce))
    if arr.ndim != 2 or abs(arr.shape[0] - expected[0]) > 1 or abs(arr.shape[1] - expected[1]) > 1:
        return None
    if arr.dtype not in (np.uint8, np.uint16):
        return None
    # Pillow scales samples up to fill its mode (a 12-bit sample v comes back as v << 4).
    shift = 8 * arr.dtype.itemsize - header.precision
    return arr >> shift if shift > 0 else arr


def _decode_frame(ds: Dataset) -> np.ndarray:
    """Frame 0 through pydicom's decoders (YBR converted to RGB), preferred plugin first; a grey
    unsigned JPEG-LS frame goes to CharLS directly when it can (``jpegls``: ~10-15 ms cheaper)."""
    ts = ds.file_meta.TransferSyntaxUID
    if ts in JPEG_LS_SYNTAXES:
        direct = jpeg_ls_direct(ds)
        if direct is not None:
            return direct
    decoder = get_decoder(ts)
    plugin = PREFERRED_PLUGIN.get(ts)
    if plugin and plugin in decoder.available_plugins:
        try:
            return decoder.as_array(ds, index=0, decoding_plugin=plugin)[0]
        except BaseException as exc:
            if not isinstance(exc, PYDICOM_DECODE_ERRORS) and not is_panic(exc):
                raise
            # the other plugins may cope (e.g. Pillow's JPEG with odd markers)
    return decoder.as_array(ds, index=0)[0]


def jpeg_ls_direct(ds: Dataset) -> np.ndarray | None:
    """What pydicom's pyjpegls route would return, for the cases where that is just the samples:
    one unsigned component (signed JPEG-LS needs pydicom's sign correction). None otherwise."""
    if safe_int(ds, "SamplesPerPixel") != 1 or safe_int(ds, "PixelRepresentation") != 0:
        return None
    bits_allocated = safe_int(ds, "BitsAllocated")
    if bits_allocated is None:
        return None
    return jpegls.decode(first_frame(ds), int(ds.Rows), int(ds.Columns), bits_allocated)


def jpeg_frame(ds: Dataset, reduce_to: int | None) -> np.ndarray:
    """Frame 0 of a T.81 JPEG syntax by libjpeg-turbo: an 8-bit grey lossy frame at the coarsest
    DCT scale that still covers ``reduce_to``, anything else at full size; signed samples are
    sign-extended from BitsStored as pydicom does."""
    frame = first_frame(ds)
    rows, columns = int(ds.Rows), int(ds.Columns)
    ts = ds.file_meta.TransferSyntaxUID
    denominator = jpeg.scale_for(rows, columns, reduce_to)
    if ts not in JPEG_LOSSLESS_SYNTAXES and denominator > 1 and safe_int(ds, "SamplesPerPixel") == 1 \
            and safe_int(ds, "BitsAllocated") == 8 and safe_int(ds, "PixelRepresentation") == 0:
        scaled = jpeg.decode_scaled(frame, rows, columns, denominator)
        if scaled is not None:
            return scaled
    colour = safe_int(ds, "SamplesPerPixel") == 3
    # As pydicom does it: without an Adobe APP14 marker the components are taken as coded (no
    # guessed YCbCr conversion), then converted to RGB if the dataset says they are YBR.
    raw = colour and not codestream.jpeg_has_adobe_marker(frame)
    arr = jpeg.decode(frame, raw_colour=raw)
    if raw and arr.ndim == 3 and str(ds.PhotometricInterpretation).strip().upper() in YBR_FULL:
        arr = convert_color_space(arr, "YBR_FULL", "RGB")
    if arr.shape[:2] != (rows, columns):
        raise ValueError(f"the JPEG frame is {arr.shape[:2]}, the dataset says {(rows, columns)}")
    if safe_int(ds, "PixelRepresentation") == 1:
        arr = _sign_extended(arr, safe_int(ds, "BitsStored") or 8 * arr.dtype.itemsize)
    return arr


def _sign_extended(arr: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned samples holding ``bits``-bit two's complement values -> the signed dtype."""
    dtype = np.int8 if arr.dtype.itemsize == 1 else np.int16
    if bits >= 8 * arr.dtype.itemsize:
        return arr.view(dtype)
    value = arr.astype(np.int32) & ((1 << bits) - 1)
    value -= (value >= (1 << (bits - 1))) * (1 << bits)
    return value.astype(dtype)
