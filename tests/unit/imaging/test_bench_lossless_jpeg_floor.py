"""The lossless JPEG row's floor evidence names every decoder measured on the same frame and says
why threads do not help (``boneage.bench.decoders.floor``)."""

from __future__ import annotations

import numpy as np
from pydicom import uid

from boneage.bench import decoders
from boneage.imaging import testing


def test_lossless_sv1_floor_evidence_lists_every_library_and_the_thread_question():
    img = testing.radiograph_like(np.random.default_rng(3), 96, 80, bits=12)
    data = testing.dicom_bytes(img, uid.JPEGLosslessSV1, bits_stored=12)
    verdict = decoders.floor("dicom_jpeg_lossless_sv1", data, median=5.0, target=0.001, rest_ms=1.0, repeats=1)
    assert verdict["at_library_floor"] is True
    evidence = verdict["floor_evidence"]
    libs = evidence["decode_only_cpu_median_ms"]
    assert {"libjpeg-turbo (imagecodecs)", "liblj92 (imagecodecs ljpeg_decode)",
            "jpegsof3 (imagecodecs jpegsof3_decode)"} <= set(libs)
    assert all(ms >= 0 for ms in libs.values())
    assert evidence["restart_markers"] is False and "single-threaded" in evidence["threads"]
    # the rest of the ingest says which row it was measured on and what that row does
    assert evidence["rest_of_ingest_cpu_median_ms"] == 1.0
    assert evidence["rest_of_ingest_basis"].startswith("the dicom_uncompressed row")
    # A target the fastest decoder meets: not at the floor.
    assert decoders.floor("dicom_jpeg_lossless_sv1", data, median=5.0, target=1e6, rest_ms=1.0,
                          repeats=1)["at_library_floor"] is False
