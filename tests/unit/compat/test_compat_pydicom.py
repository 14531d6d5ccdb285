"""Contract of ``boneage.compat.pydicom``: the File Meta group is read from an open file as
pydicom's own reader reads it, and the file is left at the dataset."""

from __future__ import annotations

import io
import struct

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.errors import InvalidDicomError

from boneage.compat.pydicom import read_file_meta
from boneage.imaging import testing


def _part10(transfer_syntax: str = uid.ExplicitVRLittleEndian) -> bytes:
    image = np.random.default_rng(3).integers(0, 4096, (16, 12), dtype=np.uint16)
    return testing.dicom_bytes(image, transfer_syntax, bits_stored=12)


@pytest.mark.parametrize("syntax", [uid.ExplicitVRLittleEndian, uid.DeflatedExplicitVRLittleEndian])
def test_file_meta_matches_pydicom_and_the_file_is_left_at_the_dataset(syntax: str) -> None:
    data = _part10(syntax)
    fp = io.BytesIO(data)
    meta = read_file_meta(fp)
    assert meta == pydicom.dcmread(io.BytesIO(data)).file_meta
    assert meta.TransferSyntaxUID == syntax
    # The meta group ends where its group length says; the next bytes are no longer group 0002.
    assert fp.tell() == 132 + 12 + meta.FileMetaInformationGroupLength
    if syntax == uid.ExplicitVRLittleEndian:
        group, _ = struct.unpack("<HH", data[fp.tell():fp.tell() + 4])
        assert group != 0x0002


def test_a_file_without_the_part10_preamble_is_refused() -> None:
    with pytest.raises(InvalidDicomError):
        read_file_meta(io.BytesIO(b"\0" * 200))
