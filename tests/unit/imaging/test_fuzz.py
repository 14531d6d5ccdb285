"""Fuzzing ingest: >= 5,000 mutated inputs (bit flips, truncation, overwritten and inserted bytes,
corrupt headers, absurd dimensions) over small seed files of every format. Each must end in a
result or a typed Rejection, within 5 s and within the memory budget that the limits imply
(tracemalloc peak; numpy and pydicom allocations are traced)."""

from __future__ import annotations

import functools
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import uid

from boneage.errors import Rejection
from boneage.imaging import Limits, ingest, testing

LIMITS = Limits(max_file_bytes=1 << 20, max_pixels=1 << 20)
EXAMPLES_PER_SEED = 360           # x 14 seeds = 5,040 inputs
MAX_SECONDS = 5.0
ABSURD = (0, 1, 3, 255, 4097, 30000, 60000, 65535)


@functools.cache
def seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    grey = testing.radiograph_like(rng, 48, 40)       # OpenJPEG needs >= 32 px for 5 levels
    grey8 = (grey >> 4).astype(np.uint8)
    rgb = np.stack([grey8, grey8 // 2, 255 - grey8], axis=-1).astype(np.uint8)
    tags = {"PatientSex": "F", "PatientBirthDate": "20150101", "StudyDate": "20250101",
            "WindowCenter": 2048, "WindowWidth": 4096, "RescaleSlope": 1, "RescaleIntercept": 0}
    d = functools.partial(testing.dicom_bytes, bits_stored=12, tags=tags)
    return {
        "explicit": d(grey), "implicit_bare": d(grey, uid.ImplicitVRLittleEndian, preamble=False),
        "big_endian": d(grey, uid.ExplicitVRBigEndian), "deflated": d(grey, uid.DeflatedExplicitVRLittleEndian),
        "rle": d(grey, uid.RLELossless), "jpeg_ls": d(grey, uid.JPEGLSLossless),
        "j2k": d(grey, uid.JPEG2000Lossless), "htj2k": d(grey, uid.HTJ2KLossless),
        "jpeg_lossless": d(grey, uid.JPEGLosslessSV1), "jpeg_12bit": d(grey, uid.JPEGExtended12Bit),
        "rgb": testing.dicom_bytes(rgb, photometric="RGB", bits_stored=8),
        "png8": testing.png_bytes(grey8), "png16": testing.png_bytes(grey), "jpeg": testing.jpeg_bytes(grey8),
    }


def _set_dims(data: bytearray, rows: int, cols: int) -> None:
    """Claim other dimensions in the header: DICOM Rows/Columns (explicit LE 'US' elements) or the
    PNG IHDR (CRC recomputed so the lie gets past the chunk check)."""
    if data.startswith(b"\x89PNG"):
        data[16:24] = struct.pack(">II", rows, cols)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
        return
    for tag, value in ((b"\x28\x00\x10\x00", rows), (b"\x28\x00\x11\x00", cols)):
        at = data.find(tag)
        if at >= 0:
            # value at +8 both ways: explicit (tag, 'US', 2-byte length) or implicit (4-byte length)
            data[at + 8:at + 10] = struct.pack("<H", value)


OPS = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("overwrite"), st.floats(0, 1), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 64)),
    st.tuples(st.just("dims"), st.sampled_from(ABSURD), st.sampled_from(ABSURD)),
)


def mutate(data: bytes, ops: list) -> bytes:
    out = bytearray(data)
    for kind, a, b in ops:
        if not out:
            break
        pos = min(int(a * len(out)), len(out) - 1) if isinstance(a, float) else 0
        if kind == "flip":
            out[pos] ^= 1 << b
        elif kind == "truncate":
            del out[pos:]
        elif kind == "overwrite":
            out[pos:pos + len(b)] = b
        elif kind == "insert":
            out[pos:pos] = b
        elif kind == "delete":
            del out[pos:pos + b]
        elif kind == "dims":
            _set_dims(out, a, b)
    return bytes(out)


@pytest.mark.parametrize("seed_name", sorted(seeds()))
def test_mutated_inputs_end_in_a_result_or_a_typed_rejection(seed_name):
    seed = seeds()[seed_name]
    ingest(seed, limits=LIMITS)           # the unmutated seed itself is accepted
    worst = {"seconds": 0.0, "bytes": 0}

    @settings(max_examples=EXAMPLES_PER_SEED, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(ops=st.lists(OPS, min_size=1, max_size=4))
    def check(ops):
        data = mutate(seed, ops)
        tracemalloc.start()
        started = time.perf_counter()
        try:
            r = ingest(data, limits=LIMITS)
            assert r.pixels.dtype == np.float32 and r.pixels.ndim == 2
            assert np.isfinite(r.pixels).all() and r.pixels.min() >= 0.0 and r.pixels.max() <= 1.0
        except Rejection as exc:
            assert exc.reason and exc.message
        finally:
            elapsed = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        worst["seconds"] = max(worst["seconds"], elapsed)
        worst["bytes"] = max(worst["bytes"], peak)
        assert elapsed <= MAX_SECONDS
        assert peak <= LIMITS.memory_budget_bytes

    check()
    print(f"{seed_name}: worst {worst['seconds'] * 1000:.1f} ms, peak {worst['bytes'] / 1e6:.2f} MB")
