"""The grey pipeline: stored samples -> the float32 image in [0, 1] with bright bone.

Palette and colour images become luma; grey images get the Modality LUT (or rescale), the VOI LUT
or window, and the inversion MONOCHROME1 / PresentationLUTShape ask for (``pixels.GreyTransform``);
then the image is reduced to ``target_long_side`` and presented. A LUT or window that pydicom
cannot apply is ignored with a warning, as the modality's problem, never quoting its values.
"""

from __future__ import annotations

import math

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi

from boneage.errors import Reason, Rejection
from boneage.imaging import pixels
from boneage.imaging.dicom.attributes import ELEMENT_ERRORS, safe_int, text
from boneage.imaging.dicom.checks import GREY

# pydicom's LUT functions (``pydicom.pixels.processing``) on a malformed LUT: ValueError for a bad
# descriptor or data, IndexError / KeyError for a LUT shorter than its descriptor says or a missing
# item, TypeError (numpy's UFuncTypeError included) for values of the wrong kind, AttributeError
# for a missing element; and reading the elements (ELEMENT_ERRORS).
LUT_ERRORS: tuple[type[BaseException], ...] = (IndexError, KeyError, AttributeError) + ELEMENT_ERRORS


def present(ds: Dataset, stored: np.ndarray, target_long_side: int | None,
            warnings: list[str]) -> tuple[np.ndarray, float]:
    """Present the decoded frame; returns (float32 image in [0, 1], decode_scale)."""
    rows, columns = int(ds.Rows), int(ds.Columns)
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    if photometric == "PALETTE COLOR":
        try:
            stored = apply_color_lut(stored, ds)
        except LUT_ERRORS as exc:
            raise Rejection(Reason.UNSUPPORTED_PHOTOMETRIC, "the palette colour LUT is unreadable") from exc
    if stored.ndim == 3:
        if stored.shape[-1] != 3:
            raise Rejection(Reason.UNSUPPORTED_PHOTOMETRIC, f"unexpected pixel array shape {stored.shape}")
        # pydicom converts YBR to RGB; OpenJPEG undoes ICT/RCT: what is left is RGB, at
        # BitsStored (a palette LUT's output fills its dtype instead).
        full_scale = float(np.iinfo(stored.dtype).max) if stored.dtype.kind in "ui" else 1.0
        bits_stored = safe_int(ds, "BitsStored") or 0
        if photometric != "PALETTE COLOR" and 0 < bits_stored < 8 * stored.dtype.itemsize:
            full_scale = float(2 ** bits_stored - 1)
        grey = pixels.luma(stored).astype(np.float32)
        transform = pixels.GreyTransform(full_scale=full_scale)
        if photometric in GREY:
            warnings.append(f"{photometric} image decoded with colour samples; converted to grey")
    elif stored.ndim == 2:
        grey = stored
        transform = grey_transform(ds, photometric, warnings) if photometric in GREY else \
            pixels.GreyTransform(full_scale=float(np.iinfo(stored.dtype).max)
                                 if stored.dtype.kind in "ui" else None)
    else:
        raise Rejection(Reason.CORRUPT_PIXEL_DATA, f"unexpected pixel array shape {stored.shape}")
    # The output size follows the *stored* size, so a reduced JPEG 2000 decode ends at the same
    # size as a full decode of the same image.
    out_rows, out_cols = pixels.target_size(rows, columns, target_long_side)
    if target_long_side is None:
        out_rows, out_cols = grey.shape[0], grey.shape[1]
    small = pixels.downscale(grey, out_rows, out_cols)
    image = pixels.present(small, transform, warnings)
    return image, max(rows, columns) / max(image.shape)


def grey_transform(ds: Dataset, photometric: str, warnings: list[str]) -> pixels.GreyTransform:
    """Modality LUT, VOI (LUT sequence preferred over window, as pydicom does) and inversion."""
    t = pixels.GreyTransform()
    try:
        if ds.get("ModalityLUTSequence") or (
                ds.get("RescaleSlope") is not None and ds.get("RescaleIntercept") is not None):
            slope = 1.0 if ds.get("ModalityLUTSequence") else float(ds.RescaleSlope)
            if slope == 0.0 or not math.isfinite(slope):
                warnings.append("RescaleSlope is 0 or not finite; rescale ignored")
            else:
                t.modality = lambda a: apply_modality_lut(a, ds)
                t.modality(np.arange(2, dtype=np.uint16))    # fail here, not mid-pipeline
    except LUT_ERRORS:
        t.modality = None
        warnings.append("Modality LUT / rescale is unreadable; ignored")
    try:
        seq = ds.get("VOILUTSequence")
        if seq and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None:
            t.voi_lut = lambda a: apply_voi(a, ds)
            t.voi_lut(np.arange(2, dtype=np.float64))
            t.full_range = True
    except LUT_ERRORS:
        t.voi_lut = None
        warnings.append("VOI LUT Sequence is unreadable; ignored")
    if t.voi_lut is None:
        t.window = _window(ds, warnings)
    bits_stored = safe_int(ds, "BitsStored") or 0
    if t.voi_lut is None and t.window is None and t.modality is None and 0 < bits_stored <= 8:
        # 8-bit values without any LUT are display-ready (a secondary capture of a film): taken
        # as displayed, exactly like an 8-bit PNG of the same picture. Deeper data get percentiles.
        t.full_scale = float(2 ** bits_stored - 1)
    shape = text(ds.get("PresentationLUTShape")) if "PresentationLUTShape" in ds else None
    # DX/MG (PS3.3 C.8.11.6.1.2): INVERSE "shall be used" with MONOCHROME1, i.e. it restates that
    # one inversion; with MONOCHROME2 it asks for an inversion of its own. Never invert twice.
    t.invert = photometric == "MONOCHROME1" or (shape or "").upper() == "INVERSE"
    return t


def _window(ds: Dataset, warnings: list[str]) -> pixels.Window | None:
    try:
        if ds.get("WindowCenter") is None or ds.get("WindowWidth") is None:
            return None
        centre, width = ds.WindowCenter, ds.WindowWidth
        centre = centre[0] if isinstance(centre, (list, pydicom.multival.MultiValue)) else centre
        width = width[0] if isinstance(width, (list, pydicom.multival.MultiValue)) else width
        function = (text(ds.get("VOILUTFunction")) or "LINEAR").upper()
        window = pixels.Window(float(centre), float(width), function)
    except (IndexError,) + ELEMENT_ERRORS:   # an empty multi-value, a non-number, an unreadable value
        warnings.append("Window Center/Width is unreadable; ignored")
        return None
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID") or not window.valid:
        warnings.append("Window Center/Width is invalid; ignored")
        return None
    return window
