"""PNG (8/16-bit) and JPEG ingest through Pillow.

The size in the PNG IHDR / JPEG SOF is checked on Pillow's lazy open, before any pixel is decoded.
Only the PNG and JPEG plugins are allowed to open the data, so an upload cannot reach Pillow's
other decoders. A large JPEG is decoded with libjpeg's DCT scaling (Pillow ``draft``) at the
smallest 1/2, 1/4 or 1/8 size that still covers ``target_long_side``. A 16-bit grey PNG without
EXIF is decoded by imagecodecs' libpng (zlib-ng inside, ~20 % faster than Pillow's libpng + zlib on
a 2500x2048 image) once Pillow has checked its header; PNG has no reduced-resolution decode.

These formats carry no presentation state: 8-bit grey values are taken as displayed (value/255),
16-bit ones get the percentile window DICOM images without a VOI get. Colour becomes BT.601 luma.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from boneage.errors import Reason, Rejection
from boneage.imaging import pixels
from boneage.imaging.limits import Limits
from boneage.imaging.types import StudyMetadata

try:
    import imagecodecs
except ImportError:         # Pillow decodes it then: the same samples, slower
    imagecodecs = None

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"


def sniff(data: bytes) -> str | None:
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(JPEG_SIGNATURE):
        return "jpeg"
    return None


def read(data: bytes, fmt: str, limits: Limits, target_long_side: int | None) -> tuple[np.ndarray, StudyMetadata]:
    warnings: list[str] = []
    try:
        im = Image.open(io.BytesIO(data), formats=["PNG" if fmt == "png" else "JPEG"])
    except Image.DecompressionBombError as exc:
        raise Rejection(Reason.TOO_LARGE, "the image claims more pixels than we accept") from exc
    except (UnidentifiedImageError, Exception) as exc:
        raise Rejection(Reason.NOT_AN_IMAGE, f"the file is not a readable {fmt.upper()} image") from exc
    columns, rows = im.size
    if rows <= 0 or columns <= 0:
        raise Rejection(Reason.EMPTY_IMAGE, f"the image is {rows}x{columns} pixels")
    if rows * columns > limits.max_pixels:
        raise Rejection(Reason.TOO_LARGE,
                        f"{rows}x{columns} pixels is over the limit of {limits.max_pixels} pixels")
    meta = StudyMetadata(source_format=fmt, rows=rows, columns=columns, photometric=im.mode,
                         warnings=warnings)
    try:
        if fmt == "jpeg" and target_long_side is not None and max(rows, columns) >= 2 * target_long_side:
            scale = max(rows, columns) / target_long_side
            # draft() keeps the result at least the requested size; asking for L decodes luma only.
            im.draft("L" if im.mode in ("L", "RGB", "YCbCr") else im.mode,
                     (math.ceil(columns / scale), math.ceil(rows / scale)))
        stored16 = _png16(data, im, rows, columns) if fmt == "png" else None
        if stored16 is not None:
            stored, full_scale, bits = stored16, None, 16
        else:
            im.load()
            im = _orient(im, warnings)
            stored, full_scale, bits = _grey(im)
    except Rejection:
        raise
    except MemoryError as exc:
        raise Rejection(Reason.TOO_LARGE, "the image does not fit in memory") from exc
    except Exception as exc:
        raise Rejection(Reason.CORRUPT_PIXEL_DATA,
                        f"the {fmt.upper()} pixel data cannot be decoded ({type(exc).__name__})") from exc
    meta.bits_stored = bits
    # From the decoded shape: EXIF may have turned it, and draft() already shrank it.
    out_rows, out_cols = pixels.target_size(stored.shape[0], stored.shape[1], target_long_side)
    small = pixels.downscale(stored, out_rows, out_cols)
    transform = pixels.GreyTransform(full_scale=full_scale)
    image = pixels.present(small, transform, warnings)
    meta.decode_scale = max(rows, columns) / max(image.shape)
    return image, meta


def png16(data: bytes) -> np.ndarray:
    """A 16-bit PNG's samples by imagecodecs' libpng (for the benchmark's comparison as well)."""
    return imagecodecs.png_decode(data)


def _png16(data: bytes, im: Image.Image, rows: int, columns: int) -> np.ndarray | None:
    """The samples of a grey 16-bit PNG with no EXIF block (orientation is Pillow's to apply), or
    None for any other PNG or when imagecodecs is absent or does not return exactly that."""
    if imagecodecs is None or im.mode not in ("I;16", "I;16B", "I;16L") or b"eXIf" in data:
        return None
    arr = png16(data)
    if arr.shape != (rows, columns) or arr.dtype != np.uint16:
        return None
    return arr


def _orient(im: Image.Image, warnings: list[str]) -> Image.Image:
    """Apply an EXIF orientation (phone photos of films); a broken EXIF block is ignored."""
    try:
        return ImageOps.exif_transpose(im) or im
    except Exception:
        warnings.append("EXIF orientation is unreadable; ignored")
        return im


def _grey(im: Image.Image) -> tuple[np.ndarray, float | None, int]:
    """(stored values, full scale or None for a percentile window, bits per sample)."""
    if im.mode == "L":
        return np.asarray(im), 255.0, 8
    if im.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(im).astype(np.uint16, copy=False), None, 16
    if im.mode == "I":
        arr = np.asarray(im)
        if arr.size and 0 <= arr.min() and arr.max() <= 0xFFFF:
            return arr.astype(np.uint16), None, 16
        return arr.astype(np.float32), None, 32
    if im.mode == "1":
        return np.asarray(im.convert("L")), 255.0, 1
    # P, LA, RGB, RGBA, CMYK, YCbCr...: Pillow's BT.601 conversion.
    return np.asarray(im.convert("L")), 255.0, 8
