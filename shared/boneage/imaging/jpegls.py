"""Decode a grey JPEG-LS frame with CharLS straight into a numpy array.

pydicom's pyjpegls route costs ~10-15 ms more than CharLS itself on a 2500x2048 frame (~110 ms
in all on the development box): the extension zero-fills its output by building a bytes of zeros
and copying it into a bytearray (two fresh 10 MB buffers, page-faulted on every call), and
pydicom then copies that into an array of its own. CharLS's C API ``JpegLsDecode`` writes into
any buffer it is given; pyjpegls links CharLS 2.x statically and exports that API, so we call it
through ctypes. ``decode`` answers only when the result is unambiguous (one component, the size
and sample depth we expect); ``None`` means "use pydicom", which is also where any failure goes.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import numpy as np

from boneage.compat.pyjpegls import charls_library_path

# The leading members of CharLS 2.x's ``JlsParameters`` (public_types.h): width, height,
# bitsPerSample, stride, components, all int32. The struct is larger; we give a roomy buffer.
_HEADER_FIELDS = 5
_PARAMS_BYTES = 512
_ERROR_BYTES = 256


def _load() -> tuple[Callable[..., int], Callable[..., int]] | None:
    try:
        lib = ctypes.CDLL(charls_library_path())
        read_header, decode = lib.JpegLsReadHeader, lib.JpegLsDecode
    except (ImportError, OSError, AttributeError):
        return None
    read_header.restype = ctypes.c_int
    read_header.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_char_p]
    decode.restype = ctypes.c_int
    decode.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                       ctypes.c_void_p, ctypes.c_char_p]
    return read_header, decode


_CHARLS = _load()


def available() -> bool:
    return _CHARLS is not None


def decode(frame: bytes, rows: int, columns: int, bits_allocated: int) -> np.ndarray | None:
    """The (rows, columns) uint8/uint16 image in ``frame``, or None when CharLS is not reachable
    this way, the stream is not a single-component image of that size whose sample precision
    fits ``bits_allocated`` (8: precision <= 8; 16: 9..16), or CharLS fails on it."""
    if _CHARLS is None or bits_allocated not in (8, 16):
        return None
    read_header, decode_into = _CHARLS
    params = ctypes.create_string_buffer(_PARAMS_BYTES)
    error = ctypes.create_string_buffer(_ERROR_BYTES)
    if read_header(frame, len(frame), params, error) != 0:
        return None
    width, height, precision, _stride, components = np.frombuffer(
        params.raw, dtype=np.int32, count=_HEADER_FIELDS)
    # CharLS sizes its output from the stream, which may differ from the SOF55 we checked
    # (an LSE marker can restate the size): decode only when the stream says what we expect.
    if (width, height, components) != (columns, rows, 1):
        return None
    if not (2 <= precision <= 8 if bits_allocated == 8 else 8 < precision <= 16):
        return None
    out = np.empty((rows, columns), dtype=np.uint8 if bits_allocated == 8 else np.uint16)
    if decode_into(out.ctypes.data, out.nbytes, frame, len(frame), None, error) != 0:
        return None
    return out
