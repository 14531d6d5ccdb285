"""Typed rejections with stable reason codes, and limits enforced from headers before any large
allocation (a 60000x60000 claim, a PNG decompression bomb, a deflate bomb)."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zlib

import numpy as np
import pydicom
import pytest
from pydicom import uid

from boneage.errors import Rejection
from boneage.imaging import Limits, ingest, testing

from .corpus import source

SMALL = Limits(max_file_bytes=4 << 20, max_pixels=1 << 20)


def _reason(data: bytes, limits: Limits | None = SMALL, **kw) -> str:
    with pytest.raises(Rejection) as exc:
        ingest(data, limits=limits, **kw)
    assert exc.value.message          # a human message, always
    return exc.value.reason


def _peak_bytes(data: bytes, limits: Limits) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(Rejection):
            ingest(data, limits=limits)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int) -> bytes:
    """A valid 8-bit grey PNG of zeros: tiny on disk, width*height bytes once decoded."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return testing_png_signature() + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def testing_png_signature() -> bytes:
    return b"\x89PNG\r\n\x1a\n"


def test_empty_and_unknown_bytes_are_not_an_image():
    assert _reason(b"") == "not_an_image"
    assert _reason(b"hello, this is a text file\n" * 20) == "not_an_image"
    assert _reason(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40) == "not_an_image"


def test_file_over_the_byte_limit_is_too_large_before_parsing():
    assert _reason(b"\x00" * 200, Limits(max_file_bytes=100, max_pixels=10)) == "too_large"


def test_dicom_claiming_60000_by_60000_pixels_is_rejected_before_allocation():
    data = testing.dicom_bytes(source(12), bits_stored=12)
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.Rows, ds.Columns = 60000, 60000
    huge = testing.to_bytes(ds)
    assert _reason(huge, Limits()) == "too_large"
    assert _peak_bytes(huge, Limits()) < 8 << 20


def test_compressed_frame_claiming_a_different_size_is_rejected_before_decoding():
    data = bytearray(testing.dicom_bytes(source(12), uid.JPEGLSLossless, bits_stored=12))
    sof = data.find(b"\xff\xf7")                         # JPEG-LS SOF55: P, Y, X follow the length
    data[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)
    assert _reason(bytes(data)) == "corrupt_pixel_data"
    assert _peak_bytes(bytes(data), SMALL) < 8 << 20


def test_png_decompression_bomb_is_rejected_from_its_header():
    bomb = png_bomb(3000, 3000)                          # 9 MP claimed, ~10 KB on disk
    assert len(bomb) < 64 << 10
    assert _reason(bomb) == "too_large"
    assert _peak_bytes(bomb, SMALL) < 4 << 20


def test_png_claiming_absurd_dimensions_is_too_large():
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 16, 0, 0, 0, 0)
    data = testing_png_signature() + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")
    assert _reason(data, Limits()) == "too_large"


def test_deflated_dicom_that_inflates_past_the_limit_is_too_large():
    flat = np.zeros((1024, 1024), dtype=np.uint16)
    flat[0, 0] = 1
    data = testing.dicom_bytes(flat, uid.DeflatedExplicitVRLittleEndian, bits_stored=12)
    assert len(data) < 64 << 10                          # 2 MB of pixels deflate to a few KB
    assert _reason(data, Limits(max_file_bytes=1 << 20, max_pixels=4 << 20)) == "too_large"


def test_truncated_native_pixel_data_is_corrupt():
    data = testing.dicom_bytes(source(12), bits_stored=12)
    assert _reason(data[:-2000]) == "corrupt_pixel_data"


