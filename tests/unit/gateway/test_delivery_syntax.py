"""What a PACS that takes only uncompressed data gets: the SC decompressed losslessly (the same pixels),
never a lossy source re-labelled; and which PACS answers are refusals rather than faults to wait out."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import (ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit, JPEGLSLossless,
                         SecondaryCaptureImageStorage)

from boneage.devstack.gateway import jpegls_secondary_capture
from boneage.gateway.delivery import (CStoreSender, DeliveryError, _uncompressed, cstore_status_is_transient,
                                      http_status_is_transient)

STUDY = "1.2.826.0.1.3680043.8.498.7100"


@pytest.fixture
def sc(tmp_path):
    data, pixels = jpegls_secondary_capture(3, study_uid=STUDY)
    path = tmp_path / "report_sc.dcm"
    path.write_bytes(data)
    return path, pixels


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_a_jpegls_sc_is_decompressed_to_the_accepted_syntax_with_identical_pixels(sc, syntax):
    path, pixels = sc
    header = dcmread(path, stop_before_pixels=True)
    assert header.file_meta.TransferSyntaxUID == JPEGLSLossless
    ds = _uncompressed(header, path, syntax)
    assert ds.file_meta.TransferSyntaxUID == syntax and "LossyImageCompression" not in ds
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    again = dcmread(io.BytesIO(buf.getvalue()))
    assert again.file_meta.TransferSyntaxUID == syntax and np.array_equal(again.pixel_array, pixels)
    assert again.SOPInstanceUID == header.SOPInstanceUID and again.StudyInstanceUID == STUDY


def test_the_file_is_sent_as_it_is_when_the_pacs_takes_its_syntax_and_decompressed_only_when_not(sc):
    path, _ = sc
    header = dcmread(path, stop_before_pixels=True)
    both = {(SecondaryCaptureImageStorage, JPEGLSLossless), (SecondaryCaptureImageStorage, ExplicitVRLittleEndian)}
    assert CStoreSender._dataset_for(path, header, both) == path
    implicit_only = {(SecondaryCaptureImageStorage, ImplicitVRLittleEndian)}
    assert CStoreSender._dataset_for(path, header, implicit_only).file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    with pytest.raises(DeliveryError) as refused:
        CStoreSender._dataset_for(path, header, {("1.2.840.10008.5.1.4.1.1.88.33", ExplicitVRLittleEndian)})
    assert refused.value.code == "presentation_context_not_accepted" and refused.value.permanent


def test_a_lossy_source_is_never_decompressed_for_a_pacs_that_wants_it_uncompressed(sc):
    path, _ = sc
    header = dcmread(path, stop_before_pixels=True)
    header.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    with pytest.raises(DeliveryError) as refused:
        _uncompressed(header, path, ExplicitVRLittleEndian)
    assert refused.value.code == "lossy_syntax_not_accepted" and refused.value.permanent


@pytest.mark.parametrize(("code", "transient"), [
    (None, True), (0xA700, True), (0xA7FF, True), (0x0110, True), (0x0213, True),
    (0xA900, False), (0xA9FF, False), (0xC000, False), (0xCFFF, False), (0x0122, False), (0x0124, False)])
def test_cstore_out_of_resources_is_waited_out_and_other_failures_are_refusals(code, transient):
    assert cstore_status_is_transient(code) is transient


@pytest.mark.parametrize(("code", "transient"), [(500, True), (503, True), (429, True), (408, True),
                                                 (400, False), (403, False), (409, False), (415, False)])
def test_stow_server_errors_and_throttling_are_transient_and_other_4xx_refusals(code, transient):
    assert http_status_is_transient(code) is transient


def test_a_decompression_that_changes_a_pixel_is_refused_not_sent(sc, monkeypatch):
    from pydicom.dataset import Dataset

    path, _ = sc
    real = Dataset.decompress

    def corrupting(self, *args, **kwargs):
        real(self, *args, **kwargs)
        data = bytearray(self.PixelData)
        data[5] ^= 1
        self.PixelData = bytes(data)

    monkeypatch.setattr(Dataset, "decompress", corrupting)
    with pytest.raises(DeliveryError) as refused:
        _uncompressed(dcmread(path, stop_before_pixels=True), path, ExplicitVRLittleEndian)
    assert refused.value.code == "decompressed_pixels_differ" and refused.value.permanent
