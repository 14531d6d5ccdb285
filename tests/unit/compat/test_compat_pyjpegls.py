"""Contract of ``boneage.compat.pyjpegls``: pyjpegls still carries CharLS and exports the two C
calls ``imaging.jpegls`` binds (it decodes with them: ``tests/unit/imaging/test_jpegls_direct.py``)."""

from __future__ import annotations

import ctypes

from boneage.compat.pyjpegls import charls_library_path
from boneage.imaging import jpegls


def test_charls_loads_from_pyjpegls_and_exports_the_decoder_api() -> None:
    lib = ctypes.CDLL(charls_library_path())
    assert lib.JpegLsReadHeader and lib.JpegLsDecode
    assert jpegls.available()
