"""``boneage inspect``: read radiograph files the way the service does and say what was found.

Prints one JSON object per file (``--json``) or one human line: format, size, transfer syntax,
photometric interpretation, modality, sex, chronological age, laterality, or the rejection reason.
``--dump-png DIR`` writes each normalised image as an 8-bit PNG a person can look at. Bad input
gives a ``rejected`` line with a reason code, never a traceback. Exit status: 0 when every file
ended in ``ok`` or a typed rejection, 2 when a file could not be read at all. Never imports torch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from boneage.imaging import Limits

HELP = "Read DICOM/PNG/JPEG radiographs and print what ingest finds (or why it rejects them)"

# The fields the issue promises, first; the rest of StudyMetadata follows in --json output.
_FIELDS = ("source", "status", "reason", "message", "rows", "columns", "transfer_syntax", "photometric",
           "modality", "sex", "chronological_age_months", "laterality")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="DICOM, PNG or JPEG files")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--dump-png", type=Path, metavar="DIR", help="write each normalised image to DIR as 8-bit PNG")
    parser.add_argument("--sex", help="patient sex M/F/O (overrides the file)")
    parser.add_argument("--age-months", help="chronological age in months (overrides the file)")
    parser.add_argument("--birth-date", help="birth date YYYYMMDD or YYYY-MM-DD (overrides the file)")
    parser.add_argument("--study-date", help="study date YYYYMMDD or YYYY-MM-DD (overrides the file)")
    parser.add_argument("--height-cm", help="current height in cm")
    parser.add_argument("--laterality", help="L or R (overrides the file)")
    parser.add_argument("--study-ref", help="a non-identifying study reference")
    parser.add_argument("--target-long-side", type=int, default=1024,
                        help="reduce the image's long side to this many pixels (0: keep the stored size)")


def _metadata(args: argparse.Namespace) -> dict[str, str]:
    keys = {"sex": args.sex, "age-months": args.age_months, "birth-date": args.birth_date,
            "study-date": args.study_date, "height-cm": args.height_cm, "laterality": args.laterality,
            "study-ref": args.study_ref}
    return {k: v for k, v in keys.items() if v is not None}


def _dump_name(path: str) -> str:
    # A digest of the path keeps two files called image.dcm apart without putting paths in names.
    digest = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:8]
    return f"{Path(path).stem}-{digest}.png"


def inspect_file(path: str, metadata: dict[str, str], target_long_side: int | None,
                 dump_dir: Path | None, limits: Limits | None = None) -> dict[str, Any]:
    from boneage.errors import Rejection
    from boneage.imaging import ingest

    record: dict[str, Any] = dict.fromkeys(_FIELDS)
    record.update(source=path, message="")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        record.update(status="rejected", reason="unreadable_file",
                      message=f"cannot read the file: {exc.strerror or exc}")
        return record
    try:
        radiograph = ingest(data, metadata=metadata, limits=limits, target_long_side=target_long_side)
    except Rejection as exc:
        record.update(status="rejected", reason=exc.reason, message=exc.message)
        return record
    meta = radiograph.meta.as_dict()
    if metadata and meta.get("sex_source") == "metadata":
        meta["sex_source"] = "cli"
    record.update(meta)
    record.update(source=path, status="ok", reason=None,
                  output_rows=int(radiograph.pixels.shape[0]), output_columns=int(radiograph.pixels.shape[1]))
    if dump_dir is not None:
        from PIL import Image
        import numpy as np

        dump_dir.mkdir(parents=True, exist_ok=True)
        out = dump_dir / _dump_name(path)
        Image.fromarray(np.round(radiograph.pixels * 255.0).astype(np.uint8)).save(out)
        record["dump_png"] = str(out)
    return record


def _human(record: dict[str, Any]) -> str:
    if record["status"] != "ok":
        return f"{record['source']}: rejected {record['reason']}: {record['message']}"
    age = record.get("chronological_age_months")
    parts = [f"{record['source']}: ok {record.get('source_format')} {record['rows']}x{record['columns']}",
             record.get("transfer_syntax_name") or "", record.get("photometric") or "",
             f"modality={record.get('modality')}", f"sex={record.get('sex') or 'unknown'}",
             f"age={'unknown' if age is None else f'{age:.1f} mo'}",
             f"laterality={record.get('laterality') or 'unknown'}"]
    return " ".join(p for p in parts if p)


def run(args: argparse.Namespace) -> int:
    from boneage.config import Settings
    from boneage.imaging import Limits

    limits = Limits.from_settings(Settings.from_env().ingest)
    metadata = _metadata(args)
    target = args.target_long_side if args.target_long_side and args.target_long_side > 0 else None
    exit_code = 0
    for path in args.paths:
        try:
            record = inspect_file(path, metadata, target, args.dump_png, limits)
        except Exception as exc:        # a bug, not bad input; still one line per file, no traceback
            record = dict.fromkeys(_FIELDS)
            record.update(source=path, status="error", reason="internal_error",
                          message=f"{type(exc).__name__} while reading the file")
        if record["reason"] in ("unreadable_file", "internal_error"):
            exit_code = 2
        print(json.dumps(record, default=str) if args.json else _human(record), flush=True)
    return exit_code


