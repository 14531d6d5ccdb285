"""pyjpegls internals the direct JPEG-LS decoder relies on (tested on pyjpegls 1.5; bounded below 1.6).

``imaging.jpegls`` calls CharLS's C API (``JpegLsReadHeader``, ``JpegLsDecode``) through ctypes to
decode straight into a numpy array. pyjpegls links CharLS 2.x statically into its private
extension module ``_CharLS`` and offers no public way to reach the library, so its path comes from
here. ``tests/unit/compat/test_compat_pyjpegls.py`` pins that it loads and exports both calls.
"""

from __future__ import annotations


def charls_library_path() -> str:
    """The file of the shared library that carries CharLS (ImportError without pyjpegls)."""
    import _CharLS

    return str(_CharLS.__file__)


__all__ = ["charls_library_path"]
