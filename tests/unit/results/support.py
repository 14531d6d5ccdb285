"""A moto results table shaped like the template's, and records written through the real store."""

from __future__ import annotations

from typing import Any

from boneage.adapters.store import ResultStore
from boneage.result import COMPLETED, REJECTED, AssessmentResult
from boneage.upload import StoredRecord, Upload

T0 = 1_790_000_000.0        # 2026-09-21, a fixed clock so created_at is known


def create_table(ddb: Any, name: str = "results") -> None:
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                              for n in ("upload_id", "hospital_id", "created_at")],
        KeySchema=[{"AttributeName": "upload_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_hospital", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "hospital_id", "KeyType": "HASH"},
                                               {"AttributeName": "created_at", "KeyType": "RANGE"}]}],
    )


def seed(store: ResultStore, hospital: str, i: int, *, now: float, status: str = COMPLETED,
         interpretation: str | None = "within_normal_limits", sds: float = 0.4,
         report_keys: dict[str, str] | None = None) -> StoredRecord:
    """One finished record, as the upload use case leaves it."""
    upload = Upload(bucket="in", key=f"incoming/{hospital}/study-{i}.dcm", version_id=f"v{i}")
    claim = store.claim(upload, hospital, now=now, lease_seconds=60)
    if status == REJECTED:
        result = AssessmentResult(source="x", status=REJECTED, reason="no_hand_found", message="no hand was found")
    else:
        result = AssessmentResult(
            source="x", status=status, bone_age_months=126.0 + i, bone_age_interval_months=[114.0 + i, 138.0 + i],
            sex="F", sex_source="metadata", chronological_age_months=120.0, age_source="metadata", sds=sds,
            sds_interval=[sds - 0.9, sds + 0.9], interpretation=interpretation, model_version="demo-1",
            accession_number=f"ACC{i}", study_reference=f"ref-{hospital}-{i}", demo_model=True)
    record = store.finish(claim, result, now=now + 1, report_keys=report_keys or {})
    assert record is not None
    return record
