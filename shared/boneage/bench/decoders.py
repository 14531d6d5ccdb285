"""Which decoder an ingest ran, and whether a slow decode table row is at its library's floor.

``watch()`` wraps the ingest's explicit decoder entry points (libjpeg-turbo, its DCT-scaled route,
the reduced-resolution JPEG 2000 route, CharLS direct, imagecodecs' PNG) for one untimed ingest,
calling through to them, and records the ones that produced the samples; what none of them
decoded went through pydicom's plugin for the syntax (``decode.DECODERS``) or Pillow.

``floor()`` is for a row over its target: it times the decode alone with every library on hand for
that format. A format with a reduced-resolution decode is never at the floor (the fix is to use
it); one without is ``at_library_floor`` when even the fastest library's decode plus the rest of
the ingest (measured on the uncompressed row) is over the target.
"""

from __future__ import annotations

import importlib
import io
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pydicom
from PIL import Image
from pydicom.pixels import get_decoder

from boneage.compat.pydicom import read_file_meta
from boneage.imaging import jpeg, jpegls, raster
from boneage.imaging.dicom import decode as dicom_decode

# boneage.imaging.dicom re-exports its ``parse`` function under the submodule's name.
dicom_parse = importlib.import_module("boneage.imaging.dicom.parse")

_WATCHED = [
    (jpeg, "decode", "libjpeg-turbo {turbo} (imagecodecs)"),
    (jpeg, "decode_scaled", "libjpeg-turbo DCT scaling (Pillow draft)"),
    (dicom_decode, "j2k_reduced", "OpenJPEG at a reduced resolution level (Pillow)"),
    (dicom_decode, "jpeg_ls_direct", "CharLS (pyjpegls, called directly)"),
    (raster, "png16", "libpng + zlib-ng (imagecodecs)"),
]
_PYDICOM = {"openjpeg": "OpenJPEG (pylibjpeg-openjpeg through pydicom)", "rle": "pylibjpeg-rle through pydicom",
            "charls": "CharLS (pyjpegls through pydicom)", "libjpeg-turbo": "libjpeg-turbo (imagecodecs)"}
# Formats without a reduced-resolution decode, and why the library list below is the field.
_NO_REDUCED = {
    "dicom_jpeg_lossless_sv1": "lossless JPEG (T.81 process 14) has no reduced-resolution decode in any library",
    "dicom_jpeg_ls": "JPEG-LS (T.87) has no reduced-resolution decode; CharLS is the fastest JPEG-LS decoder on PyPI",
    "dicom_deflated": "deflate has no partial decode: the whole dataset is inflated",
    "png_16bit": "PNG has no reduced-resolution decode (Adam7 passes are not a resolution pyramid)",
}

# What ``rest_ms`` (the uncompressed row's median) stands for in the evidence: that row's ingest has
# no decoder, so it is the parse, checks and grey pipeline any other row pays on top of its decode
# (plus pydicom's native read, an upper bound for the others).
REST_OF_INGEST_BASIS = ("the dicom_uncompressed row: parse + header checks + pydicom's native read + "
                        "reduction to the target (numpy block mean + Pillow's BOX taps) + the grey table")


@contextmanager
def watch() -> Iterator[list[str]]:
    ran: list[str] = []
    saved = []
    for module, name, label in _WATCHED:
        original = getattr(module, name)
        saved.append((module, name, original))
        setattr(module, name, _spy(original, label, ran))
    try:
        yield ran
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def _spy(original: Callable, label: str, ran: list[str]) -> Callable:
    def call(*args, **kwargs):
        out = original(*args, **kwargs)
        if out is not None:
            version = jpeg.libjpeg_turbo_version() or ("?",)
            ran.append(label.format(turbo=".".join(map(str, version))))
        return out
    return call


def label(ran: list[str], data: bytes) -> str:
    if ran:
        return ran[-1]
    if data.startswith(raster.PNG_SIGNATURE):
        return "Pillow (libpng + zlib)"
    if data.startswith(raster.JPEG_SIGNATURE):
        return "libjpeg-turbo (Pillow)"
    ts = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta.TransferSyntaxUID
    name = dicom_decode.decoder_name(ts)
    if name == "pydicom" and "Deflate" in ts.name:
        return ("libdeflate (imagecodecs)" if dicom_parse.imagecodecs is not None else "zlib") + ", then pydicom"
    return _PYDICOM.get(name, "pydicom (native)")


def floor(name: str, data: bytes, median: float, target: float, rest_ms: float | None, repeats: int) -> dict:
    reason = next((why for prefix, why in _NO_REDUCED.items() if name.startswith(prefix)), None)
    if reason is None or rest_ms is None:
        return {"at_library_floor": False}
    decode_ms = {lib: _cpu_ms(run, repeats) for lib, run in _libraries(name, data).items()}
    evidence: dict = {"reason": reason, "decode_only_cpu_median_ms": decode_ms}
    # The floor is the fastest in-process decode; dcmtk's figure (a difference of two processes' CPU,
    # noisy and near zero on small frames) is evidence beside it, not a bound.
    fastest = min(decode_ms.values())
    if name.startswith("dicom_jpeg_lossless"):
        evidence.update(_lossless_jpeg_extra(data, repeats))
        decode_ms.update(evidence.pop("process_decode_cpu_ms", {}))
    return {"at_library_floor": fastest + rest_ms > target,
            "floor_evidence": {**evidence, "rest_of_ingest_cpu_median_ms": round(rest_ms, 1),
                               "rest_of_ingest_basis": REST_OF_INGEST_BASIS,
                               "row_cpu_median_ms": round(median, 1), "target_ms": target}}


