"""Read the image size from JPEG, JPEG-LS and JPEG 2000 headers without decoding anything.

A compressed frame can claim a size different from the DICOM Rows/Columns around it; decoders
allocate what the codestream says. Checking the frame header first turns a 60000x60000 claim into
a rejection before any pixel buffer exists. Layouts: ITU-T T.81 B.2.2 (SOFn), ITU-T T.87 (JPEG-LS
SOF55 = 0xFFF7, same layout), ITU-T T.800 A.5.1 (SIZ) and A.6.1 (COD).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

# SOF markers: every 0xFFCn except DHT (C4), JPG (C8) and DAC (CC); 0xFFF7 is JPEG-LS SOF55.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
_STANDALONE = {0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8}


@dataclass
class FrameHeader:
    rows: int
    columns: int
    components: int
    precision: int
    signed: bool = False
    levels: int | None = None       # JPEG 2000 decomposition levels (COD), None if unknown


def _header_segments(buf: bytes) -> Iterator[tuple[int, int, int]]:
    """``(marker, offset, length)`` of each marker segment of a JPEG / JPEG-LS stream before its first
    scan; ``ValueError`` for a stream that is not JPEG or a segment that cannot be stepped over."""
    if buf[:2] != b"\xff\xd8":
        raise ValueError("no JPEG SOI marker")
    pos, n = 2, len(buf)
    while pos + 4 <= n:
        if buf[pos] != 0xFF:
            raise ValueError("JPEG marker expected")
        marker = buf[pos + 1]
        if marker == 0xFF:                 # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker == 0xDA:                 # start of scan: the header is over
            return
        (length,) = struct.unpack_from(">H", buf, pos + 2)
        yield marker, pos, length
        if length < 2:
            raise ValueError("bad JPEG segment length")
        pos += 2 + length


def jpeg_frame_header(buf: bytes) -> FrameHeader:
    """The SOFn (or JPEG-LS SOF55) frame header of a JPEG / JPEG-LS stream; ``ValueError`` if
    there is none before the first scan."""
    for marker, pos, _length in _header_segments(buf):
        if marker in _SOF:
            if pos + 10 > len(buf):
                break
            precision, rows, columns, comps = struct.unpack_from(">BHHB", buf, pos + 4)
            return FrameHeader(rows, columns, comps, precision)
    raise ValueError("no JPEG frame header")


def jpeg_has_adobe_marker(buf: bytes) -> bool:
    """Whether a complete APP14 "Adobe" segment (which carries the colour transform flag) comes
    before the first scan; ``ValueError`` for a stream that is not JPEG. A segment too short to hold
    the flag (some encoders write 12 bytes) is ignored, as libjpeg-turbo ignores it."""
    return any(marker == 0xEE and length >= 14 and buf[pos + 4:pos + 9] == b"Adobe"
               for marker, pos, length in _header_segments(buf))


def j2k_frame_header(buf: bytes) -> FrameHeader:
    """SIZ (and COD when it is in the main header) of a JPEG 2000 codestream, or of the first
    codestream inside a JP2 file; ``ValueError`` if absent."""
    start = buf.find(b"\xff\x4f\xff\x51")
    if start < 0:
        raise ValueError("no JPEG 2000 SOC/SIZ markers")
    pos = start + 2
    (lsiz,) = struct.unpack_from(">H", buf, pos + 2)
    (_rsiz, xsiz, ysiz, xosiz, yosiz, _xt, _yt, _xto, _yto, csiz) = struct.unpack_from(
        ">HIIIIIIIIH", buf, pos + 4)
    if csiz < 1:
        raise ValueError("JPEG 2000 SIZ has no components")
    ssiz = buf[pos + 40]
    header = FrameHeader(rows=ysiz - yosiz, columns=xsiz - xosiz, components=csiz,
                         precision=(ssiz & 0x7F) + 1, signed=bool(ssiz & 0x80))
    pos += 2 + lsiz
    # Walk the rest of the main header for COD (stops at the first tile-part, SOT).
    while pos + 4 <= len(buf) and buf[pos] == 0xFF:
        marker = buf[pos + 1]
        if marker == 0x90:                  # SOT
            break
        (length,) = struct.unpack_from(">H", buf, pos + 2)
        if marker == 0x52 and pos + 4 + 6 <= len(buf):    # COD: Scod, SGcod(4), then levels
            header.levels = buf[pos + 9]
            break
        if length < 2:
            break
        pos += 2 + length
    return header
