"""Deterministic synthetic radiographs and their DICOM / PNG / JPEG encodings, for tests and the
decode benchmark.

Nothing here is used by the service. Encoders: pydicom's own (RLE, JPEG-LS via pyjpegls,
JPEG 2000 via pylibjpeg-openjpeg) and, for what pydicom cannot encode (JPEG baseline/extended/
lossless, HTJ2K), imagecodecs from the dev extra. Every function takes its randomness from a
seeded ``numpy.random.Generator`` so a corpus is the same on every run.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pydicom
from pydicom import uid as dcm_uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate

DX_FOR_PRESENTATION = dcm_uid.DigitalXRayImageStorageForPresentation
SECONDARY_CAPTURE = dcm_uid.SecondaryCaptureImageStorage
NATIVE = (dcm_uid.ImplicitVRLittleEndian, dcm_uid.ExplicitVRLittleEndian, dcm_uid.ExplicitVRBigEndian,
          dcm_uid.DeflatedExplicitVRLittleEndian)
LOSSY = frozenset({dcm_uid.JPEGBaseline8Bit, dcm_uid.JPEGExtended12Bit, dcm_uid.JPEGLSNearLossless,
                   dcm_uid.JPEG2000, dcm_uid.HTJ2K})


def radiograph_like(rng: np.random.Generator, rows: int = 256, columns: int = 208, bits: int = 12,
                    noise: float = 0.004) -> np.ndarray:
    """A hand-radiograph-like image (uint16, MONOCHROME2 sense: bright bone): a dark exposed
    field, a soft-tissue silhouette, five bright 'digit' bones with joint gaps, a bright forearm,
    a collimation edge and quantum-like noise. Smooth enough to compress like a real radiograph."""
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    y /= rows
    x /= columns
    img = 0.08 + 0.04 * x                                                     # exposed background
    palm = np.exp(-(((x - 0.5) / 0.28) ** 2 + ((y - 0.62) / 0.22) ** 2) ** 2)
    img = img + 0.25 * palm
    angles = np.linspace(-0.5, 0.5, 5) + rng.uniform(-0.05, 0.05, 5)
    for a in angles:
        # each digit: a band along a ray from the wrist, interrupted by joint gaps
        dx, dy = np.sin(a), -np.cos(a)
        px, py = x - 0.5, y - 0.78
        along = px * dx + py * dy
        across = np.abs(px * dy - py * dx)
        digit = (along > 0.05) & (along < 0.68) & (across < 0.035)
        gaps = (np.abs(np.sin(along * 28.0)) > 0.12).astype(np.float32)
        img = img + 0.18 * digit * (across < 0.045) + 0.35 * digit * gaps * (1 - across / 0.035)
    forearm = (np.abs(x - 0.5) < 0.16) & (y > 0.82)
    img = img + 0.3 * forearm + 0.25 * ((np.abs(x - 0.43) < 0.04) | (np.abs(x - 0.57) < 0.035)) * forearm
    img = img * (x > 0.03) * (x < 0.97) * (y > 0.02)                          # collimator shadow
    img = img + rng.normal(0.0, noise, img.shape).astype(np.float32) * np.sqrt(img + 0.05)
    top = (1 << bits) - 1
    return np.clip(np.round(img * 0.8 * top + 0.05 * top), 0, top).astype(np.uint16)


def base_dataset(rows: int, columns: int, *, photometric: str = "MONOCHROME2", bits_allocated: int = 16,
                 bits_stored: int = 12, signed: bool = False, samples: int = 1,
                 modality: str = "DX", tags: Mapping[str, Any] | None = None) -> Dataset:
    """A minimal, valid-enough DX (or SC for colour) dataset without pixel data."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    sop_class = DX_FOR_PRESENTATION if samples == 1 else SECONDARY_CAPTURE
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.file_meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.3"
    ds.Modality = modality
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = samples
    if samples > 1:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    for key, value in (tags or {}).items():
        setattr(ds, key, value)
    return ds


def _imagecodecs() -> Any:
    import imagecodecs  # a runtime dependency (JPEG decoding); only tests and benchmarks encode

    return imagecodecs