def _lossless_jpeg_extra(data: bytes, repeats: int) -> dict:
    """What else was tried on a lossless JPEG frame: dcmtk's decoder as a process (its CPU less that
    of dcmconv reading and writing the same file without decoding), and whether threads could help:
    libjpeg-turbo decodes a lossless scan on one thread, and a scan splits across threads only at
    restart markers (DRI), which encoders rarely write; the row's figure is CPU time either way."""
    ds = pydicom.dcmread(io.BytesIO(data))
    frame = dicom_decode.first_frame(ds)
    out: dict = {"restart_markers": frame.find(b"\xff\xdd") >= 0,
                 "threads": "one: libjpeg-turbo's lossless decoder is single-threaded and imagecodecs has no "
                            "thread option for it; the codestream "
                            + ("has restart intervals" if frame.find(b"\xff\xdd") >= 0 else
                               "has no restart markers, so it cannot be split across threads")
                            + "; CPU time (the target's basis) does not fall with threads"}
    dcmtk = _dcmtk_decode_ms(data, repeats)
    if dcmtk is not None:
        out["process_decode_cpu_ms"] = {"dcmtk dcmdjpeg (process CPU less dcmconv's)": dcmtk}
    return out


def _dcmtk_decode_ms(data: bytes, repeats: int) -> float | None:
    """dcmdjpeg's decode CPU: median process CPU of ``dcmdjpeg`` less that of ``dcmconv`` (same file
    read and written, no decode); None where dcmtk is not installed."""
    if shutil.which("dcmdjpeg") is None or shutil.which("dcmconv") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.dcm"), os.path.join(tmp, "out.dcm")
        with open(src, "wb") as fh:
            fh.write(data)

        def children_cpu_ms(tool: str) -> float:
            times = []
            for _ in range(max(repeats, 1)):
                before = os.times()
                subprocess.run([tool, src, dst], check=True, capture_output=True, timeout=120)
                after = os.times()
                times.append((after.children_user - before.children_user
                              + after.children_system - before.children_system) * 1000.0)
            return statistics.median(times)

        try:
            # Below the resolution of process CPU accounting (small frames) the difference can come out
            # negative: it is then "too small to measure", 0.
            return max(0.0, round(children_cpu_ms("dcmdjpeg") - children_cpu_ms("dcmconv"), 1))
        except (OSError, subprocess.SubprocessError):
            return None


def _libraries(name: str, data: bytes) -> dict[str, Callable[[], object]]:
    if name.startswith("png"):
        return {"libpng + zlib-ng (imagecodecs)": lambda: raster.png16(data),
                "Pillow (libpng + zlib)": lambda: Image.open(io.BytesIO(data)).load()}
    if name == "dicom_deflated":
        fp = io.BytesIO(data)
        read_file_meta(fp)
        body = memoryview(data)[fp.tell():]
        return {"libdeflate (imagecodecs; the ingest's inflate)": lambda: dicom_parse.inflate(body, 1 << 30),
                "zlib": lambda: zlib.decompress(body, -zlib.MAX_WBITS)}
    ds = pydicom.dcmread(io.BytesIO(data))
    frame = dicom_decode.first_frame(ds)
    plugins = get_decoder(ds.file_meta.TransferSyntaxUID).available_plugins
    libs: dict[str, Callable[[], object]] = {}
    if name.startswith("dicom_jpeg_ls"):
        libs["CharLS (direct)"] = lambda: jpegls.decode(frame, int(ds.Rows), int(ds.Columns), 16)
    else:
        libs["libjpeg-turbo (imagecodecs)"] = lambda: jpeg.decode(frame)
        if name.startswith("dicom_jpeg_lossless") and jpeg.imagecodecs is not None:
            # imagecodecs' two other lossless JPEG decoders, same wheel (BSD): liblj92 and jpegsof3.
            for label_, fn in (("liblj92 (imagecodecs ljpeg_decode)", "ljpeg_decode"),
                               ("jpegsof3 (imagecodecs jpegsof3_decode)", "jpegsof3_decode")):
                if getattr(getattr(jpeg.imagecodecs, fn.split("_")[0].upper(), None), "available", False):
                    libs[label_] = lambda f=getattr(jpeg.imagecodecs, fn): f(frame)
    for plugin in plugins:     # pylibjpeg here is libjpeg (GPLv3, dev only) for these syntaxes
        libs[f"pydicom plugin {plugin}"] = (lambda p=plugin: get_decoder(ds.file_meta.TransferSyntaxUID)
                                            .as_array(ds, index=0, decoding_plugin=p))
    return libs


def _cpu_ms(run: Callable[[], object], repeats: int) -> float:
    run()
    times = []
    for _ in range(max(repeats, 1)):
        started = time.process_time()
        run()
        times.append((time.process_time() - started) * 1000.0)
    return round(statistics.median(times), 1)
