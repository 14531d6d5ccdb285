"""Decode a DICOM JPEG frame (ITU-T T.81: baseline 8-bit, extended 12-bit, lossless process 14
and its selection value 1, 2-16 bit) with libjpeg-turbo 3 through imagecodecs.

libjpeg-turbo 3 reads all four of DICOM's JPEG transfer syntaxes (12-bit and lossless since 3.0),
is BSD/IJG licensed, and on a 2500x2048 12-bit frame decodes lossless SV1 ~5x and 12-bit extended
~3x faster than pylibjpeg-libjpeg (GPLv3), the only pydicom plugin for those syntaxes. Lossless
output is the codestream's samples exactly; the unit tests hold it to the reference decoder bit for
bit.

imagecodecs' ``jpeg8_decode`` has no DCT scaling (its ``shape`` is not a scale request), so lossy
frames come back at full size here; 8-bit grey baseline frames get libjpeg-turbo's DCT scaling
through Pillow's ``draft`` instead (``decode_scaled``), which is the same library.
"""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image

try:
    import imagecodecs
except ImportError:         # the missing-decoder rejection is decode.py's to give, not an import error
    imagecodecs = None

LIBJPEG_TURBO = "libjpeg-turbo (imagecodecs)"
LIBJPEG_TURBO_SCALED = "libjpeg-turbo (Pillow draft)"
MIN_LIBJPEG_TURBO = (3, 0)

# imagecodecs raises Jpeg8Error (a RuntimeError) for a stream libjpeg-turbo refuses, ValueError for
# a layout it does not handle; MemoryError stays the caller's (too_large).
ERRORS: tuple[type[BaseException], ...] = (RuntimeError, ValueError)
# Pillow on a JPEG it cannot read: OSError (UnidentifiedImageError, truncated data), ValueError,
# SyntaxError from its marker parser, DecompressionBombError for a claimed size.
PILLOW_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def libjpeg_turbo_version() -> tuple[int, int] | None:
    """(major, minor) of the libjpeg-turbo that imagecodecs bundles, None without imagecodecs.
    ``jpeg8_version`` loads the JPEG codec only (``imagecodecs.version()`` loads every codec,
    ~130 ms)."""
    if imagecodecs is None or not getattr(imagecodecs.JPEG8, "available", False):
        return None
    match = re.search(r"libjpeg_turbo[- ](\d+)\.(\d+)", imagecodecs.jpeg8_version())
    return (int(match.group(1)), int(match.group(2))) if match else None


def available() -> bool:
    """True when the installed imagecodecs carries libjpeg-turbo 3 (12-bit and lossless)."""
    version = libjpeg_turbo_version()
    return version is not None and version >= MIN_LIBJPEG_TURBO


def decode(frame: bytes, *, raw_colour: bool = False) -> np.ndarray:
    """The frame's samples at full size: (rows, columns) or (rows, columns, 3) uint8/uint16.
    Colour comes back as libjpeg-turbo converts it (to RGB, guessing YCbCr without an Adobe or
    JFIF marker) unless ``raw_colour``: then the components as coded. Raises one of ``ERRORS``."""
    if imagecodecs is None:
        raise RuntimeError("imagecodecs is not installed")
    if raw_colour:
        return imagecodecs.jpeg8_decode(frame, colorspace="RGB", outcolorspace="RGB")
    return imagecodecs.jpeg8_decode(frame)


def scale_for(rows: int, columns: int, target_long_side: int | None) -> int:
    """The largest libjpeg DCT scale denominator (1, 2, 4, 8) whose output still covers
    ``target_long_side``; 1 when no target is asked for."""
    if target_long_side is None:
        return 1
    long_side = max(rows, columns)
    denominator = 1
    while denominator < 8 and -(-long_side // (denominator * 2)) >= target_long_side:
        denominator *= 2
    return denominator


def decode_scaled(frame: bytes, rows: int, columns: int, denominator: int) -> np.ndarray | None:
    """An 8-bit single-component frame decoded at 1/``denominator`` by libjpeg-turbo's DCT scaling
    (Pillow's ``draft``), or None when Pillow does not give exactly that (the caller then decodes
    at full size with ``decode``: same library, same samples before scaling)."""
    expected = (-(-rows // denominator), -(-columns // denominator))
    try:
        im = Image.open(io.BytesIO(frame), formats=["JPEG"])
        if im.mode != "L":
            return None
        im.draft("L", (expected[1], expected[0]))
        arr = np.asarray(im)
    except PILLOW_ERRORS:
        return None
    if arr.shape != expected or arr.dtype != np.uint8:
        return None
    return arr