def encode_pixels(ds: Dataset, arr: np.ndarray, ts: str, *, near: int = 2, j2k_psnr: float = 55.0) -> None:
    """Put ``arr`` into ``ds`` encoded with transfer syntax ``ts`` (sets file meta too)."""
    ts = dcm_uid.UID(ts)
    ds.file_meta.TransferSyntaxUID = ts
    if ts in NATIVE:
        data = arr.astype(arr.dtype.newbyteorder(">")) if ts == dcm_uid.ExplicitVRBigEndian else arr
        ds.PixelData = np.ascontiguousarray(data).tobytes()
        ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"
        return
    if ts == dcm_uid.RLELossless or ts in (dcm_uid.JPEGLSLossless, dcm_uid.JPEG2000Lossless):
        ds.compress(ts, arr, generate_instance_uid=False)
        return
    if ts == dcm_uid.JPEGLSNearLossless:
        ds.compress(ts, arr, jls_error=near, generate_instance_uid=False)
        return
    if ts == dcm_uid.JPEG2000:
        ds.compress(ts, arr, j2k_psnr=[j2k_psnr], generate_instance_uid=False)
        return
    ic = _imagecodecs()
    bits = int(ds.BitsStored)
    if ts == dcm_uid.JPEGBaseline8Bit:
        frame = ic.jpeg8_encode(arr, level=95, subsampling="422" if arr.ndim == 3 else None)
    elif ts == dcm_uid.JPEGExtended12Bit:
        frame = ic.jpeg8_encode(arr, level=95, bitspersample=12)
    elif ts == dcm_uid.JPEGLossless:
        frame = ic.jpeg8_encode(arr, lossless=True, predictor=6, bitspersample=bits)
    elif ts == dcm_uid.JPEGLosslessSV1:
        frame = ic.jpeg8_encode(arr, lossless=True, predictor=1, bitspersample=bits)
    elif ts in (dcm_uid.HTJ2KLossless, dcm_uid.HTJ2KLosslessRPCL):
        frame = ic.htj2k_encode(arr, reversible=True)
    elif ts == dcm_uid.HTJ2K:
        frame = ic.htj2k_encode(arr, level=0.002, reversible=False)
    else:
        raise ValueError(f"no test encoder for {ts}")
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    if ts in LOSSY:
        ds.LossyImageCompression = "01"


def to_bytes(ds: Dataset, *, preamble: bool = True) -> bytes:
    """Part 10 bytes, or with ``preamble=False`` a bare dataset (no preamble, no file meta: what
    some old exporters write), in implicit or explicit VR little endian as the meta says."""
    buf = io.BytesIO()
    if preamble:
        ds.save_as(buf, enforce_file_format=True)
        return buf.getvalue()
    bare = Dataset()
    bare.update(ds)
    implicit = ds.file_meta.TransferSyntaxUID == dcm_uid.ImplicitVRLittleEndian
    pydicom.dcmwrite(buf, bare, implicit_vr=implicit, little_endian=True)
    return buf.getvalue()


def dicom_bytes(arr: np.ndarray, ts: str = dcm_uid.ExplicitVRLittleEndian, *, photometric: str = "MONOCHROME2",
                bits_stored: int | None = None, signed: bool = False, modality: str = "DX",
                tags: Mapping[str, Any] | None = None, preamble: bool = True, **encode_kw: Any) -> bytes:
    """Encode ``arr`` (2-D grey or (H, W, 3) colour) as a DICOM file."""
    samples = 3 if arr.ndim == 3 else 1
    bits_allocated = 8 * arr.dtype.itemsize if arr.dtype.itemsize <= 2 else 32
    if bits_stored is None:
        bits_stored = bits_allocated
    ds = base_dataset(arr.shape[0], arr.shape[1], photometric=photometric, bits_allocated=bits_allocated,
                      bits_stored=bits_stored, signed=signed, samples=samples, modality=modality, tags=tags)
    encode_pixels(ds, arr, ts, **encode_kw)
    return to_bytes(ds, preamble=preamble)


def png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(arr: np.ndarray, quality: int = 95) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)
