"""Render the README's example report from a phantom: ``python scripts/report_example.py OUT.png``.

A DICOM phantom (synthetic patient) goes through the real service: ingest, the model (the
committed demo weights via ``boneage.engine.load_engine``), clinical interpretation and
``build_reports``. ``--ground-truth`` replaces the model by the phantom's own labels (true hand box
and bone age, model version ``phantom-ground-truth``) for when no weights are available. The PNG
is palette-quantised to stay small in the repository. Nothing here is a real patient or a clinical
result. It imports the installed ``boneage`` package (``pip install -e .``); it is a script, not
part of the package, because it drives the service from above.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image

SEED = 20251125


class _GroundTruth:
    """Stands in for the model with the phantom's true labels (only for ``--ground-truth``)."""

    model_version = "phantom-ground-truth (no model)"
    demo = True

    def __init__(self, labels: dict) -> None:
        self.labels = labels

    def assess_batch(self, images, sexes):
        from boneage.model.types import Box, ModelOutput

        x0, y0, x1, y1 = self.labels["hand_boxes"][0]
        ba = float(self.labels["boneage"])
        return [ModelOutput(bone_age_months=ba, interval_months=(ba - 8.0, ba + 8.0), sex_used=sexes[0],
                            hand_box=Box(x0, y0, x1, y1, 1.0), qc={"hand_count": 1},
                            model_version=self.model_version)]


def _phantom_dicom(seed: int, bone_age_months: float) -> tuple[bytes, dict]:
    import numpy as np

    from boneage.phantom import render_sample
    from boneage.phantom.dicom import build_dataset

    rng = np.random.default_rng(seed)
    img, labels = render_sample(rng, kind="left", bone_age_months=bone_age_months, male=False, size=1024,
                                nuisance=False)
    labels = dict(labels, id=1, sex="F", modality="DX", photometric="MONOCHROME2", study_date="20250115",
                  birth_date="20141020")
    ds = build_dataset(img, labels, seed=seed)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue(), labels


def render_example(out: Path, *, seed: int = SEED, ground_truth: bool = False) -> Path:
    from boneage.service import AssessmentService

    data, labels = _phantom_dicom(seed, 126.0)
    if ground_truth:
        assessor = _GroundTruth(labels)
    else:
        import torch

        from boneage.engine import load_engine

        torch.set_num_threads(1)
        assessor = load_engine().assessor
    service = AssessmentService(assessor)
    result, files = service.assess(data, source="phantom-example.dcm",
                                   metadata={"height-cm": "138", "study-ref": "EXAMPLE-001"})
    if "report.png" not in files:
        raise SystemExit(f"no report: the assessment was {result.status} ({result.reason}: {result.message})")
    img = Image.open(io.BytesIO(files["report.png"])).convert("RGB")
    small = img.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    small.save(out, format="PNG", optimize=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--ground-truth", action="store_true", help="use the phantom's labels instead of the model")
    args = parser.parse_args(argv)
    path = render_example(args.out, seed=args.seed, ground_truth=args.ground_truth)
    print(path, path.stat().st_size, "bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
