"""Bytes -> pydicom ``Dataset``, or ``Rejection(not_an_image)``: sniffing, the deflate bound, and
the transfer syntax of a bare dataset.

A deflated dataset is inflated once, here, under the size bound, and its inflated bytes are what
pydicom parses (``dcmread`` would inflate it a second time, ~45 ms on a 2500x2048 12-bit image).
The inflate is libdeflate through imagecodecs (~40 % faster than zlib) when the inflated size fits
a guess of ``DEFLATE_GUESS`` times the deflated size; libdeflate needs its output buffer up front,
so a file that inflates further is inflated again by zlib, which streams under the bound.
"""

from __future__ import annotations

import io
import struct
import zlib

import pydicom
from pydicom import uid as dcm_uid
from pydicom.dataset import Dataset, FileDataset
from pydicom.filereader import read_dataset
from pydicom.errors import BytesLengthException, InvalidDicomError

from boneage.compat.pydicom import read_file_meta
from boneage.errors import Reason, Rejection
from boneage.imaging.dicom.attributes import ELEMENT_ERRORS
from boneage.imaging.limits import Limits

try:
    import imagecodecs
except ImportError:     # zlib alone then: the same bytes, slower
    imagecodecs = None

# Radiographs deflate 1.5-3x; 6x leaves room for wide blank borders without asking libdeflate for
# a buffer far larger than the dataset.
DEFLATE_GUESS = 6

_PREAMBLE_FREE_GROUPS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")

# What pydicom's reader raises on a damaged or non-DICOM stream: its own InvalidDicomError and
# BytesLengthException, EOFError or OSError at a short read, struct.error for a truncated element
# header, zlib.error for a deflated dataset that does not inflate, and what converting a value
# while reading raises (ELEMENT_ERRORS: an unknown VR, a bad length, text it cannot decode).
READ_ERRORS: tuple[type[BaseException], ...] = (
    InvalidDicomError, BytesLengthException, EOFError, OSError, struct.error, zlib.error, AttributeError,
) + ELEMENT_ERRORS


def looks_like_dicom(data: bytes) -> bool:
    """Part 10 (preamble + 'DICM') or a bare dataset starting with a group 0002/0008 tag."""
    return data[128:132] == b"DICM" or data[:2] in _PREAMBLE_FREE_GROUPS


def _inflated(data: bytes, limits: Limits) -> Dataset | None:
    """A deflated Part 10 file's dataset, inflated once under ``max_file_bytes`` (a zip bomb in
    DICOM clothing is ``too_large``, the inflated size counting against that bound); None when the
    file is not deflated (pydicom then reads it as it is)."""
    head = data[:4096]
    if dcm_uid.DeflatedExplicitVRLittleEndian.encode() not in head:
        return None
    try:
        fp = io.BytesIO(data)
        meta = read_file_meta(fp)
        end = fp.tell()
        # Reading the value converts it: a damaged file meta element fails here (fuzz-found: a
        # corrupt VR in (0002,0010) used to escape as NotImplementedError).
        syntax = meta.get("TransferSyntaxUID")
    except READ_ERRORS as exc:
        raise Rejection(Reason.NOT_AN_IMAGE, "the DICOM file meta header is unreadable") from exc
    if syntax != dcm_uid.DeflatedExplicitVRLittleEndian:
        return None
    body = inflate(memoryview(data)[end:], limits.max_file_bytes)
    try:
        ds = read_dataset(io.BytesIO(body), is_implicit_VR=False, is_little_endian=True)
    except READ_ERRORS as exc:
        raise Rejection(Reason.NOT_AN_IMAGE, "the file is not a readable DICOM dataset") from exc
    return FileDataset("", ds, preamble=data[:128], file_meta=meta, is_implicit_VR=False,
                       is_little_endian=True)


def inflate(deflated: memoryview, bound: int) -> bytes:
    """Raw deflate -> bytes, at most ``bound`` of them (``too_large`` beyond)."""
    guess = min(bound, DEFLATE_GUESS * len(deflated) + 65536)
    if imagecodecs is not None:
        try:
            return imagecodecs.deflate_decode(deflated, raw=True, out=guess)
        except (imagecodecs.DeflateError, ValueError):
            pass            # more than the guess, or damaged: zlib decides which
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        body = inflater.decompress(deflated, bound)
    except zlib.error as exc:
        raise Rejection(Reason.CORRUPT_PIXEL_DATA, "the deflated dataset does not inflate") from exc
    if inflater.unconsumed_tail:
        raise Rejection(Reason.TOO_LARGE, f"the deflated dataset inflates to more than {bound} bytes")
    if not inflater.eof:        # cut short: pydicom's own inflate refused these as unreadable
        raise Rejection(Reason.NOT_AN_IMAGE, "the file is not a readable DICOM dataset")
    return body


def parse(data: bytes, limits: Limits) -> Dataset:
    """Parse a DICOM file or bare dataset; ``Rejection(not_an_image)`` if it is not one."""
    preamble = data[128:132] == b"DICM"
    inflated = _inflated(data, limits) if preamble else None
    try:
        ds = inflated if inflated is not None else pydicom.dcmread(io.BytesIO(data), force=not preamble)
    except READ_ERRORS as exc:
        raise Rejection(Reason.NOT_AN_IMAGE, "the file is not a readable DICOM dataset") from exc
    try:
        plausible = any(k in ds for k in ("PixelData", "SOPClassUID", "Rows", "Modality",
                                           "FloatPixelData", "DoubleFloatPixelData"))
    except ValueError:      # pydicom's __contains__ raises only in its strict validation mode
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