def test_truncated_jpeg2000_frame_is_corrupt():
    data = testing.dicom_bytes(source(12), uid.JPEG2000Lossless, bits_stored=12)
    ds = pydicom.dcmread(io.BytesIO(data))
    frame = pydicom.encaps.get_frame(ds.PixelData, 0, number_of_frames=1)
    ds.PixelData = pydicom.encaps.encapsulate([frame[: len(frame) // 3]])
    assert _reason(testing.to_bytes(ds)) == "corrupt_pixel_data"


@pytest.mark.parametrize("modality", ["CT", "MR", "US", "NM", "PT", "MG", "SR"])
def test_non_radiograph_modalities_are_unsupported(modality):
    assert _reason(testing.dicom_bytes(source(12), bits_stored=12, modality=modality)) == "unsupported_modality"


def test_multi_frame_objects_are_rejected():
    ds = testing.base_dataset(32, 32, tags={"NumberOfFrames": 2})
    testing.encode_pixels(ds, np.zeros((2, 32, 32), np.uint16), uid.ExplicitVRLittleEndian)
    assert _reason(testing.to_bytes(ds)) == "multi_frame"


def test_dicom_without_pixel_data_is_missing_pixel_data():
    ds = testing.base_dataset(32, 32)
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    assert _reason(testing.to_bytes(ds)) == "missing_pixel_data"


def test_unknown_transfer_syntax_is_unsupported():
    data = testing.dicom_bytes(source(12), bits_stored=12)
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.file_meta.TransferSyntaxUID = uid.MPEG2MPML                  # video: no image decoder
    ds.PixelData = pydicom.encaps.encapsulate([ds.PixelData])
    assert _reason(testing.to_bytes(ds)) == "unsupported_transfer_syntax"


def test_unsupported_photometric_is_rejected():
    assert _reason(testing.dicom_bytes(source(12), bits_stored=12, photometric="HSV")) == "unsupported_photometric"


def test_invalid_upload_metadata_rejects_before_decoding():
    assert _reason(testing.dicom_bytes(source(12), bits_stored=12), metadata={"sex": "maybe"}) == "invalid_metadata"


def test_reason_codes_are_the_documented_ones():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "imaging.md").read_text()
    for code in ("not_an_image", "unsupported_transfer_syntax", "corrupt_pixel_data", "missing_pixel_data",
                 "too_large", "unsupported_modality", "multi_frame", "unsupported_photometric", "empty_image",
                 "invalid_metadata"):
        assert f"`{code}`" in doc


def test_limits_come_from_the_ingest_settings_with_the_documented_defaults():
    from boneage.config import Settings

    assert Limits.from_settings(Settings.from_env({}).ingest) == Limits()
    env = {"BONEAGE_MAX_FILE_BYTES": "1000", "BONEAGE_MAX_PIXELS": " 2000 "}
    limits = Limits.from_settings(Settings.from_env(env).ingest)
    assert (limits.max_file_bytes, limits.max_pixels) == (1000, 2000)
    for bad in ("ten", "0", "-5"):
        with pytest.raises(ValueError, match="BONEAGE_MAX_PIXELS"):
            Settings.from_env({"BONEAGE_MAX_PIXELS": bad})


def test_ingest_never_reads_the_environment(monkeypatch):
    # Limits reach ingest as an argument; a variable set in the process changes nothing here.
    monkeypatch.setenv("BONEAGE_MAX_FILE_BYTES", "10")
    assert ingest(testing.png_bytes(np.arange(32 * 32, dtype=np.uint8).reshape(32, 32))).pixels.shape == (32, 32)


def test_reason_codes_are_a_str_enum_with_the_stable_strings():
    from boneage.errors import Reason

    assert {r.name: r.value for r in Reason} == {
        "NOT_AN_IMAGE": "not_an_image", "UNSUPPORTED_TRANSFER_SYNTAX": "unsupported_transfer_syntax",
        "CORRUPT_PIXEL_DATA": "corrupt_pixel_data", "MISSING_PIXEL_DATA": "missing_pixel_data",
        "TOO_LARGE": "too_large", "UNSUPPORTED_MODALITY": "unsupported_modality", "MULTI_FRAME": "multi_frame",
        "UNSUPPORTED_PHOTOMETRIC": "unsupported_photometric", "EMPTY_IMAGE": "empty_image",
        "INVALID_METADATA": "invalid_metadata", "NO_HAND_FOUND": "no_hand_found", "MULTIPLE_HANDS": "multiple_hands",
        "SKELETALLY_MATURE": "skeletally_mature", "UNKNOWN_HOSPITAL": "unknown_hospital",
        "OBJECT_NOT_FOUND": "object_not_found", "UPLOADER_MISMATCH": "uploader_mismatch"}
    rejection = Rejection(Reason.TOO_LARGE, "big")
    # What leaves the service (JSON records, notifications, DynamoDB via JSON) is the plain code.
    assert json.dumps(rejection.as_dict()) == '{"reason": "too_large", "message": "big"}'
    assert str(rejection) == "too_large: big" and f"{Reason.TOO_LARGE}" == "too_large"
    assert Reason("too_large") is Reason.TOO_LARGE


def test_a_deflated_file_with_a_damaged_file_meta_element_is_not_an_image():
    # Fuzz-found: an unknown VR in (0002,0010) used to escape the meta check as NotImplementedError.
    data = testing.dicom_bytes(source(12), uid.DeflatedExplicitVRLittleEndian, bits_stored=12)
    at = data.index(b"\x02\x00\x10\x00UI")
    assert _reason(data[:at + 4] + b"TI" + data[at + 6:]) == "not_an_image"


def test_decoder_failures_are_corrupt_pixel_data_but_a_bug_of_ours_is_not_disguised_as_one(monkeypatch):
    from boneage.imaging.dicom import decode as dicom_decode

    data = testing.dicom_bytes(source(12), uid.RLELossless, bits_stored=12)

    def fails_with(exc):
        def decode_frame(ds):
            raise exc
        return decode_frame

    # What pydicom raises when every plugin failed on the frame: the sender's problem.
    monkeypatch.setattr(dicom_decode, "_decode_frame", fails_with(RuntimeError("all plugins failed")))
    assert _reason(data) == "corrupt_pixel_data"
    # Anything else is a fault that must surface (and be retried, then reported), not a rejection.
    monkeypatch.setattr(dicom_decode, "_decode_frame", fails_with(ZeroDivisionError()))
    with pytest.raises(ZeroDivisionError):
        ingest(data, limits=SMALL)
