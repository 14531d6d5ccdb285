"""``boneage assess``: estimate bone age for radiograph files, with the clinical interpretation.

Prints one JSON object per file (``--json``) or a short human summary. ``--report DIR`` writes the
PNG report (and, for DICOM input, the Secondary Capture and Structured Report) per file. Bad input
gives a ``rejected`` line with a reason code, never a traceback; the exit status is 0 when every file
ended in a result or a typed rejection, 2 when a file could not be read at all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

HELP = "Estimate bone age (with SDS, interpretation and adult height) for radiograph files"

# Fields printed for a person; --json prints the whole result.
_SUMMARY = ("status", "reason", "bone_age_months", "bone_age_interval_months", "sex", "chronological_age_months",
            "sds", "interpretation", "predicted_adult_height_cm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="DICOM, PNG or JPEG files")
    parser.add_argument("--sex", choices=["M", "F", "O", "m", "f", "o"], help="patient sex (overrides the file)")
    parser.add_argument("--age-months", type=float, help="chronological age in months (overrides the file)")
    parser.add_argument("--height-cm", type=float, help="current height in cm, for the adult height prediction")
    parser.add_argument("--laterality", choices=["L", "R"], help="laterality, when the file does not say")
    parser.add_argument("--study-ref", help="a non-identifying study reference to carry into the result")
    parser.add_argument("--report", type=Path, metavar="DIR", help="write report files to DIR/<file stem>/")
    parser.add_argument("--artifacts", type=Path, default=None,
                        help="model artifact directory (default: build/model when built, else the demo weights)")
    parser.add_argument("--backend", default=None, help="force a backend (aoti, torchscript, ipex, eager)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def _metadata(args: argparse.Namespace) -> dict[str, str]:
    meta: dict[str, str] = {}
    if args.sex:
        meta["sex"] = args.sex.upper()
    if args.age_months is not None:
        meta["age-months"] = str(args.age_months)
    if args.height_cm is not None:
        meta["height-cm"] = str(args.height_cm)
    if args.laterality:
        meta["laterality"] = args.laterality
    if args.study_ref:
        meta["study-ref"] = args.study_ref
    return meta


def _default_artifacts() -> Path | None:
    candidate = Path("build/model")
    return candidate if (candidate / "manifest.json").exists() or any(candidate.glob("*/manifest.json")) else None


def _report_dir(root: Path, path: Path) -> Path:
    # A folder per input; the name is a digest of the path so two files called image.dcm never collide.
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    return root / f"{path.stem}-{digest}"


def run(args: argparse.Namespace) -> int:
    from boneage.config import Settings
    from boneage.engine import load_engine
    from boneage.imaging import Limits
    from boneage.result import REJECTED, AssessmentResult
    from boneage.service import AssessmentService

    settings = Settings.from_env()
    engine = load_engine(args.artifacts or _default_artifacts(), backend=args.backend or settings.engine.backend,
                         threads=settings.engine.threads)
    service = AssessmentService(engine.assessor, limits=Limits.from_settings(settings.ingest))
    metadata = _metadata(args)
    exit_code = 0
    for raw in args.paths:
        path = Path(raw)
        try:
            data = path.read_bytes()
        except OSError as exc:
            result = AssessmentResult(source=raw, status=REJECTED, reason="unreadable_file",
                                      message=f"cannot read the file: {exc.strerror or exc}",
                                      model_version=engine.model_version)
            reports: dict[str, bytes] = {}
            exit_code = 2
        else:
            result, reports = service.assess(data, source=raw, metadata=metadata, want_reports=args.report is not None)
        if args.report is not None and reports:
            folder = _report_dir(args.report, path)
            folder.mkdir(parents=True, exist_ok=True)
            for name, content in reports.items():
                (folder / name).write_bytes(content)
            result.report_files = [str(folder / name) for name in sorted(reports)]
        _print(result, args.json)
    return exit_code


def _print(result, as_json: bool) -> None:
    record = result.as_dict()
    if as_json:
        print(json.dumps(record, sort_keys=False), flush=True)
        return
    fields = ", ".join(f"{k}={record[k]}" for k in _SUMMARY if record.get(k) is not None)
    print(f"{record['source']}: {fields}" + (f" ({record['message']})" if record.get("message") else ""),
          file=sys.stdout, flush=True)
